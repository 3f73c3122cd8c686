/**
 * Picks the FFI adapter for the JavaScript runtime we are running on.
 *
 * Each adapter implements `FfiRuntime` and nothing above `src/ffi/` changes. All three are
 * imported statically, and importing one loads nothing: each is a factory that loads its FFI
 * (`require("koffi")`, `require("bun:ffi")`, `globalThis.Deno`) when called, and only the one
 * for this runtime is called. So koffi never loads on Bun or Deno, and no dynamic `import()` is
 * needed: a top-level `await import()` here made node.exe abort (V8 "Check failed: (location_)
 * != nullptr") when a script exited while guest mode's helper Worker was still loading evloop.
 */
import type { FfiRuntime } from "../types.js";
import { createBunRuntime } from "./bun.js";
import { createDenoRuntime } from "./deno.js";
import { createNodeRuntime } from "./node.js";

function detect(): FfiRuntime {
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  if (g.Bun !== undefined) return createBunRuntime();
  if (g.Deno !== undefined) return createDenoRuntime();
  return createNodeRuntime();
}

/** The FFI runtime in use. */
export const ffi: FfiRuntime = detect();
