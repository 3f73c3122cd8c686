/**
 * Closing: `loop.close(fd)` and `loop.remove(fd)` reject pending operations with a ClosedError
 * (code EBADF) and nothing hangs; handles close idempotently and refuse use after close;
 * disposing a loop rejects what was pending on it.
 *
 * On the blocking backend nothing is ever pending when this thread closes something (an
 * operation holds the thread until it completes): the tests about pending operations are
 * replaced there by "blocking:" tests of what closing does promise — the fd is closed or kept as
 * asked, later operations reject with EBADF, a peer's close ends a wait.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ClosedError, createLoop, Pipe, SystemError, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixStream } from "evloop";
import { allZero, bytes, fillStream, forEachLoop, IS_WINDOWS, raw, readExactly, streamPair, text, track } from "../helpers.mjs";

/** Asserts a ClosedError-style rejection: a SystemError with code EBADF. */
function isEbadf(e, cls = SystemError) {
  assert.ok(e instanceof cls, `expected a ${cls.name}, got ${e?.name}: ${e?.message}`);
  assert.equal(e.code, "EBADF");
  return true;
}

/**
 * What a disposed loop `other` must do (run by `loop`, which stays open): nothing to run, new
 * operations refused with EBADF, a second dispose harmless, fd `a` left open, the sleep that was
 * pending (`sleeping`, tracked) rejected, and a sleep asked for afterwards rejected too.
 */
async function assertDisposed(loop, other, a, sleeping) {
  assert.equal(other.run(false), false, "a disposed loop has nothing to run");
  await assert.rejects(async () => other.read(a, new Uint8Array(8)), (e) => isEbadf(e, ClosedError));
  other.dispose(); // twice is harmless
  assert.equal(raw.isOpen(a), true, "dispose does not close fds");
  // A pending sleep is pending work too: awaiting it after dispose must not hang.
  await loop.sleep(5);
  assert.equal(sleeping.state, "rejected", "a sleep pending on a disposed loop never settles");
  let late;
  try {
    late = track(other.sleep(1));
  } catch (e) {
    late = track(Promise.reject(e));
  }
  await loop.sleep(20);
  assert.equal(late.state, "rejected", "sleep() on a disposed loop never settles");
}

forEachLoop("close", (ctx) => {
  const spin = async () => {
    for (let i = 0; i < 3; i++) await ctx.loop.sleep(5);
  };

  // Tests of operations pending when something is closed: none ever is on the blocking
  // backend, whose variants are declared below.
  const pendingTest = ctx.blocking ? () => {} : test;

  pendingTest("loop.close(fd) rejects a pending read and a pending write with ClosedError EBADF", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        raw.fill(a);
        const rbuf = new Uint8Array(32);
        const reading = track(ctx.loop.read(a, rbuf));
        const writing = track(ctx.loop.write(a, new Uint8Array(1024).fill(1)));
        await spin();
        assert.equal(reading.state, "pending");
        assert.equal(writing.state, "pending");
        await ctx.loop.close(a);
        await assert.rejects(reading.promise, (e) => isEbadf(e, ClosedError));
        await assert.rejects(writing.promise, (e) => isEbadf(e, ClosedError));
        assert.equal(reading.reason.syscall, "read");
        assert.equal(writing.reason.syscall, "write");
        assert.ok(allZero(rbuf));
      } finally {
        raw.close(b);
      }
    }));

  pendingTest("loop.close(fd) rejects pending accept, receiveFrom, waitReadable and waitWritable", () =>
    ctx.run(async () => {
      const l = raw.tcpListener();
      const accepting = track(ctx.loop.accept(l.fd));
      const [d1, d2] = raw.socketPair("dgram");
      const receiving = track(ctx.loop.receiveFrom(d1, new Uint8Array(8)));
      const waitingR = track(ctx.loop.waitReadable(d1));
      const [p1, p2] = raw.socketPair();
      raw.fill(p1);
      const waitingW = track(ctx.loop.waitWritable(p1));
      await spin();
      for (const t of [accepting, receiving, waitingR, waitingW]) assert.equal(t.state, "pending");
      await ctx.loop.close(l.fd);
      await ctx.loop.close(d1);
      await ctx.loop.close(p1);
      for (const t of [accepting, receiving, waitingR, waitingW]) {
        await assert.rejects(t.promise, (e) => isEbadf(e, ClosedError));
      }
      raw.close(d2);
      raw.close(p2);
    }));

  pendingTest("loop.remove(fd) rejects pending operations but leaves the fd open and usable", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        const reading = track(ctx.loop.read(a, new Uint8Array(8)));
        await spin();
        ctx.loop.remove(a);
        await assert.rejects(reading.promise, (e) => isEbadf(e, ClosedError));
        assert.equal(raw.isOpen(a), true);
        raw.write(b, bytes("still"));
        const buf = new Uint8Array(8);
        const n = await ctx.loop.read(a, buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, n)), "still", "the fd can be used with the loop again");
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  pendingTest("an fd number reused after loop.close() works for the new fd", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      const reading = track(ctx.loop.read(a, new Uint8Array(8)));
      await spin();
      await ctx.loop.close(a);
      raw.close(b);
      await assert.rejects(reading.promise, ClosedError);
      // The lowest free numbers are handed out again: the new pair most likely reuses `a`.
      const [c, d] = raw.socketPair();
      try {
        const buf = new Uint8Array(8);
        const next = track(ctx.loop.read(c, buf, { timeout: 5000 }));
        await spin();
        raw.write(d, bytes("reuse"));
        const n = await next.promise;
        assert.equal(text(buf.subarray(0, n)), "reuse");
      } finally {
        await ctx.loop.close(c);
        raw.close(d);
      }
    }));

  pendingTest("stream.close() rejects its pending read and write with EBADF; closing twice is fine", () =>
    ctx.run(async () => {
      const [x, y] = await streamPair(ctx.loop);
      fillStream(x);
      const reading = track(x.read(new Uint8Array(8)));
      const writing = track(x.writeAll(new Uint8Array(1024)));
      await spin();
      const first = x.close();
      const second = x.close();
      await first;
      await second;
      await x.close();
      assert.equal(x.closed, true);
      assert.equal(x.fd, -1);
      await assert.rejects(reading.promise, (e) => isEbadf(e));
      await assert.rejects(writing.promise, (e) => isEbadf(e));
      await y.close();
    }));

  if (ctx.blocking) {
    test("blocking: loop.close(fd) closes the fd at once, and every later operation on the number rejects with EBADF", () =>
      ctx.run(async () => {
        const l = raw.tcpListener();
        const [d1, d2] = raw.socketPair("dgram");
        const [p1, p2] = raw.socketPair();
        await ctx.loop.close(l.fd);
        await ctx.loop.close(d1);
        await ctx.loop.close(p1);
        for (const fd of [l.fd, d1, p1]) assert.equal(raw.isOpen(fd), false, `fd ${fd} is still open`);
        // Nothing runs between the closes and these calls, so the numbers are still free.
        await assert.rejects(ctx.loop.accept(l.fd), (e) => isEbadf(e));
        await assert.rejects(ctx.loop.receiveFrom(d1, new Uint8Array(8)), (e) => isEbadf(e));
        await assert.rejects(ctx.loop.waitReadable(d1), (e) => isEbadf(e));
        await assert.rejects(ctx.loop.read(p1, new Uint8Array(8)), (e) => isEbadf(e));
        await assert.rejects(ctx.loop.write(p1, bytes("x")), (e) => isEbadf(e));
        await assert.rejects(ctx.loop.waitWritable(p1), (e) => isEbadf(e));
        raw.close(d2);
        raw.close(p2);
      }));

    test("blocking: loop.remove(fd) leaves the fd open and usable", () =>
      ctx.run(async () => {
        const [a, b] = raw.socketPair();
        try {
          raw.write(b, bytes("before"));
          const buf = new Uint8Array(8);
          assert.equal(await ctx.loop.read(a, buf, { timeout: 5000 }), 6);
          ctx.loop.remove(a);
          assert.equal(raw.isOpen(a), true);
          raw.write(b, bytes("still"));
          const n = await ctx.loop.read(a, buf, { timeout: 5000 });
          assert.equal(text(buf.subarray(0, n)), "still", "the fd can be used with the loop again");
        } finally {
          await ctx.loop.close(a);
          raw.close(b);
        }
      }));

    test("blocking: an fd number reused after loop.close() works for the new fd", () =>
      ctx.run(async () => {
        const [a, b] = raw.socketPair();
        raw.write(b, bytes("old"));
        assert.equal(await ctx.loop.read(a, new Uint8Array(8), { timeout: 5000 }), 3);
        await ctx.loop.close(a);
        raw.close(b);
        // The lowest free numbers are handed out again: the new pair most likely reuses `a`.
        const [c, d] = raw.socketPair();
        try {
          const peer = ctx.peer(async ({ raw, bytes, whenWaiting }, { d }) => {
            await whenWaiting();
            raw.write(d, bytes("reuse"));
          }, { d });
          const buf = new Uint8Array(8);
          const n = await ctx.loop.read(c, buf, { timeout: 10_000 });
          await peer.result();
          assert.equal(text(buf.subarray(0, n)), "reuse");
        } finally {
          await ctx.loop.close(c);
          raw.close(d);
        }
      }));

    test("blocking: stream.close() twice, even concurrently, is fine; the stream then refuses reads and writes with EBADF", () =>
      ctx.run(async () => {
        const [x, y] = await streamPair(ctx.loop);
        const fd = x.fd;
        const first = x.close();
        const second = x.close();
        await first;
        await second;
        await x.close();
        assert.equal(x.closed, true);
        assert.equal(x.fd, -1);
        assert.equal(raw.isOpen(fd), false);
        await assert.rejects(x.read(new Uint8Array(8)), (e) => isEbadf(e));
        await assert.rejects(x.writeAll(new Uint8Array(1024)), (e) => isEbadf(e));
        assert.equal(await y.read(new Uint8Array(8), { timeout: 5000 }), 0, "the peer sees EOF");
        await y.close();
      }));

    test("blocking: for await over a listener ends without an error when the listener is closed between accepts", () =>
      ctx.run(async () => {
        const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop: ctx.loop });
        const clients = ctx.peer(async ({ evloop, loop }, { port }) => {
          const cs = [];
          try {
            for (let i = 0; i < 2; i++) cs.push(await evloop.TcpStream.connect({ host: "127.0.0.1", port, timeout: 5000, loop }));
            // Each client waits for the server's close.
            for (const c of cs) await c.read(new Uint8Array(1), { timeout: 10_000 });
          } finally {
            for (const c of cs) await c.close();
          }
        }, { port: l.address.port });
        let n = 0;
        try {
          for await (const c of l) {
            n++;
            await c.close();
            if (n === 2) await l.close();
          }
        } finally {
          await l.close();
        }
        assert.equal(n, 2);
        await clients.result();
      }));

    test("blocking: loop.dispose() rejects pending sleeps and refuses new operations", () =>
      ctx.run(async () => {
        // A second loop of the same kind, so disposing it does not end this suite's loop.
        const other = createLoop({ backend: ctx.backend, guest: ctx.mode === "guest" });
        const [a, b] = raw.socketPair();
        try {
          const sleeping = track(other.sleep(60_000));
          other.dispose();
          await assertDisposed(ctx.loop, other, a, sleeping);
          assert.ok(sleeping.reason instanceof ClosedError);
        } finally {
          raw.close(a);
          raw.close(b);
        }
      }));
  }

  test("operations on a closed stream, listener or datagram socket reject with EBADF", () =>
    ctx.run(async () => {
      const [x, y] = await streamPair(ctx.loop);
      await x.close();
      await y.close();
      await assert.rejects(x.read(new Uint8Array(4)), (e) => isEbadf(e));
      await assert.rejects(x.write(bytes("x")), (e) => isEbadf(e));
      await assert.rejects(x.writeAll(bytes("x")), (e) => isEbadf(e));
      await assert.rejects(x.shutdown(), (e) => isEbadf(e));
      if (!IS_WINDOWS) {
        // UnixStream's fd passing (SCM_RIGHTS) is Unix-only: Windows' pair is two TcpStreams.
        await assert.rejects(x.sendFds([0], bytes("x")), (e) => isEbadf(e));
        await assert.rejects(x.receiveFds(new Uint8Array(4), 1), (e) => isEbadf(e));
      }
      assert.throws(() => x.localAddress, (e) => isEbadf(e));

      const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop: ctx.loop });
      await l.close();
      await l.close();
      await assert.rejects(l.accept(), (e) => isEbadf(e));
      let n = 0;
      for await (const conn of l) {
        n++;
        await conn.close();
      }
      assert.equal(n, 0, "iterating a closed listener yields nothing");

      const u = await UdpSocket.bind({ host: "127.0.0.1", port: 0, loop: ctx.loop });
      await u.close();
      await assert.rejects(u.sendTo(bytes("x"), { address: "127.0.0.1", port: 9 }), (e) => isEbadf(e));
      await assert.rejects(u.receiveFrom(new Uint8Array(4)), (e) => isEbadf(e));

      // UnixDatagram and Pipe are Unix-only (AF_UNIX sockets, pipe(2)).
      if (IS_WINDOWS) return;
      const [d] = UnixDatagram.pair({ loop: ctx.loop });
      await d.close();
      await assert.rejects(d.send(bytes("x")), (e) => isEbadf(e));
      await assert.rejects(d.receive(new Uint8Array(4)), (e) => isEbadf(e));

      const [r, w] = Pipe.create({ loop: ctx.loop });
      await r.close();
      await w.close();
      await assert.rejects(r.read(new Uint8Array(4)), (e) => isEbadf(e));
      await assert.rejects(r.waitReadable(), (e) => isEbadf(e));
      await assert.rejects(w.waitWritable(), (e) => isEbadf(e));
    }));

  pendingTest("closing a listener with a pending accept rejects it with EBADF and ends for-await", () =>
    ctx.run(async () => {
      const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop: ctx.loop });
      const accepting = track(l.accept());
      const iterating = track(
        (async () => {
          let n = 0;
          for await (const c of l) {
            n++;
            await c.close();
          }
          return n;
        })(),
      );
      await spin();
      assert.equal(accepting.state, "pending");
      await l.close();
      await assert.rejects(accepting.promise, (e) => isEbadf(e));
      assert.equal(await iterating.promise, 0);
    }));

  test("stream.close() while the peer is mid-transfer: the peer sees EOF or ECONNRESET, nothing hangs", () =>
    ctx.run(async () => {
      const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop: ctx.loop });
      // The client is the peer: it sends, then closes while this side is writing to it.
      const client = ctx.peer(async ({ evloop, loop, bytes, whenWaiting }, { port }) => {
        const c = await evloop.TcpStream.connect({ host: "127.0.0.1", port, timeout: 5000, loop });
        try {
          await c.writeAll(bytes("partial"));
          await whenWaiting();
        } finally {
          await c.close();
        }
      }, { port: l.address.port });
      let s;
      try {
        s = await l.accept({ timeout: 5000 });
        assert.equal(text(await readExactly(s, 7)), "partial");
        const writing = track(s.writeAll(new Uint8Array(32 * 1024 * 1024)));
        await client.proceed(writing);
        await assert.rejects(writing.promise, (e) => e instanceof SystemError && (e.code === "EPIPE" || e.code === "ECONNRESET"));
        await client.result();
      } finally {
        await s?.close();
        await l.close();
      }
    }));

  pendingTest("loop.dispose() rejects pending operations and sleeps, and refuses new operations", () =>
    ctx.run(async () => {
      // A second loop of the same kind, so disposing it does not end this suite's loop.
      const other = createLoop({ backend: ctx.backend, guest: ctx.mode === "guest" });
      const [a, b] = raw.socketPair();
      try {
        const reading = track(other.read(a, new Uint8Array(8)));
        const sleeping = track(other.sleep(60_000));
        other.dispose();
        await assert.rejects(reading.promise, (e) => isEbadf(e, ClosedError));
        await assertDisposed(ctx.loop, other, a, sleeping);
      } finally {
        raw.close(a);
        raw.close(b);
      }
    }));
});
