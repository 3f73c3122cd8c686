/**
 * Unix-domain sockets: stream listeners on a path and on an abstract name, socket pairs,
 * SCM_RIGHTS fd passing, and datagram sockets (bound, unbound, pairs).
 *
 * Two tests are about operations waiting in a queue or while the stream is closed; on the
 * blocking backend, where an operation holds the thread until it completes, "blocking:" tests of
 * the same situations with a peer in another thread replace them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { FileDescriptor, Pipe, SystemError, UnixDatagram, UnixListener, UnixStream } from "evloop";
import { abstractName, bytes, forEachLoop, readExactly, readToEnd, socketPath, text } from "../helpers.mjs";

/**
 * `got` holds the first write (SIZE bytes of 0x41) then the third (0x43), and nothing of the
 * second (0x42), which was aborted.
 */
function assertFirstAndThird(got, size) {
  assert.equal(got.indexOf(0x43), size, "the third write started before the first had finished");
  assert.ok(!got.includes(0x42), "the aborted write sent bytes");
  assert.ok(got.subarray(0, size).every((x) => x === 0x41));
  assert.ok(got.subarray(size).every((x) => x === 0x43));
}

forEachLoop("unix", (ctx) => {
  /** Listener round trip on `path`; returns the listener's address. */
  async function listenerRoundTrip(path) {
    const l = await UnixListener.bind({ path, loop: ctx.loop });
    try {
      assert.deepEqual(l.address, { family: "unix", path });
      const [c, s] = await ctx.both(
        () => UnixStream.connect({ path, timeout: 5000, loop: ctx.loop }),
        () => l.accept({ timeout: 5000 }),
      );
      try {
        assert.deepEqual(c.remoteAddress, { family: "unix", path });
        assert.deepEqual(s.localAddress, { family: "unix", path });
        await c.writeAll(bytes("hello unix"));
        assert.equal(text(await readExactly(s, 10)), "hello unix");
        await s.writeAll(bytes("bye"));
        await s.shutdown();
        assert.equal(text(await readToEnd(c)), "bye");
      } finally {
        await c.close();
        await s.close();
      }
    } finally {
      await l.close();
    }
  }

  test("UnixListener on a filesystem path: round trip, and close() removes the socket file", () =>
    ctx.run(async () => {
      const path = socketPath();
      await listenerRoundTrip(path);
      assert.equal(existsSync(path), false, "the listener removed its socket file");
    }));

  test("UnixListener on an abstract name: round trip", () =>
    ctx.run(async () => {
      await listenerRoundTrip(abstractName());
    }));

  test("UnixListener.bind() on a path in use rejects with EADDRINUSE", () =>
    ctx.run(async () => {
      const path = socketPath();
      const l = await UnixListener.bind({ path, loop: ctx.loop });
      try {
        await assert.rejects(UnixListener.bind({ path, loop: ctx.loop }), (e) => e instanceof SystemError && e.code === "EADDRINUSE");
        const name = abstractName();
        const a = await UnixListener.bind({ path: name, loop: ctx.loop });
        try {
          await assert.rejects(UnixListener.bind({ path: name, loop: ctx.loop }), (e) => e instanceof SystemError && e.code === "EADDRINUSE");
        } finally {
          await a.close();
        }
      } finally {
        await l.close();
      }
      assert.equal(existsSync(path), false);
    }));

  test("UnixStream.connect() to a path nobody listens on rejects with ENOENT or ECONNREFUSED", () =>
    ctx.run(async () => {
      await assert.rejects(UnixStream.connect({ path: socketPath(), loop: ctx.loop }), (e) => e instanceof SystemError && e.code === "ENOENT");
      await assert.rejects(UnixStream.connect({ path: abstractName(), loop: ctx.loop }), (e) => e instanceof SystemError && e.code === "ECONNREFUSED");
    }));

  test("UnixStream.pair() round trip in both directions", () =>
    ctx.run(async () => {
      const [a, b] = UnixStream.pair({ loop: ctx.loop });
      try {
        assert.deepEqual(a.localAddress, { family: "unix", path: "" });
        await a.writeAll(bytes("to b"));
        assert.equal(text(await readExactly(b, 4)), "to b");
        await b.writeAll(bytes("to a!"));
        assert.equal(text(await readExactly(a, 5)), "to a!");
        await a.shutdown();
        assert.equal(await b.read(new Uint8Array(4)), 0);
      } finally {
        await a.close();
        await b.close();
      }
    }));

  // Operations left waiting: none ever is on the blocking backend, whose variants follow.
  const pendingTest = ctx.blocking ? () => {} : test;

  if (ctx.blocking) {
    test("blocking: writeAll() calls run one after the other, each waiting for the peer to make room; one given an aborted signal writes nothing", () =>
      ctx.run(async () => {
        const [a, b] = UnixStream.pair({ loop: ctx.loop });
        try {
          const SIZE = 2 * 1024 * 1024; // several socket buffers, so the writes must wait
          // The reader is the peer: it returns everything it read up to EOF.
          const reader = ctx.peer(async ({ evloop, loop, readToEnd }, { fd, limit }) => {
            const end = evloop.FileDescriptor.from(fd, { loop, owned: false });
            return readToEnd(end, limit, { timeout: 10_000 });
          }, { fd: b.fd, limit: 3 * SIZE });
          await a.writeAll(new Uint8Array(SIZE).fill(0x41), { timeout: 10_000 });
          const why = new Error("give up before starting");
          await assert.rejects(a.writeAll(new Uint8Array(SIZE).fill(0x42), { signal: AbortSignal.abort(why) }), (e) => e === why);
          await a.writeAll(new Uint8Array(SIZE).fill(0x43), { timeout: 10_000 });
          await a.shutdown();
          const got = await reader.result();
          assert.equal(got.length, 2 * SIZE, "nothing beyond the two completed writes");
          assertFirstAndThird(got, SIZE);
        } finally {
          await a.close();
          await b.close();
        }
      }));

    test("blocking: for await over a stream yields what the peer sends and ends without an error when the stream is closed between reads", () =>
      ctx.run(async () => {
        const [a, b] = UnixStream.pair({ loop: ctx.loop });
        try {
          const writer = ctx.peer(async ({ raw, bytes, whenWaiting }, { fd }) => {
            await whenWaiting();
            raw.write(fd, bytes("one"));
          }, { fd: b.fd });
          const chunks = [];
          for await (const chunk of a) {
            chunks.push(text(chunk));
            await a.close();
          }
          await writer.result();
          assert.deepEqual(chunks, ["one"]);
        } finally {
          await a.close();
          await b.close();
        }
      }));
  }

  pendingTest("concurrent writeAll() calls are written one after the other; one aborted while waiting writes nothing", () =>
    ctx.run(async () => {
      const [a, b] = UnixStream.pair({ loop: ctx.loop });
      try {
        const SIZE = 2 * 1024 * 1024; // several socket buffers, so the writes must wait
        const w1 = a.writeAll(new Uint8Array(SIZE).fill(0x41));
        const ac = new AbortController();
        const w2 = a.writeAll(new Uint8Array(SIZE).fill(0x42), { signal: ac.signal });
        const w3 = a.writeAll(new Uint8Array(SIZE).fill(0x43));
        const why = new Error("give up waiting");
        ac.abort(why);
        await assert.rejects(w2, (e) => e === why);
        const reading = readExactly(b, 2 * SIZE, { timeout: 30_000 });
        await Promise.all([w1, w3]);
        await a.shutdown();
        const got = await reading;
        assert.equal(await b.read(new Uint8Array(1)), 0, "nothing beyond the two completed writes");
        assertFirstAndThird(got, SIZE);
      } finally {
        await a.close();
        await b.close();
      }
    }));

  pendingTest("for await over a stream ends without an error when the stream is closed while it waits", () =>
    ctx.run(async () => {
      const [a, b] = UnixStream.pair({ loop: ctx.loop });
      try {
        const chunks = [];
        const iterating = (async () => {
          for await (const chunk of a) chunks.push(text(chunk));
        })();
        await b.writeAll(bytes("one"));
        await ctx.loop.sleep(10);
        await a.close();
        await iterating;
        assert.deepEqual(chunks, ["one"]);
      } finally {
        await a.close();
        await b.close();
      }
    }));

  test("UnixStream.sendFds() passes a pipe's write end that then works in the receiver", () =>
    ctx.run(async () => {
      const [r, w] = Pipe.create({ loop: ctx.loop });
      const [a, b] = UnixStream.pair({ loop: ctx.loop });
      let passed = null;
      try {
        assert.equal(await a.sendFds([w.fd], bytes("fd!")), 3);
        const buf = new Uint8Array(16);
        const got = await b.receiveFds(buf, 4, { timeout: 5000 });
        assert.equal(got.bytes, 3);
        assert.equal(text(buf.subarray(0, 3)), "fd!");
        assert.equal(got.fds.length, 1);
        assert.equal(got.truncated, false);
        assert.notEqual(got.fds[0], w.fd, "the receiver gets a new descriptor");
        // Close our write end: from now on the pipe has only the passed one.
        await w.close();
        passed = FileDescriptor.from(got.fds[0], { loop: ctx.loop });
        await passed.writeAll(bytes("through the passed fd"));
        await passed.close();
        passed = null;
        assert.equal(text(await readToEnd(r)), "through the passed fd", "and EOF once the passed end is closed");
      } finally {
        await passed?.close();
        await w.close();
        await r.close();
        await a.close();
        await b.close();
      }
    }));

  test("UnixStream.receiveFds(buf, maxFds) returns at most maxFds fds and reports truncation", () =>
    ctx.run(async () => {
      const pipes = [0, 1, 2].map(() => Pipe.create({ loop: ctx.loop }));
      const [a, b] = UnixStream.pair({ loop: ctx.loop });
      const received = [];
      try {
        for (const maxFds of [1, 2]) {
          await a.sendFds(pipes.map(([, w]) => w.fd), bytes("three"));
          const got = await b.receiveFds(new Uint8Array(8), maxFds, { timeout: 5000 });
          received.push(...got.fds);
          assert.equal(got.bytes, 5);
          assert.equal(got.fds.length, maxFds, `asked for at most ${maxFds} fds, got ${got.fds.length}`);
          assert.equal(got.truncated, true);
        }
      } finally {
        for (const fd of received) await FileDescriptor.from(fd, { loop: ctx.loop }).close();
        for (const [r, w] of pipes) {
          await r.close();
          await w.close();
        }
        await a.close();
        await b.close();
      }
    }));

  test("UnixDatagram bound to paths: sendTo/receiveFrom report the sender's path", () =>
    ctx.run(async () => {
      const px = socketPath();
      const py = socketPath();
      const x = await UnixDatagram.bind({ path: px, loop: ctx.loop });
      const y = await UnixDatagram.bind({ path: py, loop: ctx.loop });
      try {
        assert.deepEqual(x.address, { family: "unix", path: px });
        assert.equal(await x.sendTo(bytes("dgram"), py), 5);
        const buf = new Uint8Array(16);
        const got = await y.receiveFrom(buf, { timeout: 5000 });
        assert.equal(got.bytes, 5);
        assert.equal(text(buf.subarray(0, 5)), "dgram");
        assert.deepEqual(got.address, { family: "unix", path: px });
        await y.sendTo(bytes("back"), got.address);
        const back = await x.receiveFrom(buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, back.bytes)), "back");
        assert.deepEqual(back.address, { family: "unix", path: py });
      } finally {
        await x.close();
        await y.close();
      }
      assert.equal(existsSync(px), false);
      assert.equal(existsSync(py), false);
    }));

  test("UnixDatagram on abstract names, and from an unbound socket (unnamed source)", () =>
    ctx.run(async () => {
      const name = abstractName();
      const y = await UnixDatagram.bind({ path: name, loop: ctx.loop });
      const u = UnixDatagram.unbound({ loop: ctx.loop });
      try {
        assert.deepEqual(y.address, { family: "unix", path: name });
        await u.sendTo(bytes("anon"), { family: "unix", path: name });
        const buf = new Uint8Array(16);
        const got = await y.receiveFrom(buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, got.bytes)), "anon");
        assert.equal(got.address.family, "unix");
        // An unbound sender is unnamed (Linux may autobind it to an abstract name instead).
        assert.ok(got.address.path === "" || got.address.path.startsWith("\0"), `unexpected source ${JSON.stringify(got.address.path)}`);
        // connect() then send() on the unbound socket.
        await u.connect(name);
        assert.equal(u.connected, true);
        await u.send(bytes("connected"));
        const next = await y.receiveFrom(buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, next.bytes)), "connected");
      } finally {
        await u.close();
        await y.close();
      }
    }));

  test("UnixDatagram.pair() round trip, empty datagrams included; receive() returns the size", () =>
    ctx.run(async () => {
      const [x, y] = UnixDatagram.pair({ loop: ctx.loop });
      try {
        assert.equal(x.connected, true);
        assert.equal(await x.send(bytes("one")), 3);
        assert.equal(await x.send(new Uint8Array(0)), 0);
        assert.equal(await x.send(bytes("three")), 5);
        const buf = new Uint8Array(16);
        assert.equal(await y.receive(buf, { timeout: 5000 }), 3);
        assert.equal(text(buf.subarray(0, 3)), "one");
        assert.equal(await y.receive(buf, { timeout: 5000 }), 0);
        assert.equal(await y.receive(buf, { timeout: 5000 }), 5);
        assert.equal(text(buf.subarray(0, 5)), "three");
        await y.send(bytes("reply"));
        assert.equal(await x.receive(buf, { timeout: 5000 }), 5);
      } finally {
        await x.close();
        await y.close();
      }
    }));

  test("UnixDatagram.sendFds() passes an fd with a datagram", () =>
    ctx.run(async () => {
      const [r, w] = Pipe.create({ loop: ctx.loop });
      const [x, y] = UnixDatagram.pair({ loop: ctx.loop });
      try {
        await x.sendFds([w.fd], bytes("fd"));
        const got = await y.receiveFds(new Uint8Array(8), 2, { timeout: 5000 });
        assert.equal(got.bytes, 2);
        assert.equal(got.fds.length, 1);
        await w.close();
        const passed = FileDescriptor.from(got.fds[0], { loop: ctx.loop });
        await passed.writeAll(bytes("dgram fd"));
        await passed.close();
        assert.equal(text(await readToEnd(r)), "dgram fd");
      } finally {
        await w.close();
        await r.close();
        await x.close();
        await y.close();
      }
    }));
});

test("unix socket paths: empty is a TypeError, too long is a RangeError", async () => {
  await assert.rejects(UnixListener.bind({ path: "" }), TypeError);
  await assert.rejects(UnixListener.bind({ path: `/tmp/${"x".repeat(200)}` }), RangeError);
  await assert.rejects(UnixDatagram.bind({ path: `/tmp/${"x".repeat(200)}` }), RangeError);
  await assert.rejects(UnixStream.connect({ path: `/tmp/${"x".repeat(200)}` }), RangeError);
});
