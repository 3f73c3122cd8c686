/**
 * evloop's echo server on Bun and Deno in the bench (`evloop-<backend>-<mode>@bun`, `…@deno`):
 * the labels, which servers are listed and why one is unavailable, the command lines (Deno's
 * permissions), the reports' `× runtime` ratios, and `--servers` patterns. The spec logic is
 * checked on fixed probe results, so guest mode's arrival on Bun and Deno is covered before it
 * lands; then against the real Bun and Deno, and in one tiny real run. Nothing here asserts how
 * fast anything was (BENCHMARKS.md).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import { runCli } from "../run-cli.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const tools = (file) => import(new URL(`../../dist-tools/bench/src/${file}`, import.meta.url).href);
const { describeEvloop, evloopLabel, ownSocketsFor, OWN_SOCKETS, RUNTIMES } = await tools("labels.js");
const { DENO_EVLOOP_PERMISSIONS, evloopRuntimeSpecs, listedBackends, locateRuntime, parseProbe, probeRuntime } = await tools("runtimes.js");
const { serverSpecs } = await tools("servers.js");
const { renderMarkdown } = await tools("report.js");
const { renderSvg } = await tools("svg.js");

const server = join(root, "bench", "servers", "evloop.mjs");
const GUEST_ERROR = "guest mode is not available on Bun: it attaches to Node's libuv loop, which Bun does not have";
const notEmulated = () => false;

/** A probe's answer for `backends`, each available in owner mode; `guest` is guest mode's answer. */
function probeOf(names, guest) {
  return {
    runtime: "bun 1.4.5",
    backends: [
      ...names.map((name) => ({ name, available: true, modes: { guest, owner: null } })),
      { name: "kqueue", available: false, reason: "Linux has no kqueue" },
      { name: "blocking", available: true, modes: { guest, owner: null } },
    ],
  };
}

describe("labels", () => {
  test("evloopLabel() and describeEvloop() round-trip every runtime and the baseline suffix", () => {
    for (const runtime of [undefined, ...RUNTIMES]) {
      for (const mode of ["guest", "owner"]) {
        const label = evloopLabel("io_uring", mode, runtime);
        assert.deepEqual(describeEvloop(label), { backend: "io_uring", mode, runtime: runtime ?? "node", baseline: false });
        assert.equal(describeEvloop(`${label}@base`).baseline, true);
      }
    }
    assert.equal(evloopLabel("epoll", "owner", "deno"), "evloop-epoll-owner@deno");
    for (const other of ["node:net", "bun", "deno", "c-epoll", "c-io_uring", "evloop-epoll-sideways@bun"]) assert.equal(describeEvloop(other), undefined);
  });

  test("ownSocketsFor() names each evloop server's runtime's own sockets, and nothing for the others", () => {
    assert.equal(ownSocketsFor("evloop-epoll-guest"), "node:net");
    assert.equal(ownSocketsFor("evloop-epoll-guest@base"), "node:net");
    assert.equal(ownSocketsFor("evloop-io_uring-owner@bun"), "bun");
    assert.equal(ownSocketsFor("evloop-poll-guest@deno"), "deno");
    assert.equal(ownSocketsFor("bun"), undefined);
    assert.deepEqual(OWN_SOCKETS, { node: "node:net", bun: "bun", deno: "deno" });
  });
});

describe("evloopRuntimeSpecs()", () => {
  test("lists each probed backend but blocking in both modes; guest mode unavailable with evloop's own error", () => {
    const specs = evloopRuntimeSpecs("bun", { binary: "/opt/bun" }, probeOf(["io_uring", "epoll"], GUEST_ERROR), [], notEmulated);
    assert.deepEqual(
      specs.map((s) => [s.label, s.backend, s.available, s.reason]),
      [
        ["evloop-io_uring-guest@bun", "io_uring", false, GUEST_ERROR],
        ["evloop-io_uring-owner@bun", "io_uring", true, undefined],
        ["evloop-epoll-guest@bun", "epoll", false, GUEST_ERROR],
        ["evloop-epoll-owner@bun", "epoll", true, undefined],
        ["evloop-kqueue-guest@bun", "kqueue", false, "Linux has no kqueue"],
        ["evloop-kqueue-owner@bun", "kqueue", false, "Linux has no kqueue"],
      ],
    );
    const owner = specs[1];
    assert.equal(owner.command, "/opt/bun");
    assert.deepEqual(owner.args, [server, "--backend", "io_uring", "--mode", "owner"]);
    assert.equal(owner.js, true);
    // An unavailable mode keeps its command line: the report can say what would have run.
    assert.deepEqual(specs[0].args, [server, "--backend", "io_uring", "--mode", "guest"]);
  });

  test("guest mode is available as soon as createLoop({ guest: true }) works under the runtime", () => {
    const specs = evloopRuntimeSpecs("deno", { binary: "/opt/deno" }, probeOf(["io_uring"], null), [], notEmulated);
    assert.deepEqual(
      specs.map((s) => [s.label, s.available]),
      [
        ["evloop-io_uring-guest@deno", true],
        ["evloop-io_uring-owner@deno", true],
        ["evloop-kqueue-guest@deno", false],
        ["evloop-kqueue-owner@deno", false],
      ],
    );
  });

  test("Deno runs the server with --allow-ffi, --allow-env=EVLOOP_* and read access to evloop's dist/ only, and no update check", () => {
    const [guest] = evloopRuntimeSpecs("deno", { binary: "/opt/deno" }, probeOf(["epoll"], null), [], notEmulated);
    const dist = fileURLToPath(new URL("../../dist", import.meta.url));
    assert.deepEqual(DENO_EVLOOP_PERMISSIONS, ["--allow-ffi", "--allow-env=EVLOOP_*", `--allow-read=${dist}`]);
    assert.deepEqual(guest.args, ["run", "--no-prompt", "--allow-ffi", "--allow-env=EVLOOP_*", `--allow-read=${dist}`, server, "--backend", "epoll", "--mode", "guest"]);
    assert.equal(guest.env.DENO_NO_UPDATE_CHECK, "1");
  });

  test("an emulated backend is listed only when available, as on Node", () => {
    const probe = probeOf(["epoll"], null);
    const isKqueue = (b) => b === "kqueue";
    assert.deepEqual(listedBackends(probe.backends, isKqueue), ["epoll"]);
    assert.deepEqual(listedBackends(probe.backends, notEmulated), ["epoll", "kqueue"]);
    const withLib = { ...probe, backends: probe.backends.map((b) => (b.name === "kqueue" ? { name: "kqueue", available: true, modes: { guest: null, owner: null } } : b)) };
    assert.deepEqual(listedBackends(withLib.backends, isKqueue), ["epoll", "kqueue"]);
  });

  test("without a probe, Node's backends are listed, unavailable with the probe's error or the missing binary's reason", () => {
    const failed = evloopRuntimeSpecs("deno", { binary: "/opt/deno" }, { error: "evloop does not load on Deno (…)" }, ["io_uring", "poll"], notEmulated);
    assert.deepEqual(
      failed.map((s) => [s.label, s.available, s.reason]),
      ["io_uring", "poll"].flatMap((b) => ["guest", "owner"].map((m) => [`evloop-${b}-${m}@deno`, false, "evloop does not load on Deno (…)"])),
    );
    const missing = evloopRuntimeSpecs("bun", { reason: "bun is not installed" }, { error: "bun is not installed" }, ["epoll"], notEmulated);
    assert.deepEqual(
      missing.map((s) => [s.label, s.available, s.reason, s.command]),
      [
        ["evloop-epoll-guest@bun", false, "bun is not installed", ""],
        ["evloop-epoll-owner@bun", false, "bun is not installed", ""],
      ],
    );
  });

  test("a backend the probe lists without trying a mode is unavailable, saying so", () => {
    const probe = { runtime: "bun 9", backends: [{ name: "epoll", available: true }] };
    const [guest] = evloopRuntimeSpecs("bun", { binary: "/opt/bun" }, probe, [], notEmulated);
    assert.equal(guest.available, false);
    assert.equal(guest.reason, "the probe did not try guest mode");
  });
});

describe("parseProbe()", () => {
  test("reads the last PROBE line and refuses anything else, saying why", () => {
    const line = JSON.stringify(probeOf(["epoll"], null));
    assert.deepEqual(parseProbe(`noise\nPROBE ${line}\n`), probeOf(["epoll"], null));
    assert.match(parseProbe("nothing\n").error, /no PROBE line/);
    assert.match(parseProbe("PROBE {oops\n").error, /malformed PROBE line/);
    assert.match(parseProbe('PROBE {"runtime":"bun","backends":[{"name":1}]}\n').error, /unexpected PROBE line/);
    assert.match(parseProbe('PROBE {"runtime":"bun","backends":[{"name":"epoll","available":true,"modes":{"guest":3,"owner":null}}]}\n').error, /unexpected/);
  });
});

describe("the real Bun and Deno", () => {
  for (const runtime of RUNTIMES) {
    test(`${runtime}: evloop's servers on it are listed with the backends evloop finds there`, (t) => {
      const found = locateRuntime(runtime);
      if ("reason" in found) {
        t.skip(`${runtime} is not here: ${found.reason}`);
        return;
      }
      const probe = probeRuntime(runtime, found.binary);
      assert.ok(!("error" in probe), `the probe ran: ${probe.error}`);
      assert.match(probe.runtime, new RegExp(`^${runtime} \\d`));
      const specs = serverSpecs({ runtimes: [runtime] });
      const ours = specs.filter((s) => describeEvloop(s.label)?.runtime === runtime);
      const expected = probe.backends
        .filter((b) => b.name !== "blocking" && (b.available || b.name !== "kqueue"))
        .flatMap((b) => [evloopLabel(b.name, "guest", runtime), evloopLabel(b.name, "owner", runtime)]);
      assert.deepEqual(ours.map((s) => s.label), expected);
      // Each runtime's evloop servers sit right above its own sockets' server.
      const own = specs.findIndex((s) => s.label === runtime);
      assert.equal(specs[own - 1].label, ours.at(-1).label);
      assert.equal(specs.filter((s) => describeEvloop(s.label)?.runtime === (runtime === "bun" ? "deno" : "bun")).length, 0, "only the runtimes asked for");

      for (const spec of ours) {
        // The real binary, never a launcher script: /proc would measure the launcher.
        assert.equal(realpathSync(spec.command), spec.command);
        assert.equal(spec.command, found.binary);
        const { backend, mode } = describeEvloop(spec.label);
        assert.deepEqual(spec.args.slice(-5), [server, "--backend", backend, "--mode", mode]);
        if (runtime === "deno") {
          assert.deepEqual(spec.args.slice(0, -5), ["run", "--no-prompt", ...DENO_EVLOOP_PERMISSIONS]);
          assert.ok(!spec.args.some((a) => a === "-A" || a.startsWith("--allow-all") || a.startsWith("--allow-net")), spec.args.join(" "));
        }
        const probed = probe.backends.find((b) => b.name === backend);
        if (!probed.available) {
          assert.equal(spec.reason, probed.reason);
          continue;
        }
        // Owner mode works on both runtimes; guest mode is either there or refused in evloop's words.
        if (mode === "owner") assert.equal(spec.available, true, `${spec.label}: ${spec.reason}`);
        else if (!spec.available) assert.match(spec.reason, /guest mode/i);
        assert.equal(spec.available, probed.modes[mode] === null);
      }
    });
  }
});

/** A report with evloop on Node and Bun beside the runtimes' own sockets, for the renderers. */
function syntheticReport() {
  const rate = { "evloop-io_uring-guest": 1_400_000, "node:net": 1_000_000, "evloop-io_uring-owner@bun": 1_500_000, bun: 1_200_000, "evloop-epoll-owner@deno": 900_000, "c-epoll": 2_000_000 };
  return {
    date: "2026-12-02T10:00:00.000Z",
    command: "npx evloop bench --quick",
    quick: true,
    baseline: null,
    machine: { cpu: "test", cores: 2, memoryBytes: 2 ** 34, kernel: "6.18", node: "v20" },
    secondsPerRun: 0.3,
    warmupSeconds: 0.1,
    rounds: 1,
    configs: [{ name: "pipelined", connections: 100, size: 64, depth: 16 }],
    echo: Object.entries(rate).map(([server, messagesPerSec]) => ({
      server, config: "pipelined", messagesPerSec, mbPerSec: (messagesPerSec * 128) / 1e6, p50Us: 100, p99Us: 200, cpuUsPerMessage: 1, syscallsPerMessage: null, errors: 0,
    })),
    memory: [],
    internals: null,
    skipped: [],
    notes: [],
    syscallsUnavailable: null,
    failures: [],
  };
}

describe("reports", () => {
  test("the Markdown table has a × runtime column when evloop ran on Bun or Deno: each evloop server against its runtime's sockets", () => {
    const markdown = renderMarkdown(syntheticReport());
    const header = markdown.split("\n").find((l) => l.startsWith("| server "));
    assert.match(header, /× node:net \| × c-epoll \| × runtime \|$/);
    const last = (label) => markdown.split("\n").find((l) => l.startsWith(`| ${label} `)).split("|").at(-2).trim();
    assert.equal(last("evloop-io_uring-owner@bun"), "1.25×");
    assert.equal(last("evloop-io_uring-guest"), "1.40×");
    assert.equal(last("evloop-epoll-owner@deno"), "–", "deno did not run");
    assert.equal(last("bun"), "–");
    assert.match(markdown, /× runtime is each evloop server's messages\/s relative to its own runtime's sockets/);

    const nodeOnly = syntheticReport();
    nodeOnly.echo = nodeOnly.echo.filter((m) => describeEvloop(m.server)?.runtime !== "bun" && describeEvloop(m.server)?.runtime !== "deno");
    assert.doesNotMatch(renderMarkdown(nodeOnly), /× runtime/, "no column that would only repeat × node:net");
  });

  test("the SVG draws evloop on Bun as evloop in owner mode, with its ratio to bun beside its ratio to node:net", () => {
    const svg = renderSvg(syntheticReport());
    assert.match(svg, /<title>evloop-io_uring-owner@bun: 1,500,000\/s 1\.50× node:net · 1\.25× bun<\/title>/);
    assert.match(svg, /<title>evloop-io_uring-guest: 1,400,000\/s 1\.40× node:net<\/title>/);
    const fill = (label) => new RegExp(`<rect [^>]*fill="([^"]+)"[^>]*><title>${label}:`).exec(svg)?.[1];
    assert.equal(fill("evloop-io_uring-owner@bun"), fill("evloop-epoll-owner@deno"), "owner mode's colour on both runtimes");
    assert.notEqual(fill("evloop-io_uring-owner@bun"), fill("evloop-io_uring-guest"));
  });
});

function findCompiler() {
  for (const name of ["cc", "gcc", "clang"]) {
    const probe = spawnSync(name, ["--version"], { encoding: "utf8" });
    if (probe.error === undefined && probe.status === 0) return name;
  }
  return undefined;
}


const dir = mkdtempSync(join(tmpdir(), "evloop-bench-runtimes-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("evloop bench", () => {
  test("--servers refuses a pattern that matches no server, listing the @bun and @deno ones", { timeout: 60_000 }, async () => {
    const { code, stderr } = await runCli(["bench", "--servers", "evloop-*@node"], { timeoutMs: 55_000 });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /--servers: unknown "evloop-\*@node"; known: .*evloop-epoll-owner@bun.*, bun, .*evloop-epoll-owner@deno.*, deno/);
  });

  test("runs evloop's owner-mode server on Bun and on Deno beside Bun.listen and Deno.listen, with × runtime", { timeout: 180_000 }, async (t) => {
    if (findCompiler() === undefined) return t.skip("no C compiler: cc, gcc and clang are all missing, and the load generator is C");
    const missing = RUNTIMES.map((r) => [r, locateRuntime(r)]).filter(([, found]) => "reason" in found);
    if (missing.length > 0) return t.skip(missing.map(([r, found]) => `${r}: ${found.reason}`).join("; "));
    const json = join(dir, "runtimes.json");
    // The pattern selects evloop-epoll-owner@bun and @deno.
    const args = ["bench", "--quick", "--seconds", "0.2", "--no-internals", "--servers", "evloop-epoll-owner@*,bun,deno", "--configs", "pipelined", "--json", json];
    const { code, stdout, stderr } = await runCli(args, { timeoutMs: 175_000 });
    assert.equal(code, 0, `exit code 0; stderr:\n${stderr}`);
    const report = JSON.parse(readFileSync(json, "utf8"));
    assert.deepEqual(report.failures, [], "no run failed");
    const expected = ["evloop-epoll-owner@bun", "bun", "evloop-epoll-owner@deno", "deno"];
    assert.deepEqual(report.echo.map((m) => m.server), expected);
    assert.deepEqual(report.memory.map((m) => m.server), expected);
    for (const m of report.memory) assert.equal(typeof m.heapBytes, "number", `${m.server} answered SIGUSR2 with its heap`);
    const header = stdout.split("\n").find((l) => l.startsWith("| server ") && l.includes("msgs/s"));
    assert.match(header, /× runtime \|$/);
    const last = (label) => stdout.split("\n").find((l) => l.startsWith(`| ${label} `)).split("|").at(-2).trim();
    for (const label of ["evloop-epoll-owner@bun", "evloop-epoll-owner@deno"]) assert.match(last(label), /^\d+\.\d\d×$/, `${label} has its ratio to its runtime`);
    for (const label of ["bun", "deno"]) assert.equal(last(label), "–");
  });
});
