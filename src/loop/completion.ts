/**
 * The completion core every backend sits on: the public EventLoop methods, argument checks,
 * the per-fd queues, abort and timeout wiring, settle bookkeeping, keep-alive accounting
 * (ref/unref/hold/setRef), sleep, interrupt and dispose. The shape is Crystal's
 * `Crystal::EventLoop::Polling` with `epoll.cr` on top: a backend fills in a few hooks and
 * inherits everything else, so a rule written here holds on every backend.
 *
 * An operation's life (see `operation.ts`):
 * 1. A public method checks its arguments (throwing TypeError/RangeError before anything starts)
 *    and fills an {@link Operation}; {@link CompletionLoop.submit} rejects at once when the
 *    signal is already aborted, notes the deadline, and hands the operation to the backend's
 *    {@link CompletionLoop.begin}.
 * 2. The backend either finishes it at once (a readiness backend whose syscall succeeded
 *    returns a settled promise and no record is kept) or {@link CompletionLoop.park}s it: the
 *    core creates the promise, queues the operation on its fd, listens to its signal and counts
 *    it as pending. {@link CompletionLoop.armTimer} enforces the deadline with the loop's timer
 *    heap while nothing in the kernel does.
 * 3. Abort, timeout, `close` and `remove` call {@link CompletionLoop.cancel}: a readiness backend
 *    settles at once (nothing is in the kernel); a completion backend asks the kernel to cancel
 *    and settles when the kernel answers, so a rejected operation's buffer is never written.
 * 4. {@link CompletionLoop.settle} unlinks it, undoes the wiring, lets the backend release what
 *    it held ({@link CompletionLoop.finish}) and settles the promise; the backend may then start
 *    the next operation of the queue ({@link CompletionLoop.advance}).
 *
 * A backend passes its waker and record classes to the constructor, and provides the hooks
 * `begin`, `wait` (one iteration's waiting and completing), `watch`
 * (what a host loop must poll for this loop to have work), `wakeOn` (a host fd that also ends
 * its waits), `ownFds` (its own kernel fds) and optionally `cancel`, `finish`,
 * `advance`, `detach` (an fd forgotten), `closeFd`, `release` (dispose).
 */
import { ClosedError, SystemError, TimeoutError } from "../sys/errors.js";
import { ERRNO } from "../sys/target.js";
import { closeSocket as closeFd } from "../sys/socket.js";
import type { SocketAddress } from "../sys/posix/sockaddr.js";
import type { ReceivedMessage } from "../sys/posix/socket.js";
import type { WakerHandle } from "../sys/wakeup.js";
import type { BackendName, BorrowedBytes, BorrowOptions, EventLoop, OperationOptions, OverlappedOptions, OverlappedResult, ReceiveFromResult } from "./event-loop.js";
import { checkAddress, checkBorrow, checkBuffer, checkBuffers, checkFd, clampLength, clampTotal, checkMaxFds, checkMs, checkOffset, checkOptions, checkPassedFds } from "./checks.js";
import { FdState, Kind, Operation, Phase, type Queue, SYSCALL } from "./operation.js";
import { clock, TimerHeap } from "./timers.js";

/**
 * Operations that may complete at once, without a loop iteration, per iteration. A transfer
 * whose every syscall succeeds would otherwise resolve promise after promise in microtasks and
 * starve the host's timers and I/O (guest mode), and the loop's own timers, forever; past the
 * budget an operation waits for the next iteration, like any Node socket callback. Backends
 * that complete operations inside their call (readiness, blocking) keep it.
 */
export const FAST_PATH_BUDGET = 128;

/** What interrupts a loop blocked in its kernel wait: one per backend kind (eventfd, …). */
export interface LoopWaker {
  /** What another thread needs to wake the loop (`Waker.fromHandle`). */
  readonly handle: WakerHandle;
  /** Wakes the loop; safe from any thread. */
  wake(): void;
  close(): void;
}

/**
 * The wait a helper thread does for a loop whose completion port no host loop can poll (IOCP in
 * guest mode). The helper repeats: wait until `state[0]` is 0 (the loop took the last batch);
 * stop if `state[1]` is 1; GetQueuedCompletionStatusEx(`port`, `entries`, `capacity`, …, INFINITE);
 * stop if `state[1]` is 1; else store the count in `state[0]` (Atomics.store, then notify) and
 * wake the host thread, which runs the loop; the loop handles the entries, stores 0 in
 * `state[0]` and notifies. Entries whose key is `wakeKey` only wake. To stop the helper the loop
 * (or the driver, at process exit) stores 1 in `state[1]`, notifies, and posts a `wakeKey` packet;
 * the helper, once it will touch neither the entries nor the port again, stores 1 in `state[2]`
 * and notifies.
 */
export interface RemoteWait {
  /** The completion port (a HANDLE). */
  readonly port: bigint;
  /** Native memory for `capacity` OVERLAPPED_ENTRY records, written only by the helper. */
  readonly entries: bigint;
  readonly capacity: number;
  /** [0]: entries delivered and not yet taken; [1]: 1 = stop; [2]: 1 = stopped. Over a SharedArrayBuffer. */
  readonly state: Int32Array;
  /** The completion key of packets that carry no completion, only a wake-up. */
  readonly wakeKey: number;
}

/** The record classes a backend keeps: one per operation, one per fd. */
export interface LoopRecords<Op extends Operation, S extends FdState<Op>> {
  readonly operation: new () => Op;
  readonly fdState: new (fd: number) => S;
}

/**
 * What the drivers (guest mode, owner mode) need from a loop, and all they may use: no driver
 * knows which backend it drives.
 */
export interface Drivable {
  readonly backend: BackendName;
  /**
   * One iteration: waits (only if `blocking`, and at most `maxWait` ms when given) and completes
   * what is ready. False when idle.
   */
  run(blocking: boolean, maxWait?: number): boolean;
  /**
   * Tells `listener` which fds a host loop must poll to know this loop has work: the backend's
   * own pollable fd once, or (a selector without one, poll(2)) each fd as its interest changes
   * (interest 0: stop watching it).
   */
  watch(listener: (fd: number, interest: number) => void): void;
  /**
   * Owner mode: also ends a blocking wait (`run(true)`, and the blocking backend's waits inside
   * an operation) when `fd` is readable — the host loop's own fd, so the host's I/O and a
   * Worker's termination are not held up by evloop's wait. Level-triggered: every wait while
   * `fd` is readable returns at once, so the driver must let the host run before the next one.
   * The loop never reads or closes `fd`. Calling it again with the same fd does nothing.
   */
  wakeOn(fd: number): void;
  /** The fds the loop itself opened (selector, waker, ring): `dispose` closes them. */
  ownFds(): number[];
  /**
   * A loop whose kernel wait has no fd a host loop could poll (IOCP) returns the wait another
   * thread can do for it (see {@link RemoteWait}); the guest driver then runs that wait on a
   * helper thread. Calling it switches the loop to taking its completions from that thread.
   * Null for loops a host can poll (`watch`).
   */
  remoteWait(): RemoteWait | null;
  /** The earliest timer's deadline (clock ms), if any. */
  readonly nextDeadline: number | undefined;
  /** Whether pending work should keep the process alive. */
  readonly hasRefedWork: boolean;
  /** Whether operations wait for the next iteration although they may be ready (a budget). */
  readonly hasDeferred: boolean;
  /** Set by the guest driver: the host's loop drives this one (a backend may batch for it). */
  guest: boolean;
  /** Calls `listener` whenever pending work may have changed; returns the remover. */
  onChange(listener: () => void): () => void;
  /** Calls `listener` when the loop is disposed, before it releases anything. */
  onDispose(listener: () => void): void;
}

/**
 * The base class of every backend. Create loops with `createLoop()`; extend this class to add a
 * backend (see ARCHITECTURE.md, "Adding a backend").
 */
export abstract class CompletionLoop<Op extends Operation = Operation, S extends FdState<Op> = FdState<Op>> implements EventLoop, Drivable {
  abstract readonly backend: BackendName;
  protected readonly timers = new TimerHeap();
  protected readonly waker: LoopWaker;
  /** Per-fd state of the fds with operations (or other state the backend keeps). */
  protected readonly fds = new Map<number, S>();
  protected disposed = false;
  /** Parked operations. */
  protected pending = 0;
  /** Parked operations that keep the process alive. */
  protected refedPending = 0;
  guest = false;
  readonly #unrefedFds = new Set<number>();
  #unrefed = false;
  #holds = 0;
  #listeners: Array<() => void> = [];
  readonly #disposeListeners: Array<() => void> = [];
  /** Rejecters of pending sleeps, so `dispose` can settle them. */
  readonly #sleeps = new Set<(reason: unknown) => void>();

  readonly #records: LoopRecords<Op, S>;

  /**
   * `waker` interrupts the backend's kernel wait; `records` are the classes of its operation
   * records and per-fd state (subclasses of Operation and FdState, or those themselves).
   */
  constructor(waker: LoopWaker, records: LoopRecords<Op, S>) {
    this.waker = waker;
    this.#records = records;
  }

  // ---- hooks -----------------------------------------------------------------------------

  /** Starts a checked operation: finishes it at once, or parks it; returns its promise. */
  protected abstract begin<T>(op: Op): Promise<T>;
  /** Waits up to `timeout` ms (-1: no limit, 0: not at all) and completes what became ready. */
  protected abstract wait(timeout: number): void;
  abstract watch(listener: (fd: number, interest: number) => void): void;
  abstract wakeOn(fd: number): void;
  abstract ownFds(): number[];

  remoteWait(): RemoteWait | null {
    return null;
  }

  /**
   * Ends `op` early with `reason` (abort, timeout, close). The default settles at once, right
   * for operations the kernel does not hold; a completion backend cancels in the kernel first.
   */
  protected cancel(op: Op, reason: unknown): void {
    this.settle(op, false, reason);
  }

  /**
   * The first half of a completion backend's `cancel`: settles `op` at once while it waits in JS
   * (nothing the kernel holds), and otherwise marks it cancelled with `reason` — once — and
   * returns true: the backend then asks its kernel to cancel, and settles `op` only on the
   * kernel's answer (with its result if it completed first, else with `op.cancelReason`).
   */
  protected cancelInKernel(op: Op, reason: unknown): boolean {
    if (op.phase === Phase.Done) return false;
    if (op.phase === Phase.Waiting) {
      this.settle(op, false, reason);
      return false;
    }
    if (op.cancelled) return false;
    op.cancelled = true;
    op.cancelReason = reason;
    return true;
  }

  /**
   * For a completion backend's `closeFd`: parks the Close operation of `state`'s fd (returned with
   * its promise), which the backend settles once the fd is closed. `state` stays findable
   * meanwhile, with `closer` set, so new operations on the fd are refused, not sent to the kernel.
   */
  protected parkClose(state: S): { op: Op; promise: Promise<void> } {
    this.fds.set(state.fd, state);
    const op = new this.#records.operation();
    op.kind = Kind.Close;
    op.fd = state.fd;
    state.closer = op;
    return { op, promise: this.park<void>(op, null) };
  }

  /** Releases what `op` holds besides its buffers; may turn a result into what resolves. */
  protected finish(_op: Op, _ok: boolean, value: unknown): unknown {
    return value;
  }

  /** After `op` settled: a backend that runs one operation per queue starts the next. */
  protected advance(_op: Op, _queue: Queue<Op> | null, _wasHead: boolean): void {}

  /** `state`'s fd was forgotten (its operations are cancelled): unregister it. */
  protected detach(_state: S): void {}

  /**
   * Whether the backend holds data received for `state`'s fd that no read has taken, or has a
   * receive of its own in the kernel (io_uring's multishot RECV): then `remove` would lose bytes.
   */
  protected holdsData(_state: S): boolean {
    return false;
  }

  /** Forgets `fd` and closes it. The default: close(2) here and now (a failure rejects). */
  protected closeFd(fd: number): Promise<void> {
    this.forget(fd);
    try {
      closeFd(fd);
    } catch (e) {
      return Promise.reject(e);
    }
    return Promise.resolve();
  }

  /** Releases the backend's kernel objects at dispose (after every fd was forgotten). */
  protected release(): void {}

  // ---- operations ------------------------------------------------------------------------

  read(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.Read, fd, options);
    op.buf = clampLength(checkBuffer(buf, "read"));
    return this.submit(op, options);
  }

  readBorrowed(fd: number, options?: BorrowOptions): Promise<BorrowedBytes> {
    const max = checkBorrow(options);
    const op = this.#op(Kind.Read, fd, options);
    op.borrow = max;
    return this.submit(op, options);
  }

  write(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.Write, fd, options);
    op.buf = clampLength(checkBuffer(buf, "write"));
    return this.submit(op, options);
  }

  accept(fd: number, options?: OperationOptions): Promise<number> {
    return this.submit(this.#op(Kind.Accept, fd, options), options);
  }

  connect(fd: number, address: SocketAddress, options?: OperationOptions): Promise<void> {
    const op = this.#op(Kind.Connect, fd, options);
    op.sockaddr = checkAddress(address);
    op.address = address;
    return this.submit(op, options);
  }

  sendTo(fd: number, buf: Uint8Array, address: SocketAddress, options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.SendTo, fd, options);
    op.buf = clampLength(checkBuffer(buf, "sendTo", true));
    checkAddress(address);
    op.address = address;
    return this.submit(op, options);
  }

  receiveFrom(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<ReceiveFromResult> {
    const op = this.#op(Kind.ReceiveFrom, fd, options);
    op.buf = clampLength(checkBuffer(buf, "receiveFrom", true));
    return this.submit(op, options);
  }

  sendMessage(fd: number, bufs: readonly Uint8Array[], fds: readonly number[], options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.SendMessage, fd, options);
    op.bufs = clampTotal(checkBuffers(bufs, "sendMessage"));
    op.fds = checkPassedFds(fds);
    return this.submit(op, options);
  }

  receiveMessage(fd: number, buf: Uint8Array, maxFds: number, options?: OperationOptions): Promise<ReceivedMessage> {
    const op = this.#op(Kind.ReceiveMessage, fd, options);
    op.buf = clampLength(checkBuffer(buf, "receiveMessage", true));
    op.maxFds = checkMaxFds(maxFds);
    return this.submit(op, options);
  }

  waitReadable(fd: number, options?: OperationOptions): Promise<void> {
    return this.submit(this.#op(Kind.WaitReadable, fd, options), options);
  }

  waitWritable(fd: number, options?: OperationOptions): Promise<void> {
    return this.submit(this.#op(Kind.WaitWritable, fd, options), options);
  }

  overlapped(handle: number, start: (overlapped: bigint) => number, options?: OverlappedOptions): Promise<OverlappedResult> {
    if (typeof start !== "function") throw new TypeError("start must be a function (overlapped: bigint) => number");
    const offset = checkOffset(options?.offset);
    const op = this.#op(Kind.Overlapped, handle, options);
    if (!this.overlappedSupported) {
      return Promise.reject(new SystemError(ERRNO.EOPNOTSUPP, "overlapped", `overlapped operations are Windows' (the iocp backend), not ${this.backend}'s`));
    }
    op.start = start;
    op.offset = offset;
    return this.submit(op, options);
  }

  /** Whether the backend runs `overlapped` operations (IOCP). */
  protected get overlappedSupported(): boolean {
    return false;
  }

  close(fd: number): Promise<void> {
    checkFd(fd);
    // A disposed loop forgot every fd and holds nothing in the kernel any more: the fd is only
    // the caller's, and closing it is close(2). Refusing would leak it (the handle has already
    // given up its number).
    if (this.disposed) {
      try {
        closeFd(fd);
      } catch (e) {
        return Promise.reject(e);
      }
      return Promise.resolve();
    }
    return this.closeFd(fd);
  }

  remove(fd: number): void {
    checkFd(fd);
    this.forget(fd);
  }

  busy(fd: number): boolean {
    checkFd(fd);
    const state = this.fds.get(fd);
    if (!state || state.removed) return false;
    return state.readers.head !== null || state.writers.head !== null || state.others.head !== null || this.holdsData(state);
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

  // ---- the loop --------------------------------------------------------------------------

  run(blocking: boolean, maxWait = -1): boolean {
    if (this.disposed) return false;
    if (this.pending === 0 && this.timers.size === 0) return false;
    let timeout = blocking ? this.timers.timeout(clock()) : 0;
    if (maxWait >= 0 && (timeout < 0 || timeout > maxWait)) timeout = maxWait;
    this.wait(timeout);
    this.timers.runDue(clock());
    return true;
  }

  /** A serialisable handle another thread can use to interrupt this loop. */
  get interruptHandle(): WakerHandle {
    return this.waker.handle;
  }

  /** Wakes a blocking `run`; from another thread, use `Waker.fromHandle(interruptHandle)`. */
  interrupt(): void {
    this.waker.wake();
  }

  /** How the loop is driven: by the host's event loop ("guest") or by `runMain` ("owner"). */
  get mode(): "guest" | "owner" {
    return this.guest ? "guest" : "owner";
  }

  dispose(): void {
    if (this.disposed) return;
    // Disposed from here on: nothing new starts, and the backend's release() knows not to
    // re-arm its own requests (io_uring's wake-up poll) while it waits for the kernel.
    this.disposed = true;
    for (const listener of this.#disposeListeners.splice(0)) listener();
    for (const fd of [...this.fds.keys()]) this.forget(fd);
    this.release();
    this.pending = this.refedPending = 0;
    for (const fail of [...this.#sleeps]) fail(new ClosedError("sleep", -1));
    this.timers.clear();
    this.changed();
    this.waker.close();
  }

  // ---- keep-alive ------------------------------------------------------------------------

  get hasRefedWork(): boolean {
    return !this.#unrefed && !this.disposed && (this.refedPending > 0 || this.timers.refCount > 0 || this.#holds > 0);
  }

  get hasDeferred(): boolean {
    return false;
  }

  get nextDeadline(): number | undefined {
    return this.timers.nextDeadline();
  }

  unref(): void {
    this.#unrefed = true;
    this.changed();
  }

  ref(): void {
    this.#unrefed = false;
    this.changed();
  }

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

  setRef(fd: number, ref: boolean): void {
    if (ref === !this.#unrefedFds.has(fd)) return;
    if (ref) this.#unrefedFds.delete(fd);
    else this.#unrefedFds.add(fd);
    const state = this.fds.get(fd);
    if (state) {
      for (const q of [state.readers, state.writers, state.others]) {
        for (let op = q.head; op; op = op.next) {
          if (op.refed !== ref) this.refedPending += ref ? 1 : -1;
          op.refed = ref;
        }
      }
    }
    this.changed();
  }

  onChange(listener: () => void): () => void {
    this.#listeners.push(listener);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  onDispose(listener: () => void): void {
    this.#disposeListeners.push(listener);
  }

  /** Tells the drivers that pending work may have changed. */
  protected changed(): void {
    const ls = this.#listeners;
    for (let i = 0; i < ls.length; i++) ls[i]!();
  }

  // ---- for backends ----------------------------------------------------------------------

  #op(kind: Kind, fd: number, options: OperationOptions | undefined): Op {
    if (this.disposed) throw new ClosedError(SYSCALL[kind], typeof fd === "number" ? fd : -1);
    checkFd(fd);
    checkOptions(options);
    const op = new this.#records.operation();
    op.kind = kind;
    op.fd = fd;
    return op;
  }

  /** Starts a checked operation (an already aborted signal rejects it before anything runs). */
  protected submit<T>(op: Op, options: OperationOptions | undefined): Promise<T> {
    if (options !== undefined) {
      const signal = options.signal;
      if (signal) {
        if (signal.aborted) return Promise.reject(signal.reason);
        op.signal = signal;
      }
      const timeout = options.timeout;
      if (timeout !== undefined) {
        op.timeoutMs = timeout;
        op.deadline = clock() + timeout;
      }
    }
    return this.begin<T>(op);
  }

  /** The fd's state, created on first use. */
  protected stateOf(fd: number): S {
    let state = this.fds.get(fd);
    if (!state) {
      state = new this.#records.fdState(fd);
      this.fds.set(fd, state);
    }
    return state;
  }

  /**
   * Parks `op`: its promise is created, it joins `queue` (none for an operation outside the
   * fd's two queues), its signal aborts it, and it counts as pending. The backend then starts
   * it, or leaves it waiting for its turn or for readiness.
   */
  protected park<T>(op: Op, queue: Queue<Op> | null): Promise<T> {
    const promise = new Promise<T>((resolve, reject) => {
      op.resolve = resolve as (value: never) => void;
      op.reject = reject;
    });
    if (queue !== null) queue.push(op);
    const signal = op.signal;
    if (signal !== null) {
      op.onAbort = () => this.cancel(op, signal.reason);
      signal.addEventListener("abort", op.onAbort, { once: true });
    }
    this.pending++;
    op.refed = !this.#unrefedFds.has(op.fd);
    if (op.refed) this.refedPending++;
    return promise;
  }

  /** Enforces `op`'s deadline with a heap timer (while nothing in the kernel does). */
  protected armTimer(op: Op): void {
    if (op.deadline === Infinity || op.timer !== null) return;
    op.timer = this.timers.add(op.deadline, () => {
      op.timer = null;
      this.cancel(op, new TimeoutError(SYSCALL[op.kind], op.timeoutMs));
    });
  }

  /** Stops the heap timer of `op` (its deadline is now enforced in the kernel, or moot). */
  protected disarmTimer(op: Op): void {
    if (op.timer === null) return;
    this.timers.cancel(op.timer);
    op.timer = null;
  }

  /** Completes a parked `op`: unlinks it, undoes its wiring, settles its promise. Idempotent. */
  protected settle(op: Op, ok: boolean, value: unknown): void {
    if (op.phase === Phase.Done) return;
    const queue = op.queue;
    const wasHead = queue !== null && queue.head === op;
    if (queue !== null) queue.unlink(op);
    value = this.finish(op, ok, value);
    op.phase = Phase.Done;
    this.pending--;
    if (op.refed) this.refedPending--;
    this.disarmTimer(op);
    if (op.onAbort !== null) op.signal!.removeEventListener("abort", op.onAbort);
    op.buf = null;
    op.bufs = null;
    if (ok) op.resolve(value as never);
    else op.reject(value);
    this.advance(op, queue, wasHead);
    if (this.refedPending === 0) this.changed();
  }

  /**
   * Forgets `fd`: cancels every operation on it with a ClosedError (each settles now, or when
   * the kernel gives it back) and lets the backend unregister it. Returns whether it was known.
   */
  protected forget(fd: number): boolean {
    this.#unrefedFds.delete(fd);
    const state = this.fds.get(fd);
    if (!state) return false;
    this.fds.delete(fd);
    state.removed = true;
    for (const q of [state.readers, state.writers, state.others]) {
      for (let op = q.head; op; ) {
        const next = op.next;
        this.cancel(op, new ClosedError(SYSCALL[op.kind], fd));
        op = next;
      }
    }
    this.detach(state);
    return true;
  }
}

/**
 * The {@link Drivable} side of a loop made by `createLoop`; throws a TypeError for any other
 * object (a hand-written EventLoop cannot be driven).
 */
export function drivable(loop: EventLoop): Drivable {
  if (!(loop instanceof CompletionLoop)) throw new TypeError("loop must be an event loop created by createLoop()");
  return loop;
}
