/**
 * What the Unix socket classes share: path and mode checks, binding with clear errors (and with
 * permission bits set without a race), removing the socket file a bind created, and fd passing
 * (SCM_RIGHTS) helpers.
 *
 * The file operations on paths here (stat, unlink, and for `mode` chmod, mkdtemp, link, rmdir) go
 * through node:fs's synchronous calls, not the sys layer: they run once per bind or close, never
 * per operation, so a synchronous call costs nothing that matters; every runtime evloop supports
 * (Node, Bun, Deno) provides node:fs; and its errors carry the errno name, which
 * {@link fsError} turns into evloop's SystemError. The one call on the socket's fd, fchmod, is
 * the sys layer's: node:fs's fchmodSync takes a Deno resource id on Deno, not an fd.
 */
import { chmodSync, linkSync, mkdtempSync, rmdirSync, statSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import type { EventLoop, OperationOptions } from "../loop/event-loop.js";
import { checkAddress } from "../loop/checks.js";
import { SystemError } from "../sys/errors.js";
import { fchmod } from "../sys/posix/fd.js";
import { bind } from "../sys/socket.js";
import type { UnixAddress } from "../sys/posix/sockaddr.js";
import { ERRNO, TARGET } from "../sys/target.js";
import type { HandleOptions } from "../io/handle.js";
import { formatAddress } from "./address.js";
import { annotate } from "./socket.js";
import { describeValue } from "../sys/args.js";

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
 * Options of the Unix binds ({@link UnixListener.bind}, {@link UnixDatagram.bind}): a path, and
 * the permission bits its socket file gets.
 *
 * @example
 * ```ts
 * await UnixDatagram.bind({ path: "/run/app/app.dgram", mode: 0o660 });
 * ```
 */
export interface UnixBindOptions extends UnixPathOptions {
  /**
   * Permission bits of the socket file (an integer from 0 to 0o777, such as 0o600): connecting
   * to (or sending to) a socket file takes write permission on it. Default: whatever the umask
   * leaves of 0o777. The file never exists with other bits, not even briefly (see
   * {@link bindPath}). Not for abstract names, which have no permissions.
   */
  mode?: number | undefined;
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
      throw new TypeError(`fds must be non-negative integer file descriptors, got ${describeValue(fd)}`);
    }
  }
  return fds as number[];
}

/** The name of the private directory a bind with `mode` creates beside the socket's path. */
const TEMP_PREFIX = ".evloop-";
/** What mkdtemp(3) appends to the prefix: six random characters in place of six X's. */
const TEMP_SUFFIX = "X".repeat(6);
/** The socket's name inside that directory. */
const TEMP_NAME = "s";

/**
 * Checks a bind's `mode` for `path`: undefined, or an integer from 0 to 0o777 (RangeError
 * otherwise), and only for a filesystem path: an abstract name has no permission bits to set.
 * Where a bind with `mode` goes through a temporary name (not on Linux, see {@link bindPath}),
 * also checks that the name fits in a socket address.
 *
 * @example
 * ```ts
 * const mode = checkMode(options.mode, address.path); // 0o600, or undefined
 * ```
 */
export function checkMode(mode: unknown, path: string): number | undefined {
  if (mode === undefined) return undefined;
  if (typeof mode !== "number" || !Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    throw new RangeError(`mode must be an integer from 0 to 0o777 (permission bits such as 0o600), got ${describeValue(mode)}`);
  }
  if (path.startsWith("\0")) {
    throw new TypeError("mode cannot be set on an abstract socket name: abstract names have no permissions (any process in the same network namespace can connect)");
  }
  checkAddress({ family: "unix", path });
  if (MODE_AT_BIND) return mode;
  const temp = join(dirname(path), TEMP_PREFIX + TEMP_SUFFIX, TEMP_NAME);
  try {
    checkAddress({ family: "unix", path: temp });
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new RangeError(`with mode, the socket is bound first as ${temp} (a private directory beside ${path}), which is too long for a socket address: ${e.message}`);
  }
  return mode;
}

/**
 * Whether bind(2) creates the socket file with the socket's own mode less the umask: Linux does
 * (net/unix/af_unix.c, `S_IFSOCK | (SOCK_INODE(sock)->i_mode & ~current_umask())`), so a
 * fchmod(2) of the socket before bind decides the file's bits race-free. The BSDs and macOS
 * use 0o777 less the umask whatever the socket's mode.
 */
const MODE_AT_BIND = TARGET.os === "linux";

/**
 * bind(2) to a unix address, with an EADDRINUSE message that says what to do about it. Returns
 * whether the kernel knows the socket by another name than `address` (see below).
 *
 * With `mode`, the socket file gets those permission bits without ever existing with others.
 * bind(2) creates the file with 0o777 less the umask, and a chmod after it would leave a window
 * in which anyone the umask admits can connect; changing the umask instead would change it for
 * every thread of the process.
 * - On Linux, the file is created with the socket's own mode less the umask: the socket is
 *   fchmod-ed to `mode` before bind(2), so the file never has a bit `mode` lacks, and the bits
 *   the umask took away are given back by a chmod afterwards, which only widens it to `mode`.
 * - Elsewhere the socket is bound inside a fresh private directory beside `path` (mkdtemp: mode
 *   0o700, so only this user can reach the name there), chmod-ed there, and only then linked to
 *   `path` by link(2), which fails with EEXIST instead of replacing an existing file (reported
 *   as bind's EADDRINUSE). The temporary name and directory are removed either way. The kernel
 *   keeps the name the socket was bound to, so getsockname(2) on it (and getpeername(2) on its
 *   peers, or a datagram's source address) shows the temporary name; the classes report the
 *   requested path as their own address.
 *
 * @example
 * ```ts
 * openSocket(C.AF_UNIX, C.SOCK_STREAM, (s) => bindPath(s, { family: "unix", path }, 0o600));
 * ```
 */
export function bindPath(fd: number, address: UnixAddress, mode?: number): boolean {
  if (mode === undefined || MODE_AT_BIND) {
    if (mode !== undefined) {
      try {
        fchmod(fd, mode);
      } catch (e) {
        throw annotate(e, formatAddress(address));
      }
    }
    try {
      bind(fd, address);
    } catch (e) {
      throw bindError(e, address);
    }
    if (mode !== undefined) {
      try {
        if ((statSync(address.path).mode & 0o777) !== mode) chmodSync(address.path, mode);
      } catch (e) {
        try {
          unlinkSync(address.path);
        } catch {
          // Gone already.
        }
        throw fsError(e, "chmod", address);
      }
    }
    return false;
  }
  bindRenamed(fd, address, mode);
  return true;
}

/** bindPath's way where bind(2) ignores the socket's mode: a private directory, then link(2). */
function bindRenamed(fd: number, address: UnixAddress, mode: number): void {
  const path = address.path;
  let dir: string;
  try {
    dir = mkdtempSync(join(dirname(path), TEMP_PREFIX));
  } catch (e) {
    throw fsError(e, "mkdtemp", address);
  }
  const temp = join(dir, TEMP_NAME);
  try {
    try {
      bind(fd, { family: "unix", path: temp });
    } catch (e) {
      throw bindError(e, address);
    }
    try {
      chmodSync(temp, mode);
    } catch (e) {
      throw fsError(e, "chmod", address);
    }
    try {
      linkSync(temp, path);
    } catch (e) {
      throw (e as NodeJS.ErrnoException).code === "EEXIST" ? bindError(new SystemError(ERRNO.EADDRINUSE, "bind"), address) : fsError(e, "link", address);
    }
  } finally {
    // Best effort: a name left behind here is in a directory only this user can reach.
    try {
      unlinkSync(temp);
    } catch {
      // Not created (bind failed) or already gone.
    }
    try {
      rmdirSync(dir);
    } catch {
      // Nothing else can have put files there (mode 0o700), so this does not fail in practice.
    }
  }
}

/** A bind failure with the address, or with what to do about EADDRINUSE. */
function bindError(e: unknown, address: UnixAddress): unknown {
  const abstract = address.path.startsWith("\0");
  const hint = abstract
    ? `the abstract name ${formatAddress(address)} is taken`
    : `${address.path} already exists; if no server uses it, it is a stale socket file to remove`;
  return annotate(e, e instanceof SystemError && e.code === "EADDRINUSE" ? hint : formatAddress(address));
}

/**
 * A node:fs error as evloop's SystemError (same errno name, naming `syscall` and the address);
 * anything else passes through.
 */
function fsError(e: unknown, syscall: string, address: UnixAddress): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const errno = code === undefined ? undefined : ERRNO[code];
  if (errno === undefined) return e;
  return annotate(new SystemError(errno, syscall), formatAddress(address));
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
