/**
 * io_uring-specific behaviour the conformance suite does not reach: a submission queue much
 * smaller than the work (SQ full: flush and continue), a completion queue that overflows, the
 * provided buffers running out while sockets hold unread data, regular files (which io_uring
 * reads and writes, unlike epoll), dispose() with requests in the kernel (they must all come
 * back: nothing is abandoned, no fd is left open), and borrowed reads lending the provided
 * buffers themselves (no copy; loans outliving dispose; every buffer lent out). Skipped where
 * io_uring is unavailable.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { availableBackends, ClosedError, createLoop, TcpListener, TcpStream, TimeoutError } from "evloop";

import { leakedRequests } from "../../dist/loop/io-uring/loop.js";
import { raw, withWatchdog } from "../helpers.mjs";

const skip = availableBackends().includes("io_uring") ? false : "io_uring is unavailable here (see `evloop info`)";

const openFds = () => readdirSync("/proc/self/fd").length;

/** Runs `body(loop)` on a fresh guest-mode io_uring loop with `options`, then disposes it. */
async function withLoop(options, body) {
  const loop = createLoop({ backend: "io_uring", ...options });
  try {
    return await withWatchdog(loop, () => body(loop), 30_000);
  } finally {
    loop.dispose();
  }
}

/** `count` connected TCP pairs on 127.0.0.1: [{ client, server }]. */
async function tcpPairs(loop, count) {
  const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, backlog: count, loop });
  try {
    const pairs = [];
    for (let i = 0; i < count; i++) {
      const [client, server] = await Promise.all([TcpStream.connect({ host: "127.0.0.1", port: listener.address.port, loop }), listener.accept()]);
      pairs.push({ client, server });
    }
    return pairs;
  } finally {
    await listener.close();
  }
}

async function readExactly(stream, n) {
  const out = new Uint8Array(n);
  for (let at = 0; at < n; ) {
    const got = await stream.read(out.subarray(at));
    assert.ok(got > 0, `stream ended after ${at} of ${n} bytes`);
    at += got;
  }
  return out;
}

const digest = (buf) => createHash("sha256").update(buf).digest("hex");

function pattern(n, seed) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

describe("io_uring", { skip }, () => {
  test("a 4-entry SQ carries 200 operations at once: a full SQ is flushed and filling goes on", () =>
    withLoop({ ioUring: { entries: 4 } }, async (loop) => {
      const pairs = Array.from({ length: 50 }, () => raw.socketPair());
      try {
        const bufs = pairs.map(() => new Uint8Array(8));
        const reads = pairs.map(([a], i) => loop.read(a, bufs[i]));
        const writes = pairs.map(([, b], i) => loop.write(b, new Uint8Array([i, i, i])));
        const waits = pairs.map(([, b]) => loop.waitWritable(b));
        const sleeps = pairs.map(() => loop.sleep(1));
        assert.deepEqual(await Promise.all(writes), pairs.map(() => 3));
        assert.deepEqual(await Promise.all(reads), pairs.map(() => 3));
        await Promise.all([...waits, ...sleeps]);
        bufs.forEach((b, i) => assert.deepEqual([...b.subarray(0, 3)], [i, i, i]));
      } finally {
        for (const [a, b] of pairs) {
          await loop.close(a);
          await loop.close(b);
        }
      }
    }));

  test("more completions at once than the CQ holds (overflow) all arrive", () =>
    withLoop({ ioUring: { entries: 2 } }, async (loop) => {
      // entries 2 gives a CQ of 32 (the loop asks for 16 × entries); 300 polls on writable
      // sockets complete in one submission.
      const pairs = Array.from({ length: 150 }, () => raw.socketPair());
      try {
        const waits = pairs.flatMap(([a, b]) => [loop.waitWritable(a), loop.waitWritable(b)]);
        const results = await Promise.allSettled(waits);
        assert.equal(results.filter((r) => r.status === "fulfilled").length, 300);
      } finally {
        for (const [a, b] of pairs) {
          await loop.close(a);
          await loop.close(b);
        }
      }
    }));

  test("multishot RECV: when the provided buffers run out (40 sockets × 320 KiB), every byte still arrives intact", () =>
    withLoop({ ioUring: { multishotRecv: true } }, async (loop) => {
      const SIZE = 320 * 1024;
      const pairs = await tcpPairs(loop, 40);
      try {
        const sent = pairs.map((_, i) => pattern(SIZE, i));
        // Every server reads one byte first: that arms each socket's multishot receive, which
        // keeps pulling data into the shared buffers (512 × 16 KiB, up to 16 per socket) while
        // nobody reads. 40 sockets want more than there is, so some wait for buffers (ENOBUFS)
        // until the reads below start, 100 ms later, and give buffers back.
        const received = pairs.map(async ({ server }) => {
          const head = await readExactly(server, 1);
          await loop.sleep(100);
          const rest = await readExactly(server, SIZE - 1);
          const got = new Uint8Array(SIZE);
          got.set(head, 0);
          got.set(rest, 1);
          return got;
        });
        await Promise.all(pairs.map(({ client }, i) => client.writeAll(sent[i])).concat(received));
        const got = await Promise.all(received);
        got.forEach((g, i) => assert.equal(digest(g), digest(sent[i]), `socket ${i}: data differs`));
        assert.ok(loop.stats.starved > 0, "the buffers never ran out: the test did not reach the ENOBUFS path");
      } finally {
        for (const { client, server } of pairs) {
          await client.close();
          await server.close();
        }
      }
    }));

  test("one-shot RECV: 100 reads into 64 KiB buffers complete at once, more than the 64 large buffers; all data arrives", () =>
    withLoop({}, async (loop) => {
      const SIZE = 64 * 1024;
      const pairs = Array.from({ length: 100 }, () => raw.socketPair());
      try {
        const bufs = pairs.map(() => new Uint8Array(SIZE));
        const reads = pairs.map(([a], i) => loop.read(a, bufs[i]));
        await loop.sleep(1);
        // Every write in one flush: the reads all become ready inside one io_uring_enter.
        const sent = pairs.map((_, i) => pattern(SIZE, i));
        const writes = pairs.map(([, b], i) => loop.write(b, sent[i]));
        const counts = await Promise.all(reads);
        await Promise.all(writes);
        for (let i = 0; i < pairs.length; i++) {
          let got = bufs[i].subarray(0, counts[i]);
          if (counts[i] < SIZE) {
            const rest = new Uint8Array(SIZE - counts[i]);
            for (let at = 0; at < rest.length; ) at += await loop.read(pairs[i][0], rest.subarray(at));
            got = new Uint8Array([...got, ...rest]);
          }
          assert.equal(digest(got), digest(sent[i]), `pair ${i}: data differs`);
        }
        assert.ok(loop.stats.starved > 0, "the large buffers never ran out: the test did not reach the ENOBUFS path");
      } finally {
        for (const [a, b] of pairs) {
          await loop.close(a);
          await loop.close(b);
        }
      }
    }));

  test("a read that times out on a TCP socket loses nothing: the next read gets the bytes", () =>
    withLoop({}, async (loop) => {
      const [{ client, server }] = await tcpPairs(loop, 1);
      try {
        await assert.rejects(server.read(new Uint8Array(16), { timeout: 20 }), TimeoutError);
        await client.writeAll(new TextEncoder().encode("after"));
        const got = await readExactly(server, 5);
        assert.equal(new TextDecoder().decode(got), "after");
        // Data already received (in a provided buffer) makes waitReadable resolve at once.
        await client.writeAll(new Uint8Array([1, 2]));
        await loop.waitReadable(server.fd, { timeout: 5000 });
        assert.deepEqual([...(await readExactly(server, 2))], [1, 2]);
      } finally {
        await client.close();
        await server.close();
      }
    }));

  test("regular files are read and written through the ring (epoll cannot poll them)", () =>
    withLoop({}, async (loop) => {
      const dir = mkdtempSync(join(tmpdir(), "evloop-uring-"));
      const path = join(dir, "data");
      const fd = openSync(path, "w+");
      try {
        const data = pattern(100_000, 3);
        let at = 0;
        while (at < data.length) at += await loop.write(fd, data.subarray(at));
        assert.equal(digest(readFileSync(path)), digest(data));
        // The file position moved with the writes: reading from it now gives end of file.
        assert.equal(await loop.read(fd, new Uint8Array(16)), 0);
      } finally {
        await loop.close(fd);
        rmSync(dir, { recursive: true, force: true });
      }
    }));

  test("dispose() with requests in the kernel: all of them reject, none is abandoned, no fd stays open", async () => {
    const before = openFds();
    const leakedBefore = leakedRequests();
    const loop = createLoop({ backend: "io_uring" });
    const [a, b] = raw.socketPair();
    const listener = raw.tcpListener();
    const [c, d] = raw.socketPair();
    raw.fill(c);
    const pending = [
      loop.read(a, new Uint8Array(8)),
      loop.accept(listener.fd),
      loop.write(c, new Uint8Array(65536)),
      loop.waitReadable(a, { timeout: 60_000 }),
      loop.sleep(60_000),
    ];
    const outcomes = Promise.allSettled(pending);
    await new Promise((resolve) => setImmediate(resolve));
    loop.dispose();
    for (const o of await outcomes) {
      assert.equal(o.status, "rejected");
      assert.ok(o.reason instanceof ClosedError, `expected ClosedError, got ${o.reason}`);
    }
    assert.equal(leakedRequests(), leakedBefore, "dispose gave up waiting for requests in the kernel");
    for (const fd of [a, b, c, d, listener.fd]) raw.close(fd);
    assert.equal(openFds(), before, "the ring fd, the eventfd or a socket is still open");
  });
});

describe("io_uring borrowed reads", { skip }, () => {
  for (const [label, options] of [
    ["one-shot RECV", {}],
    ["multishot RECV", { ioUring: { multishotRecv: true } }],
  ]) {
    test(`${label}: a borrowed read lends the provided buffer itself (no copy), and it comes back on release`, () =>
      withLoop(options, async (loop) => {
        const [{ client, server }] = await tcpPairs(loop, 1);
        try {
          const completionsBefore = loop.stats.completions;
          const pending = server.readBorrowed();
          await client.writeAll(new TextEncoder().encode("zero copy"));
          const chunk = await pending;
          assert.equal(new TextDecoder().decode(chunk.bytes), "zero copy");
          // A view of the 512 × 16 KiB provided buffer ring, not a buffer of its own.
          assert.equal(chunk.bytes.buffer.byteLength, 512 * 16 * 1024);
          assert.ok(loop.stats.completions > completionsBefore);
          // Hold it: the next data lands in another buffer, and this loan stays as it was.
          const next = server.readBorrowed();
          await client.writeAll(new TextEncoder().encode("second"));
          const second = await next;
          assert.equal(new TextDecoder().decode(second.bytes), "second");
          assert.notEqual(second.bytes.byteOffset, chunk.bytes.byteOffset);
          assert.equal(new TextDecoder().decode(chunk.bytes), "zero copy");
          chunk.release();
          second.release();
          // A one-shot RECV for more than 16 KiB takes a buffer of the 64 × 64 KiB ring; the
          // multishot RECV receives into 16 KiB buffers whatever the reads ask for.
          const big = new Uint8Array(40_000).fill(7);
          const third = server.readBorrowed({ maxBytes: 65536 });
          await client.writeAll(big);
          const lent = await third;
          const multishot = options.ioUring?.multishotRecv === true;
          assert.equal(lent.bytes.buffer.byteLength, multishot ? 512 * 16 * 1024 : 64 * 64 * 1024);
          assert.ok(lent.bytes.byteLength <= (multishot ? 16 * 1024 : 65536));
          assert.ok(lent.bytes.every((b) => b === 7));
          lent.release();
        } finally {
          await client.close();
          await server.close();
        }
      }));

    test(`${label}: loans outlive dispose (their memory stays mapped until the last release)`, async () => {
      const loop = createLoop({ backend: "io_uring", ...options });
      let chunk;
      try {
        await withWatchdog(loop, async () => {
          const [{ client, server }] = await tcpPairs(loop, 1);
          const pending = server.readBorrowed();
          await client.writeAll(new TextEncoder().encode("kept"));
          chunk = await pending;
          await client.close();
          await server.close();
        }, 30_000);
      } finally {
        loop.dispose();
      }
      // Reading unmapped memory would crash the process here.
      assert.equal(new TextDecoder().decode(chunk.bytes), "kept");
      chunk.release();
      chunk.release();
      assert.equal(leakedRequests(), 0);
    });
  }

  test("with every provided buffer lent out, reads fall back to reading directly (ENOBUFS) and nothing hangs", () =>
    withLoop({}, async (loop) => {
      const [{ client, server }] = await tcpPairs(loop, 1);
      try {
        const loans = [];
        for (let i = 0; i < 520; i++) {
          const pending = server.readBorrowed({ maxBytes: 16 });
          await client.writeAll(new Uint8Array([i & 0xff]));
          const chunk = await pending;
          assert.deepEqual([...chunk.bytes], [i & 0xff]);
          loans.push(chunk);
        }
        assert.ok(loop.stats.starved > 0, "some reads found no provided buffer");
        // Those loans are fresh buffers of their own.
        assert.ok(loans.some((l) => l.bytes.buffer.byteLength !== 512 * 16 * 1024));
        for (const l of loans) l.release();
        const pending = server.readBorrowed();
        await client.writeAll(new Uint8Array([42]));
        const again = await pending;
        assert.equal(again.bytes.buffer.byteLength, 512 * 16 * 1024, "buffers lent again once released");
        again.release();
      } finally {
        await client.close();
        await server.close();
      }
    }));
});
