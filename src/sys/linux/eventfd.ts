/**
 * eventfd(2): a kernel counter that any thread can bump to make an fd readable. evloop's wakers
 * and `interrupt()` on Linux are built on it.
 */
import { C, LAYOUT } from "../target.js";
import { call, WOULD_BLOCK } from "../errors.js";
import { libc } from "../libc.js";

const valueBuf = new BigUint64Array(1);

/** eventfd(initial, EFD_NONBLOCK|EFD_CLOEXEC). */
export function eventfd(initial = 0): number {
  return call("eventfd", false, libc.eventfd, initial, C.EFD_NONBLOCK | C.EFD_CLOEXEC);
}

/**
 * Adds `n` to the counter. A counter already at its maximum would block; for a wake-up that
 * means a wake-up is already pending, so it is not an error.
 */
export function eventfdWrite(fd: number, n = 1): void {
  const buf = new BigUint64Array([BigInt(n)]);
  call("write", true, libc.write, fd, buf, LAYOUT.eventfdValue.size);
}

/** Reads and resets the counter; 0 when it was already 0. */
export function eventfdRead(fd: number): number {
  const r = call("read", true, libc.read, fd, valueBuf, LAYOUT.eventfdValue.size);
  return r === WOULD_BLOCK ? 0 : Number(valueBuf[0]);
}
