/**
 * The readiness API (mio-style): `Poll` owns a selector, `Registry` registers fds under tokens,
 * `Waker` wakes a blocked `poll()` from any thread.
 */
import { SystemError } from "../sys/errors.js";
import { ERRNO, TARGET } from "../sys/target.js";
import { openWakeup, isWakerHandle, wakeFromHandle, type WakerHandle, type WakeupFd } from "../sys/wakeup.js";
import { Interest, type Events } from "./event.js";
import { AfdSelector } from "./afd.js";
import { EpollSelector } from "./epoll.js";
import { KqueueSelector } from "./kqueue.js";
import { PollSelector } from "./poll.js";
import { checkFd, checkInterest, checkToken, type Selector, type SelectorWaker } from "./selector.js";
import { describeValue } from "../sys/args.js";

/**
 * Names of the readiness backends.
 *
 * @example
 * ```ts
 * const poll = new Poll("poll" satisfies SelectorName);
 * ```
 */
export type SelectorName = "afd" | "epoll" | "kqueue" | "poll";

/** The selector `new Poll()` uses here: AFD on Windows, else epoll, kqueue or poll(2). */
function defaultSelector(): SelectorName {
  if (TARGET.has.iocp) return "afd";
  return TARGET.has.epoll ? "epoll" : TARGET.has.kqueue ? "kqueue" : "poll";
}

/** Throws unless the selector `name` exists on this OS: on Windows only AFD does, and only there. */
function checkSelectorOs(name: SelectorName): void {
  const windows = TARGET.has.iocp;
  if (name === "afd" && !windows) throw new SystemError(ERRNO.EOPNOTSUPP, "Poll", 'the "afd" selector exists on Windows only');
  if (name !== "afd" && windows) {
    throw new SystemError(ERRNO.EOPNOTSUPP, "Poll", `the ${JSON.stringify(name)} selector does not exist on Windows; its readiness API runs on "afd" (the default)`);
  }
}

/** Creates a selector backend by name. */
export function createSelector(name: SelectorName): Selector {
  switch (name) {
    case "afd":
      checkSelectorOs(name);
      return new AfdSelector();
    case "epoll":
    case "kqueue":
    case "poll":
      checkSelectorOs(name);
      return name === "epoll" ? new EpollSelector() : name === "kqueue" ? new KqueueSelector() : new PollSelector();
    default:
      throw new TypeError(`unknown selector backend ${JSON.stringify(name)} (expected "afd", "epoll", "kqueue" or "poll")`);
  }
}

/**
 * Registers fds with a {@link Poll}. Events are edge-triggered: after an event, do I/O until it
 * would block; to receive another event for a direction without draining, call `reregister`.
 *
 * @example
 * ```ts
 * const poll = new Poll();
 * poll.registry.register(fd, 1, Interest.READABLE);
 * poll.registry.reregister(fd, 1, Interest.READABLE | Interest.WRITABLE);
 * poll.registry.deregister(fd);
 * ```
 */
export class Registry {
  readonly #selector: Selector;
  /** Wakers registered here, by token, so `Poll.poll` can reset them. */
  readonly wakers = new Map<number, Waker>();

  constructor(selector: Selector) {
    this.#selector = selector;
    selectors.set(this, selector);
  }

  /** Starts reporting `interest` events for `fd` under `token`. */
  register(fd: number, token: number, interest: Interest): void {
    this.#selector.register(checkFd(fd), checkToken(token), checkInterest(interest));
  }

  /** Changes the token or interest of a registered fd, and re-arms it. */
  reregister(fd: number, token: number, interest: Interest): void {
    this.#selector.reregister(checkFd(fd), checkToken(token), checkInterest(interest));
  }

  /** Stops reporting events for `fd` (do this before closing it). */
  deregister(fd: number): void {
    this.#selector.deregister(checkFd(fd));
  }
}

export type { WakerHandle };

/** Each registry's selector, for the wakers a selector makes itself (kqueue's EVFILT_USER). */
const selectors = new WeakMap<Registry, Selector>();

/**
 * Wakes a {@link Poll} (or an event loop) from any thread: `wake()` makes the next poll report an
 * event with its token. On kqueue it is an EVFILT_USER event, on Windows (AFD) a packet posted to
 * the poll's completion port; elsewhere a wake-up fd registered like any other: an eventfd on
 * Linux, a pipe on the BSDs without EVFILT_USER (`sys/wakeup.ts`).
 *
 * @example
 * ```ts
 * const poll = new Poll();
 * const waker = new Waker(poll.registry, 99);
 * worker.postMessage(waker.handle);          // in the Worker: Waker.fromHandle(h).wake()
 * const events = new Events(8);
 * poll.poll(events);                          // returns with an event for token 99
 * ```
 */
export class Waker {
  /** The waker fd this thread owns; null for a reference to another thread's waker or a selector's own. */
  readonly #wakeup: WakeupFd | null;
  /** The selector's own waker (kqueue's EVFILT_USER, AFD's completion packet), when it has one. */
  readonly #own: SelectorWaker | null;
  readonly #handle: WakerHandle;
  #registry: Registry | null;
  #token = 0;

  /** Creates a waker registered under `token`. */
  constructor(registry: Registry, token: number) {
    if (adopting !== null) {
      // Built by fromHandle: a reference to another thread's waker, which it does not own.
      this.#wakeup = null;
      this.#own = null;
      this.#handle = adopting;
      this.#registry = null;
      return;
    }
    const own = selectors.get(registry)?.waker?.(checkToken(token)) ?? null;
    if (own !== null) {
      this.#wakeup = null;
      this.#own = own;
      this.#handle = own.handle;
      this.#registry = registry;
      this.#token = token;
      registry.wakers.set(token, this);
      return;
    }
    this.#own = null;
    const wakeup = openWakeup();
    this.#wakeup = wakeup;
    this.#handle = wakeup.handle;
    this.#registry = registry;
    this.#token = token;
    try {
      registry.register(wakeup.fd, token, Interest.READABLE);
    } catch (e) {
      wakeup.close();
      throw e;
    }
    registry.wakers.set(token, this);
  }

  /** A waker for a handle received from another thread; `close()` on it does nothing. */
  static fromHandle(handle: WakerHandle): Waker {
    if (!isWakerHandle(handle)) throw new TypeError("not a WakerHandle");
    adopting = { ...handle };
    try {
      return new Waker(null as unknown as Registry, 0);
    } finally {
      adopting = null;
    }
  }

  /** What to send to another thread so it can wake this one. */
  get handle(): WakerHandle {
    return { ...this.#handle };
  }

  /** Wakes the poll; safe to call from any thread, any number of times. */
  wake(): void {
    if (this.#wakeup !== null) this.#wakeup.wake();
    else if (this.#own !== null) this.#own.wake();
    else wakeFromHandle(this.#handle);
  }

  /** Consumes pending wake-ups; `Poll.poll` calls it before reporting the waker's event. */
  reset(): void {
    if (this.#wakeup === null) return;
    this.#wakeup.drain();
    // On the poll(2) backend a fired direction is disarmed; arm it for the next wake().
    this.#registry?.reregister(this.#wakeup.fd, this.#token, Interest.READABLE);
  }

  /** Deregisters and closes the waker. Handles held by other threads stop working. */
  close(): void {
    if (this.#registry === null) return;
    if (this.#own !== null) {
      this.#registry.wakers.delete(this.#token);
      this.#registry = null;
      this.#own.close();
      return;
    }
    if (this.#wakeup === null) return;
    this.#registry.wakers.delete(this.#token);
    this.#registry.deregister(this.#wakeup.fd);
    this.#registry = null;
    this.#wakeup.close();
  }
}

let adopting: WakerHandle | null = null;

/**
 * Waits for readiness events on registered fds (mio's `Poll`). On Windows it polls sockets through
 * the AFD driver (`"afd"`, the only selector there), with the same edge semantics.
 *
 * @example
 * ```ts
 * const poll = new Poll();              // best backend; or new Poll("poll")
 * const [r, w] = Pipe.create();
 * poll.registry.register(r.fd, 7, Interest.READABLE);
 * await w.write(new Uint8Array([1]));
 * const events = new Events(16);
 * poll.poll(events, 1000);
 * for (const e of events) if (e.token === 7 && e.isReadable) console.log("ready");
 * ```
 */
export class Poll {
  readonly #selector: Selector;
  readonly registry: Registry;

  constructor(backend: SelectorName = defaultSelector()) {
    this.#selector = createSelector(backend);
    this.registry = new Registry(this.#selector);
  }

  /** The backend's name (`afd`, `epoll`, `kqueue`, `poll`). */
  get backend(): string {
    return this.#selector.name;
  }

  /**
   * Blocks up to `timeout` ms (undefined: until an event; 0: not at all) and fills `events`.
   * Blocks the whole thread: use it in a Worker, or with timeout 0.
   */
  poll(events: Events, timeout?: number): void {
    let ms = -1;
    if (timeout !== undefined) {
      if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout < 0) {
        throw new RangeError(`timeout must be a non-negative number of ms, got ${describeValue(timeout)}`);
      }
      // Round up so a sub-millisecond timeout does not turn into a busy poll.
      ms = Math.min(Math.ceil(timeout), 0x7fffffff);
    }
    this.#selector.select(events, ms);
    if (this.registry.wakers.size > 0) {
      for (const e of events) this.registry.wakers.get(e.token)?.reset();
    }
  }

  /** Closes the selector; registered fds are not closed. */
  close(): void {
    this.#selector.close();
  }
}
