/**
 * Bun and Deno in the suite: finding their real binaries, the command lines that run a server on
 * each, and what evloop itself says it can do under each (`bench/servers/probe.mjs`).
 *
 * Each runtime runs two kinds of server: its own sockets (`bun.mjs` on Bun.listen, `deno.mjs` on
 * Deno.listen), and evloop's echo server, the same `evloop.mjs` that Node runs, as
 * `evloop-<backend>-<mode>@bun` / `@deno`. Which of those can run is not decided here but asked of
 * evloop under the runtime, once per process: the probe lists the backends evloop finds there and
 * tries `createLoop({ backend, guest })` in each mode, reporting the error it throws. So a server
 * is unavailable with evloop's own words for why (guest mode on Bun and Deno today), and becomes
 * available as soon as evloop can do it there, with no change to the bench.
 *
 * Deno runs evloop with `--allow-ffi --allow-env=EVLOOP_* --allow-read=<evloop's dist/>` and
 * nothing else. `--allow-read` of evloop's own files is guest mode's: Deno checks read access to
 * a Worker's module, and guest mode starts its helper thread from `dist/driver/`. `--allow-ffi` is
 * evloop itself (Deno.dlopen of the C library); it cannot be narrowed to a path, since evloop opens
 * the C library by its soname and the executable itself, which a path list cannot name (and a
 * process with FFI can do anything, so a narrower list would restrict nothing). No `--allow-net`:
 * evloop's sockets are made through FFI, outside Deno's permission checks. `--allow-env=EVLOOP_*`
 * lets evloop and the server read their own variables (EVLOOP_BACKEND, EVLOOP_DEBUG,
 * EVLOOP_KQUEUE_LIB, EVLOOP_BENCH_BORROWED, EVLOOP_STATS …) as they do on Node; Deno refuses every
 * other variable. Deno.listen's server needs only `--allow-net=127.0.0.1`.
 */
import { closeSync, existsSync, openSync, readSync, realpathSync } from "node:fs";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { evloopLabel, type Runtime } from "./labels.js";
import { PACKAGE_ROOT, SERVERS_DIR } from "./paths.js";
import type { ServerSpec } from "./types.js";

const VERSION_TIMEOUT_MS = 5000;
/** The probe loads evloop, which on a first Deno run includes reading and caching the modules. */
const PROBE_TIMEOUT_MS = 30_000;

/** The runtime's name as people write it. */
export const RUNTIME_NAMES: Readonly<Record<Runtime, string>> = { bun: "Bun", deno: "Deno" };

/** What Deno is allowed when it runs evloop (the echo server and the probe); see the module comment. */
export const DENO_EVLOOP_PERMISSIONS: readonly string[] = ["--allow-ffi", "--allow-env=EVLOOP_*", `--allow-read=${path.join(PACKAGE_ROOT, "dist")}`];
/** What Deno is allowed when it runs its own sockets' echo server. */
export const DENO_NET_PERMISSIONS: readonly string[] = ["--allow-net=127.0.0.1"];
/** Deno's environment: no update check on the network; no colour codes in a failure's stderr. */
const DENO_ENV: Readonly<Record<string, string>> = { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };

/** Where a runtime's binary was found, or why it was not. */
export type Located = { readonly binary: string } | { readonly reason: string };

/** A command line to spawn. */
export interface Command {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * `runtime` running `script` with `args`: `bun script …`, or `deno run --no-prompt <permissions>
 * script …` (evloop's permissions unless others are given).
 *
 * @example
 * ```ts
 * runtimeCommand("deno", "/usr/bin/deno", "bench/servers/evloop.mjs", ["--backend", "epoll"]);
 * // { command: "/usr/bin/deno", args: ["run", "--no-prompt", "--allow-ffi", "--allow-env=EVLOOP_*", "--allow-read=…/dist", "bench/servers/evloop.mjs", "--backend", "epoll"], env: {…} }
 * ```
 */
export function runtimeCommand(
  runtime: Runtime,
  binary: string,
  script: string,
  args: readonly string[] = [],
  permissions: readonly string[] = DENO_EVLOOP_PERMISSIONS,
): Command {
  if (runtime === "bun") return { command: binary, args: [script, ...args] };
  return { command: binary, args: ["run", "--no-prompt", ...permissions, script, ...args], env: DENO_ENV };
}

// ---- finding the binaries ---------------------------------------------------------------------

/**
 * Where the npm packages put the real binary. `node_modules/.bin/<name>` is a symlink to it once
 * the package's postinstall has run; without that (`npm install --ignore-scripts`) it is a
 * JavaScript launcher, and the binary is only in the platform package.
 */
function candidates(name: Runtime): string[] {
  const nm = path.join(PACKAGE_ROOT, "node_modules");
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

function tail(text: string, max: number): string {
  const t = text.trim();
  return t.length > max ? `…${t.slice(t.length - max)}` : t;
}

/** How a finished child process failed, in a few words. */
function failure(run: ReturnType<typeof spawnSync>, max: number): string {
  if (run.error) return run.error.message;
  if (run.signal) return `killed by ${run.signal}`;
  return `exit code ${run.status}: ${tail(String(run.stderr ?? ""), max)}`;
}

const located = new Map<Runtime, Located>();

/**
 * The first working native binary of `runtime` (one that answers `--version`), or why there is
 * none. Looked up once per process.
 */
export function locateRuntime(runtime: Runtime): Located {
  let found = located.get(runtime);
  if (found === undefined) {
    found = locate(runtime);
    located.set(runtime, found);
  }
  return found;
}

function locate(name: Runtime): Located {
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
    failures.push(`${real} --version failed (${failure(run, 200)})`);
  }
  if (failures.length > 0) return { reason: failures.join("; ") };
  return { reason: `${name} is not installed (npm install --save-dev ${name})` };
}

/** The runtime's own sockets' echo server (`bun.mjs`, `deno.mjs`), labelled `bun` or `deno`. */
export function ownSocketsSpec(runtime: Runtime, found: Located = locateRuntime(runtime)): ServerSpec {
  const file = path.join(SERVERS_DIR, `${runtime}.mjs`);
  const none = { label: runtime, command: "", args: [], js: true };
  if (!existsSync(file)) return { ...none, available: false, reason: `${file} is missing` };
  if ("reason" in found) return { ...none, available: false, reason: found.reason };
  return { label: runtime, available: true, js: true, ...runtimeCommand(runtime, found.binary, file, [], DENO_NET_PERMISSIONS) };
}

// ---- asking evloop under the runtime ----------------------------------------------------------

/** One backend as the probe reports it: its availability, and each mode's (null: it works). */
export interface ProbedBackend {
  readonly name: string;
  readonly available: boolean;
  readonly reason?: string;
  readonly modes?: { readonly guest: string | null; readonly owner: string | null };
}

/** What evloop said under a runtime, or why it could not be asked. */
export type RuntimeProbe = { readonly runtime: string; readonly backends: readonly ProbedBackend[] } | { readonly error: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isModeReason(value: unknown): value is string | null {
  return value === null || typeof value === "string";
}

function isProbedBackend(value: unknown): value is ProbedBackend {
  if (!isRecord(value) || typeof value.name !== "string" || typeof value.available !== "boolean") return false;
  if (value.reason !== undefined && typeof value.reason !== "string") return false;
  if (value.modes === undefined) return true;
  return isRecord(value.modes) && isModeReason(value.modes.guest) && isModeReason(value.modes.owner);
}

/**
 * Reads the probe's output: its `PROBE {json}` line.
 *
 * @example
 * ```ts
 * parseProbe('PROBE {"runtime":"bun 1.4.5","backends":[]}\n'); // { runtime: "bun 1.4.5", backends: [] }
 * ```
 */
export function parseProbe(stdout: string): RuntimeProbe {
  const line = stdout.split("\n").reverse().find((l) => l.startsWith("PROBE "));
  if (line === undefined) return { error: "the probe printed no PROBE line" };
  let value: unknown;
  try {
    value = JSON.parse(line.slice(6));
  } catch {
    return { error: `the probe printed a malformed PROBE line: ${tail(line, 200)}` };
  }
  if (!isRecord(value) || typeof value.runtime !== "string" || !Array.isArray(value.backends) || !value.backends.every(isProbedBackend)) {
    return { error: `the probe printed an unexpected PROBE line: ${tail(line, 200)}` };
  }
  return { runtime: value.runtime, backends: value.backends };
}

const probed = new Map<string, RuntimeProbe>();

/**
 * Runs `bench/servers/probe.mjs` with `binary` (at most {@link PROBE_TIMEOUT_MS}), once per
 * process and binary, with the environment the servers get.
 */
export function probeRuntime(runtime: Runtime, binary: string): RuntimeProbe {
  const key = `${runtime}\0${binary}`;
  let probe = probed.get(key);
  if (probe === undefined) {
    probe = runProbe(runtime, binary);
    probed.set(key, probe);
  }
  return probe;
}

function runProbe(runtime: Runtime, binary: string): RuntimeProbe {
  const script = path.join(SERVERS_DIR, "probe.mjs");
  if (!existsSync(script)) return { error: `${script} is missing` };
  const { command, args, env } = runtimeCommand(runtime, binary, script);
  const run = spawnSync(command, [...args], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, ...env },
    timeout: PROBE_TIMEOUT_MS,
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
  });
  const what = `evloop does not load on ${RUNTIME_NAMES[runtime]} (${[command, ...args].join(" ")}`;
  if (run.status !== 0) return { error: `${what}: ${failure(run, 600)})` };
  const probe = parseProbe(run.stdout);
  return "error" in probe ? { error: `${what}: ${probe.error})` } : probe;
}

/**
 * The backends the suite runs evloop on, from a probe's list: every backend but `blocking` (one
 * operation at a time cannot serve concurrent connections), and an emulated one (`isEmulated`:
 * kqueue through libkqueue on Linux) only when it is available.
 *
 * @example
 * ```ts
 * listedBackends(probeBackends(), (b) => emulationNote(b) !== undefined); // ["io_uring", "epoll", "poll"]
 * ```
 */
export function listedBackends(probes: readonly Pick<ProbedBackend, "name" | "available">[], isEmulated: (backend: string) => boolean): string[] {
  return probes.filter((b) => b.name !== "blocking" && (b.available || !isEmulated(b.name))).map((b) => b.name);
}

/**
 * evloop's echo server on `runtime`: `evloop-<backend>-<guest|owner>@<runtime>` for each backend
 * the probe lists (`listedBackends`), or for `fallback` (Node's list) when there is no probe to
 * go by, each unavailable with the first reason that applies: no binary, the probe failed, the
 * backend is unavailable there, or the mode is (the error `createLoop` threw under it).
 *
 * @example
 * ```ts
 * const probe = probeRuntime("bun", binary);
 * evloopRuntimeSpecs("bun", { binary }, probe, ["io_uring", "epoll", "poll"], () => false).map((s) => s.label);
 * // ["evloop-io_uring-guest@bun", "evloop-io_uring-owner@bun", …]
 * ```
 */
export function evloopRuntimeSpecs(
  runtime: Runtime,
  found: Located,
  probe: RuntimeProbe,
  fallback: readonly string[],
  isEmulated: (backend: string) => boolean,
): ServerSpec[] {
  const server = path.join(SERVERS_DIR, "evloop.mjs");
  const missing = existsSync(server) ? undefined : `${server} is missing`;
  const backends = "backends" in probe ? listedBackends(probe.backends, isEmulated) : fallback;
  return backends.flatMap((backend) =>
    (["guest", "owner"] as const).map((mode): ServerSpec => {
      const label = evloopLabel(backend, mode, runtime);
      if ("reason" in found) return { label, backend, available: false, reason: found.reason, command: "", args: [], js: true };
      const spec = { label, backend, js: true, ...runtimeCommand(runtime, found.binary, server, ["--backend", backend, "--mode", mode]) };
      const reason = missing ?? unavailable(probe, backend, mode, runtime);
      return reason === undefined ? { ...spec, available: true } : { ...spec, available: false, reason };
    }),
  );
}

/** Why evloop cannot run `backend` in `mode` under the runtime, as the probe says; undefined if it can. */
function unavailable(probe: RuntimeProbe, backend: string, mode: "guest" | "owner", runtime: Runtime): string | undefined {
  if ("error" in probe) return probe.error;
  const probedBackend = probe.backends.find((b) => b.name === backend);
  if (probedBackend === undefined) return `evloop has no backend ${JSON.stringify(backend)} on ${RUNTIME_NAMES[runtime]}`;
  if (!probedBackend.available) return probedBackend.reason ?? "unavailable";
  const reason = probedBackend.modes?.[mode];
  if (reason === undefined) return `the probe did not try ${mode} mode`;
  return reason ?? undefined;
}
