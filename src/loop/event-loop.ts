/**
 * The completion-style EventLoop contract (Crystal RFC 0007), which every backend implements and
 * every socket and fd class is built on. Operations take raw fds; each returns a Promise and
 * accepts `{ signal, timeout }`.
 *
 * Rules every backend keeps:
 * - `read`/`write` transfer at least one byte and return the count; `read` returns 0 at EOF.
 *   `readBorrowed` is `read` into memory the loop lends (empty `bytes` at EOF), in the same queue.
 * - A cancelled or timed-out operation never completes later: once its promise rejects, the
 *   kernel no longer holds its buffer and the buffer is not written. On a completion backend
 *   (io_uring) the rejection waits for the kernel's confirmation, and an operation that
 *   completed before the cancel reached it resolves with its result instead: nothing received
 *   or sent is ever unaccounted for.
 * - `close(fd)` rejects every pending operation on `fd` with a ClosedError (code EBADF) before
 *   the fd is closed; nothing hangs.
 * - Timeouts reject with a TimeoutError (code ETIMEDOUT); aborts with the signal's reason.
 * - Bad arguments throw (synchronously reject) TypeError/RangeError; failed syscalls reject with
 *   SystemError naming the syscall.
 * - fds are closed through `close(fd)`; one closed elsewhere must be `remove(fd)`d before its
 *   number is used again (epoll forgets closed fds silently, so a stale registration would
 *   otherwise leave operations on the reused number waiting).
 */
import type { SocketAddress } from "../sys/posix/sockaddr.js";
import type { ReceivedMessage } from "../sys/posix/socket.js";
import type { WakerHandle } from "../sys/wakeup.js";

/**
 * Options every operation accepts.
 *
 * @example
 * ```ts
 * const options: OperationOptions = { signal: AbortSignal.timeout(5000), timeout: 1000 };
 * await stream.read(buf, options);
 * ```
 */
export interface OperationOptions {
  /** Aborts the operation: it rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
  /** Milliseconds before the operation rejects with a TimeoutError (code ETIMEDOUT). */
  timeout?: number | undefined;
}

/**
 * Options of `readBorrowed`: `{ signal, timeout }` and the most bytes to take.
 *
 * @example
 * ```ts
 * const options: BorrowOptions = { maxBytes: 4096, timeout: 5000 };
 * const chunk = await loop.readBorrowed(fd, options);
 * ```
 */
export interface BorrowOptions extends OperationOptions {
  /** The most bytes one read may lend, from 1 to 65,536; default 16,384. */
  maxBytes?: number | undefined;
}

/**
 * Options of `overlapped`: `{ signal, timeout }` and the file offset to start at.
 *
 * @example
 * ```ts
 * const options: OverlappedOptions = { offset: 4096, timeout: 5000 };
 * ```
 */
export interface OverlappedOptions extends OperationOptions {
  /**
   * Written into the OVERLAPPED's Offset and OffsetHigh before `start` runs (files: where the
   * read or write begins); default 0. A non-negative integer below 2^53.
   */
  offset?: number | bigint | undefined;
}

/**
 * How an overlapped operation completed: the bytes it transferred and its status as a Win32
 * error code (0 for success; non-zero for one that completed with an error or a warning, such as
 * ERROR_MORE_DATA, 234, for part of a pipe message, or ERROR_BROKEN_PIPE, 109).
 *
 * @example
 * ```ts
 * const { bytes, status }: OverlappedResult = await loop.overlapped(handle, start);
 * ```
 */
export interface OverlappedResult {
  readonly bytes: number;
  readonly status: number;
}

/**
 * Bytes a read lent out of the loop's own memory (see `readBorrowed`). `bytes` stays valid until
 * `release()`; after it the memory is reused for other reads, so copy what must outlive it.
 * `release()` is idempotent; a borrow never released is never reused (on io_uring the loop then
 * has one provided buffer fewer), so release every one, also on error paths.
 *
 * @example
 * ```ts
 * const chunk: BorrowedBytes = await stream.readBorrowed();
 * try {
 *   if (chunk.bytes.byteLength > 0) await stream.writeAll(chunk.bytes);
 * } finally {
 *   chunk.release();
 * }
 * ```
 */
export interface BorrowedBytes {
  /** The bytes read; empty at end of stream. Do not transfer or detach `bytes.buffer`. */
  readonly bytes: Uint8Array;
  /** Gives the memory back to the loop. */
  release(): void;
}

/**
 * A datagram received by `receiveFrom`: `[count, source address]`.
 *
 * @example
 * ```ts
 * const [bytes, from]: ReceiveFromResult = await loop.receiveFrom(fd, buf);
 * ```
 */
export type ReceiveFromResult = [bytes: number, address: SocketAddress];

/**
 * The backends evloop knows (not all exist on every OS; see `probeBackends()`).
 *
 * @example
 * ```ts
 * const name: BackendName = "epoll";
 * createLoop({ backend: name });
 * ```
 */
export type BackendName = (typeof BACKEND_NAMES)[number];

/** Every backend name, for checking a name given at run time. */
export const BACKEND_NAMES = ["io_uring", "epoll", "poll", "blocking", "kqueue", "iocp"] as const;

/**
 * The completion-style event loop every backend implements. Socket classes are built on it; use
 * it directly for fds evloop has no class for.
 *
 * @example
 * ```ts
 * const loop = defaultLoop();
 * const n = await loop.read(fd, new Uint8Array(4096), { timeout: 1000 });
 * ```
 */
export interface EventLoop {
  /** The backend's name. */
  readonly backend: BackendName;

  /** Reads at least one byte into `buf`; resolves with the count, 0 at EOF. */
  read(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<number>;
  /**
   * Reads at least one byte into memory the loop lends, without a buffer of the caller's: on
   * io_uring the bytes are a view of the provided buffer the kernel received into (no copy);
   * elsewhere a buffer from the loop's pool, taken only once data is there. Either way an fd
   * waiting for data holds no buffer. Resolves with empty `bytes` at EOF. Reads and borrowed
   * reads on one fd share one queue, in order.
   */
  readBorrowed(fd: number, options?: BorrowOptions): Promise<BorrowedBytes>;
  /** Writes at least one byte of `buf`; resolves with the count. */
  write(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<number>;
  /** Accepts a connection on a listening socket; resolves with its fd (non-blocking, cloexec). */
  accept(fd: number, options?: OperationOptions): Promise<number>;
  /** Connects a socket to `address`; rejects with SystemError (ECONNREFUSED, …) or TimeoutError. */
  connect(fd: number, address: SocketAddress, options?: OperationOptions): Promise<void>;
  /** Sends one datagram to `address`; resolves with the bytes sent. */
  sendTo(fd: number, buf: Uint8Array, address: SocketAddress, options?: OperationOptions): Promise<number>;
  /** Receives one datagram; resolves with its size and source. */
  receiveFrom(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<ReceiveFromResult>;
  /** sendmsg(2): `bufs` gathered, `fds` passed with SCM_RIGHTS. Resolves with the bytes sent. */
  sendMessage(fd: number, bufs: readonly Uint8Array[], fds: readonly number[], options?: OperationOptions): Promise<number>;
  /** recvmsg(2) into `buf`, taking up to `maxFds` passed descriptors. */
  receiveMessage(fd: number, buf: Uint8Array, maxFds: number, options?: OperationOptions): Promise<ReceivedMessage>;
  /** Resolves when `fd` is readable (any pollable fd). */
  waitReadable(fd: number, options?: OperationOptions): Promise<void>;
  /** Resolves when `fd` is writable (any pollable fd). */
  waitWritable(fd: number, options?: OperationOptions): Promise<void>;
  /**
   * Windows (the iocp backend): runs an overlapped operation of the caller's on `handle` (any
   * handle opened for overlapped I/O: a file opened with FILE_FLAG_OVERLAPPED, a pipe, a device,
   * a socket), associating it with the loop's completion port on first use. `start` receives the
   * address of the operation's OVERLAPPED (native memory the loop owns, Offset fields already
   * set from `offset`), starts the call with it, and returns the Win32 error code of the call: 0
   * when it completed at once, 997 (ERROR_IO_PENDING) when it is in flight, anything else when it
   * failed (the promise then rejects with that error). The promise resolves with `{ bytes,
   * status }` when the completion arrives (or at once for a call that completed within it, in
   * skip-on-success mode), whatever the status; abort and timeout cancel it with CancelIoEx and
   * reject only once the kernel gave it back (one that completed first resolves). Any number may
   * be in flight on one handle. Memory: whatever the call hands the kernel (its buffer) must be
   * native memory or stay referenced until the promise settles, which is never before the kernel
   * is done with it. Other backends reject with EOPNOTSUPP.
   */
  overlapped(handle: number, start: (overlapped: bigint) => number, options?: OverlappedOptions): Promise<OverlappedResult>;
  /**
   * Rejects pending operations on `fd` with a ClosedError, forgets it, and closes it. On a
   * disposed loop (which forgot every fd) it is close(2): an fd is never left open.
   */
  close(fd: number): Promise<void>;
  /** Rejects pending operations on `fd` with a ClosedError and forgets it without closing it. */
  remove(fd: number): void;
  /**
   * Whether the loop holds anything for `fd`: an operation pending on it, or (io_uring's
   * multishot receive) a receive in the kernel or data received and not yet read. An fd handed
   * to another loop (`remove` here, adopted there) loses no byte only while this is false: the
   * data then waits in the kernel for the next loop's first read.
   */
  busy(fd: number): boolean;
  /** Resolves after `ms` milliseconds, driven by this loop's timers. */
  sleep(ms: number, options?: { signal?: AbortSignal | undefined }): Promise<void>;

  /**
   * Runs one iteration: waits for events (only if `blocking`), completes what became ready and
   * fires due timers. Returns false when nothing is registered or pending.
   */
  run(blocking: boolean): boolean;
  /** Wakes a blocking `run`. For another thread, send `interruptHandle` and use `Waker.fromHandle`. */
  interrupt(): void;
  /** A serialisable handle another thread can use to interrupt this loop. */
  readonly interruptHandle: WakerHandle;
  /** Whether pending work keeps the process alive (guest mode). */
  readonly hasRefedWork: boolean;
  /** Lets the process exit even while this loop has pending operations. */
  unref(): void;
  /** Undoes `unref()`. */
  ref(): void;
  /**
   * Whether operations pending on `fd` keep the process alive (default true). A listener's
   * `unref()` uses it, so an accept waiting forever does not hold the process open.
   */
  setRef(fd: number, ref: boolean): void;
  /**
   * Keeps the process alive while a handle (a listening socket) is open, like Node's servers;
   * returns the function that releases the hold (idempotent).
   */
  hold(): () => void;
  /** Closes the loop: pending operations reject with a ClosedError; fds are not closed. */
  dispose(): void;
}
