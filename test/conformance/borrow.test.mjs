/**
 * Borrowed reads (`readBorrowed`): bytes lent by the loop instead of read into a caller's buffer.
 * On io_uring they are views of the provided buffers the kernel received into; elsewhere buffers
 * from the loop's pool. The contract is the same everywhere and checked on every backend.
 *
 * Where a read waits for the other end, the other end is a peer (`ctx.peer`): another thread on
 * the blocking backend, where the read holds this one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FileDescriptor, TcpListener, TcpStream, TimeoutError, ClosedError } from "evloop";
import { bytes, forEachLoop, IS_WINDOWS, randomBytes, raw, sha256, text, track } from "../helpers.mjs";

const HOST = "127.0.0.1";

forEachLoop("borrowed reads", (ctx) => {
  async function connectedPair() {
    const l = await TcpListener.bind({ host: HOST, port: 0, loop: ctx.loop });
    const [c, s] = await ctx.both(
      () => TcpStream.connect({ host: HOST, port: l.address.port, timeout: 5000, loop: ctx.loop }),
      () => l.accept({ timeout: 5000 }),
    );
    await l.close();
    return [c, s];
  }

  test("readBorrowed lends what arrived, and empty bytes at EOF", () =>
    ctx.run(async () => {
      const [c, s] = await connectedPair();
      try {
        const peer = ctx.peer(async ({ raw, bytes, whenWaiting }, { fd }) => {
          await whenWaiting();
          raw.write(fd, bytes("hello"));
        }, { fd: c.fd });
        const pending = track(s.readBorrowed());
        await peer.proceed(pending);
        const chunk = await pending.promise;
        await peer.result();
        assert.ok(chunk.bytes instanceof Uint8Array);
        assert.equal(text(chunk.bytes), "hello");
        chunk.release();
        chunk.release(); // idempotent
        await c.shutdown();
        const eof = await s.readBorrowed();
        assert.equal(eof.bytes.byteLength, 0);
        eof.release();
      } finally {
        await c.close();
        await s.close();
      }
    }));

  test("readBorrowed never lends more than maxBytes, and the rest stays for the next read", () =>
    ctx.run(async () => {
      const [c, s] = await connectedPair();
      try {
        const sent = randomBytes(1000);
        await c.writeAll(sent);
        const got = [];
        let total = 0;
        while (total < sent.byteLength) {
          const chunk = await s.readBorrowed({ maxBytes: 300, timeout: 5000 });
          assert.ok(chunk.bytes.byteLength >= 1 && chunk.bytes.byteLength <= 300, `lent ${chunk.bytes.byteLength} bytes`);
          got.push(chunk.bytes.slice());
          total += chunk.bytes.byteLength;
          chunk.release();
        }
        assert.deepEqual(Buffer.concat(got), Buffer.from(sent));
      } finally {
        await c.close();
        await s.close();
      }
    }));

  test("readBorrowed and read share one queue: they complete in the order they were called", () =>
    ctx.run(async () => {
      const [c, s] = await connectedPair();
      try {
        // All nine bytes come at once, once the first read waits: on the blocking backend the
        // three calls then run one after the other, elsewhere they wait in one queue.
        const peer = ctx.peer(async ({ raw, bytes, whenWaiting }, { fd }) => {
          await whenWaiting();
          raw.write(fd, bytes("abcdefghi"));
        }, { fd: c.fd });
        const first = track(s.readBorrowed({ maxBytes: 3 }));
        const buf = new Uint8Array(3);
        const second = track(s.read(buf));
        const third = track(s.readBorrowed({ maxBytes: 3 }));
        await peer.proceed(first, second, third);
        const a = await first.promise;
        const n = await second.promise;
        const b = await third.promise;
        await peer.result();
        assert.equal(text(a.bytes), "abc");
        assert.equal(text(buf.subarray(0, n)), "def");
        assert.equal(text(b.bytes), "ghi");
        a.release();
        b.release();
      } finally {
        await c.close();
        await s.close();
      }
    }));

  test("8 MiB echoed through borrowed reads arrives intact (sha256), holding several loans at once", () =>
    ctx.run(async () => {
      const TOTAL = 8 * 1024 * 1024;
      const [c, s] = await connectedPair();
      try {
        // The client is the peer: it sends TOTAL random bytes while reading the echo back with
        // borrowed reads on its own loop, and returns both sha256s and the count received.
        const client = ctx.peer(async ({ evloop, loop, randomBytes, sha256 }, { fd, TOTAL }) => {
          const c = evloop.FileDescriptor.from(fd, { loop, owned: false });
          const sent = sha256();
          const writer = (async () => {
            for (let at = 0; at < TOTAL; at += 256 * 1024) {
              const chunk = randomBytes(256 * 1024);
              sent.update(chunk);
              await c.writeAll(chunk);
            }
            await c.shutdown();
          })();
          const received = sha256();
          const reader = (async () => {
            let total = 0;
            for (;;) {
              const chunk = await c.readBorrowed({ timeout: 10_000 });
              const n = chunk.bytes.byteLength;
              received.update(chunk.bytes);
              chunk.release();
              if (n === 0) return total;
              total += n;
            }
          })();
          const [, total] = await Promise.all([writer, reader]);
          return { total, sent: sent.digest("hex"), received: received.digest("hex") };
        }, { fd: c.fd, TOTAL });
        // The server echoes with borrowed reads, releasing each loan only after the next read:
        // a loan must stay intact while others are taken.
        const echo = (async () => {
          let held = null;
          for (;;) {
            const chunk = await s.readBorrowed({ maxBytes: 65536, timeout: 10_000 });
            const copy = chunk.bytes.slice();
            if (held) {
              assert.deepEqual(held.loan.bytes, held.copy, "a loan changed before its release");
              held.loan.release();
            }
            if (chunk.bytes.byteLength === 0) {
              chunk.release();
              break;
            }
            await s.writeAll(chunk.bytes);
            held = { loan: chunk, copy };
          }
          await s.shutdown();
        })();
        await echo;
        const { total, sent, received } = await client.result();
        assert.equal(total, TOTAL);
        assert.equal(received, sent);
      } finally {
        await c.close();
        await s.close();
      }
    }));

  if (ctx.blocking) {
    // No read is ever pending on the blocking backend: a signal is checked before the read, and
    // nothing can be closed while it waits.
    test("blocking: a borrowed read times out, is refused with an aborted signal, and rejects after close like any read", () =>
      ctx.run(async () => {
        const [c, s] = await connectedPair();
        try {
          await assert.rejects(s.readBorrowed({ timeout: 20 }), TimeoutError);
          await c.writeAll(bytes("after"));
          await assert.rejects(s.readBorrowed({ signal: AbortSignal.abort(new Error("stop")) }), /stop/);
          // Nothing was lost to the refused reads: the next one gets the data.
          const chunk = await s.readBorrowed({ timeout: 5000 });
          assert.equal(text(chunk.bytes), "after");
          chunk.release();
          await s.close();
          await assert.rejects(s.readBorrowed(), { code: "EBADF" });
        } finally {
          await c.close();
          await s.close();
        }
      }));
  }

  // A borrowed read aborted or closed while pending: the variant above runs on blocking instead.
  (ctx.blocking ? () => {} : test)("a borrowed read times out, is aborted, and rejects on close like any read", () =>
    ctx.run(async () => {
      const [c, s] = await connectedPair();
      try {
        await assert.rejects(s.readBorrowed({ timeout: 20 }), TimeoutError);
        const ac = new AbortController();
        const aborted = track(s.readBorrowed({ signal: ac.signal }));
        await ctx.loop.sleep(5);
        ac.abort(new Error("stop"));
        await assert.rejects(aborted.promise, /stop/);
        // Nothing was lost to the cancelled reads: the next one gets the data.
        await c.writeAll(bytes("after"));
        const chunk = await s.readBorrowed({ timeout: 5000 });
        assert.equal(text(chunk.bytes), "after");
        chunk.release();
        const closing = track(s.readBorrowed());
        await ctx.loop.sleep(5);
        await s.close();
        await assert.rejects(closing.promise, ClosedError);
        await assert.rejects(s.readBorrowed(), { code: "EBADF" });
      } finally {
        await c.close();
        await s.close();
      }
    }));

  test("readBorrowed on a pipe (not a socket)", { skip: IS_WINDOWS && "a FileDescriptor on a non-socket (a pipe) is Unix-only: on Windows it adopts sockets only" }, () =>
    ctx.run(async () => {
      const [r, w] = raw.pipe();
      const reader = new FileDescriptor(r, { loop: ctx.loop });
      const writer = new FileDescriptor(w, { loop: ctx.loop });
      try {
        const peer = ctx.peer(async ({ evloop, loop, bytes, whenWaiting }, { w }) => {
          await whenWaiting();
          await evloop.FileDescriptor.from(w, { loop, owned: false }).writeAll(bytes("through a pipe"));
        }, { w });
        const pending = track(reader.readBorrowed({ timeout: 5000 }));
        await peer.proceed(pending);
        const chunk = await pending.promise;
        await peer.result();
        assert.equal(text(chunk.bytes), "through a pipe");
        chunk.release();
        await writer.close();
        const eof = await reader.readBorrowed({ timeout: 5000 });
        assert.equal(eof.bytes.byteLength, 0);
      } finally {
        await reader.close();
        await writer.close();
      }
    }));

  test("more loans outstanding than the loop has buffers: reads go on, every byte in order", () =>
    ctx.run(async () => {
      // 700 loans of 16 KiB held at once: more than io_uring's 512 provided buffers.
      const COUNT = 700;
      const [c, s] = await connectedPair();
      try {
        const sent = randomBytes(COUNT * 100);
        const writer = c.writeAll(sent);
        const loans = [];
        let total = 0;
        while (total < sent.byteLength) {
          const chunk = await s.readBorrowed({ maxBytes: 100, timeout: 10_000 });
          loans.push(chunk);
          total += chunk.bytes.byteLength;
        }
        await writer;
        assert.deepEqual(Buffer.concat(loans.map((l) => l.bytes)), Buffer.from(sent));
        for (const l of loans) l.release();
        // And the loop still lends after they all came back.
        await c.writeAll(bytes("x"));
        const last = await s.readBorrowed({ timeout: 5000 });
        assert.equal(text(last.bytes), "x");
        last.release();
      } finally {
        await c.close();
        await s.close();
      }
    }));

  test("readBorrowed refuses a bad maxBytes with a RangeError", () =>
    ctx.run(async () => {
      const [c, s] = await connectedPair();
      try {
        for (const maxBytes of [0, -1, 1.5, 65537, Number.NaN, "16"]) {
          await assert.rejects(s.readBorrowed({ maxBytes }), RangeError, `maxBytes ${String(maxBytes)}`);
        }
        assert.throws(() => ctx.loop.readBorrowed(s.fd, { maxBytes: 0 }), RangeError);
      } finally {
        await c.close();
        await s.close();
      }
    }));
});
