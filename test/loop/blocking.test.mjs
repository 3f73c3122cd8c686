/**
 * The blocking backend's own edge cases. Its operations are covered by the conformance suite
 * (test/conformance/, with the other end of a connection in a Worker where one thread cannot
 * serve both) and its cross-thread wake-ups by wake.test.mjs; what is left is what no other
 * backend does: which driver mode it gets, and a `run()` that only ever fires timers, because an
 * operation never outlives its call.
 *
 * Waits are bounded: every operation that could block has data ready or a timeout.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { availableBackends, createLoop } from "evloop";
import { raw, track } from "../helpers.mjs";

const selected = process.env.EVLOOP_TEST_BACKENDS?.split(",").map((s) => s.trim());
const skip = !availableBackends().includes("blocking")
  ? "the blocking backend is unavailable"
  : selected && !selected.includes("blocking")
    ? "not selected by EVLOOP_TEST_BACKENDS"
    : false;

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe("blocking backend", { skip }, () => {
  test("createLoop({ backend: 'blocking' }) is in guest mode on Node's main thread, in owner mode with guest: false", () => {
    const guest = createLoop({ backend: "blocking" });
    const owner = createLoop({ backend: "blocking", guest: false });
    try {
      assert.equal(guest.backend, "blocking");
      assert.equal(guest.mode, "guest");
      assert.equal(owner.backend, "blocking");
      assert.equal(owner.mode, "owner");
    } finally {
      guest.dispose();
      owner.dispose();
    }
  });

  test("loop.sleep() is driven by run(true); run() returns false when idle", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    try {
      assert.equal(loop.run(false), false);
      assert.equal(loop.run(true), false, "run(true) with nothing pending must not block");
      const sleeping = track(loop.sleep(20));
      for (let i = 0; i < 100 && sleeping.state === "pending"; i++) {
        assert.equal(loop.run(true), true);
        await flush();
      }
      assert.equal(sleeping.state, "fulfilled");
      assert.equal(loop.run(false), false);
    } finally {
      loop.dispose();
    }
  });

  test("an operation never outlives its call: its promise is settled when the call returns, and run() has nothing left of it", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    const [a, b] = raw.socketPair();
    try {
      raw.write(b, new Uint8Array([1, 2, 3]));
      const reading = track(loop.read(a, new Uint8Array(8)));
      const waiting = track(loop.waitWritable(a));
      const timingOut = track(loop.read(a, new Uint8Array(8), { timeout: 10 }));
      await Promise.resolve();
      assert.deepEqual([reading.state, reading.value], ["fulfilled", 3]);
      assert.equal(waiting.state, "fulfilled");
      assert.equal(timingOut.state, "rejected");
      assert.equal(timingOut.reason.code, "ETIMEDOUT");
      assert.equal(loop.run(false), false, "run() found something pending after the operations returned");
      assert.equal(loop.run(true), false, "run(true) with no timer must not block");
    } finally {
      await loop.close(a);
      raw.close(b);
      loop.dispose();
    }
  });

  test("a transfer whose every call succeeds at once still lets timers run (the fast-path budget)", async () => {
    const loop = createLoop({ backend: "blocking" });
    const [a, b] = raw.socketPair();
    let hostTimer = false;
    let loopTimer = false;
    const timer = setTimeout(() => (hostTimer = true), 1);
    loop.sleep(1).then(() => (loopTimer = true));
    const one = new Uint8Array([7]);
    const buf = new Uint8Array(1);
    let rounds = 0;
    try {
      // Each write and read completes inside its call: without a budget this never yields.
      while (!(hostTimer && loopTimer) && rounds < 50_000) {
        await loop.write(a, one);
        await loop.read(b, buf);
        rounds++;
      }
      assert.ok(hostTimer, `Node's timer never ran in ${rounds} round trips`);
      assert.ok(loopTimer, `the loop's sleep never ended in ${rounds} round trips`);
    } finally {
      clearTimeout(timer);
      await loop.close(a);
      await loop.close(b);
      loop.dispose();
    }
  });
});
