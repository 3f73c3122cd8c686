/**
 * `evloop/internal`: what evloop's own tools (the `evloop` command in `cli/`, the benchmark suite
 * in `bench/src/`) need beyond the public API. UNSTABLE: not part of the public API, not covered
 * by semver, and any of it may change or go in any release. Applications import `evloop`.
 *
 * Kept to the few things the tools cannot do through `evloop`: `evloop info` reports the FFI
 * runtime, whether guest mode is possible and which backend `createLoop()` would pick; the
 * internals benchmark measures the timer heap itself and drives raw fds (an eventfd per idle
 * registration, a socketpair for the traffic) so that nothing but the loop is measured. The
 * fault suite (`test/faults/`) makes system calls fail through `injectFaults`, a seam that costs
 * nothing while no plan is active.
 *
 * @example
 * ```ts
 * import { chosenBackend, runtime } from "evloop/internal";
 * console.log(`${runtime.name} ${runtime.version}, default backend ${chosenBackend()}`);
 * ```
 * @module
 */
import { ffi } from "./ffi/runtime/load.js";
import type { BackendName } from "./loop/event-loop.js";
import { chooseBackend } from "./loop/backends.js";
import { libcResolution } from "./sys/libc.js";
import { setIntOption, socketPair } from "./sys/socket.js";
import { C, TARGET } from "./sys/target.js";
import { defaultWakeupKind } from "./sys/wakeup.js";

export { TimerHeap, type Timer } from "./loop/timers.js";
export { hostLoopAvailable } from "./driver/libuv.js";
export { eventfd } from "./sys/linux/eventfd.js";
export { close, write } from "./sys/posix/fd.js";
export { injectFaults, ringFaultsSupported, type FaultCall, type FaultCounter, type FaultPlan, type FaultSpec } from "./sys/faults.js";

/**
 * The JavaScript runtime and FFI layer evloop runs on, as `evloop info` prints them.
 *
 * @example
 * ```ts
 * const info: RuntimeInfo = runtime; // { name: "node", …, libc: "glibc (libc.so.6)", waker: "eventfd" }
 * ```
 */
export interface RuntimeInfo {
  /** `node` today; `bun` and `deno` once their FFI adapters exist. */
  readonly name: string;
  readonly version: string;
  /** The FFI layer and its version. */
  readonly ffi: string;
  /** Node's names: `linux`, `darwin`, `freebsd`, `win32`, … */
  readonly platform: string;
  /** Node's names: `x64`, `arm64`, … */
  readonly arch: string;
  /** The C library: its flavour and the file loaded, or why none loaded. */
  readonly libc: string;
  /** The wake-up fd loops use for `interrupt()`: `eventfd` or `pipe`. */
  readonly waker: string;
}

/**
 * The runtime evloop loaded its FFI layer on.
 *
 * @example
 * ```ts
 * console.log(`${runtime.name} ${runtime.version} (${runtime.ffi}) on ${runtime.platform} ${runtime.arch}`);
 * ```
 */
export const runtime: RuntimeInfo = {
  name: ffi.name,
  version: ffi.version,
  ffi: ffi.description,
  platform: ffi.platform,
  arch: ffi.arch,
  libc: libcResolution.ok ? `${TARGET.libc ?? "unknown"} (${libcResolution.path})` : `none: ${libcResolution.error.message}`,
  waker: safely(defaultWakeupKind),
};

function safely(fn: () => string): string {
  try {
    return fn();
  } catch (e) {
    return `none: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/**
 * The backend `createLoop()` would use without a `backend` option: EVLOOP_BACKEND when set, else
 * the best available one. Probes the backends (cached) but creates no loop.
 *
 * @throws {TypeError} When EVLOOP_BACKEND names no backend.
 * @throws {Error} When the backend it names is unavailable, or none is available.
 *
 * @example
 * ```ts
 * chosenBackend(); // "io_uring", or "epoll" where io_uring is disabled
 * ```
 */
export function chosenBackend(): BackendName {
  return chooseBackend().name;
}

/**
 * A connected pair of non-blocking, close-on-exec AF_UNIX stream sockets, as raw fds that the
 * caller closes with {@link close}.
 *
 * @example
 * ```ts
 * const [a, b] = unixSocketPair();
 * write(a, new Uint8Array([1]));
 * close(a);
 * close(b);
 * ```
 */
export function unixSocketPair(): [number, number] {
  return socketPair(C.AF_UNIX, C.SOCK_STREAM);
}

/**
 * Caps a socket's send buffer (SO_SNDBUF; Linux doubles the value). `evloop soak` uses it so
 * that writes on loopback block now and then: loopback TCP otherwise grows the buffer to
 * megabytes, and an abort or timeout of a write would never find one waiting.
 *
 * @example
 * ```ts
 * setSendBufferSize(stream.fd, 16 * 1024);
 * ```
 */
export function setSendBufferSize(fd: number, bytes: number): void {
  setIntOption(fd, C.SOL_SOCKET, C.SO_SNDBUF, bytes);
}
