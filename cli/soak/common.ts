/**
 * What every part of `evloop soak` shares: the seeded PRNG, the corpus every payload is cut from,
 * the counters a run keeps, and the random cancellation of operations (an AbortSignal fired
 * mid-flight, or a tiny timeout) with the bookkeeping that tells an expected rejection from a
 * failure, and the helpers that run an operation under one (`attempt`, `retrying`).
 *
 * All timing goes through the loop under test (`loop.sleep`), never Node's timers: in owner
 * mode the thread sits in the kernel between iterations, and Node's timers only run once the
 * loop has nothing to do.
 */
import { TimeoutError, type EventLoop, type OperationOptions } from "evloop";

/** A float in [0, 1). */
export type Rand = () => number;

/** mulberry32: a small seeded PRNG. */
export function mulberry32(seed: number): Rand {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** The PRNG of one purpose (a lane, a server, a connection): the same draws on every run of a seed. */
export function prngFor(seed: number, ...keys: number[]): Rand {
  let s = seed >>> 0;
  for (const k of keys) s = Math.imul(s ^ (k + 0x9e3779b9), 0x85ebca6b) ^ (s >>> 13);
  return mulberry32(s);
}

/** An integer from `lo` to `hi` inclusive. */
export const between = (rand: Rand, lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

/** A size from 1 to `max`, log-uniform: each power-of-two range of sizes is as likely. */
export const logSize = (rand: Rand, max: number): number => Math.min(max, Math.max(1, Math.floor(2 ** (rand() * Math.log2(max + 1)))));

/** Bytes in the corpus every payload is a slice of. */
export const CORPUS_SIZE = 1 << 20;

/** Random bytes from `seed`: payloads are slices of it, so a receiver knows what to expect. */
export function makeCorpus(seed: number): Uint8Array {
  const rand = mulberry32(seed);
  const words = new Uint32Array(CORPUS_SIZE / 4);
  for (let i = 0; i < words.length; i++) words[i] = Math.floor(rand() * 2 ** 32);
  return new Uint8Array(words.buffer);
}

/**
 * How long an operation that must complete (a client's read of an echo that is on its way, a
 * write its peer is draining) may take before it counts as stuck: the run fails instead of
 * hanging. Every such operation carries this as its timeout; it is far above anything a working
 * loop needs on loopback, even on a loaded 2-core machine.
 */
export const STUCK_MS = 15_000;

/** A byte no rejected read may leave behind in its buffer. */
export const SENTINEL = 0xa5;

/** The counters of one run (a backend in a process), summed over its phases. */
export interface Counters {
  /** Operations that resolved. */
  ops: number;
  /** Operations that rejected with the reason of the signal the soak aborted. */
  aborted: number;
  /** Operations that rejected with a TimeoutError from their tiny `timeout`. */
  timedOut: number;
  /** Payload bytes compared with what was sent and found equal. */
  bytesVerified: number;
  /** Cancellations per operation and kind: `read aborted`, `accept timed out`, … */
  cancelledByOp: Record<string, number>;
  /** Stream connections completed (connected, used, closed). */
  connections: number;
  /** Datagrams received and verified. */
  datagrams: number;
  /** Descriptors passed with SCM_RIGHTS and used. */
  fdsPassed: number;
  /** Operations completed per driver mode. */
  opsByMode: Record<string, number>;
  /** Every rejection seen, by code (`ETIMEDOUT`, `ABORT`, `ECONNRESET`, …), expected or not. */
  errors: Record<string, number>;
  /** Rejections that were not expected where they happened (each also in `failures`). */
  unexpected: number;
  /** What went wrong: checksum mismatches, unexpected errors, stuck operations, leaks. */
  failures: string[];
}

/** Fresh counters. */
export function newCounters(): Counters {
  return { ops: 0, aborted: 0, timedOut: 0, cancelledByOp: {}, bytesVerified: 0, connections: 0, datagrams: 0, fdsPassed: 0, opsByMode: {}, errors: {}, unexpected: 0, failures: [] };
}

/** At most this many failure messages are kept (the count is in `failures.length` up to it). */
const MAX_FAILURES = 40;

/** The code of a rejection: a SystemError's errno name, `ABORT`, or the error's name. */
export function errorCode(e: unknown): string {
  if (e instanceof SoakAbort) return "ABORT";
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  return e instanceof Error ? e.name : typeof e;
}

/** The reason the soak aborts operations with, so an abort is told apart from anything else. */
export class SoakAbort extends Error {
  constructor() {
    super("aborted by the soak");
    this.name = "SoakAbort";
  }
}

/** A failure of the run (checksum mismatch, stuck operation): ends the lane that found it. */
export class SoakFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SoakFailure";
  }
}

/**
 * The state of one phase (one loop in one mode) that lanes and servers share: the loop, the
 * counters, the corpus, whether the phase is ending, and the handles still open (so a stuck
 * phase can close them, which rejects whatever waits on them).
 */
export class Phase {
  /** Set when the phase's time is up: lanes finish what they do and end. */
  stopping = false;
  /** Set when the phase overran and its handles were closed by force (EBADF is then expected). */
  forced = false;
  /** Open handles, closed by force when the phase overruns. */
  readonly handles = new Set<{ close(): Promise<void> }>();
  /** Abort timers still armed; the phase waits for them before it disposes the loop. */
  readonly timers = new Set<Promise<void>>();
  /** What each lane is doing, for the report of a stuck phase. */
  readonly doing = new Map<string, string>();

  constructor(
    readonly loop: EventLoop,
    readonly mode: string,
    readonly counters: Counters,
    readonly corpus: Uint8Array,
    /** Whether operations block the thread (the blocking backend): lanes then go in lockstep. */
    readonly blocking: boolean,
  ) {}

  /**
   * On the blocking backend, lets the thread's timers run: its operations complete inside their
   * call, with no budget after which one waits for the next iteration (the readiness backends
   * have one, polling.ts), so a lane whose every operation succeeds would chain microtasks for
   * ever and no timer (the phase's end, the samples, the aborts) would ever fire.
   */
  async breathe(): Promise<void> {
    if (this.blocking) await this.loop.sleep(0);
  }

  /** Counts an operation that resolved. */
  done(n = 1): void {
    this.counters.ops += n;
    this.counters.opsByMode[this.mode] = (this.counters.opsByMode[this.mode] ?? 0) + n;
  }

  /** Counts a rejection under its code. */
  count(e: unknown): void {
    const code = errorCode(e);
    this.counters.errors[code] = (this.counters.errors[code] ?? 0) + 1;
  }

  /** Records a failure of the run. */
  fail(message: string): void {
    if (this.counters.failures.length < MAX_FAILURES) this.counters.failures.push(`${this.mode}: ${message}`);
  }

  /** Records an unexpected rejection at `where` as a failure. */
  unexpected(e: unknown, where: string): void {
    this.count(e);
    this.counters.unexpected++;
    this.fail(`${where}: unexpected ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }

  /** Keeps `h` in the set of open handles until it is closed. */
  track<H extends { close(): Promise<void> }>(h: H): H {
    this.handles.add(h);
    return h;
  }

  /** Closes a tracked handle (errors ignored: it is gone either way). */
  async close(h: { close(): Promise<void> }): Promise<void> {
    this.handles.delete(h);
    await h.close().catch(() => {});
  }
}

/** One operation's cancellation, drawn at random. */
export interface Cancel {
  readonly kind: "plain" | "abort" | "timeout";
  readonly options: OperationOptions;
  /** Disarms the abort timer; call when the operation settled. */
  finish(): void;
}

/** Probabilities of aborting and of a tiny timeout, for one kind of operation. */
export interface CancelMix {
  readonly abort: number;
  readonly timeout: number;
}

/**
 * Draws `mix`'s cancellation for one operation: an abort fired 0-4 ms after the start (through
 * `loop.sleep`), a 1-5 ms timeout, or none. `bounded` plain operations (those that must
 * complete) carry {@link STUCK_MS} as their timeout; the others (a server waiting for its next
 * client) wait as long as it takes.
 */
export function drawCancel(phase: Phase, rand: Rand, mix: CancelMix, bounded: boolean): Cancel {
  const r = rand();
  if (r < mix.abort) {
    const controller = new AbortController();
    const stop = new AbortController();
    const delay = between(rand, 0, 4);
    const reason = new SoakAbort();
    if (delay === 0 && rand() < 0.25) controller.abort(reason);
    const timer = phase.loop.sleep(delay, { signal: stop.signal }).then(
      () => controller.abort(reason),
      () => {},
    );
    phase.timers.add(timer);
    void timer.then(() => phase.timers.delete(timer));
    return { kind: "abort", options: bounded ? { signal: controller.signal, timeout: STUCK_MS } : { signal: controller.signal }, finish: () => stop.abort() };
  }
  if (r < mix.abort + mix.timeout) return { kind: "timeout", options: { timeout: between(rand, 1, 5) }, finish: () => {} };
  return { kind: "plain", options: bounded ? { timeout: STUCK_MS } : {}, finish: () => {} };
}

/**
 * Whether rejection `e` of an operation with `cancel` is the cancellation the soak asked for
 * (counted as aborted or timed out, also per kind of operation `op`). A timeout of a plain, bounded operation is a stuck
 * operation: recorded as a failure and thrown as a {@link SoakFailure}. Anything else: false,
 * and the caller decides.
 */
export function cancelled(phase: Phase, cancel: Cancel, e: unknown, op: string, where: string): boolean {
  const tally = (key: string): void => {
    phase.counters.cancelledByOp[key] = (phase.counters.cancelledByOp[key] ?? 0) + 1;
  };
  if (e instanceof SoakAbort && cancel.kind === "abort") {
    phase.count(e);
    phase.counters.aborted++;
    tally(`${op} aborted`);
    return true;
  }
  if (e instanceof TimeoutError) {
    phase.count(e);
    if (cancel.kind === "timeout") {
      phase.counters.timedOut++;
      tally(`${op} timed out`);
      return true;
    }
    const message = `stuck: ${where} did not complete within ${STUCK_MS} ms`;
    phase.fail(message);
    throw new SoakFailure(message);
  }
  return false;
}

/** What {@link attempt} resolves with when its operation was cancelled as the soak asked. */
export const CANCELLED = Symbol("cancelled");

/**
 * Runs one operation, `run`, with a cancellation drawn from `mix` ({@link drawCancel}) and
 * disarms it once the operation settled. Resolves with the operation's result, or with
 * {@link CANCELLED} when it rejected with that cancellation ({@link cancelled}: counted, and a
 * stuck operation thrown as a {@link SoakFailure}), after `onCancelled` checked what the
 * cancelled operation must have left as it was; any other rejection is thrown. `op` and `where`
 * name the operation in the counters and in a failure.
 */
export async function attempt<T>(phase: Phase, rand: Rand, mix: CancelMix, bounded: boolean, op: string, where: string, run: (cancel: Cancel) => Promise<T>, onCancelled?: (cancel: Cancel) => void): Promise<T | typeof CANCELLED> {
  const cancel = drawCancel(phase, rand, mix, bounded);
  try {
    return await run(cancel);
  } catch (e) {
    if (!cancelled(phase, cancel, e, op, where)) throw e;
    onCancelled?.(cancel);
    return CANCELLED;
  } finally {
    cancel.finish();
  }
}

/**
 * Runs `run` with a fresh cancellation from `mix` until it is not cancelled ({@link attempt}):
 * for operations whose cancellation transferred nothing, so that trying again is exact.
 */
export async function retrying<T>(phase: Phase, rand: Rand, mix: CancelMix, bounded: boolean, op: string, where: string, run: (options: OperationOptions) => Promise<T>): Promise<T> {
  for (;;) {
    const result = await attempt(phase, rand, mix, bounded, op, where, (cancel) => run(cancel.options));
    if (result !== CANCELLED) return result;
  }
}

/** Whether every byte of `buf` is {@link SENTINEL}. */
export function untouched(buf: Uint8Array): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== SENTINEL) return false;
  return true;
}

/** The index of the first byte where `a` and `b` differ, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  if (Buffer.from(a.buffer, a.byteOffset, n).equals(Buffer.from(b.buffer, b.byteOffset, n))) return a.length === b.length ? -1 : n;
  let i = 0;
  while (a[i] === b[i]) i++;
  return i;
}
