/**
 * The per-thread I/O queue (nim-sys's `ioqueue` semantics): `wait(fd, event)` parks a promise
 * until the thread's selector reports the fd ready for that event; `poll`/`run` drive it.
 *
 * Bookkeeping: one entry per fd, with at most one waiter per event ("read", "write",
 * "priority"), the interest registered with the selector (the union of what the waiters asked
 * for, or 0), the file's identity when the entry was made, and `persist`. Each registration gets
 * a fresh token, so an event for a registration that is gone (epoll keeps one alive while a
 * dup of a closed fd lives) is recognised as stale and ignored.
 *
 * Level semantics over edge-triggered selectors: every `wait` on a registered fd re-registers
 * it (epoll_ctl MOD, kqueue's delete and add, poll's re-arm), which makes the selector report
 * the fd again if it is ready now, so a wait never misses readiness that came before it.
 *
 * Premature close (an fd closed while a wait on it is pending): epoll and kqueue drop a closed
 * fd's registration silently, and the poll selector forgets a POLLNVAL fd, so the queue checks
 * the fds itself, with {@link fileIdentity} (one fstat(2) on Linux, fcntl(F_GETFD) elsewhere):
 * - an fd the selector reports is checked before its waiters resolve (a dup of the closed fd
 *   can keep epoll reporting it; a reused number can make poll(2) report another file);
 * - every fd with a waiter is checked whenever a poll finds nothing ready, before it would block
 *   and when a blocking select returns without resolving anything.
 * So a check costs one system call per fd, paid for the fds reported and, when the queue is
 * idle, for every waited fd; a thread blocked in the selector cannot notice a close made by
 * another thread until its wait ends.
 */
import { defaultLoop } from "../driver/create.js";
import { checkFd, describeValue } from "../sys/args.js";
import { SystemError } from "../sys/errors.js";
import { fileIdentity } from "../sys/file-identity.js";
import { ERRNO, TARGET } from "../sys/target.js";
import { Events, Interest, Ready } from "../selector/event.js";
import { createSelector, type SelectorName } from "../selector/registry.js";
import type { Selector } from "../selector/selector.js";
import { PrematureCloseError, WaitAbortedError, type IoEvent } from "./io-queue-errors.js";

export { PrematureCloseError, WaitAbortedError, type IoEvent };

/**
 * What the selector reported for an fd when a wait resolved. Every field is present; several
 * may be true at once (a read waiter on a reset connection sees `read`, `error` and `hangup`).
 *
 * @example
 * ```ts
 * const got: IoReport = await IoQueue.current().wait(fd, "read");
 * if (got.hangup) console.log("the peer closed its end");
 * ```
 */
export interface IoReport {
  /** Reading will not block (data, EOF, or an error to read). */
  readonly read: boolean;
  /** Writing will not block. */
  readonly write: boolean;
  /** Priority (out-of-band) data is waiting. */
  readonly priority: boolean;
  /** The fd has a pending error (a reset connection …). */
  readonly error: boolean;
  /** The peer closed its end, or the connection is gone (EPOLLRDHUP/EPOLLHUP, POLLHUP, EV_EOF). */
  readonly hangup: boolean;
}

/**
 * Options of `new IoQueue()`.
 *
 * @example
 * ```ts
 * const q = new IoQueue({ selector: "poll", capacity: 64 } satisfies IoQueueOptions);
 * ```
 */
export interface IoQueueOptions {
  /** The readiness selector: "epoll", "kqueue" or "poll"; by default epoll, else kqueue, else poll. */
  readonly selector?: Exclude<SelectorName, "afd">;
  /** Events taken from the selector per poll (default 256). */
  readonly capacity?: number;
}

/**
 * Options of {@link IoQueue.run}.
 *
 * @example
 * ```ts
 * await IoQueue.current().run({ blocking: false } satisfies IoQueueRunOptions);
 * ```
 */
export interface IoQueueRunOptions {
  /**
   * true (the default): wait in the selector, blocking the thread (a Worker, a script).
   * false: never block; wait for the selector's fd through evloop's default loop (guest mode),
   * in slices of `sliceMs`, after each of which the queue checks for closed fds.
   */
  readonly blocking?: boolean;
  /** With `blocking: false`, the longest wait between checks, in ms (default 50). */
  readonly sliceMs?: number;
}

/**
 * Counters of an {@link IoQueue}, for tests and diagnostics.
 *
 * @example
 * ```ts
 * const { registered, waiters } = IoQueue.current().stats satisfies IoQueueStats;
 * ```
 */
export interface IoQueueStats {
  /** fds registered with the selector now. */
  readonly registered: number;
  /** Pending waits. */
  readonly waiters: number;
  /** Registrations made so far (a persisted fd is registered once). */
  readonly registrations: number;
  /** Deregistrations made so far. */
  readonly deregistrations: number;
  /** fds checked for a premature close so far (one system call each). */
  readonly closeChecks: number;
}

interface Waiter {
  readonly resolve: (report: IoReport) => void;
  readonly reject: (error: Error) => void;
}

interface Entry {
  readonly fd: number;
  /** The token of the current registration (0: not registered). */
  token: number;
  /** The interest registered with the selector (0: not registered). */
  interest: number;
  /** The file's identity when the entry was made (`fileIdentity`). */
  identity: string;
  persist: boolean;
  read: Waiter | null;
  write: Waiter | null;
  priority: Waiter | null;
}

const EVENTS: readonly IoEvent[] = ["read", "write", "priority"];
const INTEREST: Readonly<Record<IoEvent, number>> = { read: Interest.READABLE, write: Interest.WRITABLE, priority: Interest.PRIORITY };
/** The readiness that ends a wait for each event; an error or a hang-up ends every wait. */
const WAKES: Readonly<Record<IoEvent, number>> = {
  read: Ready.READABLE,
  write: Ready.WRITABLE,
  priority: Ready.PRIORITY | Ready.ERROR | Ready.READ_CLOSED | Ready.WRITE_CLOSED,
};

function defaultSelector(): Exclude<SelectorName, "afd"> {
  return TARGET.has.epoll ? "epoll" : TARGET.has.kqueue ? "kqueue" : "poll";
}

function reportOf(readiness: number): IoReport {
  return {
    read: (readiness & Ready.READABLE) !== 0,
    write: (readiness & Ready.WRITABLE) !== 0,
    priority: (readiness & Ready.PRIORITY) !== 0,
    error: (readiness & Ready.ERROR) !== 0,
    hangup: (readiness & (Ready.READ_CLOSED | Ready.WRITE_CLOSED)) !== 0,
  };
}

function checkEvent(event: unknown): IoEvent {
  if (event !== "read" && event !== "write" && event !== "priority") {
    throw new TypeError(`event must be "read", "write" or "priority", got ${describeValue(event)}`);
  }
  return event;
}

/** Resolves after the host's next turn: every microtask has run, and its timers and I/O too. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => (typeof setImmediate === "function" ? setImmediate(resolve) : setTimeout(resolve, 0)));
}

let current: IoQueue | null = null;

/**
 * A per-thread I/O queue: wait for an fd to be readable, writable or to have priority data, on
 * the thread's readiness selector (epoll, kqueue or poll(2); Unix only). Modelled on nim-sys's
 * `ioqueue`:
 *
 * - `wait(fd, event)` resolves with what was reported ({@link IoReport}); one waiter per fd and
 *   event per queue: a second one throws synchronously.
 * - An fd is registered while it has a waiter and deregistered when it has none, unless
 *   `persist(fd)` keeps it registered between waits (saving a registration per wait).
 * - `unregister(fd)` forgets the fd; its pending waits reject with a {@link WaitAbortedError}.
 * - An fd closed while a wait on it is pending is detected and the wait rejects with a
 *   {@link PrematureCloseError} (`err.fd`) — never a hang (see the file's header for the cost).
 * - `poll(timeout)` collects what became ready and resolves those waits; `run()` polls until no
 *   wait is left; `running` says whether any is.
 *
 * @example
 * ```ts
 * import { IoQueue, Pipe } from "evloop";
 * const q = IoQueue.current();
 * const [r, w] = Pipe.create();
 * const got = q.wait(r.fd, "read");
 * await w.write(new Uint8Array([1]));
 * await q.run();                       // blocks this thread until every wait resolved
 * console.log((await got).read);       // true
 * ```
 */
export class IoQueue {
  readonly #selector: Selector;
  readonly #events: Events;
  readonly #fds = new Map<number, Entry>();
  readonly #tokens = new Map<number, Entry>();
  #nextToken = 1;
  #waiters = 0;
  #registrations = 0;
  #deregistrations = 0;
  #closeChecks = 0;
  #closed = false;

  /**
   * A queue of its own, on the selector `options.selector` names; most code uses
   * {@link IoQueue.current} instead. Its waits and rules are independent of the thread's queue.
   * Throws EOPNOTSUPP on Windows (no epoll, kqueue or poll(2) selector there).
   *
   * @example
   * ```ts
   * const q = new IoQueue({ selector: "poll" });
   * // … q.wait(fd, "read"); q.poll(100);
   * q.close();
   * ```
   */
  constructor(options: IoQueueOptions = {}) {
    if (TARGET.has.iocp) throw new SystemError(ERRNO.EOPNOTSUPP, "IoQueue", "the I/O queue needs epoll, kqueue or poll(2); Windows has none of them");
    const capacity = options.capacity ?? 256;
    this.#selector = createSelector(options.selector ?? defaultSelector());
    try {
      this.#events = new Events(capacity);
    } catch (e) {
      this.#selector.close();
      throw e;
    }
  }

  /**
   * This thread's queue, made on first use with the platform's best selector. Each thread (the
   * main thread, every Worker) has its own.
   *
   * @example
   * ```ts
   * const q = IoQueue.current();
   * q === IoQueue.current();   // true on this thread; a Worker gets another
   * ```
   */
  static current(): IoQueue {
    return (current ??= new IoQueue());
  }

  /**
   * The selector's name: "epoll", "kqueue" or "poll".
   *
   * @example
   * ```ts
   * console.log(IoQueue.current().backend); // "epoll" on Linux
   * ```
   */
  get backend(): string {
    return this.#selector.name;
  }

  /**
   * Whether any wait is pending.
   *
   * @example
   * ```ts
   * while (q.running) q.poll();
   * ```
   */
  get running(): boolean {
    return this.#waiters > 0;
  }

  /**
   * Counters: fds registered now, pending waits, registrations and deregistrations made, fds
   * checked for a premature close.
   *
   * @example
   * ```ts
   * q.persist(fd);
   * await q.wait(fd, "read"); await q.wait(fd, "read");
   * q.stats.registrations;   // 1: the persisted fd stayed registered
   * ```
   */
  get stats(): IoQueueStats {
    let registered = 0;
    for (const e of this.#fds.values()) if (e.interest !== 0) registered++;
    return { registered, waiters: this.#waiters, registrations: this.#registrations, deregistrations: this.#deregistrations, closeChecks: this.#closeChecks };
  }

  /**
   * Waits until `fd` is ready for `event` ("read", "write" or "priority": out-of-band data, as
   * TCP's urgent byte; kqueue has no such filter and refuses it), resolving with everything the
   * selector reported; an error or a hang-up ends a wait too (with `error`/`hangup` set).
   * Readiness that came before the wait counts: a ready fd resolves at the next poll.
   *
   * Throws synchronously: a TypeError for a bad fd or event; a SystemError EBUSY when `fd`
   * already has a waiter for `event` on this queue; EBADF when `fd` is not open; the selector's
   * error when it refuses the fd (epoll: EPERM for a regular file). Rejects with a
   * {@link PrematureCloseError} when `fd` is closed before it is ready, and with a
   * {@link WaitAbortedError} on `unregister(fd)` or `close()`.
   *
   * @example
   * ```ts
   * const got = await IoQueue.current().wait(socketFd, "write");
   * if (got.write) send(socketFd, bytes);
   * ```
   */
  wait(fd: number, event: IoEvent): Promise<IoReport> {
    checkFd(fd);
    checkEvent(event);
    this.#checkOpen();
    let entry = this.#fds.get(fd);
    if (entry?.[event]) {
      throw new SystemError(ERRNO.EBUSY, "IoQueue.wait", `fd ${fd} already has a "${event}" waiter on this thread's I/O queue (one per fd and event)`);
    }
    const identity = fileIdentity(fd);
    if (entry !== undefined && entry.identity !== identity) {
      // The number names another file than when the entry was made: whatever waited on the old
      // one was closed under it, and the old registration is useless.
      this.#prematureClose(entry, true);
      entry = undefined;
    }
    if (entry === undefined) {
      entry = { fd, token: 0, interest: 0, identity, persist: false, read: null, write: null, priority: null };
      this.#fds.set(fd, entry);
    }
    const interest = this.#interestOf(entry) | INTEREST[event];
    this.#register(entry, interest);
    const e = entry;
    return new Promise<IoReport>((resolve, reject) => {
      e[event] = { resolve, reject };
      this.#waiters++;
    });
  }

  /**
   * Keeps `fd` registered with the selector between waits (`on` false: deregister it again once
   * it has no waiter). Saves a registration and a deregistration per wait on an fd waited on
   * often; `unregister(fd)` before closing it.
   *
   * @example
   * ```ts
   * q.persist(listenerFd);
   * for (;;) { await q.wait(listenerFd, "read"); accept(listenerFd); }
   * ```
   */
  persist(fd: number, on = true): void {
    checkFd(fd);
    this.#checkOpen();
    let entry = this.#fds.get(fd);
    if (entry === undefined) {
      if (!on) return;
      entry = { fd, token: 0, interest: 0, identity: fileIdentity(fd), persist: true, read: null, write: null, priority: null };
      this.#fds.set(fd, entry);
      return;
    }
    entry.persist = on;
    if (!on) this.#settleRegistration(entry);
  }

  /**
   * Forgets `fd`: deregisters it (a persisted one too) and rejects its pending waits with a
   * {@link WaitAbortedError}. Returns whether the queue knew the fd. Call it before closing an
   * fd the queue may still hold.
   *
   * @example
   * ```ts
   * q.unregister(fd);
   * close(fd);
   * ```
   */
  unregister(fd: number): boolean {
    checkFd(fd);
    const entry = this.#fds.get(fd);
    if (entry === undefined) return false;
    this.#remove(entry, (event) => new WaitAbortedError(fd, event, "the fd was unregistered"));
    return true;
  }

  /**
   * Collects what became ready and settles those waits; returns how many it settled. `timeout`
   * in ms: undefined waits until at least one wait settles, 0 does not block, a positive value
   * waits at most that long (and may return 0 earlier). With no wait pending it returns 0 at
   * once. Blocks the thread while it waits: use it in a Worker or a script, or with 0.
   *
   * @example
   * ```ts
   * const settled = q.poll(0);   // never blocks
   * ```
   */
  poll(timeout?: number): number {
    let ms = -1;
    if (timeout !== undefined) {
      if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout < 0) {
        throw new RangeError(`timeout must be a non-negative number of ms, got ${describeValue(timeout)}`);
      }
      ms = Math.min(Math.ceil(timeout), 0x7fffffff);
    }
    this.#checkOpen();
    if (this.#waiters === 0) return 0;
    // What is ready now; when nothing is, the fds with waiters are checked for a premature close
    // before anything blocks.
    let settled = this.#select(0);
    if (settled > 0) return settled;
    settled = this.#checkAll();
    if (settled > 0 || ms === 0) return settled;
    for (;;) {
      if (this.#waiters === 0) return settled;
      settled = this.#select(ms);
      if (settled === 0) settled = this.#checkAll();
      // Forever means until something settles: an event for a stale registration, or a signal
      // (EINTR), ends the select early without settling anything.
      if (settled > 0 || ms !== -1) return settled;
    }
  }

  /**
   * Polls until no wait is left. Between polls it lets the host run a turn (every microtask,
   * so the code a settled wait resumes can wait again before the queue decides it is empty).
   * By default it blocks the thread in the selector while nothing is ready; with
   * `{ blocking: false }` it never blocks: it waits for the selector's fd through evloop's
   * default loop (guest mode on Node's main thread), in slices of `sliceMs` after each of which
   * closed fds are checked for, and where the selector has no fd to wait on (poll(2),
   * libkqueue) it polls once every millisecond.
   *
   * @example
   * ```ts
   * q.wait(a, "read").then(onA);
   * q.wait(b, "write").then(onB);
   * await q.run();                        // in a Worker; on the main thread: run({ blocking: false })
   * ```
   */
  async run(options: IoQueueRunOptions = {}): Promise<void> {
    const blocking = options.blocking ?? true;
    const slice = options.sliceMs ?? 50;
    if (!(slice > 0)) throw new RangeError(`sliceMs must be a positive number, got ${describeValue(slice)}`);
    this.#checkOpen();
    for (;;) {
      await nextTurn();
      if (this.#closed || this.#waiters === 0) return;
      if (blocking) {
        this.poll();
        continue;
      }
      if (this.poll(0) > 0 || this.#waiters === 0) continue;
      await this.#hostWait(slice);
    }
  }

  /**
   * Closes the queue: every pending wait rejects with a {@link WaitAbortedError}, every fd is
   * deregistered (none is closed) and the selector is closed. The thread's queue
   * (`IoQueue.current()`) can be closed too; the next `current()` makes a new one.
   *
   * @example
   * ```ts
   * const q = new IoQueue({ selector: "poll" });
   * q.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    for (const entry of [...this.#fds.values()]) this.#remove(entry, (event) => new WaitAbortedError(entry.fd, event, "the I/O queue was closed"));
    this.#closed = true;
    this.#selector.close();
    if (current === this) current = null;
  }

  #checkOpen(): void {
    if (this.#closed) throw new SystemError(ERRNO.EBADF, "IoQueue", "the I/O queue is closed");
  }

  #interestOf(entry: Entry): number {
    let interest = 0;
    for (const event of EVENTS) if (entry[event] !== null) interest |= INTEREST[event];
    return interest;
  }

  /** Registers `entry` with `interest`, or re-registers it (which re-reports a ready fd). */
  #register(entry: Entry, interest: number): void {
    if (entry.interest === 0) {
      const token = this.#nextToken++;
      try {
        this.#selector.register(entry.fd, token, interest);
      } catch (e) {
        if (!this.#hasWaiters(entry) && !entry.persist) this.#fds.delete(entry.fd);
        throw e;
      }
      entry.token = token;
      entry.interest = interest;
      this.#tokens.set(token, entry);
      this.#registrations++;
      return;
    }
    this.#selector.reregister(entry.fd, entry.token, interest);
    entry.interest = interest;
  }

  #hasWaiters(entry: Entry): boolean {
    return entry.read !== null || entry.write !== null || entry.priority !== null;
  }

  /** Deregisters an entry left without waiters unless it persists; forgets one with neither. */
  #settleRegistration(entry: Entry): void {
    if (this.#hasWaiters(entry) || entry.persist) return;
    this.#deregister(entry);
    this.#fds.delete(entry.fd);
  }

  #deregister(entry: Entry): void {
    if (entry.interest === 0) return;
    this.#tokens.delete(entry.token);
    entry.interest = 0;
    entry.token = 0;
    this.#deregistrations++;
    try {
      this.#selector.deregister(entry.fd);
    } catch (e) {
      // A closed fd (EBADF), or one the selector already forgot (ENOENT: poll's POLLNVAL, epoll's
      // automatic removal) is deregistered already.
      if (!(e instanceof SystemError) || (e.code !== "EBADF" && e.code !== "ENOENT")) throw e;
    }
  }

  /** Deregisters and forgets `entry`, rejecting its waits with `error(event)`; returns how many. */
  #remove(entry: Entry, error: (event: IoEvent) => Error): number {
    if (this.#fds.get(entry.fd) === entry) this.#fds.delete(entry.fd);
    this.#deregister(entry);
    let count = 0;
    for (const event of EVENTS) {
      const waiter = entry[event];
      if (waiter === null) continue;
      entry[event] = null;
      this.#waiters--;
      count++;
      waiter.reject(error(event));
    }
    return count;
  }

  #prematureClose(entry: Entry, reused: boolean): number {
    return this.#remove(entry, (event) => new PrematureCloseError(entry.fd, event, reused));
  }

  /** Whether `entry`'s fd still names its file; if not, its waits reject (premature close). */
  #stillOpen(entry: Entry): boolean {
    this.#closeChecks++;
    let identity: string;
    try {
      identity = fileIdentity(entry.fd);
    } catch (e) {
      if (!(e instanceof SystemError) || e.code !== "EBADF") throw e;
      this.#prematureClose(entry, false);
      return false;
    }
    if (identity === entry.identity) return true;
    this.#prematureClose(entry, true);
    return false;
  }

  /** Checks every fd with a waiter; returns how many waits it rejected. */
  #checkAll(): number {
    let settled = 0;
    for (const entry of [...this.#fds.values()]) {
      if (!this.#hasWaiters(entry)) continue;
      const before = this.#waiters;
      if (!this.#stillOpen(entry)) settled += before - this.#waiters;
    }
    return settled;
  }

  /** One select; settles the waits its events end; returns how many. */
  #select(timeout: number): number {
    const events = this.#events;
    this.#selector.select(events, timeout);
    let settled = 0;
    for (let i = 0; i < events.length; i++) {
      const event = events.get(i);
      const entry = this.#tokens.get(event.token);
      if (entry === undefined) continue; // a registration that is gone
      const readiness = event.readiness;
      if (!EVENTS.some((name) => entry[name] !== null && (readiness & WAKES[name]) !== 0)) continue;
      const before = this.#waiters;
      if (!this.#stillOpen(entry)) {
        settled += before - this.#waiters;
        continue;
      }
      const report = reportOf(readiness);
      for (const name of EVENTS) {
        const waiter = entry[name];
        if (waiter === null || (readiness & WAKES[name]) === 0) continue;
        entry[name] = null;
        this.#waiters--;
        settled++;
        waiter.resolve(report);
      }
      this.#settleRegistration(entry);
    }
    return settled;
  }

  /** Waits without blocking the thread for the selector to have events, at most `slice` ms. */
  async #hostWait(slice: number): Promise<void> {
    const fd = this.#selector.fd;
    if (fd < 0) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      return;
    }
    try {
      await defaultLoop().waitReadable(fd, { timeout: slice });
    } catch (e) {
      if (!(e instanceof SystemError) || e.code !== "ETIMEDOUT") throw e;
    }
  }
}
