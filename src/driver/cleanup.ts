/**
 * Closing evloop's fds when a Worker's thread goes away.
 *
 * Node closes a Worker's own handles when it exits or is terminated, but knows nothing of the
 * fds evloop opened: without help, a terminated Worker's sockets stay open (their peers never
 * see EOF) and so do its loops' epoll, eventfd and io_uring fds. JavaScript cannot run at that
 * point (a cleanup hook that is a JS callback is never called), so each fd evloop owns gets a
 * native hook of its own: `node::AddEnvironmentCleanupHook(isolate, close, fd)`, with libc's
 * close(2) itself as the function and the fd as its `void *` argument. On the LP64 ABIs Node
 * runs on (x86-64, arm64, …) close(int) reads the low 32 bits of the register that carries that
 * first argument, so the hook is exactly `close(fd)`. Node runs the hooks on the Worker's thread
 * after its loop has stopped, on `worker.terminate()` and on a normal exit alike.
 *
 * Rules the callers keep: a hook is removed before its fd is closed by evloop or handed to the
 * user (`release()`), so a stale hook can never close a reused fd number; and since Node aborts
 * the process when the same (function, argument) pair is added twice, this thread's set of
 * hooked fds makes adding idempotent. On the main thread nothing is registered: the process's
 * exit closes every fd, so the hooks would cost without helping.
 */
import { ffi } from "../ffi/runtime/load.js";
import type { SymbolTable } from "../ffi/types.js";
import { installExitHooks } from "../loop/exit-hooks.js";
import { currentIsolate } from "./libuv.js";

const HOOKS = {
  // void node::AddEnvironmentCleanupHook(v8::Isolate* isolate, void (*fun)(void* arg), void* arg)
  add: { symbol: "_ZN4node25AddEnvironmentCleanupHookEPN2v87IsolateEPFvPvES3_", result: "void", params: ["pointer", "pointer", "pointer"] },
  // void node::RemoveEnvironmentCleanupHook(v8::Isolate* isolate, void (*fun)(void* arg), void* arg)
  remove: { symbol: "_ZN4node28RemoveEnvironmentCleanupHookEPN2v87IsolateEPFvPvES3_", result: "void", params: ["pointer", "pointer", "pointer"] },
} as const satisfies SymbolTable;

interface Hooks {
  readonly lib: ReturnType<typeof ffi.open<typeof HOOKS>>;
  readonly isolate: bigint;
  /** The address of libc's close(2). */
  readonly close: bigint;
}

let hooks: Hooks | null | undefined;
/** The fds of this thread that have a hook: never add one twice, never leave one stale. */
const hooked = new Set<number>();

/** The hook functions, or null where none are needed (main thread) or possible (not Node). */
function load(): Hooks | null {
  if (hooks !== undefined) return hooks;
  hooks = null;
  if (ffi.name !== "node" || ffi.isMainThread) return hooks;
  try {
    const isolate = currentIsolate();
    if (isolate !== 0n) hooks = { lib: ffi.open(null, HOOKS), isolate, close: ffi.symbol(null, "close") };
  } catch {
    // An embedder's node without these exports: fds then live until the process exits.
    hooks = null;
  }
  return hooks;
}

/**
 * Has `fd` closed when this thread's Node environment is torn down (a Worker exiting or being
 * terminated). Idempotent; nothing happens on the main thread.
 *
 * @example
 * ```ts
 * const fd = socket(C.AF_INET, C.SOCK_STREAM);
 * closeAtExit(fd); // and keepAtExit(fd) before closing it or giving it away
 * ```
 */
export function closeAtExit(fd: number): void {
  const h = load();
  if (h === null || hooked.has(fd)) return;
  hooked.add(fd);
  h.lib.add(h.isolate, h.close, BigInt(fd));
}

/**
 * Cancels {@link closeAtExit} for `fd`: call it before evloop closes the fd (its number may be
 * reused at once) or hands it to the user. Does nothing for an fd without a hook.
 *
 * @example
 * ```ts
 * keepAtExit(fd);
 * close(fd);
 * ```
 */
export function keepAtExit(fd: number): void {
  if (!hooked.delete(fd)) return;
  const h = hooks!;
  h.lib.remove(h.isolate, h.close, BigInt(fd));
}

/** How many fds of this thread will be closed at its exit (for tests and `evloop info`). */
export function fdsClosedAtExit(): number {
  return hooked.size;
}

// The loops below this layer reach the hooks through loop/exit-hooks.ts.
installExitHooks({ closeAtExit, keepAtExit });
