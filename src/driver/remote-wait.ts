/**
 * Guest mode for a loop no host can poll (IOCP): a helper thread waits on the loop's completion
 * port and wakes Node's main thread, which runs the loop, when completions arrive.
 *
 * libuv's loop on Windows is a completion port of its own, and a completion port cannot be
 * watched by another one, so the guest driver's usual way (uv_poll on the fd the loop names)
 * has nothing to watch. Instead a Worker (`remote-wait-worker.ts`) blocks in
 * GetQueuedCompletionStatusEx on the loop's port, hands the entries over through memory both
 * threads see (`RemoteWait`, `loop/completion.ts`), and wakes the main thread with
 * `uv_async_send` on a uv_async_t made here. That wake-up was chosen over the others that work
 * (measured under Wine, `../shared/tools/wine-probe.mjs` section g) because it is the one that:
 * is libuv's documented thread-safe call; coalesces (sends before the callback runs make one
 * callback, and the helper waits for the loop to take each batch anyway); costs no thread-pool
 * thread (koffi's `.async` would hold one of libuv's four for as long as the loop lives); works
 * while the main thread is busy in synchronous code (a koffi callback called from the helper
 * would block it, and the helper, until then); needs no JavaScript on the helper's side for
 * each wake-up beyond the call (`postMessage` would serialise a message and run the main
 * thread's message port machinery); and wakes for any completion, not only a socket's readiness
 * (`uv_poll_init_socket`).
 *
 * Lifetime: the Worker and the uv_async_t are unref'd, so neither keeps the process alive (the
 * guest driver's keep-alive timer does that, exactly while the loop has work). A thread blocked
 * in a native wait cannot be terminated, and Node's exit waits for its Workers, so the helper is
 * stopped (`state[1]` = 1, a notify, a wake-up packet) on the process's `exit`, and at the
 * driver's close if the loop's dispose did not stop it. The uv_async_t is closed only once the
 * Worker has exited: until then the helper may still send to it.
 */
import { Worker } from "node:worker_threads";
import type { RemoteWait } from "../loop/completion.js";
import { debug } from "../loop/debug.js";
import { postTo } from "../sys/windows/port.js";
import { UvAsync } from "./libuv.js";
import type { RemoteWaitData } from "./remote-wait-worker.js";

const STOP = 1;

/**
 * Stops the helper thread of `wait` unless it was stopped already: `state[1]` = 1, a notify for
 * a helper waiting for the loop to take its batch, a `wakeKey` packet for one blocked in the
 * port. Safe to call more than once, and from the loop's own stop too: only the first stopper
 * posts, so no packet goes to a port the loop may have closed since.
 */
export function stopRemoteWait(wait: RemoteWait): void {
  if (Atomics.compareExchange(wait.state, STOP, 0, 1) !== 0) return;
  Atomics.notify(wait.state, 0);
  try {
    postTo(wait.port, wait.wakeKey);
  } catch (e) {
    // The port is gone: the helper's wait has failed, and it stopped.
    debug(`cannot post the wake-up that stops the completion port's helper thread: ${String(e)}`);
  }
}

/** The waits whose helper is running: all are stopped on the process's `exit`. */
const running = new Set<RemoteWait>();

function stopAllAtExit(): void {
  for (const wait of running) stopRemoteWait(wait);
}

/** The helper thread of one guest loop, and the uv_async_t it wakes the main thread with. */
export class RemoteWaiter {
  readonly #wait: RemoteWait;
  readonly #async: UvAsync;
  readonly #worker: Worker;
  #exited = false;
  #closing = false;
  /** Settles when the helper thread has ended. */
  readonly exited: Promise<void>;

  /** Starts the helper thread for `wait`; `onWake` runs on this thread after each batch. */
  constructor(wait: RemoteWait, onWake: () => void) {
    this.#wait = wait;
    this.#async = new UvAsync(onWake);
    const data: RemoteWaitData = {
      port: wait.port,
      entries: wait.entries,
      capacity: wait.capacity,
      state: wait.state,
      async: this.#async.address,
    };
    try {
      // execArgv: [] — the helper needs none of the process's flags, and some refuse a Worker
      // (a script run with `node --input-type=module -e …` would fail to start it).
      this.#worker = new Worker(new URL("./remote-wait-worker.js", import.meta.url), { workerData: data, execArgv: [] });
    } catch (e) {
      this.#async.close();
      throw e;
    }
    this.#worker.unref();
    if (running.size === 0) process.on("exit", stopAllAtExit);
    running.add(wait);
    this.#worker.on("error", (e: unknown) => {
      if (Atomics.load(wait.state, STOP) === 1) return;
      const why = e instanceof Error ? e.message : String(e);
      process.emitWarning(`evloop: the thread that waits on the loop's completion port failed (${why}); the loop's operations will not complete`);
    });
    this.exited = new Promise((resolve) => {
      this.#worker.once("exit", () => {
        this.#exited = true;
        running.delete(wait);
        if (running.size === 0) process.off("exit", stopAllAtExit);
        if (this.#closing) this.#async.close();
        resolve();
      });
    });
    debug("guest driver: helper thread started on the loop's completion port");
  }

  /** Whether the helper has delivered a batch the loop has not taken yet. */
  get batchWaiting(): boolean {
    return Atomics.load(this.#wait.state, 0) !== 0;
  }

  /**
   * Detaches: stops the helper unless the loop has (checked after the current task, since the
   * driver closes before the loop's dispose has drained its operations through the helper), and
   * closes the uv_async_t once the helper has exited.
   */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#exited) this.#async.close();
    queueMicrotask(() => {
      if (Atomics.load(this.#wait.state, STOP) === 1) return;
      debug("guest driver: the loop's dispose left its helper thread running; stopping it");
      stopRemoteWait(this.#wait);
    });
  }
}
