/**
 * Zeroed native memory on every OS, for what native code keeps a pointer to beyond one call (a
 * libuv handle, memory another thread writes): the process heap on Windows, which has no C
 * library (`windows/memory.ts`), and the C library's calloc/free elsewhere. The GC never sees
 * it, so it can neither move nor free it under its holder. This is the one place that choice is
 * made.
 */
import { libc } from "./libc.js";
import { TARGET } from "./target.js";
import { heapAlloc, heapFree } from "./windows/memory.js";

const onWindows = TARGET.os === "win32";

/**
 * `size` zeroed bytes of native memory; throws a RangeError when there are none. Free it with
 * {@link nativeFree}.
 *
 * @example
 * ```ts
 * const p = nativeAlloc(224);
 * nativeFree(p);
 * ```
 */
export function nativeAlloc(size: number): bigint {
  if (onWindows) return heapAlloc(size);
  const p = libc.calloc(1, size);
  if (p === 0n) throw new RangeError(`calloc could not allocate ${size} bytes`);
  return p;
}

/**
 * Frees what {@link nativeAlloc} returned; 0n does nothing.
 *
 * @example
 * ```ts
 * nativeFree(nativeAlloc(16));
 * ```
 */
export function nativeFree(p: bigint): void {
  if (p === 0n) return;
  if (onWindows) heapFree(p);
  else libc.free(p);
}
