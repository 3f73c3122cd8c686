/**
 * Guest mode on Windows: for a loop whose completion port no host can poll, the guest driver
 * runs a helper Worker blocked in GetQueuedCompletionStatusEx that wakes Node's main thread with
 * uv_async_send, and the loop's `run(false)` takes the entries. Tested with a bare completion
 * port behind a stand-in loop (fake-iocp.mjs): packets from this thread and from other Workers
 * reach run(false), in order, in batches; the main thread's timers and sockets keep working
 * beside the helper; the helper stops at dispose (the loop's stop or the driver's) and at the
 * process's exit, and neither it nor its uv_async_t keeps the process alive (guest-fixture.mjs,
 * in child processes with a time limit: a helper that is not stopped makes the exit hang).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer, get } from "node:http";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { GuestDriver } from "../../dist/driver/guest.js";
import { FakeIocpLoop, WAKE_KEY } from "./fake-iocp.mjs";
import { within } from "../helpers.mjs";

const FIXTURE = fileURLToPath(new URL("./guest-fixture.mjs", import.meta.url));
const CHILD_LIMIT_MS = 30_000;


/** A stand-in loop with the guest driver attached; `end()` disposes it and frees the port. */
function attached(options) {
  const loop = new FakeIocpLoop(options);
  const driver = GuestDriver.attach(loop);
  const end = async () => {
    loop.dispose();
    await within(driver.helperExited, 10_000, "the helper thread's exit after dispose");
    loop.free();
  };
  return { loop, driver, end };
}

/** Runs a guest-fixture.mjs scenario in a child node.exe: its exit code, or signal, and JSON line. */
function scenario(name) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [FIXTURE, name], { timeout: CHILD_LIMIT_MS }, (error, stdout, stderr) => {
      if (error?.killed) {
        reject(new Error(`${name}: the child did not exit within ${CHILD_LIMIT_MS} ms (a helper thread left blocked?)\n${stdout}\n${stderr}`));
        return;
      }
      const line = stdout.trim().split("\n").at(-1);
      resolve({ code: error ? error.code : 0, stderr, result: line ? JSON.parse(line) : null });
    });
  });
}

describe("GuestDriver on a loop with a RemoteWait (IOCP)", () => {
  test("attach() asks for the remote wait once, marks the loop guest, and starts the helper", async () => {
    const { loop, driver, end } = attached();
    try {
      assert.equal(loop.remoteWaitCalls, 1);
      assert.equal(loop.guest, true);
      assert.ok(driver.helperExited instanceof Promise, "no helper thread was started");
      assert.deepEqual(loop.wakeOnCalls, []);
    } finally {
      await end();
    }
  });

  test("packets posted from the main thread reach run(false) in order, in batches beyond the entries' capacity", async () => {
    const { loop, end } = attached({ capacity: 8 });
    try {
      loop.post(100);
      await within(loop.until(1), 10_000, "the first packet");
      assert.deepEqual(loop.received, [100n]);
      const keys = Array.from({ length: 50 }, (_, i) => BigInt(200 + i));
      for (const k of keys) loop.post(k);
      await within(loop.until(51), 10_000, "50 more packets");
      assert.deepEqual(loop.received.slice(1), keys);
      // 50 packets in batches of at most 8: at least 7 runs took a batch.
      assert.ok(loop.runs >= 8, `${loop.runs} runs for 51 packets with room for 8 entries`);
      assert.equal(Atomics.load(loop.state, 0), 0, "a batch was left untaken");
    } finally {
      await end();
    }
  });

  test("packets posted from other Workers wake the main thread", async () => {
    const { loop, end } = attached();
    try {
      const posters = [1000, 2000].map(
        (first) => new Worker(new URL("./poster-worker.mjs", import.meta.url), { workerData: { port: loop.port, first, count: 20 } }),
      );
      await within(Promise.all(posters.map((w) => new Promise((resolve, reject) => w.once("message", resolve).once("error", reject)))), 20_000, "the posters");
      await within(loop.until(40), 10_000, "40 packets from two Workers");
      for (const first of [1000, 2000]) {
        const mine = loop.received.filter((k) => k >= BigInt(first) && k < BigInt(first + 20));
        assert.deepEqual(mine, Array.from({ length: 20 }, (_, i) => BigInt(first + i)), `the packets of the poster from ${first}`);
      }
      await Promise.all(posters.map((w) => w.terminate()));
    } finally {
      await end();
    }
  });

  test("the helper takes a batch while the main thread is busy, and the wake-up runs the loop after", async () => {
    const { loop, end } = attached();
    try {
      loop.post(5);
      await within(loop.until(1), 10_000, "the first packet");
      const go = new Int32Array(new SharedArrayBuffer(4));
      const poster = new Worker(new URL("./poster-worker.mjs", import.meta.url), { workerData: { port: loop.port, first: 50, count: 1, go } });
      await within(new Promise((resolve) => poster.once("online", resolve)), 20_000, "the poster's start");
      const runs = loop.runs;
      Atomics.store(go, 0, 1);
      Atomics.notify(go, 0);
      // Synchronous: no callback can run here. The helper must publish the packet all the same.
      const deadline = Date.now() + 10_000;
      while (Atomics.load(loop.state, 0) === 0 && Date.now() < deadline);
      assert.equal(Atomics.load(loop.state, 0), 1, "the helper did not publish the packet while the main thread was busy");
      assert.equal(loop.runs, runs);
      await within(loop.until(2), 10_000, "the wake-up after the busy spell");
      assert.deepEqual(loop.received, [5n, 50n]);
      await poster.terminate();
    } finally {
      await end();
    }
  });

  test("a batch delivered while the loop was idle is taken once the loop has work, so later packets still arrive", async () => {
    const { loop, end } = attached();
    try {
      loop.idle = true;
      const runs = loop.runs;
      loop.post(WAKE_KEY);
      await within(
        (async () => {
          while (loop.runs === runs) await new Promise((resolve) => setTimeout(resolve, 5));
        })(),
        10_000,
        "the run after the wake-up packet",
      );
      assert.equal(Atomics.load(loop.state, 0), 1, "the idle loop took the batch: nothing to test");
      // The loop gets work (an operation parked): it changed.
      loop.idle = false;
      loop.changed();
      loop.post(21);
      await within(loop.until(1), 10_000, "a packet after the untaken batch");
      assert.deepEqual(loop.received, [21n]);
      assert.equal(loop.wakes, 1);
    } finally {
      await end();
    }
  });

  test("Node's timers and an http request to a local server work while the helper waits", async () => {
    const { loop, end } = attached();
    const server = createServer((req, res) => res.end(`hello ${req.url}`));
    try {
      loop.post(3);
      await within(loop.until(1), 10_000, "the first packet");
      const fired = await within(new Promise((resolve) => setTimeout(() => resolve(true), 30)), 5000, "a 30 ms setTimeout");
      assert.equal(fired, true);
      await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
      const body = await within(
        new Promise((resolve, reject) => {
          get({ host: "127.0.0.1", port: server.address().port, path: "/evloop" }, (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (d) => (text += d)).on("end", () => resolve(text)).on("error", reject);
          }).on("error", reject);
        }),
        10_000,
        "the http request",
      );
      assert.equal(body, "hello /evloop");
      loop.post(4);
      await within(loop.until(2), 10_000, "a packet after the request");
      assert.deepEqual(loop.received, [3n, 4n]);
    } finally {
      server.close();
      await end();
    }
  });

  test("dispose: the loop's stop ends the helper, and later packets reach nothing", async () => {
    const { loop, driver } = attached();
    loop.post(9);
    await within(loop.until(1), 10_000, "the first packet");
    loop.dispose();
    assert.equal(loop.stopSeen.listeners, 0, "the driver stopped the helper before the loop's own release");
    assert.equal(loop.helperStopped, true, "the helper did not say it stopped (state[2]) within 5 s");
    await within(driver.helperExited, 10_000, "the helper thread's exit");
    const runs = loop.runs;
    loop.post(10);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(loop.runs, runs, "the loop ran after its dispose");
    assert.deepEqual(loop.received, [9n]);
    loop.free();
  });

  test("close: the driver stops a helper the loop's dispose left running, once the dispose has returned", async () => {
    const { loop, driver } = attached({ stopsHelper: false });
    loop.post(11);
    await within(loop.until(1), 10_000, "the first packet");
    loop.dispose();
    // The loop may drain its operations through the helper during its dispose: not stopped yet.
    assert.equal(loop.stopSeen.listeners, 0);
    assert.equal(loop.stopSeen.release, 0);
    await Promise.resolve();
    assert.equal(Atomics.load(loop.state, 1), 1, "the driver did not stop the helper after the dispose");
    await within(driver.helperExited, 10_000, "the helper thread's exit");
    assert.equal(Atomics.load(loop.state, 2), 1, "the helper exited without saying it stopped");
    loop.free();
  });

  test("a script that returns with the helper blocked exits on its own (the helper is stopped at exit)", async () => {
    const { code, result, stderr } = await scenario("return");
    assert.equal(code, 0, stderr);
    assert.deepEqual(result, { scenario: "return", received: ["7"] });
  });

  test("process.exit() with the helper blocked exits with its code", async () => {
    const { code, result, stderr } = await scenario("exit");
    assert.equal(code, 3, stderr);
    assert.deepEqual(result, { scenario: "exit", received: ["7"] });
  });

  test("refed work keeps the process alive until a Worker's packet arrives; then it exits", async () => {
    const { code, result, stderr } = await scenario("refed");
    assert.equal(code, 0, stderr);
    assert.ok(result, "the child exited before the packet arrived");
    assert.deepEqual(result.received, ["40"]);
    assert.ok(result.waitedMs >= 700, `the packet came after ${result.waitedMs} ms, before the poster was told to post`);
  });
});
