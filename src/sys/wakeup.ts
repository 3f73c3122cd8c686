/**
 * Wake-up fds: an fd that turns readable when another thread calls `wake()`, so a thread blocked
 * in a selector (or a host loop polling the fd) returns. eventfd on Linux.
 */
import { eventfd, eventfdRead, eventfdWrite } from "./linux/eventfd.js";
import { close } from "./posix/fd.js";

/**
 * A serialisable reference to a wake-up fd, to hand to another thread with `postMessage`.
 *
 * @example
 * ```ts
 * new Worker(url, { workerData: loop.interruptHandle }); // worker: Waker.fromHandle(workerData).wake()
 * ```
 */
export interface WakerHandle {
  readonly kind: "eventfd";
  readonly fd: number;
}

/** A pollable fd another thread can make readable. */
export interface WakeupFd {
  /** Readable once woken, until drained. */
  readonly fd: number;
  /** What another thread needs to wake this fd. */
  readonly handle: WakerHandle;
  /** Makes `fd` readable; safe from any thread, any number of times. */
  wake(): void;
  /** Consumes pending wake-ups. */
  drain(): void;
  close(): void;
}

/** Opens this platform's wake-up fd. */
export function openWakeup(): WakeupFd {
  const fd = eventfd(0);
  return {
    fd,
    handle: { kind: "eventfd", fd },
    wake: () => eventfdWrite(fd, 1),
    drain: () => eventfdRead(fd),
    close: () => close(fd),
  };
}

/** Wakes the wake-up fd behind `handle` (from another thread). */
export function wakeHandle(handle: WakerHandle): void {
  eventfdWrite(handle.fd, 1);
}
