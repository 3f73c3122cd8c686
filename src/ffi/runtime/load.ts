/**
 * Picks the FFI adapter for the JavaScript runtime we are running on.
 *
 * Each adapter implements `FfiRuntime` and nothing above `src/ffi/` changes. Bun's (`bun.ts`,
 * over bun:ffi) and Deno's (`deno.ts`, over Deno.dlopen) exist and ran the conformance suite in
 * owner mode (`scripts/test-runtime.mjs bun`, `scripts/test-deno.mjs`), but are not chosen here yet: choosing it without loading koffi needs the adapters
 * imported lazily, and a top-level `await import()` here made node.exe abort (V8 "Check failed:
 * (location_) != nullptr") when a script exited while guest mode's helper Worker was still
 * loading evloop. Until that is solved another way, Node's adapter is imported statically.
 */
import type { FfiRuntime } from "../types.js";
import { nodeRuntime } from "./node.js";

function detect(): FfiRuntime {
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  if (g.Bun !== undefined) throw new Error("evloop does not support Bun yet: it runs on Node.js with koffi (src/ffi/runtime/bun.ts is not enabled yet)");
  if (g.Deno !== undefined) throw new Error("evloop does not support Deno yet: it runs on Node.js with koffi (src/ffi/runtime/deno.ts is not enabled yet)");
  return nodeRuntime;
}

/** The FFI runtime in use. */
export const ffi: FfiRuntime = detect();
