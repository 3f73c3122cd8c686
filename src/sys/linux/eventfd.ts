/**
 * eventfd(2): a kernel counter that any thread can bump to make an fd readable. evloop's wakers
 * and `interrupt()` on Linux are built on it.
 */
import { call, WOULD_BLOCK } from "../errors.js";
import { libc } from "../libc.js";
import { close } from "../posix/fd.js";
import type { FdWakerHandle, WakeupFd } from "../wakeup.js";
import { C, LAYOUT } from "./constants.js";
import { linuxLibc } from "./libc.js";

// Per-thread scratch: every thread (Worker) has its own instance of this module.
const valueBuf = new BigUint64Array(1);
const writeBuf = new BigUint64Array(1);

/** eventfd(initial, EFD_NONBLOCK|EFD_CLOEXEC). */
export function eventfd(initial = 0): number {
  return call("eventfd", false, linuxLibc().eventfd, initial, C.EFD_NONBLOCK | C.EFD_CLOEXEC);
}

/**
 * Adds `n` to the counter. A counter already at its maximum would block; for a wake-up that
 * means a wake-up is already pending, so it is not an error.
 */
export function eventfdWrite(fd: number, n = 1): void {
  writeBuf[0] = BigInt(n);
  call("write", true, libc.write, fd, writeBuf, LAYOUT.eventfdValue.size);
}

/** Reads and resets the counter; 0 when it was already 0. */
export function eventfdRead(fd: number): number {
  const r = call("read", true, libc.read, fd, valueBuf, LAYOUT.eventfdValue.size);
  return r === WOULD_BLOCK ? 0 : Number(valueBuf[0]);
}

/** Wakes the eventfd waker whose fd is `fd` (from any thread). */
export function eventfdWake(fd: number): void {
  eventfdWrite(fd, 1);
}

class EventfdWakeup implements WakeupFd {
  readonly fd: number;
  readonly handle: FdWakerHandle;
  #closed = false;

  constructor() {
    this.fd = eventfd(0);
    this.handle = { kind: "eventfd", fd: this.fd };
  }

  wake(): void {
    eventfdWrite(this.fd, 1);
  }

  drain(): void {
    eventfdRead(this.fd);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    close(this.fd);
  }
}

/** A waker fd on an eventfd (see `../wakeup.ts`). */
export function eventfdWakeup(): WakeupFd {
  return new EventfdWakeup();
}
