/**
 * Owner mode: `runMain(fn)` drives a loop by blocking in the kernel (epoll_wait, poll) between
 * iterations, instead of waiting for the host's event loop to call it.
 *
 * JavaScript only drains its microtask queue when the stack unwinds, so each iteration yields
 * one host macrotask (setImmediate) before blocking again; everything `fn` chained on resolved
 * operations has then run. When evloop has nothing pending at all, runMain waits for `fn` or for
 * new evloop work on the host loop instead, so a `fn` that awaits a host timer or a dns lookup
 * still finishes.
 *
 * The host's I/O is never held up: the loop also wakes when the thread's own libuv loop has I/O
 * (`wakeOn` with libuv's backend fd), and the yield before the next wait is libuv's turn to
 * handle it. That is what lets `worker.terminate()` end a Worker sitting in runMain (Node wakes
 * the Worker's loop to stop it), delivers a Worker's messages, and on the main thread keeps
 * Node's own sockets, fs and DNS going. It is done on the main thread too: the bench shows no
 * cost (the fd is one more registration, silent unless the host has I/O), and without it a `fn`
 * that awaits host I/O while evloop waits for something else would wait with it. Host timers do
 * not make that fd readable: they still run only when evloop wakes.
 */
import type { Drivable } from "../loop/completion.js";
import { debug } from "../loop/debug.js";
import { hostBackendFd } from "./libuv.js";

/**
 * Where the host's loop has no fd to watch (Windows, whose libuv waits on a completion port of
 * its own), owner mode waits in slices this long and yields to the host between them, so a
 * Worker's messages and `terminate()`, and Node's own I/O and timers, are held up at most this
 * long.
 */
const HOST_SLICE_MS = 50;

const yieldToHost: () => Promise<void> =
  typeof setImmediate === "function" ? () => new Promise((r) => setImmediate(r)) : () => new Promise((r) => setTimeout(r, 0));

/**
 * Runs `fn` with `loop` driven in owner mode, and resolves (or rejects) with its result.
 */
export async function ownLoop<T>(loop: Drivable, fn: () => T | Promise<T>): Promise<T> {
  const slice = watchHost(loop) ? undefined : HOST_SLICE_MS;
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
    if (loop.run(true, slice)) continue;
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

/**
 * Has `loop`'s waits also end when this thread's own libuv loop has I/O (its backend fd is
 * readable), so evloop's blocking wait never holds up the host's I/O: a Worker's messages, the
 * wake-up with which Node terminates a Worker, Node's sockets and thread-pool completions. The
 * next iteration yields to the host first, which handles that I/O; nothing else is needed.
 * Returns false where there is no such fd (Windows): then owner mode waits in slices instead.
 */
function watchHost(loop: Drivable): boolean {
  // A guest loop's own fd is in the host's epoll set: the host's in the loop's would nest them.
  // Its waits are the helper's, so the host is never held up either.
  if (loop.guest) return true;
  const fd = hostBackendFd();
  if (fd < 0) return false;
  try {
    loop.wakeOn(fd);
    return true;
  } catch (e) {
    debug(`owner mode cannot watch the host loop's fd ${fd}: ${String(e)}`);
    return false;
  }
}
