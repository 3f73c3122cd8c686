/**
 * libuv's poll and async handles, reached through the running node binary's exported symbols
 * (`ffi.open(null, …)`; node.exe exports them too), so Node's own event loop can watch evloop's
 * fds or be woken from another thread; and the current thread's own libuv loop (a Worker has its
 * own), whose backend fd owner mode watches.
 *
 * Memory: a handle lives in native memory (`sys/memory.ts`: calloc, or the process heap on
 * Windows); libuv keeps pointers to it until the close callback runs, and only then is it freed.
 * One native callback per handle kind serves every handle and dispatches on its address.
 */
import { ffi } from "../ffi/runtime/load.js";
import type { NativeCallback, SymbolTable } from "../ffi/types.js";
import { nativeAlloc, nativeFree } from "../sys/memory.js";
import { SystemError } from "../sys/errors.js";
import { Interest } from "../selector/event.js";

const UV = {
  // uv_loop_t *uv_default_loop(void)
  uv_default_loop: { result: "pointer", params: [] },
  // size_t uv_handle_size(uv_handle_type type)
  uv_handle_size: { result: "usize", params: ["i32"] },
  // int uv_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd)
  uv_poll_init: { result: "i32", params: ["pointer", "pointer", "i32"] },
  // int uv_poll_start(uv_poll_t *handle, int events, uv_poll_cb cb)
  uv_poll_start: { result: "i32", params: ["pointer", "i32", "pointer"] },
  // int uv_poll_stop(uv_poll_t *handle)
  uv_poll_stop: { result: "i32", params: ["pointer"] },
  // int uv_async_init(uv_loop_t *loop, uv_async_t *handle, uv_async_cb cb)
  uv_async_init: { result: "i32", params: ["pointer", "pointer", "pointer"] },
  // void uv_close(uv_handle_t *handle, uv_close_cb close_cb)
  uv_close: { result: "void", params: ["pointer", "pointer"] },
  // void uv_unref(uv_handle_t *handle)
  uv_unref: { result: "void", params: ["pointer"] },
} as const satisfies SymbolTable;

const UV_ASYNC = 1;
const UV_POLL = 8;
const UV_READABLE = 1;
const UV_WRITABLE = 2;
const UV_PRIORITIZED = 8;

type Uv = ReturnType<typeof ffi.open<typeof UV>>;

/**
 * Node's C++ API for the calling thread, by the C++ ABI's names: Itanium-mangled on Linux,
 * macOS and the BSDs, MSVC-decorated in node.exe (both read from the binaries' export tables).
 * `uv_default_loop()` is the main thread's loop even when called from a Worker; this is the
 * thread's own.
 */
const NODE_SYMBOLS = {
  itanium: {
    isolate: "_ZN2v87Isolate10GetCurrentEv",
    currentLoop: "_ZN4node19GetCurrentEventLoopEPN2v87IsolateE",
  },
  msvc: {
    isolate: "?GetCurrent@Isolate@v8@@SAPEAV12@XZ",
    currentLoop: "?GetCurrentEventLoop@node@@YAPEAUuv_loop_s@@PEAVIsolate@v8@@@Z",
  },
} as const;

/** Whether the running Node was built by MSVC (node.exe), whose C++ names are decorated its way. */
export const msvcAbi = ffi.platform === "win32";

const names = msvcAbi ? NODE_SYMBOLS.msvc : NODE_SYMBOLS.itanium;

const NODE = {
  // v8::Isolate* v8::Isolate::GetCurrent()
  isolate: { symbol: names.isolate, result: "pointer", params: [] },
  // uv_loop_t* node::GetCurrentEventLoop(v8::Isolate* isolate)
  currentLoop: { symbol: names.currentLoop, result: "pointer", params: ["pointer"] },
  // int uv_backend_fd(const uv_loop_t* loop) — -1 on Windows, where libuv's loop is an IOCP
  uv_backend_fd: { result: "i32", params: ["pointer"] },
} as const satisfies SymbolTable;

/** This thread's isolate and libuv loop, or null (not Node, or its symbols are missing). */
let thread: { readonly isolate: bigint; readonly backendFd: number } | null | undefined;

function threadEnv(): { readonly isolate: bigint; readonly backendFd: number } | null {
  if (thread !== undefined) return thread;
  thread = null;
  if (ffi.name !== "node") return thread;
  try {
    const node = ffi.open(null, NODE);
    const isolate = node.isolate();
    const loop = isolate === 0n ? 0n : node.currentLoop(isolate);
    if (loop !== 0n) thread = { isolate, backendFd: node.uv_backend_fd(loop) };
  } catch {
    thread = null;
  }
  return thread;
}

/** The calling thread's V8 isolate (Node's main thread or a Worker), or 0n off Node. */
export function currentIsolate(): bigint {
  return threadEnv()?.isolate ?? 0n;
}

/**
 * The fd of the calling thread's own libuv loop (its epoll fd on Linux), or -1 off Node and on
 * Windows (libuv's loop is a completion port there, which nothing can poll). It is
 * readable whenever libuv has I/O to handle, including the wake-up Node sends a Worker to stop
 * it and each message posted to it. Read-only for evloop: only libuv may wait on it.
 */
export function hostBackendFd(): number {
  return threadEnv()?.backendFd ?? -1;
}

let uv: Uv | null | undefined;
let pollCallback: NativeCallback;
let asyncCallback: NativeCallback;
let closeCallback: NativeCallback;
let pollSize = 0;
let asyncSize = 0;
const polls = new Map<bigint, UvPoll>();
const asyncs = new Map<bigint, UvAsync>();

/** libuv of the host runtime, or null when there is none (not Node, or not its main thread). */
function load(): Uv | null {
  if (uv !== undefined) return uv;
  uv = null;
  if (ffi.name !== "node" || !ffi.isMainThread) return uv;
  try {
    const lib = ffi.open(null, UV);
    pollSize = Number(lib.uv_handle_size(UV_POLL));
    asyncSize = Number(lib.uv_handle_size(UV_ASYNC));
    pollCallback = ffi.callback("void", ["pointer", "i32", "i32"], ((handle: bigint, status: number, events: number) => {
      polls.get(handle)?.fire(status, events);
    }) as (...args: never[]) => unknown);
    // void uv_async_cb(uv_async_t *handle)
    asyncCallback = ffi.callback("void", ["pointer"], ((handle: bigint) => {
      asyncs.get(handle)?.fire();
    }) as (...args: never[]) => unknown);
    closeCallback = ffi.callback("void", ["pointer"], ((handle: bigint) => {
      nativeFree(handle);
    }) as (...args: never[]) => unknown);
    uv = lib;
  } catch {
    uv = null;
  }
  return uv;
}

/**
 * Whether Node's libuv loop can be used (guest mode): only on Node's main thread. Bun has no
 * libuv (its loop is its own), so there it is false and evloop runs in owner mode only.
 */
export function hostLoopAvailable(): boolean {
  return load() !== null;
}

/** A uv_poll_t watching one fd on Node's main loop. It never keeps the process alive itself. */
export class UvPoll {
  readonly #handle: bigint;
  readonly #onEvent: (readiness: number) => void;
  #interest = 0;

  constructor(fd: number, onEvent: (readiness: number) => void) {
    const lib = load();
    if (!lib) throw new Error("Node's libuv loop is not reachable from this thread");
    this.#onEvent = onEvent;
    // SAFETY: libuv holds this address from uv_poll_init until the close callback, which frees
    // it; the memory is native, so the GC can neither move nor free it.
    this.#handle = nativeAlloc(pollSize);
    const rc = lib.uv_poll_init(lib.uv_default_loop(), this.#handle, fd);
    if (rc !== 0) {
      nativeFree(this.#handle);
      // libuv's error codes are negated errno values on Unix (UV_EBADF is -EBADF), so the
      // caller gets the same SystemError as from epoll_ctl for the same fd.
      throw new SystemError(-rc, "uv_poll_init", `Node's loop cannot watch fd ${fd}`);
    }
    lib.uv_unref(this.#handle);
    polls.set(this.#handle, this);
  }

  /** Watches `interest` (Interest flags); 0 stops watching. */
  set(interest: number): void {
    if (interest === this.#interest) return;
    this.#interest = interest;
    const lib = uv!;
    if (interest === 0) {
      lib.uv_poll_stop(this.#handle);
      return;
    }
    let events = 0;
    if (interest & Interest.READABLE) events |= UV_READABLE;
    if (interest & Interest.WRITABLE) events |= UV_WRITABLE;
    if (interest & Interest.PRIORITY) events |= UV_PRIORITIZED;
    lib.uv_poll_start(this.#handle, events, pollCallback.pointer);
  }

  fire(status: number, events: number): void {
    // A negative status is an error on the fd; the loop's own syscalls will report it.
    let readiness = 0;
    if (status < 0 || events & UV_READABLE) readiness |= Interest.READABLE;
    if (status < 0 || events & UV_WRITABLE) readiness |= Interest.WRITABLE;
    if (events & UV_PRIORITIZED) readiness |= Interest.PRIORITY;
    this.#onEvent(readiness);
  }

  /** Stops and closes the handle; its memory is freed by libuv's close callback. */
  close(): void {
    if (!polls.delete(this.#handle)) return;
    uv!.uv_close(this.#handle, closeCallback.pointer);
  }
}

/**
 * A uv_async_t on Node's main loop: `address` may be handed to another thread, whose
 * `uv_async_send(address)` (thread-safe; sends before the callback runs coalesce into one call)
 * has `onWake` called on the main thread. It never keeps the process alive itself.
 *
 * @example
 * ```ts
 * const wake = new UvAsync(() => loop.run(false));
 * // another thread: uv_async_send(wake.address)
 * wake.close(); // only once no thread can send to it any more
 * ```
 */
export class UvAsync {
  readonly #handle: bigint;
  readonly #onWake: () => void;

  constructor(onWake: () => void) {
    const lib = load();
    if (!lib) throw new Error("Node's libuv loop is not reachable from this thread");
    this.#onWake = onWake;
    // SAFETY: libuv holds this address from uv_async_init until the close callback, which frees
    // it, and so may the thread its address is handed to (`uv_async_send`): the owner closes it
    // only once that thread can no longer send. The memory is native, so the GC can neither
    // move nor free it.
    this.#handle = nativeAlloc(asyncSize);
    const rc = lib.uv_async_init(lib.uv_default_loop(), this.#handle, asyncCallback.pointer);
    if (rc !== 0) {
      nativeFree(this.#handle);
      throw new Error(`uv_async_init failed with libuv error ${rc}`);
    }
    lib.uv_unref(this.#handle);
    asyncs.set(this.#handle, this);
  }

  /** The uv_async_t's address, for `uv_async_send` on another thread. */
  get address(): bigint {
    return this.#handle;
  }

  /** Runs the callback (libuv's async callback calls it, on the main thread). */
  fire(): void {
    this.#onWake();
  }

  /**
   * Closes the handle; libuv's close callback frees its memory. Call it only once no other
   * thread can call `uv_async_send` on it any more.
   */
  close(): void {
    if (!asyncs.delete(this.#handle)) return;
    uv!.uv_close(this.#handle, closeCallback.pointer);
  }
}
