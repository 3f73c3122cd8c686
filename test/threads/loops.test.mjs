/**
 * One loop per thread: spawnLoops() and loopThread() (src/threads/). Each test starts Workers
 * running a fixture module (fixtures/), each with its own loop in owner mode, and talks to
 * them over loopback with node:net clients from this thread. On every backend but "blocking"
 * (whose operations hold their thread, so one thread serves one connection at a time): the
 * Workers take the backend from EVLOOP_BACKEND, which they copy from this process's env.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { availableBackends, createLoop, defaultLoop, LoopThreadError, spawnLoops, TcpListener, TcpStream } from "evloop";
import { openFdCount, randomBytes, sha256, testBackends } from "../helpers.mjs";

const fixture = (name) => new URL(`./fixtures/${name}`, import.meta.url);
const TEST_TIMEOUT = 60_000;
const backends = testBackends().filter((b) => b !== "blocking");

/** Runs `fn` with EVLOOP_BACKEND set to `backend` (Workers copy the env when they start). */
async function withBackend(backend, fn) {
  const saved = process.env.EVLOOP_BACKEND;
  process.env.EVLOOP_BACKEND = backend;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.EVLOOP_BACKEND;
    else process.env.EVLOOP_BACKEND = saved;
  }
}

/**
 * A free port that several listeners can share: bound here with reusePort, so the threads can
 * bind it too; `release()` closes this thread's listener once they have (before any client
 * connects, so none of the connections comes here).
 */
async function sharedPort() {
  const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, reusePort: true });
  return { port: listener.address.port, release: () => listener.close() };
}

/**
 * Connects to `port`, sends `payload` (in pieces, ending with FIN) and resolves with the
 * SHA-256 of everything received until the server closes, and its length.
 */
function exchange(port, payload, { half = true } = {}) {
  return new Promise((resolve, reject) => {
    const hash = sha256();
    let received = 0;
    const socket = connect({ host: "127.0.0.1", port }, async () => {
      for (let at = 0; at < payload.length; at += 16 * 1024) {
        if (!socket.write(payload.subarray(at, at + 16 * 1024))) await new Promise((r) => socket.once("drain", r));
      }
      if (half) socket.end();
    });
    socket.on("data", (chunk) => {
      hash.update(chunk);
      received += chunk.length;
    });
    socket.on("error", reject);
    socket.on("close", () => resolve({ digest: hash.digest("hex"), received }));
  });
}

const digestOf = (bytes) => sha256().update(bytes).digest("hex");

/**
 * The process's fd count once it is back to `expected`, or after 5 s if it never is: a
 * terminated Worker's own fds (its libuv loop's) may close a little after its 'exit' event.
 */
async function fdCountSettling(expected) {
  for (let i = 0; i < 100 && openFdCount() !== expected; i++) await new Promise((r) => setTimeout(r, 50));
  return openFdCount();
}

after(() => defaultLoop().dispose());

describe("spawnLoops", () => {
  for (const backend of backends) {
    test(`spawnLoops(2) on ${backend}: a reusePort echo server, every byte of 48 clients echoed`, { timeout: TEST_TIMEOUT }, async () => {
      await withBackend(backend, async () => {
        const { port, release } = await sharedPort();
        const threads = await spawnLoops(2, fixture("echo-thread.mjs"), { workerData: { port } });
        const counts = threads.workers.map((w) => new Promise((resolve) => w.once("message", resolve)));
        await release();
        try {
          const payloads = Array.from({ length: 48 }, (_, i) => randomBytes(4096 + i * 1531));
          const results = await Promise.all(payloads.map((p) => exchange(port, p)));
          results.forEach((r, i) => {
            assert.equal(r.received, payloads[i].length, `client ${i} got ${r.received} of ${payloads[i].length} bytes back`);
            assert.equal(r.digest, digestOf(payloads[i]), `client ${i}'s echo differs`);
          });
        } finally {
          await threads.close();
        }
        const accepted = (await Promise.all(counts)).sort((a, b) => a.index - b.index).map((c) => c.accepted);
        assert.equal(accepted[0] + accepted[1], 48);
        // 48 connections hashed to one of two listeners: all on one would be a 1 in 2^47 chance.
        assert.ok(accepted[0] > 0 && accepted[1] > 0, `the kernel shared no connections: ${accepted}`);
      });
    });

    test(`loopThread().handOff on ${backend}: thread 0 reads the header, thread 1 finishes 24 transfers, no byte lost`, { timeout: TEST_TIMEOUT }, async () => {
      await withBackend(backend, async () => {
        const { port, release } = await sharedPort();
        await release();
        const threads = await spawnLoops(2, fixture("hand-off-thread.mjs"), { workerData: { port } });
        try {
          const payloads = Array.from({ length: 24 }, (_, i) => randomBytes(64 * 1024 + i * 9973));
          const results = await Promise.all(
            payloads.map((p) => {
              const framed = new Uint8Array(8 + p.length);
              new DataView(framed.buffer).setBigUint64(0, BigInt(p.length));
              framed.set(p, 8);
              // The client keeps its side open: thread 1 closes once it echoed everything.
              return exchange(port, framed, { half: false }).then((r) => ({ ...r, expected: p }));
            }),
          );
          results.forEach((r, i) => {
            assert.equal(r.received, r.expected.length, `transfer ${i}: ${r.received} of ${r.expected.length} bytes echoed`);
            assert.equal(r.digest, digestOf(r.expected), `transfer ${i}'s echo differs`);
          });
        } finally {
          await threads.close();
        }
      });
    });
  }

  test("close() with connections open: every thread exits and no fd is left", { timeout: TEST_TIMEOUT }, async () => {
    defaultLoop();
    const { port, release } = await sharedPort();
    const before = openFdCount() - 1; // without the port's listener, closed below
    const threads = await spawnLoops(2, fixture("echo-thread.mjs"), { workerData: { port } });
    await release();
    const exits = threads.workers.map((w) => new Promise((resolve) => w.once("exit", resolve)));
    // Ten clients whose connections stay open (no FIN), each echoed once so it was accepted.
    const clients = await Promise.all(
      Array.from({ length: 10 }, () =>
        new Promise((resolve, reject) => {
          const socket = connect({ host: "127.0.0.1", port }, () => socket.write("ping"));
          socket.once("data", () => resolve(socket));
          socket.once("error", reject);
        }),
      ),
    );
    const ended = clients.map((s) => new Promise((resolve) => s.once("close", resolve)));
    await threads.close();
    assert.deepEqual(await Promise.all(exits), [0, 0], "a thread exited with a non-zero code");
    // The threads closed the connections: each client sees its end.
    await Promise.all(ended);
    assert.equal(await fdCountSettling(before), before, "fds left open after close()");
  });

  test("a module that throws while it starts: spawnLoops rejects naming the thread", { timeout: TEST_TIMEOUT }, async () => {
    const before = openFdCount();
    await assert.rejects(spawnLoops(2, fixture("failing-thread.mjs"), { workerData: { when: "start" } }), (e) => {
      assert.ok(e instanceof LoopThreadError, `not a LoopThreadError: ${e}`);
      assert.equal(e.index, 1);
      assert.match(e.message, /loop thread 1: failed before it was ready: boom at start/);
      assert.equal(e.cause?.message, "boom at start");
      return true;
    });
    assert.equal(await fdCountSettling(before), before, "fds left open by the failed start");
  });

  test("threads that throw when stopped: close() rejects with each failure", { timeout: TEST_TIMEOUT }, async () => {
    const reported = [];
    const threads = await spawnLoops(2, fixture("failing-thread.mjs"), { workerData: { when: "stop" }, onError: (e) => reported.push(e) });
    await assert.rejects(threads.close(), (e) => {
      assert.ok(e instanceof AggregateError, `not an AggregateError: ${e}`);
      const messages = e.errors.map((x) => x.message).sort();
      assert.deepEqual(messages, ["loop thread 0: failed: boom at stop in thread 0", "loop thread 1: failed: boom at stop in thread 1"]);
      return true;
    });
    // Failures during close() are close()'s to report, not onError's.
    assert.equal(reported.length, 0);
  });

  test("bad arguments throw before any thread starts", async () => {
    await assert.rejects(spawnLoops(0, fixture("echo-thread.mjs")), RangeError);
    await assert.rejects(spawnLoops(1.5, fixture("echo-thread.mjs")), RangeError);
    await assert.rejects(spawnLoops(1, ""), TypeError);
    await assert.rejects(spawnLoops(1, fixture("echo-thread.mjs"), { stopTimeout: -1 }), RangeError);
  });
});

test("availableBackends() leaves something to test threads on", () => {
  assert.ok(availableBackends().some((b) => b !== "blocking"));
});

describe("TcpStream.release and TcpStream.from", () => {
  for (const backend of backends) {
    test(`on ${backend}: release() is refused while a read waits; the fd moves to another loop with its unread bytes`, { timeout: TEST_TIMEOUT }, async () => {
      const first = createLoop({ backend });
      const second = createLoop({ backend });
      try {
        const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop: first });
        const client = await TcpStream.connect({ host: "127.0.0.1", port: listener.address.port, loop: first });
        const server = await listener.accept();
        await listener.close();
        const buf = new Uint8Array(4);
        const reading = server.read(buf);
        assert.throws(() => server.release(), { code: "EBUSY" });
        await client.writeAll(new TextEncoder().encode("headtail"));
        assert.equal(await reading, 4);
        const fd = server.release();
        assert.equal(server.closed, true);
        const adopted = TcpStream.from(fd, { loop: second });
        const rest = new Uint8Array(16);
        const n = await adopted.read(rest);
        assert.equal(new TextDecoder().decode(rest.subarray(0, n)), "tail");
        await adopted.writeAll(new TextEncoder().encode("back"));
        assert.equal(await client.read(rest), 4);
        await adopted.close();
        await client.close();
      } finally {
        first.dispose();
        second.dispose();
      }
    });
  }

  if (availableBackends().includes("io_uring")) {
    test("on io_uring with multishot receive: release() is refused, since the loop receives ahead of the reads", { timeout: TEST_TIMEOUT }, async () => {
      const loop = createLoop({ backend: "io_uring", ioUring: { multishotRecv: true } });
      try {
        const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
        const client = await TcpStream.connect({ host: "127.0.0.1", port: listener.address.port, loop });
        const server = await listener.accept();
        await listener.close();
        await client.writeAll(new Uint8Array([1, 2]));
        assert.equal(await server.read(new Uint8Array(1)), 1);
        assert.throws(() => server.release(), { code: "EBUSY" });
        assert.equal(server.closed, false);
        await server.close();
        await client.close();
      } finally {
        loop.dispose();
      }
    });
  }

  test("TcpStream.from refuses what is not an open TCP socket", () => {
    assert.throws(() => TcpStream.from(-1), TypeError);
    assert.throws(() => TcpStream.from(1 << 30), { code: "EBADF" });
  });
});
