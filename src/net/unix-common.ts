/**
 * What the Unix socket classes share: path checks, binding with clear errors, removing the
 * socket file a bind created, and fd passing (SCM_RIGHTS) helpers.
 */
import { statSync, unlinkSync } from "node:fs";
import type { EventLoop, OperationOptions } from "../loop/event-loop.js";
import { SystemError } from "../sys/errors.js";
import { bind } from "../sys/posix/socket.js";
import type { UnixAddress } from "../sys/posix/sockaddr.js";
import type { HandleOptions } from "../io/handle.js";
import { formatAddress } from "./address.js";
import { annotate } from "./socket.js";

/**
 * Options naming a socket path (a filesystem path, or "\0name" for an abstract name).
 *
 * @example
 * ```ts
 * await UnixDatagram.bind({ path: "\0my-abstract-name" });
 * ```
 */
export interface UnixPathOptions extends HandleOptions {
  path: string;
}

/**
 * What {@link UnixStream.receiveFds} resolves with. The caller owns (and must close) `fds`.
 *
 * @example
 * ```ts
 * const { bytes, fds, truncated }: ReceivedFds = await conn.receiveFds(buf, 4);
 * ```
 */
export interface ReceivedFds {
  /** Bytes of data received (0 at end of stream, for a stream socket). */
  bytes: number;
  /** Descriptors received, close-on-exec. */
  fds: number[];
  /** True when more descriptors (or datagram bytes) arrived than fit: the kernel closed the rest. */
  truncated: boolean;
}

/**
 * SCM_MAX_FD: the most descriptors one message may carry on Linux.
 *
 * @example
 * ```ts
 * if (fds.length > MAX_FDS) throw new RangeError("too many fds");
 * ```
 */
export const MAX_FDS = 253;

/**
 * Checks a socket path: a non-empty string. Length limits are checked when it is encoded.
 *
 * @example
 * ```ts
 * const address: UnixAddress = { family: "unix", path: checkPath(options.path) };
 * ```
 */
export function checkPath(path: unknown): string {
  if (typeof path !== "string") throw new TypeError(`path must be a string, got ${typeof path}`);
  if (path === "" || path === "\0") throw new TypeError("path must not be empty");
  return path;
}

/**
 * Checks a list of fds to pass: at most {@link MAX_FDS} non-negative integers.
 *
 * @example
 * ```ts
 * checkFds([3, 4]);
 * ```
 */
export function checkFds(fds: unknown): readonly number[] {
  if (!Array.isArray(fds)) throw new TypeError("fds must be an array of file descriptors");
  if (fds.length > MAX_FDS) throw new RangeError(`at most ${MAX_FDS} fds can be sent at once, got ${fds.length}`);
  for (const fd of fds) {
    if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
      throw new TypeError(`fds must be non-negative integer file descriptors, got ${String(fd)}`);
    }
  }
  return fds as number[];
}

/**
 * bind(2) to a unix address, with an EADDRINUSE message that says what to do about it.
 *
 * @example
 * ```ts
 * openSocket(C.AF_UNIX, C.SOCK_STREAM, (s) => bindPath(s, { family: "unix", path }));
 * ```
 */
export function bindPath(fd: number, address: UnixAddress): void {
  try {
    bind(fd, address);
  } catch (e) {
    const abstract = address.path.startsWith("\0");
    const hint = abstract
      ? `the abstract name ${formatAddress(address)} is taken`
      : `${address.path} already exists; if no server uses it, it is a stale socket file to remove`;
    throw annotate(e, e instanceof SystemError && e.code === "EADDRINUSE" ? hint : formatAddress(address));
  }
}

/**
 * Remembers the socket file a bind created, and removes it later, only if it is still the same
 * file: another process may have replaced it (after removing ours) to start its own server.
 *
 * @example
 * ```ts
 * const file = SocketFile.after(path); // just after bind
 * file?.remove(); // on close
 * ```
 */
export class SocketFile {
  readonly #path: string;
  readonly #id: string;

  private constructor(path: string, id: string) {
    this.#path = path;
    this.#id = id;
  }

  /** Records `path` just after bind; null for an abstract name (there is no file). */
  static after(path: string): SocketFile | null {
    if (path.startsWith("\0")) return null;
    try {
      const st = statSync(path);
      return new SocketFile(path, `${st.dev}:${st.ino}`);
    } catch {
      return null;
    }
  }

  /** Removes the file if it is still the one the bind created. */
  remove(): void {
    try {
      const st = statSync(this.#path);
      if (`${st.dev}:${st.ino}` === this.#id) unlinkSync(this.#path);
    } catch {
      // Already gone, or no longer ours to remove.
    }
  }
}

/**
 * recvmsg(2) through the loop, shaped as {@link ReceivedFds}.
 *
 * @example
 * ```ts
 * const { bytes, fds } = await receiveFds(loop, fd, buf, 4);
 * ```
 */
export async function receiveFds(loop: EventLoop, fd: number, buf: Uint8Array, maxFds: number, options?: OperationOptions): Promise<ReceivedFds> {
  const m = await loop.receiveMessage(fd, buf, maxFds, options);
  return { bytes: m.bytes, fds: m.fds, truncated: m.truncated };
}
