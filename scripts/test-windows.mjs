#!/usr/bin/env node
/**
 * Runs the tests that make sense on Windows with the Windows build of Node, under Wine
 * (scripts/windows-node.sh, which sets Wine up on first use): every file in `test/windows/`, and
 * the conformance files except the Unix-only ones below, in one `node.exe --test` process, one
 * file at a time. Wine checks correctness only: every overlapped operation goes through
 * wineserver, so timings say nothing about Windows.
 *
 * Builds first when `dist/` is missing or older than `src/`. Where Wine cannot be had
 * (windows-node.sh's exit code 77: not installed and not root, no apt-get, …) it prints
 * "skipped: …" and exits 0. Otherwise it streams the TAP output, prints the summary and the
 * failures again at the end, and exits non-zero when a test failed or no summary came.
 *
 * Bounds: `--test-timeout` on every test, and a watchdog here on the whole run that, when it
 * fires, kills the run's process group and every process of the Wine prefix (`wineserver -k`):
 * a test that blocks its thread in the kernel cannot be stopped by a timer in its own process.
 *
 * Usage: node scripts/test-windows.mjs [substring …]   (only files whose path contains a substring)
 * Environment: EVLOOP_TEST_TIMEOUT (ms, default 120000) per test; EVLOOP_WINDOWS_TEST_LIMIT (ms,
 * default 900000) for the whole run, Wine's setup included; EVLOOP_TEST_BACKENDS and the
 * variables windows-node.sh reads (EVLOOP_WINE_ROOT, …) pass through.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const windowsNode = join(root, "scripts", "windows-node.sh");
/** windows-node.sh's "Wine cannot be had here" exit code, with this marker on its stderr. */
const UNAVAILABLE = 77;
const UNAVAILABLE_MARK = "windows-node: unavailable: ";

/**
 * Conformance files about what only Unix has; Windows features get files of their own. The other
 * conformance files run here, although many of their tests take the far end of a connection from
 * test/helpers.mjs's `raw.socketPair()` or `raw.pipe()` (socketpair(2), pipe(2)), which Windows
 * does not have: once a Windows backend runs them, those need a Windows counterpart or a skip.
 */
const UNIX_ONLY = new Map([
  ["test/conformance/unix.test.mjs", "Unix-domain sockets: filesystem paths and abstract names, socketpair(2), SCM_RIGHTS fd passing, pipes"],
  ["test/conformance/unix-security.test.mjs", "Unix socket files' permission bits and umask, SO_PEERCRED credentials, a client run as another uid"],
  ["test/conformance/emfile.test.mjs", "a server child started through sh with `ulimit -n 64`; open fds counted in /proc/self/fd"],
]);

function findTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(path));
    else if (entry.isFile() && entry.name.endsWith(".test.mjs")) out.push(path);
  }
  return out;
}

const fromRoot = (path) => relative(root, path).split(sep).join("/");
const filters = process.argv.slice(2);
const files = [...findTests(join(root, "test", "windows")), ...findTests(join(root, "test", "conformance"))]
  .map(fromRoot)
  .filter((f) => !UNIX_ONLY.has(f))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();

if (files.length === 0) {
  console.error(`no Windows test files found${filters.length ? ` matching ${filters.join(", ")}` : ""}`);
  process.exit(1);
}

/** The newest modification time under `dir`, in ms. */
function newest(dir) {
  let t = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    t = Math.max(t, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return t;
}

const built = join(root, "dist", "index.js");
const inputs = Math.max(newest(join(root, "src")), statSync(join(root, "tsconfig.json")).mtimeMs);
if (!existsSync(built) || statSync(built).mtimeMs < inputs) {
  console.error(existsSync(built) ? "dist/ is older than src/: building" : "dist/ is missing: building");
  const build = spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
  if (build.status !== 0) {
    console.error(`npm run build failed (${build.error?.message ?? `exit code ${build.status}`})`);
    process.exit(1);
  }
}

const perTest = Number(process.env.EVLOOP_TEST_TIMEOUT ?? 120_000);
const overall = Number(process.env.EVLOOP_WINDOWS_TEST_LIMIT ?? 15 * 60_000);

// Its own process group, so the watchdog and a forwarded signal reach node.exe and the tails too.
const child = spawn("bash", [windowsNode, "--test", "--test-reporter=tap", "--test-concurrency=1", `--test-timeout=${perTest}`, ...files], {
  cwd: root,
  detached: true,
  stdio: ["ignore", "pipe", "pipe"],
});

const SUMMARY = /^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /;
const summary = new Map();
const failures = [];
let unavailableReason = "";

/** Calls `onLine` for each complete line of `stream`, after copying the stream to `to`. */
function follow(stream, to, onLine) {
  let partial = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    to.write(chunk);
    const lines = (partial + chunk).split("\n");
    partial = lines.pop();
    for (const line of lines) onLine(line.replace(/\r$/, ""));
  });
  stream.on("end", () => partial && onLine(partial.replace(/\r$/, "")));
}

follow(child.stdout, process.stdout, (line) => {
  const m = SUMMARY.exec(line);
  if (m) summary.set(m[1], line);
  else if (/^\s*not ok \d+ - /.test(line)) failures.push(line.trim());
});
follow(child.stderr, process.stderr, (line) => {
  if (line.startsWith(UNAVAILABLE_MARK)) unavailableReason = line.slice(UNAVAILABLE_MARK.length);
});

function killRun(signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
  // Windows processes may have left the group (Wine starts some in a session of their own).
  spawnSync("bash", [windowsNode, "--kill"], { stdio: "ignore", timeout: 30_000 });
}

let timedOut = false;
const watchdog = setTimeout(() => {
  timedOut = true;
  console.error(`\nthe Windows test run exceeded ${overall} ms; killing it (and every process of its Wine prefix)`);
  killRun("SIGTERM");
  setTimeout(() => killRun("SIGKILL"), 5000).unref();
}, overall);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => killRun(signal));
}

child.on("close", (code, signal) => {
  clearTimeout(watchdog);
  if (code === UNAVAILABLE && unavailableReason) {
    console.log(`skipped: the Windows tests need Wine: ${unavailableReason}`);
    process.exit(0);
  }
  console.log(`\nWindows tests (node.exe under Wine), ${files.length} files:`);
  for (const line of summary.values()) console.log(line);
  if (failures.length > 0) {
    console.log("failed:");
    for (const line of failures.slice(0, 50)) console.log(`  ${line}`);
    if (failures.length > 50) console.log(`  … and ${failures.length - 50} more`);
  }
  if (timedOut) process.exit(1);
  if (signal) {
    console.error(`the Windows test run ended by ${signal}`);
    process.exit(1);
  }
  if (!summary.has("tests")) {
    console.error(`no test summary: node.exe ended (exit code ${code}) before its test runner reported`);
    process.exit(code || 1);
  }
  process.exit(code ?? 1);
});
