/**
 * The argument checks operations start with, so misuse throws a clear TypeError/RangeError on
 * every backend alike, before anything reaches the kernel.
 */
import { checkFd, describeValue } from "../sys/args.js";
import { encodeSockaddr, SOCKADDR_MAX, type SocketAddress } from "../sys/posix/sockaddr.js";
import { MAX_IO_BYTES } from "../sys/target.js";

export { checkFd };

/** Largest timeout accepted (the largest a 32-bit ms poll timeout can express). */
export const MAX_MS = 0x7fffffff;

/** Throws a RangeError unless `ms` is a finite number from 0 to MAX_MS. */
export function checkMs(ms: unknown, what: string): number {
  if (typeof ms !== "number" || Number.isNaN(ms) || ms < 0 || ms > MAX_MS) {
    throw new RangeError(`${what} must be a number of milliseconds from 0 to ${MAX_MS}, got ${describeValue(ms)}`);
  }
  return ms;
}

/** An overlapped operation's file offset: undefined (0), or an integer from 0 to 2^53 - 1. */
export function checkOffset(offset: unknown): number {
  if (offset === undefined) return 0;
  const n = typeof offset === "bigint" && offset >= 0n && offset <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(offset) : offset;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`offset must be an integer from 0 to 2^53 - 1, got ${describeValue(offset)}`);
  }
  return n;
}

/** Validates `{ signal, timeout }`. */
export function checkOptions(options: { signal?: unknown; timeout?: unknown } | undefined): void {
  if (options === undefined || options === null) return;
  if (typeof options !== "object") throw new TypeError("options must be an object");
  if (options.timeout !== undefined) checkMs(options.timeout, "timeout");
  if (options.signal !== undefined && !isSignal(options.signal)) throw new TypeError("signal must be an AbortSignal");
}

/**
 * Whether `signal` can serve as an AbortSignal: the real one, or an object with what the loop
 * uses of it (`aborted`, `addEventListener`, and `removeEventListener`, which runs when the
 * operation settles: an object without it would fail there, long after the call, with nothing
 * to catch it).
 */
function isSignal(signal: unknown): signal is AbortSignal {
  if (typeof signal !== "object" || signal === null) return false;
  const s = signal as Partial<AbortSignal>;
  return typeof s.aborted === "boolean" && typeof s.addEventListener === "function" && typeof s.removeEventListener === "function";
}

/** Whether the memory behind `buf` was transferred away (detached). */
export function isDetached(buf: ArrayBufferView): boolean {
  const b = buf.buffer as ArrayBuffer & { detached?: boolean };
  if (b.detached !== undefined) return b.detached;
  // Before V8 11.4 there is no `detached`; a detached buffer shows as length 0 and refuses views.
  if (b.byteLength !== 0) return false;
  try {
    new Uint8Array(b);
    return false;
  } catch {
    return true;
  }
}

/**
 * Throws unless `buf` is a usable Uint8Array. Empty buffers are refused where a zero-byte
 * transfer would be indistinguishable from EOF, unless `allowEmpty` (datagrams may be empty).
 */
export function checkBuffer(buf: unknown, what: string, allowEmpty = false): Uint8Array {
  if (!(buf instanceof Uint8Array)) throw new TypeError(`${what}: buffer must be a Uint8Array (or Buffer), got ${describe(buf)}`);
  // A detached buffer's views all have length 0: only an empty view needs the closer look.
  if (buf.byteLength === 0 && isDetached(buf)) throw new TypeError(`${what}: buffer is detached`);
  if (!allowEmpty && buf.byteLength === 0) throw new RangeError(`${what}: buffer must not be empty`);
  return buf;
}

/**
 * `buf`, or its first MAX_IO_BYTES bytes when it is longer than one system call may be asked for:
 * a transfer reports fewer bytes, as read(2)/write(2) would, instead of a false EOF, an EINVAL or
 * a count of 0 (io_uring takes lengths as 32 bits). Datagrams are never cut short by this: no
 * datagram is anywhere near that size, and the kernel refuses the shortened one as it would the
 * whole (EMSGSIZE).
 */
export function clampLength(buf: Uint8Array): Uint8Array {
  return buf.byteLength > MAX_IO_BYTES ? buf.subarray(0, MAX_IO_BYTES) : buf;
}

/** A gather list shortened to MAX_IO_BYTES in all, like {@link clampLength}. */
export function clampTotal(bufs: readonly Uint8Array[]): readonly Uint8Array[] {
  let total = 0;
  for (let i = 0; i < bufs.length; i++) {
    const b = bufs[i]!;
    if (total + b.byteLength > MAX_IO_BYTES) return [...bufs.slice(0, i), b.subarray(0, MAX_IO_BYTES - total)];
    total += b.byteLength;
  }
  return bufs;
}

/** Checks every buffer of a gather/scatter list. */
export function checkBuffers(bufs: unknown, what: string): readonly Uint8Array[] {
  if (!Array.isArray(bufs)) throw new TypeError(`${what}: buffers must be an array of Uint8Array`);
  if (bufs.length > 1024) throw new RangeError(`${what}: at most 1024 buffers (IOV_MAX), got ${bufs.length}`);
  for (const b of bufs) checkBuffer(b, what, true);
  return bufs as Uint8Array[];
}

/** Most descriptors one message may carry (SCM_MAX_FD). */
const MAX_PASSED_FDS = 253;

/** Checks the descriptors a message passes (`sendMessage`) and returns them. */
export function checkPassedFds(fds: unknown): readonly number[] {
  if (!Array.isArray(fds)) throw new TypeError("sendMessage: fds must be an array of file descriptors");
  if (fds.length > MAX_PASSED_FDS) throw new RangeError(`sendMessage: at most ${MAX_PASSED_FDS} fds per message, got ${fds.length}`);
  for (const fd of fds) checkFd(fd, "sendMessage: each passed fd");
  return fds as number[];
}

/** Checks how many passed descriptors `receiveMessage` may take. */
export function checkMaxFds(maxFds: unknown): number {
  if (typeof maxFds !== "number" || !Number.isInteger(maxFds) || maxFds < 0 || maxFds > MAX_PASSED_FDS) {
    throw new RangeError(`maxFds must be an integer from 0 to ${MAX_PASSED_FDS}, got ${describeValue(maxFds)}`);
  }
  return maxFds;
}

/** Validates a socket address by encoding it; returns the encoded sockaddr. */
export function checkAddress(address: SocketAddress): Uint8Array {
  const bytes = new Uint8Array(SOCKADDR_MAX);
  return bytes.subarray(0, encodeSockaddr(address, bytes));
}

/** Default and largest `maxBytes` of a borrowed read. */
export const BORROW_DEFAULT = 16 * 1024;
export const BORROW_MAX = 64 * 1024;

/** Validates a borrowed read's options; returns its `maxBytes`. */
export function checkBorrow(options: { maxBytes?: unknown } | undefined): number {
  const max = options?.maxBytes;
  if (max === undefined) return BORROW_DEFAULT;
  if (typeof max !== "number" || !Number.isInteger(max) || max < 1 || max > BORROW_MAX) {
    throw new RangeError(`maxBytes must be an integer from 1 to ${BORROW_MAX}, got ${describeValue(max)}`);
  }
  return max;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "object") return (v as object).constructor?.name ?? "object";
  return typeof v;
}
