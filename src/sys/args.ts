/**
 * Argument checks every layer shares, so one mistake gets one message wherever it is made.
 */

/** The largest fd number a C `int` can hold. */
const FD_MAX = 0x7fffffff;

/** Throws a TypeError unless `fd` looks like a file descriptor (an integer from 0 to 2^31 - 1). */
export function checkFd(fd: unknown, what = "fd"): number {
  if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0 || fd > FD_MAX) {
    throw new TypeError(`${what} must be a non-negative integer file descriptor, got ${String(fd)}`);
  }
  return fd;
}
