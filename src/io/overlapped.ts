/**
 * `OverlappedHandle` wraps a Windows HANDLE opened for overlapped I/O — a file opened with
 * FILE_FLAG_OVERLAPPED, a pipe, a device, a handle another library made — driven by the loop's
 * completion port. The caller starts each operation with its own call (ReadFile, WriteFile,
 * DeviceIoControl, ConnectNamedPipe …) on the OVERLAPPED the loop hands it, and the promise
 * settles when the completion packet arrives: "an OVERLAPPED with a callback after it"
 * (`EventLoop.overlapped` says exactly how).
 *
 * Memory rule: the kernel writes a buffer until the operation's packet is in, and the promise
 * settles only then. So a buffer the call hands the kernel must be native memory, or a JS buffer
 * the caller keeps referenced (and does not transfer or resize) until the promise settles; a
 * cancelled operation also settles only after the kernel gave it back.
 *
 * Only the IOCP backend runs overlapped operations; on every other OS `from` throws a
 * SystemError EOPNOTSUPP.
 */
import type { OverlappedOptions, OverlappedResult } from "../loop/event-loop.js";
import { SystemError } from "../sys/errors.js";
import { ERRNO, TARGET } from "../sys/target.js";
import { Handle, loopOf, type HandleOptions } from "./handle.js";
import { describeValue } from "../sys/args.js";

/**
 * Options of {@link OverlappedHandle.from}.
 *
 * @example
 * ```ts
 * const options: OverlappedHandleOptions = { owned: false, loop };
 * ```
 */
export interface OverlappedHandleOptions extends HandleOptions {
  /** Whether `close()` closes the handle (CloseHandle); default true. */
  owned?: boolean | undefined;
}

/** A HANDLE value as the loop keeps it: a non-negative integer below 2^53 (every HANDLE is). */
function handleNumber(handle: unknown): number {
  const n = typeof handle === "bigint" && handle >= 0n && handle <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(handle) : handle;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n <= 0) {
    throw new TypeError(`handle must be a HANDLE (a positive integer or bigint), got ${describeValue(handle)}`);
  }
  return n;
}

/**
 * A Windows HANDLE opened for overlapped I/O, on an event loop's completion port.
 *
 * @example
 * ```ts
 * // h: a file opened with CreateFileW(…, FILE_FLAG_OVERLAPPED, …) through your own FFI;
 * // buf: native memory, or a buffer kept referenced until the promise settles.
 * const file = OverlappedHandle.from(h);
 * const { bytes, status } = await file.run((ov) => (ReadFile(h, buf, 4096, null, ov) ? 0 : GetLastError()), {
 *   offset: 8192,
 *   timeout: 5000,
 * });
 * await file.close();
 * ```
 */
export class OverlappedHandle extends Handle {
  readonly #owned: boolean;

  private constructor(handle: number, options: OverlappedHandleOptions) {
    super(handle, loopOf(options.loop), "handle", options.owned ?? true);
    this.#owned = options.owned ?? true;
  }

  /**
   * Wraps `handle` (associated with the loop's port at its first operation; Windows keeps that
   * association for the handle's life). Throws a TypeError for a value that is not a HANDLE, and
   * a SystemError EOPNOTSUPP off Windows.
   */
  static from(handle: number | bigint, options: OverlappedHandleOptions = {}): OverlappedHandle {
    if (TARGET.os !== "win32") {
      throw new SystemError(ERRNO.EOPNOTSUPP, "overlapped", "OverlappedHandle is Windows' (I/O completion ports); use FileDescriptor for fds");
    }
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    if (options.owned !== undefined && typeof options.owned !== "boolean") throw new TypeError("owned must be a boolean");
    return new OverlappedHandle(handleNumber(handle), options);
  }

  /** The HANDLE, as a bigint (0n once closed or released). */
  get handle(): bigint {
    return this.closed ? 0n : BigInt(this.fd);
  }

  /**
   * Runs one overlapped operation: `start` gets the OVERLAPPED's address and returns the Win32
   * error code of its call (0 done, 997 pending, else failed). Resolves with the bytes and the
   * completion's status (see `EventLoop.overlapped`); any number may be in flight at once.
   */
  run(start: (overlapped: bigint) => number, options?: OverlappedOptions): Promise<OverlappedResult> {
    if (this.closed) return this.rejectClosed("overlapped");
    try {
      return this.loop.overlapped(this.fd, start, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Forgets the handle without closing it: pending operations are cancelled and reject with a
   * ClosedError once the kernel gave them back. The handle stays associated with the loop's
   * port (Windows cannot undo that). Returns it, now the caller's.
   */
  release(): bigint {
    return BigInt(this.detach("release"));
  }

  protected override closeFd(fd: number): Promise<void> {
    // Pending operations are cancelled and waited for; then CloseHandle (when owned).
    if (this.#owned) return this.loop.close(fd);
    this.loop.remove(fd);
    return Promise.resolve();
  }
}
