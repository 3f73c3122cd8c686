/**
 * The io_uring failure path, forced with EVLOOP_IO_URING_DISABLE_FOR_TEST=1 (io_uring_setup
 * fails with EPERM, as under `kernel.io_uring_disabled`): backend selection falls back to epoll,
 * naming io_uring explicitly is an error with the reason, and `evloop info` says why. Also what
 * `evloop info` reports when io_uring works, and with EVLOOP_IO_URING_MULTISHOT=0.
 *
 * Every case runs in a child process: the probes are cached per process, so this file's own
 * process must not be the one that sees the forced failure. Each child is bounded by a timeout
 * and killed when it runs over.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { availableBackends } from "evloop";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The `evloop` command, where package.json's `bin` puts it. */
const CLI = join(ROOT, JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).bin.evloop);
const CHILD_TIMEOUT = 30_000;
const DISABLED = { EVLOOP_IO_URING_DISABLE_FOR_TEST: "1" };

/** This process's environment without evloop's variables (an outer EVLOOP_BACKEND would skew every child), plus `extra`. */
function childEnv(extra) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("EVLOOP_") && key !== "NODE_TEST_CONTEXT") env[key] = value;
  }
  return { ...env, ...extra };
}

/** Runs node with `args` in the package root; fails the test when the child times out or dies by a signal. */
function node(args, extra) {
  const r = spawnSync(process.execPath, args, {
    cwd: ROOT,
    env: childEnv(extra),
    encoding: "utf8",
    timeout: CHILD_TIMEOUT,
    killSignal: "SIGKILL",
  });
  assert.equal(r.error, undefined, `node ${args.join(" ")}: ${r.error?.message} (stderr: ${r.stderr})`);
  assert.equal(r.signal, null, `node ${args.join(" ")} was killed by ${r.signal} (stderr: ${r.stderr})`);
  return r;
}

/** Runs `source` as an ES module in a child and returns the JSON it prints last. */
function evalModule(source, extra) {
  const r = node(["--input-type=module", "-e", source], extra);
  assert.equal(r.status, 0, `child exited with ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/** `evloop info` (text) in a child: { status, stdout, io_uring: { marked, available, note } | null, defaultLine }. */
function infoText(extra) {
  const r = node([CLI, "info"], extra);
  const m = /^(\*| ) io_uring +(yes|no) +(.*)$/m.exec(r.stdout);
  const defaultLine = /^default +(.*)$/m.exec(r.stdout)?.[1] ?? null;
  return {
    status: r.status,
    stdout: r.stdout,
    io_uring: m ? { marked: m[1] === "*", available: m[2] === "yes", note: m[3] } : null,
    defaultLine,
  };
}

/** `evloop info --json` in a child: { status, info }. */
function infoJson(extra) {
  const r = node([CLI, "info", "--json"], extra);
  return { status: r.status, info: JSON.parse(r.stdout) };
}

const UNAVAILABLE_REASON = /io_uring_setup failed with EPERM: io_uring is disabled \(sysctl kernel\.io_uring_disabled\)/;

describe("io_uring forced unavailable (EVLOOP_IO_URING_DISABLE_FOR_TEST=1)", () => {
  test("availableBackends() leaves io_uring out and probeBackends() says why", () => {
    const got = evalModule(
      `import { availableBackends, probeBackends } from "evloop";
       console.log(JSON.stringify({ available: availableBackends(), probes: probeBackends() }));`,
      DISABLED,
    );
    assert.ok(!got.available.includes("io_uring"), `available: ${got.available.join(", ")}`);
    assert.equal(got.available[0], "epoll");
    const uring = got.probes.find((p) => p.name === "io_uring");
    assert.ok(uring, "io_uring is not among the probed backends");
    assert.equal(uring.available, false);
    assert.match(uring.reason, /io_uring_setup/);
    assert.match(uring.reason, UNAVAILABLE_REASON);
    // kqueue is a candidate on Linux (through libkqueue), available only with EVLOOP_KQUEUE_LIB.
    assert.deepEqual(got.probes.map((p) => p.name), ["io_uring", "epoll", "kqueue", "poll", "blocking"]);
  });

  test("createLoop() picks epoll and a TCP echo round trip on 127.0.0.1 works", () => {
    const got = evalModule(
      `import { createLoop, TcpListener, TcpStream } from "evloop";
       const loop = createLoop();
       const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
       const [client, server] = await Promise.all([
         TcpStream.connect({ host: "127.0.0.1", port: listener.address.port, loop }),
         listener.accept(),
       ]);
       const readAll = async (stream, n) => {
         const out = new Uint8Array(n);
         for (let at = 0; at < n; ) {
           const got = await stream.read(out.subarray(at));
           if (got === 0) throw new Error("stream ended after " + at + " of " + n + " bytes");
           at += got;
         }
         return out;
       };
       const sent = new TextEncoder().encode("echo over epoll");
       await client.writeAll(sent);
       await server.writeAll(await readAll(server, sent.length));
       const echoed = new TextDecoder().decode(await readAll(client, sent.length));
       await client.close();
       await server.close();
       await listener.close();
       const result = { backend: loop.backend, echoed };
       loop.dispose();
       console.log(JSON.stringify(result));`,
      DISABLED,
    );
    assert.deepEqual(got, { backend: "epoll", echoed: "echo over epoll" });
  });

  test("createLoop({ backend: \"io_uring\" }) and EVLOOP_BACKEND=io_uring throw, saying io_uring is unavailable and why", () => {
    const source = `import { createLoop } from "evloop";
      const attempt = (fn) => {
        try {
          fn().dispose();
          return { threw: false };
        } catch (e) {
          return { threw: true, isError: e instanceof Error, name: e.name, message: e.message };
        }
      };
      console.log(JSON.stringify({
        option: attempt(() => createLoop({ backend: "io_uring" })),
        env: attempt(() => createLoop()),
      }));`;
    const viaOption = evalModule(source, DISABLED).option;
    const viaEnv = evalModule(source, { ...DISABLED, EVLOOP_BACKEND: "io_uring" }).env;
    for (const [how, r] of [["backend option", viaOption], ["EVLOOP_BACKEND", viaEnv]]) {
      assert.equal(r.threw, true, `${how}: createLoop did not throw`);
      assert.equal(r.isError, true, `${how}: threw a non-Error`);
      assert.match(r.message, /io_uring is unavailable/, `${how}: ${r.message}`);
      assert.match(r.message, UNAVAILABLE_REASON, `${how}: ${r.message}`);
    }
  });

  test("evloop info shows io_uring unavailable with the reason, and epoll as the default", () => {
    const text = infoText(DISABLED);
    assert.equal(text.status, 0, text.stdout);
    assert.ok(text.io_uring, `no io_uring row in:\n${text.stdout}`);
    assert.equal(text.io_uring.available, false);
    assert.equal(text.io_uring.marked, false);
    assert.match(text.io_uring.note, UNAVAILABLE_REASON);
    assert.equal(text.defaultLine, "epoll");
    assert.match(text.stdout, /^\* epoll +yes/m);

    const { status, info } = infoJson(DISABLED);
    assert.equal(status, 0);
    assert.equal(info.defaultBackend, "epoll");
    assert.equal(info.defaultError, null);
    const uring = info.backends.find((b) => b.name === "io_uring");
    assert.equal(uring.available, false);
    assert.match(uring.reason, UNAVAILABLE_REASON);
  });

  test("evloop info with EVLOOP_BACKEND=io_uring exits 1 and gives the reason as the default's error", () => {
    const env = { ...DISABLED, EVLOOP_BACKEND: "io_uring" };
    const text = infoText(env);
    assert.equal(text.status, 1, text.stdout);
    assert.match(text.defaultLine, /^none: backend io_uring is unavailable: io_uring_setup failed with EPERM: io_uring is disabled .*\(EVLOOP_BACKEND=io_uring\)$/);

    const { status, info } = infoJson(env);
    assert.equal(status, 1);
    assert.equal(info.defaultBackend, null);
    assert.equal(info.forcedBackend, "io_uring");
    assert.match(info.defaultError, /io_uring is unavailable/);
    assert.match(info.defaultError, UNAVAILABLE_REASON);
  });
});

const skipAvailable = availableBackends().includes("io_uring") ? false : "io_uring is unavailable here (see `evloop info`)";

describe("evloop info where io_uring works", { skip: skipAvailable }, () => {
  test("lists io_uring first, available and the default, with the kernel and features in its note", () => {
    const { status, info } = infoJson({});
    assert.equal(status, 0);
    assert.equal(info.backends[0].name, "io_uring");
    assert.equal(info.backends[0].available, true);
    assert.equal(info.defaultBackend, "io_uring");
    const note = info.backends[0].reason;
    assert.ok(note.includes(`kernel ${info.kernel}`), `the note does not name kernel ${info.kernel}: ${note}`);
    // SINGLE_MMAP (5.4) is older than the ops evloop requires (5.6), so it is always there.
    assert.match(note, /; features (\S+ )*single_mmap\b/);
    // Multishot ACCEPT arrived in 5.19; from there on the note must not say it is off.
    const version = /^(\d+)\.(\d+)/.exec(info.kernel);
    const major = Number(version?.[1] ?? 0);
    const minor = Number(version?.[2] ?? 0);
    if (major > 5 || (major === 5 && minor >= 19)) assert.match(note, /; multishot accept\b/);

    const text = infoText({});
    assert.equal(text.status, 0);
    assert.ok(text.io_uring, `no io_uring row in:\n${text.stdout}`);
    assert.deepEqual({ marked: text.io_uring.marked, available: text.io_uring.available }, { marked: true, available: true });
    assert.equal(text.io_uring.note, note);
    assert.equal(text.defaultLine, "io_uring");
    const rows = text.stdout.split("\n").filter((l) => /^[* ] \S+ +(yes|no)\b/.test(l));
    assert.match(rows[0], /^\* io_uring /, "io_uring is not the first backend row");
  });

  test("EVLOOP_IO_URING_MULTISHOT=0 makes the note say multishot is off", () => {
    const env = { EVLOOP_IO_URING_MULTISHOT: "0" };
    const { info } = infoJson(env);
    const uring = info.backends.find((b) => b.name === "io_uring");
    assert.equal(uring.available, true);
    assert.match(uring.reason, /; multishot off;/);
    assert.match(infoText(env).io_uring.note, /; multishot off;/);
  });
});
