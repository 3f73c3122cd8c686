/**
 * Runs the benchmark suite of BENCHMARKS.md and returns its {@link BenchReport}.
 *
 * Order, and why:
 * - Echo: for each configuration, `rounds` rounds; in each round every server runs once, in an
 *   order rotated by one place per round, each in a fresh process (started, loaded, stopped). A
 *   shared machine drifts (another tenant, thermal limits, the page cache); alternating spreads
 *   the drift over all servers alike instead of charging it to whichever ran last. Each figure is
 *   the median of the rounds.
 * - Memory: each server fresh again, its RSS (and JS heap) read before and after N idle
 *   connections, so the difference is what the connections cost and nothing of an earlier load.
 * - Internals last: they run in this process and need no servers.
 *
 * CPU per message: the server's CPU time (utime+stime) during the loadgen's measured window,
 * over the messages echoed in it. The server's CPU before the window (start-up, accepting 10,000
 * connections, warm-up) and after it (the close storm of 10,000 connections, which the loadgen
 * would otherwise drain before it prints its result) must not count. So this script ends the
 * window itself: it waits until the server holds every connection (counted in /proc/<pid>/fd),
 * then for the warm-up and the measured seconds, reads the server's CPU and at that instant
 * sends the loadgen SIGTERM, which closes the window at once and reports its exact length. The
 * window's opening, `seconds` earlier, is read from a {@link CpuTimeline}: the server's CPU time
 * sampled every {@link SAMPLE_MS} ms through the run, interpolated between the two samples
 * around it (the load is steady there, so the CPU grows linearly between samples). The window
 * is at least the planned length: the loadgen starts its warm-up once its connections are up,
 * which is no later than the server having accepted them all.
 *
 * System calls per message (the {@link SYSCALL_CONFIGS} only): counted in one extra round of
 * their own, after the measured rounds, because while perf's tracepoint is on every system call
 * on the machine takes a slower path, which would weigh on the servers that make many (the
 * epoll ones) in the throughput and CPU figures. (`--quick` has one round, which then does both.)
 * perf is attached to the server before the load starts, its counter disabled, and enabled when
 * the warm-up has passed; it is disabled at the instant the window is closed. Its window is
 * therefore the end of the loadgen's, a little shorter, so the count is taken as a rate:
 * syscalls per second over messages per second. Where perf cannot count, the first run says why
 * and no later run tries again.
 */
import { readFileSync, readdirSync } from "node:fs";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { availableBackends, probeBackends } from "evloop";
import type { Baseline } from "./baseline.js";
import { buildC, type CBinaries } from "./build.js";
import { emulationNote } from "./emulation.js";
import { runInternals } from "./internals.js";
import { openIdle, startLoad } from "./loadgen.js";
import type { Progress } from "./progress.js";
import { listedBackends } from "./runtimes.js";
import { serverSpecs, startServer, type CServers } from "./servers.js";
import { SyscallCounter } from "./syscalls.js";
import {
  ECHO_CONFIGS,
  SYSCALL_CONFIGS,
  type BenchReport,
  type EchoConfig,
  type EchoMeasurement,
  type InternalsResult,
  type LoadResult,
  type MemoryMeasurement,
  type RunningServer,
  type ServerSpec,
  type ServerStats,
} from "./types.js";

/** What to run; the CLI has validated the names. */
export interface BenchOptions {
  /** Short runs, one round, 1,000 connections instead of 10,000: a check, a few minutes. */
  readonly quick: boolean;
  /** Measured seconds per run (default: 2, quick 0.3). */
  readonly seconds?: number;
  /** Server labels to run (default: all available). */
  readonly servers?: readonly string[];
  /** Configuration names to run (default: all five). */
  readonly configs?: readonly string[];
  /** Whether to run the event-loop internals. */
  readonly internals: boolean;
  /** A checked checkout whose evloop servers run beside this package's (see baseline.ts). */
  readonly baseline?: Baseline;
  /** The command line, for the report. */
  readonly command: string;
  readonly progress: Progress;
  /** Aborting stops the run at once: the loadgen and server running are killed. */
  readonly signal?: AbortSignal;
}

/** How long each phase runs in each mode. */
interface Plan {
  readonly rounds: number;
  readonly seconds: number;
  readonly warmup: number;
  readonly idleConnections: number;
  readonly configs: readonly EchoConfig[];
}

const FULL = { rounds: 3, seconds: 2, warmup: 0.5, idleConnections: 10_000 } as const;
/**
 * Quick: a run of 0.4 s plus start-up per server and configuration (85 with evloop on Bun and
 * Deno in owner mode), then the memory check: about 2½ minutes on a 2-core machine.
 */
const QUICK = { rounds: 1, seconds: 0.3, warmup: 0.1, idleConnections: 1_000, maxConnections: 1_000 } as const;

/** CPU-time sampling period during a run. */
const SAMPLE_MS = 20;
/** How long a server may take to print its port. */
const START_TIMEOUT_MS = 15_000;
/** Pause after start-up before the memory baseline, so start-up allocation has settled. */
const SETTLE_MS = 100;
/** Pause between the two heap readings (the first lets a pending GC run). */
const STATS_PAUSE_MS = 100;
/** How long the idle connections are held at most (they are released as soon as measured). */
const IDLE_HOLD_SECONDS = 120;
/** How long a server may take to accept the idle connections the kernel already completed. */
const ACCEPT_TIMEOUT_MS = 10_000;
/**
 * How long connecting may take in an echo run: the loadgen gives up on a connection after 30 s,
 * and a listen queue that overflows costs SYN retries of 1, 2, 4… s.
 */
const CONNECT_TIMEOUT_MS = 40_000;
/**
 * The loadgen is asked for this many seconds more than the plan, so its own end never comes
 * before this script stops it; it ends the run only if this script went silent.
 */
const BACKSTOP_SECONDS = 60;

function plan(options: BenchOptions): Plan {
  const base = options.quick ? QUICK : FULL;
  const wanted = options.configs;
  const configs = ECHO_CONFIGS.filter((c) => wanted === undefined || wanted.includes(c.name)).map((c) =>
    options.quick && c.connections > QUICK.maxConnections ? { ...c, connections: QUICK.maxConnections } : c,
  );
  return { rounds: base.rounds, seconds: options.seconds ?? base.seconds, warmup: base.warmup, idleConnections: base.idleConnections, configs };
}

/**
 * Every server of the suite: evloop on every backend of this OS (the unavailable ones too, so
 * the report says why they were skipped, except an emulated one, which is there only when it is
 * available: see emulation.ts; `blocking` is no server backend) on Node and, with a `baseline`,
 * the baseline's evloop servers; evloop on Bun and on Deno (the backends evloop lists there, by
 * the same rule); the runtimes' own sockets; C.
 *
 * @example
 * ```ts
 * const labels = suiteServers().map((s) => s.label); // evloop-io_uring-guest, …, evloop-poll-owner@deno, deno, c-epoll, c-io_uring
 * ```
 */
export function suiteServers(options: { readonly c?: CServers; readonly baseline?: Baseline } = {}): ServerSpec[] {
  const backends = listedBackends(probeBackends(), (b) => emulationNote(b) !== undefined);
  return serverSpecs({ ...options, backends });
}

/** The machine, as the report describes it. */
function describeMachine(): BenchReport["machine"] {
  let cpu = os.cpus()[0]?.model ?? "unknown";
  let kernel = os.release();
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpu;
    kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    // Not Linux: os.cpus() and os.release() already said what there is to say.
  }
  return { cpu, cores: os.availableParallelism(), memoryBytes: os.totalmem(), kernel, node: process.version };
}

function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** `list` starting at index `by` (mod its length), wrapping around. */
function rotate<T>(list: readonly T[], by: number): T[] {
  const k = list.length === 0 ? 0 : by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The server's CPU time, sampled through a run; see the module comment. */
class CpuTimeline {
  readonly #server: RunningServer;
  readonly #times: number[] = [];
  readonly #cpu: number[] = [];
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(server: RunningServer) {
    this.#server = server;
    this.sample();
    this.#timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  sample(): void {
    this.#times.push(performance.now());
    this.#cpu.push(this.#server.cpuTimeUs());
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** CPU time in µs at `time`, interpolated between the samples around it. */
  at(time: number): number {
    const times = this.#times;
    const i = times.findIndex((t) => t >= time);
    if (i < 0) return this.#cpu[this.#cpu.length - 1]!;
    if (i === 0) return this.#cpu[0]!;
    const t0 = times[i - 1]!;
    const t1 = times[i]!;
    const c0 = this.#cpu[i - 1]!;
    const c1 = this.#cpu[i]!;
    return t1 === t0 ? c1 : c0 + ((c1 - c0) * (time - t0)) / (t1 - t0);
  }
}

/** One server × configuration × round. */
interface EchoSample {
  readonly result: LoadResult;
  readonly cpuUs: number;
  /** Null where system calls were not counted. */
  readonly syscallsPerMessage: number | null;
  readonly peakRssBytes: number;
}

/** What the suite keeps track of while it runs, so an abort can stop it. */
class Session {
  readonly servers = new Set<RunningServer>();
  readonly failures: { server: string; config: string; reason: string }[] = [];
  /** Why perf could not count system calls; once set, no run tries again. */
  syscallsUnavailable: string | null = null;
  readonly progress: Progress;
  readonly signal: AbortSignal | undefined;

  constructor(progress: Progress, signal: AbortSignal | undefined) {
    this.progress = progress;
    this.signal = signal;
  }

  /** Starts `spec`, runs `body` on it, and stops it whatever happens. */
  async withServer<T>(spec: ServerSpec, body: (server: RunningServer) => Promise<T>): Promise<T> {
    this.signal?.throwIfAborted();
    const server = await startServer(spec, { timeoutMs: START_TIMEOUT_MS });
    this.servers.add(server);
    try {
      return await body(server);
    } finally {
      this.servers.delete(server);
      await server.stop();
    }
  }

  /** perf counting `pid`'s system calls, or null when it cannot (the reason is recorded once). */
  async attachSyscalls(pid: number): Promise<SyscallCounter | null> {
    if (this.syscallsUnavailable !== null) return null;
    try {
      return await SyscallCounter.attach(pid, this.signal);
    } catch (e) {
      this.noSyscalls(e);
      return null;
    }
  }

  /** What `counter` counted, per message of `result`; null (the reason recorded) when it failed. */
  async syscallsPerMessage(counter: SyscallCounter, result: LoadResult): Promise<number | null> {
    try {
      const { count, seconds } = await counter.result();
      const perMessage = count / seconds / (result.messages / result.seconds);
      return Number.isFinite(perMessage) ? perMessage : null;
    } catch (e) {
      this.noSyscalls(e);
      return null;
    }
  }

  /** Counting system calls is a bonus: its failure is noted once, never a failed run. */
  noSyscalls(e: unknown): void {
    if (this.signal?.aborted) throw this.signal.reason;
    if (this.syscallsUnavailable !== null) return;
    this.syscallsUnavailable = message(e);
    this.progress.note(`not counting system calls: ${this.syscallsUnavailable}`);
  }

  /** Records a failed run and says so; an abort is not a failure but the end of the suite. */
  fail(server: string, config: string, e: unknown): void {
    if (this.signal?.aborted) throw this.signal.reason;
    const reason = message(e);
    this.failures.push({ server, config, reason });
    this.progress.note(`${server} · ${config}: ${reason}`);
  }
}

/**
 * One run: the server fresh, perf attached to it in the {@link SYSCALL_CONFIGS}, then the load
 * (see {@link loadWindow}).
 */
async function echoRun(session: Session, spec: ServerSpec, config: EchoConfig, p: Plan, loadgen: string, count: boolean): Promise<EchoSample> {
  return session.withServer(spec, async (server) => {
    const syscalls = count ? await session.attachSyscalls(server.pid) : null;
    try {
      return await loadWindow(session, server, config, p, loadgen, syscalls);
    } finally {
      syscalls?.stop();
    }
  });
}

/**
 * The loadgen started against `server`, its window closed by this script once every connection
 * is up and the warm-up and measured seconds have passed (see the module comment); `syscalls`,
 * when there is one, counts through the measured seconds.
 */
async function loadWindow(
  session: Session,
  server: RunningServer,
  config: EchoConfig,
  p: Plan,
  loadgen: string,
  syscalls: SyscallCounter | null,
): Promise<EchoSample> {
  const { signal } = session;
  const baseFds = openFds(server.pid);
  const timeline = new CpuTimeline(server);
  const load = startLoad(loadgen, {
    port: server.port,
    connections: config.connections,
    depth: config.depth,
    size: config.size,
    seconds: p.seconds + BACKSTOP_SECONDS,
    warmup: p.warmup,
    signal,
  });
  // The loadgen ending before it is stopped is a failure: racing the waits against `ended`
  // turns that into a rejection at once instead of a wait for connections that will not come.
  const ended = load.done.then(() => {
    throw new Error("the loadgen ended before its window was closed");
  });
  ended.catch(() => {});
  let end: number;
  let cpuEnd: number;
  try {
    if (baseFds !== null) await Promise.race([waitForFds(server.pid, baseFds + config.connections, CONNECT_TIMEOUT_MS, signal), ended]);
    await Promise.race([sleep(p.warmup * 1000, undefined, { signal }), ended]);
    if (syscalls !== null) await Promise.race([syscalls.enable(), ended]);
    await Promise.race([sleep(p.seconds * 1000, undefined, { signal }), ended]);
    syscalls?.disable();
    timeline.sample();
    end = performance.now();
    cpuEnd = server.cpuTimeUs();
    load.stop();
  } catch (e) {
    load.stop();
    await load.done.catch(() => {});
    throw e;
  } finally {
    timeline.stop();
  }
  const result = await load.done;
  if (!(result.seconds > 0)) throw new Error("the loadgen measured nothing: its connections were not up in time");
  const cpuUs = cpuEnd - timeline.at(end - result.seconds * 1000);
  const syscallsPerMessage = syscalls === null ? null : await session.syscallsPerMessage(syscalls, result);
  return { result, cpuUs, syscallsPerMessage, peakRssBytes: server.peakRssBytes() };
}

/** The figures of `samples`; the system-call count from `counted` (the counting round). */
function summarize(server: string, config: EchoConfig, samples: readonly EchoSample[], counted: readonly EchoSample[]): EchoMeasurement {
  const each = (f: (s: EchoSample) => number): number => median(samples.map(f));
  const syscalls = counted.flatMap((s) => (s.syscallsPerMessage === null ? [] : [s.syscallsPerMessage]));
  return {
    server,
    config: config.name,
    messagesPerSec: each((s) => s.result.messages / s.result.seconds),
    mbPerSec: each((s) => s.result.bytes / s.result.seconds / 1e6),
    p50Us: each((s) => s.result.p50Us),
    p99Us: each((s) => s.result.p99Us),
    cpuUsPerMessage: each((s) => (s.result.messages > 0 ? s.cpuUs / s.result.messages : Number.NaN)),
    syscallsPerMessage: syscalls.length > 0 ? median(syscalls) : null,
    errors: samples.reduce((sum, s) => sum + s.result.errors, 0),
  };
}

async function echoPhase(
  session: Session,
  servers: readonly ServerSpec[],
  p: Plan,
  loadgen: string,
): Promise<{ echo: EchoMeasurement[]; peakPipelined: Map<string, number> }> {
  const echo: EchoMeasurement[] = [];
  const peakPipelined = new Map<string, number>();
  for (const config of p.configs) {
    const samples = new Map<string, EchoSample[]>(servers.map((s) => [s.label, []]));
    const counted = new Map<string, EchoSample[]>(servers.map((s) => [s.label, []]));
    const counting = SYSCALL_CONFIGS.includes(config.name);
    const total = p.rounds + countingRounds(config, p);
    for (let round = 0; round < total; round++) {
      // The counting round: the extra last one, or the only one in --quick.
      const count = counting && round === total - 1;
      const measured = round < p.rounds;
      for (const spec of rotate(servers, round)) {
        const rounds = !measured ? " · counting system calls" : p.rounds > 1 ? ` · round ${round + 1}/${p.rounds}` : "";
        session.progress.step(`${config.name} · ${spec.label}${rounds}`);
        try {
          const sample = await echoRun(session, spec, config, p, loadgen, count);
          if (count) counted.get(spec.label)!.push(sample);
          if (!measured) continue;
          samples.get(spec.label)!.push(sample);
          const { connected } = sample.result;
          if (connected < config.connections) session.fail(spec.label, config.name, `connected ${connected} of ${config.connections}`);
          // VmHWM is the peak since start, and each run has a fresh process: the peak of this run.
          if (config.name === "pipelined") peakPipelined.set(spec.label, Math.max(peakPipelined.get(spec.label) ?? 0, sample.peakRssBytes));
        } catch (e) {
          session.fail(spec.label, config.name, e);
        }
      }
    }
    for (const spec of servers) {
      const list = samples.get(spec.label)!;
      if (list.length > 0) echo.push(summarize(spec.label, config, list, counted.get(spec.label)!));
    }
  }
  return { echo, peakPipelined };
}

/** Rounds run only to count system calls: one for the {@link SYSCALL_CONFIGS}, none in --quick. */
function countingRounds(config: EchoConfig, p: Plan): number {
  return SYSCALL_CONFIGS.includes(config.name) && p.rounds > 1 ? 1 : 0;
}

/** Descriptors open in `pid`, or null when /proc does not say. */
function openFds(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/**
 * Waits until `pid` holds `count` descriptors, or `timeoutMs` passed; resolves with whether it
 * does. The loadgen counts a connection as made when the kernel completes the handshake, which
 * is before the server accepts it: counting the server's descriptors says when it has accepted
 * (and allocated for) every one.
 */
async function waitForFds(pid: number, count: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const open = openFds(pid);
    if (open === null) return false;
    if (open >= count) return true;
    if (performance.now() > deadline) return false;
    await sleep(SAMPLE_MS, undefined, { signal });
  }
}

/** A JS server's heap, read twice: the first request's allocation and any GC due settle first. */
async function settledStats(server: RunningServer, signal: AbortSignal | undefined): Promise<ServerStats | null> {
  if ((await server.stats()) === null) return null;
  await sleep(STATS_PAUSE_MS, undefined, { signal });
  return server.stats();
}

async function memoryRun(session: Session, spec: ServerSpec, p: Plan, loadgen: string, peak: number | null): Promise<MemoryMeasurement> {
  const { signal } = session;
  return session.withServer(spec, async (server) => {
    await sleep(SETTLE_MS, undefined, { signal });
    const baseStats = spec.js ? await settledStats(server, signal) : null;
    const baseRss = server.rssBytes();
    const baseFds = openFds(server.pid);
    const idle = await openIdle(loadgen, { port: server.port, connections: p.idleConnections, holdSeconds: IDLE_HOLD_SECONDS, signal });
    try {
      if (idle.connected < p.idleConnections) session.fail(spec.label, "memory", `connected ${idle.connected} of ${p.idleConnections} idle connections`);
      if (baseFds !== null && !(await waitForFds(server.pid, baseFds + idle.connected, ACCEPT_TIMEOUT_MS, signal))) {
        session.fail(spec.label, "memory", `the server had not accepted all ${idle.connected} connections after ${ACCEPT_TIMEOUT_MS / 1000} s`);
      }
      const stats = spec.js ? await settledStats(server, signal) : null;
      const rss = server.rssBytes();
      const n = Math.max(1, idle.connected);
      const heap = stats !== null && baseStats !== null ? { bytes: stats.heapUsed, perConnection: (stats.heapUsed - baseStats.heapUsed) / n } : null;
      return {
        server: spec.label,
        idleConnections: idle.connected,
        rssBytes: rss,
        rssPerConnectionBytes: (rss - baseRss) / n,
        heapBytes: heap?.bytes ?? null,
        heapPerConnectionBytes: heap?.perConnection ?? null,
        peakRssPipelinedBytes: peak,
      };
    } finally {
      await idle.close();
    }
  });
}

/**
 * Runs the suite. Rejects when the C programs cannot be built (BenchBuildError) or when
 * `signal` aborts (with its reason, after stopping what was running); a server or run that fails
 * is recorded in `failures` and the suite goes on.
 *
 * @example
 * ```ts
 * const report = await runBench({ quick: true, internals: false, command: "evloop bench --quick", progress: new Progress() });
 * console.log(renderMarkdown(report));
 * ```
 */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const { progress, signal } = options;
  const p = plan(options);
  const date = new Date().toISOString();
  progress.status("building the C load generator and echo servers");
  const binaries: CBinaries = await buildC({ quiet: true });
  signal?.throwIfAborted();

  const wanted = options.servers;
  const c = { echoEpoll: binaries.echoEpoll, echoUring: binaries.echoUring };
  const specs = suiteServers({ c, baseline: options.baseline }).filter(
    (s) => wanted === undefined || wanted.includes(s.label),
  );
  const servers = specs.filter((s) => s.available);
  const skipped = specs.filter((s) => !s.available).map((s) => ({ server: s.label, reason: s.reason ?? "unavailable" }));
  for (const s of skipped) progress.note(`skipping ${s.server}: ${s.reason}`);
  // The internals measure every available backend.
  const measured = new Set([...servers.flatMap((s) => s.backend ?? []), ...(options.internals ? availableBackends() : [])]);
  const notes = [...measured].flatMap((b) => emulationNote(b) ?? []);
  for (const note of notes) progress.note(`note: ${note}`);
  const echoRuns = p.configs.reduce((n, c) => n + (p.rounds + countingRounds(c, p)) * servers.length, 0);
  progress.begin(echoRuns + servers.length + (options.internals ? 1 : 0));

  const session = new Session(progress, signal);
  // Stopping the running server is all an abort needs here: startLoad and openIdle kill their
  // loadgen on the same signal, and withServer's finally runs as the rejection unwinds.
  const onAbort = (): void => {
    for (const server of session.servers) void server.stop();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const { echo, peakPipelined } = await echoPhase(session, servers, p, binaries.loadgen);

    const memory: MemoryMeasurement[] = [];
    for (const spec of servers) {
      progress.step(`memory · ${spec.label} · ${p.idleConnections.toLocaleString("en-US")} idle connections`);
      try {
        memory.push(await memoryRun(session, spec, p, binaries.loadgen, peakPipelined.get(spec.label) ?? null));
      } catch (e) {
        session.fail(spec.label, "memory", e);
      }
    }

    let internals: InternalsResult | null = null;
    if (options.internals) {
      progress.step("internals");
      try {
        internals = await runInternals({ quick: options.quick, onProgress: (label) => progress.relabel(label) });
      } catch (e) {
        session.fail("evloop", "internals", e);
      }
    }

    return {
      date,
      command: options.command,
      quick: options.quick,
      baseline: options.baseline === undefined ? null : { dir: options.baseline.dir, version: options.baseline.version, commit: options.baseline.commit },
      machine: describeMachine(),
      secondsPerRun: p.seconds,
      warmupSeconds: p.warmup,
      rounds: p.rounds,
      configs: p.configs,
      echo,
      memory,
      internals,
      skipped,
      notes,
      syscallsUnavailable: session.syscallsUnavailable,
      failures: session.failures,
    };
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
