/**
 * The EventLoop operations on raw fds (socket pairs, pipes): results, EOF, buffer offsets,
 * readiness waits, datagrams and scatter/gather, FIFO order of queued operations, timers —
 * and the same through Pipe and FileDescriptor.
 *
 * Where an operation must wait for the other end, the other end is a peer (`ctx.peer`): on the
 * blocking backend it runs in another thread, since the operation holds this one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { availableBackends, createLoop, FileDescriptor, Pipe } from "evloop";
import { bytes, forEachLoop, IS_WINDOWS, localAddressOf, raw, readToEnd, text, track } from "../helpers.mjs";

forEachLoop("loop", (ctx) => {
  const spin = async () => {
    for (let i = 0; i < 3; i++) await ctx.loop.sleep(5);
  };

  test("loop.read()/write() round trip; read() returns 0 at EOF", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        const peer = ctx.peer(async ({ loop, bytes, whenWaiting }, { b }) => {
          try {
            await whenWaiting();
            const n = await loop.write(b, bytes("hello"));
            await whenWaiting();
            return n;
          } finally {
            await loop.close(b); // the reader's EOF
          }
        }, { b });
        const buf = new Uint8Array(16);
        const reading = track(ctx.loop.read(a, buf));
        await peer.proceed(reading);
        const n = await reading.promise;
        assert.equal(text(buf.subarray(0, n)), "hello");
        const eof = track(ctx.loop.read(a, buf));
        await peer.proceed(eof);
        assert.equal(await eof.promise, 0);
        assert.equal(await peer.result(), 5, "write() returns the count");
        assert.equal(await ctx.loop.read(a, buf), 0, "and again");
      } finally {
        await ctx.loop.close(a);
      }
    }));

  test("loop.read()/write() honour a view's byteOffset (subarrays, pooled Buffers)", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        const backing = new Uint8Array(32).fill(0xee);
        const view = backing.subarray(8, 16);
        raw.write(b, bytes("ABCDEFGH"));
        assert.equal(await ctx.loop.read(a, view), 8);
        assert.equal(text(backing.subarray(8, 16)), "ABCDEFGH");
        assert.ok(backing.subarray(0, 8).every((x) => x === 0xee), "bytes before the view were written");
        assert.ok(backing.subarray(16).every((x) => x === 0xee), "bytes after the view were written");

        const source = bytes("xxxxPAYLOADyyyy");
        assert.equal(await ctx.loop.write(a, source.subarray(4, 11)), 7);
        const got = new Uint8Array(16);
        const n = await ctx.loop.read(b, got);
        assert.equal(text(got.subarray(0, n)), "PAYLOAD");

        // A Buffer at an offset into a larger ArrayBuffer, as Node's Buffer.from() hands out from
        // its shared pool (built by hand: Bun and Deno do not pool, and Node may not always).
        const pooled = Buffer.from(new ArrayBuffer(64), 24, 13);
        pooled.write("pooled buffer");
        await ctx.loop.write(a, pooled);
        const m = await ctx.loop.read(b, got);
        assert.equal(text(got.subarray(0, m)), "pooled buffer");
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  if (ctx.blocking) {
    // Nothing is ever queued: each read holds the thread until it has its data.
    test("blocking: reads called in a row run one at a time, in call order, each waiting for its own data", () =>
      ctx.run(async () => {
        const [a, b] = raw.socketPair();
        try {
          const peer = ctx.peer(async ({ raw, whenWaiting }, { b }) => {
            for (let i = 0; i < 3; i++) {
              await whenWaiting();
              raw.write(b, new Uint8Array([65 + i]));
            }
          }, { b });
          const bufs = [new Uint8Array(4), new Uint8Array(4), new Uint8Array(4)];
          const counts = [];
          for (const buf of bufs) counts.push(await ctx.loop.read(a, buf, { timeout: 10_000 }));
          await peer.result();
          assert.deepEqual(counts, [1, 1, 1], "a read took more than the byte written while it waited");
          assert.deepEqual(bufs.map((x) => x[0]), [65, 66, 67]);
        } finally {
          await ctx.loop.close(a);
          raw.close(b);
        }
      }));
  } else test("queued reads on one fd complete in FIFO order", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        const bufs = [new Uint8Array(1), new Uint8Array(1), new Uint8Array(1)];
        const reads = bufs.map((buf) => track(ctx.loop.read(a, buf)));
        await spin();
        for (let i = 0; i < 3; i++) {
          raw.write(b, new Uint8Array([65 + i]));
          await reads[i].promise;
          for (let j = i + 1; j < 3; j++) assert.equal(reads[j].state, "pending", `read ${j} completed before read ${i}'s data was consumed`);
        }
        assert.deepEqual(bufs.map((x) => x[0]), [65, 66, 67]);
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  test("loop.write() to a full socket waits, then completes once the peer reads", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        const filled = raw.fill(a); // bytes 0x5a
        // The peer reads exactly what filled the socket: the write may go through as soon as
        // there is room, while the peer is still reading, and its bytes must come after.
        const peer = ctx.peer(async ({ loop, whenWaiting }, { b, filled }) => {
          await whenWaiting();
          const buf = new Uint8Array(64 * 1024);
          for (let got = 0; got < filled; ) {
            const n = await loop.read(b, buf.subarray(0, Math.min(buf.length, filled - got)), { timeout: 5000 });
            if (n === 0) throw new Error(`end of stream after ${got} of ${filled} bytes`);
            const other = buf.subarray(0, n).findIndex((x) => x !== 0x5a);
            if (other >= 0) throw new Error(`byte ${got + other} is not one the socket was filled with`);
            got += n;
          }
        }, { b, filled });
        const writing = track(ctx.loop.write(a, bytes("tail")));
        await peer.proceed(writing);
        assert.equal(await writing.promise, 4);
        await peer.result();
        const buf = new Uint8Array(8);
        assert.equal(text(buf.subarray(0, await ctx.loop.read(b, buf))), "tail");
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  test("loop.waitReadable()/waitWritable() resolve on readiness only", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      try {
        await ctx.loop.waitWritable(a, { timeout: 5000 });
        const peer = ctx.peer(async ({ raw, bytes, whenWaiting }, { b }) => {
          await whenWaiting();
          raw.write(b, bytes("!"));
          await whenWaiting();
          raw.drain(b);
        }, { b });
        const readable = track(ctx.loop.waitReadable(a));
        await peer.proceed(readable);
        await readable.promise;
        assert.equal(raw.read(a, new Uint8Array(4)), 1, "waitReadable consumed nothing");
        raw.fill(a);
        const writable = track(ctx.loop.waitWritable(a));
        await peer.proceed(writable);
        await writable.promise;
        await peer.result();
      } finally {
        await ctx.loop.close(a);
        raw.close(b);
      }
    }));

  test("loop.waitReadable() resolves at hang-up (a pipe whose writer closed)", () =>
    ctx.run(async () => {
      // Windows has no pipes: there it is the hang-up of a loopback TCP socket whose peer closed.
      const [r, w] = IS_WINDOWS ? raw.socketPair() : raw.pipe();
      try {
        const peer = ctx.peer(async ({ raw, whenWaiting }, { w }) => {
          await whenWaiting();
          raw.close(w);
        }, { w });
        const waiting = track(ctx.loop.waitReadable(r));
        await peer.proceed(waiting);
        await waiting.promise;
        await peer.result();
        assert.equal(await ctx.loop.read(r, new Uint8Array(4)), 0);
      } finally {
        await ctx.loop.close(r);
      }
    }));

  test("loop.receiveFrom() on a datagram pair; sendMessage() gathers, receiveMessage() reads one datagram", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair("dgram");
      try {
        const buf = new Uint8Array(32);
        const peer = ctx.peer(async ({ raw, bytes, whenWaiting }, { a }) => {
          await whenWaiting();
          raw.write(a, bytes("datagram"));
        }, { a });
        const receiving = track(ctx.loop.receiveFrom(b, buf));
        await peer.proceed(receiving);
        const [n, address] = await receiving.promise;
        await peer.result();
        assert.equal(text(buf.subarray(0, n)), "datagram");
        // The sender's address: an unnamed AF_UNIX socket's on Unix; on Windows, where the pair
        // is two connected loopback UDP sockets, the sending socket's own address.
        assert.deepEqual(address, IS_WINDOWS ? localAddressOf(a) : { family: "unix", path: "" });
        assert.equal(await ctx.loop.sendMessage(a, [bytes("one "), bytes("two "), bytes("three")], []), 13);
        assert.equal(await ctx.loop.sendMessage(a, [bytes("next")], []), 4);
        const msg = await ctx.loop.receiveMessage(b, buf, 0);
        assert.equal(msg.bytes, 13);
        assert.equal(text(buf.subarray(0, 13)), "one two three");
        assert.deepEqual(msg.fds, []);
        assert.equal(msg.truncated, false);
        const next = await ctx.loop.receiveMessage(b, buf, 0);
        assert.equal(text(buf.subarray(0, next.bytes)), "next");
      } finally {
        await ctx.loop.close(a);
        await ctx.loop.close(b);
      }
    }));

  test("loop.sleep() timers fire in deadline order, and sleep(0) resolves", () =>
    ctx.run(async () => {
      const order = [];
      await Promise.all([30, 10, 20, 0].map((ms) => ctx.loop.sleep(ms).then(() => order.push(ms))));
      assert.deepEqual(order, [0, 10, 20, 30]);
    }));

  test("Pipe.create(): write, shutdown the writer, the reader reads everything then EOF", { skip: IS_WINDOWS && "Pipe is Unix-only (pipe(2))" }, () =>
    ctx.run(async () => {
      const [r, w] = Pipe.create({ loop: ctx.loop });
      try {
        const data = new Uint8Array(1024 * 1024).map((_, i) => i & 0xff);
        // The reader is the peer, which reads the pipe through a FileDescriptor of its own loop.
        const reader = ctx.peer(async ({ evloop, loop, readToEnd }, { fd }) => {
          const end = evloop.FileDescriptor.from(fd, { loop, owned: false });
          return readToEnd(end);
        }, { fd: r.fd });
        await w.writeAll(data);
        await w.shutdown();
        assert.equal(w.closed, true, "shutdown() of a pipe's write end closes it");
        const got = await reader.result();
        assert.equal(got.length, data.length);
        assert.deepEqual(got, data);
      } finally {
        await r.close();
        await w.close();
      }
    }));

  test("Pipe reader async iteration yields chunks until EOF", () =>
    ctx.run(async () => {
      // Windows has no pipes: there a FileDescriptor adopts one end of a loopback TCP pair.
      const [r, w] = IS_WINDOWS ? raw.socketPair() : raw.pipe();
      const reader = FileDescriptor.from(r, { loop: ctx.loop });
      // The peer owns the write end and closes it when done.
      const writer = ctx.peer(async ({ evloop, loop, bytes }, { w }) => {
        const end = evloop.FileDescriptor.from(w, { loop });
        try {
          for (let i = 0; i < 5; i++) {
            await end.writeAll(bytes(`chunk${i};`));
            await loop.sleep(1);
          }
        } finally {
          await end.close();
        }
      }, { w });
      let all = "";
      for await (const chunk of reader) all += text(chunk);
      await writer.result();
      await reader.close();
      assert.equal(all, "chunk0;chunk1;chunk2;chunk3;chunk4;");
    }));

  test("FileDescriptor.from() adopts a socket fd; owned: false leaves it open on close()", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      const f = FileDescriptor.from(a, { loop: ctx.loop, owned: false });
      try {
        const peer = ctx.peer(async ({ raw, bytes, whenWaiting }, { b }) => {
          await whenWaiting();
          raw.write(b, bytes("hi"));
        }, { b });
        const waiting = track(f.waitReadable());
        await peer.proceed(waiting);
        await waiting.promise;
        await peer.result();
        const buf = new Uint8Array(4);
        assert.equal(await f.read(buf), 2);
        await f.close();
        assert.equal(raw.isOpen(a), true, "an unowned fd stays open");
      } finally {
        await f.close();
        raw.close(a);
        raw.close(b);
      }
      const [c, d] = raw.socketPair();
      const owned = FileDescriptor.from(c, { loop: ctx.loop });
      await owned.close();
      assert.equal(raw.isOpen(c), false, "an owned fd is closed by close()");
      raw.close(d);
    }));
});

test("loop.run() returns false on a loop with nothing pending, true while something is", { skip: availableBackends().length === 0 && "no backend is available here" }, async () => {
  const loop = createLoop({ guest: false });
  try {
    assert.equal(loop.run(false), false);
    assert.equal(loop.run(true), false, "run(true) with nothing pending must not block");
    const sleeping = loop.sleep(0);
    assert.equal(loop.run(false), true);
    await sleeping;
    assert.equal(loop.run(false), false);
  } finally {
    loop.dispose();
  }
});
