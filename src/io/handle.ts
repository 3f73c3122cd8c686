/**
 * The lifecycle every evloop handle shares (sockets, listeners, adopted fds): one owned fd, one
 * loop, an idempotent `close`, and a clear error for any use after close.
 *
 * Why the handle tracks "closed" itself instead of letting the kernel say EBADF: once an fd is
 * closed its number is free, and the next `socket()` or `open()` anywhere in the process may
 * reuse it. An operation on a stale handle must therefore never reach the kernel with that
 * number, or it would silently read from (or write to) someone else's file.
 */
import type { EventLoop } from "../loop/event-loop.js";
import { defaultLoop } from "../driver/create.js";
import { closeAtExit, keepAtExit } from "../driver/cleanup.js";
import { SystemError } from "../sys/errors.js";
import { ERRNO } from "../sys/target.js";

/**
 * Options every handle constructor accepts.
 *
 * @example
 * ```ts
 * const loop = createLoop({ backend: "poll" });
 * const [a, b] = UnixStream.pair({ loop });
 * ```
 */
export interface HandleOptions {
  /** The event loop that drives the handle's operations; default: `defaultLoop()`. */
  loop?: EventLoop | undefined;
}

/**
 * The loop a handle should use: `loop` when given, else the default loop.
 *
 * @example
 * ```ts
 * const loop = loopOf(options.loop); // options.loop, else defaultLoop()
 * ```
 */
export function loopOf(loop: EventLoop | undefined): EventLoop {
  if (loop === undefined) return defaultLoop();
  if (loop === null || typeof loop !== "object" || typeof loop.read !== "function") {
    throw new TypeError("loop must be an EventLoop");
  }
  return loop;
}

/**
 * The error for an operation on a handle that was already closed: code EBADF, like the kernel's,
 * but naming the handle instead of a (possibly reused) fd number.
 *
 * @example
 * ```ts
 * closedError("read", "socket").message; // "read EBADF: the socket is closed"
 * ```
 */
export function closedError(syscall: string, what: string): SystemError {
  return new SystemError(ERRNO.EBADF, syscall, `the ${what} is closed`);
}

/**
 * Base class of every handle: owns one fd on one loop.
 *
 * @example
 * ```ts
 * import { FileDescriptor } from "evloop";
 * await using f = FileDescriptor.from(0, { owned: false }); // a Handle
 * console.log(f.fd, f.closed);
 * ```
 */
export abstract class Handle implements AsyncDisposable {
  /** The loop this handle's operations run on. */
  readonly loop: EventLoop;
  #fd: number;
  #closing: Promise<void> | null = null;
  /** What the handle is called in error messages ("socket", "listener", "file descriptor"). */
  readonly #what: string;

  /**
   * An `owned` fd is closed by `close()`, and also when its thread goes away without closing it
   * (a Worker terminated or exiting: see `driver/cleanup.ts`) until `close` or `detach`.
   */
  protected constructor(fd: number, loop: EventLoop, what: string, owned = true) {
    this.#fd = fd;
    this.loop = loop;
    this.#what = what;
    if (owned) closeAtExit(fd);
  }

  /** The file descriptor, or -1 once the handle is closed or released. */
  get fd(): number {
    return this.#fd;
  }

  /** Whether `close()` or `release()` was called. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** The open fd; throws the "is closed" EBADF error (naming `syscall`) once closed. */
  protected openFd(syscall: string): number {
    if (this.#fd < 0) throw closedError(syscall, this.#what);
    return this.#fd;
  }

  /** A rejected promise with the "is closed" error, for async methods' fast path. */
  protected rejectClosed<T>(syscall: string): Promise<T> {
    return Promise.reject(closedError(syscall, this.#what));
  }

  /**
   * Called once, just before the fd is closed or released (release holds, unlink paths).
   * Must not throw.
   */
  protected onClose(): void {}

  /**
   * Closes the handle: pending operations reject with a ClosedError (code EBADF), then the fd is
   * closed. Calling it again returns the first call's promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    const fd = this.#fd;
    this.#fd = -1;
    this.onClose();
    // Before the close: the fd number is free for reuse as soon as it is closed.
    keepAtExit(fd);
    try {
      this.#closing = this.closeFd(fd);
    } catch (e) {
      this.#closing = Promise.reject(e);
    }
    return this.#closing;
  }

  /** How the fd is finally disposed of; an adopted, unowned fd is only forgotten. */
  protected closeFd(fd: number): Promise<void> {
    return this.loop.close(fd);
  }

  /**
   * Forgets the fd without closing it: pending operations reject with a ClosedError and the
   * handle becomes closed. Returns the fd, now the caller's to close.
   */
  protected detach(syscall: string): number {
    const fd = this.openFd(syscall);
    this.#fd = -1;
    this.#closing = Promise.resolve();
    this.onClose();
    keepAtExit(fd);
    this.loop.remove(fd);
    return fd;
  }

  /** `await using` support: closes the handle. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
