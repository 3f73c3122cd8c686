/**
 * Guest mode: evloop runs inside the runtime's own event loop and never blocks the thread.
 *
 * The fds the loop names through `watch` — the backend's own fd (the epoll fd, the io_uring ring
 * fd), or each armed fd where there is none (poll(2)) — are watched by libuv poll handles on
 * Node, and by a helper thread blocked in poll(2) where there is no libuv (Bun, Deno:
 * `thread-poll.ts`); when one turns ready, the loop runs one non-blocking iteration. A loop with nothing a host can poll
 * (IOCP: libuv's loop on Windows is a completion port, which cannot watch another) hands out a
 * `RemoteWait` instead, and a helper thread waits on its port and wakes this thread through a
 * uv_async_t (`remote-wait.ts`). Loop timers are mirrored by one host timer set for the earliest
 * deadline.
 * Keep-alive follows Node's rule for sockets: a host timer that is ref'd exactly while the loop
 * has pending operations, timers or open listeners, so `node script.js` exits when evloop has
 * nothing left to do, and `unref()` lets it exit earlier.
 */
import type { Drivable } from "../loop/completion.js";
import { clock } from "../loop/timers.js";
import { debug } from "../loop/debug.js";
import { hostLoopAvailable, UvPoll } from "./libuv.js";
import { RemoteWaiter } from "./remote-wait.js";
import { ThreadPoll } from "./thread-poll.js";

const KEEPALIVE_MS = 0x7fffffff;

/** What watches the loop's fds for the host: libuv's poll handles, or a helper thread. */
interface FdWatch {
  /** Watches `fd` for `interest` (Interest flags); 0 stops watching it. */
  set(fd: number, interest: number): void;
  /** Where present, how deferred operations get their next iteration (instead of setImmediate). */
  kick?(): void;
  close(): void;
}

/** One uv_poll_t per fd on Node's loop. */
class UvPolls implements FdWatch {
  readonly #polls = new Map<number, UvPoll>();
  readonly #onReady: () => void;

  constructor(onReady: () => void) {
    this.#onReady = onReady;
  }

  set(fd: number, interest: number): void {
    let p = this.#polls.get(fd);
    if (interest === 0) {
      if (p) {
        p.close();
        this.#polls.delete(fd);
      }
      return;
    }
    if (!p) {
      p = new UvPoll(fd, this.#onReady);
      this.#polls.set(fd, p);
    }
    p.set(interest);
  }

  close(): void {
    for (const p of this.#polls.values()) p.close();
    this.#polls.clear();
  }
}

/** Attaches a loop to the runtime's event loop. */
export class GuestDriver {
  readonly #loop: Drivable;
  readonly #fds: FdWatch;
  readonly #keepAlive: ReturnType<typeof setInterval>;
  /** The helper thread waiting on the loop's completion port, for a loop no host can poll. */
  readonly #remote: RemoteWaiter | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerDeadline = Infinity;
  #syncQueued = false;
  #immediate = false;
  #closed = false;
  readonly #unlisten: () => void;
  readonly #tick = (): void => this.tick();
  readonly #sync = (): void => this.#changed();

  /** Attaches `loop` to Node's event loop until the loop is disposed. */
  static attach(loop: Drivable): GuestDriver {
    const driver = new GuestDriver(loop);
    loop.onDispose(() => driver.close());
    return driver;
  }

  private constructor(loop: Drivable) {
    this.#loop = loop;
    this.#keepAlive = setInterval(() => {}, KEEPALIVE_MS);
    this.#keepAlive.unref();
    this.#fds = hostLoopAvailable() ? new UvPolls(this.#tick) : ThreadPoll.watch(this.#tick);
    loop.guest = true;
    loop.watch((fd, interest) => this.#fds.set(fd, interest));
    const wait = loop.remoteWait();
    if (wait !== null) {
      try {
        this.#remote = new RemoteWaiter(wait, this.#tick);
      } catch (e) {
        clearInterval(this.#keepAlive);
        loop.guest = false;
        throw e;
      }
    }
    this.#unlisten = loop.onChange(() => {
      if (this.#syncQueued) return;
      this.#syncQueued = true;
      queueMicrotask(this.#sync);
    });
    debug(`guest driver attached to ${loop.backend}`);
  }

  /** One non-blocking iteration, then re-sync keep-alive and the host timer. */
  tick(): void {
    if (this.#closed) return;
    this.#immediate = false;
    try {
      this.#loop.run(false);
    } finally {
      this.#doSync();
    }
  }

  /** The loop's pending work may have changed. */
  #changed(): void {
    // A batch the helper delivered while the loop was idle (a wake-up packet: the core's run
    // does not wait when nothing is pending) is still untaken, and the helper waits for it to
    // be taken before it dequeues again: run the loop now that it has work, or no packet would
    // ever wake it. Only here: after a tick the loop has had its turn, and retrying would spin.
    if (this.#remote?.batchWaiting) this.tick();
    else this.#doSync();
  }

  #doSync(): void {
    this.#syncQueued = false;
    if (this.#closed) return;
    if (this.#loop.hasDeferred && !this.#immediate) {
      // Operations held back by the fast-path budget: run them after the host's pending work.
      this.#immediate = true;
      if (this.#fds.kick) this.#fds.kick();
      else setImmediate(this.#tick);
    }
    if (this.#loop.hasRefedWork) this.#keepAlive.ref();
    else this.#keepAlive.unref();
    const deadline = this.#loop.nextDeadline ?? Infinity;
    if (deadline === this.#timerDeadline) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerDeadline = deadline;
    if (deadline === Infinity) return;
    // Host timers have 1 ms resolution: round up so the loop's timer is due when we run.
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerDeadline = Infinity;
      this.tick();
    }, Math.max(0, Math.ceil(deadline - clock())));
    this.#timer.unref();
  }

  /** The helper thread's end, when the loop is waited on by one (tests use it); else null. */
  get helperExited(): Promise<void> | null {
    return this.#remote?.exited ?? null;
  }

  /** Detaches from Node's loop (called when the loop is disposed). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#fds.close();
    this.#remote?.close();
    if (this.#timer) clearTimeout(this.#timer);
    clearInterval(this.#keepAlive);
    this.#unlisten();
    this.#loop.guest = false;
  }
}
