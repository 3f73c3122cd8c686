/**
 * PollingEventLoop: the completion contract built on a readiness selector (epoll, poll).
 *
 * Design (Crystal's `Polling` base is the model): every operation first tries its syscall on the
 * non-blocking fd. Only when the kernel says it would block is an operation record parked on
 * the fd's reader or writer queue; the fd is registered with the selector once, for both
 * directions, on its first park and stays registered until `close`/`remove`. When the selector
 * reports a direction ready, the queue's operations retry in FIFO order until one would block
 * again. An event is therefore only a hint: a spurious one costs a syscall that reports EAGAIN,
 * never a wrong result, which is also why a stale event for a reused fd number is harmless.
 *
 * Cancellation is exact: a parked operation is not in the kernel, so abort, timeout and close
 * just unlink it and reject; its buffer is never written afterwards.
 *
 * Backends differ only in the selector and in {@link SelectorHooks.rearm}: epoll is
 * edge-triggered and needs nothing, the poll(2) selector re-arms a direction after would-block.
 */
import { ClosedError, SystemError, TimeoutError, WOULD_BLOCK } from "../sys/errors.js";
import { C, ERRNO } from "../sys/target.js";
import { close as closeFd, read, write } from "../sys/posix/fd.js";
import { pollOne } from "../sys/posix/poll.js";
import { accept, connect, recvFrom, recvMsg, sendMsg, sendTo, socketError, socketType, type ReceivedMessage } from "../sys/posix/socket.js";
import type { SocketAddress } from "../sys/posix/sockaddr.js";
import { eventfdRead } from "../sys/linux/eventfd.js";
import { Events, Interest, Ready } from "../selector/event.js";
import { MAX_TOKEN, type Selector } from "../selector/selector.js";
import { TimerHeap, type Timer } from "./timers.js";
import type { BackendName, BorrowedBytes, BorrowOptions, EventLoop, OperationOptions, ReceiveFromResult } from "./event-loop.js";
import { BufferPool, checkBorrow, checkBuffer, checkBuffers, clock, isDetached, LoopBase } from "./common.js";
import { checkOperation, isReader, Kind, markRefed, Queue, SYSCALL } from "./operations.js";

const WAKER_TOKEN = MAX_TOKEN - 1;

/**
 * Operations that may complete at once, without a loop iteration, per iteration. A transfer
 * whose every syscall succeeds would otherwise resolve promise after promise in microtasks and
 * starve the host's timers and I/O (guest mode) forever; past the budget an operation waits for
 * the next iteration, like any Node socket callback.
 */
const FAST_PATH_BUDGET = 128;

/** A parked operation: everything needed to retry its syscall and settle its promise. */
class Operation {
  kind: Kind = Kind.Read;
  fd = -1;
  // SAFETY: the buffers stay referenced here while the operation is parked; the syscall that
  // writes or reads them only runs synchronously from `attempt`, never after the op is unlinked.
  buf: Uint8Array | null = null;
  bufs: readonly Uint8Array[] | null = null;
  fds: readonly number[] | null = null;
  address: SocketAddress | null = null;
  maxFds = 0;
  /** A borrowed read's `maxBytes` (its buffer comes from the pool when it is attempted); else 0. */
  borrow = 0;
  /** For connect: whether connect(2) was called (later attempts read SO_ERROR instead). */
  started = false;
  resolve: (value: never) => void = noop;
  reject: (reason: unknown) => void = noop;
  timer: Timer | null = null;
  timeoutMs = 0;
  signal: AbortSignal | null = null;
  onAbort: (() => void) | null = null;
  queue: Queue<Operation> | null = null;
  /** Whether this operation keeps the process alive (its fd is not unref'd). */
  refed = true;
  prev: Operation | null = null;
  next: Operation | null = null;
}

function noop(): void {}

/** Per-fd state: the two queues and whether the selector knows the fd. */
class FdState {
  readonly readers = new Queue<Operation>();
  readonly writers = new Queue<Operation>();
  registered = false;
  /**
   * For stream sockets only: whether the fd may still have data to read / room to write. A short
   * read or write of a stream socket means it is drained / full, so the next operation parks
   * at once and waits for the selector's next edge instead of spending a syscall on EAGAIN
   * (tokio does the same). Packet fds (tun, datagrams, SEQPACKET) are excluded: a short read
   * there says nothing about the next packet. Once the selector has reported the peer's FIN or
   * an error, reads are always tried: a short read can leave the EOF itself pending, and its
   * edge has already been seen.
   */
  readonly stream: boolean;
  readable = true;
  writable = true;
  readClosed = false;

  constructor(readonly fd: number) {
    let stream = false;
    try {
      stream = socketType(fd) === C.SOCK_STREAM;
    } catch {
      // Not a socket (pipe, char device, eventfd): always try the syscall first.
    }
    this.stream = stream;
  }
}

/** Hooks a selector-specific loop may provide. */
export interface SelectorHooks {
  /** Called after an operation found `fd` not ready in `interest` (poll(2) re-arms here). */
  rearm?(fd: number, interest: number): void;
}

/**
 * The completion-style loop over a readiness selector (epoll or poll). Create it with
 * `createLoop({ backend: "epoll" })`, which also attaches the driver.
 *
 * @example
 * ```ts
 * const loop = createLoop({ backend: "poll" });
 * const [r, w] = Pipe.create({ loop });
 * await loop.write(w.fd, new Uint8Array([1]));
 * await loop.waitReadable(r.fd);
 * ```
 */
export class PollingEventLoop extends LoopBase implements EventLoop {
  readonly backend: BackendName;
  readonly #selector: Selector;
  readonly #hooks: SelectorHooks;
  readonly #events = new Events(1024);
  readonly #fds = new Map<number, FdState>();
  /** Buffers for borrowed reads. */
  readonly #pool = new BufferPool();
  #pending = 0;
  /** Parked operations on fds that keep the process alive. */
  #refedPending = 0;
  readonly #unrefedFds = new Set<number>();
  #budget = FAST_PATH_BUDGET;
  /** Queues holding an operation deferred by the budget: retried by the next `run`. */
  #deferred: Queue<Operation>[] = [];

  constructor(backend: BackendName, selector: Selector, hooks: SelectorHooks = {}) {
    super();
    this.backend = backend;
    this.#selector = selector;
    this.#hooks = hooks;
    selector.register(this.wakeFd, WAKER_TOKEN, Interest.READABLE);
  }

  /** The selector's pollable fd (-1 for poll(2)); guest mode hands it to the host loop. */
  override get selectorFd(): number {
    return this.#selector.fd;
  }

  /** For selectors without an fd: the fds a host loop must watch (see `Selector.watch`). */
  watch(listener: (fd: number, interest: number) => void): boolean {
    if (!this.#selector.watch) return false;
    this.#selector.watch(listener);
    return true;
  }

  protected override get pendingCount(): number {
    return this.#refedPending;
  }

  setRef(fd: number, ref: boolean): void {
    if (ref === !this.#unrefedFds.has(fd)) return;
    if (ref) this.#unrefedFds.delete(fd);
    else this.#unrefedFds.add(fd);
    const state = this.#fds.get(fd);
    if (state) this.#refedPending += markRefed([state.readers, state.writers], ref);
    this.changed();
  }

  // ---- operations ------------------------------------------------------------------------

  read(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.Read, fd, options);
    op.buf = checkBuffer(buf, "read");
    return this.#start(op, options);
  }

  readBorrowed(fd: number, options?: BorrowOptions): Promise<BorrowedBytes> {
    const max = checkBorrow(options);
    const op = this.#op(Kind.Read, fd, options);
    op.borrow = max;
    return this.#start(op, options);
  }

  write(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.Write, fd, options);
    op.buf = checkBuffer(buf, "write");
    return this.#start(op, options);
  }

  accept(fd: number, options?: OperationOptions): Promise<number> {
    return this.#start(this.#op(Kind.Accept, fd, options), options);
  }

  connect(fd: number, address: SocketAddress, options?: OperationOptions): Promise<void> {
    const op = this.#op(Kind.Connect, fd, options);
    op.address = address;
    return this.#start(op, options);
  }

  sendTo(fd: number, buf: Uint8Array, address: SocketAddress, options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.SendTo, fd, options);
    op.buf = checkBuffer(buf, "sendTo", true);
    op.address = address;
    return this.#start(op, options);
  }

  receiveFrom(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<ReceiveFromResult> {
    const op = this.#op(Kind.ReceiveFrom, fd, options);
    op.buf = checkBuffer(buf, "receiveFrom", true);
    return this.#start(op, options);
  }

  sendMessage(fd: number, bufs: readonly Uint8Array[], fds: readonly number[], options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.SendMessage, fd, options);
    op.bufs = checkBuffers(bufs, "sendMessage");
    op.fds = fds;
    return this.#start(op, options);
  }

  receiveMessage(fd: number, buf: Uint8Array, maxFds: number, options?: OperationOptions): Promise<ReceivedMessage> {
    const op = this.#op(Kind.ReceiveMessage, fd, options);
    op.buf = checkBuffer(buf, "receiveMessage", true);
    if (!Number.isInteger(maxFds) || maxFds < 0 || maxFds > 253) {
      throw new RangeError(`maxFds must be an integer from 0 to 253, got ${String(maxFds)}`);
    }
    op.maxFds = maxFds;
    return this.#start(op, options);
  }

  waitReadable(fd: number, options?: OperationOptions): Promise<void> {
    return this.#start(this.#op(Kind.WaitReadable, fd, options), options);
  }

  waitWritable(fd: number, options?: OperationOptions): Promise<void> {
    return this.#start(this.#op(Kind.WaitWritable, fd, options), options);
  }

  remove(fd: number): void {
    this.#unrefedFds.delete(fd);
    const state = this.#fds.get(fd);
    if (!state) return;
    this.#fds.delete(fd);
    for (const q of [state.readers, state.writers]) {
      for (let op = q.head; op; op = q.head) this.#settle(op, false, new ClosedError(SYSCALL[op.kind], fd));
    }
    if (state.registered) {
      try {
        this.#selector.deregister(fd);
      } catch {
        // Already closed elsewhere, or never accepted by the kernel: nothing left to forget.
      }
    }
  }

  async close(fd: number): Promise<void> {
    if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`fd must be a non-negative integer, got ${String(fd)}`);
    this.remove(fd);
    closeFd(fd);
  }

  // ---- the loop --------------------------------------------------------------------------

  run(blocking: boolean): boolean {
    if (this.disposed) return false;
    if (this.#pending === 0 && this.timers.size === 0) return false;
    this.#budget = FAST_PATH_BUDGET;
    const deferred = this.#deferred;
    const timeout = blocking && deferred.length === 0 ? this.timers.timeout(clock()) : 0;
    if (deferred.length > 0) {
      this.#deferred = [];
      for (const q of deferred) {
        const head = q.head;
        if (head) this.#drain(q, isReader(head.kind) ? Interest.READABLE : Interest.WRITABLE, this.#fds.get(head.fd));
      }
    }
    this.#selector.select(this.#events, timeout);
    for (const event of this.#events) {
      if (event.token === WAKER_TOKEN) {
        eventfdRead(this.wakeFd);
        this.#hooks.rearm?.(this.wakeFd, Interest.READABLE);
        continue;
      }
      const state = this.#fds.get(event.token);
      if (!state) continue;
      if (event.readiness & (Ready.READ_CLOSED | Ready.ERROR)) state.readClosed = true;
      if (event.readiness & (Ready.READABLE | Ready.PRIORITY)) {
        state.readable = true;
        this.#drain(state.readers, Interest.READABLE, state);
      }
      if (event.readiness & Ready.WRITABLE) {
        state.writable = true;
        this.#drain(state.writers, Interest.WRITABLE, state);
      }
    }
    this.timers.runDue(clock());
    return true;
  }

  override dispose(): void {
    if (this.disposed) return;
    for (const fd of [...this.#fds.keys()]) this.remove(fd);
    this.#selector.close();
    super.dispose();
  }

  // ---- internals -------------------------------------------------------------------------

  #op(kind: Kind, fd: number, options: OperationOptions | undefined): Operation {
    checkOperation(kind, fd, options, this.disposed);
    const op = new Operation();
    op.kind = kind;
    op.fd = fd;
    return op;
  }

  /** Tries the syscall once; parks the operation if it would block. */
  #start<T>(op: Operation, options: OperationOptions | undefined): Promise<T> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const state = this.#fds.get(op.fd);
    const queue = state && (isReader(op.kind) ? state.readers : state.writers);
    // Operations queued before this one keep their turn: do not jump the queue. connect(2)
    // itself must always be issued now; only its completion waits.
    const known = state !== undefined && state.stream && (op.kind === Kind.Read ? !state.readable : op.kind === Kind.Write && !state.writable);
    if (op.kind === Kind.Connect || (!queue?.head && !known && this.#budget > 0)) {
      this.#budget--;
      let result: unknown;
      try {
        result = this.#attempt(op, state);
      } catch (e) {
        return Promise.reject(e);
      }
      if (result !== WOULD_BLOCK_RESULT) return Promise.resolve(result as T);
    } else if (!queue?.head && !known) {
      const promise = this.#park<T>(op, options);
      if (op.queue) this.#deferred.push(op.queue);
      this.changed();
      return promise;
    }
    return this.#park<T>(op, options);
  }

  /** Whether operations wait for the next iteration although they may be ready (the budget). */
  override get hasDeferred(): boolean {
    return this.#deferred.length > 0;
  }

  #park<T>(op: Operation, options: OperationOptions | undefined): Promise<T> {
    let state = this.#fds.get(op.fd);
    if (!state) {
      state = new FdState(op.fd);
      this.#fds.set(op.fd, state);
    }
    if (!state.registered) {
      try {
        this.#selector.register(op.fd, op.fd, Interest.READABLE | Interest.WRITABLE);
      } catch (e) {
        if (!state.readers.head && !state.writers.head) this.#fds.delete(op.fd);
        if (e instanceof SystemError && e.code === "EPERM") {
          return Promise.reject(new SystemError(ERRNO.EPERM, SYSCALL[op.kind], `fd ${op.fd} cannot be polled (a regular file?)`));
        }
        return Promise.reject(e);
      }
      state.registered = true;
    }
    const promise = new Promise<T>((resolve, reject) => {
      op.resolve = resolve as (value: never) => void;
      op.reject = reject;
    });
    (isReader(op.kind) ? state.readers : state.writers).push(op);
    this.#hooks.rearm?.(op.fd, isReader(op.kind) ? Interest.READABLE : Interest.WRITABLE);
    const timeout = options?.timeout;
    if (timeout !== undefined) {
      op.timeoutMs = timeout;
      op.timer = this.timers.add(clock() + timeout, () => {
        op.timer = null;
        this.#settle(op, false, new TimeoutError(SYSCALL[op.kind], timeout));
      });
    }
    const signal = options?.signal;
    if (signal) {
      op.signal = signal;
      op.onAbort = () => this.#settle(op, false, signal.reason);
      signal.addEventListener("abort", op.onAbort, { once: true });
    }
    this.#pending++;
    op.refed = !this.#unrefedFds.has(op.fd);
    if (op.refed) this.#refedPending++;
    this.changed();
    return promise;
  }

  /** Retries queued operations in order until one would block. */
  #drain(queue: Queue<Operation>, interest: number, state: FdState | undefined): void {
    for (let op = queue.head; op; op = queue.head) {
      let result: unknown;
      try {
        result = this.#attempt(op, state);
      } catch (e) {
        this.#settle(op, false, e);
        continue;
      }
      if (result === WOULD_BLOCK_RESULT) {
        this.#hooks.rearm?.(op.fd, interest);
        return;
      }
      this.#settle(op, true, result);
    }
  }

  /** Unlinks a parked operation and settles it. */
  #settle(op: Operation, ok: boolean, value: unknown): void {
    if (!op.queue) return;
    op.queue.unlink(op);
    this.#pending--;
    if (op.refed) this.#refedPending--;
    if (op.timer) {
      this.timers.cancel(op.timer);
      op.timer = null;
    }
    if (op.signal && op.onAbort) op.signal.removeEventListener("abort", op.onAbort);
    op.buf = null;
    op.bufs = null;
    if (ok) op.resolve(value as never);
    else op.reject(value);
    if (this.#refedPending === 0) this.changed();
  }

  /** Runs the operation's syscall; returns its result or WOULD_BLOCK_RESULT. */
  #attempt(op: Operation, state: FdState | undefined): unknown {
    const fd = op.fd;
    // A buffer transferred away while the operation waited reads as 0 bytes long: without this
    // check a read would report a false EOF and a write 0 bytes written.
    if (op.buf !== null && op.buf.byteLength === 0 && isDetached(op.buf)) {
      throw new TypeError(`${SYSCALL[op.kind]}: buffer was detached while the operation was pending`);
    }
    switch (op.kind) {
      case Kind.Read: {
        // A borrowed read takes a buffer only now, and gives it back if nothing was there.
        const backing = op.borrow > 0 ? this.#pool.take(op.borrow) : null;
        const buf = backing === null ? op.buf! : op.borrow < backing.byteLength ? backing.subarray(0, op.borrow) : backing;
        const n = read(fd, buf);
        if (state?.stream && !state.readClosed && n < buf.byteLength && n !== 0) state.readable = false;
        if (backing === null) return orWouldBlock(n);
        if (n === WOULD_BLOCK) {
          this.#pool.giveBack(0, backing);
          return WOULD_BLOCK_RESULT;
        }
        return this.#pool.lend(backing, n);
      }
      case Kind.Write: {
        const n = write(fd, op.buf!);
        if (state?.stream && n === WOULD_BLOCK) state.writable = false;
        return orWouldBlock(n);
      }
      case Kind.Accept:
        return orWouldBlock(accept(fd));
      case Kind.Connect: {
        if (!op.started) {
          op.started = true;
          return connect(fd, op.address!) === WOULD_BLOCK ? WOULD_BLOCK_RESULT : undefined;
        }
        const err = socketError(fd);
        if (err !== 0) throw new SystemError(err, "connect");
        return undefined;
      }
      case Kind.SendTo:
        return orWouldBlock(sendTo(fd, op.buf!, op.address!));
      case Kind.ReceiveFrom: {
        const r = recvFrom(fd, op.buf!);
        return r === null ? WOULD_BLOCK_RESULT : ([r.bytes, r.address] as ReceiveFromResult);
      }
      case Kind.SendMessage:
        return orWouldBlock(sendMsg(fd, op.bufs!, op.fds!));
      case Kind.ReceiveMessage:
        return recvMsg(fd, op.buf!, op.maxFds) ?? WOULD_BLOCK_RESULT;
      case Kind.WaitReadable:
        return ready(fd, C.POLLIN | C.POLLPRI | C.POLLRDHUP);
      case Kind.WaitWritable:
        return ready(fd, C.POLLOUT);
    }
  }
}

const WOULD_BLOCK_RESULT = Symbol("would block");

function orWouldBlock(n: number): number | typeof WOULD_BLOCK_RESULT {
  return n === WOULD_BLOCK ? WOULD_BLOCK_RESULT : n;
}

/** Whether `fd` is ready now (one poll(2) with a zero timeout). */
function ready(fd: number, events: number): undefined | typeof WOULD_BLOCK_RESULT {
  const revents = pollOne(fd, events, 0);
  if (revents & C.POLLNVAL) throw new SystemError(ERRNO.EBADF, "poll", `fd ${fd} is not open`);
  return revents === 0 ? WOULD_BLOCK_RESULT : undefined;
}
