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
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, readlinkSync, readSync, realpathSync } from "node:fs";
import path from "node:path";
import { availableBackends, probeBackends } from "evloop";
import { BASELINE_SUFFIX, type Baseline } from "./baseline.js";
import { PACKAGE_ROOT as ROOT } from "./paths.js";
import type { RunningServer, ServerSpec, ServerStats } from "./types.js";

const SERVERS_DIR = path.join(ROOT, "bench", "servers");
const VERSION_TIMEOUT_MS = 5000;
const STATS_TIMEOUT_MS = 2000;
const STOP_GRACE_MS = 3000;
const STDERR_TAIL = 4096;

/** Where the C servers were built, or why they could not be. */
export type CServers = { readonly echoEpoll: string; readonly echoUring: string } | { readonly error: string };

/** Options for {@link serverSpecs}. */
export interface ServerSpecOptions {
  /**
   * evloop backends to run; default: every available one except `blocking`. A backend named
   * here that is unavailable (or `blocking`) is listed as unavailable, with the reason.
   */
  readonly backends?: readonly string[];
  /** The C servers' binaries (see build.ts); without it both are unavailable. */
  readonly c?: CServers;
  /** A checkout whose evloop servers run too, each right after this package's, labelled `…@base`. */
  readonly baseline?: Baseline;
}

/**
 * Every server the suite knows, in report order: evloop per backend × guest, owner (each followed
 * by its `@base` twin when there is a baseline); `node:net`; `bun`; `deno`; `c-epoll`;
 * `c-io_uring`. Servers that cannot run here have `available: false` and a `reason`. Probing Bun
 * and Deno runs `--version` on each (at most 5 s).
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
  for (const backend of options.backends ?? availableBackends().filter((b) => b !== "blocking")) {
    const reason = backendUnavailable(backend);
    for (const mode of ["guest", "owner"]) {
      const label = `evloop-${backend}-${mode}`;
      const args = ["--backend", backend, "--mode", mode];
      specs.push({ ...script(label, node, path.join(SERVERS_DIR, "evloop.mjs"), args, reason), backend });
      if (options.baseline !== undefined) specs.push({ ...script(`${label}${BASELINE_SUFFIX}`, node, options.baseline.server, args, reason), backend });
    }
  }
  specs.push(script("node:net", node, path.join(SERVERS_DIR, "node.mjs"), [], undefined));
  specs.push(runtimeSpec("bun", (bin) => [bin, [path.join(SERVERS_DIR, "bun.mjs")]]));
  specs.push(
    runtimeSpec("deno", (bin) => [bin, ["run", "--allow-net=127.0.0.1", "--no-prompt", path.join(SERVERS_DIR, "deno.mjs")]], {
      DENO_NO_UPDATE_CHECK: "1",
    }),
  );
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

// ---- Bun and Deno ------------------------------------------------------------------------

type Runtime = "bun" | "deno";

/**
 * Where the npm packages put the real binary. `node_modules/.bin/<name>` is a symlink to it once
 * the package's postinstall has run; without that (`npm install --ignore-scripts`) it is a
 * JavaScript launcher, and the binary is only in the platform package.
 */
function candidates(name: Runtime): string[] {
  const nm = path.join(ROOT, "node_modules");
  const bunArch = process.arch === "arm64" ? "aarch64" : process.arch;
  const inPackages =
    name === "bun"
      ? [
          path.join(nm, "bun", "bin", "bun.exe"),
          ...["", "-baseline", "-musl", "-musl-baseline"].map((v) => path.join(nm, "@oven", `bun-linux-${bunArch}${v}`, "bin", "bun")),
        ]
      : [path.join(nm, "deno", "deno"), path.join(nm, "@deno", `linux-${process.arch}-glibc`, "deno")];
  const onPath = (process.env.PATH ?? "").split(path.delimiter).filter((dir) => dir !== "").map((dir) => path.join(dir, name));
  return [path.join(nm, ".bin", name), ...inPackages, ...onPath];
}

/** Whether `file` starts with the ELF magic (so exec runs it, not an interpreter). */
function isElf(file: string): boolean {
  const magic = Buffer.alloc(4);
  let fd = -1;
  try {
    fd = openSync(file, "r");
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.toString("latin1") === "\x7fELF";
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** The first working native binary of `name`, or why there is none. */
function locate(name: Runtime): { binary: string } | { reason: string } {
  const failures: string[] = [];
  const seen = new Set<string>();
  for (const candidate of candidates(name)) {
    let real: string;
    try {
      real = realpathSync(candidate);
    } catch {
      continue;
    }
    if (seen.has(real)) continue;
    seen.add(real);
    if (!isElf(real)) continue;
    const run = spawnSync(real, ["--version"], { timeout: VERSION_TIMEOUT_MS, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
    if (run.status === 0) return { binary: real };
    const why = run.error ? run.error.message : run.signal ? `killed by ${run.signal}` : `exit code ${run.status}: ${tail(run.stderr, 200)}`;
    failures.push(`${real} --version failed (${why})`);
  }
  if (failures.length > 0) return { reason: failures.join("; ") };
  return { reason: `${name} is not installed (npm install --save-dev ${name})` };
}

function runtimeSpec(name: Runtime, command: (binary: string) => [string, string[]], env?: Record<string, string>): ServerSpec {
  const file = path.join(SERVERS_DIR, `${name}.mjs`);
  if (!existsSync(file)) return { label: name, available: false, reason: `${file} is missing`, command: "", args: [], js: true };
  const found = locate(name);
  if ("reason" in found) return { label: name, available: false, reason: found.reason, command: "", args: [], js: true };
  const [bin, args] = command(found.binary);
  return { label: name, available: true, command: bin, args, js: true, ...(env ? { env } : {}) };
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
