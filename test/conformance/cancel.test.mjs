/**
 * Cancellation: aborted and timed-out operations reject with the right error, and — the rule
 * users cannot check themselves — a cancelled operation never completes later: its buffer is
 * not written after the rejection, and the data it would have taken goes to the next operation.
 *
 * On the blocking backend no operation is ever pending, so nothing can be aborted while it
 * waits: a signal is checked before the syscall, and a timeout is the only way to end a wait.
 * The tests about aborting pending operations are replaced there by "blocking:" tests of those
 * two promises, with the same rule about buffers and data.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SystemError, TcpListener, TcpStream, TimeoutError } from "evloop";
import { allZero, bytes, forEachLoop, openFdCount, raw, readExactly, streamPair, text, track } from "../helpers.mjs";

/** An abort reason that cannot be confused with anything evloop creates. */
function reason(label) {
  const e = new Error(`test abort: ${label}`);
  e.code = "TEST_ABORT";
  return e;
}

forEachLoop("cancel", (ctx) => {
  /** Lets the loop run several iterations (and any stale completion happen). */
  async function spin() {
    for (let i = 0; i < 3; i++) await ctx.loop.sleep(5);
  }

  // Tests of operations aborted while pending: none ever is on the blocking backend, whose
  // variants are declared below.
  const pendingTest = ctx.blocking ? () => {} : test;

  pendingTest("loop.read() aborted while pending rejects with the signal's reason; the buffer is never written afterwards", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        const buf = new Uint8Array(64);
        const ac = new AbortController();
        const pending = ctx.loop.read(a, buf, { signal: ac.signal });
        await spin();
        const why = reason("read");
        ac.abort(why);
        await assert.rejects(pending, (e) => e === why);
        assert.equal(raw.write(b, bytes("data after the abort")), 20);
        await spin();
        assert.ok(allZero(buf), "the aborted read wrote into its buffer");
        const next = new Uint8Array(64);
        const n = await ctx.loop.read(a, next, { timeout: 5000 });
        assert.equal(text(next.subarray(0, n)), "data after the abort", "the data goes to the next read");
        assert.ok(allZero(buf));
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  pendingTest("one signal aborts every operation it was given, on several fds", () =>
    ctx.run(async () => {
      const pairs = [raw.socketPair(), raw.socketPair(), raw.socketPair()];
      try {
        const ac = new AbortController();
        const bufs = pairs.map(() => new Uint8Array(8));
        const reads = pairs.map(([a], i) => ctx.loop.read(a, bufs[i], { signal: ac.signal }));
        const sleeping = ctx.loop.sleep(60_000, { signal: ac.signal });
        await spin();
        const why = reason("shared");
        ac.abort(why);
        // A completion backend rejects an in-kernel read only when the kernel confirms the cancel,
        // later than the sleep: collect every outcome at once, so none is left unhandled.
        const outcomes = await Promise.allSettled([...reads, sleeping]);
        for (const o of outcomes) assert.ok(o.status === "rejected" && o.reason === why, `${o.status}: ${o.reason ?? o.value}`);
        for (const [, b] of pairs) raw.write(b, bytes("x"));
        await spin();
        assert.ok(bufs.every(allZero));
      } finally {
        for (const [a, b] of pairs) {
          await ctx.loop.close(a);
          raw.close(b);
        }
      }
    }));

  pendingTest("loop.read() aborted without a reason rejects with an AbortError", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        const ac = new AbortController();
        const pending = ctx.loop.read(a, new Uint8Array(8), { signal: ac.signal });
        ac.abort();
        await assert.rejects(pending, { name: "AbortError" });
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  pendingTest("aborting the first of two queued reads hands the data to the second", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        const first = new Uint8Array(16);
        const second = new Uint8Array(16);
        const ac = new AbortController();
        const p1 = ctx.loop.read(a, first, { signal: ac.signal });
        const p2 = track(ctx.loop.read(a, second, { timeout: 5000 }));
        const why = reason("first");
        ac.abort(why);
        await assert.rejects(p1, (e) => e === why);
        raw.write(b, bytes("for two"));
        const n = await p2.promise;
        assert.equal(text(second.subarray(0, n)), "for two");
        assert.ok(allZero(first));
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  pendingTest("loop.write() aborted while pending rejects, and none of its bytes reach the peer", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        const filled = raw.fill(a); // bytes 0x5a
        assert.ok(filled > 0);
        const payload = new Uint8Array(4096).fill(0xa5);
        const ac = new AbortController();
        const pending = ctx.loop.write(a, payload, { signal: ac.signal });
        await spin();
        const why = reason("write");
        ac.abort(why);
        await assert.rejects(pending, (e) => e === why);
        // Make room, letting the loop run between reads: a stale write would now go through.
        const buf = new Uint8Array(64 * 1024);
        let drained = 0;
        for (let round = 0; round < 1000; round++) {
          let got = 0;
          for (let n = raw.read(b, buf); n > 0; n = raw.read(b, buf)) {
            assert.ok(!buf.subarray(0, n).includes(0xa5), "bytes of the aborted write reached the peer");
            got += n;
          }
          drained += got;
          await spin();
          if (got === 0) break;
        }
        assert.equal(raw.read(b, buf), -1, "bytes of the aborted write reached the peer");
        assert.equal(drained, filled, "exactly the bytes written before the abort arrived");
        // The socket still works.
        assert.equal(await ctx.loop.write(a, bytes("ok"), { timeout: 5000 }), 2);
        assert.equal(text(await readRaw(b, 2)), "ok");
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  /** Reads exactly n bytes from a raw fd through the loop. */
  async function readRaw(fd, n) {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) at += await ctx.loop.read(fd, out.subarray(at), { timeout: 5000 });
    return out;
  }

  pendingTest("loop.accept() aborted while pending rejects; the next connection goes to the next accept", () =>
    ctx.run(async () => {
      const l = raw.tcpListener();
      const c = raw.tcpSocket();
      try {
        const ac = new AbortController();
        const pending = ctx.loop.accept(l.fd, { signal: ac.signal });
        await spin();
        const why = reason("accept");
        ac.abort(why);
        await assert.rejects(pending, (e) => e === why);
        await ctx.loop.connect(c, l.address, { timeout: 5000 });
        await spin();
        const fd = await ctx.loop.accept(l.fd, { timeout: 5000 });
        assert.ok(Number.isInteger(fd) && fd >= 0);
        await ctx.loop.close(fd);
      } finally {
        await ctx.loop.close(c);
        await ctx.loop.close(l.fd);
      }
    }));

  pendingTest("TcpListener.accept() and TcpStream.read() aborted while pending reject with the signal's reason", () =>
    ctx.run(async () => {
      const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop: ctx.loop });
      try {
        const ac1 = new AbortController();
        const accepting = l.accept({ signal: ac1.signal });
        await spin();
        const why1 = reason("listener accept");
        ac1.abort(why1);
        await assert.rejects(accepting, (e) => e === why1);
        const [c, s] = await Promise.all([TcpStream.connect({ host: "127.0.0.1", port: l.address.port, timeout: 5000, loop: ctx.loop }), l.accept({ timeout: 5000 })]);
        try {
          const buf = new Uint8Array(32);
          const ac2 = new AbortController();
          const reading = s.read(buf, { signal: ac2.signal });
          await spin();
          const why2 = reason("stream read");
          ac2.abort(why2);
          await assert.rejects(reading, (e) => e === why2);
          await c.writeAll(bytes("after abort"));
          await spin();
          assert.ok(allZero(buf), "the aborted stream read wrote into its buffer");
          assert.equal(text(await readExactly(s, 11)), "after abort");
        } finally {
          await c.close();
          await s.close();
        }
      } finally {
        await l.close();
      }
    }));

  // A connect that stays pending on loopback: see the comment on the connect-timeout test in
  // tcp.test.mjs (a full accept queue drops SYNs). Attempts that connect at once are kept open
  // until the queue is full.
  pendingTest("TcpStream.connect() aborted while pending rejects with the signal's reason", () =>
    ctx.run(async () => {
      const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, backlog: 0, loop: ctx.loop });
      const connected = [];
      let aborted = 0;
      try {
        for (let i = 0; i < 8 && aborted === 0; i++) {
          const ac = new AbortController();
          const attempt = track(TcpStream.connect({ host: "127.0.0.1", port: l.address.port, signal: ac.signal, loop: ctx.loop }));
          await ctx.loop.sleep(100);
          if (attempt.state === "fulfilled") {
            connected.push(attempt.value);
            continue;
          }
          assert.equal(attempt.state, "pending", `connect failed: ${attempt.reason}`);
          const why = reason("connect");
          ac.abort(why);
          await assert.rejects(attempt.promise, (e) => e === why);
          aborted++;
        }
        assert.equal(aborted, 1, "no connect stayed pending to be aborted");
      } finally {
        for (const c of connected) await c.close();
        await l.close();
      }
    }));

  if (ctx.blocking) {
    test("blocking: a read's signal is checked before its syscall: a live one lets the read wait for data, an aborted one rejects and leaves the data", () =>
      ctx.run(async () => {
        const [a, b] = raw.socketPair();
        try {
          const peer = ctx.peer(async ({ raw, bytes, whenWaiting }, { b }) => {
            await whenWaiting();
            raw.write(b, bytes("first"));
          }, { b });
          const ac = new AbortController();
          const buf = new Uint8Array(64);
          const n = await ctx.loop.read(a, buf, { signal: ac.signal, timeout: 10_000 });
          await peer.result();
          assert.equal(text(buf.subarray(0, n)), "first");
          raw.write(b, bytes("second"));
          const why = reason("read");
          ac.abort(why);
          const refused = new Uint8Array(64);
          await assert.rejects(ctx.loop.read(a, refused, { signal: ac.signal }), (e) => e === why);
          assert.ok(allZero(refused), "the aborted read wrote into its buffer");
          const next = new Uint8Array(64);
          const m = await ctx.loop.read(a, next, { timeout: 5000 });
          assert.equal(text(next.subarray(0, m)), "second", "the data goes to the next read");
        } finally {
          await ctx.loop.close(a);
          raw.close(b);
        }
      }));

    test("blocking: one aborted signal rejects every operation given it, on several fds, and takes no data", () =>
      ctx.run(async () => {
        const pairs = [raw.socketPair(), raw.socketPair(), raw.socketPair()];
        try {
          for (const [, b] of pairs) raw.write(b, bytes("x"));
          const ac = new AbortController();
          const why = reason("shared");
          ac.abort(why);
          const bufs = pairs.map(() => new Uint8Array(8));
          const outcomes = await Promise.allSettled([
            ...pairs.map(([a], i) => ctx.loop.read(a, bufs[i], { signal: ac.signal })),
            ctx.loop.sleep(60_000, { signal: ac.signal }),
          ]);
          for (const o of outcomes) assert.ok(o.status === "rejected" && o.reason === why, `${o.status}: ${o.reason ?? o.value}`);
          assert.ok(bufs.every(allZero));
          for (const [a] of pairs) assert.equal(await ctx.loop.read(a, new Uint8Array(8), { timeout: 5000 }), 1, "the data is still there");
        } finally {
          for (const [a, b] of pairs) {
            await ctx.loop.close(a);
            raw.close(b);
          }
        }
      }));

    test("blocking: loop.read() given a signal aborted without a reason rejects with an AbortError", () =>
      ctx.run(async () => {
        const [a, b] = raw.socketPair();
        try {
          const ac = new AbortController();
          ac.abort();
          await assert.rejects(ctx.loop.read(a, new Uint8Array(8), { signal: ac.signal }), { name: "AbortError" });
        } finally {
          await ctx.loop.close(a);
          raw.close(b);
        }
      }));

    test("blocking: loop.write() to a full socket with a timeout rejects with TimeoutError, and none of its bytes reach the peer", () =>
      ctx.run(async () => {
        const [a, b] = raw.socketPair();
        try {
          const filled = raw.fill(a); // bytes 0x5a
          const payload = new Uint8Array(4096).fill(0xa5);
          await assert.rejects(ctx.loop.write(a, payload, { timeout: 30 }), (e) => e instanceof TimeoutError && e.syscall === "write");
          const buf = new Uint8Array(64 * 1024);
          let drained = 0;
          for (let n = raw.read(b, buf); n > 0; n = raw.read(b, buf)) {
            assert.ok(!buf.subarray(0, n).includes(0xa5), "bytes of the timed-out write reached the peer");
            drained += n;
          }
          assert.equal(drained, filled, "exactly the bytes written before the timed-out write arrived");
          assert.equal(await ctx.loop.write(a, bytes("ok"), { timeout: 5000 }), 2, "the socket still works");
          assert.equal(text(await readRaw(b, 2)), "ok");
        } finally {
          await ctx.loop.close(a);
          raw.close(b);
        }
      }));

    test("blocking: loop.accept() with a timeout rejects with TimeoutError; the next connection goes to the next accept", () =>
      ctx.run(async () => {
        const l = raw.tcpListener();
        const c = raw.tcpSocket();
        try {
          await assert.rejects(ctx.loop.accept(l.fd, { timeout: 30 }), (e) => e instanceof TimeoutError && e.code === "ETIMEDOUT" && e.syscall === "accept");
          await ctx.loop.connect(c, l.address, { timeout: 5000 });
          const fd = await ctx.loop.accept(l.fd, { timeout: 5000 });
          assert.ok(Number.isInteger(fd) && fd >= 0);
          await ctx.loop.close(fd);
        } finally {
          await ctx.loop.close(c);
          await ctx.loop.close(l.fd);
        }
      }));

    test("blocking: TcpListener.accept() and TcpStream.read() with a timeout reject with TimeoutError; later data goes to the next read", () =>
      ctx.run(async () => {
        const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop: ctx.loop });
        try {
          await assert.rejects(l.accept({ timeout: 30 }), TimeoutError);
          const c = await TcpStream.connect({ host: "127.0.0.1", port: l.address.port, timeout: 5000, loop: ctx.loop });
          const s = await l.accept({ timeout: 5000 });
          try {
            const buf = new Uint8Array(32);
            await assert.rejects(s.read(buf, { timeout: 30 }), TimeoutError);
            await c.writeAll(bytes("after timeout"));
            assert.ok(allZero(buf), "the timed-out stream read wrote into its buffer");
            assert.equal(text(await readExactly(s, 13, { timeout: 5000 })), "after timeout");
          } finally {
            await c.close();
            await s.close();
          }
        } finally {
          await l.close();
        }
      }));

    test("blocking: TcpStream.connect() given an aborted signal rejects before connecting: the listener gets no connection", () =>
      ctx.run(async () => {
        const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop: ctx.loop });
        try {
          const before = openFdCount();
          const why = reason("connect");
          await assert.rejects(TcpStream.connect({ host: "127.0.0.1", port: l.address.port, signal: AbortSignal.abort(why), loop: ctx.loop }), (e) => e === why);
          assert.equal(openFdCount(), before, "the refused connect left a socket open");
          await assert.rejects(l.accept({ timeout: 30 }), TimeoutError, "a connection arrived although the connect was aborted before it started");
        } finally {
          await l.close();
        }
      }));
  }

  test("loop.read() with a timeout rejects with TimeoutError ETIMEDOUT and never writes the buffer", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        const buf = new Uint8Array(16);
        await assert.rejects(ctx.loop.read(a, buf, { timeout: 20 }), (e) => {
          assert.ok(e instanceof TimeoutError, `expected a TimeoutError, got ${e}`);
          assert.ok(e instanceof SystemError);
          assert.equal(e.code, "ETIMEDOUT");
          assert.equal(e.syscall, "read");
          return true;
        });
        raw.write(b, bytes("late"));
        await spin();
        assert.ok(allZero(buf));
        const n = await ctx.loop.read(a, buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, n)), "late");
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  test("timeout: 0 rejects an operation that would block, and does not affect one that completes at once", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        await assert.rejects(ctx.loop.read(a, new Uint8Array(4), { timeout: 0 }), TimeoutError);
        raw.write(b, bytes("now"));
        const buf = new Uint8Array(4);
        assert.equal(await ctx.loop.read(a, buf, { timeout: 0 }), 3);
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  test("UnixStream.read() with a timeout rejects with TimeoutError ETIMEDOUT", () =>
    ctx.run(async () => {
      const [x, y] = await streamPair(ctx.loop);
      try {
        await assert.rejects(x.read(new Uint8Array(8), { timeout: 20 }), (e) => e instanceof TimeoutError && e.code === "ETIMEDOUT");
        await assert.rejects(x.writeAll(new Uint8Array(64 * 1024 * 1024), { timeout: 20 }), (e) => e instanceof TimeoutError && e.code === "ETIMEDOUT");
      } finally {
        await x.close();
        await y.close();
      }
    }));

  test("an already-aborted signal rejects at once with its reason and consumes nothing", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        raw.write(b, bytes("waiting"));
        const why = reason("pre-aborted");
        const signal = AbortSignal.abort(why);
        const buf = new Uint8Array(16);
        const t = track(ctx.loop.read(a, buf, { signal }));
        // Rejected before any loop iteration: after a couple of microtask turns.
        await Promise.resolve();
        await Promise.resolve();
        assert.equal(t.state, "rejected");
        assert.equal(t.reason, why);
        assert.ok(allZero(buf), "the read ran although its signal was aborted");
        for (const op of [
          () => ctx.loop.write(a, bytes("x"), { signal }),
          () => ctx.loop.accept(a, { signal }),
          () => ctx.loop.waitReadable(a, { signal }),
          () => ctx.loop.waitWritable(a, { signal }),
          () => ctx.loop.sleep(10, { signal }),
          () => ctx.loop.receiveMessage(a, buf, 1, { signal }),
        ]) {
          await assert.rejects(op(), (e) => e === why);
        }
        const n = await ctx.loop.read(a, buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, n)), "waiting", "the data is still there for the next read");
        // Through the stream classes too.
        const [x, y] = await streamPair(ctx.loop);
        try {
          await assert.rejects(x.read(new Uint8Array(4), { signal }), (e) => e === why);
          await assert.rejects(x.writeAll(bytes("x"), { signal }), (e) => e === why);
          await assert.rejects(TcpStream.connect({ host: "127.0.0.1", port: 9, signal, loop: ctx.loop }), (e) => e === why);
        } finally {
          await x.close();
          await y.close();
        }
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  test("loop.sleep() aborted rejects with the reason; aborting after completion is harmless", () =>
    ctx.run(async () => {
      const ac = new AbortController();
      const sleeping = ctx.loop.sleep(60_000, { signal: ac.signal });
      const why = reason("sleep");
      ac.abort(why);
      await assert.rejects(sleeping, (e) => e === why);
      const [a, b] = raw.socketPair();
      try {
        raw.write(b, bytes("x"));
        const late = new AbortController();
        assert.equal(await ctx.loop.read(a, new Uint8Array(4), { signal: late.signal }), 1);
        late.abort(reason("late"));
        await ctx.loop.sleep(1);
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));
});
