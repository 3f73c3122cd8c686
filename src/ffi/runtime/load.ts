/**
 * Picks the FFI adapter for the JavaScript runtime we are running on.
 *
 * Bun (`bun:ffi`) and Deno (`Deno.dlopen`) adapters slot in here: each implements `FfiRuntime`
 * and nothing above `src/ffi/` changes.
 */
import type { FfiRuntime } from "../types.js";
import { nodeRuntime } from "./node.js";

function detect(): FfiRuntime {
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  if (g.Bun !== undefined) throw new Error("evloop does not support Bun yet: it runs on Node.js with koffi");
  if (g.Deno !== undefined) throw new Error("evloop does not support Deno yet: it runs on Node.js with koffi");
  return nodeRuntime;
}

/** The FFI runtime in use. */
export const ffi: FfiRuntime = detect();
