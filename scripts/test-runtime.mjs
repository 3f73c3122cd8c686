#!/usr/bin/env node
/**
 * Runs the conformance suite (test/conformance/*.test.mjs) under Bun and Deno:
 * `node scripts/test-runtime.mjs <bun|deno> [<bun|deno>] [substring …]` (substrings pick files by
 * path). `npm test` runs it for both after Node's suite (scripts/test.mjs). It tests dist/: run
 * `npm run build` first.
 *
 * Each file runs once per backend and mode, one process each, with EVLOOP_TEST_BACKENDS and
 * EVLOOP_TEST_MODES naming that one backend and mode: a run that hangs loses only its own
 * results, and every result belongs to the run it came from. The backends are those evloop
 * reports under that runtime (availableBackends(), probed with the runtime itself; kqueue where
 * EVLOOP_KQUEUE_LIB names a libkqueue), restricted by EVLOOP_TEST_BACKENDS; the modes are
 * EVLOOP_TEST_MODES's, by default both (`guest,owner`): forEachLoop creates guest loops there as it
 * does on Node (guest mode's helper thread, src/driver/thread-poll.ts).
 *
 * - Bun: its `node:test` is its own test runner's, so a file runs as `bun test <file>`, with a
 *   per-test `--timeout`; results are read from its `(pass)`/`(fail)`/`(skip)`/`(todo)` lines.
 * - Deno: `deno test` runs `node:test` files through its Node compatibility layer (each
 *   `describe` a test, each test inside it a step; `deno run` would register nothing), with
 *   DENO_PERMISSIONS below and `--no-check` (Deno's type check of dist/*.d.ts trips over
 *   `export type` re-exports that tsc accepts; running needs no check); results are read from its
 *   indented `name ... ok|FAILED|ignored` lines.
 *
 * A run is killed from outside (its whole process group: the servers and `sh` it started too)
 * once it outlives three per-test timeouts: in owner mode, and on the blocking backend in any
 * mode, a test blocked in the kernel cannot time itself out. What it printed until then counts,
 * and the run counts as failed.
 *
 * A test outside any backend's group (a top-level `test()`, or a `describe` that names no
 * backend) runs in every backend's process; it is counted once, under backend "-", failed if it
 * failed in any run. Likewise a test that names no mode counts under mode "-". Bun and Deno print
 * no skip reasons: skipped tests are listed by name, and their `skip` option says why.
 *
 * Output: one line per run as it ends, with the names of failed tests; the start of a failed
 * run's error output (a killed run's last lines); then per runtime a table of passed, failed and skipped tests per backend and mode.
 * Every run's whole output is kept in $TMPDIR/evloop-test-runtime/<runtime>/. Exits 1 if any
 * test or run failed; 0 otherwise, and 0 with "<runtime>: skipped — <why>" where the runtime's
 * binary is missing or nothing is selected.
 *
 * Environment: BUN, DENO name the binaries (default: node_modules' bun and deno dev
 * dependencies); EVLOOP_TEST_BACKENDS, EVLOOP_TEST_MODES (above); EVLOOP_TEST_TIMEOUT (ms, default
 * 60000) the per-test limit; EVLOOP_TEST_JOBS (default 2) how many runs at once;
 * EVLOOP_TEST_VERBOSE=1 prints every run's whole output.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * What `deno test` is allowed: everything (-A). The suite uses FFI (evloop itself, which escapes
 * every other permission anyway), the environment (EVLOOP_*), files (Unix socket paths,
 * temporary directories), subprocesses (emfile's server, unix-security's `nobody` client),
 * node:net to loopback (emfile's clients), os.networkInterfaces() (whether ::1 exists), and
 * /proc/self/fd, /proc/self/task and /proc/thread-self (open fd counts; the blocking backend's
 * peer watching the test's thread), which Deno grants only with --allow-all.
 */
const DENO_PERMISSIONS = ["--allow-all"];

/** A test's outcome, as each runner names it. */
const BUN_STATUS = { pass: "pass", fail: "fail", skip: "skip", todo: "skip" };
const DENO_STATUS = { ok: "pass", FAILED: "fail", ignored: "skip", cancelled: "fail" };

const RUNTIMES = {
  bun: {
    binary: process.env.BUN || join(root, "node_modules", "bun", "bin", "bun.exe"),
    env: "BUN",
    evalArgs: (source) => ["-e", source],
    testArgs: (file, perTest) => ["test", `--timeout=${perTest}`, `./${file}`],
    parse: parseBun,
    errors: bunErrors,
  },
  deno: {
    binary: process.env.DENO || join(root, "node_modules", ".bin", "deno"),
    env: "DENO",
    evalArgs: (source) => ["eval", source],
    testArgs: (file) => ["test", ...DENO_PERMISSIONS, "--no-check", file],
    parse: parseDeno,
    errors: denoErrors,
  },
};

/** Words that name a backend or a mode in a test's groups ("io_uring one-shot owner"). */
const BACKEND_WORDS = ["io_uring", "epoll", "kqueue", "poll", "blocking", "iocp"];
const MODE_WORDS = ["guest", "owner"];
/** Lines of a failed run's error output shown, from the first (all of it is in the log). */
const ERROR_LINES = 60;

const args = process.argv.slice(2);
const runtimes = [];
while (args.length > 0 && args[0] in RUNTIMES) runtimes.push(args.shift());
const filters = args;
if (runtimes.length === 0) {
  console.error(`usage: node scripts/test-runtime.mjs <${Object.keys(RUNTIMES).join("|")}>… [substring …]`);
  process.exit(2);
}

const modes = (process.env.EVLOOP_TEST_MODES ?? "guest,owner").split(",").map((m) => m.trim()).filter(Boolean);
const badMode = modes.find((m) => !MODE_WORDS.includes(m));
if (badMode !== undefined || modes.length === 0) {
  console.error(`EVLOOP_TEST_MODES=${process.env.EVLOOP_TEST_MODES}: name guest and/or owner, comma-separated`);
  process.exit(2);
}
/** A positive integer from the environment, or `fallback` when unset; anything else is a usage error. */
function positive(name, fallback) {
  const value = Number(process.env[name] ?? fallback);
  if (Number.isInteger(value) && value > 0) return value;
  console.error(`${name}=${process.env[name]}: expected a positive integer`);
  process.exit(2);
}
const perTest = positive("EVLOOP_TEST_TIMEOUT", 60_000);
const perRun = perTest * 3;
const jobs = positive("EVLOOP_TEST_JOBS", 2);
const verbose = process.env.EVLOOP_TEST_VERBOSE === "1";
const distIndex = join(root, "dist", "index.js");

const files = readdirSync(join(root, "test", "conformance"))
  .filter((f) => f.endsWith(".test.mjs"))
  .map((f) => `test/conformance/${f}`)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();

/** Process groups of the runs under way, killed if this script is interrupted. */
const running = new Set();
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    for (const pid of running) killGroup(pid);
    process.exit(130);
  });
}

let failed = false;
for (const runtime of runtimes) {
  if (!(await testRuntime(runtime))) failed = true;
}
process.exit(failed ? 1 : 0);

/** Runs the suite under `runtime`; resolves to whether everything passed (or it was skipped). */
async function testRuntime(runtime) {
  const spec = RUNTIMES[runtime];
  if (!existsSync(spec.binary)) {
    console.log(`${runtime}: skipped — no ${runtime} binary at ${spec.binary} (install the "${runtime}" dev dependency, or set ${spec.env})`);
    return true;
  }
  if (files.length === 0) {
    console.log(`${runtime}: skipped — no conformance file matches ${filters.join(", ")}`);
    return true;
  }
  if (!existsSync(distIndex)) {
    console.log(`${runtime}: failed — dist/ is missing: run \`npm run build\` first`);
    return false;
  }
  const probe = probeBackends(spec);
  if (probe.error !== undefined) {
    console.log(`${runtime}: failed — evloop did not load under ${runtime}:\n${indent(probe.error)}`);
    return false;
  }
  const wanted = process.env.EVLOOP_TEST_BACKENDS?.split(",").map((b) => b.trim()).filter(Boolean);
  const backends = wanted ? probe.backends.filter((b) => wanted.includes(b)) : probe.backends;
  if (backends.length === 0) {
    console.log(`${runtime}: skipped — EVLOOP_TEST_BACKENDS=${process.env.EVLOOP_TEST_BACKENDS} selects none of the backends evloop reports under ${runtime} (${probe.backends.join(", ")})`);
    return true;
  }

  const logDir = join(tmpdir(), "evloop-test-runtime", runtime);
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  console.log(`\n${runtime} ${probe.version}: ${files.length} conformance file(s) × backends ${backends.join(", ")} × ${modes.join(", ")} mode; ${jobs} run(s) at a time`);

  const queue = [];
  for (const file of files) for (const backend of backends) for (const mode of modes) queue.push({ file, backend, mode });
  const started = Date.now();
  const outcomes = [];
  const worker = async () => {
    for (let run = queue.shift(); run !== undefined; run = queue.shift()) {
      const outcome = await runOne(spec, run, logDir);
      report(outcome);
      outcomes.push(outcome);
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  const seconds = (Date.now() - started) / 1000;
  return summarize(runtime, backends, outcomes, seconds, logDir);
}

/** evloop's availableBackends() and the runtime's version, as the runtime itself reports them. */
function probeBackends(spec) {
  const source = `import { availableBackends } from ${JSON.stringify(pathToFileURL(distIndex).href)};\nconsole.log(JSON.stringify(availableBackends()));`;
  const probe = spawnSync(spec.binary, spec.evalArgs(source), { cwd: root, encoding: "utf8", timeout: 60_000, env: { ...process.env, NO_COLOR: "1" } });
  if (probe.error) return { error: probe.error.message };
  if (probe.status !== 0) return { error: `exit ${probe.status ?? probe.signal}\n${probe.stderr.trim()}` };
  // "deno 2.9.5 (stable, …)" or "1.4.5": the version alone.
  const version = (spawnSync(spec.binary, ["--version"], { encoding: "utf8", timeout: 60_000 }).stdout ?? "").split("\n")[0].trim().replace(/^deno /, "");
  return { backends: JSON.parse(probe.stdout.trim().split("\n").at(-1)), version };
}

/** Runs one file on one backend in one mode; resolves with what it printed, parsed. */
function runOne(spec, run, logDir) {
  return new Promise((resolve) => {
    const started = Date.now();
    const env = { ...process.env, EVLOOP_TEST_BACKENDS: run.backend, EVLOOP_TEST_MODES: run.mode, NO_COLOR: "1" };
    delete env.FORCE_COLOR;
    // Its own process group, so that a kill reaches what the run started too.
    const child = spawn(spec.binary, spec.testArgs(run.file, perTest), { cwd: root, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    if (child.pid === undefined) {
      // It did not start ('error' says why); no 'exit' or 'close' follows.
      child.on("error", (e) => resolve({ ...run, out: e.message, exit: e.code ?? "error", killed: false, log: "(none)", results: [], errors: e.message, seconds: 0 }));
      return;
    }
    running.add(child.pid);
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    let killed = false;
    const limit = setTimeout(() => {
      killed = true;
      killGroup(child.pid);
    }, perRun);
    let exit = null;
    child.on("exit", (code, signal) => {
      clearTimeout(limit);
      exit = signal ?? code;
      // Anything the run left behind (a child server) goes with it; it would also hold the pipes.
      killGroup(child.pid);
    });
    child.on("close", () => {
      running.delete(child.pid);
      const log = join(logDir, `${run.file.split("/").pop().replace(/\.test\.mjs$/, "")}.${run.backend}.${run.mode}.log`);
      writeFileSync(log, out);
      const results = spec.parse(out);
      resolve({ ...run, out, exit, killed, log, results, errors: spec.errors(out), seconds: (Date.now() - started) / 1000 });
    });
  });
}

function killGroup(pid) {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // The group is gone already.
  }
}

/** Why a run counts as failed beyond its failed tests, or null when it ended cleanly. */
function runProblem(o) {
  if (o.killed) return `killed after ${perRun} ms (tests after its last line were not counted)`;
  if (o.exit !== 0) return `exit ${o.exit}`;
  if (o.results.length === 0) return "it reported no tests";
  return null;
}

/** Prints one run's line, its failed tests, and its errors when it failed. */
function report(o) {
  const count = { pass: 0, fail: 0, skip: 0 };
  for (const r of o.results) count[r.status]++;
  const problem = runProblem(o);
  const where = `${o.backend.padEnd(8)} ${o.mode.padEnd(5)} ${o.file.replace("test/conformance/", "").padEnd(24)}`;
  console.log(`  ${where} ${String(count.pass).padStart(3)} passed, ${count.fail} failed, ${count.skip} skipped (${o.seconds.toFixed(1)} s)${problem ? ` — ${problem}` : ""}`);
  for (const r of o.results) if (r.status === "fail") console.log(`      FAILED: ${r.path.join(" > ")}`);
  if (verbose) console.log(indent(o.out));
  else if (problem !== null || count.fail > 0) {
    // The first error is most often the cause of the rest (a hook that failed, say); a killed
    // run's last lines say where it hung.
    const lines = (o.killed ? o.out.trim() : o.errors.trim() || o.out.trim()).split("\n");
    console.log(indent((o.killed ? lines.slice(-ERROR_LINES) : lines.slice(0, ERROR_LINES)).join("\n")));
    const more = lines.length > ERROR_LINES ? `${lines.length - ERROR_LINES} more lines; ` : "";
    console.log(`      (${more}whole output: ${o.log})`);
  }
}

/** The backend and mode a test belongs to, from the words of its groups and its own prefix. */
function classify(path) {
  const leaf = path.at(-1);
  // A top-level test may name its variant itself ("epoll owner: accept at the fd limit …"); a
  // variant's group that Deno reports failed before any step ran is a leaf named as a variant.
  const own = leaf.includes(":") ? leaf.slice(0, leaf.indexOf(":")) : / (guest|owner)$/.test(leaf) ? leaf : "";
  const words = [...path.slice(0, -1), own].join(" ").split(/\s+/);
  return {
    backend: words.find((w) => BACKEND_WORDS.includes(w)) ?? "-",
    mode: words.find((w) => MODE_WORDS.includes(w)) ?? "-",
  };
}

/** Prints the table for one runtime; returns whether everything passed. */
function summarize(runtime, backends, outcomes, seconds, logDir) {
  // One entry per test, across runs: a test that ran in several (no backend or mode of its own)
  // counts once, as failed if it failed anywhere, else as passed if it passed anywhere.
  const RANK = { skip: 0, pass: 1, fail: 2 };
  const tests = new Map();
  for (const o of outcomes) {
    for (const r of o.results) {
      const key = `${o.file}\u0000${r.path.join("\u0000")}`;
      const seen = tests.get(key);
      if (seen === undefined) tests.set(key, { ...r, file: o.file, ...classify(r.path) });
      else if (RANK[r.status] > RANK[seen.status]) seen.status = r.status;
    }
  }
  const cells = new Map();
  for (const t of tests.values()) {
    const key = `${t.backend} ${t.mode}`;
    const cell = cells.get(key) ?? { backend: t.backend, mode: t.mode, pass: 0, fail: 0, skip: 0 };
    cell[t.status]++;
    cells.set(key, cell);
  }
  const order = [...backends, ...BACKEND_WORDS, "-"];
  const rows = [...cells.values()].sort((a, b) => order.indexOf(a.backend) - order.indexOf(b.backend) || MODE_WORDS.indexOf(a.mode) - MODE_WORDS.indexOf(b.mode));
  const problems = outcomes.filter((o) => runProblem(o) !== null);
  const total = rows.reduce((t, r) => ({ pass: t.pass + r.pass, fail: t.fail + r.fail, skip: t.skip + r.skip }), { pass: 0, fail: 0, skip: 0 });

  console.log(`\n${runtime}: ${outcomes.length} runs in ${seconds.toFixed(0)} s; tests per backend and mode ("-": tests not tied to one)`);
  console.log(`  ${"backend".padEnd(9)}${"mode".padEnd(7)}${"pass".padStart(5)}${"fail".padStart(6)}${"skip".padStart(6)}`);
  for (const r of rows) console.log(`  ${r.backend.padEnd(9)}${r.mode.padEnd(7)}${String(r.pass).padStart(5)}${String(r.fail).padStart(6)}${String(r.skip).padStart(6)}`);
  console.log(`  ${"total".padEnd(16)}${String(total.pass).padStart(5)}${String(total.fail).padStart(6)}${String(total.skip).padStart(6)}`);
  for (const t of tests.values()) if (t.status === "skip") console.log(`  skipped: ${t.file.replace("test/conformance/", "")}: ${t.path.join(" > ")}`);
  for (const o of problems) console.log(`  run failed: ${o.file} on ${o.backend} in ${o.mode} mode — ${runProblem(o)}`);
  console.log(`  logs: ${logDir}`);
  const ok = total.fail === 0 && problems.length === 0;
  console.log(`${runtime}: ${ok ? "passed" : "FAILED"}`);
  return ok;
}

/**
 * Bun's results: "(pass) group > group > test [1.2ms]". A failure is printed twice (where it
 * happens, and again in the summary): one status per name.
 */
function parseBun(out) {
  const results = new Map();
  for (const line of out.split("\n")) {
    const m = /^\((pass|fail|skip|todo)\) (.*?)(?: \[[\d.]+m?s\])?$/.exec(line.trim());
    if (m) results.set(m[2], BUN_STATUS[m[1]]);
  }
  return [...results].map(([name, status]) => ({ path: name.split(" > "), status }));
}

/** Bun's error output: the lines before each failed test's first "(fail)" line. */
function bunErrors(out) {
  const lines = out.split("\n");
  const blocks = [];
  let start = 0;
  for (const [i, line] of lines.entries()) {
    // The summary's list of failures repeats them without their errors.
    if (/^\d+ tests? failed:$/.test(line.trim())) break;
    if (!/^\((pass|fail|skip|todo)\) /.test(line.trim())) continue;
    if (line.trim().startsWith("(fail)") && i > start) blocks.push(lines.slice(start, i + 1).join("\n"));
    start = i + 1;
  }
  return blocks.join("\n");
}

/**
 * Deno's results. A test or group is printed as "name ..." when it starts and "name ... ok"
 * when it ends (one line when nothing came between), its steps nested by two spaces: a result
 * line that closes a line which had steps is a group's, else a test's. A group that failed
 * while none of its steps did (a hook failed) counts as one failure of its own. Output the tests
 * printed, between "------- output -------" and "----- output end -----", is not read.
 */
function parseDeno(out) {
  const results = [];
  const groups = [];
  const stack = [];
  let inOutput = false;
  for (const line of out.split("\n")) {
    if (/^-+ output -+$/.test(line.trim())) inOutput = true;
    if (/^-+ output end -+$/.test(line.trim())) {
      inOutput = false;
      continue;
    }
    if (inOutput) continue;
    const m = /^( *)(.*?) \.\.\.(?: (ok|FAILED|ignored|cancelled)\b.*)?$/.exec(line);
    if (!m || m[1].length % 2 !== 0) continue;
    const depth = m[1].length / 2;
    const [name, status] = [m[2], m[3]];
    if (depth > stack.length) continue; // not a result line after all
    if (depth > 0) stack[depth - 1].steps++;
    const path = [...stack.slice(0, depth).map((s) => s.name), name];
    if (status === undefined) {
      stack.length = depth;
      stack.push({ name, steps: 0 });
      continue;
    }
    const opened = stack[depth];
    stack.length = depth;
    if (opened !== undefined && opened.name === name && opened.steps > 0) groups.push({ path, status: DENO_STATUS[status] });
    else results.push({ path, status: DENO_STATUS[status] });
  }
  for (const g of groups) {
    const within = (r) => g.path.every((p, i) => r.path[i] === p) && r.path.length > g.path.length;
    if (g.status === "fail" && !results.some((r) => r.status === "fail" && within(r))) results.push({ path: [...g.path, "(the group itself: a hook failed)"], status: "fail" });
  }
  return results;
}

/** Deno's error output: its " ERRORS " section. */
function denoErrors(out) {
  const start = out.indexOf(" ERRORS ");
  if (start < 0) return "";
  const end = out.indexOf(" FAILURES ", start);
  return out.slice(start, end < 0 ? undefined : end);
}

function indent(text) {
  return text.replace(/^/gm, "      | ");
}
