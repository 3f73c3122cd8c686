/**
 * IocpEventLoop: the completion contract on Windows' I/O completion ports.
 *
 * Every socket the loop touches is associated with the loop's port once, in skip-on-success
 * mode where Windows allows it. An operation takes a slot (`records.ts`: its OVERLAPPED in
 * native memory, followed by what identifies it) and starts its overlapped call (`ops.ts`):
 * WSARecv, WSASend, WSARecvFrom, WSASendTo, AcceptEx, ConnectEx, or an AFD poll for
 * `waitReadable`/`waitWritable`. The call either completes at once (with skip-on-success: no
 * packet will come, so it settles now), fails at once (no packet either), or is pending: its
 * packet, dequeued by GetQueuedCompletionStatusEx, settles it. A call that succeeds at once on a
 * socket without skip-on-success still posts a packet, and only that packet settles it: each
 * operation is handled exactly once.
 *
 * Who waits. In owner mode `run(true)` blocks in GetQueuedCompletionStatusEx. In guest mode no
 * host loop can poll a port, so the guest driver has a helper thread wait for it
 * (`remoteWait()`): the helper dequeues packets into native memory, and the loop handles them
 * when the driver runs it.
 *
 * Order. As on io_uring, per socket and direction only the head of the queue is in the kernel;
 * the next starts when it settles, so bytes are never reordered.
 *
 * Cancellation is exact: an operation the kernel holds is cancelled with CancelIoEx (an AFD poll
 * with NtCancelIoFileEx) and settles only on its own packet: with its result if it completed
 * first, else with the reason (abort, timeout, close). Under Wine a socket closed with a receive
 * pending reports STATUS_HANDLES_CLOSED rather than STATUS_CANCELLED: every error on a cancelled
 * operation settles it with the reason. `close()` cancels everything on the socket, waits for
 * every packet, then closes it.
 *
 * Memory. The kernel writes an operation's slot and staging buffer until its packet is
 * dequeued; both are native and released only then, and never while dispose is still waiting
 * for packets. Data is copied between the staging buffer and the caller's buffer in JavaScript,
 * so no JavaScript memory is ever in the kernel's hands (a detached or resized buffer cannot be
 * written after it was freed).
 */
import { ClosedError, SystemError } from "../../sys/errors.js";
import { ERRNO, WIN, WIN_LAYOUT } from "../../sys/windows/constants.js";
import { dosError, winError } from "../../sys/windows/errors.js";
import { openAfd } from "../../sys/windows/afd.js";
import { nativeBlock, heapAlloc, heapFree, type NativeBlock } from "../../sys/windows/memory.js";
import { afdCancel, DONE, PENDING } from "../../sys/windows/overlapped.js";
import { cancelIo, CompletionPort, entriesView, readEntries, type Completion } from "../../sys/windows/port.js";
import { baseHandle, closeSocket, isOpenSocket } from "../../sys/windows/socket.js";
import { windows } from "../../sys/windows/api.js";
import type { BackendName } from "../event-loop.js";
import { checkFd, isDetached } from "../checks.js";
import { CompletionLoop, FAST_PATH_BUDGET, type LoopWaker, type RemoteWait } from "../completion.js";
import { BufferPool } from "../lending.js";
import { Kind, Phase, type Queue, SYSCALL } from "../operation.js";
import { clock } from "../timers.js";
import { debug } from "../debug.js";
import { discardAccepted, immediateBytes, pollEvents, result, start, type StartContext } from "./ops.js";
import { IocpFd, IocpOp, Records } from "./records.js";

/** The completion key of every socket's packets. */
const KEY_IO = 1;
/** The key of packets that only wake the loop (interrupt, the helper's stop). */
const KEY_WAKE = 2;
/** The key of the AFD device's packets (polls). */
const KEY_AFD = 3;



/** How long dispose waits for the kernel to give every operation back. */
const DISPOSE_WAIT_MS = 2000;

/** How long close() and remove() wait for the packets of their cancels. */
const COLLECT_MS = 20;

/** Packets the helper thread hands over per wake-up (guest mode). */
const REMOTE_CAPACITY = 128;

/** What guest mode's helper shares with the loop. */
interface Remote {
  readonly entries: bigint;
  readonly view: DataView;
  readonly state: Int32Array;
}

/**
 * Options of {@link IocpEventLoop} (`createLoop({ iocp })` passes them on).
 *
 * @example
 * ```ts
 * const loop = createLoop({ backend: "iocp", iocp: { skipOnSuccess: false } });
 * ```
 */
export interface IocpOptions {
  /**
   * Put sockets in skip-on-success mode (FILE_SKIP_COMPLETION_PORT_ON_SUCCESS), so an operation
   * that completes within its call posts no packet (default true). `false` makes every
   * operation complete through the port: slower, and the path the tests check besides.
   */
  readonly skipOnSuccess?: boolean;
}

/**
 * Counters for tests and tuning: how operations completed.
 *
 * @example
 * ```ts
 * const { inline, packets } = (loop as IocpEventLoop).stats;
 * ```
 */
export interface IocpStats {
  /** Operations that completed within their call (no packet: skip-on-success). */
  readonly inline: number;
  /** Operations completed by their packet. */
  readonly packets: number;
  /** Packets that named no operation in flight (should stay 0). */
  readonly stray: number;
}

/** Records of loops whose dispose timed out with operations in the kernel: kept forever. */
const leaked: unknown[] = [];

/** Whether IOCP works here: a port can be made and the AFD device opened. */
export function probeIocp(): string | undefined {
  const port = new CompletionPort(1);
  port.close();
  windows().kernel32.CloseHandle(openAfd());
  return undefined;
}

/**
 * The IOCP backend: Windows' I/O completion ports. Create it with `createLoop()` (the default
 * on Windows) or `createLoop({ backend: "iocp" })`.
 *
 * @example
 * ```ts
 * const loop = createLoop({ backend: "iocp" });
 * const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
 * ```
 */
export class IocpEventLoop extends CompletionLoop<IocpOp, IocpFd> {
  readonly backend: BackendName = "iocp";
  readonly #port: CompletionPort;
  readonly #records = new Records();
  readonly #pool = new BufferPool();
  readonly #completions: Completion[] = [];
  /** Sockets associated with the port, and whether each is in skip-on-success mode. */
  readonly #associated = new Map<number, boolean>();
  #afd = 0n;
  /** 16 bytes for NtCancelIoFileEx's own IO_STATUS_BLOCK. */
  #afdScratch: NativeBlock | null = null;
  #remote: Remote | null = null;
  /** Operations the kernel holds. */
  #inKernel = 0;
  /** Starts left this iteration before operations wait for the next (see FAST_PATH_BUDGET). */
  #budget = FAST_PATH_BUDGET;
  /** Heads of their queues that wait for the next iteration's budget. */
  #deferred: IocpOp[] = [];
  readonly #cx: StartContext;
  readonly #skip: boolean;
  #inline = 0;
  #packets = 0;
  #stray = 0;

  constructor(options: IocpOptions = {}) {
    if (options === null || typeof options !== "object") throw new TypeError("iocp options must be an object");
    if (options.skipOnSuccess !== undefined && typeof options.skipOnSuccess !== "boolean") throw new TypeError("skipOnSuccess must be a boolean");
    const port = new CompletionPort();
    const waker: LoopWaker = {
      handle: { kind: "iocp", port: Number(port.handle), key: KEY_WAKE },
      wake: () => port.post(KEY_WAKE),
      // The port is the loop's: release() closes it.
      close: () => {},
    };
    super(waker, { operation: IocpOp, fdState: IocpFd });
    this.#port = port;
    this.#skip = options.skipOnSuccess ?? true;
    this.#cx = {
      records: this.#records,
      afd: () => this.#afdHandle(),
      baseOf: (state) => (state.base >= 0n ? state.base : (state.base = baseHandle(state.fd))),
    };
    debug("iocp: port created");
  }

  protected override get overlappedSupported(): boolean {
    return true;
  }

  /** How operations completed so far (see {@link IocpStats}). */
  get stats(): IocpStats {
    return { inline: this.#inline, packets: this.#packets, stray: this.#stray };
  }

  watch(_listener: (fd: number, interest: number) => void): void {
    // A port is not an fd: a host loop cannot poll it. Guest mode uses remoteWait() instead.
  }

  wakeOn(_fd: number): void {
    // Windows' libuv loop has no fd to watch (its own wait is on a port, too).
  }

  ownFds(): number[] {
    // The port and the AFD device are handles, not fds: dispose closes them (release()).
    return [];
  }

  override remoteWait(): RemoteWait {
    if (this.#remote === null) {
      // SAFETY: the helper's GetQueuedCompletionStatusEx writes these entries; they are freed
      // only after the helper said it stopped (release()).
      const entries = heapAlloc(REMOTE_CAPACITY * WIN_LAYOUT.OVERLAPPED_ENTRY.size);
      this.#remote = { entries, view: entriesView(entries, REMOTE_CAPACITY), state: new Int32Array(new SharedArrayBuffer(16)) };
    }
    return { port: this.#port.handle, entries: this.#remote.entries, capacity: REMOTE_CAPACITY, state: this.#remote.state, wakeKey: KEY_WAKE };
  }

  override get hasDeferred(): boolean {
    return this.#deferred.length > 0;
  }

  override run(blocking: boolean, maxWait?: number): boolean {
    this.#budget = FAST_PATH_BUDGET;
    const remote = this.#remote;
    if (remote !== null && Atomics.load(remote.state, 0) > 0 && this.pending === 0 && this.timers.size === 0) {
      // The helper delivered a batch while the loop had nothing to do (a wake-up): take it, or
      // the helper would wait for that forever and no later packet would reach the loop.
      this.wait(0);
      return false;
    }
    return super.run(blocking, maxWait);
  }

  override remove(fd: number): void {
    checkFd(fd);
    // The socket stays associated with the port (Windows cannot undo that); its operations
    // settle when their cancelled packets arrive: within this call in the usual case.
    const state = this.fds.get(fd);
    if (this.forget(fd) && state !== undefined) this.#collect(() => state.inflight === 0);
  }

  // ---- hooks of the completion core ------------------------------------------------------

  protected begin<T>(op: IocpOp): Promise<T> {
    if (op.fds.length > 0 || op.maxFds > 0) {
      return Promise.reject(new SystemError(ERRNO.EOPNOTSUPP, SYSCALL[op.kind], "Windows passes no handles over sockets (SCM_RIGHTS is Unix-only)"));
    }
    let state = this.fds.get(op.fd);
    if (state?.closer) return Promise.reject(new ClosedError(SYSCALL[op.kind], op.fd));
    if (state === undefined) {
      state = this.stateOf(op.fd);
      try {
        this.#associate(state, SYSCALL[op.kind]);
      } catch (e) {
        this.fds.delete(op.fd);
        return Promise.reject(e);
      }
    }
    op.state = state;
    const queue = state.queueOf(op.kind);
    const promise = this.park<T>(op, queue);
    if (op.deadline !== Infinity) {
      this.armTimer(op);
      this.changed(); // the guest driver mirrors the earliest deadline with a host timer
    }
    // Overlapped operations do not wait for one another: each goes to the kernel at once.
    if (queue.head === op || op.kind === Kind.Overlapped) this.#start(op);
    if (op.phase !== Phase.Done && (this.pending === 1 || (op.refed && this.refedPending === 1))) this.changed();
    return promise;
  }

  protected wait(timeout: number): void {
    const deferred = this.#deferred;
    if (deferred.length > 0) {
      this.#deferred = [];
      for (const op of deferred) if (op.phase === Phase.Waiting && (op.queue?.head === op || op.kind === Kind.Overlapped)) this.#start(op);
      timeout = 0;
    }
    const got = this.#completions;
    got.length = 0;
    this.#dequeue(timeout, got);
    for (let i = 0; i < got.length; i++) this.#packet(got[i]!);
    got.length = 0;
  }

  /** Ends `op` early: at once while it waits in JS; through the kernel while the kernel holds it. */
  protected override cancel(op: IocpOp, reason: unknown): void {
    if (!this.cancelInKernel(op, reason)) return;
    const overlapped = this.#records.address(op.slot);
    try {
      if (op.kind === Kind.WaitReadable || op.kind === Kind.WaitWritable) afdCancel(this.#afd, overlapped, this.#scratch());
      else cancelIo(op.fd, overlapped);
    } catch (e) {
      // The handle is gone (closed behind the loop's back): its operations end on their own.
      debug(`iocp: cancel of ${SYSCALL[op.kind]} on ${op.fd} failed: ${String(e)}`);
    }
  }

  protected override finish(op: IocpOp, _ok: boolean, value: unknown): unknown {
    discardAccepted(op);
    this.#records.release(op);
    return value;
  }

  protected override advance(op: IocpOp, queue: Queue<IocpOp> | null, wasHead: boolean): void {
    const state = op.state;
    if (state === null || queue === null || !wasHead || state.removed || op.kind === Kind.Overlapped) return;
    const next = queue.head;
    if (next !== null && next.phase === Phase.Waiting) this.#start(next);
  }

  protected override closeFd(fd: number): Promise<void> {
    const state = this.fds.get(fd);
    if (state?.closer) return Promise.reject(new SystemError(ERRNO.EBADF, "close", `fd ${fd} is already being closed`));
    this.#associated.delete(fd);
    if (state === undefined) return this.#closeNow(fd);
    this.forget(fd);
    this.#collect(() => state.inflight === 0);
    if (state.inflight === 0) return this.#closeNow(fd);
    // Packets are due: close the socket when the last packet is in.
    const { op, promise } = this.parkClose(state);
    op.state = state;
    this.changed();
    return promise;
  }

  /** Dispose: waits (bounded) for every packet, stops the helper, frees the port and memory. */
  protected override release(): void {
    // dispose() forgot every fd, which cancelled their operations; packets are due for those
    // the kernel held, and for operations of fds removed earlier.
    const until = clock() + DISPOSE_WAIT_MS;
    while (this.#inKernel > 0 && clock() < until) this.wait(50);
    const clean = this.#inKernel === 0;
    if (!clean) debug(`iocp dispose: ${this.#inKernel} operations did not finish; their memory is kept`);
    for (const state of this.fds.values()) if (state.closer) this.#finishClose(state);
    const helperStopped = this.#stopRemote();
    if (this.#afd !== 0n) windows().kernel32.CloseHandle(this.#afd);
    this.#port.close();
    // SAFETY: native memory the kernel (or the helper) may still write is never freed.
    if (clean) {
      this.#records.free();
      if (this.#afdScratch) heapFree(this.#afdScratch.address);
    } else leaked.push(this.#records, this.#afdScratch);
    if (this.#remote !== null) {
      if (helperStopped) heapFree(this.#remote.entries);
      else leaked.push(this.#remote);
    }
  }

  // ---- an operation's life ---------------------------------------------------------------

  /**
   * Associates a socket the loop sees for the first time (or again, after `remove`) with the
   * port. Windows refuses a second association (ERROR_INVALID_PARAMETER): a socket this loop
   * associated before and then forgot is still its own, so that is fine; anything else belongs
   * to another port, and its packets would never come here. A number that was closed behind the
   * loop's back and reused by a new socket associates anew.
   */
  #associate(state: IocpFd, syscall: string): void {
    state.socket = isOpenSocket(state.fd);
    if (!state.socket) state.fileType = windows().kernel32.GetFileType(state.fd);
    let skip: boolean;
    try {
      skip = this.#port.associate(state.fd, KEY_IO, this.#skip);
    } catch (e) {
      const known = this.#associated.get(state.fd);
      if (e instanceof SystemError && e.errno === ERRNO.EINVAL && known !== undefined) {
        state.skip = known;
        return;
      }
      if (e instanceof SystemError && e.errno === ERRNO.EINVAL) {
        throw new SystemError(ERRNO.EINVAL, syscall, `socket ${state.fd} belongs to another completion port (another loop's)`);
      }
      throw e instanceof SystemError ? new SystemError(e.errno, syscall, e.errno === ERRNO.EBADF ? `${state.fd} is not an open socket or handle` : undefined) : e;
    }
    this.#associated.set(state.fd, skip);
    state.skip = skip;
  }

  /** Starts the operation at the head of its queue (or defers it past the budget). */
  #start(op: IocpOp): void {
    if (this.#budget <= 0) {
      this.#deferred.push(op);
      return;
    }
    this.#budget--;
    const state = op.state!;
    if (op.buf !== null && op.buf.byteLength === 0 && isDetached(op.buf)) {
      this.settle(op, false, new TypeError(`${SYSCALL[op.kind]}: buffer was detached while the operation was waiting`));
      return;
    }
    if (op.kind === Kind.Read && state.leftover !== null) {
      this.#serveLeftover(op, state, state.leftover);
      return;
    }
    op.attempted = true;
    this.#records.take(op);
    let rc: number;
    try {
      rc = start(op, state, this.#cx);
    } catch (e) {
      this.settle(op, false, e);
      return;
    }
    if (rc === PENDING || (rc === DONE && !state.skip)) {
      // In the kernel: its packet settles it.
      op.phase = Phase.InKernel;
      state.inflight++;
      this.#inKernel++;
      return;
    }
    this.#inline++;
    if (rc === DONE) this.#succeed(op, immediateBytes(this.#records, op));
    else this.#fail(op, rc, true);
  }

  /** A read served from bytes an earlier read received but could not deliver. */
  #serveLeftover(op: IocpOp, state: IocpFd, leftover: Uint8Array): void {
    const max = op.borrow > 0 ? op.borrow : op.buf!.byteLength;
    const n = Math.min(max, leftover.byteLength);
    state.leftover = n === leftover.byteLength ? null : leftover.subarray(n);
    if (op.borrow > 0) {
      this.settle(op, true, this.#lend(leftover.subarray(0, n)));
    } else {
      op.buf!.set(leftover.subarray(0, n));
      this.settle(op, true, n);
    }
  }

  /** A loan of a pool buffer holding a copy of `data`. */
  #lend(data: Uint8Array): unknown {
    const backing = this.#pool.take(data.byteLength);
    BufferPool.window(backing, data.byteLength).set(data);
    return this.#pool.lend(backing, data.byteLength);
  }

  /** One dequeued packet. */
  #packet(c: Completion): void {
    if (c.key === KEY_WAKE || c.overlapped === 0n) return;
    const op = this.#records.opAt(c.overlapped);
    if (op === null || op.phase !== Phase.InKernel) {
      this.#stray++;
      debug(`iocp: a packet for no operation (key ${c.key}, status 0x${c.status.toString(16)})`);
      return;
    }
    const state = op.state!;
    state.inflight--;
    this.#inKernel--;
    this.#packets++;
    op.phase = Phase.Waiting;
    if (op.kind === Kind.Overlapped) {
      // The caller's call: its status is the caller's to read, unless it was cancelled.
      if (op.cancelled && c.status !== 0) this.settle(op, false, op.cancelReason);
      else this.settle(op, true, { bytes: c.bytes, status: c.status === 0 ? 0 : dosError(c.status) });
    } else if (!state.socket && op.kind === Kind.Read && !op.cancelled && c.status !== 0 && this.#endOfPipe(op, dosError(c.status), c.bytes)) {
      // Handled: the end of the pipe (or file), or part of a message.
    } else if (c.status === 0 || (c.status === WIN.STATUS_BUFFER_OVERFLOW && (op.kind === Kind.ReceiveFrom || op.kind === Kind.ReceiveMessage))) {
      const overflow = c.status !== 0;
      if ((op.kind === Kind.WaitReadable || op.kind === Kind.WaitWritable) && pollEvents(this.#records, op) === 0) {
        // The poll ended without an event (cancelled): nothing happened.
        this.settle(op, false, op.cancelled ? op.cancelReason : new SystemError(ERRNO.EIO, "poll", "the AFD poll ended without an event"));
      } else this.#succeed(op, c.bytes, overflow);
    } else if (op.cancelled) {
      this.settle(op, false, op.cancelReason);
    } else {
      this.#fail(op, dosError(c.status), false);
    }
    if (state.inflight === 0 && state.closer !== null) this.#finishClose(state);
  }

  #succeed(op: IocpOp, bytes: number, truncated = false): void {
    let value: unknown;
    try {
      value = result(this.#records, op, bytes, truncated, (data) => this.#lend(data));
    } catch (e) {
      this.settle(op, false, e);
      return;
    }
    this.settle(op, true, value);
  }

  /**
   * A read of a pipe (or another handle that is not a socket) that ended with `code`: the other
   * end closed (ERROR_BROKEN_PIPE) or the end of a file (ERROR_HANDLE_EOF) is the end of the
   * stream, 0 bytes, like a socket's FIN; part of a message-mode pipe's message (ERROR_MORE_DATA)
   * is `bytes` of it, the rest coming with the next read. Returns false for any other error.
   */
  #endOfPipe(op: IocpOp, code: number, bytes: number): boolean {
    if (code === WIN.ERROR_BROKEN_PIPE || code === WIN.ERROR_HANDLE_EOF) this.#succeed(op, 0);
    else if (code === WIN.ERROR_MORE_DATA) this.#succeed(op, bytes);
    else return false;
    return true;
  }

  /** `op` failed with Winsock/Win32 error `code` (`now`: within its call, no packet). */
  #fail(op: IocpOp, code: number, now: boolean): void {
    if (op.kind === Kind.Read && !op.state!.socket && this.#endOfPipe(op, code, immediateBytes(this.#records, op))) return;
    if ((op.kind === Kind.ReceiveFrom || op.kind === Kind.ReceiveMessage) && (code === ERRNO.EMSGSIZE || code === WIN.ERROR_MORE_DATA)) {
      // A datagram larger than the buffer: Windows fills the buffer and fails; POSIX (and so
      // evloop) delivers the truncated datagram.
      this.#succeed(op, op.staged, true);
      return;
    }
    if (op.kind === Kind.Accept && !op.cancelled && !this.disposed && (code === WIN.ERROR_NETNAME_DELETED || code === 10054 || code === 10053)) {
      // The connection was reset before it was accepted: accept the next one instead.
      discardAccepted(op);
      this.#records.release(op);
      op.phase = Phase.Waiting;
      if (now) this.#deferred.push(op);
      else this.#start(op);
      return;
    }
    this.settle(op, false, winError(code, SYSCALL[op.kind]));
  }

  #finishClose(state: IocpFd): void {
    const op = state.closer!;
    state.closer = null;
    if (this.fds.get(state.fd) === state) this.fds.delete(state.fd);
    try {
      closeSocket(state.fd);
    } catch (e) {
      this.settle(op, false, e);
      return;
    }
    this.settle(op, true, undefined);
  }

  #closeNow(fd: number): Promise<void> {
    try {
      closeSocket(fd);
    } catch (e) {
      return Promise.reject(e);
    }
    return Promise.resolve();
  }

  /**
   * Takes the packets of the cancels just asked for, so that close() and remove() finish within
   * their call in the usual case (as on the other backends) even on a loop nobody is running:
   * waits at most COLLECT_MS. This thread may dequeue beside guest mode's helper: every packet
   * names its operation, whoever takes it.
   */
  #collect(done: () => boolean): void {
    if (done() || this.disposed) return;
    const got: Completion[] = [];
    const until = clock() + COLLECT_MS;
    for (let first = true; !done(); first = false) {
      const left = until - clock();
      if (!first && left <= 0) break;
      got.length = 0;
      this.#port.dequeue(first ? 0 : Math.max(1, Math.min(left, 5)), got);
      for (const c of got) this.#packet(c);
    }
  }

  /** Dequeues packets: from the port (owner mode), or from the helper thread (guest mode). */
  #dequeue(timeout: number, into: Completion[]): void {
    const remote = this.#remote;
    if (remote === null) {
      this.#port.dequeue(timeout, into);
      return;
    }
    const state = remote.state;
    if (timeout !== 0 && Atomics.load(state, 0) === 0) Atomics.wait(state, 0, 0, timeout < 0 ? undefined : timeout);
    const n = Atomics.load(state, 0);
    if (n <= 0) return;
    readEntries(remote.view, n, into);
    Atomics.store(state, 0, 0);
    Atomics.notify(state, 0);
  }

  /** Stops guest mode's helper; true once it said it stopped (or there is none). */
  #stopRemote(): boolean {
    const remote = this.#remote;
    if (remote === null) return true;
    const state = remote.state;
    Atomics.store(state, 1, 1);
    Atomics.store(state, 0, 0);
    Atomics.notify(state, 0);
    try {
      this.#port.post(KEY_WAKE);
    } catch {
      // The port is closing anyway; the helper's wait then fails and it stops.
    }
    // [2]: the helper sets 1 when it has stopped (bounded wait).
    Atomics.wait(state, 2, 0, 1000);
    return Atomics.load(state, 2) === 1;
  }

  #afdHandle(): bigint {
    if (this.#afd === 0n) {
      const afd = openAfd();
      try {
        // Polls always post a packet: no skip-on-success for the AFD handle.
        this.#port.associate(afd, KEY_AFD, false);
      } catch (e) {
        windows().kernel32.CloseHandle(afd);
        throw e;
      }
      this.#afd = afd;
    }
    return this.#afd;
  }

  #scratch(): bigint {
    this.#afdScratch ??= nativeBlock(16);
    return this.#afdScratch.address;
  }
}
