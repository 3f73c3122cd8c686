/**
 * Creating loops with their driver: `createLoop`, `defaultLoop`, `runMain`.
 */
import { ffi } from "../ffi/runtime/load.js";
import type { BackendName, EventLoop } from "../loop/event-loop.js";
import { chooseBackend } from "../loop/backends.js";
import { drivable } from "../loop/completion.js";
import type { IoUringOptions } from "../loop/io-uring/loop.js";
import type { IocpOptions } from "../loop/iocp/loop.js";
import { debug } from "../loop/debug.js";
import { GuestDriver } from "./guest.js";
import { ownLoop } from "./owner.js";
import { hostLoopAvailable } from "./libuv.js";
import { threadPollAvailable } from "./thread-poll.js";
import { closeAtExit, keepAtExit } from "./cleanup.js";

/**
 * Options for {@link createLoop}.
 *
 * @example
 * ```ts
 * const options: CreateLoopOptions = { backend: "poll", guest: false };
 * ```
 */
export interface CreateLoopOptions {
  /** Backend to use; default: EVLOOP_BACKEND, else the best available. */
  backend?: BackendName;
  /**
   * Attach to the host's event loop (guest mode). Default: true on the main thread of Node, Bun
   * and Deno; elsewhere (Workers) drive the loop with `runMain`. On Node guest mode uses the main
   * thread's libuv, so `guest: true` in a Node Worker throws; on Bun and Deno a helper thread
   * polls the loop's fds, so it works in their Workers too.
   */
  guest?: boolean;
  /** io_uring tuning (ignored by other backends): see {@link IoUringOptions}. */
  ioUring?: IoUringOptions;
  /** IOCP tuning (ignored by other backends): see {@link IocpOptions}. */
  iocp?: IocpOptions;
}

/**
 * A loop as created by {@link createLoop}: an EventLoop and the mode that drives it.
 *
 * @example
 * ```ts
 * const loop: Loop = createLoop();
 * console.log(loop.backend, loop.mode); // "epoll" "guest"
 * ```
 */
export type Loop = EventLoop & { readonly mode: "guest" | "owner" };

/**
 * Creates an event loop: the backend from `options.backend`, else `EVLOOP_BACKEND`, else the best
 * available; in guest mode on Node's main thread unless `guest: false`.
 *
 * @example
 * ```ts
 * const loop = createLoop({ backend: "epoll" });
 * const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
 * ```
 */
export function createLoop(options: CreateLoopOptions = {}): Loop {
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
  if (options.backend !== undefined && typeof options.backend !== "string") throw new TypeError(`backend must be a backend name, got ${typeof options.backend}`);
  if (options.guest !== undefined && typeof options.guest !== "boolean") throw new TypeError(`guest must be a boolean, got ${typeof options.guest}`);
  if (options.ioUring !== undefined && (options.ioUring === null || typeof options.ioUring !== "object")) throw new TypeError("ioUring must be an object");
  if (options.iocp !== undefined && (options.iocp === null || typeof options.iocp !== "object")) throw new TypeError("iocp must be an object");
  const backend = chooseBackend(options.backend);
  // Node's main thread: libuv's poll handles. Bun and Deno, any thread: a helper thread in poll(2).
  const canGuest = hostLoopAvailable() || (ffi.name !== "node" && threadPollAvailable());
  const wantGuest = options.guest ?? (canGuest && ffi.isMainThread);
  if (wantGuest && !canGuest) {
    if (ffi.name !== "node") {
      const runtime = ffi.name === "bun" ? "Bun" : ffi.name === "deno" ? "Deno" : ffi.name;
      throw new Error(`guest mode is not available on ${runtime} for ${ffi.platform}: its helper thread waits in poll(2), which ${ffi.platform} lacks; use runMain instead`);
    }
    throw new Error(`guest mode needs Node's main thread (runtime ${ffi.name}${ffi.isMainThread ? "" : ", worker thread"}); use runMain instead`);
  }
  debug(`creating ${backend.name} loop`);
  const loop = backend.create({ ioUring: options.ioUring, iocp: options.iocp });
  // A Worker's loop closes its own fds when the Worker goes away without disposing it.
  const own = loop.ownFds();
  for (const fd of own) closeAtExit(fd);
  loop.onDispose(() => {
    for (const fd of own) keepAtExit(fd);
  });
  if (wantGuest) GuestDriver.attach(loop);
  return loop;
}

let fallback: Loop | null = null;

/**
 * The thread's default loop, created on first use; every socket class uses it unless given a
 * `loop`.
 *
 * @example
 * ```ts
 * await defaultLoop().sleep(10);
 * ```
 */
export function defaultLoop(): Loop {
  if (!fallback) {
    fallback = createLoop();
    debug(`default loop: ${fallback.backend} in ${fallback.mode} mode`);
  }
  return fallback;
}

/**
 * Runs `fn` with a loop in owner mode: evloop blocks in the kernel between iterations. Use it in
 * Workers (where guest mode is unavailable) and in servers whose I/O is all evloop's.
 *
 * @example
 * ```ts
 * await runMain(async () => {
 *   const listener = await TcpListener.bind({ host: "127.0.0.1", port: 8080 });
 *   for await (const conn of listener) void echo(conn);
 * });
 * ```
 */
export function runMain<T>(fn: () => T | Promise<T>, options: { loop?: EventLoop } = {}): Promise<T> {
  return ownLoop(drivable(options.loop ?? defaultLoop()), fn);
}
