/**
 * The benchmark suite's shared vocabulary (see ../shared/BENCHMARKS.md): echo configurations,
 * what a load run and a server measurement produce, and the report written as Markdown, JSON
 * and SVG. Every module of bench/src speaks these types.
 */

/** One echo configuration: C connections, each keeping `depth` messages of `size` bytes in flight. */
export interface EchoConfig {
  /** Short stable id used in tables and JSON: latency, conns100, pipelined, bandwidth, scale. */
  readonly name: string;
  readonly connections: number;
  readonly size: number;
  readonly depth: number;
}

/** The five configurations of BENCHMARKS.md. */
export const ECHO_CONFIGS: readonly EchoConfig[] = [
  { name: "latency", connections: 1, size: 64, depth: 1 },
  { name: "conns100", connections: 100, size: 64, depth: 1 },
  { name: "pipelined", connections: 100, size: 64, depth: 16 },
  { name: "bandwidth", connections: 10, size: 16384, depth: 4 },
  { name: "scale", connections: 10000, size: 64, depth: 1 },
];

/**
 * The configurations whose runs count the server's system calls (with perf; see syscalls.ts):
 * one is enough to compare the servers, and attaching perf costs every run a moment.
 */
export const SYSCALL_CONFIGS: readonly string[] = ["pipelined"];

/** What the C load generator reports for one run (its JSON line, camel-cased). */
export interface LoadResult {
  readonly messages: number;
  readonly bytes: number;
  readonly seconds: number;
  /** Round-trip percentiles in microseconds (NaN when no message completed). */
  readonly p50Us: number;
  readonly p99Us: number;
  readonly errors: number;
  readonly connected: number;
}

/** A server the suite can run. */
export interface ServerSpec {
  /**
   * `evloop-<backend>-<guest|owner>` (on Node; `…@bun` and `…@deno` on Bun and Deno), `node:net`,
   * `bun`, `deno`, `c-epoll`, `c-io_uring`: see labels.ts.
   */
  readonly label: string;
  readonly available: boolean;
  /** Why it is unavailable. */
  readonly reason?: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** The evloop backend it runs (evloop servers only, on any runtime). */
  readonly backend?: string;
  /** Whether it is a JavaScript server that answers SIGUSR2 with a `STATS {json}` line. */
  readonly js: boolean;
}

/** JS heap and RSS as a JS server reports them. */
export interface ServerStats {
  readonly heapUsed: number;
  readonly rss: number;
}

/** A started server process. */
export interface RunningServer {
  readonly label: string;
  readonly pid: number;
  readonly port: number;
  /** utime+stime of the process so far, in microseconds (from /proc/<pid>/stat). */
  cpuTimeUs(): number;
  /** Current resident set size in bytes (VmRSS). */
  rssBytes(): number;
  /** Peak resident set size in bytes since start (VmHWM). */
  peakRssBytes(): number;
  /** Asks a JS server for its heap (SIGUSR2 → STATS line); null for C servers or on timeout. */
  stats(): Promise<ServerStats | null>;
  /** SIGTERM, then SIGKILL after a grace period; resolves when the process is gone. */
  stop(): Promise<void>;
}

/** One server × configuration result. */
export interface EchoMeasurement {
  readonly server: string;
  readonly config: string;
  readonly messagesPerSec: number;
  readonly mbPerSec: number;
  readonly p50Us: number;
  readonly p99Us: number;
  /** Server CPU (utime+stime) per echoed message, in microseconds. */
  readonly cpuUsPerMessage: number;
  /**
   * The server's system calls (all its threads) per echoed message, counted by perf during the
   * measured window; null outside {@link SYSCALL_CONFIGS} and where perf could not count.
   */
  readonly syscallsPerMessage: number | null;
  readonly errors: number;
}

/** Memory of one server. */
export interface MemoryMeasurement {
  readonly server: string;
  readonly idleConnections: number;
  readonly rssBytes: number;
  readonly rssPerConnectionBytes: number;
  /** JS servers only. */
  readonly heapBytes: number | null;
  readonly heapPerConnectionBytes: number | null;
  /** Peak RSS (VmHWM) during the pipelined run. */
  readonly peakRssPipelinedBytes: number | null;
}

/** Event-loop internals (timers, wake-ups, cost per ready event). */
export interface InternalsResult {
  readonly timers: {
    readonly count: number;
    readonly cancelled: number;
    /** Milliseconds to schedule all, cancel half and fire the rest. */
    readonly evloopMs: number;
    readonly setTimeoutMs: number;
  };
  readonly wakeups: {
    /** Cross-thread interrupt() round trips per second, per backend. */
    readonly perSecond: Readonly<Record<string, number>>;
  };
  /** Cost per ready event (ns) as registered fds grow, per backend. */
  readonly readyCost: ReadonlyArray<{ readonly backend: string; readonly fds: number; readonly nsPerEvent: number }>;
}

/** The whole report. */
export interface BenchReport {
  readonly date: string;
  readonly command: string;
  readonly quick: boolean;
  /**
   * The checkout `--baseline` named, whose evloop servers ran as `<label>@base`; null without
   * one. `commit` is null outside git, and ends in `-dirty` with uncommitted changes.
   */
  readonly baseline: { readonly dir: string; readonly version: string; readonly commit: string | null } | null;
  readonly machine: { readonly cpu: string; readonly cores: number; readonly memoryBytes: number; readonly kernel: string; readonly node: string };
  readonly secondsPerRun: number;
  /** Unmeasured seconds of load before each run's measured window. */
  readonly warmupSeconds: number;
  /** Rounds of every server in every configuration; figures are medians over them. */
  readonly rounds: number;
  /** The configurations as run (quick mode scales `scale` down to 1,000 connections). */
  readonly configs: readonly EchoConfig[];
  readonly echo: readonly EchoMeasurement[];
  readonly memory: readonly MemoryMeasurement[];
  readonly internals: InternalsResult | null;
  readonly skipped: ReadonlyArray<{ readonly server: string; readonly reason: string }>;
  /**
   * What some figures measure where that is not what their label says: an emulated backend's
   * (kqueue through libkqueue on Linux; see emulation.ts). Empty when nothing measured is emulated.
   */
  readonly notes: readonly string[];
  /** Why system calls could not be counted (perf missing, not permitted, or failing), or null. */
  readonly syscallsUnavailable: string | null;
  /**
   * Runs that failed or fell short (a server that would not start, a loadgen error, fewer
   * connections than asked for); `config` is `memory` or `internals` for those phases.
   */
  readonly failures: ReadonlyArray<{ readonly server: string; readonly config: string; readonly reason: string }>;
}
