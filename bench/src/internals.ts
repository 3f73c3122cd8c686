/**
 * Event-loop internals (../shared/BENCHMARKS.md, "Event-loop internals"): timers against
 * `setTimeout`, cross-thread wake-ups, and the cost of one ready event as registered fds grow.
 *
 * How each figure is made fair:
 *
 * - Timers. evloop has no public cancellable timer cheaper than `sleep` + AbortSignal (a promise,
 *   closures and an abort listener per timer), so the primitive every loop uses for `sleep` and
 *   operation timeouts, {@link TimerHeap}, is measured against `setTimeout`/`clearTimeout`. Both
 *   get the same plan (seeded PRNG): N timers with whole-millisecond delays of 1–50 ms (whole,
 *   because Node keeps one list per distinct duration and fractional delays would make it build
 *   N lists; from 1, because Node turns 0 into 1), then half of them, chosen at random,
 *   cancelled. Both are driven in real time until the rest have fired: the heap the way
 *   PollingEventLoop drives it (block in the selector for `timeout()`, then `runDue(now)`),
 *   setTimeout by Node's own loop. Each side shares one callback, keeps only the handles it
 *   cancels, and reads the clock once per timer. The figure is wall time from the first
 *   schedule to the last fire, so both include the same ≤ 50 ms of waiting.
 * - Wake-ups. Both threads block in the kernel: see `internals-worker.ts`.
 * - Ready cost. Every loop of the run watches the same idle eventfds (an eventfd is not readable
 *   while its counter is 0, and costs one fd where a socketpair costs two), and one socketpair
 *   carries the traffic. An iteration parks a 1-byte read, writes 1 byte to the other end and
 *   runs the loop until the read completes: what one ready event costs through the whole
 *   EventLoop API, with F fds registered in all (F − 1 idle eventfds and the active socket).
 *
 * Competitors run in one process, alternating, and the full run repeats each measurement.
 */
import { readdirSync, readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { availableBackends, ClosedError, createLoop, Events, Poll, Waker, type BackendName, type Loop, type SelectorName } from "evloop";
import { close, eventfd, TimerHeap, unixSocketPair, write, type Timer } from "evloop/internal";
import { SLOT, SLOT_COUNT, type WakeupReady, type WakeupWorkerData } from "./internals-worker.js";
import type { InternalsResult } from "./types.js";

/**
 * Options for {@link runInternals}.
 *
 * @example
 * ```ts
 * const options: InternalsOptions = { quick: true, backends: ["epoll"], onProgress: console.error };
 * ```
 */
export interface InternalsOptions {
  /** Smaller counts and shorter measurements (seconds instead of tens of seconds). */
  quick?: boolean;
  /** Backends for wake-ups and ready cost; default: every available one except `blocking`. */
  backends?: string[];
  /** Called with a label before each measurement. */
  onProgress?: (label: string) => void;
}

interface Sizes {
  /** Timers scheduled per run (half are cancelled). */
  timers: number;
  /** Runs per timer competitor; the median is reported. */
  timerRounds: number;
  /** Wake-up round trips per run, at most. */
  trips: number;
  /** A wake-up run stops after this long, however many round trips it made. */
  tripLimitMs: number;
  /** Length of one ready-cost measurement. */
  pointMs: number;
  /** Wake-up runs and ready-cost measurements per backend, alternating order; the best is kept. */
  passes: number;
}

const FULL: Sizes = { timers: 1_000_000, timerRounds: 3, trips: 20_000, tripLimitMs: 5000, pointMs: 400, passes: 2 };
const QUICK: Sizes = { timers: 100_000, timerRounds: 1, trips: 2_000, tripLimitMs: 5000, pointMs: 100, passes: 1 };

/** Registered fd counts of the ready-cost curve. */
const FD_COUNTS = [10, 100, 1000, 10_000];
/** Timer delays are whole milliseconds from 1 to this. */
const MAX_DELAY_MS = 50;
/** A timer run that has not finished after this long is broken, not slow. */
const TIMER_GIVE_UP_MS = 60_000;
/** fds kept free for the rest of the process while the ready-cost fds are open. */
const FD_MARGIN = 64;

/**
 * Measures evloop's internals: 1,000,000 timers (100,000 quick) against setTimeout, cross-thread
 * wake-ups per backend, and the cost of one ready event with 10 to 10,000 registered fds per
 * backend. Blocks the calling thread for up to seconds at a time (the wake-up and ready-cost
 * loops run in owner mode); run it on its own, not beside a server.
 *
 * @param options See {@link InternalsOptions}.
 * @returns The figures of `InternalsResult`, rounded.
 * @throws When a backend misbehaves (a stalled ping-pong, a read that never completes) or the
 *   benchmark leaks an fd.
 *
 * @example
 * ```ts
 * const result = await runInternals({ quick: true, onProgress: (label) => console.error(label) });
 * console.log(result.readyCost.map((p) => `${p.backend} ${p.fds}: ${p.nsPerEvent} ns`).join("\n"));
 * ```
 */
export async function runInternals(options: InternalsOptions = {}): Promise<InternalsResult> {
  const sizes = options.quick ? QUICK : FULL;
  const progress = options.onProgress ?? ((): void => {});
  const backends = chooseBackends(options.backends, progress);
  const perSecond: Record<string, number> = {};
  for (let pass = 0; pass < sizes.passes; pass++) {
    for (const backend of pass % 2 === 0 ? backends : [...backends].reverse()) {
      progress(`internals: wake-ups, ${backend}${passLabel(pass, sizes)}`);
      const rate = await checkNoLeak(`wake-ups (${backend})`, () => benchWakeups(backend, sizes));
      // The least disturbed pass is the closest to the true figure on a shared machine.
      perSecond[backend] = Math.max(perSecond[backend] ?? 0, rate);
    }
  }
  const readyCost = backends.length === 0 ? [] : await checkNoLeak("ready cost", () => benchReadyCost(backends, sizes, progress));
  // Timers last: a million dead timers per run leave the heap to the garbage collector, which
  // would otherwise run during the syscall-bound measurements above.
  const timers = await benchTimers(sizes, progress);
  return { timers, wakeups: { perSecond }, readyCost };
}

function chooseBackends(requested: string[] | undefined, progress: (label: string) => void): BackendName[] {
  // The blocking backend has no selector: nothing to wake and no registered fds to count.
  const available: BackendName[] = availableBackends().filter((b) => b !== "blocking");
  if (requested === undefined) return available;
  for (const name of requested) {
    if (!available.includes(name as BackendName)) progress(`internals: skipping backend ${name} (not available for this benchmark)`);
  }
  return available.filter((b) => requested.includes(b));
}

// ---- timers ------------------------------------------------------------------------------

/** One timer plan, identical for both competitors. */
interface TimerPlan {
  readonly delays: Uint8Array;
  /** 1 for the timers to cancel; exactly `cancelled` of them. */
  readonly cancel: Uint8Array;
  readonly cancelled: number;
}

/** mulberry32: a small seeded PRNG, so every run schedules the same timers. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function timerPlan(count: number, seed: number): TimerPlan {
  const random = prng(seed);
  const delays = new Uint8Array(count);
  for (let i = 0; i < count; i++) delays[i] = 1 + Math.floor(random() * MAX_DELAY_MS);
  // A partial Fisher-Yates shuffle picks exactly half the indices, uniformly.
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const cancelled = count >> 1;
  const cancel = new Uint8Array(count);
  for (let i = 0; i < cancelled; i++) {
    const j = i + Math.floor(random() * (count - i));
    const pick = order[j]!;
    order[j] = order[i]!;
    order[i] = pick;
    cancel[pick] = 1;
  }
  return { delays, cancel, cancelled };
}

async function benchTimers(sizes: Sizes, progress: (label: string) => void): Promise<InternalsResult["timers"]> {
  const plan = timerPlan(sizes.timers, 0x5eed);
  const heapMs: number[] = [];
  const nodeMs: number[] = [];
  for (let round = 0; round < sizes.timerRounds; round++) {
    // Alternate who goes first, so neither always runs on the warmer (or more fragmented) heap.
    const heapFirst = round % 2 === 0;
    for (const heap of heapFirst ? [true, false] : [false, true]) {
      progress(`internals: timers, ${heap ? "evloop TimerHeap" : "setTimeout"} (${round + 1}/${sizes.timerRounds})`);
      if (heap) heapMs.push(timersOnHeap(plan));
      else nodeMs.push(await timersOnNode(plan));
      // Let Node's loop turn once so finished work is released between runs.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  return { count: sizes.timers, cancelled: plan.cancelled, evloopMs: round1(median(heapMs)), setTimeoutMs: round1(median(nodeMs)) };
}

function timersOnHeap(plan: TimerPlan): number {
  const { delays, cancel } = plan;
  const count = delays.length;
  const expected = count - plan.cancelled;
  const heap = new TimerHeap();
  const poll = new Poll(defaultSelector());
  const events = new Events(1);
  let fired = 0;
  const callback = (): void => {
    fired++;
  };
  const handles: Timer[] = new Array<Timer>(plan.cancelled);
  try {
    const start = performance.now();
    for (let i = 0, k = 0; i < count; i++) {
      const timer = heap.add(performance.now() + delays[i]!, callback);
      if (cancel[i]) handles[k++] = timer;
    }
    for (let k = 0; k < handles.length; k++) heap.cancel(handles[k]!);
    const giveUp = start + TIMER_GIVE_UP_MS;
    // Bounded: each pass either fires timers or blocks until the next deadline, and the run
    // gives up after TIMER_GIVE_UP_MS.
    while (fired < expected) {
      const now = performance.now();
      if (now > giveUp) throw new Error(`TimerHeap fired ${fired} of ${expected} timers in ${TIMER_GIVE_UP_MS} ms`);
      const timeout = heap.timeout(now);
      if (timeout > 0) poll.poll(events, timeout);
      heap.runDue(performance.now());
    }
    const elapsed = performance.now() - start;
    if (heap.size !== 0) throw new Error(`TimerHeap still holds ${heap.size} timers after the run`);
    return elapsed;
  } finally {
    poll.close();
  }
}

async function timersOnNode(plan: TimerPlan): Promise<number> {
  const { delays, cancel } = plan;
  const count = delays.length;
  const expected = count - plan.cancelled;
  let fired = 0;
  let done = (): void => {};
  const allFired = new Promise<void>((resolve) => {
    done = resolve;
  });
  const callback = (): void => {
    if (++fired === expected) done();
  };
  const handles: NodeJS.Timeout[] = new Array<NodeJS.Timeout>(plan.cancelled);
  const start = performance.now();
  for (let i = 0, k = 0; i < count; i++) {
    const timer = setTimeout(callback, delays[i]!);
    if (cancel[i]) handles[k++] = timer;
  }
  for (let k = 0; k < handles.length; k++) clearTimeout(handles[k]);
  let watchdog: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    watchdog = setTimeout(() => reject(new Error(`setTimeout fired ${fired} of ${expected} timers in ${TIMER_GIVE_UP_MS} ms`)), TIMER_GIVE_UP_MS);
  });
  try {
    await Promise.race([allFired, stalled]);
  } finally {
    clearTimeout(watchdog);
  }
  return performance.now() - start;
}

function defaultSelector(): SelectorName {
  return availableBackends().includes("epoll") ? "epoll" : "poll";
}

// ---- wake-ups ----------------------------------------------------------------------------

/** How long the Worker may take to start and report its waker. */
const WORKER_START_MS = 10_000;
/** How long the Worker may take to exit once told to stop, before it is terminated. */
const WORKER_EXIT_MS = 5000;
/** Round trips before the clock starts (at most a quarter of the run). */
const WARM_UP_TRIPS = 500;

/**
 * Cross-thread `interrupt()` round trips per second on `backend`. The main thread owns a loop
 * in owner mode with one read parked that never completes, so `run(true)` blocks in the kernel;
 * the Worker wakes it through `interruptHandle`, and the main thread answers through the
 * Worker's own Waker. A loop timer at the time limit is the watchdog: `run(true)` returns at
 * the latest then, even if the Worker stopped answering.
 */
async function benchWakeups(backend: BackendName, sizes: Sizes): Promise<number> {
  const loop = createLoop({ backend, guest: false });
  const counters = new Int32Array(new SharedArrayBuffer(SLOT_COUNT * Int32Array.BYTES_PER_ELEMENT));
  let pair: [number, number] | null = null;
  let worker: Worker | null = null;
  let exited: Promise<void> = Promise.resolve();
  let reply: Waker | null = null;
  try {
    pair = unixSocketPair();
    const data: WakeupWorkerData = {
      kind: "evloop-bench-wakeup",
      // The far side only has to wake: poll beside poll, else the OS's default selector (epoll on
      // Linux; macOS and the BSDs have no epoll for a kqueue run's far side).
      ...(backend === "poll" ? { selector: "poll" } : {}),
      target: loop.interruptHandle,
      shared: counters.buffer as SharedArrayBuffer,
      trips: sizes.trips,
      giveUpMs: sizes.tripLimitMs + WORKER_START_MS + 30_000,
    };
    const started = new Worker(new URL("./internals-worker.js", import.meta.url), { workerData: data });
    worker = started;
    exited = new Promise<void>((resolve) => started.once("exit", () => resolve()));
    let workerError: unknown = null;
    worker.on("error", (e: unknown) => {
      workerError ??= e;
    });
    reply = Waker.fromHandle((await firstMessage(worker)).handle);

    // The parked read never completes (nothing writes to the other end), so run(true) blocks;
    // the sleep is the watchdog. Both reject with ClosedError when the loop is disposed.
    void loop.read(pair[0], new Uint8Array(1)).catch(ignoreClosed);
    void loop.sleep(sizes.tripLimitMs).catch(ignoreClosed);
    // The new registration reports the socket writable once (an edge); consume it now.
    loop.run(false);
    loop.run(false);

    // The first round trips run while both threads still compile the code: not counted.
    const warmUp = Math.min(WARM_UP_TRIPS, sizes.trips >> 2);
    const begin = performance.now();
    let start = begin;
    let end = begin;
    let answered = 0;
    Atomics.store(counters, SLOT.REPLIES, 1);
    reply.wake();
    // Bounded: run(true) returns on a ping or at the latest when the watchdog timer is due.
    while (answered < sizes.trips) {
      loop.run(true);
      const now = performance.now();
      if (now - begin >= sizes.tripLimitMs) break;
      // A Worker that failed has closed its waker: its fd number must not be written any more.
      if (Atomics.load(counters, SLOT.EXITING) !== 0) break;
      // A return without a new ping (a stray event) is not a round trip.
      if (Atomics.load(counters, SLOT.PINGS) <= answered) continue;
      answered++;
      Atomics.store(counters, SLOT.REPLIES, answered + 1);
      reply.wake();
      if (answered === warmUp) start = now;
      end = now;
    }
    if (answered <= warmUp) throw workerError ?? new Error(`wake-ups on ${backend}: the worker answered ${answered} pings`);
    return Math.round((answered - warmUp) / ((end - start) / 1000));
  } finally {
    if (worker !== null) await stopWorker(worker, exited, counters, reply);
    loop.dispose();
    if (pair !== null) {
      close(pair[0]);
      close(pair[1]);
    }
  }
}

function firstMessage(worker: Worker): Promise<WakeupReady> {
  return new Promise<WakeupReady>((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
    };
    const onMessage = (message: unknown): void => {
      cleanup();
      const m = message as Partial<WakeupReady> | null;
      if (m?.kind === "ready" && m.handle !== undefined) resolve(m as WakeupReady);
      else reject(new Error("wake-up worker sent an unexpected message"));
    };
    const onError = (e: unknown): void => {
      cleanup();
      reject(e instanceof Error ? e : new Error(`wake-up worker failed: ${String(e)}`));
    };
    const onExit = (code: number): void => {
      cleanup();
      reject(new Error(`wake-up worker exited with code ${code} before it started`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`wake-up worker did not start in ${WORKER_START_MS} ms`));
    }, WORKER_START_MS);
    worker.on("message", onMessage);
    worker.once("error", onError);
    worker.once("exit", onExit);
  });
}

/** Tells the Worker to stop, wakes it, and waits for it to exit (terminating it if it does not). */
async function stopWorker(worker: Worker, exited: Promise<void>, counters: Int32Array, reply: Waker | null): Promise<void> {
  Atomics.store(counters, SLOT.STOP, 1);
  // Once EXITING is set the Worker may have closed its waker; its fd number must not be written.
  if (reply !== null && Atomics.load(counters, SLOT.EXITING) === 0) reply.wake();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), WORKER_EXIT_MS);
  });
  const tooLate = await Promise.race([exited.then(() => false), late]);
  clearTimeout(timer);
  if (tooLate) {
    await worker.terminate();
    await exited;
  }
}

// ---- cost per ready event ----------------------------------------------------------------

/** One loop of the ready-cost run, with its own socketpair for the traffic. */
class ReadyLoop {
  readonly backend: BackendName;
  readonly loop: Loop;
  readonly #pair: [number, number];
  readonly #in = new Uint8Array(1);
  readonly #out = new Uint8Array([1]);
  /** An idle wait that failed for another reason than the loop's disposal. */
  failure: unknown = null;

  constructor(backend: BackendName) {
    this.backend = backend;
    this.loop = createLoop({ backend, guest: false });
    try {
      this.#pair = unixSocketPair();
    } catch (e) {
      this.loop.dispose();
      throw e;
    }
  }

  /** Registers an idle fd: a readability wait that never completes. */
  park(fd: number): void {
    this.loop.waitReadable(fd).catch((e: unknown) => {
      if (!(e instanceof ClosedError) && this.failure === null) this.failure = e;
    });
  }

  /**
   * Runs the loop without blocking until the fresh registrations have been reported: each
   * reports its fd writable once, up to 1024 events per iteration.
   */
  settle(registered: number): void {
    const passes = Math.ceil(registered / 1024) + 2;
    for (let i = 0; i < passes; i++) this.loop.run(false);
  }

  /** One ready event end to end: park a read, make it ready, run the loop until it completes. */
  async roundTrip(): Promise<void> {
    let settled = false;
    const read = this.loop.read(this.#pair[1], this.#in);
    read.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    write(this.#pair[0], this.#out);
    // A stray event (a registration's first edge) may end run(true) before the read is ready;
    // the byte is written, so the next run(true) cannot block for long.
    for (let runs = 0; !settled; runs++) {
      if (runs === 100) throw new Error(`ready cost on ${this.backend}: the read did not complete in ${runs} loop iterations`);
      this.loop.run(true);
      // The read's reaction was queued when run() resolved it, so it runs before this await.
      await null;
    }
    if ((await read) !== 1) throw new Error(`ready cost on ${this.backend}: expected to read 1 byte`);
  }

  /** Nanoseconds per round trip, over about `ms` of round trips after a warm-up of `ms / 4`. */
  async measure(ms: number): Promise<number> {
    const limit = 2_000_000;
    const warm = performance.now();
    for (let i = 0; i < limit && (i < 50 || performance.now() - warm < ms / 4); i++) await this.roundTrip();
    const start = performance.now();
    let now = start;
    let n = 0;
    while (n < limit && now - start < ms) {
      await this.roundTrip();
      n++;
      now = performance.now();
    }
    if (this.failure !== null) throw this.failure;
    return ((now - start) * 1e6) / n;
  }

  close(): void {
    this.loop.dispose();
    close(this.#pair[0]);
    close(this.#pair[1]);
  }
}

async function benchReadyCost(backends: BackendName[], sizes: Sizes, progress: (label: string) => void): Promise<InternalsResult["readyCost"]> {
  const results: Array<{ backend: string; fds: number; nsPerEvent: number }> = [];
  const loops: ReadyLoop[] = [];
  const idle: number[] = [];
  try {
    for (const backend of backends) loops.push(new ReadyLoop(backend));
    const room = openFileLimit() - openFdCount() - FD_MARGIN;
    for (const fds of FD_COUNTS) {
      if (fds - 1 > room) {
        progress(`internals: ready cost, skipping ${fds} fds (RLIMIT_NOFILE leaves room for ${room})`);
        break;
      }
      // The idle fds are shared: every loop registers all of them.
      while (idle.length < fds - 1) {
        const fd = eventfd(0);
        idle.push(fd);
        for (const l of loops) l.park(fd);
      }
      for (const l of loops) l.settle(fds);
      const best = new Map<BackendName, number>();
      for (let pass = 0; pass < sizes.passes; pass++) {
        const order = pass % 2 === 0 ? loops : [...loops].reverse();
        for (const l of order) {
          progress(`internals: ready cost, ${l.backend}, ${fds} fds${passLabel(pass, sizes)}`);
          const ns = await l.measure(sizes.pointMs);
          best.set(l.backend, Math.min(best.get(l.backend) ?? Infinity, ns));
        }
      }
      for (const l of loops) results.push({ backend: l.backend, fds, nsPerEvent: Math.round(best.get(l.backend)!) });
    }
  } finally {
    for (const l of loops) l.close();
    for (const fd of idle) close(fd);
  }
  return results;
}

// ---- helpers -----------------------------------------------------------------------------

function ignoreClosed(e: unknown): void {
  if (!(e instanceof ClosedError)) throw e;
}

function openFdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/** The soft RLIMIT_NOFILE, from /proc/self/limits (Infinity when unlimited or unreadable). */
function openFileLimit(): number {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    const n = Number(soft);
    return Number.isFinite(n) ? n : Infinity;
  } catch {
    return Infinity;
  }
}

/** Runs `fn` and throws if the process has more open fds afterwards than before. */
async function checkNoLeak<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const before = openFdCount();
  const result = await fn();
  const after = openFdCount();
  if (after > before) throw new Error(`internals benchmark leaked ${after - before} fds in ${what}`);
  return result;
}

function passLabel(pass: number, sizes: Sizes): string {
  return sizes.passes > 1 ? ` (${pass + 1}/${sizes.passes})` : "";
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}
