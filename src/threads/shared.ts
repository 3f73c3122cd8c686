/**
 * What the reactor's threads share: the control words, the handle a Registrator is built from,
 * and the data the reactor thread starts with. Every word is an Int32 in one SharedArrayBuffer
 * (`ctl`), read and written with Atomics; the event ring (`ring.ts`) and the poll registration
 * table (`table.ts`) have buffers of their own.
 */
import type { MessagePort } from "node:worker_threads";
import type { SelectorName } from "../selector/registry.js";
import { MAX_TOKEN } from "../selector/selector.js";
import type { WakerHandle } from "../sys/wakeup.js";

/** Indices into the control words. */
export const CTL = {
  /** {@link STATE}: whether the reactor runs. */
  STATE: 0,
  /** Ring slots the owner has taken (mod 2 × capacity). */
  HEAD: 1,
  /** Ring slots the reactor has published (mod 2 × capacity). */
  TAIL: 2,
  /** 1 while the reactor thread waits for the owner to free ring slots (backpressure). */
  PRODUCER_WAITING: 3,
  /** 1 while the owner waits for events (`Atomics.waitAsync` on TAIL, or a message). */
  CONSUMER_WAITING: 4,
  /** Registrator calls in progress on any thread; the reactor closes its selector at 0 only. */
  USERS: 5,
  /** The registration table's spin lock (poll, kqueue): 0 free, 1 held. */
  LOCK: 6,
  /** Bumped by every change to the registration table, so the reactor knows to apply it. */
  VERSION: 7,
  /** Backpressure waits so far: the times the ring was full (for benchmarks and tests). */
  FULL_WAITS: 8,
} as const;

export const CTL_WORDS = 16;

/** Values of `ctl[CTL.STATE]`. */
export const STATE = {
  OPEN: 0,
  /** `close()` was called (or the process is exiting): the reactor thread is to stop. */
  CLOSING: 1,
} as const;

/** The token of the reactor's own waker: one past the largest token a user may give. */
export const WAKE_TOKEN = MAX_TOKEN;

/**
 * How the reactor thread wakes an owner waiting for events: `Atomics.notify` to an
 * `Atomics.waitAsync` where the runtime has it, else a message on a port (only when the owner
 * said it waits, never one per event).
 */
export type OwnerWake = "atomics" | "message";

/**
 * How a Registrator applies a change. `direct`: it calls the selector's syscall itself (epoll_ctl
 * is thread-safe in the kernel). `table`: it writes the shared registration table and wakes the
 * reactor thread, which applies it to its selector (poll(2) has no kernel object; the kqueue
 * selector keeps per-fd state of its own on its thread).
 *
 * @example
 * ```ts
 * if (reactor.registratorHandle.mode === "table") console.log("changes apply on the reactor thread");
 * ```
 */
export type RegistrationMode = "direct" | "table";

/**
 * What a Registrator needs, on any thread: serialisable with `postMessage` (SharedArrayBuffers
 * are shared, not copied). Build one with {@link Registrator.fromHandle}.
 *
 * @example
 * ```ts
 * worker.postMessage(reactor.registratorHandle); // there: Registrator.fromHandle(message)
 * ```
 */
export interface RegistratorHandle {
  readonly kind: "evloop.registrator";
  /** The reactor's selector. */
  readonly selector: SelectorName;
  readonly mode: RegistrationMode;
  /** The control words (`CTL`). */
  readonly ctl: SharedArrayBuffer;
  /** The registration table, in `table` mode; null in `direct` mode. */
  readonly table: SharedArrayBuffer | null;
  /** The selector's fd (the epoll fd) in `direct` mode; -1 otherwise. */
  readonly selectorFd: number;
  /** Wakes the reactor thread after a table change. */
  readonly waker: WakerHandle;
}

/** What the reactor thread is started with (`workerData`). */
export interface ReactorData {
  readonly selector: SelectorName;
  readonly mode: RegistrationMode;
  readonly ctl: SharedArrayBuffer;
  readonly ring: SharedArrayBuffer;
  readonly capacity: number;
  readonly table: SharedArrayBuffer | null;
  readonly wake: OwnerWake;
  /** Where the reactor thread posts its wake-ups in `message` mode; null in `atomics` mode. */
  readonly port: MessagePort | null;
}

/** The reactor thread's first message: ready, with what Registrators need, or why it failed. */
export type ReactorHello =
  | { readonly ok: true; readonly selectorFd: number; readonly waker: WakerHandle }
  | { readonly ok: false; readonly message: string; readonly errno: number; readonly syscall: string };

/** Takes the spin lock at `ctl[index]`; held for a few stores only, so it rarely waits. */
export function lock(ctl: Int32Array, index: number): void {
  for (let spins = 0; Atomics.compareExchange(ctl, index, 0, 1) !== 0; spins++) {
    // Past a few hundred tries the holder is descheduled: sleep until it unlocks (or 1 ms).
    if (spins > 256) Atomics.wait(ctl, index, 1, 1);
  }
}

/** Releases the spin lock at `ctl[index]`. */
export function unlock(ctl: Int32Array, index: number): void {
  Atomics.store(ctl, index, 0);
  Atomics.notify(ctl, index, 1);
}
