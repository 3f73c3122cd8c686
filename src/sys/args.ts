/**
 * Argument checks every layer shares, so one mistake gets one message wherever it is made.
 */

/**
 * A value as an error message shows it: `String(value)`, or its type where that throws (an object
 * whose `toString` is not a function, a symbol's description aside): an argument check must throw
 * its own TypeError or RangeError, never the one converting the bad value would.
 */
export function describeValue(value: unknown): string {
  try {
    return String(value);
  } catch {
    return value === null ? "null" : `an ${typeof value} that cannot be converted to a string`;
  }
}

/** The largest fd number a C `int` can hold. */
const FD_MAX = 0x7fffffff;

/** Throws a TypeError unless `fd` looks like a file descriptor (an integer from 0 to 2^31 - 1). */
export function checkFd(fd: unknown, what = "fd"): number {
  if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0 || fd > FD_MAX) {
    throw new TypeError(`${what} must be a non-negative integer file descriptor, got ${describeValue(fd)}`);
  }
  return fd;
}
