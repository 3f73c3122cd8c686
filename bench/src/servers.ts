/**
 * The echo servers the suite compares, and running one as a child process.
 *
 * Each server is a program in `bench/servers/` (the C ones are built from `bench/c/`) that prints
 * `PORT <n>` once listening on 127.0.0.1; the JavaScript ones also answer SIGUSR2 with a
 * `STATS {json}` line. A running server is measured from outside through /proc, so every figure
 * means the same for a C program and for a JavaScript runtime. That only holds if the pid is the
 * server itself: Bun and Deno are therefore always started from their real binary, never through
 * a wrapper script in `node_modules/.bin`, and startServer checks `/proc/<pid>/exe`.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import path from "node:path";
import { availableBackends, probeBackends } from "evloop";
import { BASELINE_SUFFIX, type Baseline } from "./baseline.js";
import { emulationNote } from "./emulation.js";
import { evloopLabel, RUNTIMES, type Runtime } from "./labels.js";
import { PACKAGE_ROOT as ROOT, SERVERS_DIR } from "./paths.js";
import { evloopRuntimeSpecs, locateRuntime, ownSocketsSpec, probeRuntime } from "./runtimes.js";
import type { RunningServer, ServerSpec, ServerStats } from "./types.js";

const VERSION_TIMEOUT_MS = 5000;
/**
 * How long a JS server may take to answer SIGUSR2. Deno in owner mode takes about a second when
 * idle: Deno's setImmediate, with which owner mode yields between its 50 ms waits, does not poll
 * Deno's own I/O (where its signals arrive) every time.
 */
const STATS_TIMEOUT_MS = 5000;
const STOP_GRACE_MS = 3000;
const STDERR_TAIL = 4096;

/** Where the C servers were built, or why they could not be. */
export type CServers = { readonly echoEpoll: string; readonly echoUring: string } | { readonly error: string };

/** Options for {@link serverSpecs}. */
export interface ServerSpecOptions {
  /**
   * evloop backends to run on Node; default: every available one except `blocking`. A backend
   * named here that is unavailable (or `blocking`) is listed as unavailable, with the reason.
   */
  readonly backends?: readonly string[];
  /**
   * Runtimes besides Node whose servers to list (default: Bun and Deno): each runtime's own
   * sockets, and evloop's echo server on every backend evloop finds there (see runtimes.ts).
   */
  readonly runtimes?: readonly Runtime[];
  /** The C servers' binaries (see build.ts); without it both are unavailable. */
  readonly c?: CServers;
  /** A checkout whose evloop servers run too, each right after this package's, labelled `…@base`. */
  readonly baseline?: Baseline;
}

/**
 * Every server the suite knows, in report order: evloop on Node per backend × guest, owner (each
 * followed by its `@base` twin when there is a baseline), then `node:net`; evloop on Bun per
 * backend × mode (`…@bun`), then `bun`; the same on Deno (`…@deno`), then `deno`; `c-epoll`;
 * `c-io_uring`. So each runtime's evloop servers sit right above its own sockets' server. Servers
 * that cannot run here have `available: false` and a `reason`. Bun and Deno are asked, once per
 * process, for `--version` (at most 5 s each) and what evloop can do under them (the probe, at
 * most 30 s).
 *
 * @example
 * ```ts
 * for (const s of serverSpecs({ c: { echoEpoll: "build/echo-epoll", echoUring: "build/echo-uring" } })) {
 *   console.log(s.label, s.available ? "" : s.reason);
 * }
 * ```
 */
export function serverSpecs(options: ServerSpecOptions = {}): ServerSpec[] {
  const node = process.execPath;
  const specs: ServerSpec[] = [];
  const backends = options.backends ?? availableBackends().filter((b) => b !== "blocking");
  for (const backend of backends) {
    const reason = backendUnavailable(backend);
    for (const mode of ["guest", "owner"] as const) {
      const label = evloopLabel(backend, mode);
      const args = ["--backend", backend, "--mode", mode];
      specs.push({ ...script(label, node, path.join(SERVERS_DIR, "evloop.mjs"), args, reason), backend });
      if (options.baseline !== undefined) specs.push({ ...script(`${label}${BASELINE_SUFFIX}`, node, options.baseline.server, args, reason), backend });
    }
  }
  specs.push(script("node:net", node, path.join(SERVERS_DIR, "node.mjs"), [], undefined));
  for (const runtime of RUNTIMES.filter((r) => options.runtimes === undefined || options.runtimes.includes(r))) {
    const found = locateRuntime(runtime);
    const probe = "binary" in found ? probeRuntime(runtime, found.binary) : { error: found.reason };
    specs.push(...evloopRuntimeSpecs(runtime, found, probe, backends, (b) => emulationNote(b) !== undefined));
    specs.push(ownSocketsSpec(runtime, found));
  }
  specs.push(...cSpecs(options.c ?? { error: "the C servers were not built" }));
  return specs;
}

function backendUnavailable(backend: string): string | undefined {
  if (backend === "blocking") return "the blocking backend runs one operation at a time, so it cannot serve concurrent connections";
  const probe = probeBackends().find((p) => p.name === backend);
  if (!probe) return `evloop has no backend ${JSON.stringify(backend)} on ${process.platform}`;
  return probe.available ? undefined : (probe.reason ?? "unavailable");
}

/** A JavaScript server: `command full …args`. */
function script(label: string, command: string, full: string, args: string[], reason: string | undefined): ServerSpec {
  const missing = existsSync(full) ? undefined : `${full} is missing`;
  const why = reason ?? missing;
  const base = { label, command, args: [full, ...args], js: true };
  return why === undefined ? { ...base, available: true } : { ...base, available: false, reason: why };
}

function cSpecs(c: CServers): ServerSpec[] {
  const binaries: [string, string | undefined][] =
    "error" in c ? [["c-epoll", undefined], ["c-io_uring", undefined]] : [["c-epoll", c.echoEpoll], ["c-io_uring", c.echoUring]];
  return binaries.map(([label, binary]): ServerSpec => {
    const reason = "error" in c ? c.error : binary !== undefined && !existsSync(binary) ? `${binary} does not exist` : undefined;
    const base = { label, command: binary ?? "", args: [], js: false };
    return reason === undefined ? { ...base, available: true } : { ...base, available: false, reason };
  });
}

// ---- running a server --------------------------------------------------------------------

let clockTicks: number | undefined;

/** Clock ticks per second, the unit of utime and stime in /proc/<pid>/stat. */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number.parseInt(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8", timeout: VERSION_TIMEOUT_MS }), 10);
    } catch {
      clockTicks = Number.NaN;
    }
    // 100 is what every Linux architecture reports to user space (USER_HZ).
    if (!(clockTicks > 0)) clockTicks = 100;
  }
  return clockTicks;
}

function tail(text: string, max: number): string {
  const t = text.trim();
  return t.length > max ? `…${t.slice(t.length - max)}` : t;
}

/** Children still running, killed if this process exits without stopping them. */
const live = new Set<ChildProcess>();
let exitHook = false;

/**
 * Starts `spec` and resolves once it printed its port. Rejects (after killing it) if it exits
 * first or does not listen within `timeoutMs`, with the end of its stderr in the message.
 *
 * @example
 * ```ts
 * const [spec] = serverSpecs().filter((s) => s.label === "node:net");
 * const server = await startServer(spec);
 * console.log(server.port, server.cpuTimeUs(), server.rssBytes(), await server.stats());
 * await server.stop();
 * ```
 */
export function startServer(spec: ServerSpec, options: { timeoutMs?: number } = {}): Promise<RunningServer> {
  if (!spec.available) return Promise.reject(new Error(`${spec.label} is unavailable: ${spec.reason ?? "no reason given"}`));
  const timeoutMs = options.timeoutMs ?? 10_000;
  const child = spawn(spec.command, [...spec.args], {
    cwd: ROOT,
    env: { ...process.env, ...spec.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  if (!exitHook) {
    exitHook = true;
    process.on("exit", () => {
      for (const c of live) c.kill("SIGKILL");
    });
  }

  let stderr = "";
  let stdout = "";
  /** How the process ended; null while it runs. */
  let ended: string | null = null;
  const statsWaiters: ((stats: ServerStats | null) => void)[] = [];
  let onPort: (port: number) => void = () => {};
  let onEnd: () => void = () => {};
  const exited = new Promise<void>((resolve) => {
    const end = (how: string): void => {
      if (ended !== null) return;
      ended = how;
      live.delete(child);
      for (const w of statsWaiters.splice(0)) w(null);
      onEnd();
      resolve();
    };
    child.once("exit", (code, signal) => end(signal !== null ? `killed by ${signal}` : `exit code ${code}`));
    // A process that could not be spawned (ENOENT, EACCES) emits "error" and may never emit "exit".
    child.on("error", (e) => {
      if (child.pid === undefined) end(`cannot run ${spec.command}: ${e.message}`);
    });
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL);
  });
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    stdout += chunk;
    for (let nl = stdout.indexOf("\n"); nl >= 0; nl = stdout.indexOf("\n")) {
      const line = stdout.slice(0, nl).trim();
      stdout = stdout.slice(nl + 1);
      if (line.startsWith("PORT ")) onPort(Number(line.slice(5)));
      else if (line.startsWith("STATS ")) statsWaiters.shift()?.(parseStats(line.slice(6)));
    }
  });

  const pid = (): number => {
    if (ended !== null || child.pid === undefined) throw new Error(`${spec.label} is not running (${ended ?? "not started"})`);
    return child.pid;
  };

  const stop = async (): Promise<void> => {
    if (ended === null) {
      child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_GRACE_MS)));
      const killed = await Promise.race([exited.then(() => false), late]);
      clearTimeout(timer);
      if (killed) child.kill("SIGKILL");
    }
    await exited;
  };

  const stats = (): Promise<ServerStats | null> => {
    if (!spec.js || ended !== null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const done = (value: ServerStats | null): void => {
        clearTimeout(timer);
        resolve(value);
      };
      const timer = setTimeout(() => {
        const i = statsWaiters.indexOf(done);
        if (i >= 0) statsWaiters.splice(i, 1);
        resolve(null);
      }, STATS_TIMEOUT_MS);
      statsWaiters.push(done);
      child.kill("SIGUSR2");
    });
  };

  return new Promise<RunningServer>((resolve, reject) => {
    const timer = setTimeout(() => fail(`no PORT line within ${timeoutMs} ms`), timeoutMs);
    const settle = (): void => {
      clearTimeout(timer);
      onPort = () => {};
      onEnd = () => {};
    };
    const fail = (message: string): void => {
      settle();
      void stop().then(() => {
        const err = stderr.trim() === "" ? "" : `; stderr: ${tail(stderr, 1000)}`;
        reject(new Error(`${spec.label} ${message}${err}`));
      });
    };
    onEnd = () => fail(`ended before listening (${ended ?? "?"})`);
    onPort = (port) => {
      settle();
      if (!Number.isInteger(port) || port <= 0 || port > 65535) return fail(`printed an invalid port ${port}`);
      const wrapper = notTheServer(pid(), spec.command);
      if (wrapper !== undefined) return fail(wrapper);
      resolve({
        label: spec.label,
        pid: pid(),
        port,
        cpuTimeUs: () => cpuTimeUs(pid()),
        rssBytes: () => statusKb(pid(), "VmRSS") * 1024,
        peakRssBytes: () => statusKb(pid(), "VmHWM") * 1024,
        stats,
        stop,
      });
    };
  });
}

/**
 * Why the process is not `command` itself (a launcher script would be measured instead of the
 * server), or undefined when it is.
 */
function notTheServer(pid: number, command: string): string | undefined {
  let exe: string;
  let expected: string;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, "");
    expected = realpathSync(command);
  } catch {
    return undefined;
  }
  return exe === expected ? undefined : `pid ${pid} runs ${exe}, not ${expected}: a wrapper would be measured instead of the server`;
}

function parseStats(json: string): ServerStats | null {
  try {
    const value: unknown = JSON.parse(json);
    if (typeof value !== "object" || value === null) return null;
    const { heapUsed, rss } = value as Record<string, unknown>;
    return typeof heapUsed === "number" && typeof rss === "number" ? { heapUsed, rss } : null;
  } catch {
    return null;
  }
}

/** utime + stime of `pid` in microseconds. */
function cpuTimeUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // The command name (field 2) is in parentheses and may itself hold spaces and parentheses:
  // count fields from the last ")". Field 3 (state) is then index 0, utime (14) index 11.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000_000) / ticksPerSecond();
}

/** A `kB` line of /proc/<pid>/status, such as VmRSS. */
function statusKb(pid: number, key: string): number {
  const status = readFileSync(`/proc/${pid}/status`, "latin1");
  const match = new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(status);
  if (!match) throw new Error(`/proc/${pid}/status has no ${key} line`);
  return Number(match[1]);
}
