/**
 * Owner mode: `runMain(fn)` drives a loop by blocking in the kernel (epoll_wait, poll) between
 * iterations, instead of waiting for the host's event loop to call it.
 *
 * JavaScript only drains its microtask queue when the stack unwinds, so each iteration yields
 * one host macrotask (setImmediate) before blocking again; everything `fn` chained on resolved
 * operations has then run. While evloop blocks, the host's own timers and I/O wait: this is the
 * mode for Workers and dedicated servers whose I/O is all evloop's. When evloop has nothing
 * pending at all, runMain waits for `fn` or for new evloop work on the host loop instead, so a
 * `fn` that awaits a host timer or a dns lookup still finishes.
 */
import type { Drivable } from "../loop/completion.js";

const yieldToHost: () => Promise<void> =
  typeof setImmediate === "function" ? () => new Promise((r) => setImmediate(r)) : () => new Promise((r) => setTimeout(r, 0));

/**
 * Runs `fn` with `loop` driven in owner mode, and resolves (or rejects) with its result.
 */
export async function ownLoop<T>(loop: Drivable, fn: () => T | Promise<T>): Promise<T> {
  let done = false;
  const result = (async () => fn())();
  const finished = result.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  while (!done) {
    await yieldToHost();
    if (done) break;
    if (loop.run(true)) continue;
    // Nothing is registered or pending in evloop: wait for fn, or for it to start evloop work.
    let stop = (): void => {};
    const work = new Promise<void>((resolve) => {
      stop = loop.onChange(resolve);
    });
    await Promise.race([finished, work]);
    stop();
  }
  return result;
}
