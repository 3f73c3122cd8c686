/**
 * Keeping a shared library mapped for the life of the process. The FFI layer unloads a library
 * (dlclose) when its last binding is collected, and at the latest when the JavaScript
 * environment is torn down at exit; a library that runs threads of its own must not be unmapped
 * while they run. libkqueue is one: its close-detection thread was seen to crash the process
 * (SIGSEGV in `monitoring_thread_loop`) when Node's exit unloaded the library under it. A
 * dlopen(3) of our own, with RTLD_NODELETE and never closed, keeps it mapped.
 */
import { ffi } from "../../ffi/runtime/load.js";
import type { SymbolTable } from "../../ffi/types.js";
import { C } from "./constants.js";

const DL = {
  // void *dlopen(const char *filename, int flags) — in libc since glibc 2.34 and in musl; in
  // libdl before, which the running executable links: looked up among its symbols either way.
  dlopen: { result: "pointer", params: ["cstring", "i32"], optional: true },
} as const satisfies SymbolTable;

/**
 * Opens `path` once more with RTLD_NODELETE, so no dlclose unmaps it. Returns whether it did;
 * false where the library does not load (the caller's own load then reports why).
 */
export function keepLoaded(path: string): boolean {
  const dl = ffi.open(null, DL);
  if (dl.dlopen === undefined) return false;
  return dl.dlopen(path, C.RTLD_NOW | C.RTLD_NODELETE) !== 0n;
}
