/**
 * What every EventLoop implementation shares: the timer heap, `sleep`, keep-alive accounting for
 * guest mode, and argument checks that turn misuse into clear errors.
 */
import { ClosedError } from "../sys/errors.js";
import { eventfd, eventfdWrite } from "../sys/linux/eventfd.js";
import { close as closeFd } from "../sys/posix/fd.js";
import type { WakerHandle } from "../selector/poll-api.js";
import type { BorrowedBytes } from "./event-loop.js";
import { TimerHeap } from "./timers.js";

/** The loops' monotonic clock, in ms. */
export const clock = (): number => performance.now();

/** Largest timeout accepted (the largest a 32-bit ms poll timeout can express). */
export const MAX_MS = 0x7fffffff;

/** Throws a RangeError unless `ms` is a finite number from 0 to MAX_MS. */
export function checkMs(ms: unknown, what: string): number {
  if (typeof ms !== "number" || Number.isNaN(ms) || ms < 0 || ms > MAX_MS) {
    throw new RangeError(`${what} must be a number of milliseconds from 0 to ${MAX_MS}, got ${String(ms)}`);
  }
  return ms;
}

/** Validates `{ signal, timeout }`. */
export function checkOptions(options: { signal?: unknown; timeout?: unknown } | undefined): void {
  if (options === undefined || options === null) return;
  if (typeof options !== "object") throw new TypeError("options must be an object");
  if (options.timeout !== undefined) checkMs(options.timeout, "timeout");
  const signal = options.signal;
  if (signal !== undefined && (typeof signal !== "object" || signal === null || typeof (signal as AbortSignal).addEventListener !== "function" || typeof (signal as AbortSignal).aborted !== "boolean")) {
    throw new TypeError("signal must be an AbortSignal");
  }
}

/** Whether the memory behind `buf` was transferred away (detached). */
export function isDetached(buf: ArrayBufferView): boolean {
  const b = buf.buffer as ArrayBuffer & { detached?: boolean };
  if (b.detached !== undefined) return b.detached;
  // Before V8 11.4 there is no `detached`; a detached buffer shows as length 0 and refuses views.
  if (b.byteLength !== 0) return false;
  try {
    new Uint8Array(b);
    return false;
  } catch {
    return true;
  }
}

/**
 * Throws unless `buf` is a usable Uint8Array. Empty buffers are refused where a zero-byte
 * transfer would be indistinguishable from EOF, unless `allowEmpty` (datagrams may be empty).
 */
export function checkBuffer(buf: unknown, what: string, allowEmpty = false): Uint8Array {
  if (!(buf instanceof Uint8Array)) throw new TypeError(`${what}: buffer must be a Uint8Array (or Buffer), got ${describe(buf)}`);
  // A detached buffer's views all have length 0: only an empty view needs the closer look.
  if (buf.byteLength === 0 && isDetached(buf)) throw new TypeError(`${what}: buffer is detached`);
  if (!allowEmpty && buf.byteLength === 0) throw new RangeError(`${what}: buffer must not be empty`);
  return buf;
}

/** Checks every buffer of a gather/scatter list. */
export function checkBuffers(bufs: unknown, what: string): readonly Uint8Array[] {
  if (!Array.isArray(bufs)) throw new TypeError(`${what}: buffers must be an array of Uint8Array`);
  if (bufs.length > 1024) throw new RangeError(`${what}: at most 1024 buffers (IOV_MAX), got ${bufs.length}`);
  for (const b of bufs) checkBuffer(b, what, true);
  return bufs as Uint8Array[];
}

/** Default and largest `maxBytes` of a borrowed read. */
export const BORROW_DEFAULT = 16 * 1024;
export const BORROW_MAX = 64 * 1024;

/** Validates a borrowed read's options; returns its `maxBytes`. */
export function checkBorrow(options: { maxBytes?: unknown } | undefined): number {
  const max = options?.maxBytes;
  if (max === undefined) return BORROW_DEFAULT;
  if (typeof max !== "number" || !Number.isInteger(max) || max < 1 || max > BORROW_MAX) {
    throw new RangeError(`maxBytes must be an integer from 1 to ${BORROW_MAX}, got ${String(max)}`);
  }
  return max;
}

/** Whoever lent a {@link Loan}'s memory, and takes it back. */
export interface Lender {
  /** `ref` and `backing` are what the lender put into the loan. */
  giveBack(ref: number, backing: Uint8Array | null): void;
}

/** The {@link BorrowedBytes} a borrowed read resolves with. */
export class Loan implements BorrowedBytes {
  #lender: Lender | null;
  readonly #ref: number;
  readonly #backing: Uint8Array | null;

  constructor(
    readonly bytes: Uint8Array,
    lender: Lender | null,
    ref: number,
    backing: Uint8Array | null,
  ) {
    this.#lender = lender;
    this.#ref = ref;
    this.#backing = backing;
  }

  release(): void {
    const lender = this.#lender;
    if (lender === null) return;
    this.#lender = null;
    lender.giveBack(this.#ref, this.#backing);
  }
}

/** A loan of memory nobody needs back (a fresh buffer, end of stream). */
export function ownLoan(bytes: Uint8Array): Loan {
  return new Loan(bytes, null, 0, null);
}

/**
 * Buffers lent by the readiness backends' borrowed reads: taken only when a read is attempted,
 * so a waiting read holds none, and kept for reuse when released (a few dozen at most; the rest
 * are left to the GC).
 */
export class BufferPool implements Lender {
  readonly #small: Uint8Array[] = [];
  readonly #large: Uint8Array[] = [];

  /** A buffer to read up to `maxBytes` into: its first `maxBytes` bytes (or fewer) are used. */
  take(maxBytes: number): Uint8Array {
    const large = maxBytes > BORROW_DEFAULT;
    return (large ? this.#large.pop() : this.#small.pop()) ?? new Uint8Array(large ? BORROW_MAX : BORROW_DEFAULT);
  }

  /** Lends `n` bytes of `backing` (returns it at once for end of stream). */
  lend(backing: Uint8Array, n: number): Loan {
    if (n === 0) {
      this.giveBack(0, backing);
      return ownLoan(backing.subarray(0, 0));
    }
    return new Loan(backing.subarray(0, n), this, 0, backing);
  }

  giveBack(_ref: number, backing: Uint8Array | null): void {
    if (backing === null) return;
    const large = backing.byteLength > BORROW_DEFAULT;
    const list = large ? this.#large : this.#small;
    if (list.length < (large ? 8 : 64)) list.push(backing);
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "object") return (v as object).constructor?.name ?? "object";
  return typeof v;
}

/** Timers, sleep and keep-alive accounting shared by the loops. */
export abstract class LoopBase {
  protected readonly timers = new TimerHeap();
  /** The eventfd `interrupt()` writes to; each backend waits on it beside its own events. */
  protected readonly wakeFd = eventfd(0);
  protected disposed = false;
  #unrefed = false;
  #holds = 0;
  #listeners: Array<() => void> = [];
  /** Rejecters of pending sleeps, so `dispose` can settle them. */
  readonly #sleeps = new Set<(reason: unknown) => void>();

  /**
   * Set by the guest driver: the host's event loop drives this loop, so a backend that batches
   * submissions (io_uring) flushes them in a microtask instead of waiting for `run`.
   */
  guest = false;

  /** The fd a host loop polls to know this loop has work (-1: none; see `watch`). */
  get selectorFd(): number {
    return -1;
  }

  /** Whether operations wait for the next iteration although they may be ready (the budget). */
  get hasDeferred(): boolean {
    return false;
  }

  /** Operations parked in the backend. */
  protected abstract get pendingCount(): number;

  /** Whether the loop has work that should keep the process alive. */
  get hasRefedWork(): boolean {
    return !this.#unrefed && !this.disposed && (this.pendingCount > 0 || this.timers.refCount > 0 || this.#holds > 0);
  }

  /** The deadline of the earliest timer (clock ms), if any. */
  get nextDeadline(): number | undefined {
    return this.timers.nextDeadline();
  }

  /** Lets the process exit while this loop has pending work. */
  unref(): void {
    this.#unrefed = true;
    this.changed();
  }

  /** Undoes `unref()`. */
  ref(): void {
    this.#unrefed = false;
    this.changed();
  }

  /**
   * Keeps the process alive while a handle (a listening socket) is open, like Node's servers.
   * Returns the function that releases the hold; calling it twice is harmless.
   */
  hold(): () => void {
    this.#holds++;
    this.changed();
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#holds--;
      this.changed();
    };
  }

  sleep(ms: number, options?: { signal?: AbortSignal | undefined }): Promise<void> {
    checkMs(ms, "sleep");
    checkOptions(options);
    if (this.disposed) return Promise.reject(new ClosedError("sleep", -1));
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const fail = (reason: unknown) => {
        this.#sleeps.delete(fail);
        this.timers.cancel(timer);
        signal?.removeEventListener("abort", onAbort);
        this.changed();
        reject(reason);
      };
      const onAbort = () => fail(signal!.reason);
      const timer = this.timers.add(clock() + ms, () => {
        this.#sleeps.delete(fail);
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      this.#sleeps.add(fail);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.changed();
    });
  }

  /**
   * Calls `listener` whenever pending work may have changed (an operation parked or the last one
   * settled, a timer or hold added or removed). Drivers use it; returns the remover.
   */
  onChange(listener: () => void): () => void {
    this.#listeners.push(listener);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  /** A serialisable handle another thread can use to interrupt this loop. */
  get interruptHandle(): WakerHandle {
    return { kind: "eventfd", fd: this.wakeFd };
  }

  /** Wakes a blocking `run`; from another thread, use `Waker.fromHandle(interruptHandle)`. */
  interrupt(): void {
    eventfdWrite(this.wakeFd, 1);
  }

  protected changed(): void {
    const ls = this.#listeners;
    for (let i = 0; i < ls.length; i++) ls[i]!();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const fail of [...this.#sleeps]) fail(new ClosedError("sleep", -1));
    this.timers.clear();
    this.changed();
    closeFd(this.wakeFd);
  }
}
