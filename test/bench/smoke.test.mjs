/**
 * `evloop bench` in its smallest form, as a child process: three servers, two configurations,
 * tiny runs, a tiny internals run, and a `--baseline` run against a stand-in checkout. Checks
 * that the outputs are well-formed (exit code, Markdown tables, the JSON report's shape, a
 * standalone SVG) and that a baseline server runs the baseline's library, never how fast
 * anything was: benchmarks are not tests (BENCHMARKS.md). The runs are skipped, with the reason,
 * when no C compiler is installed, since the load generator is C.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { after, test } from "node:test";
import { runCli } from "../run-cli.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
/** The `evloop` command, where package.json's `bin` puts it. */
const SERVERS = ["node:net", "evloop-epoll-guest", "c-epoll"];
const CONFIGS = ["latency", "pipelined"];
/** Generous: the build alone can take this long on a slow machine the first time. */
const TIMEOUT_MS = 180_000;
/** The CLI is stopped (SIGINT, so the bench stops its servers) 5 s before the test's own timeout. */
const CLI = { timeoutMs: TIMEOUT_MS - 5000 };

function findCompiler() {
  for (const name of ["cc", "gcc", "clang"]) {
    const probe = spawnSync(name, ["--version"], { encoding: "utf8" });
    if (probe.error === undefined && probe.status === 0) return name;
  }
  return undefined;
}


function assertNumber(value, what, { min = 0, nullable = false } = {}) {
  if (nullable && value === null) return;
  assert.equal(typeof value, "number", `${what} is a number`);
  assert.ok(Number.isFinite(value), `${what} is finite, got ${value}`);
  if (min !== -Infinity) assert.ok(value >= min, `${what} is at least ${min}, got ${value}`);
}

const dir = mkdtempSync(join(tmpdir(), "evloop-bench-smoke-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("evloop bench --quick writes a Markdown report, a JSON report and an SVG chart", { timeout: TIMEOUT_MS }, async (t) => {
  const compiler = findCompiler();
  if (compiler === undefined) {
    t.skip("no C compiler: cc, gcc and clang are all missing, and the load generator is C");
    return;
  }
  const json = join(dir, "bench.json");
  const svg = join(dir, "bench.svg");
  const markdownFile = join(dir, "bench.md");
  const args = [
    "bench", "--quick", "--seconds", "0.2", "--no-internals",
    "--servers", SERVERS.join(","), "--configs", CONFIGS.join(","),
    "--json", json, "--svg", svg, "--markdown", markdownFile,
  ];
  const { code, stdout, stderr } = await runCli(args, CLI);
  assert.equal(code, 0, `exit code 0; stderr:\n${stderr}`);

  // Markdown: one table per configuration with a row per server, then the memory table.
  assert.equal(readFileSync(markdownFile, "utf8"), stdout, "--markdown writes what stdout shows");
  assert.match(stdout, /^# evloop benchmark/m);
  assert.match(stdout, /evloop bench --quick/, "the command is in the report");
  for (const config of CONFIGS) assert.match(stdout, new RegExp(`^### ${config} — `, "m"));
  const headers = stdout.split("\n").filter((l) => l.startsWith("| server ") && l.includes("msgs/s"));
  assert.equal(headers.length, CONFIGS.length, "one echo table per configuration");
  for (const h of headers) {
    assert.match(h, /× node:net/);
    assert.match(h, /× c-epoll/);
    assert.doesNotMatch(h, /× @base/, "no baseline column without --baseline");
  }
  // System calls are counted in the pipelined configuration only.
  assert.deepEqual(headers.map((h) => h.includes("syscalls/msg")), CONFIGS.map((c) => c === "pipelined"));
  for (const server of SERVERS) {
    const rows = stdout.split("\n").filter((l) => l.startsWith(`| ${server} `));
    assert.equal(rows.length, CONFIGS.length + 1, `${server}: a row per configuration and one in the memory table`);
  }
  assert.match(stdout, /^## Memory/m);

  // JSON: the BenchReport shape.
  const report = JSON.parse(readFileSync(json, "utf8"));
  assert.equal(report.quick, true);
  assert.equal(report.baseline, null, "no --baseline");
  assert.equal(typeof report.date, "string");
  assert.ok(!Number.isNaN(Date.parse(report.date)), "date is ISO 8601");
  assert.match(report.command, /evloop bench/);
  assert.equal(typeof report.machine.cpu, "string");
  assertNumber(report.machine.cores, "machine.cores", { min: 1 });
  assertNumber(report.machine.memoryBytes, "machine.memoryBytes", { min: 1 });
  assert.equal(typeof report.machine.kernel, "string");
  assert.equal(report.machine.node, process.version);
  assert.equal(report.secondsPerRun, 0.2);
  assertNumber(report.warmupSeconds, "warmupSeconds");
  assert.equal(report.rounds, 1);
  assert.deepEqual(report.configs.map((c) => c.name), CONFIGS);
  assert.equal(report.internals, null, "--no-internals");
  assert.ok(Array.isArray(report.skipped));
  // Only an emulated backend's figures (kqueue through libkqueue) bring a note, and none ran.
  assert.deepEqual(report.notes, [], "no notes without an emulated backend's figures");
  // perf may be missing or not permitted here: then the report says why instead.
  assert.ok(report.syscallsUnavailable === null || typeof report.syscallsUnavailable === "string", "syscallsUnavailable is a reason or null");
  assert.deepEqual(report.failures, [], "no run failed");

  assert.equal(report.echo.length, SERVERS.length * CONFIGS.length);
  for (const m of report.echo) {
    assert.ok(SERVERS.includes(m.server), `unexpected server ${m.server}`);
    assert.ok(CONFIGS.includes(m.config), `unexpected config ${m.config}`);
    const what = `${m.server} ${m.config}`;
    assertNumber(m.messagesPerSec, `${what} messagesPerSec`);
    assertNumber(m.mbPerSec, `${what} mbPerSec`);
    // Percentiles are null (NaN in the report) when no message completed.
    assertNumber(m.p50Us, `${what} p50Us`, { nullable: true });
    assertNumber(m.p99Us, `${what} p99Us`, { nullable: true });
    assertNumber(m.cpuUsPerMessage, `${what} cpuUsPerMessage`, { nullable: true });
    if (m.config === "pipelined") assertNumber(m.syscallsPerMessage, `${what} syscallsPerMessage`, { nullable: true });
    else assert.equal(m.syscallsPerMessage, null, `${what}: system calls counted in the pipelined configuration only`);
    assertNumber(m.errors, `${what} errors`);
  }
  assert.deepEqual(report.memory.map((m) => m.server).sort(), [...SERVERS].sort());
  for (const m of report.memory) {
    assertNumber(m.idleConnections, `${m.server} idleConnections`);
    assertNumber(m.rssBytes, `${m.server} rssBytes`);
    // A difference of two readings: a GC between them can make it negative.
    assertNumber(m.rssPerConnectionBytes, `${m.server} rssPerConnectionBytes`, { min: -Infinity });
    const js = m.server !== "c-epoll";
    if (js) {
      assertNumber(m.heapBytes, `${m.server} heapBytes`);
      assertNumber(m.heapPerConnectionBytes, `${m.server} heapPerConnectionBytes`, { min: -Infinity });
    } else {
      assert.equal(m.heapBytes, null);
      assert.equal(m.heapPerConnectionBytes, null);
    }
    assertNumber(m.peakRssPipelinedBytes, `${m.server} peakRssPipelinedBytes`, { min: 1 });
  }

  // SVG: standalone, and its tags balance.
  const chart = readFileSync(svg, "utf8");
  assert.ok(chart.startsWith("<svg"), "starts with <svg");
  assert.match(chart, /^<svg[^>]* xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok(chart.trimEnd().endsWith("</svg>"));
  const opened = chart.match(/<[a-zA-Z][^>]*[^/]>|<[a-zA-Z]>/g) ?? [];
  const closed = chart.match(/<\/[a-zA-Z]+>/g) ?? [];
  assert.equal(opened.length, closed.length, "every element that is not self-closing is closed");
  for (const server of SERVERS) assert.ok(chart.includes(`>${server}<`), `${server} is labelled in the chart`);
});

test("evloop bench runs the internals and reports them", { timeout: TIMEOUT_MS }, async (t) => {
  const compiler = findCompiler();
  if (compiler === undefined) {
    t.skip("no C compiler: cc, gcc and clang are all missing, and the load generator is C");
    return;
  }
  const json = join(dir, "internals.json");
  const { code, stdout, stderr } = await runCli([
    "bench", "--quick", "--seconds", "0.1", "--servers", "c-epoll", "--configs", "latency", "--json", json,
  ], CLI);
  assert.equal(code, 0, `exit code 0; stderr:\n${stderr}`);
  assert.match(stdout, /^## Event-loop internals/m);
  const { internals } = JSON.parse(readFileSync(json, "utf8"));
  assert.notEqual(internals, null);
  assertNumber(internals.timers.count, "timers.count", { min: 1 });
  assertNumber(internals.timers.evloopMs, "timers.evloopMs");
  assertNumber(internals.timers.setTimeoutMs, "timers.setTimeoutMs");
  const backends = Object.keys(internals.wakeups.perSecond);
  assert.ok(backends.length > 0, "wake-ups measured on at least one backend");
  for (const b of backends) assertNumber(internals.wakeups.perSecond[b], `wakeups ${b}`);
  assert.ok(internals.readyCost.length > 0);
  for (const c of internals.readyCost) {
    assert.ok(backends.includes(c.backend), `ready cost of ${c.backend}`);
    assertNumber(c.fds, "readyCost.fds", { min: 1 });
    assertNumber(c.nsPerEvent, `readyCost ${c.backend} ${c.fds}`);
  }
});

/**
 * A stand-in for another evloop checkout: its own package.json (so the server's `import "evloop"`
 * resolves here), a dist/index.js that records which server loaded it (the path in argv[1], in
 * the file EVLOOP_TEST_BASELINE_MARKER names) and re-exports this package's library, and a copy of
 * the echo server.
 */
function fakeBaseline(at) {
  mkdirSync(join(at, "dist"), { recursive: true });
  mkdirSync(join(at, "bench", "servers"), { recursive: true });
  const pkg = { name: "evloop", version: "0.0.0-baseline", type: "module", exports: { ".": "./dist/index.js" } };
  writeFileSync(join(at, "package.json"), JSON.stringify(pkg));
  const library = pathToFileURL(join(root, "dist", "index.js")).href;
  writeFileSync(
    join(at, "dist", "index.js"),
    [
      `import { appendFileSync } from "node:fs";`,
      `const marker = process.env.EVLOOP_TEST_BASELINE_MARKER;`,
      `if (marker) appendFileSync(marker, \`\${process.argv[1] ?? "-"}\\n\`);`,
      `export * from ${JSON.stringify(library)};`,
    ].join("\n"),
  );
  copyFileSync(join(root, "bench", "servers", "evloop.mjs"), join(at, "bench", "servers", "evloop.mjs"));
  return realpathSync(at);
}

test("evloop bench --baseline runs the baseline's servers on the baseline's library, beside this package's", { timeout: TIMEOUT_MS }, async (t) => {
  const compiler = findCompiler();
  if (compiler === undefined) {
    t.skip("no C compiler: cc, gcc and clang are all missing, and the load generator is C");
    return;
  }
  const base = fakeBaseline(join(dir, "baseline"));
  const marker = join(dir, "baseline-marker");
  const json = join(dir, "baseline.json");
  const ours = "evloop-epoll-guest";
  const theirs = `${ours}@base`;
  // --servers names only ours: naming an evloop server brings its @base twin along.
  const { code, stdout, stderr } = await runCli(
    ["bench", "--quick", "--seconds", "0.2", "--no-internals", "--servers", ours, "--configs", "pipelined", "--baseline", base, "--json", json],
    { ...CLI, env: { EVLOOP_TEST_BASELINE_MARKER: marker } },
  );
  assert.equal(code, 0, `exit code 0; stderr:\n${stderr}`);

  // The baseline's server loaded the baseline's library: once for the echo run, once for the
  // memory run. (The other line is the check that the library loads, before the suite starts.)
  const loaders = existsSync(marker) ? readFileSync(marker, "utf8").trim().split("\n") : [];
  const server = join(base, "bench", "servers", "evloop.mjs");
  assert.deepEqual(loaders.filter((l) => l.endsWith(".mjs")), [server, server], `servers that loaded the baseline: ${loaders.join(", ")}`);

  const report = JSON.parse(readFileSync(json, "utf8"));
  assert.deepEqual(report.failures, [], "no run failed");
  assert.equal(report.baseline.dir, base);
  assert.equal(report.baseline.version, "0.0.0-baseline");
  assert.ok(report.baseline.commit === null || typeof report.baseline.commit === "string");
  assert.deepEqual(report.echo.map((m) => m.server), [ours, theirs], "the baseline's server is listed right after its counterpart");
  assert.deepEqual(report.memory.map((m) => m.server), [ours, theirs]);

  assert.match(stdout, /^- Baseline: .*`@base`/m);
  const header = stdout.split("\n").find((l) => l.startsWith("| server ") && l.includes("msgs/s"));
  assert.match(header, /× @base \|$/, "the last column compares with the baseline");
  const lastCell = (label) => stdout.split("\n").find((l) => l.startsWith(`| ${label} `)).split("|").at(-2).trim();
  assert.match(lastCell(ours), /^\d+\.\d\d×$/, `${ours} has its ratio to ${theirs}`);
  assert.equal(lastCell(theirs), "–", `${theirs} has no baseline of its own`);
});

test("evloop bench --baseline names what is wrong with a directory that is no built evloop checkout", { timeout: 30_000 }, async () => {
  const missing = await runCli(["bench", "--baseline", join(dir, "no-such-dir")], CLI);
  assert.equal(missing.code, 2, "a usage error");
  assert.match(missing.stderr, /--baseline \S*no-such-dir: no such directory/);

  const unbuilt = join(dir, "unbuilt");
  mkdirSync(join(unbuilt, "bench", "servers"), { recursive: true });
  writeFileSync(join(unbuilt, "package.json"), JSON.stringify({ name: "evloop", exports: { ".": "./dist/index.js" } }));
  writeFileSync(join(unbuilt, "bench", "servers", "evloop.mjs"), "");
  const notBuilt = await runCli(["bench", "--baseline", unbuilt], CLI);
  assert.equal(notBuilt.code, 2);
  assert.match(notBuilt.stderr, /has no dist\/index\.js: build it first/);

  const other = join(dir, "other");
  mkdirSync(other, { recursive: true });
  writeFileSync(join(other, "package.json"), JSON.stringify({ name: "something-else" }));
  const notEvloop = await runCli(["bench", "--baseline", other], CLI);
  assert.equal(notEvloop.code, 2);
  assert.match(notEvloop.stderr, /names "something-else", not evloop/);
});
