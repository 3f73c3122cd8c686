/**
 * The readiness API (Poll, Registry, Events, Waker) on every selector: tokens, edge-triggered
 * semantics, deregistration, capacity, and same-thread wakers (cross-thread wakers: wake.test).
 *
 * Every poll here either has data already waiting or uses timeout 0, so nothing blocks for long.
 *
 * On Windows the selector is AFD (when the IOCP backend is among the tested ones: it needs the
 * same completion port and AFD device), and the fds are sockets: where a test says "pipe", a
 * loopback TCP pair stands in for it ([one end, the other end]), since Windows has no pipe(2).
 *
 * The blocking backend has no selector, so there is no Poll on it: its readiness is
 * `loop.waitReadable()`/`waitWritable()` (loop.test.mjs), and here it is checked that a Poll
 * cannot be asked for it.
 */
import { afterEach, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Events, Interest, Poll, SystemError, Waker } from "evloop";
import { IS_WINDOWS, raw, readinessSelectors, testBackends } from "../helpers.mjs";

const SELECTORS = readinessSelectors();

/** The events of the last poll as plain objects, for assertions and readable diffs. */
function snapshot(events) {
  return [...events].map((e) => ({
    token: e.token,
    readable: e.isReadable,
    writable: e.isWritable,
    readClosed: e.isReadClosed,
  }));
}

function tokensOf(events) {
  return [...events].map((e) => e.token);
}

for (const selector of SELECTORS) {
  describe(`readiness ${selector}`, () => {
    let poll;
    let events;
    let fds;

    beforeEach(() => {
      poll = new Poll(selector);
      events = new Events(64);
      fds = [];
    });

    afterEach(() => {
      poll.close();
      for (const fd of fds) raw.close(fd);
    });

    /** A pipe, or on Windows a loopback TCP pair: [read end, write end]. */
    function pipe() {
      const [r, w] = IS_WINDOWS ? raw.socketPair() : raw.pipe();
      fds.push(r, w);
      return [r, w];
    }

    test("Poll.backend names the selector", () => {
      assert.equal(poll.backend, selector);
    });

    test("registry.register() reports a pipe's readable event under its token", () => {
      const [r, w] = pipe();
      poll.registry.register(r, 7, Interest.READABLE);
      poll.poll(events, 0);
      assert.deepEqual(tokensOf(events), [], "no event before data is written");
      assert.equal(raw.write(w, new Uint8Array([1])), 1);
      poll.poll(events, 1000);
      assert.equal(events.length, 1);
      const e = events.get(0);
      assert.equal(e.token, 7);
      assert.equal(e.isReadable, true);
      assert.equal(e.isWritable, false);
      assert.equal(e.isError, false);
    });

    test("registry.register() reports a pipe's writable event on the write end", () => {
      const [, w] = pipe();
      poll.registry.register(w, 3, Interest.WRITABLE);
      poll.poll(events, 1000);
      assert.deepEqual(snapshot(events), [{ token: 3, readable: false, writable: true, readClosed: false }]);
    });

    test("tokens up to 2^48 - 1 round-trip", () => {
      const [r, w] = pipe();
      const token = 2 ** 48 - 2; // 2^48 - 1 may be reserved by the event loop's own waker
      poll.registry.register(r, token, Interest.READABLE);
      raw.write(w, new Uint8Array([1]));
      poll.poll(events, 1000);
      assert.deepEqual(tokensOf(events), [token]);
    });

    test("poll() is edge-triggered: no second event without new data, one again after reregister()", () => {
      const [r, w] = pipe();
      poll.registry.register(r, 1, Interest.READABLE);
      raw.write(w, new Uint8Array([1, 2, 3]));
      poll.poll(events, 1000);
      assert.deepEqual(tokensOf(events), [1]);
      // The data is still unread, but the edge was reported: nothing more until something changes.
      poll.poll(events, 0);
      assert.deepEqual(tokensOf(events), [], "a level-triggered repeat of the same readiness");
      poll.poll(events, 0);
      assert.deepEqual(tokensOf(events), []);
      // reregister() re-arms: the fd is still readable, so it is reported again.
      poll.registry.reregister(r, 2, Interest.READABLE);
      poll.poll(events, 1000);
      assert.deepEqual(tokensOf(events), [2], "reregister must re-arm under the new token");
      assert.equal(raw.read(r, new Uint8Array(16)), 3);
    });

    test("reregister() can change the interest from readable to writable", () => {
      const [r, w] = pipe();
      poll.registry.register(w, 5, Interest.READABLE);
      poll.poll(events, 0);
      assert.deepEqual(tokensOf(events), [], "a pipe's write end is never readable");
      poll.registry.reregister(w, 5, Interest.WRITABLE);
      poll.poll(events, 1000);
      assert.deepEqual(snapshot(events), [{ token: 5, readable: false, writable: true, readClosed: false }]);
      void r;
    });

    test("deregister() stops events", () => {
      const [r, w] = pipe();
      poll.registry.register(r, 9, Interest.READABLE);
      // A poll that started (AFD: a poll in flight, which deregister cancels) and found nothing.
      poll.poll(events, 0);
      assert.deepEqual(tokensOf(events), []);
      poll.registry.deregister(r);
      raw.write(w, new Uint8Array([1]));
      poll.poll(events, 0);
      assert.deepEqual(tokensOf(events), []);
      // And the fd can be registered again afterwards.
      poll.registry.register(r, 10, Interest.READABLE);
      poll.poll(events, 1000);
      assert.deepEqual(tokensOf(events), [10]);
    });

    test("closing the write end reports readable and read-closed", () => {
      const [r, w] = pipe();
      poll.registry.register(r, 4, Interest.READABLE);
      raw.close(w);
      fds.splice(fds.indexOf(w), 1);
      poll.poll(events, 1000);
      assert.equal(events.length, 1);
      assert.equal(events.get(0).token, 4);
      assert.equal(events.get(0).isReadable, true);
      assert.equal(events.get(0).isReadClosed, true);
      assert.equal(raw.read(r, new Uint8Array(1)), 0, "EOF");
    });

    test("Events capacity caps one poll; the remaining fds are reported by the next", () => {
      const seen = new Set();
      for (let i = 0; i < 10; i++) {
        const [r, w] = pipe();
        poll.registry.register(r, 100 + i, Interest.READABLE);
        raw.write(w, new Uint8Array([i]));
      }
      const small = new Events(4);
      for (let round = 0; round < 5 && seen.size < 10; round++) {
        poll.poll(small, 1000);
        assert.ok(small.length <= 4, `poll returned ${small.length} events into an Events(4)`);
        for (const e of small) {
          assert.ok(!seen.has(e.token), `token ${e.token} reported twice without new data`);
          seen.add(e.token);
        }
      }
      assert.equal(seen.size, 10, "every ready fd is eventually reported");
    });

    test("registry.reregister() while a poll for other directions is pending reports the new ones only", () => {
      const [r, w] = raw.socketPair();
      fds.push(r, w);
      poll.registry.register(r, 1, Interest.WRITABLE);
      poll.poll(events, 1000);
      assert.deepEqual(snapshot(events), [{ token: 1, readable: false, writable: true, readClosed: false }]);
      poll.registry.reregister(r, 2, Interest.READABLE);
      poll.poll(events, 0);
      assert.deepEqual(tokensOf(events), [], "nothing to read yet");
      poll.registry.reregister(r, 3, Interest.READABLE | Interest.WRITABLE);
      poll.poll(events, 1000);
      assert.deepEqual(snapshot(events), [{ token: 3, readable: false, writable: true, readClosed: false }]);
      raw.write(w, new Uint8Array([1]));
      poll.poll(events, 1000);
      // epoll reports the whole mask with a new edge (writable too), libkqueue a write event
      // besides the read event; what matters is that the new readable direction is reported.
      assert.ok(tokensOf(events).every((t) => t === 3), `tokens ${tokensOf(events)}`);
      assert.ok([...events].some((e) => e.isReadable), "the readable direction is reported");
    });

    test("Events.get() out of range throws RangeError", () => {
      poll.poll(events, 0);
      assert.throws(() => events.get(0), RangeError);
      assert.throws(() => new Events(0), RangeError);
    });

    test("register() of an fd twice fails; deregister() of an unknown fd fails", () => {
      const [r] = pipe();
      poll.registry.register(r, 1, Interest.READABLE);
      assert.throws(() => poll.registry.register(r, 2, Interest.READABLE), (e) => e instanceof SystemError && e.code === "EEXIST");
      const [r2] = pipe();
      assert.throws(() => poll.registry.deregister(r2), (e) => e instanceof SystemError && e.code === "ENOENT");
    });

    if (selector === "afd") {
      test("afd: register() of a number that is not a socket fails with a SystemError", () => {
        const [r, w] = pipe();
        raw.close(w);
        fds.splice(fds.indexOf(w), 1);
        assert.throws(() => poll.registry.register(w, 1, Interest.READABLE), (e) => e instanceof SystemError && /not a socket/.test(e.message));
        poll.registry.register(r, 2, Interest.READABLE);
      });

      test("afd: a socket closed while registered is forgotten (its poll ends with LOCAL_CLOSE)", () => {
        const [r] = pipe();
        poll.registry.register(r, 6, Interest.READABLE);
        poll.poll(events, 0);
        raw.close(r);
        fds.splice(fds.indexOf(r), 1);
        poll.poll(events, 200);
        assert.deepEqual(tokensOf(events), [], "a closed socket reports nothing");
        assert.throws(() => poll.registry.deregister(r), (e) => e instanceof SystemError && e.code === "ENOENT");
      });
    }

    test("register() rejects bad tokens and interests with TypeError", () => {
      const [r] = pipe();
      assert.throws(() => poll.registry.register(r, -1, Interest.READABLE), TypeError);
      assert.throws(() => poll.registry.register(r, 1.5, Interest.READABLE), TypeError);
      assert.throws(() => poll.registry.register(r, 2 ** 48, Interest.READABLE), TypeError);
      assert.throws(() => poll.registry.register(r, 1, 0), TypeError);
      assert.throws(() => poll.registry.register(r, 1, 8), TypeError);
      assert.throws(() => poll.registry.register(-1, 1, Interest.READABLE), TypeError);
      assert.throws(() => poll.poll(events, -1), RangeError);
      assert.throws(() => poll.poll(events, NaN), RangeError);
    });

    test("Waker.wake() on the same thread: one event for its token, wakes coalesce, then none", () => {
      const waker = new Waker(poll.registry, 42);
      try {
        poll.poll(events, 0);
        assert.deepEqual(tokensOf(events), []);
        waker.wake();
        waker.wake();
        waker.wake();
        poll.poll(events, 1000);
        assert.deepEqual(tokensOf(events), [42]);
        assert.equal(events.get(0).isReadable, true);
        poll.poll(events, 0);
        assert.deepEqual(tokensOf(events), [], "the wake-ups were consumed by the first poll");
        // The waker is re-armed: a later wake() is reported again.
        waker.wake();
        poll.poll(events, 1000);
        assert.deepEqual(tokensOf(events), [42]);
      } finally {
        waker.close();
      }
    });

    test("Waker.handle is structured-cloneable and Waker.fromHandle() wakes the same poll", () => {
      const waker = new Waker(poll.registry, 8);
      try {
        const handle = structuredClone(waker.handle);
        const remote = Waker.fromHandle(handle);
        remote.wake();
        poll.poll(events, 1000);
        assert.deepEqual(tokensOf(events), [8]);
        remote.close(); // does nothing: the handle does not own the eventfd
        waker.wake();
        poll.poll(events, 1000);
        assert.deepEqual(tokensOf(events), [8]);
        assert.throws(() => Waker.fromHandle({ kind: "nope", fd: 1 }), TypeError);
        assert.throws(() => Waker.fromHandle(null), TypeError);
      } finally {
        waker.close();
      }
    });
  });
}

if (testBackends().includes("blocking")) {
  describe("readiness blocking", () => {
    test("new Poll('blocking') throws a TypeError naming the selectors: the blocking backend has none", () => {
      assert.throws(() => new Poll("blocking"), (e) => {
        assert.ok(e instanceof TypeError, `expected a TypeError, got ${e}`);
        assert.match(e.message, /"blocking"/);
        assert.match(e.message, /epoll/);
        return true;
      });
    });
  });
}

test("new Poll() with an unknown backend throws TypeError", () => {
  assert.throws(() => new Poll("select"), TypeError);
});

test("new Poll() names a selector of this OS, and one of another OS fails with EOPNOTSUPP", () => {
  const foreign = IS_WINDOWS ? ["epoll", "kqueue", "poll"] : ["afd"];
  for (const name of foreign) {
    assert.throws(() => new Poll(name), (e) => e instanceof SystemError && e.code === "EOPNOTSUPP" && e.message.includes(`"${name}"`));
  }
  if (IS_WINDOWS && !testBackends().includes("iocp")) return;
  const poll = new Poll();
  try {
    if (IS_WINDOWS) assert.equal(poll.backend, "afd");
    else assert.notEqual(poll.backend, "afd");
  } finally {
    poll.close();
  }
});
