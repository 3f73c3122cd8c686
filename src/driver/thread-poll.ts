/**
 * Guest mode where there is no libuv to attach to (Bun, Deno): a helper thread blocks in poll(2)
 * on the fds the loop names and wakes the loop's thread when one is ready; that thread runs one
 * iteration, and the runtime's own event loop — its timers, fetch, servers — runs undisturbed
 * between wake-ups, as it does beside Node's uv_poll handles.
 *
 * The helper is a Worker running `thread-poll-worker.ts`. The two threads share control words
 * (`thread-poll-shared.ts`): a turn, so the helper polls only while the loop's thread is not
 * running an iteration (poll is level-triggered: it would report the same readiness again and
 * again), a stop flag, and the watch set behind a seqlock. A change to the set made outside an
 * iteration writes a wake-up fd the helper also polls, so it takes the new set at once.
 *
 * How the helper wakes the loop's thread (`EVLOOP_GUEST_WAKE`, measured in bench/RESULTS.md):
 * - `message` (the default): `postMessage` on a MessagePort;
 * - `atomics`: `Atomics.notify` on a word the loop's thread waits on with `Atomics.waitAsync`;
 * - `callback`: a thread-safe native callback (Bun's JSCallback with `threadsafe`, Deno's
 *   UnsafeCallback.threadSafe) the helper calls through FFI.
 *
 * One helper serves every guest loop of the thread: each wake-up runs one iteration of each
 * (an idle loop's is one non-blocking wait). It starts with the first guest loop, which waits
 * (at most {@link START_TIMEOUT_MS}) until the helper has loaded and polls, so a helper that
 * cannot start fails `createLoop` rather than a later operation, and nothing it needs (its
 * module files, its thread) is still to be opened when the process runs out of fds. It then
 * lives as long as the thread, an eventfd and a thread whatever the number of loops, so
 * disposing a loop leaves nothing behind. Neither it nor its wake-up keeps the process alive
 * (the guest driver's keep-alive timer does that, exactly while a loop has work); the
 * process's `exit` stops it (flag, notify, wake-up fd).
 */
import { fileURLToPath } from "node:url";
import { MessageChannel, Worker } from "node:worker_threads";
import { ffi } from "../ffi/runtime/load.js";
import type { NativeCallback } from "../ffi/types.js";
import { debug } from "../loop/debug.js";
import { Interest } from "../selector/event.js";
import { POLL_READABLE, POLL_WRITABLE } from "../sys/posix/poll.js";
import { C } from "../sys/target.js";
import { openWakeup, type WakeupFd } from "../sys/wakeup.js";
import { CTL, CTL_WORDS, SET_HEADER, WAKE_ATOMICS, WAKE_CALLBACK, WAKE_MESSAGE, type ThreadPollData, type WakeKind } from "./thread-poll-shared.js";

/** ES2024's Atomics.waitAsync (the project's lib is ES2022; Node ≥ 16, Bun and Deno have it). */
interface AtomicsWaitAsync {
  waitAsync(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

const WAKE_KINDS: readonly WakeKind[] = [WAKE_MESSAGE, WAKE_ATOMICS, WAKE_CALLBACK];

/** The wake-up `EVLOOP_GUEST_WAKE` asks for, or the default. */
function chosenWake(): WakeKind {
  const asked = ffi.env("EVLOOP_GUEST_WAKE");
  if (asked === undefined || asked === "") return WAKE_MESSAGE;
  if ((WAKE_KINDS as readonly string[]).includes(asked)) return asked as WakeKind;
  throw new Error(`EVLOOP_GUEST_WAKE=${asked} is not a wake-up (expected ${WAKE_KINDS.join(", ")})`);
}

/** Whether a helper thread can watch fds here: it needs poll(2) (every Unix). */
export function threadPollAvailable(): boolean {
  return ffi.platform !== "win32";
}

/** poll(2) events for Interest flags (errors and hang-ups are always reported). */
function pollEvents(interest: number): number {
  let events = 0;
  if (interest & Interest.READABLE) events |= POLL_READABLE & ~C.POLLPRI;
  if (interest & Interest.WRITABLE) events |= POLL_WRITABLE;
  if (interest & Interest.PRIORITY) events |= C.POLLPRI;
  return events;
}

/** How long the first guest loop waits for the helper to load and start polling. */
const START_TIMEOUT_MS = 10_000;

/** The fds one guest loop has the helper watch; `close()` stops watching them all. */
export interface ThreadPollWatch {
  /** Watches `fd` for `interest` (Interest flags); 0 stops watching it. */
  set(fd: number, interest: number): void;
  /** Has the helper wake this thread as soon as it may, ready fd or not (see `ThreadPoll.kick`). */
  kick(): void;
  close(): void;
}

/** The thread's helper, polling the fds of every guest loop of the thread. */
export class ThreadPoll {
  static #shared: ThreadPoll | null = null;

  readonly #ctl = new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
  /** fd → its poll events and the loop whose fd it is. */
  readonly #watched = new Map<number, { events: number; owner: () => void }>();
  /** Each guest loop's iteration, run on every wake-up. */
  readonly #clients = new Set<() => void>();
  #set: Int32Array;
  #capacity = 16;
  #setId = 1;
  #dirty = false;
  #flushQueued = false;
  #stopped = false;
  /** An iteration ran; the turn goes back to the helper after the host's turn. */
  #handingBack = false;
  readonly #worker: Worker;
  readonly #wakeup: WakeupFd;
  readonly #channel = new MessageChannel();
  readonly #callback: NativeCallback | null = null;
  /** Settles when the helper thread has ended. */
  readonly exited: Promise<void>;

  /** Has `onReady` run on every wake-up, for the fds set through the returned watch. */
  static watch(onReady: () => void): ThreadPollWatch {
    ThreadPoll.#shared ??= new ThreadPoll(chosenWake());
    return ThreadPoll.#shared.#client(onReady);
  }

  private constructor(wake: WakeKind) {
    this.#set = this.#newSet();
    Atomics.store(this.#ctl, CTL.SET_ID, this.#setId);
    this.#wakeup = openWakeup();
    try {
      if (wake === WAKE_CALLBACK) {
        if (!ffi.threadSafeCallback) throw new Error(`EVLOOP_GUEST_WAKE=callback: ${ffi.name} has no thread-safe native callbacks`);
        this.#callback = ffi.threadSafeCallback(() => this.#ready());
      }
      const data: ThreadPollData = {
        ctl: this.#ctl.buffer as SharedArrayBuffer,
        set: this.#set.buffer as SharedArrayBuffer,
        port: this.#channel.port2,
        wakeFd: this.#wakeup.fd,
        wake,
        callback: this.#callback?.pointer ?? 0n,
      };
      const url = new URL("./thread-poll-worker.js", import.meta.url);
      try {
        // execArgv: [] — the helper needs none of the process's flags, and some refuse a Worker.
        this.#worker = new Worker(url, { workerData: data, transferList: [this.#channel.port2], execArgv: [] });
      } catch (e) {
        // Deno checks read access to a Worker's module (NotCapable in Deno 2, PermissionDenied before).
        const name = e instanceof Error ? e.name : "";
        if (name !== "NotCapable" && name !== "PermissionDenied") throw e;
        const dir = fileURLToPath(new URL(".", new URL("..", url)));
        throw new Error(`guest mode on Deno starts a helper thread from ${fileURLToPath(url)}: run with --allow-read=${dir} (or drive the loop with runMain)`, { cause: e });
      }
    } catch (e) {
      this.#callback?.close();
      this.#wakeup.close();
      this.#channel.port1.close();
      throw e;
    }
    const worker = this.#worker;
    worker.unref();
    let failure: string | null = null;
    this.#channel.port1.on("message", (message: unknown) => {
      if (message === null) this.#ready();
      else this.#failed(String((message as { error?: unknown }).error));
    });
    this.#channel.port1.unref();
    worker.on("error", (e: unknown) => {
      failure = e instanceof Error ? e.message : String(e);
      this.#failed(failure);
    });
    this.exited = new Promise((resolve) => {
      worker.once("exit", () => {
        // SAFETY (an fd, not memory): the helper polls the wake-up fd until it exits; only
        // then may the fd be closed and its number reused.
        this.#wakeup.close();
        this.#callback?.close();
        if (ThreadPoll.#shared === this) ThreadPoll.#shared = null;
        resolve();
      });
    });
    process.on("exit", () => this.#stop());
    // Wait for the helper to be polling (it sets ONLINE, or STOP if it failed).
    const waited = Atomics.wait(this.#ctl, CTL.ONLINE, 0, START_TIMEOUT_MS);
    if (waited === "timed-out" || Atomics.load(this.#ctl, CTL.ONLINE) !== 1) {
      this.#stop();
      throw new Error(`guest mode: the helper thread that polls the loop's fds did not start within ${START_TIMEOUT_MS} ms${failure ? ` (${failure})` : ""}`);
    }
    if (wake === WAKE_ATOMICS) this.#waitSignal(0);
    debug(`guest driver: helper thread polling with poll(2), wake-up by ${wake}`);
  }

  #newSet(): Int32Array {
    const set = new Int32Array(new SharedArrayBuffer((SET_HEADER + 2 * this.#capacity) * 4));
    set[0] = this.#setId;
    return set;
  }

  #client(onReady: () => void): ThreadPollWatch {
    this.#clients.add(onReady);
    const mine = new Set<number>();
    return {
      set: (fd, interest) => {
        if (interest === 0) mine.delete(fd);
        else mine.add(fd);
        this.#change(fd, interest, onReady);
      },
      kick: () => this.#kick(),
      close: () => {
        for (const fd of mine) this.#change(fd, 0, onReady);
        mine.clear();
        this.#clients.delete(onReady);
      },
    };
  }

  #change(fd: number, interest: number, owner: () => void): void {
    if (this.#stopped) return;
    if (interest === 0) {
      const had = this.#watched.get(fd);
      if (had === undefined || had.owner !== owner) return;
      this.#watched.delete(fd);
    } else {
      const events = pollEvents(interest);
      const had = this.#watched.get(fd);
      if (had !== undefined && had.events === events && had.owner === owner) return;
      this.#watched.set(fd, { events, owner });
    }
    this.#dirty = true;
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => this.#flush());
  }

  /**
   * Asks for a wake-up whether or not an fd is ready: how a loop with operations held back by
   * the fast-path budget gets its next iteration. A `setImmediate` would do on Node and Bun, but
   * on Deno a chain of immediates (or of messages a thread posts to itself) starves the
   * runtime's own I/O: an http request beside a 256 MiB evloop transfer completed only after
   * it. A wake-up from the helper leaves the thread idle until it comes, which lets Deno poll
   * its I/O; it costs a write to the wake-up fd and one wake-up, once per budget's worth of
   * operations.
   */
  #kick(): void {
    if (this.#stopped) return;
    Atomics.store(this.#ctl, CTL.KICK, 1);
    this.#wakeup.wake();
  }

  /** Publishes a set changed outside an iteration, and wakes the helper polling the old one. */
  #flush(): void {
    this.#flushQueued = false;
    if (this.#stopped || !this.#dirty) return;
    this.#publish();
    // While it is this thread's turn the helper is not polling: it takes the set when given the turn.
    if (Atomics.load(this.#ctl, CTL.TURN) === 0) this.#wakeup.wake();
  }

  #publish(): void {
    this.#dirty = false;
    const ctl = this.#ctl;
    const version = Atomics.load(ctl, CTL.VERSION);
    Atomics.store(ctl, CTL.VERSION, version + 1);
    if (this.#watched.size > this.#capacity) {
      while (this.#capacity < this.#watched.size) this.#capacity *= 2;
      this.#setId++;
      this.#set = this.#newSet();
      // Posted before the version that names it is published: the helper waits for it.
      this.#channel.port1.postMessage(this.#set.buffer);
      Atomics.store(ctl, CTL.SET_ID, this.#setId);
    }
    const set = this.#set;
    let i = SET_HEADER;
    for (const [fd, { events }] of this.#watched) {
      set[i++] = fd;
      set[i++] = events;
    }
    set[1] = this.#watched.size;
    Atomics.store(ctl, CTL.VERSION, version + 2);
  }

  /** `atomics` wake-up: wait asynchronously for the helper to count SIGNAL past `seen`. */
  #waitSignal(seen: number): void {
    const waited = (Atomics as unknown as AtomicsWaitAsync).waitAsync(this.#ctl, CTL.SIGNAL, seen);
    const next = (): void => {
      if (this.#stopped) return;
      const now = Atomics.load(this.#ctl, CTL.SIGNAL);
      this.#ready();
      this.#waitSignal(now);
    };
    if (waited.async) void waited.value.then(next);
    else queueMicrotask(next);
  }

  /**
   * The helper reported readiness: run an iteration of every guest loop, then hand the turn back
   * once the host has had its turn (`setImmediate`). Handing it back at once would let a busy
   * loop's wake-ups follow each other with nothing between them: Bun runs the tasks other
   * threads queue (messages, thread-safe callbacks, waitAsync) before its timers, and a 256 MiB
   * transfer then ran to its end before a setTimeout(20) fired. After the immediate, the host's
   * timers and I/O have run, as they do between libuv's poll callbacks on Node.
   */
  #ready(): void {
    if (this.#stopped || Atomics.load(this.#ctl, CTL.TURN) !== 1 || this.#handingBack) return;
    try {
      for (const tick of [...this.#clients]) {
        try {
          tick();
        } catch (e) {
          // One loop's failure must not keep the others from their turn.
          queueMicrotask(() => {
            throw e;
          });
        }
      }
    } finally {
      this.#handingBack = true;
      setImmediate(this.#handBack);
    }
  }

  readonly #handBack = (): void => {
    this.#handingBack = false;
    if (this.#stopped) return;
    if (this.#dirty) this.#publish();
    Atomics.store(this.#ctl, CTL.TURN, 0);
    Atomics.notify(this.#ctl, CTL.TURN);
  };

  #failed(why: string): void {
    if (this.#stopped) return;
    process.emitWarning(`evloop: the thread that polls the guest loops' fds failed (${why}); their operations will not complete`);
  }

  /** Stops the helper (at the process's exit); its wake-up fd is closed once it has exited. */
  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    Atomics.store(this.#ctl, CTL.STOP, 1);
    Atomics.notify(this.#ctl, CTL.TURN);
    Atomics.notify(this.#ctl, CTL.SIGNAL);
    this.#wakeup.wake();
    this.#channel.port1.close();
  }
}
