#!/usr/bin/env node
/**
 * Runs the whole test suite in one `node --test` process: every `test/**\/*.test.mjs`, found by a
 * recursive readdir because Node 20's `--test` does not expand globs.
 *
 * Files run one at a time (`--test-concurrency=1`): the conformance suite opens a thousand
 * connections and moves 64 MiB per backend, and on a 2-core machine parallel files would only
 * make those tests slower and flakier. `--test-timeout` bounds every test, and the runner also
 * applies it to each file's process as a whole, killing it from outside — which matters because
 * a test that blocks its thread in the kernel (owner mode, the blocking backend) cannot be
 * stopped by a timer inside its own process. A last watchdog here bounds the whole run.
 *
 * `test/windows/` is left out: those tests run with the Windows build of Node under Wine
 * (`npm run test:windows`, scripts/test-windows.mjs).
 *
 * Usage: node scripts/test.mjs [substring …]   (only files whose path contains a substring)
 * Environment: EVLOOP_TEST_BACKENDS=epoll,poll restricts the backends the conformance suite runs
 * on; EVLOOP_TEST_TIMEOUT (ms, default 120000) is the per-test limit.
 */
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
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

const filters = process.argv.slice(2);
const files = findTests(testDir)
  .map((f) => relative(root, f).split(sep).join("/"))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();

if (files.length === 0) {
  console.error(`no test files found${filters.length ? ` matching ${filters.join(", ")}` : ""}`);
  process.exit(1);
}

const perTest = Number(process.env.EVLOOP_TEST_TIMEOUT ?? 120_000);
// The whole run may take at most this long: generous, but finite.
const overall = Math.max(10 * 60_000, perTest * 3);

const child = spawn(process.execPath, ["--test", "--test-concurrency=1", `--test-timeout=${perTest}`, ...files], {
  cwd: root,
  stdio: "inherit",
});

const watchdog = setTimeout(() => {
  console.error(`\ntest run exceeded ${overall} ms; killing it`);
  child.kill("SIGKILL");
}, overall);
watchdog.unref();

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => child.kill(signal));
}

child.on("exit", (code, signal) => {
  clearTimeout(watchdog);
  if (signal) {
    console.error(`node --test ended by ${signal}`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
