/**
 * Unit tests of the io_uring sys layer (`src/sys/linux/io_uring.ts`), below any event loop: ring
 * setup and sizing, the op probe, SQE batches submitted with one io_uring_enter, a full SQ, a READ
 * into native memory, buffer-select receives from a provided buffer ring, and that close()
 * gives back the ring fd and its mappings. Skipped, with the reason, where io_uring_setup fails.
 *
 * Every wait for completions is bounded (see `reap`): a blocking io_uring_enter would hold the
 * thread, where no timer of node:test can stop it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";

import { BufferRing, NativeBlock, OPS, Ring, setupNames } from "../../dist/sys/linux/io_uring.js";
import { C, IORING } from "../../dist/sys/linux/constants.js";
import { close, pipe, write } from "../../dist/sys/posix/fd.js";
import { socketPair } from "../../dist/sys/posix/socket.js";

function unavailable() {
  try {
    Ring.setup({ entries: 2 }).close();
    return false;
  } catch (e) {
    return `io_uring is unavailable here: ${e instanceof Error ? e.message : e}`;
  }
}

const skip = unavailable();

const openFds = () => readdirSync("/proc/self/fd").length;
const ringMappings = () => readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => l.includes("[io_uring]")).length;
const isPowerOfTwo = (n) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
const text = (s) => new TextEncoder().encode(s);
const decode = (b) => new TextDecoder().decode(b);

const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Runs `body(ring)` on a fresh ring, then closes it. */
function withRing(options, body) {
  const ring = Ring.setup(options);
  try {
    return body(ring);
  } finally {
    ring.close();
  }
}

/**
 * Waits, at most `ms`, until `n` CQEs are ready. `enter(0, 0, true)` asks for completions with
 * a minimum of none, so it runs pending task work (COOP_TASKRUN defers it until we enter) and
 * never blocks.
 */
function reap(ring, n, ms = 5000) {
  const deadline = Date.now() + ms;
  while (ring.cqReady() < n) {
    if (Date.now() > deadline) throw new Error(`only ${ring.cqReady()} of ${n} completions arrived within ${ms} ms`);
    ring.enter(0, 0, true);
    if (ring.cqReady() < n) sleepSync(1);
  }
}

/** Consumes every ready CQE: [{ lo, hi, res, flags }], user_data words unsigned. */
function drain(ring) {
  const out = [];
  const n = ring.cqReady();
  for (let i = 0; i < n; i++) {
    const at = ring.cqIndex(i);
    const c = ring.cqes;
    out.push({ lo: c[at] >>> 0, hi: c[at + 1] >>> 0, res: c[at + 2], flags: c[at + 3] >>> 0 });
  }
  ring.advance(n);
  ring.release();
  return out;
}

/** Claims an SQE and fills it with a NOP carrying user_data `hi:lo`. */
function prepNop(ring, lo, hi) {
  const at = ring.claim();
  assert.notEqual(at, -1, "the SQ is full");
  ring.prep(at, IORING.IORING_OP_NOP, 0, -1, 0, 0, 0, 0, lo, hi);
  return at;
}

describe("io_uring sys layer", { skip }, () => {
  test("Ring.setup() rounds the SQ to a power of two and gives a CQ at least as large as asked", () => {
    withRing({ entries: 5, cqEntries: 20 }, (ring) => {
      assert.ok(isPowerOfTwo(ring.sqEntries), `sqEntries ${ring.sqEntries} is not a power of two`);
      assert.ok(ring.sqEntries >= 5, `sqEntries ${ring.sqEntries} < 5`);
      assert.ok(isPowerOfTwo(ring.cqEntries), `cqEntries ${ring.cqEntries} is not a power of two`);
      assert.ok(ring.cqEntries >= 20, `cqEntries ${ring.cqEntries} < 20`);
      assert.ok(ring.has(C.IORING_FEAT_NODROP), "the kernel lacks IORING_FEAT_NODROP");
      assert.equal(ring.sqSpace, ring.sqEntries);
      assert.equal(ring.cqReady(), 0);
      assert.equal(ring.cqes.length, ring.cqEntries * 4);
    });
    withRing({ entries: 8 }, (ring) => {
      assert.equal(ring.sqEntries, 8);
      assert.ok(ring.cqEntries >= 8, `cqEntries ${ring.cqEntries} < sqEntries 8`);
      assert.ok(isPowerOfTwo(ring.cqEntries), `cqEntries ${ring.cqEntries} is not a power of two`);
    });
  });

  test("Ring.probe() reports every op evloop needs", () => {
    withRing({ entries: 2 }, (ring) => {
      const ops = ring.probe();
      assert.ok(ops.has(IORING.IORING_OP_NOP), "NOP is not supported");
      const needed = ["READ", "WRITE", "SEND", "RECV", "ACCEPT", "CONNECT", "POLL_ADD", "ASYNC_CANCEL", "LINK_TIMEOUT", "TIMEOUT", "CLOSE"];
      const missing = needed.filter((name) => !ops.has(OPS[name]));
      assert.deepEqual(missing, [], `unsupported: ${missing.join(", ")}`);
    });
  });

  test("Ring.enter() submits a batch of NOPs in one call and every CQE carries its user_data", () => {
    withRing({ entries: 16 }, (ring) => {
      const N = 10;
      // Distinct words in both halves, with the top bit set in some, to catch sign mix-ups.
      const lo = (i) => (0x8000_0000 + i * 0x1001) >>> 0;
      const hi = (i) => 0x100 + i;
      for (let i = 0; i < N; i++) prepNop(ring, lo(i), hi(i));
      assert.equal(ring.unpublished, N);
      assert.equal(ring.publish(), N);
      assert.equal(ring.unpublished, 0);
      // NOPs complete inline, so waiting for all N here cannot block.
      assert.equal(ring.enter(N, N, true), N);
      assert.equal(ring.cqReady(), N);
      const cqes = drain(ring);
      assert.equal(cqes.length, N);
      const want = Array.from({ length: N }, (_, i) => `${hi(i)}:${lo(i)}`).sort();
      assert.deepEqual(cqes.map((c) => `${c.hi}:${c.lo}`).sort(), want);
      for (const c of cqes) assert.equal(c.res, 0, `NOP ${c.hi}:${c.lo} completed with ${c.res}`);
      assert.equal(ring.cqReady(), 0);
      assert.equal(ring.sqSpace, ring.sqEntries);
    });
  });

  test("Ring.claim() returns -1 on a full SQ, and submitting frees every slot again", () => {
    withRing({ entries: 4 }, (ring) => {
      // Two rounds: the second wraps our tail past the end of the SQE array.
      for (let round = 0; round < 2; round++) {
        const n = ring.sqEntries;
        for (let i = 0; i < n; i++) {
          assert.equal(ring.sqSpace, n - i);
          prepNop(ring, i, round);
        }
        assert.equal(ring.sqSpace, 0);
        assert.equal(ring.claim(), -1);
        assert.equal(ring.claim(), -1, "a refused claim changed the ring");
        assert.equal(ring.publish(), n);
        assert.equal(ring.enter(n, n, true), n);
        assert.equal(ring.sqSpace, n);
        const cqes = drain(ring);
        assert.deepEqual(cqes.map((c) => c.lo).sort(), Array.from({ length: n }, (_, i) => i));
        assert.ok(cqes.every((c) => c.hi === round && c.res === 0));
      }
    });
  });

  test("Ring IORING_OP_READ from a pipe into a NativeBlock returns the bytes written", () => {
    const [rd, wr] = pipe();
    const block = new NativeBlock(64);
    try {
      withRing({ entries: 4 }, (ring) => {
        const data = text("hello, ring");
        assert.equal(write(wr, data), data.length);
        const at = ring.claim();
        // Offset -1: the file's current position, as read(2) (a pipe has none anyway).
        ring.prep(at, IORING.IORING_OP_READ, 0, rd, block.address, block.bytes.length, -1, 0, 77, 0);
        ring.publish();
        assert.equal(ring.enter(1, 0, false), 1);
        reap(ring, 1);
        const [cqe] = drain(ring);
        assert.equal(cqe.lo, 77);
        assert.equal(cqe.res, data.length);
        assert.equal(decode(block.bytes.subarray(0, cqe.res)), "hello, ring");
      });
    } finally {
      block.free();
      close(rd);
      close(wr);
    }
  });

  test("BufferRing: buffer-select READ and RECV name the buffer in the CQE flags, and recycled buffers are reused", () => {
    const [rd, wr] = pipe();
    const [a, b] = socketPair(C.AF_UNIX, C.SOCK_STREAM);
    try {
      withRing({ entries: 4 }, (ring) => {
        const GROUP = 5;
        const buffers = new BufferRing(ring, GROUP, 2, 64);
        try {
          const receive = (opcode, fd, userData) => {
            const at = ring.claim();
            ring.prep(at, opcode, C.IOSQE_BUFFER_SELECT, fd, 0, buffers.size, opcode === IORING.IORING_OP_READ ? -1 : 0, 0, userData, 0);
            ring.setBufGroup(at, GROUP);
            ring.publish();
            assert.equal(ring.enter(1, 0, false), 1);
            reap(ring, 1);
            const [cqe] = drain(ring);
            assert.equal(cqe.lo, userData);
            assert.ok(cqe.res > 0, `receive failed with ${cqe.res}`);
            assert.ok(cqe.flags & C.IORING_CQE_F_BUFFER, `no IORING_CQE_F_BUFFER in flags ${cqe.flags}`);
            const bid = cqe.flags >>> IORING.IORING_CQE_BUFFER_SHIFT;
            assert.equal(bid, cqe.flags >>> 16);
            assert.ok(bid < buffers.count, `buffer id ${bid} out of range`);
            const got = decode(buffers.view(bid, cqe.res));
            buffers.recycle(bid);
            buffers.publish();
            return { bid, got };
          };

          write(wr, text("from a pipe"));
          assert.equal(receive(IORING.IORING_OP_READ, rd, 1).got, "from a pipe");
          // Four more receives from a ring of two buffers: only recycling keeps them coming.
          const bids = new Set();
          for (let i = 0; i < 4; i++) {
            write(a, text(`message ${i}`));
            const { bid, got } = receive(IORING.IORING_OP_RECV, b, 10 + i);
            assert.equal(got, `message ${i}`);
            bids.add(bid);
          }
          assert.deepEqual([...bids].sort(), [0, 1]);
        } finally {
          buffers.close();
        }
      });
    } finally {
      for (const fd of [rd, wr, a, b]) close(fd);
    }
  });

  test("Ring.close() releases the ring fd and unmaps the rings", () => {
    const fdsBefore = openFds();
    const mapsBefore = ringMappings();
    const ring = Ring.setup({ entries: 8 });
    assert.equal(openFds(), fdsBefore + 1);
    if (setupNames(ring.setupFlags).includes("no_mmap")) {
      // The rings are in our own memory: no mapping of the ring fd holds the ring.
      assert.equal(ringMappings(), mapsBefore, "a mapping of the ring fd exists although the rings are our memory");
    } else {
      assert.ok(ringMappings() > mapsBefore, "the rings are not mapped");
    }
    const buffers = new BufferRing(ring, 1, 4, 128);
    buffers.close();
    ring.close();
    ring.close();
    assert.equal(openFds(), fdsBefore, "the ring fd is still open");
    assert.equal(ringMappings(), mapsBefore, "a ring mapping is left behind");
  });
});
