/**
 * The blocking backend: every operation blocks the thread until it completes, so a client and a
 * server cannot run concurrently on one thread. These tests use it the only way it can be used:
 * one operation at a time, each of which can complete on its own.
 *
 * Waits are bounded: every operation that could block has data ready or a timeout.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import {
  availableBackends, createLoop, Pipe, runMain, SystemError, TcpListener, TcpStream, TimeoutError, UdpSocket, UnixStream,
} from "evloop";
import { bytes, distIndexUrl, raw, text, track } from "../helpers.mjs";

const selected = process.env.EVLOOP_TEST_BACKENDS?.split(",").map((s) => s.trim());
const skip = !availableBackends().includes("blocking")
  ? "the blocking backend is unavailable"
  : selected && !selected.includes("blocking")
    ? "not selected by EVLOOP_TEST_BACKENDS"
    : false;

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe("blocking backend", { skip }, () => {
  test("createLoop({ backend: 'blocking' }) has backend 'blocking'", () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    try {
      assert.equal(loop.backend, "blocking");
      assert.equal(loop.mode, "owner");
    } finally {
      loop.dispose();
    }
  });

  test("pipe: write then read, then EOF once the writer is closed", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    const [r, w] = Pipe.create({ loop });
    try {
      await w.writeAll(bytes("through the pipe"));
      await w.close();
      const buf = new Uint8Array(64);
      const n = await r.read(buf);
      assert.equal(text(buf.subarray(0, n)), "through the pipe");
      assert.equal(await r.read(buf), 0);
    } finally {
      await r.close();
      await w.close();
      loop.dispose();
    }
  });

  test("readBorrowed: lends what is there (at most maxBytes), empty bytes at EOF, a timeout when nothing comes", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    const [r, w] = Pipe.create({ loop });
    try {
      await w.writeAll(bytes("borrowed bytes"));
      const first = await r.readBorrowed({ maxBytes: 8 });
      assert.equal(text(first.bytes), "borrowed");
      first.release();
      const rest = await r.readBorrowed();
      assert.equal(text(rest.bytes), " bytes");
      rest.release();
      await assert.rejects(r.readBorrowed({ timeout: 10 }), TimeoutError);
      assert.throws(() => loop.readBorrowed(r.fd, { maxBytes: 70_000 }), RangeError);
      await w.close();
      const eof = await r.readBorrowed();
      assert.equal(eof.bytes.byteLength, 0);
      eof.release();
    } finally {
      await r.close();
      await w.close();
      loop.dispose();
    }
  });

  test("UnixStream.pair(): round trip in both directions", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    const [a, b] = UnixStream.pair({ loop });
    try {
      await a.writeAll(bytes("ping"));
      const buf = new Uint8Array(8);
      assert.equal(text(buf.subarray(0, await b.read(buf))), "ping");
      await b.writeAll(bytes("pong"));
      assert.equal(text(buf.subarray(0, await a.read(buf))), "pong");
    } finally {
      await a.close();
      await b.close();
      loop.dispose();
    }
  });

  test("TCP: connect, then accept, then a round trip, one step at a time", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
    try {
      // The kernel completes the handshake into the accept queue without an accept running.
      const c = await TcpStream.connect({ host: "127.0.0.1", port: l.address.port, timeout: 5000, loop });
      const s = await l.accept({ timeout: 5000 });
      try {
        await c.writeAll(bytes("hello"));
        const buf = new Uint8Array(8);
        assert.equal(text(buf.subarray(0, await s.read(buf, { timeout: 5000 }))), "hello");
      } finally {
        await c.close();
        await s.close();
      }
    } finally {
      await l.close();
      loop.dispose();
    }
  });

  test("UDP: sendTo then receiveFrom", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    const a = await UdpSocket.bind({ host: "127.0.0.1", port: 0, loop });
    const b = await UdpSocket.bind({ host: "127.0.0.1", port: 0, loop });
    try {
      await a.sendTo(bytes("dgram"), { address: "127.0.0.1", port: b.address.port });
      const buf = new Uint8Array(8);
      const got = await b.receiveFrom(buf, { timeout: 5000 });
      assert.equal(text(buf.subarray(0, got.bytes)), "dgram");
      assert.deepEqual(got.address, a.address);
    } finally {
      await a.close();
      await b.close();
      loop.dispose();
    }
  });

  test("a read that would block, with a timeout, rejects with TimeoutError ETIMEDOUT", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    const [a, b] = raw.socketPair();
    try {
      await assert.rejects(loop.read(a, new Uint8Array(4), { timeout: 30 }), (e) => {
        assert.ok(e instanceof TimeoutError, `expected a TimeoutError, got ${e}`);
        assert.equal(e.code, "ETIMEDOUT");
        assert.equal(e.syscall, "read");
        return true;
      });
      const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
      try {
        await assert.rejects(l.accept({ timeout: 30 }), TimeoutError);
      } finally {
        await l.close();
      }
    } finally {
      await loop.close(a);
      raw.close(b);
      loop.dispose();
    }
  });

  test("an already-aborted signal rejects at once; bad input and closed fds give clear errors", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    const [a, b] = raw.socketPair();
    try {
      const why = new Error("aborted before start");
      await assert.rejects(loop.read(a, new Uint8Array(4), { signal: AbortSignal.abort(why) }), (e) => e === why);
      await assert.rejects(async () => loop.read(a, new Uint8Array(0)), RangeError);
      await assert.rejects(async () => loop.read(-1, new Uint8Array(4)), TypeError);
      await assert.rejects(async () => loop.read(a, new Uint8Array(4), { timeout: -1 }), RangeError);
      const [p, q] = raw.pipe();
      raw.close(p);
      raw.close(q);
      await assert.rejects(async () => loop.read(p, new Uint8Array(4)), (e) => e instanceof SystemError && e.code === "EBADF");
    } finally {
      await loop.close(a);
      raw.close(b);
      loop.dispose();
    }
  });

  test("loop.sleep() is driven by run(true); run() returns false when idle", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    try {
      assert.equal(loop.run(false), false);
      assert.equal(loop.run(true), false, "run(true) with nothing pending must not block");
      const sleeping = track(loop.sleep(20));
      for (let i = 0; i < 100 && sleeping.state === "pending"; i++) {
        assert.equal(loop.run(true), true);
        await flush();
      }
      assert.equal(sleeping.state, "fulfilled");
      assert.equal(loop.run(false), false);
    } finally {
      loop.dispose();
    }
  });

  test("runMain() drives sleeps and operations on the blocking loop", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    try {
      const order = [];
      const result = await runMain(async () => {
        await Promise.all([loop.sleep(20).then(() => order.push(20)), loop.sleep(5).then(() => order.push(5))]);
        const [a, b] = UnixStream.pair({ loop });
        await a.writeAll(bytes("main"));
        const buf = new Uint8Array(8);
        const n = await b.read(buf);
        await a.close();
        await b.close();
        return text(buf.subarray(0, n));
      }, { loop });
      assert.equal(result, "main");
      assert.deepEqual(order, [5, 20]);
    } finally {
      loop.dispose();
    }
  });

  test("interrupt() before run(true) ends that run without waiting for the timer", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    try {
      // The 10 s sleep is the watchdog: if interrupt() does nothing, run(true) returns after it
      // fires, and the assertion below fails.
      const sleeping = track(loop.sleep(10_000));
      loop.interrupt();
      assert.equal(loop.run(true), true);
      await flush();
      assert.equal(sleeping.state, "pending", "run(true) waited for the timer instead of returning on interrupt()");
    } finally {
      loop.dispose();
    }
  });

  test("a Worker's wake through loop.interruptHandle ends a blocking run(true)", async () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    const worker = new Worker(
      `const { parentPort, workerData } = require("node:worker_threads");
       import(workerData.url).then(({ Waker }) => {
         const w = Waker.fromHandle(workerData.handle);
         parentPort.postMessage("ready");
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
         w.wake();
       });`,
      { eval: true, workerData: { url: distIndexUrl, handle: loop.interruptHandle } },
    );
    const exited = new Promise((resolve) => worker.once("exit", resolve));
    try {
      await new Promise((resolve, reject) => {
        worker.once("message", resolve);
        worker.once("error", reject);
        exited.then((code) => reject(new Error(`worker exited with ${code} before it was ready`)));
      });
      // Watchdog as above: a 10 s timer.
      const sleeping = track(loop.sleep(10_000));
      assert.equal(loop.run(true), true);
      await flush();
      assert.equal(sleeping.state, "pending", "run(true) waited for the timer instead of returning on the worker's wake");
    } finally {
      await exited;
      loop.dispose();
    }
  });
});
