/**
 * Waker fds (`sys/wakeup.ts`), both kinds on Linux: the eventfd Linux uses, and the pipe that
 * macOS and the BSDs use, forced here. A wake makes the fd readable until drained; wakes
 * coalesce, and a pipe that fills up is not an error; a Worker wakes a thread blocked in poll(2)
 * through the handle alone; `EVLOOP_WAKER=pipe` switches the public `Waker` to pipes.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { Worker } from "node:worker_threads";

import { openWakeup, defaultWakeupKind, isWakerHandle, wakeFromHandle } from "../../dist/sys/wakeup.js";
import { isNonBlocking, isOpen } from "../../dist/sys/posix/fd.js";
import { pollOne, POLL_READABLE } from "../../dist/sys/posix/poll.js";
import { C, TARGET } from "../../dist/sys/target.js";
import { libc } from "../../dist/sys/libc.js";

const wakeupUrl = new URL("../../dist/sys/wakeup.js", import.meta.url).href;
const indexUrl = new URL("../../dist/index.js", import.meta.url).href;

/** Whether `fd` is readable right now. */
const readable = (fd) => (pollOne(fd, POLL_READABLE, 0) & C.POLLIN) !== 0;
const closeOnExec = (fd) => (libc.fcntl(fd, C.F_GETFD, 0) & C.FD_CLOEXEC) !== 0;

test("defaultWakeupKind(): eventfd where the platform has it, a pipe elsewhere, or EVLOOP_WAKER's", () => {
  const forced = process.env.EVLOOP_WAKER;
  assert.equal(defaultWakeupKind(), forced ? forced : TARGET.has.eventfd ? "eventfd" : "pipe");
});

for (const kind of ["eventfd", "pipe"]) {
  describe(`openWakeup("${kind}")`, () => {
    test("is readable after wake() and until drain()", (t) => {
      const w = openWakeup(kind);
      t.after(() => w.close());
      assert.equal(w.handle.kind, kind);
      assert.ok(isWakerHandle(w.handle));
      assert.equal(readable(w.fd), false, "not readable before a wake");
      w.wake();
      assert.equal(readable(w.fd), true, "readable after wake()");
      assert.equal(readable(w.fd), true, "still readable: polling does not consume it");
      w.drain();
      assert.equal(readable(w.fd), false, "not readable after drain()");
      w.drain();
      assert.equal(readable(w.fd), false, "draining an empty waker is harmless");
    });

    test("wakes coalesce, even past what the kernel buffers, and one drain consumes them all", (t) => {
      const w = openWakeup(kind);
      t.after(() => w.close());
      // 70,000 one-byte writes overflow a 64 KiB pipe: the writes past that report EAGAIN,
      // which means a wake-up is pending, not an error.
      for (let i = 0; i < 70_000; i++) w.wake();
      assert.equal(readable(w.fd), true);
      w.drain();
      assert.equal(readable(w.fd), false);
      wakeFromHandle(w.handle);
      assert.equal(readable(w.fd), true, "the handle wakes it as wake() does");
    });

    test("its fds are non-blocking and close-on-exec; close() closes them once", () => {
      const w = openWakeup(kind);
      const fds = [w.fd, w.handle.fd];
      for (const fd of fds) {
        assert.ok(isNonBlocking(fd), `fd ${fd} is non-blocking`);
        assert.ok(closeOnExec(fd), `fd ${fd} is close-on-exec`);
      }
      w.close();
      for (const fd of fds) assert.equal(isOpen(fd), false, `fd ${fd} is closed`);
      w.close();
    });

    test("a Worker wakes a thread blocked in poll(2) through the handle", async (t) => {
      const w = openWakeup(kind);
      t.after(() => w.close());
      const flags = new Int32Array(new SharedArrayBuffer(8)); // [0] the worker has woken us
      const worker = new Worker(
        `const { parentPort, workerData } = require("node:worker_threads");
        import(workerData.url).then(({ wakeFromHandle }) => {
          const flags = new Int32Array(workerData.flags);
          parentPort.postMessage("ready");
          // Give the main thread time to block in poll(2).
          Atomics.wait(flags, 1, 0, 200);
          Atomics.store(flags, 0, 1);
          wakeFromHandle(workerData.handle);
        });`,
        { eval: true, workerData: { url: wakeupUrl, handle: w.handle, flags: flags.buffer } },
      );
      const exited = new Promise((resolve) => worker.once("exit", resolve));
      await new Promise((resolve, reject) => {
        worker.once("message", resolve);
        worker.once("error", reject);
      });
      const started = performance.now();
      const revents = pollOne(w.fd, POLL_READABLE, 10_000);
      const elapsed = performance.now() - started;
      // Read as soon as poll returns: the wake, not the timeout, must have ended the wait.
      assert.equal(Atomics.load(flags, 0), 1, "the worker had woken us when poll returned");
      assert.ok(revents & C.POLLIN, `poll returned POLLIN (revents ${revents}) after ${elapsed.toFixed(0)} ms`);
      assert.ok(elapsed < 10_000, "poll did not time out");
      await exited;
    });
  });
}

describe("isWakerHandle()", () => {
  test("accepts both kinds with an fd, and nothing else", () => {
    assert.ok(isWakerHandle({ kind: "eventfd", fd: 3 }));
    assert.ok(isWakerHandle({ kind: "pipe", fd: 0 }));
    for (const bad of [null, undefined, 3, "pipe", {}, { kind: "pipe" }, { kind: "kqueue", fd: 3 }, { kind: "pipe", fd: -1 }, { kind: "pipe", fd: 1.5 }]) {
      assert.equal(isWakerHandle(bad), false, JSON.stringify(bad));
    }
  });

  test("openWakeup() rejects an unknown kind", () => {
    assert.throws(() => openWakeup("kqueue"), /unknown waker kind "kqueue"/);
  });
});

/** Runs `source` (an ES module body) in a child with `env` added; returns its stdout. */
function child(source, env) {
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", source], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim();
}

describe("EVLOOP_WAKER", () => {
  test("=pipe makes the public Waker a pipe, which wakes a Poll", () => {
    const out = child(
      `const { Poll, Waker, Events } = await import(${JSON.stringify(indexUrl)});
      const poll = new Poll("poll");
      const waker = new Waker(poll.registry, 7);
      const events = new Events(4);
      poll.poll(events, 0);
      const before = events.length;
      Waker.fromHandle(waker.handle).wake();
      poll.poll(events, 1000);
      const tokens = [...events].map((e) => e.token);
      poll.poll(events, 0);
      console.log(JSON.stringify({ kind: waker.handle.kind, before, tokens, after: events.length }));
      waker.close();`,
      { EVLOOP_WAKER: "pipe" },
    );
    assert.deepEqual(JSON.parse(out), { kind: "pipe", before: 0, tokens: [7], after: 0 });
  });

  test("an unknown value fails when a waker is created, naming it", () => {
    const out = child(
      `const { openWakeup } = await import(${JSON.stringify(wakeupUrl)});
      try { openWakeup(); console.log("created"); } catch (e) { console.log(e.message); }`,
      { EVLOOP_WAKER: "kqueue" },
    );
    assert.match(out, new RegExp(`^EVLOOP_WAKER=kqueue is not a waker for ${TARGET.os}`));
  });
});
