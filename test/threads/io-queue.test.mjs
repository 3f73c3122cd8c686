/**
 * IoQueue, the per-thread I/O queue, on every readiness selector available here (epoll, poll,
 * and kqueue through libkqueue when EVLOOP_KQUEUE_LIB names it, as `npm test` does): waits for
 * read, write and priority, one waiter per fd and event, persist, unregister, premature close
 * (also with the fd number reused, and with a dup keeping the file alive), error and hang-up,
 * poll's timeouts, run until empty (blocking, and through the default loop), and one queue per
 * thread.
 *
 * Loopback only. Every wait is either ready already or settled by the test itself before a
 * blocking poll, and every test is bounded by node:test's timeout; nothing measures time.
 */
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { IoQueue, PrematureCloseError, SystemError, WaitAbortedError } from "evloop";
import { raw, readinessSelectors } from "../helpers.mjs";
import { accept, connect, send } from "../../dist/sys/posix/socket.js";
import { libc } from "../../dist/sys/libc.js";
import { WOULD_BLOCK } from "../../dist/sys/posix/fd.js";

const SELECTORS = readinessSelectors().filter((s) => s !== "afd");
const LINUX = process.platform === "linux";
/** MSG_OOB: 1 on Linux, macOS and the BSDs. */
const MSG_OOB = 1;
/** fcntl's F_DUPFD: 0 everywhere. */
const F_DUPFD = 0;
const TIMEOUT = { timeout: 30_000 };

for (const selector of SELECTORS) {
  describe(`IoQueue on ${selector}`, TIMEOUT, () => {
    let q;
    let fds;

    beforeEach(() => {
      q = new IoQueue({ selector });
      fds = [];
    });

    afterEach(() => {
      q.close();
      for (const fd of fds) if (raw.isOpen(fd)) raw.close(fd);
    });

    function pipe() {
      const pair = raw.pipe();
      fds.push(...pair);
      return pair;
    }

    function socketPair() {
      const pair = raw.socketPair();
      fds.push(...pair);
      return pair;
    }

    /** A connected loopback TCP pair [client, server], set up through the queue itself. */
    async function tcpPair() {
      const listener = raw.tcpListener();
      fds.push(listener.fd);
      const client = raw.tcpSocket();
      fds.push(client);
      connect(client, listener.address);
      let server = accept(listener.fd);
      if (server === WOULD_BLOCK) {
        const ready = q.wait(listener.fd, "read");
        q.poll();
        await ready;
        server = accept(listener.fd);
      }
      fds.push(server);
      const connected = q.wait(client, "write");
      q.poll();
      assert.equal((await connected).write, true);
      return [client, server];
    }

    test("backend names the selector", () => {
      assert.equal(q.backend, selector);
    });

    test("wait read resolves once data arrives, with what was reported", async () => {
      const [r, w] = pipe();
      const got = q.wait(r, "read");
      assert.equal(q.running, true);
      assert.equal(q.poll(0), 0);
      raw.write(w, new Uint8Array([1]));
      assert.equal(q.poll(), 1);
      assert.deepEqual(await got, { read: true, write: false, priority: false, error: false, hangup: false });
      assert.equal(q.running, false);
    });

    test("readiness that came before the wait counts", async () => {
      const [r, w] = pipe();
      raw.write(w, new Uint8Array([1]));
      q.persist(r);
      const first = q.wait(r, "read");
      q.poll();
      await first;
      // Still readable, not drained: a second wait on the persisted fd resolves too.
      const second = q.wait(r, "read");
      assert.equal(q.poll(0), 1);
      assert.equal((await second).read, true);
    });

    test("wait write resolves on a writable fd, and waits while it is full", async () => {
      const [r, w] = pipe();
      const got = q.wait(w, "write");
      assert.equal(q.poll(), 1);
      assert.equal((await got).write, true);
      raw.fill(w);
      const again = q.wait(w, "write");
      assert.equal(q.poll(0), 0);
      raw.drain(r);
      assert.equal(q.poll(), 1);
      assert.equal((await again).write, true);
    });

    test("read and write waiters on one fd are independent", async () => {
      const [a, b] = socketPair();
      const reading = q.wait(a, "read");
      const writing = q.wait(a, "write");
      assert.equal(q.poll(), 1);
      assert.equal((await writing).write, true);
      assert.equal(q.running, true);
      raw.write(b, new Uint8Array([7]));
      assert.equal(q.poll(), 1);
      assert.equal((await reading).read, true);
    });

    if (selector === "kqueue") {
      test("priority is refused: kqueue has no filter for out-of-band data", () => {
        const [r] = pipe();
        assert.throws(() => q.wait(r, "priority"), (e) => e instanceof SystemError && e.code === "EINVAL");
        assert.equal(q.running, false);
        assert.equal(q.stats.registered, 0);
      });
    } else {
      test("wait priority resolves on TCP urgent data (MSG_OOB) on loopback", async () => {
        const [client, server] = await tcpPair();
        const urgent = q.wait(server, "priority");
        assert.equal(q.poll(0), 0);
        assert.equal(send(client, new Uint8Array([0x21]), MSG_OOB), 1);
        assert.equal(q.poll(), 1);
        assert.equal((await urgent).priority, true);
      });
    }

    test("a second waiter for the same fd and event throws synchronously, naming both", async () => {
      const [r, w] = pipe();
      const first = q.wait(r, "read");
      assert.throws(() => q.wait(r, "read"), (e) => e instanceof SystemError && e.code === "EBUSY" && e.message.includes(`fd ${r}`) && e.message.includes('"read"'));
      raw.write(w, new Uint8Array([1]));
      q.poll();
      assert.equal((await first).read, true);
      // Once settled, the fd may be waited on again.
      const next = q.wait(r, "read");
      q.poll();
      await next;
    });

    test("bad arguments throw before anything is registered", () => {
      const [r] = pipe();
      assert.throws(() => q.wait(r, "readable"), TypeError);
      assert.throws(() => q.wait(-1, "read"), TypeError);
      assert.throws(() => q.poll(-1), RangeError);
      assert.equal(q.stats.registered, 0);
    });

    test("an fd is deregistered once it has no waiter, unless persisted", async () => {
      const [r, w] = pipe();
      raw.write(w, new Uint8Array([1]));
      for (let i = 0; i < 3; i++) {
        const got = q.wait(r, "read");
        q.poll();
        await got;
        assert.equal(q.stats.registered, 0);
      }
      assert.equal(q.stats.registrations, 3);
      assert.equal(q.stats.deregistrations, 3);

      const [r2, w2] = pipe();
      raw.write(w2, new Uint8Array([1]));
      q.persist(r2);
      for (let i = 0; i < 3; i++) {
        const got = q.wait(r2, "read");
        q.poll();
        await got;
        assert.equal(q.stats.registered, 1);
      }
      assert.equal(q.stats.registrations, 4, "a persisted fd is registered once");
      q.persist(r2, false);
      assert.equal(q.stats.registered, 0);
    });

    test("unregister rejects the pending waits with an AbortError naming the fd", async () => {
      const [r] = pipe();
      q.persist(r);
      const got = q.wait(r, "read");
      assert.equal(q.unregister(r), true);
      await assert.rejects(got, (e) => e instanceof WaitAbortedError && e.name === "AbortError" && e.code === "ABORT_ERR" && e.fd === r && e.event === "read");
      assert.equal(q.running, false);
      assert.equal(q.stats.registered, 0);
      assert.equal(q.unregister(r), false);
    });

    test("an fd closed with a waiter pending: PrematureCloseError naming it, not a hang", async () => {
      const [r] = pipe();
      const got = q.wait(r, "read");
      raw.close(r);
      assert.equal(q.poll(), 1);
      await assert.rejects(got, (e) => e instanceof PrematureCloseError && e.fd === r && e.code === "EBADF" && e.event === "read");
      assert.equal(q.running, false);
    });

    test("a closed fd whose number was reused is still a premature close", async () => {
      const [r] = pipe();
      const got = q.wait(r, "read");
      raw.close(r);
      const again = pipe();
      assert.ok(again.includes(r), "the lowest free number is reused");
      raw.write(again[1], new Uint8Array([1])); // the new file is readable if r named it
      assert.equal(q.poll(), 1);
      await assert.rejects(got, (e) => e instanceof PrematureCloseError && e.fd === r && (!LINUX || e.reused === true));
      // The number can be waited on again, for its new file.
      if (again[0] === r) {
        const fresh = q.wait(r, "read");
        q.poll();
        assert.equal((await fresh).read, true);
      }
    });

    test("a closed fd kept alive by a dup is still a premature close", async () => {
      const [r, w] = pipe();
      const got = q.wait(r, "read");
      const dup = libc.fcntl(r, F_DUPFD, 0);
      assert.ok(dup >= 0);
      fds.push(dup);
      raw.close(r);
      raw.write(w, new Uint8Array([1])); // epoll may still report the file through the dup
      assert.equal(q.poll(), 1);
      await assert.rejects(got, (e) => e instanceof PrematureCloseError && e.fd === r);
    });

    test("hang-up: the peer closed its end", async () => {
      const [a, b] = socketPair();
      const got = q.wait(a, "read");
      raw.close(b);
      assert.equal(q.poll(), 1);
      const report = await got;
      assert.equal(report.read, true);
      assert.equal(report.hangup, true);
    });

    test("error: a reset connection (RST) is reported as error and hang-up", async () => {
      const [client, server] = await tcpPair();
      raw.write(client, new Uint8Array([1, 2, 3]));
      // Wait until the bytes are in the server's receive buffer, then close it unread: RST.
      const arrived = q.wait(server, "read");
      q.poll();
      await arrived;
      raw.close(server);
      const got = q.wait(client, "read");
      assert.equal(q.poll(), 1);
      const report = await got;
      assert.equal(report.read, true);
      assert.equal(report.error, true);
      assert.equal(report.hangup, true);
    });

    test("poll(0) does not block; poll() on an empty queue returns at once", () => {
      assert.equal(q.running, false);
      assert.equal(q.poll(), 0);
      assert.equal(q.poll(10_000_000), 0);
      const [r] = pipe();
      q.wait(r, "read").catch(() => {});
      assert.equal(q.poll(0), 0);
      assert.equal(q.poll(1), 0);
      q.unregister(r);
      assert.equal(q.poll(), 0);
    });

    test("run() polls until no waiter is left, waiting again from settled waits", async () => {
      const [r, w] = pipe();
      const seen = [];
      const reader = (async () => {
        for (let i = 0; i < 3; i++) {
          await q.wait(r, "read");
          const buf = new Uint8Array(1);
          assert.equal(raw.read(r, buf), 1);
          seen.push(buf[0]);
        }
      })();
      const writer = (async () => {
        for (let i = 0; i < 3; i++) {
          await q.wait(w, "write");
          await null; // a continuation that takes more than one microtask
          raw.write(w, new Uint8Array([i]));
        }
      })();
      await q.run();
      await Promise.all([reader, writer]);
      assert.deepEqual(seen, [0, 1, 2]);
      assert.equal(q.running, false);
    });

    test("run({ blocking: false }) waits through the default loop and lets the host run", async () => {
      const [r, w] = pipe();
      const got = q.wait(r, "read");
      const timer = setTimeout(() => raw.write(w, new Uint8Array([1])), 5);
      await q.run({ blocking: false, sliceMs: 20 });
      clearTimeout(timer);
      assert.equal((await got).read, true);
    });

    test("run({ blocking: false }) notices a premature close made while it waits", async () => {
      const [r] = pipe();
      const got = q.wait(r, "read").then(() => null, (e) => e);
      setTimeout(() => raw.close(r), 5);
      await q.run({ blocking: false, sliceMs: 20 });
      assert.ok((await got) instanceof PrematureCloseError);
    });

    test("close() rejects pending waits and deregisters every fd", async () => {
      const [r] = pipe();
      q.persist(r);
      const got = q.wait(r, "read");
      q.close();
      await assert.rejects(got, WaitAbortedError);
      assert.throws(() => q.wait(r, "read"), (e) => e instanceof SystemError && e.code === "EBADF");
    });
  });
}

describe("IoQueue.current()", TIMEOUT, () => {
  test("is one queue per thread; a Worker gets its own, which may wait on the same fd and event", async () => {
    const q = IoQueue.current();
    assert.equal(IoQueue.current(), q);
    const [r, w] = raw.pipe();
    try {
      const mine = q.wait(r, "read");
      const source = `
        const { parentPort, workerData } = require("node:worker_threads");
        import(workerData.url).then(async ({ IoQueue }) => {
          const q = IoQueue.current();
          const got = q.wait(workerData.fd, "read");
          parentPort.postMessage("waiting");
          await q.run();
          parentPort.postMessage({ read: (await got).read, same: q === IoQueue.current() });
        }).catch((e) => parentPort.postMessage({ error: String(e) }));`;
      const worker = new Worker(source, { eval: true, workerData: { url: new URL("../../dist/index.js", import.meta.url).href, fd: r } });
      const messages = [];
      const done = new Promise((resolve, reject) => {
        worker.on("message", (m) => {
          messages.push(m);
          if (m === "waiting") raw.write(w, new Uint8Array([1]));
          else resolve(m);
        });
        worker.on("error", reject);
      });
      const answer = await done;
      await worker.terminate();
      assert.deepEqual(answer, { read: true, same: true });
      // This thread's wait on the same fd and event was not refused, and resolves here too.
      assert.equal(q.poll(), 1);
      assert.equal((await mine).read, true);
    } finally {
      raw.close(r);
      raw.close(w);
    }
  });
});
