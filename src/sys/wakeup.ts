/**
 * Waker fds: a pollable fd that any thread can make readable, to wake a thread blocked in
 * epoll_wait, poll or kevent (or a host loop watching the fd). One interface, one implementation
 * per platform:
 *
 * - Linux: an eventfd (`linux/eventfd.ts`): one fd, a counter; draining is one read.
 * - elsewhere on POSIX: a pipe (`posix/wakeup-pipe.ts`), both ends non-blocking and
 *   close-on-exec; the read end is polled, a wake writes one byte to the write end.
 * - Windows: a connected pair of loopback UDP sockets (`windows/wakeup-socket.ts`), since WSAPoll
 *   watches sockets only; the receiving end is polled, a wake sends a one-byte datagram.
 *
 * `EVLOOP_WAKER=pipe` (or `eventfd`) overrides the platform's choice, so the pipe waker, the one
 * macOS and the BSDs use, can be run on Linux too. kqueue (EVFILT_USER, the `kqueue` handle kind,
 * made by `selector/kqueue.ts`) and IOCP (PostQueuedCompletionStatus, the `iocp` handle kind)
 * bring wakers that need no fd of their own.
 *
 * Thread safety: `wake()` and {@link wakeFromHandle} may be called from any thread, any number of
 * times; wake-ups coalesce until `drain()`. `drain()` and `close()` belong to the owning thread.
 */
import { ffi } from "../ffi/runtime/load.js";
import { triggerUser } from "./bsd/kqueue.js";
import { eventfdWake, eventfdWakeup } from "./linux/eventfd.js";
import { pipeWake, pipeWakeup } from "./posix/wakeup-pipe.js";
import { TARGET } from "./target.js";
import { postTo } from "./windows/port.js";
import { socketWake, socketWakeup } from "./windows/wakeup-socket.js";

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

/**
 * A serialisable reference to a waker, to hand to another thread with `postMessage`: the kind of
 * waker and the fd to write to (the eventfd itself, or the pipe's write end).
 *
 * @example
 * ```ts
 * new Worker(url, { workerData: loop.interruptHandle }); // worker: Waker.fromHandle(workerData).wake()
 * ```
 */
export type WakerHandle =
  | { readonly kind: "eventfd"; readonly fd: number }
  | { readonly kind: "pipe"; readonly fd: number }
  /** A loopback UDP socket pair (Windows): a datagram sent from `fd` wakes its loop. */
  | { readonly kind: "socket"; readonly fd: number }
  /** An I/O completion port (Windows): a packet with `key` posted to it wakes its loop. */
  | { readonly kind: "iocp"; readonly port: number; readonly key: number }
  /** A kqueue (macOS, the BSDs, libkqueue): triggering its EVFILT_USER event `ident` wakes its loop. */
  | { readonly kind: "kqueue"; readonly fd: number; readonly ident: number };

/** The kinds of waker fd. */
export type WakeupKind = Exclude<WakerHandle["kind"], "iocp" | "kqueue">;

/** The handle of a wake-up fd (eventfd, pipe or socket pair). */
export type FdWakerHandle = Extract<WakerHandle, { readonly kind: WakeupKind }>;

/** A waker fd, owned by the thread that created it. */
export interface WakeupFd {
  /** The fd to poll for readability: readable once woken, until drained. */
  readonly fd: number;
  /** What another thread needs to wake this one (see {@link wakeFromHandle}). */
  readonly handle: FdWakerHandle;
  /** Makes `fd` readable. Any thread; never blocks; a wake-up already pending is enough. */
  wake(): void;
  /** Consumes pending wake-ups, so `fd` is not readable until the next `wake()`. */
  drain(): void;
  /** Closes the fd(s); handles held by other threads stop working. Idempotent. */
  close(): void;
}

/** The waker kinds this OS has, its default first. */
function kindsHere(): WakeupKind[] {
  if (TARGET.os === "win32") return ["socket"];
  return TARGET.has.eventfd ? ["eventfd", "pipe"] : ["pipe"];
}

function defaultKind(): WakeupKind {
  const forced = ffi.env("EVLOOP_WAKER");
  const kinds = kindsHere();
  if (forced === undefined || forced === "") return kinds[0]!;
  if ((kinds as string[]).includes(forced)) return forced as WakeupKind;
  throw new Error(`EVLOOP_WAKER=${forced} is not a waker for ${TARGET.os} (expected ${kinds.join(" or ")})`);
}

let chosen: WakeupKind | undefined;

/**
 * The waker kind of this platform (eventfd on Linux, a socket pair on Windows, a pipe elsewhere)
 * or of `EVLOOP_WAKER`.
 */
export function defaultWakeupKind(): WakeupKind {
  return (chosen ??= defaultKind());
}

/**
 * Creates a waker fd of `kind` (by default the platform's).
 *
 * @example
 * ```ts
 * const w = openWakeup();
 * poll.registry.register(w.fd, 0, Interest.READABLE);
 * worker.postMessage(w.handle); // the worker calls wakeFromHandle(handle)
 * ```
 */
export function openWakeup(kind: WakeupKind = defaultWakeupKind()): WakeupFd {
  switch (kind) {
    case "eventfd":
      return eventfdWakeup();
    case "pipe":
      return pipeWakeup();
    case "socket":
      return socketWakeup();
    default:
      throw new TypeError(`unknown waker kind ${JSON.stringify(kind)} (expected "eventfd", "pipe" or "socket")`);
  }
}

/**
 * The fds a waker owns: the eventfd, or the pipe's or socket pair's two ends.
 *
 * @example
 * ```ts
 * for (const fd of wakeupFds(w)) closeAtExit(fd);
 * ```
 */
export function wakeupFds(w: WakeupFd): number[] {
  return w.handle.fd === w.fd ? [w.fd] : [w.fd, w.handle.fd];
}

/** Whether `value` has the shape of a {@link WakerHandle} (as received from another thread). */
export function isWakerHandle(value: unknown): value is WakerHandle {
  if (value === null || typeof value !== "object") return false;
  const { kind, fd, port, key, ident } = value as { kind?: unknown; fd?: unknown; port?: unknown; key?: unknown; ident?: unknown };
  if (kind === "iocp") return isCount(port) && isCount(key);
  if (kind === "kqueue") return isCount(fd) && isCount(ident);
  return (kind === "eventfd" || kind === "pipe" || kind === "socket") && isCount(fd);
}

/**
 * Wakes the thread that owns the waker `handle` refers to. Any thread; never blocks.
 *
 * @example
 * ```ts
 * // in a Worker, with the handle the owner posted:
 * wakeFromHandle(workerData.handle);
 * ```
 */
export function wakeFromHandle(handle: WakerHandle): void {
  switch (handle.kind) {
    case "eventfd":
      return eventfdWake(handle.fd);
    case "pipe":
      return pipeWake(handle.fd);
    case "socket":
      return socketWake(handle.fd);
    case "iocp":
      return postTo(handle.port, handle.key);
    case "kqueue":
      return triggerUser(handle.fd, handle.ident);
    default:
      throw new TypeError("not a WakerHandle");
  }
}
