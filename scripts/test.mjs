#!/usr/bin/env node
/**
 * Runs the whole test suite in one `node --test` process: every `test/**\/*.test.mjs`, found by a
 * recursive readdir because Node 20's `--test` does not expand globs. Then the conformance suite
 * under Bun and Deno (below).
 *
 * Files run one at a time (`--test-concurrency=1`): the conformance suite opens a thousand
 * connections and moves 64 MiB per backend, and on a 2-core machine parallel files would only
 * make those tests slower and flakier. `--test-timeout` bounds every test, and the runner also
 * applies it to each file's process as a whole, killing it from outside — which matters because
 * a test that blocks its thread in the kernel (owner mode, the blocking backend) cannot be
 * stopped by a timer inside its own process. A last watchdog here bounds the whole run (and
 * another the Bun and Deno runs, whose every run is bounded by their runner too).
 *
 * `test/windows/` is left out: those tests run with the Windows build of Node under Wine
 * (`npm run test:windows`, scripts/test-windows.mjs).
 *
 * On Linux the kqueue backend is tested through libkqueue, a userspace kqueue over epoll. Unless
 * EVLOOP_KQUEUE_LIB already names one, this script first builds it with
 * ../shared/tools/build-libkqueue.sh (needs cc and cmake; about 10 s the first time, then cached in
 * $XDG_CACHE_HOME/evloop/libkqueue, by default ~/.cache/evloop/libkqueue) and passes
 * EVLOOP_KQUEUE_LIB to the run, which makes "kqueue" one of availableBackends(). It prints one
 * line saying either where the library is or why kqueue was skipped; a libkqueue that cannot be
 * built never fails the run.
 *
 * After Node's run, the conformance suite runs under Bun and under Deno (scripts/test-runtime.mjs,
 * guest and owner mode, every backend each reports, kqueue with the same libkqueue), each saying in a line
 * when it is skipped and why (its binary missing: it is a dev dependency). That adds about a
 * minute and a half on 2 cores.
 *
 * Usage: node scripts/test.mjs [substring …]   (only files whose path contains a substring)
 * Environment: EVLOOP_TEST_RUNTIMES (default node,bun,deno) names the runtimes to test:
 * EVLOOP_TEST_RUNTIMES=node skips Bun and Deno, =bun,deno runs only them;
 * EVLOOP_TEST_BACKENDS=epoll,poll restricts the backends the conformance suite runs on;
 * EVLOOP_TEST_MODES=owner the modes (default: both, on every runtime);
 * EVLOOP_TEST_TIMEOUT (ms, default 120000 on Node, 60000 on Bun and Deno) is the per-test limit;
 * EVLOOP_TEST_KQUEUE=0 leaves kqueue out (no build, and EVLOOP_KQUEUE_LIB is not passed on);
 * EVLOOP_KQUEUE_LIB=/path/to/libkqueue.so uses that library instead of building one.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const testDir = join(root, "test");
const windowsDir = join(testDir, "windows");

function findTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (path !== windowsDir) out.push(...findTests(path));
    } else if (entry.isFile() && entry.name.endsWith(".test.mjs")) out.push(path);
  }
  return out;
}

/** The runtimes `npm test` can test: Node runs the whole suite, the others the conformance suite. */
const RUNTIMES = ["node", "bun", "deno"];
const runtimes = (process.env.EVLOOP_TEST_RUNTIMES ?? RUNTIMES.join(",")).split(",").map((r) => r.trim()).filter(Boolean);
const unknown = runtimes.filter((r) => !RUNTIMES.includes(r));
if (unknown.length > 0 || runtimes.length === 0) {
  console.error(`EVLOOP_TEST_RUNTIMES=${process.env.EVLOOP_TEST_RUNTIMES}: name some of ${RUNTIMES.join(", ")}, comma-separated`);
  process.exit(2);
}

const filters = process.argv.slice(2);
const files = findTests(testDir)
  .map((f) => relative(root, f).split(sep).join("/"))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();

if (files.length === 0) {
  console.error(`no test files found${filters.length ? ` matching ${filters.join(", ")}` : ""}`);
  process.exit(1);
}

/** How long building libkqueue may take before the run goes on without it. */
const LIBKQUEUE_BUILD_MS = 5 * 60_000;
/** Lines of the build's stderr shown when it fails. */
const LIBKQUEUE_TAIL_LINES = 12;
const HOW_TO_ENABLE = "set EVLOOP_KQUEUE_LIB to a built libkqueue.so to test kqueue anyway";

/** Says kqueue is not tested, why, and how to change that; `detail` goes below, indented. */
function skipKqueue(why, hint, detail = "") {
  console.log(`kqueue: skipped — ${why} (${hint})`);
  if (detail !== "") console.log(detail.replace(/^/gm, "  | "));
  return null;
}

/**
 * The libkqueue the run should load (see the header), or null where kqueue is not tested. Only
 * Linux needs one: on macOS and the BSDs kqueue is the kernel's, and Windows has none.
 */
function libkqueue() {
  if (process.platform !== "linux") return null;
  if (process.env.EVLOOP_TEST_KQUEUE === "0") return skipKqueue("EVLOOP_TEST_KQUEUE=0", "unset it to test kqueue through libkqueue");
  const preset = process.env.EVLOOP_KQUEUE_LIB;
  if (preset) {
    console.log(`kqueue: testing through libkqueue at ${preset} (EVLOOP_KQUEUE_LIB was set)`);
    return preset;
  }
  const script = join(root, "..", "shared", "tools", "build-libkqueue.sh");
  if (!existsSync(script)) return skipKqueue(`${script} is missing`, HOW_TO_ENABLE);
  const prefix = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "evloop", "libkqueue");
  const build = spawnSync("bash", [script, prefix], { encoding: "utf8", timeout: LIBKQUEUE_BUILD_MS });
  if (build.error) return skipKqueue(`build-libkqueue.sh could not run: ${build.error.message}`, HOW_TO_ENABLE);
  const stderr = build.stderr.trim();
  // Exit 3: cc or cmake is missing, and the script's one line says which and how to install it.
  if (build.status === 3) return skipKqueue(stderr.replace(/^build-libkqueue: /, ""), `install it, or ${HOW_TO_ENABLE}`);
  if (build.status !== 0) {
    const tail = stderr.split("\n").slice(-LIBKQUEUE_TAIL_LINES).join("\n");
    return skipKqueue(`building libkqueue into ${prefix} failed (exit ${build.status ?? build.signal})`, HOW_TO_ENABLE, tail);
  }
  const lib = build.stdout.trim().split("\n").pop() ?? "";
  if (!existsSync(lib)) return skipKqueue(`build-libkqueue.sh printed ${JSON.stringify(lib)}, which does not exist`, HOW_TO_ENABLE);
  console.log(`kqueue: testing through libkqueue at ${lib}`);
  return lib;
}

const kqueueLib = libkqueue();
const env = { ...process.env };
if (kqueueLib === null) delete env.EVLOOP_KQUEUE_LIB;
else env.EVLOOP_KQUEUE_LIB = kqueueLib;

const perTest = Number(process.env.EVLOOP_TEST_TIMEOUT ?? 120_000);
// The whole Node run may take at most this long: generous, but finite.
const overall = Math.max(10 * 60_000, perTest * 3);
/** The Bun and Deno runs' bound: each of their runs is bounded too, this only backs that up. */
const OTHER_RUNTIMES_MS = 30 * 60_000;

/** The child running now, which a SIGINT or SIGTERM is passed on to. */
let current = null;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => current?.kill(signal));
}

/**
 * Runs `command` with `args`, killed with `killSignal` after `limit` ms; resolves with whether
 * it exited 0.
 */
function run(what, command, args, limit, killSignal) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, env, stdio: "inherit" });
    current = child;
    const watchdog = setTimeout(() => {
      console.error(`\n${what} exceeded ${limit} ms; killing it`);
      child.kill(killSignal);
    }, limit);
    child.on("exit", (code, signal) => {
      clearTimeout(watchdog);
      current = null;
      if (signal) console.error(`${what} ended by ${signal}`);
      resolve(code === 0);
    });
  });
}

let ok = true;
if (runtimes.includes("node")) {
  ok = await run("node --test", process.execPath, ["--test", "--test-concurrency=1", `--test-timeout=${perTest}`, ...files], overall, "SIGKILL");
} else {
  console.log(`node: skipped — EVLOOP_TEST_RUNTIMES=${process.env.EVLOOP_TEST_RUNTIMES} leaves it out`);
}

// Bun and Deno: the conformance suite (the rest of test/ is about Node: Workers, libuv, the tools).
const others = RUNTIMES.filter((r) => r !== "node");
for (const r of others.filter((r) => !runtimes.includes(r))) {
  console.log(`${r}: skipped — EVLOOP_TEST_RUNTIMES=${process.env.EVLOOP_TEST_RUNTIMES} leaves it out`);
}
const chosen = others.filter((r) => runtimes.includes(r));
if (chosen.length > 0) {
  // SIGTERM, not SIGKILL: the runner then kills its runs' process groups itself.
  const passed = await run("scripts/test-runtime.mjs", process.execPath, [join(root, "scripts", "test-runtime.mjs"), ...chosen, ...filters], OTHER_RUNTIMES_MS, "SIGTERM");
  ok = ok && passed;
}
process.exit(ok ? 0 : 1);
