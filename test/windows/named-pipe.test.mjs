/**
 * Named pipes on the IOCP loop: NamedPipeServer and NamedPipe. 50 clients at once on one name;
 * 32 MiB each way checked by SHA-256; a client that goes away while the server reads (EOF or
 * EPIPE, nothing hangs); an aborted accept (its instance still serves the next one); message
 * mode keeps message boundaries (messages larger than a read, empty messages); a full server
 * (maxInstances) makes clients wait, and a timeout ends the wait; bad names and missing servers
 * fail clearly; and no handle is left open afterwards. Skipped off Windows (`npm run
 * test:windows` runs it under Wine); test/sys/named-pipe.test.mjs checks names and the
 * factories' refusal there.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createLoop, NamedPipe, NamedPipeServer, SystemError, TimeoutError } from "evloop";

const WINDOWS = process.platform === "win32";

/** A fresh pipe name per test (and process). */
let serial = 0;
const pipeName = (what) => `\\\\.\\pipe\\evloop-test-${process.pid}-${what}-${serial++}`;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** `n` bytes of a repeatable pattern seeded by `seed`. */
function pattern(n, seed) {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Reads exactly `n` bytes of `stream`, hashing them; resolves with [bytes, sha256 hex]. */
async function drain(stream, n, timeout) {
  const hash = createHash("sha256");
  const buf = new Uint8Array(256 * 1024);
  let total = 0;
  while (total < n) {
    const got = await stream.read(buf.subarray(0, Math.min(buf.length, n - total)), { timeout });
    if (got === 0) break;
    hash.update(buf.subarray(0, got));
    total += got;
  }
  return [total, hash.digest("hex")];
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** Whether `e` is a SystemError with `code`. */
const hasCode = (code) => (e) => e instanceof SystemError && e.code === code;

describe("named pipes", { skip: !WINDOWS && "Windows only (npm run test:windows)" }, () => {
  let loop;
  let handlesAtStart;
  let nextHandleAtStart;
  let pipes;
  let sys;

  /**
   * The handle number the next kernel object gets. Wine hands out the lowest free handle (and
   * its GetProcessHandleCount says 0), so while nothing leaks this stays the same.
   */
  function nextHandle() {
    const h = pipes.createNamedPipe(pipes.checkPipeName(pipeName("probe")), { first: true, message: false, maxInstances: 1, inBufferSize: 0, outBufferSize: 0 });
    pipes.closePipe(h);
    return h;
  }

  before(async () => {
    pipes = await import("../../dist/sys/windows/pipe.js");
    sys = await import("../../dist/sys/windows/socket.js");
    loop = createLoop({ backend: "iocp" });
    // Warm up what binds or allocates once per process (the loop's port, kernel32's tables, and
    // Winsock's first sockets, which a blocking loop's waker makes: Wine keeps a handle for them).
    // A round trip also starts guest mode's helper thread (a Worker, with handles of its own).
    const warmName = pipeName("warm");
    const warm = NamedPipeServer.create({ name: warmName, loop });
    const accepting = warm.accept({ timeout: 10_000 });
    const client = await NamedPipe.connect({ name: warmName, loop, timeout: 10_000 });
    const conn = await accepting;
    await client.writeAll(enc.encode("warm"));
    await conn.read(new Uint8Array(4), { timeout: 10_000 });
    await Promise.all([client.close(), conn.close(), warm.close()]);
    createLoop({ backend: "blocking" }).dispose();
    await loop.sleep(100);
    handlesAtStart = sys.processHandleCount();
    nextHandleAtStart = nextHandle();
  });

  after(() => {
    loop?.dispose();
  });

  test("bad names are TypeError/RangeError before anything starts; no server is ENOENT; a taken name EADDRINUSE", async () => {
    for (const name of ["pipe-name", "\\\\.\\pipe\\", "\\\\server\\pipe\\x", "//./pipe/x", 42, undefined]) {
      assert.throws(() => NamedPipeServer.create({ name, loop }), TypeError, `create(${String(name)})`);
      await assert.rejects(NamedPipe.connect({ name, loop }), TypeError, `connect(${String(name)})`);
    }
    const long = `\\\\.\\pipe\\${"x".repeat(300)}`;
    assert.throws(() => NamedPipeServer.create({ name: long, loop }), RangeError);
    await assert.rejects(NamedPipe.connect({ name: long, loop }), RangeError);
    assert.throws(() => NamedPipeServer.create({ name: pipeName("bad"), maxInstances: 0, loop }), RangeError);
    assert.throws(() => NamedPipeServer.create({ name: pipeName("bad"), maxInstances: 256, loop }), RangeError);
    assert.throws(() => NamedPipeServer.create({ name: pipeName("bad"), messageMode: "yes", loop }), TypeError);

    const missing = pipeName("missing");
    await assert.rejects(NamedPipe.connect({ name: missing, loop, timeout: 1000 }), (e) => hasCode("ENOENT")(e) && e.message.includes(missing));

    const name = pipeName("taken");
    const server = NamedPipeServer.create({ name, loop });
    try {
      assert.throws(() => NamedPipeServer.create({ name, loop }), hasCode("EADDRINUSE"));
    } finally {
      await server.close();
    }
    await assert.rejects(server.accept(), hasCode("EBADF"));
    // The blocking backend runs no overlapped calls: refused at once.
    const blocking = createLoop({ backend: "blocking" });
    try {
      assert.throws(() => NamedPipeServer.create({ name: pipeName("blocking"), loop: blocking }), hasCode("EOPNOTSUPP"));
    } finally {
      blocking.dispose();
    }
  });

  test("50 clients at once on one name, each echoed its own bytes", async () => {
    const CLIENTS = 50;
    const name = pipeName("fifty");
    const server = NamedPipeServer.create({ name, loop });
    const served = [];
    const serving = (async () => {
      let n = 0;
      for await (const conn of server) {
        served.push(
          (async () => {
            try {
              for await (const chunk of conn.chunks({ timeout: 30_000 })) await conn.writeAll(chunk, { timeout: 30_000 });
            } finally {
              await conn.close();
            }
          })(),
        );
        if (++n === CLIENTS) break;
      }
    })();
    try {
      const results = await Promise.all(
        Array.from({ length: CLIENTS }, async (_, i) => {
          const client = await NamedPipe.connect({ name, loop, timeout: 30_000 });
          try {
            const message = enc.encode(`client ${i} `.repeat(20));
            await client.writeAll(message, { timeout: 30_000 });
            const got = new Uint8Array(message.length);
            for (let at = 0; at < got.length; ) {
              const n = await client.read(got.subarray(at), { timeout: 30_000 });
              assert.ok(n > 0, `client ${i}: early end of stream at ${at}`);
              at += n;
            }
            return dec.decode(got) === dec.decode(message);
          } finally {
            await client.close();
          }
        }),
      );
      assert.equal(results.filter(Boolean).length, CLIENTS);
      await serving;
      await Promise.all(served);
      assert.equal(served.length, CLIENTS);
    } finally {
      await server.close();
    }
  });

  test("32 MiB each way at once, checked by SHA-256", async () => {
    const SIZE = 32 * 1024 * 1024;
    const name = pipeName("big");
    const server = NamedPipeServer.create({ name, loop });
    try {
      const accepting = server.accept({ timeout: 30_000 });
      const client = await NamedPipe.connect({ name, loop, timeout: 30_000 });
      const conn = await accepting;
      const up = pattern(SIZE, 1);
      const down = pattern(SIZE, 2);
      const [fromClient, fromServer] = await Promise.all([
        drain(conn, SIZE, 60_000),
        drain(client, SIZE, 60_000),
        client.writeAll(up, { timeout: 120_000 }),
        conn.writeAll(down, { timeout: 120_000 }),
      ]);
      assert.deepEqual(fromClient, [SIZE, sha256(up)]);
      assert.deepEqual(fromServer, [SIZE, sha256(down)]);
      await client.close();
      assert.equal(await conn.read(new Uint8Array(1), { timeout: 5000 }), 0);
      await conn.close();
    } finally {
      await server.close();
    }
  });

  test("a client that goes away while the server reads: the read ends (EOF or EPIPE), nothing hangs", async () => {
    const name = pipeName("gone");
    const server = NamedPipeServer.create({ name, loop });
    const opened = [];
    try {
      const accepting = server.accept({ timeout: 10_000 });
      const client = await NamedPipe.connect({ name, loop, timeout: 10_000 });
      const conn = await accepting;
      opened.push(conn, client);
      await client.writeAll(enc.encode("partial"));
      const buf = new Uint8Array(64);
      assert.equal(dec.decode(buf.subarray(0, await conn.read(buf, { timeout: 10_000 }))), "partial");
      const reading = conn.read(buf, { timeout: 10_000 });
      await loop.sleep(20);
      await client.close();
      const ended = await reading.then((n) => n, (e) => e);
      assert.ok(ended === 0 || hasCode("EPIPE")(ended), `the read ended with ${ended}`);
      // Later reads say the same; a write is EPIPE.
      assert.equal(await conn.read(buf, { timeout: 5000 }), 0);
      await assert.rejects(conn.write(enc.encode("x"), { timeout: 5000 }), hasCode("EPIPE"));
    } finally {
      for (const p of opened) await p.close();
      await server.close();
    }
  });

  test("an aborted accept rejects with the reason, and its instance serves the next accept", async () => {
    const name = pipeName("abort");
    const server = NamedPipeServer.create({ name, loop, maxInstances: 1 });
    const opened = [];
    try {
      const controller = new AbortController();
      const accepting = server.accept({ signal: controller.signal });
      await loop.sleep(20);
      controller.abort(new Error("stop accepting"));
      await assert.rejects(accepting, /stop accepting/);
      await assert.rejects(server.accept({ timeout: 30 }), TimeoutError);
      // maxInstances 1: the next accept can only work on the instance the aborted one used.
      const again = server.accept({ timeout: 10_000 });
      const client = await NamedPipe.connect({ name, loop, timeout: 10_000 });
      const conn = await again;
      opened.push(conn, client);
      await client.writeAll(enc.encode("hi"));
      const buf = new Uint8Array(2);
      assert.equal(await conn.read(buf, { timeout: 5000 }), 2);
      // close() ends a waiting accept with a ClosedError (on a new instance: the one there was
      // is free again once its pipe is closed).
      await conn.close();
      await client.close();
      const waiting = server.accept();
      await loop.sleep(10);
      await server.close();
      await assert.rejects(waiting, hasCode("EBADF"));
    } finally {
      for (const p of opened) await p.close();
      await server.close();
    }
  });

  test("a full server (maxInstances) makes a client wait without blocking; a timeout ends the wait", async () => {
    const name = pipeName("busy");
    const server = NamedPipeServer.create({ name, loop, maxInstances: 1 });
    const opened = [];
    try {
      const first = server.accept({ timeout: 10_000 });
      const c1 = await NamedPipe.connect({ name, loop, timeout: 10_000 });
      const s1 = await first;
      // The one instance is taken: the next client waits, and the thread keeps running timers.
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      await assert.rejects(NamedPipe.connect({ name, loop, timeout: 150 }), (e) => e instanceof TimeoutError && e.code === "ETIMEDOUT");
      clearInterval(timer);
      assert.ok(ticks > 3, `timers ran while connect waited (${ticks})`);
      await assert.rejects(server.accept(), hasCode("EBUSY"));
      // One waits; the instance is freed and accepted again: it gets in.
      const waiting = NamedPipe.connect({ name, loop, timeout: 10_000 });
      await loop.sleep(30);
      await s1.close();
      await c1.close();
      const second = await server.accept({ timeout: 10_000 });
      const c2 = await waiting;
      const s2 = second;
      opened.push(c2, s2);
      await c2.writeAll(enc.encode("in"));
      assert.equal(await s2.read(new Uint8Array(2), { timeout: 5000 }), 2);
    } finally {
      for (const p of opened) await p.close();
      await server.close();
    }
  });

  test("message mode keeps message boundaries, also for messages larger than a read and empty ones", async () => {
    const name = pipeName("messages");
    const server = NamedPipeServer.create({ name, loop, messageMode: true, inBufferSize: 4096, outBufferSize: 4096 });
    const opened = [];
    try {
      assert.equal(server.messageMode, true);
      const accepting = server.accept({ timeout: 10_000 });
      const client = await NamedPipe.connect({ name, loop, timeout: 10_000 });
      const conn = await accepting;
      opened.push(conn, client);
      assert.equal(client.messageMode, true, "the client follows the server's mode");
      assert.equal(conn.messageMode, true);
      const sizes = [1, 100, 0, 70_000, 5, 200_000, 3];
      const messages = sizes.map((n, i) => pattern(n, 10 + i));
      // Written before anything is read: the reader must not merge them.
      const writing = Promise.all(messages.map((m) => client.writeMessage(m, { timeout: 30_000 })));
      for (const [i, m] of messages.entries()) {
        const got = await conn.readMessage({ timeout: 30_000 });
        assert.ok(got !== null, `message ${i}: early end of stream`);
        assert.equal(got.byteLength, m.byteLength, `message ${i}'s length`);
        assert.equal(sha256(got), sha256(m), `message ${i}'s bytes`);
      }
      await writing;
      await conn.writeMessage(enc.encode("whole"));
      assert.equal(dec.decode(await client.readMessage({ timeout: 5000 })), "whole");
      await client.close();
      assert.equal(await conn.readMessage({ timeout: 5000 }), null, "end of stream after the client closed");
      await conn.close();
      // readMessage is for message pipes.
      const byteName = pipeName("bytes");
      const bytes = NamedPipeServer.create({ name: byteName, loop });
      const b = await NamedPipe.connect({ name: byteName, loop, timeout: 5000 });
      await assert.rejects(b.readMessage(), hasCode("EINVAL"));
      await b.close();
      await bytes.close();
    } finally {
      for (const p of opened) await p.close();
      await server.close();
    }
  });

  test(
    "message mode: read() with a buffer smaller than the message returns a part of it, the rest with the next read",
    async () => {
      const name = pipeName("parts");
      const server = NamedPipeServer.create({ name, loop, messageMode: true });
      const opened = [];
      try {
        const accepting = server.accept({ timeout: 10_000 });
        opened.push(await NamedPipe.connect({ name, loop, timeout: 10_000 }));
        opened.push(await accepting);
        const [client, conn] = opened;
        await conn.writeMessage(enc.encode("hello, message"));
        const part = new Uint8Array(5);
        assert.equal(await client.read(part, { timeout: 5000 }), 5);
        assert.equal(dec.decode(part), "hello");
        const rest = new Uint8Array(64);
        assert.equal(dec.decode(rest.subarray(0, await client.read(rest, { timeout: 5000 }))), ", message");
      } finally {
        for (const p of opened) await p.close();
        await server.close();
      }
    },
  );

  test("no handle is left open after the named-pipe tests", () => {
    assert.equal(sys.processHandleCount(), handlesAtStart);
    assert.equal(nextHandle(), nextHandleAtStart);
  });
});
