/**
 * The errors an {@link IoQueue} wait rejects with besides a selector's own: the fd was closed
 * while the wait was pending ({@link PrematureCloseError}), or the fd was unregistered or the
 * queue closed ({@link WaitAbortedError}).
 */
import { SystemError } from "../sys/errors.js";
import { ERRNO } from "../sys/target.js";

/** What an {@link IoQueue} waits for on an fd. */
export type IoEvent = "read" | "write" | "priority";

/**
 * A wait whose fd was closed while it was pending (code `EBADF`): a programming error the
 * {@link IoQueue} detects and reports instead of waiting for ever. `reused` is true when the fd
 * number already named another file when it was noticed (Linux only: evloop compares the
 * file's `st_dev`/`st_ino` there).
 *
 * @example
 * ```ts
 * const q = IoQueue.current();
 * const pending = q.wait(fd, "read");
 * close(fd);                           // a bug: the wait still needs it
 * q.poll(0);
 * await pending.catch((e) => e instanceof PrematureCloseError && e.fd === fd); // true
 * ```
 */
export class PrematureCloseError extends SystemError {
  /** The fd that was closed. */
  readonly fd: number;
  /** The event the wait was for. */
  readonly event: IoEvent;
  /** Whether the fd number was already reused by another file. */
  readonly reused: boolean;

  constructor(fd: number, event: IoEvent, reused: boolean) {
    const how = reused ? "was closed and its number reused by another file" : "was closed";
    super(ERRNO.EBADF, "IoQueue.wait", `fd ${fd} ${how} while a "${event}" wait on it was pending (unregister an fd before closing it)`);
    this.name = "PrematureCloseError";
    this.fd = fd;
    this.event = event;
    this.reused = reused;
  }
}

/**
 * A wait ended by `IoQueue.unregister(fd)` or `IoQueue.close()` before its fd was ready: an
 * AbortError (`name` "AbortError", `code` "ABORT_ERR", as Node's) naming the fd and the event.
 *
 * @example
 * ```ts
 * const q = IoQueue.current();
 * const pending = q.wait(fd, "read");
 * q.unregister(fd);
 * await pending.catch((e) => e instanceof WaitAbortedError && e.name === "AbortError"); // true
 * ```
 */
export class WaitAbortedError extends Error {
  /** Always "ABORT_ERR". */
  readonly code = "ABORT_ERR";
  /** The fd whose wait ended. */
  readonly fd: number;
  /** The event the wait was for. */
  readonly event: IoEvent;

  constructor(fd: number, event: IoEvent, why: string) {
    super(`the "${event}" wait on fd ${fd} was aborted: ${why}`);
    this.name = "AbortError";
    this.fd = fd;
    this.event = event;
  }
}
