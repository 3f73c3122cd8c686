/**
 * io_uring's own conditions, through its real code paths: a full SQ (claiming an SQE must submit
 * first) and a full CQ (the kernel keeps what it cannot post and sets IORING_SQ_CQ_OVERFLOW)
 * on the smallest ring (2 SQEs, 32 CQEs) with 100 reads in flight; io_uring_enter failing with
 * EAGAIN/EBUSY (the SQEs it did not take must still go out, also in guest mode, where nobody
 * else may enter the kernel: a bug this suite found); and ENOBUFS on a provided-buffer receive (the read goes on
 * straight into the caller's buffer). Guest and owner mode; fds back where they were.
 */
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { availableBackends, createLoop, runMain } from "evloop";
import { ringFaultsSupported, unixSocketPair, write, close } from "evloop/internal";
import { randomBytes, withWatchdog } from "../helpers.mjs";
import { fdBaseline, withFaults } from "./common.mjs";

const skip = !availableBackends().includes("io_uring")
  ? "io_uring is not available here"
  : !ringFaultsSupported()
    ? "this kernel cannot inject CQE results (IORING_NOP_INJECT_RESULT, Linux 6.10)"
    : false;

/**
 * Resolves "hung" after `ms` on Node's own timers, which run in guest mode whatever evloop does:
 * the bound that tells a read the loop forgot from one that completed.
 */
function hostTimeout(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms, "hung").unref());
}

for (const mode of ["guest", "owner"]) {
  describe(`faults: io_uring ${mode}`, { skip }, () => {
    let loop = null;
    before(() => {
      loop = createLoop({ backend: "io_uring", guest: mode === "guest", ioUring: { entries: 2 } });
    });
    after(() => loop?.dispose());
    const run = (body) => {
      const bounded = () => withWatchdog(loop, body, 20_000);
      return mode === "guest" ? bounded() : runMain(bounded, { loop });
    };

    /** `n` socket pairs with a read pending on the first end of each; the second end's fds. */
    async function readsInFlight(n, body) {
      const pairs = Array.from({ length: n }, () => unixSocketPair());
      try {
        const sent = pairs.map(() => randomBytes(64));
        const bufs = pairs.map(() => new Uint8Array(128));
        const reads = pairs.map(([a], i) => loop.read(a, bufs[i], { timeout: 10_000 }));
        await body(pairs, sent);
        const counts = await Promise.all(reads);
        counts.forEach((count, i) => {
          assert.equal(count, 64, `read ${i} got its 64 bytes`);
          assert.deepEqual(bufs[i].subarray(0, 64), sent[i], `read ${i} got exactly its own bytes`);
        });
      } finally {
        for (const [a, b] of pairs) {
          close(a);
          close(b);
        }
      }
    }

    test("a 2-entry SQ and 32-entry CQ: 100 reads with deadlines all complete with their own bytes", () =>
      run(async () => {
        const fds = fdBaseline();
        for (let round = 0; round < 3; round++) {
          await readsInFlight(100, async (pairs, sent) => {
            // Let every read reach the kernel and wait there, then complete them all at once:
            // 100 CQEs (and as many link-timeout cancellations) for a CQ of 32.
            await loop.sleep(5);
            pairs.forEach(([, b], i) => assert.equal(write(b, sent[i]), 64));
          });
        }
        fds.check();
      }));

    for (const code of ["EAGAIN", "EBUSY"]) {
      test(`io_uring_enter failing with ${code} once: the SQEs it did not take still go out`, () =>
        run(async () => {
          const fds = fdBaseline();
          const [a, b] = unixSocketPair();
          try {
            const data = randomBytes(32);
            assert.equal(write(b, data), 32);
            await withFaults({ call: "io_uring_enter", errno: code, times: 1 }, async (plan) => {
              // One SQE, whose only io_uring_enter fails: nothing else would enter the kernel.
              const buf = new Uint8Array(64);
              const read = loop.read(a, buf);
              const got = await (mode === "guest" ? Promise.race([read, hostTimeout(5000)]) : read);
              assert.equal(got, 32, "the read completed");
              assert.deepEqual(buf.subarray(0, 32), data);
              assert.equal(plan.fired, 1);
            });
          } finally {
            close(a);
            close(b);
          }
          fds.check();
        }));
    }

    test("ENOBUFS on a provided-buffer receive: the read takes the data straight into its buffer", () =>
      run(async () => {
        const fds = fdBaseline();
        const before = loop.stats.starved;
        const [a, b] = unixSocketPair();
        try {
          // The first SQE is the read's MSG_DONTWAIT try (EAGAIN: nothing there yet), the second
          // its wait in a provided buffer, which gets the ENOBUFS.
          await withFaults({ call: "read", errno: "ENOBUFS", fd: a, after: 1, times: 1 }, async (plan) => {
            const buf = new Uint8Array(16);
            const read = loop.read(a, buf, { timeout: 10_000 });
            await loop.sleep(5);
            const data = randomBytes(16);
            assert.equal(write(b, data), 16);
            assert.equal(await read, 16);
            assert.deepEqual(buf, data);
            assert.equal(plan.fired, 1);
          });
          assert.equal(loop.stats.starved, before + 1, "the loop took its ENOBUFS path");
        } finally {
          close(a);
          close(b);
        }
        fds.check();
      }));
  });
}
