/**
 * Native memory on Windows: the process heap (HeapAlloc/HeapFree), zeroed, for what the kernel
 * keeps pointers to while an overlapped operation is in flight (OVERLAPPED records, AFD poll
 * blocks, address scratch). The GC never sees it, so it cannot move or free it under the kernel.
 */
import { ffi } from "../../ffi/runtime/load.js";
import { WIN } from "./constants.js";
import { windows } from "./api.js";

let heap = 0n;

/** `size` zeroed bytes of native memory; throws ENOMEM-like when the heap has none. */
export function heapAlloc(size: number): bigint {
  const { kernel32 } = windows();
  if (heap === 0n) heap = kernel32.GetProcessHeap();
  const p = kernel32.HeapAlloc(heap, WIN.HEAP_ZERO_MEMORY, size);
  if (p === 0n) throw new RangeError(`HeapAlloc could not allocate ${size} bytes`);
  return p;
}

/** Frees what {@link heapAlloc} returned. */
export function heapFree(p: bigint): void {
  if (p === 0n) return;
  windows().kernel32.HeapFree(heap, 0, p);
}

/** A block of native memory and a view of it. */
export interface NativeBlock {
  readonly address: bigint;
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

/** Allocates a zeroed native block of `size` bytes with views onto it. */
export function nativeBlock(size: number): NativeBlock {
  const address = heapAlloc(size);
  const buffer = ffi.view(address, size);
  return { address, bytes: new Uint8Array(buffer), view: new DataView(buffer) };
}
