#!/usr/bin/env node
/**
 * Runs the conformance suite (test/conformance/*.test.mjs) under another JavaScript runtime, in
 * owner mode: `node scripts/test-runtime.mjs bun [substring …]`. Build first (`npm run build`):
 * the tests import dist/.
 *
 * Bun: its `node:test` is its own test runner's, so each file runs as `bun test <file>` (a file
 * run with `bun <file>` fails at its first `describe`). Files run one at a time, each with
 * EVLOOP_TEST_MODES=owner (guest mode needs Node's libuv, which Bun does not have), a per-test
 * timeout (`--timeout`) and a kill from outside after EVLOOP_TEST_TIMEOUT × 3 per file, since a
 * test blocked in the kernel (owner mode, the blocking backend) cannot be stopped from inside.
 *
 * It prints each file's failures as Bun reported them, then a table of passes and failures per
 * file and loop variant ("epoll owner", "io_uring one-shot owner", …), read from Bun's
 * `(pass)`/`(fail)` lines, and exits 1 if anything failed. Files a runtime cannot run are listed
 * as skipped, with the reason (on Bun: guest.test.mjs, guest mode only). Not part of `npm test` yet.
 *
 * Environment: EVLOOP_TEST_BACKENDS=epoll,poll restricts the backends (as for Node);
 * EVLOOP_TEST_TIMEOUT (ms, default 60000) is the per-test limit; EVLOOP_TEST_VERBOSE=1 prints
 * every file's whole output.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const [runtime, ...filters] = process.argv.slice(2);

const RUNTIMES = {
  bun: {
    binary: join(root, "node_modules", "bun", "bin", "bun.exe"),
    args: (file, perTest) => ["test", `--timeout=${perTest}`, `./${file}`],
    /** Files not run, and why (said in the output, never skipped silently). */
    skip: {
      "test/conformance/guest.test.mjs": "guest mode only, and guest mode needs Node's libuv (uv_poll), which Bun does not have",
    },
  },
};

if (!runtime || !(runtime in RUNTIMES)) {
  console.error(`usage: node scripts/test-runtime.mjs <${Object.keys(RUNTIMES).join("|")}> [substring …]`);
  process.exit(2);
}
const { binary, args, skip } = RUNTIMES[runtime];
if (!existsSync(binary)) {
  console.log(`${runtime}: skipped — ${binary} is missing (npm install the ${runtime} dev dependency)`);
  process.exit(0);
}
if (!existsSync(join(root, "dist", "index.js"))) {
  console.error("dist/ is missing: run `npm run build` first");
  process.exit(2);
}

const files = readdirSync(join(root, "test", "conformance"))
  .filter((f) => f.endsWith(".test.mjs"))
  .map((f) => `test/conformance/${f}`)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`no conformance files match ${filters.join(", ")}`);
  process.exit(1);
}

const perTest = Number(process.env.EVLOOP_TEST_TIMEOUT ?? 60_000);
const perFile = perTest * 3;
const verbose = process.env.EVLOOP_TEST_VERBOSE === "1";
const env = { ...process.env, EVLOOP_TEST_MODES: "owner" };

/** Runs one file; resolves with its output and how it ended. */
function runFile(file) {
  return new Promise((resolve) => {
    const child = spawn(binary, args(file, perTest), { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, perFile);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ out, code, signal, killed });
    });
  });
}

/** "(pass) file title > io_uring one-shot owner > test [1.2ms]" → the variant, or "(file)". */
function variantOf(name) {
  const parts = name.split(" > ");
  const variant = parts.find((p) => / (owner|guest)$/.test(p));
  return variant ?? "(no variant)";
}

const rows = [];
let failed = 0;
for (const file of files) {
  if (skip[file] !== undefined) {
    console.log(`\n== ${file}: skipped on ${runtime} — ${skip[file]}`);
    rows.push({ file, variant: "(skipped)", pass: 0, fail: 0, skip: 0 });
    continue;
  }
  const started = Date.now();
  const { out, code, signal, killed } = await runFile(file);
  // Bun prints each failure twice (where it happens, and again in its summary): one status per name.
  const results = new Map();
  for (const line of out.split("\n")) {
    const m = /^\((pass|fail|skip|todo)\) (.*?)(?: \[[\d.]+m?s\])?$/.exec(line.trim());
    if (m) results.set(m[2], m[1]);
  }
  const perVariant = new Map();
  const unique = [];
  for (const [name, status] of results) {
    const variant = variantOf(name);
    const counts = perVariant.get(variant) ?? { pass: 0, fail: 0, skip: 0 };
    if (status === "pass") counts.pass++;
    else if (status === "fail") {
      counts.fail++;
      unique.push(name);
    } else counts.skip++;
    perVariant.set(variant, counts);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const ended = killed ? `killed after ${perFile} ms` : signal ? `ended by ${signal}` : `exit ${code}`;
  // The runner's own count, e.g. "67 pass, 0 skip, 6 fail": skipped tests have no (skip) line.
  const summary = out
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^\d+ (pass|skip|fail|todo)$/.test(l))
    .join(", ");
  console.log(`\n== ${file} (${seconds} s, ${ended}${summary ? `; ${runtime} says ${summary}` : ""})`);
  if (verbose || (unique.length === 0 && code !== 0)) console.log(out);
  else for (const f of unique) console.log(`  fail: ${f}`);
  if (code !== 0 || killed) failed++;
  for (const [variant, counts] of perVariant) rows.push({ file, variant, ...counts });
  if (perVariant.size === 0) rows.push({ file, variant: "(no tests reported)", pass: 0, fail: 0, skip: 0 });
}

console.log(`\n${runtime}, owner mode: passes and failures per file and loop variant`);
const width = Math.max(...rows.map((r) => r.file.length));
const vwidth = Math.max(...rows.map((r) => r.variant.length));
for (const r of rows) {
  console.log(`${r.file.padEnd(width)}  ${r.variant.padEnd(vwidth)}  pass ${String(r.pass).padStart(3)}  fail ${String(r.fail).padStart(3)}${r.skip ? `  skip ${r.skip}` : ""}`);
}
const total = rows.reduce((t, r) => ({ pass: t.pass + r.pass, fail: t.fail + r.fail, skip: t.skip + r.skip }), { pass: 0, fail: 0, skip: 0 });
console.log(`total: pass ${total.pass}, fail ${total.fail}, skip ${total.skip}; files that did not exit 0: ${failed}`);
process.exit(failed === 0 ? 0 : 1);
