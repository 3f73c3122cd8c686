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
 * On Windows the fds are SOCKETs or other HANDLEs (pipes, files), and the function is ws2_32's
 * `closesocket(SOCKET)` for a socket and kernel32's `CloseHandle(HANDLE)` for anything else
 * (asked once, when the hook is added): x64 Windows has one calling convention, and the hook's
 * one pointer-sized argument is exactly a SOCKET or a HANDLE. node.exe exports the same hook
 * functions under their MSVC names.
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
import { debug } from "../loop/debug.js";
import { close as closeFd } from "../sys/posix/fd.js";
import { isOpenSocket } from "../sys/windows/socket.js";
import { currentIsolate, msvcAbi } from "./libuv.js";

/** The hook functions' names: Itanium-mangled, or MSVC-decorated in node.exe. */
const HOOK_SYMBOLS = msvcAbi
  ? {
      add: "?AddEnvironmentCleanupHook@node@@YAXPEAVIsolate@v8@@P6AXPEAX@Z1@Z",
      remove: "?RemoveEnvironmentCleanupHook@node@@YAXPEAVIsolate@v8@@P6AXPEAX@Z1@Z",
    }
  : {
      add: "_ZN4node25AddEnvironmentCleanupHookEPN2v87IsolateEPFvPvES3_",
      remove: "_ZN4node28RemoveEnvironmentCleanupHookEPN2v87IsolateEPFvPvES3_",
    };

const HOOKS = {
  // void node::AddEnvironmentCleanupHook(v8::Isolate* isolate, void (*fun)(void* arg), void* arg)
  add: { symbol: HOOK_SYMBOLS.add, result: "void", params: ["pointer", "pointer", "pointer"] },
  // void node::RemoveEnvironmentCleanupHook(v8::Isolate* isolate, void (*fun)(void* arg), void* arg)
  remove: { symbol: HOOK_SYMBOLS.remove, result: "void", params: ["pointer", "pointer", "pointer"] },
} as const satisfies SymbolTable;

interface Hooks {
  readonly lib: ReturnType<typeof ffi.open<typeof HOOKS>>;
  readonly isolate: bigint;
  /** The address of the function that closes an fd: libc's close(2), ws2_32's closesocket. */
  readonly close: bigint;
  /** Windows: kernel32's CloseHandle, for handles that are not sockets (pipes, files); else 0n. */
  readonly closeHandle: bigint;
}

let hooks: Hooks | null | undefined;
/**
 * The fds of this thread that have a hook, with the function it calls: never add one twice,
 * never leave one stale.
 */
const hooked = new Map<number, bigint>();

/** The hook functions, or null where none are needed (main thread) or possible (not Node). */
function load(): Hooks | null {
  if (hooks !== undefined) return hooks;
  hooks = null;
  if (ffi.name !== "node" || ffi.isMainThread) return hooks;
  try {
    const isolate = currentIsolate();
    const close = msvcAbi ? ffi.symbol("ws2_32.dll", "closesocket") : ffi.symbol(null, "close");
    const closeHandle = msvcAbi ? ffi.symbol("kernel32.dll", "CloseHandle") : 0n;
    if (isolate !== 0n) hooks = { lib: ffi.open(null, HOOKS), isolate, close, closeHandle };
    else debug("no cleanup hooks: this thread's V8 isolate is unknown; its fds live until the process exits");
  } catch (e) {
    // An embedder's node without these exports: fds then live until the process exits.
    debug(`no cleanup hooks (${e instanceof Error ? e.message : String(e)}); this thread's fds live until the process exits`);
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
  if (jsFallback()) {
    atExit.add(fd);
    if (!exitListening) {
      exitListening = true;
      process.on("exit", closeAllAtExit);
    }
    return;
  }
  const h = load();
  if (h === null || hooked.has(fd)) return;
  // Windows: closesocket cannot close a pipe or a file; CloseHandle must not close a socket.
  const close = h.closeHandle !== 0n && !isOpenSocket(fd) ? h.closeHandle : h.close;
  hooked.set(fd, close);
  h.lib.add(h.isolate, close, BigInt(fd));
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
  if (atExit.delete(fd)) return;
  const close = hooked.get(fd);
  if (close === undefined) return;
  hooked.delete(fd);
  const h = hooks!;
  h.lib.remove(h.isolate, close, BigInt(fd));
}

/** How many fds of this thread will be closed at its exit (for tests and `evloop info`). */
export function fdsClosedAtExit(): number {
  return hooked.size + atExit.size;
}

/**
 * Bun's and Deno's Workers have no native cleanup hook, but their `process` emits `exit` when a
 * Worker ends by itself (not when it is terminated: then no JavaScript runs, and the fds stay
 * open until the process exits). There the fds are closed from that event.
 */
const atExit = new Set<number>();
let exitListening = false;

function jsFallback(): boolean {
  return ffi.name !== "node" && !ffi.isMainThread && ffi.platform !== "win32";
}

function closeAllAtExit(): void {
  for (const fd of atExit) {
    try {
      closeFd(fd);
    } catch {
      // Closed behind evloop's back already: nothing left to do for it.
    }
  }
  atExit.clear();
}

// The loops below this layer reach the hooks through loop/exit-hooks.ts.
installExitHooks({ closeAtExit, keepAtExit });
