/**
 * Picks the FFI adapter for the JavaScript runtime we are running on.
 *
 * Each adapter implements `FfiRuntime` and nothing above `src/ffi/` changes. Only the adapter for
 * the running runtime is imported (a top-level `await import()`), so koffi never loads on Bun.
 */
import type { FfiRuntime } from "../types.js";

async function detect(): Promise<FfiRuntime> {
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  if (g.Bun !== undefined) return (await import("./bun.js")).bunRuntime;
  if (g.Deno !== undefined) throw new Error("evloop does not support Deno yet: it runs on Node.js with koffi");
  return (await import("./node.js")).nodeRuntime;
}

/** The FFI runtime in use. */
export const ffi: FfiRuntime = await detect();
