/**
 * BlockingEventLoop: for targets with no selector (Crystal's WASI case), every operation blocks
 * the thread until it completes.
 *
 * An operation tries its syscall; if the fd would block, it waits in poll(2) on that one fd for
 * at most the operation's timeout, then retries. Nothing is ever parked, so `run` only fires
 * timers (sleeping until the next one when `blocking`). Consequences users must know: while one
 * operation waits, nothing else on the thread runs — a client and a server in the same thread
 * deadlock, and an AbortSignal can only cancel an operation before it starts. It is the last
 * resort in `availableBackends()` and never chosen while another backend works.
 */
import { ClosedError, SystemError, TimeoutError, WOULD_BLOCK } from "../sys/errors.js";
import { C, ERRNO } from "../sys/target.js";
import { close as closeFd, read, write } from "../sys/posix/fd.js";
import { pollOne } from "../sys/posix/poll.js";
import { accept, connect, recvFrom, recvMsg, sendMsg, sendTo, socketError, type ReceivedMessage } from "../sys/posix/socket.js";
import type { SocketAddress } from "../sys/posix/sockaddr.js";
import { eventfdRead } from "../sys/linux/eventfd.js";
import type { BackendName, BorrowedBytes, BorrowOptions, EventLoop, OperationOptions, ReceiveFromResult } from "./event-loop.js";
import { BufferPool, checkBorrow, checkBuffer, checkBuffers, checkOptions, clock, LoopBase } from "./common.js";

const READ_EVENTS = C.POLLIN | C.POLLPRI | C.POLLRDHUP;
const WRITE_EVENTS = C.POLLOUT;

/**
 * The event loop of last resort: blocking syscalls, one operation at a time.
 *
 * @example
 * ```ts
 * const loop = createLoop({ backend: "blocking", guest: false });
 * const [r, w] = Pipe.create({ loop });
 * await w.write(new Uint8Array([7]));
 * await r.read(new Uint8Array(1)); // would block the thread if the pipe were empty
 * ```
 */
export class BlockingEventLoop extends LoopBase implements EventLoop {
  readonly backend: BackendName = "blocking";
  protected override get pendingCount(): number {
    return 0;
  }

  /**
   * Runs `attempt` until it does not return WOULD_BLOCK, waiting in poll(2) for `events` between
   * tries, within the operation's timeout.
   */
  #block<T>(syscall: string, fd: number, events: number, options: OperationOptions | undefined, attempt: () => T | typeof WOULD_BLOCK): Promise<T> {
    try {
      if (this.disposed) throw new ClosedError(syscall, fd);
      if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0) throw new TypeError(`fd must be a non-negative integer file descriptor, got ${String(fd)}`);
      checkOptions(options);
      if (options?.signal?.aborted) return Promise.reject(options.signal.reason);
      const deadline = options?.timeout === undefined ? Infinity : clock() + options.timeout;
      for (;;) {
        const result = attempt();
        if (result !== WOULD_BLOCK) return Promise.resolve(result as T);
        const left = deadline - clock();
        if (left <= 0) throw new TimeoutError(syscall, options!.timeout!);
        const revents = pollOne(fd, events, left === Infinity ? -1 : Math.ceil(left));
        if (revents & C.POLLNVAL) throw new SystemError(ERRNO.EBADF, syscall, `fd ${fd} is not open`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
  }

  read(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<number> {
    checkBuffer(buf, "read");
    return this.#block("read", fd, READ_EVENTS, options, () => read(fd, buf));
  }

  readBorrowed(fd: number, options?: BorrowOptions): Promise<BorrowedBytes> {
    const max = checkBorrow(options);
    const pool = this.#pool;
    return this.#block("read", fd, READ_EVENTS, options, () => {
      const backing = pool.take(max);
      const n = read(fd, max < backing.byteLength ? backing.subarray(0, max) : backing);
      if (n !== WOULD_BLOCK) return pool.lend(backing, n);
      pool.giveBack(0, backing);
      return WOULD_BLOCK;
    });
  }

  readonly #pool = new BufferPool();

  write(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<number> {
    checkBuffer(buf, "write");
    return this.#block("write", fd, WRITE_EVENTS, options, () => write(fd, buf));
  }

  accept(fd: number, options?: OperationOptions): Promise<number> {
    return this.#block("accept", fd, READ_EVENTS, options, () => accept(fd));
  }

  connect(fd: number, address: SocketAddress, options?: OperationOptions): Promise<void> {
    let started = false;
    return this.#block("connect", fd, WRITE_EVENTS, options, () => {
      if (!started) {
        started = true;
        if (connect(fd, address) !== WOULD_BLOCK) return undefined;
        return WOULD_BLOCK;
      }
      const err = socketError(fd);
      if (err !== 0) throw new SystemError(err, "connect");
      return undefined;
    });
  }

  sendTo(fd: number, buf: Uint8Array, address: SocketAddress, options?: OperationOptions): Promise<number> {
    checkBuffer(buf, "sendTo", true);
    return this.#block("sendto", fd, WRITE_EVENTS, options, () => sendTo(fd, buf, address));
  }

  receiveFrom(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<ReceiveFromResult> {
    checkBuffer(buf, "receiveFrom", true);
    return this.#block("recvfrom", fd, READ_EVENTS, options, () => {
      const r = recvFrom(fd, buf);
      return r === null ? WOULD_BLOCK : ([r.bytes, r.address] as ReceiveFromResult);
    });
  }

  sendMessage(fd: number, bufs: readonly Uint8Array[], fds: readonly number[], options?: OperationOptions): Promise<number> {
    checkBuffers(bufs, "sendMessage");
    return this.#block("sendmsg", fd, WRITE_EVENTS, options, () => sendMsg(fd, bufs, fds));
  }

  receiveMessage(fd: number, buf: Uint8Array, maxFds: number, options?: OperationOptions): Promise<ReceivedMessage> {
    checkBuffer(buf, "receiveMessage", true);
    return this.#block("recvmsg", fd, READ_EVENTS, options, () => recvMsg(fd, buf, maxFds) ?? WOULD_BLOCK);
  }

  waitReadable(fd: number, options?: OperationOptions): Promise<void> {
    return this.#block("poll", fd, READ_EVENTS, options, () => (pollOne(fd, READ_EVENTS, 0) ? undefined : WOULD_BLOCK));
  }

  waitWritable(fd: number, options?: OperationOptions): Promise<void> {
    return this.#block("poll", fd, WRITE_EVENTS, options, () => (pollOne(fd, WRITE_EVENTS, 0) ? undefined : WOULD_BLOCK));
  }

  setRef(_fd: number, _ref: boolean): void {
    // Nothing is ever pending between calls.
  }

  remove(_fd: number): void {
    // Nothing is ever parked or registered.
  }

  async close(fd: number): Promise<void> {
    closeFd(fd);
  }

  run(blocking: boolean): boolean {
    if (this.disposed || this.timers.size === 0) return false;
    const timeout = blocking ? this.timers.timeout(clock()) : 0;
    // Sleep in poll(2) on the wake eventfd, so interrupt() can cut the sleep short.
    if (timeout !== 0 && pollOne(this.wakeFd, C.POLLIN, timeout) !== 0) eventfdRead(this.wakeFd);
    this.timers.runDue(clock());
    return true;
  }

}
