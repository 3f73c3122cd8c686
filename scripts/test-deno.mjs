#!/usr/bin/env node
/**
 * Runs the conformance suite (test/conformance/*.test.mjs) under Deno, in owner mode, one
 * `deno test` process per file and backend, and prints what passed per backend.
 *
 * Deno runs `node:test` files through its Node compatibility layer only under `deno test` (each
 * `describe` becomes a Deno test and each `test` inside it a step); `deno run` of such a file
 * registers nothing. `--no-check` because Deno's own type check of dist/*.d.ts trips over
 * `export type` re-exports that tsc accepts; the run itself does not need it. `-A` grants what the
 * suite uses: --allow-ffi (evloop), --allow-env (EVLOOP_*), --allow-read/--allow-write (Unix
 * socket paths, /proc), --allow-net (node:dns lookups), --allow-sys (os.networkInterfaces()).
 *
 * Guest mode is not run: it needs Node's libuv, which Deno does not export (EVLOOP_TEST_MODES=owner).
 * A process that outlives EVLOOP_DENO_RUN_TIMEOUT (ms, default 180000) is killed from outside, as
 * scripts/test.mjs does: in owner mode a test blocked in the kernel cannot time itself out; what
 * it printed until then still counts. Logs of every run go to $TMPDIR/evloop-test-deno/.
 *
 * Not part of `npm test` yet. Run `npm run build` first.
 *
 * Usage: node scripts/test-deno.mjs [substring …]   (only files whose path contains a substring)
 * Environment: EVLOOP_TEST_BACKENDS=epoll,poll restricts the backends (default: every backend
 * Deno reports available); DENO names the deno binary (default node_modules/.bin/deno).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const deno = process.env.DENO ?? join(root, "node_modules", ".bin", "deno");
const RUN_TIMEOUT = Number(process.env.EVLOOP_DENO_RUN_TIMEOUT ?? 180_000);
const logDir = join(tmpdir(), "evloop-test-deno");
mkdirSync(logDir, { recursive: true });

if (!existsSync(deno)) {
  console.log(`deno: skipped — no deno binary at ${deno} (install the "deno" dev dependency or set DENO)`);
  process.exit(0);
}
if (!existsSync(join(root, "dist", "index.js"))) {
  console.error("dist/index.js is missing: run `npm run build` first");
  process.exit(1);
}

/** Files that test guest mode only (they do not follow EVLOOP_TEST_MODES). */
const GUEST_ONLY = ["test/conformance/guest.test.mjs"];

const filters = process.argv.slice(2);
const files = readdirSync(join(root, "test", "conformance"))
  .filter((f) => f.endsWith(".test.mjs"))
  .map((f) => `test/conformance/${f}`)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .filter((f) => {
    if (!GUEST_ONLY.includes(f)) return true;
    console.log(`${f}: skipped — it tests guest mode, which needs Node's libuv (Deno does not export it)`);
    return false;
  })
  .sort();
if (files.length === 0) {
  console.error(`no conformance files found${filters.length ? ` matching ${filters.join(", ")}` : ""}`);
  process.exit(1);
}

const env = { ...process.env, NO_COLOR: "1", EVLOOP_TEST_MODES: "owner" };

/** The backends Deno can drive here, as evloop itself reports them under Deno. */
function denoBackends() {
  const probe = spawnSync(
    deno,
    ["eval", `import { availableBackends } from ${JSON.stringify(join(root, "dist", "index.js"))}; console.log(JSON.stringify(availableBackends()))`],
    { env, encoding: "utf8", timeout: 60_000 },
  );
  if (probe.status !== 0) {
    console.error(`deno could not load evloop:\n${probe.stderr}`);
    process.exit(1);
  }
  const all = JSON.parse(probe.stdout.trim().split("\n").at(-1));
  const wanted = process.env.EVLOOP_TEST_BACKENDS?.split(",").map((b) => b.trim());
  return wanted ? all.filter((b) => wanted.includes(b)) : all;
}

/** Runs one file on one backend; resolves to its output and whether it was killed. */
function run(file, backend) {
  return new Promise((resolve) => {
    const child = spawn(deno, ["test", "-A", "--no-check", file], { cwd: root, env: { ...env, EVLOOP_TEST_BACKENDS: backend } });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, RUN_TIMEOUT);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ out, code, killed });
    });
  });
}

const BACKENDS = ["io_uring", "epoll", "poll", "blocking", "kqueue", "iocp"];

/**
 * The tests in a `deno test` log. Deno prints a group as "name ..." when it starts and
 * "name ... ok" when it ends, nested by two spaces; a leaf is a result line that closes no group.
 * A leaf belongs to the backend named by a word of an enclosing group ("epoll owner",
 * "io_uring one-shot owner", "readiness epoll") or of its own name before a colon ("epoll owner:
 * …"), or to none (tests that do not loop over backends).
 */
function parse(out) {
  const results = [];
  const stack = [];
  for (const line of out.split("\n")) {
    const m = /^( *)(.*?) \.\.\.(?: (ok|FAILED|ignored)\b)?/.exec(line);
    if (!m) continue;
    const depth = m[1].length / 2;
    const name = m[2];
    const closes = m[3] !== undefined && stack.length > depth && stack[depth] === name;
    stack.length = Math.min(stack.length, depth);
    if (m[3] === undefined) {
      stack[depth] = name;
      continue;
    }
    if (closes) continue; // a group's closing line (a failed group is counted by its failed steps)
    // A top-level test may name its backend itself ("epoll owner: accept at the fd limit …").
    const groups = [...stack.slice(0, depth), name.split(":")[0]].join(" ").split(" ");
    const backend = BACKENDS.find((b) => groups.includes(b)) ?? null;
    results.push({ name: [...stack.slice(0, depth), name].join(" > "), status: m[3], backend });
  }
  return results;
}

const backends = denoBackends();
console.log(`deno: ${spawnSync(deno, ["--version"], { encoding: "utf8" }).stdout.split("\n")[0]}; backends ${backends.join(", ")}; owner mode only (guest mode needs Node's libuv)`);

const totals = new Map([...backends, "(none)"].map((b) => [b, { ok: 0, FAILED: 0, ignored: 0, files: [] }]));
for (const [index, backend] of backends.entries()) {
  for (const file of files) {
    const { out, code, killed } = await run(file, backend);
    const log = join(logDir, `${file.replace(/\W+/g, "_")}.${backend}.log`);
    writeFileSync(log, out);
    // Tests outside any backend group run in every backend's process: counted once, from the first.
    const results = parse(out).filter((r) => r.backend === backend || (r.backend === null && index === 0));
    const t = totals.get(backend);
    const count = { ok: 0, FAILED: 0, ignored: 0 };
    for (const r of results) {
      count[r.status]++;
      totals.get(r.backend ?? "(none)")[r.status]++;
    }
    const failed = results.filter((r) => r.status === "FAILED").map((r) => r.name);
    const note = killed ? ` — killed after ${RUN_TIMEOUT} ms (tests after the last line printed are not counted)` : code !== 0 && failed.length === 0 ? ` — exit ${code}, see ${log}` : "";
    console.log(`${backend.padEnd(8)} ${file.padEnd(40)} ${count.ok} passed, ${count.FAILED} failed, ${count.ignored} skipped${note}`);
    for (const name of failed) console.log(`           FAILED: ${name}`);
    t.files.push({ file, killed, code, failed });
  }
}

console.log("\nsummary (deno, owner mode):");
let bad = false;
for (const [backend, t] of totals) {
  const killed = t.files.filter((f) => f.killed).length;
  if (t.files.length === 0 && t.ok + t.FAILED + t.ignored === 0) continue;
  console.log(`  ${backend.padEnd(8)} ${t.ok} passed, ${t.FAILED} failed, ${t.ignored} skipped${killed ? `, ${killed} file(s) killed by the timeout` : ""}`);
  if (t.FAILED > 0 || killed > 0 || t.files.some((f) => f.code !== 0)) bad = true;
}
console.log(`logs: ${logDir}`);
process.exit(bad ? 1 : 0);
