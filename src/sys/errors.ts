/**
 * Errors from system calls, and the one place errno is read and EINTR is retried.
 *
 * EINTR policy: every wrapper goes through {@link call}, which repeats the call when a signal
 * interrupted it. All fds evloop creates are non-blocking, so a retry never waits longer than
 * the first attempt would have. Two exceptions, written where they are handled: the blocking
 * waits (epoll_wait, poll) return "no events" instead, so an owner-mode loop gets back to the
 * host, whose signal handlers (SIGTERM, SIGUSR2 …) only run between iterations; and connect,
 * whose interrupted connection goes on asynchronously.
 */
import { ffi } from "../ffi/runtime/load.js";
import { libc } from "./libc.js";
import { ERRNO } from "./target.js";

// The running target's table: the names are the same everywhere, the numbers are not (EAGAIN is
// 11 on Linux, 35 on macOS and the BSDs).
const NAMES: Record<number, string> = {};
for (const [name, value] of Object.entries(ERRNO)) NAMES[value] ??= name;

/** The symbolic name of an errno value (`ECONNREFUSED`), or `E<number>` when unknown. */
export function errnoName(errno: number): string {
  return NAMES[errno] ?? `E${errno}`;
}

const TEXTS = new Map<number, string>();

/**
 * The texts of the errors sockets meet, for where no C library gives them (Windows, whose CRT
 * has no strerror for Winsock's numbers): glibc's wording, in lower case.
 */
const FALLBACK_TEXTS: Readonly<Record<string, string>> = {
  EACCES: "permission denied", EADDRINUSE: "address already in use", EADDRNOTAVAIL: "cannot assign requested address",
  EAFNOSUPPORT: "address family not supported by protocol", EAGAIN: "resource temporarily unavailable",
  EALREADY: "operation already in progress", EBADF: "bad file descriptor", ECANCELED: "operation canceled",
  ECONNABORTED: "software caused connection abort", ECONNREFUSED: "connection refused", ECONNRESET: "connection reset by peer",
  EDESTADDRREQ: "destination address required", EFAULT: "bad address", EHOSTUNREACH: "no route to host",
  EINPROGRESS: "operation now in progress", EINTR: "interrupted system call", EINVAL: "invalid argument", EIO: "input/output error",
  EISCONN: "transport endpoint is already connected", EMFILE: "too many open files", EMSGSIZE: "message too long",
  ENETDOWN: "network is down", ENETUNREACH: "network is unreachable", ENOBUFS: "no buffer space available",
  ENOMEM: "cannot allocate memory", ENOPROTOOPT: "protocol not available", ENOTCONN: "transport endpoint is not connected",
  ENOTSOCK: "socket operation on non-socket", EOPNOTSUPP: "operation not supported", EPIPE: "broken pipe",
  EPROTONOSUPPORT: "protocol not supported", ESHUTDOWN: "cannot send after transport endpoint shutdown",
  ETIMEDOUT: "connection timed out",
};

/**
 * The C library's text for `errno` (strerror), in the lower case of Node's own messages
 * ("connection refused"); cached, since errors come in storms. Where no C library loaded
 * (Windows), a built-in text for the common socket errors, else the errno's name, stands in.
 */
export function errnoText(errno: number): string {
  let text = TEXTS.get(errno);
  if (text === undefined) {
    let raw: string | null = null;
    try {
      raw = libc.strerror(errno);
    } catch {
      // No C library: the name is all there is.
    }
    text = raw ? raw.charAt(0).toLowerCase() + raw.slice(1) : (FALLBACK_TEXTS[errnoName(errno)] ?? errnoName(errno));
    TEXTS.set(errno, text);
  }
  return text;
}

/**
 * A failed system call: `code` is the errno name (`ECONNREFUSED`), `errno` its number and
 * `syscall` the call that failed, as in Node's own errors.
 *
 * @example
 * ```ts
 * try {
 *   await TcpStream.connect({ host: "127.0.0.1", port: 1 });
 * } catch (e) {
 *   if (e instanceof SystemError && e.code === "ECONNREFUSED") console.log("nobody listens");
 * }
 * ```
 */
export class SystemError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;

  constructor(errno: number, syscall: string, detail?: string) {
    const code = errnoName(errno);
    super(`${syscall} ${code}: ${detail ?? errnoText(errno)}`);
    this.name = "SystemError";
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

/**
 * An operation that did not complete within its `timeout`: code `ETIMEDOUT`.
 *
 * @example
 * ```ts
 * await stream.read(buf, { timeout: 100 }).catch((e) => e instanceof TimeoutError); // true if idle
 * ```
 */
export class TimeoutError extends SystemError {
  constructor(syscall: string, ms: number) {
    super(ERRNO.ETIMEDOUT, syscall, `timed out after ${ms} ms`);
    this.name = "TimeoutError";
  }
}

/**
 * An operation that was pending when its fd was closed: code `EBADF`.
 *
 * @example
 * ```ts
 * const pending = stream.read(buf);
 * await stream.close();
 * await pending.catch((e) => e instanceof ClosedError); // true
 * ```
 */
export class ClosedError extends SystemError {
  constructor(syscall: string, fd: number) {
    super(ERRNO.EBADF, syscall, fd < 0 ? "the event loop was disposed" : `fd ${fd} was closed while the operation was pending`);
    this.name = "ClosedError";
  }
}

/** Returned by non-blocking wrappers instead of throwing when the call would block. */
export const WOULD_BLOCK = -1;

/**
 * Result of a blocking wait (epoll_wait, poll): the count, or 0 when a signal interrupted it.
 */
export function waited(ret: number, syscall: string): number {
  if (ret >= 0) return ret;
  const e = ffi.errno();
  if (e === ERRNO.EINTR) return 0;
  throw new SystemError(e, syscall);
}

/** errno of the last failed call. */
export const errno = (): number => ffi.errno();

/**
 * Calls `fn(...args)`, retrying on EINTR. Returns the result when it is ≥ 0; when the call fails
 * with EAGAIN/EWOULDBLOCK (or EINPROGRESS, for connect) and `wouldBlock` is true, returns
 * {@link WOULD_BLOCK}; otherwise throws a {@link SystemError} naming `syscall`.
 */
export function call<A extends unknown[]>(
  syscall: string,
  wouldBlock: boolean,
  fn: (...args: A) => number,
  ...args: A
): number {
  for (;;) {
    const ret = fn(...args);
    if (ret >= 0) return ret;
    const e = ffi.errno();
    if (e === ERRNO.EINTR) continue;
    if (wouldBlock && (e === ERRNO.EAGAIN || e === ERRNO.EINPROGRESS)) return WOULD_BLOCK;
    throw new SystemError(e, syscall);
  }
}
