/**
 * UvAsync (driver/libuv.ts), the uv_async_t through which guest mode's helper thread wakes Node's
 * main thread: another thread's uv_async_send runs the callback on the main thread; sends made
 * while the main thread is busy coalesce into one callback; the handle never keeps the process
 * alive. Portable: test/windows/ runs this file under node.exe too.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { UvAsync } from "../../dist/driver/libuv.js";
import { within } from "../helpers.mjs";

const SENDER = new URL("./async-sender.mjs", import.meta.url);
const CHILD_LIMIT_MS = 30_000;


/** Waits (blocking this thread) until go[1], the sends done, reaches `n`. */
function awaitSends(go, n) {
  const deadline = Date.now() + 10_000;
  for (let done = Atomics.load(go, 1); done < n; done = Atomics.load(go, 1)) {
    if (Date.now() > deadline) throw new Error(`only ${done} of ${n} sends within 10 s`);
    Atomics.wait(go, 1, done, 100);
  }
}

test("UvAsync: sends from another thread run the callback here, coalescing those made while this thread is busy", async () => {
  let fired = 0;
  let onFire = () => {};
  const wake = new UvAsync(() => {
    fired++;
    onFire();
  });
  const go = new Int32Array(new SharedArrayBuffer(8));
  const sender = new Worker(SENDER, { workerData: { address: wake.address, go } });
  try {
    await within(new Promise((resolve) => sender.once("online", resolve)), 20_000, "the sender's start");
    const first = new Promise((resolve) => (onFire = resolve));
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
    await within(first, 10_000, "the first callback");
    assert.equal(fired, 1);
    // Five sends while this thread blocks: no callback can run before it returns, then one does.
    const second = new Promise((resolve) => (onFire = resolve));
    Atomics.store(go, 0, 6);
    Atomics.notify(go, 0);
    awaitSends(go, 6);
    assert.equal(fired, 1);
    await within(second, 10_000, "the callback after the busy spell");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(fired, 2, "sends made before the callback ran were not coalesced");
  } finally {
    Atomics.store(go, 0, -1);
    Atomics.notify(go, 0);
    await within(new Promise((resolve) => sender.once("exit", resolve)), 20_000, "the sender's exit");
    wake.close();
  }
});

test("UvAsync: a process with an open handle exits on its own", async () => {
  const out = await new Promise((resolve, reject) => {
    execFile(process.execPath, [fileURLToPath(SENDER)], { timeout: CHILD_LIMIT_MS }, (error, stdout, stderr) => {
      if (error) reject(new Error(error.killed ? `the child did not exit within ${CHILD_LIMIT_MS} ms\n${stdout}` : `${error.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
  assert.equal(out, "fired");
});
