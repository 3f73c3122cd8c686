/**
 * FileDescriptor: adopt any pollable fd (a pipe, a tty, a char device, tun/tap, eventfd,
 * inotify, a socket made elsewhere) and drive it through the event loop.
 */
import type { OperationOptions } from "../loop/event-loop.js";
import { SystemError } from "../sys/errors.js";
import { isNonBlocking, setNonBlocking, statusFlags } from "../sys/posix/fd.js";
import { ERRNO } from "../sys/target.js";
import { loopOf, type HandleOptions } from "./handle.js";
import { Stream } from "./stream.js";
import { NO_WINDOWS_HANDLES } from "./unsupported.js";
import { isOpenSocket } from "../sys/windows/socket.js";
import { TARGET } from "../sys/target.js";
import { describeValue } from "../sys/args.js";

const IS_WINDOWS = TARGET.os === "win32";

/**
 * Options for {@link FileDescriptor.from}.
 *
 * @example
 * ```ts
 * const f = FileDescriptor.from(fd, { owned: false, loop });
 * ```
 */
export interface FileDescriptorOptions extends HandleOptions {
  /**
   * Whether the handle owns the fd (default true). An owned fd is closed by `close()`; an unowned
   * one (stdin, an fd another library still uses) is only forgotten by `close()`, and gets its
   * original blocking mode back.
   */
  owned?: boolean | undefined;
}

/**
 * Any pollable fd as a {@link Stream}, plus readiness waits.
 *
 * On Windows, which has no pollable file descriptors, it adopts sockets (SOCKET handles, which
 * the IOCP loop drives); for anything else `from` throws a SystemError with code EBADF that says
 * so.
 *
 * @example
 * ```ts
 * import { FileDescriptor } from "evloop";
 * const stdin = FileDescriptor.from(0, { owned: false });
 * for await (const chunk of stdin) process.stdout.write(chunk);
 * await stdin.close(); // forgets fd 0 and restores its blocking mode; does not close it
 * ```
 */
export class FileDescriptor extends Stream {
  readonly #owned: boolean;
  /** O_NONBLOCK as found on adoption, restored when the fd is handed back. */
  readonly #wasNonBlocking: boolean;

  private constructor(fd: number, options: FileDescriptorOptions, wasNonBlocking: boolean) {
    super(fd, loopOf(options.loop), "file descriptor", options.owned ?? true);
    this.#owned = options.owned ?? true;
    this.#wasNonBlocking = wasNonBlocking;
  }

  /**
   * Adopts `fd`: sets O_NONBLOCK on it (which the kernel keeps on the open file description, so
   * other processes sharing it, such as a shell sharing a tty, see the change until the fd is
   * released) and returns the handle. Throws a SystemError with code EBADF when `fd` is not open.
   *
   * @example
   * ```ts
   * const f = FileDescriptor.from(fd);
   * await f.waitReadable({ timeout: 1000 });
   * ```
   */
  static from(fd: number, options: FileDescriptorOptions = {}): FileDescriptor {
    if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
      throw new TypeError(`fd must be a non-negative integer file descriptor, got ${describeValue(fd)}`);
    }
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    if (options.owned !== undefined && typeof options.owned !== "boolean") throw new TypeError("owned must be a boolean");
    if (IS_WINDOWS) {
      // A SOCKET is the one handle evloop drives on Windows (IOCP needs no blocking mode).
      if (!isOpenSocket(fd)) {
        // EBADF, as for a closed fd elsewhere: on Windows only a socket is a descriptor here.
        throw new SystemError(ERRNO.EBADF, "getsockopt", `${fd} is not an open socket, and FileDescriptor adopts only sockets on Windows (${NO_WINDOWS_HANDLES})`);
      }
      return new FileDescriptor(fd, options, true);
    }
    try {
      statusFlags(fd);
    } catch (e) {
      if (e instanceof SystemError && e.code === "EBADF") throw new SystemError(ERRNO.EBADF, "fcntl", `fd ${fd} is not open`);
      throw e;
    }
    const wasNonBlocking = isNonBlocking(fd);
    setNonBlocking(fd, true);
    return new FileDescriptor(fd, options, wasNonBlocking);
  }

  /** Whether `close()` closes the fd (true) or only forgets it (false). */
  get owned(): boolean {
    return this.#owned;
  }

  /**
   * Resolves when the fd is readable (or at end of file / hang-up, where a read returns 0).
   *
   * @example
   * ```ts
   * await f.waitReadable({ signal: AbortSignal.timeout(500) });
   * ```
   */
  waitReadable(options?: OperationOptions): Promise<void> {
    if (this.closed) return this.rejectClosed("poll");
    try {
      return this.loop.waitReadable(this.fd, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Resolves when the fd is writable.
   *
   * @example
   * ```ts
   * await f.waitWritable();
   * ```
   */
  waitWritable(options?: OperationOptions): Promise<void> {
    if (this.closed) return this.rejectClosed("poll");
    try {
      return this.loop.waitWritable(this.fd, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Hands the fd back without closing it: pending operations reject with a ClosedError, the
   * original blocking mode is restored, and the handle becomes closed. Returns the fd, which
   * the caller must now close.
   *
   * @example
   * ```ts
   * const raw = f.release();
   * ```
   */
  release(): number {
    const fd = this.detach("release");
    this.#restoreMode(fd);
    return fd;
  }

  protected override closeFd(fd: number): Promise<void> {
    if (this.#owned) return super.closeFd(fd);
    this.loop.remove(fd);
    this.#restoreMode(fd);
    return Promise.resolve();
  }

  #restoreMode(fd: number): void {
    // Best effort: the fd may already have been closed behind our back, and giving it back must
    // not fail because of that.
    if (this.#wasNonBlocking) return;
    try {
      setNonBlocking(fd, false);
    } catch {
      // Nothing to restore on an fd that is gone.
    }
  }
}
