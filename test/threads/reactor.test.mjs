// Reactor / Registrator (issue 15): a selector blocked in its own Worker, Registrators on any
// thread, events to the owning thread through a shared ring. Run on every readiness selector
// tested here (epoll, poll, and kqueue through libkqueue when EVLOOP_KQUEUE_LIB is set).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { Interest, Reactor, Registrator, SystemError } from "evloop";
import { IS_WINDOWS, openFdCount, raw, readinessSelectors, within } from "../helpers.mjs";

const PEER = new URL("./reactor-peer.mjs", import.meta.url);
const WORKERS = 3;
const PER_WORKER = 33_334; // 3 × 33,334 ≥ 100,000 events
const SLOTS = 16; // re-armed fds per worker: 8 read ends, 8 write ends
const TOKEN_BASE = 1_000_000; // worker w's tokens are w × TOKEN_BASE + its sequence number
const STRESS_MS = 120_000;

/** The next event, or a failure after `ms`. */
const nextEvent = (reactor, ms = 10_000) => within(reactor.next(), ms, "reactor.next()");

/** Events until one has `token`; returns them all (bounded by `limit`). */
async function eventsUntil(reactor, token, limit = 64) {
  const seen = [];
  while (seen.length < limit) {
    const { value, done } = await nextEvent(reactor);
    assert.equal(done, false);
    seen.push(value);
    if (value.token === token) return seen;
  }
  throw new Error(`no event for token ${token} among ${limit}`);
}

function runPeer(workerData) {
  const worker = new Worker(PEER, { workerData });
  const result = new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`peer exited with ${code} before answering`)));
  });
  return { worker, result };
}

const selectors = IS_WINDOWS ? [] : readinessSelectors();

/**
 * Three Workers re-arm their pipes through one Registrator handle, each re-arm under a token of
 * its own, while this thread consumes: every token must arrive exactly once.
 */
async function stress(selector, perWorker) {
  const reactor = await Reactor.start({ capacity: 256, selector });
  const ack = new SharedArrayBuffer(WORKERS * SLOTS * 4);
  new Int32Array(ack).fill(-1);
  const acks = new Int32Array(ack);
  const seen = new Uint8Array(WORKERS * perWorker);
  const total = WORKERS * perWorker;
  const peers = [];
  try {
    for (let index = 0; index < WORKERS; index++) {
      peers.push(runPeer({ job: "stress", handle: reactor.registratorHandle, ack, index, count: perWorker, slots: SLOTS, base: index * TOKEN_BASE }));
    }
    let received = 0;
    let readable = 0;
    let writable = 0;
    const consume = (async () => {
      for await (const event of reactor) {
        const w = Math.floor(event.token / TOKEN_BASE);
        const k = event.token % TOKEN_BASE;
        assert.ok(w < WORKERS && k < perWorker, `unexpected token ${event.token}`);
        assert.equal(seen[w * perWorker + k], 0, `token ${event.token} delivered twice`);
        seen[w * perWorker + k] = 1;
        const slot = k % SLOTS;
        if (slot % 2 === 0) {
          assert.ok(event.isReadable, `token ${event.token}: a read end's event is readable`);
          readable++;
        } else {
          assert.ok(event.isWritable, `token ${event.token}: a write end's event is writable`);
          writable++;
        }
        Atomics.store(acks, w * SLOTS + slot, k);
        Atomics.notify(acks, w * SLOTS + slot);
        if (++received === total) return;
      }
      throw new Error(`the iteration ended after ${received} of ${total} events`);
    })();
    await within(Promise.all([consume, ...peers.map((p) => p.result)]), STRESS_MS, `${total} events`);
    assert.equal(received, total);
    assert.equal(seen.indexOf(0), -1, "every token was delivered");
    assert.ok(readable > 0 && writable > 0);
    assert.equal(readable + writable, total);
  } finally {
    for (const p of peers) await p.worker.terminate();
    await reactor.close();
  }
}

for (const selector of selectors) {
  describe(`Reactor (${selector})`, () => {
    test("Registrator used from three Workers at once: 100,000 events, none lost or duplicated", { timeout: STRESS_MS + 10_000 }, () => stress(selector, PER_WORKER));

    test("reads and writes: a pipe turning readable, and writable again once drained", async () => {
      const reactor = await Reactor.start({ capacity: 16, selector });
      const [r, w] = raw.pipe();
      try {
        const reg = reactor.registrator();
        raw.fill(w);
        reg.register(r, 1, Interest.READABLE);
        const [readEvent] = await eventsUntil(reactor, 1);
        assert.equal(readEvent.isReadable, true);
        assert.equal(readEvent.isWritable, false);
        // The pipe is full: WRITABLE is reported only once the reader makes room.
        reg.register(w, 2, Interest.WRITABLE);
        raw.drain(r);
        const events = await eventsUntil(reactor, 2);
        const writeEvent = events.at(-1);
        assert.equal(writeEvent.isWritable, true);
        assert.equal(writeEvent.isReadable, false);
      } finally {
        raw.close(r);
        raw.close(w);
        await reactor.close();
      }
    });

    test("reregister changes the token and interest and re-arms; deregister stops events", async () => {
      const reactor = await Reactor.start({ capacity: 16, selector });
      const [r, w] = raw.pipe();
      const [r2, w2] = raw.pipe();
      try {
        const reg = reactor.registrator();
        reg.register(r, 10, Interest.READABLE);
        raw.write(w, new Uint8Array([1]));
        assert.equal((await eventsUntil(reactor, 10)).length, 1);
        // Still readable, not drained: reregister reports it again, under the new token.
        reg.reregister(r, 11, Interest.READABLE);
        const again = await eventsUntil(reactor, 11);
        assert.deepEqual(again.map((e) => e.token), [11]);
        // The write end: interest changed from nothing to WRITABLE through a new registration.
        reg.register(w, 12, Interest.READABLE);
        reg.reregister(w, 13, Interest.WRITABLE);
        const writable = await eventsUntil(reactor, 13);
        assert.ok(writable.every((e) => e.token !== 12));
        assert.equal(writable.at(-1).isWritable, true);
        // Deregistered: more data on r reports nothing. On epoll the change is made by the call;
        // elsewhere the reactor thread applies it when woken, so an edge its selector saw first
        // may still come (under the old token). Any sentinel event proves the change applied.
        reg.deregister(r);
        reg.deregister(w);
        raw.write(w, new Uint8Array([2]));
        reg.register(r2, 20, Interest.READABLE);
        raw.write(w2, new Uint8Array([3]));
        const after = await eventsUntil(reactor, 20);
        if (selector === "epoll") assert.deepEqual(after.map((e) => e.token), [20]);
        else assert.ok(after.every((e) => e.token === 11 || e.token === 20), `tokens ${after.map((e) => e.token)}`);
        raw.write(w, new Uint8Array([4]));
        reg.reregister(r2, 21, Interest.READABLE);
        const later = await eventsUntil(reactor, 21);
        assert.deepEqual(later.map((e) => e.token), [21]);
        assert.throws(() => reg.deregister(r), (e) => e instanceof SystemError && e.code === "ENOENT");
        assert.throws(() => reg.reregister(r, 1, Interest.READABLE), (e) => e instanceof SystemError && e.code === "ENOENT");
        reg.deregister(r2);
      } finally {
        for (const fd of [r, w, r2, w2]) raw.close(fd);
        await reactor.close();
      }
    });

    test("a full ring makes the reactor wait for the owner: no event lost", async () => {
      const reactor = await Reactor.start({ capacity: 4, selector });
      const pipes = Array.from({ length: 32 }, () => raw.pipe());
      try {
        const reg = reactor.registrator();
        pipes.forEach(([r, w], i) => {
          raw.write(w, new Uint8Array([i]));
          reg.register(r, 100 + i, Interest.READABLE);
        });
        // Nothing is taken until the reactor has found the ring full.
        await within(
          (async () => {
            while (reactor.fullWaits === 0) await new Promise((resolve) => setTimeout(resolve, 5));
          })(),
          10_000,
          "the reactor filling its ring",
        );
        const tokens = new Set();
        while (tokens.size < pipes.length) {
          const { value } = await nextEvent(reactor);
          assert.ok(!tokens.has(value.token), `token ${value.token} twice`);
          tokens.add(value.token);
        }
        assert.deepEqual([...tokens].sort((a, b) => a - b), pipes.map((_, i) => 100 + i));
      } finally {
        for (const [r, w] of pipes) {
          raw.close(r);
          raw.close(w);
        }
        await reactor.close();
      }
    });

    test("close() with a pending iteration: next() and for-await end, the thread is joined", async () => {
      const reactor = await Reactor.start({ capacity: 8, selector });
      const pending = reactor.next();
      const loop = (async () => {
        let n = 0;
        for await (const _ of reactor) n++;
        return n;
      })();
      await reactor.close();
      assert.deepEqual(await pending, { done: true, value: undefined });
      assert.equal(await within(loop, 10_000, "for await ending"), 0);
      assert.deepEqual(await reactor.next(), { done: true, value: undefined });
      assert.equal(reactor.closed, true);
      await reactor.close(); // idempotent
    });

    test("a Registrator after close throws a clear error, here and in a Worker", async () => {
      const reactor = await Reactor.start({ capacity: 8, selector });
      const reg = reactor.registrator();
      const handle = reactor.registratorHandle;
      const [r, w] = raw.pipe();
      try {
        await reactor.close();
        assert.equal(reg.closed, true);
        for (const call of [() => reg.register(r, 1, Interest.READABLE), () => reg.reregister(r, 1, Interest.READABLE), () => reg.deregister(r)]) {
          assert.throws(call, (e) => e instanceof SystemError && e.code === "EBADF" && /reactor is closed/.test(e.message));
        }
        const peer = runPeer({ job: "after-close", handle, fd: r });
        const error = await within(peer.result, 10_000, "the peer");
        assert.equal(error?.code, "EBADF");
        assert.match(error.message, /reactor is closed/);
      } finally {
        raw.close(r);
        raw.close(w);
      }
    });

    test("the handle round-trips through postMessage: a Worker registers, this thread gets the event", async () => {
      const reactor = await Reactor.start({ capacity: 8, selector });
      const [r, w] = raw.pipe();
      try {
        raw.write(w, new Uint8Array([1]));
        const peer = runPeer({ job: "register-one", handle: reactor.registratorHandle, fd: r, token: 2 ** 40 + 5 });
        assert.equal(await within(peer.result, 10_000, "the peer"), "registered");
        const [event] = await eventsUntil(reactor, 2 ** 40 + 5);
        assert.equal(event.isReadable, true);
        // The same fd is now registered for everyone: a second register is refused here.
        assert.throws(() => reactor.registrator().register(r, 3, Interest.READABLE), (e) => e instanceof SystemError && e.code === "EEXIST");
        assert.strictEqual(reactor.registrator(), reactor.registrator());
      } finally {
        raw.close(r);
        raw.close(w);
        await reactor.close();
      }
    });

    test("terminating the Worker that owns a reactor ends its thread too, leaving no fd open", async () => {
      const warm = runPeer({ job: "own-reactor", selector });
      assert.equal(await within(warm.result, 10_000, "the first owner"), "started");
      await within(warm.worker.terminate(), 10_000, "terminating the first owner");
      // The first round loaded what a process keeps once (libkqueue's own fds); count from here.
      const before = openFdCount();
      const peer = runPeer({ job: "own-reactor", selector });
      assert.equal(await within(peer.result, 10_000, "the owner"), "started");
      await within(peer.worker.terminate(), 10_000, "terminating the owner");
      // The nested thread's teardown (its cleanup hooks) may finish just after terminate()
      // resolves here: wait for the count to come back, bounded.
      for (let i = 0; i < 100 && openFdCount() > before; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(openFdCount(), before);
    });

    test("bad input: fds, tokens, interests, handles and options", async () => {
      const reactor = await Reactor.start({ capacity: 8, selector });
      const [r, w] = raw.pipe();
      const [closedFd, other] = raw.pipe();
      raw.close(closedFd);
      raw.close(other);
      try {
        const reg = reactor.registrator();
        const typeError = (pattern) => (e) => e instanceof TypeError && pattern.test(e.message);
        assert.throws(() => reg.register(-1, 1, Interest.READABLE), typeError(/fd must be a non-negative integer/));
        assert.throws(() => reg.register(1.5, 1, Interest.READABLE), typeError(/fd must be/));
        assert.throws(() => reg.register("3", 1, Interest.READABLE), typeError(/fd must be/));
        for (const token of [-1, 0.5, 2 ** 48, NaN, "7", null]) {
          assert.throws(() => reg.register(r, token, Interest.READABLE), typeError(/token must be an integer/), `token ${String(token)}`);
        }
        for (const interest of [0, 8, -1, 1.5, "1", undefined]) {
          assert.throws(() => reg.register(r, 1, interest), typeError(/interest must be/), `interest ${String(interest)}`);
        }
        assert.throws(() => reg.register(closedFd, 1, Interest.READABLE), (e) => e instanceof SystemError && e.code === "EBADF");
        if (selector === "kqueue") {
          assert.throws(() => reg.register(r, 1, Interest.PRIORITY), (e) => e instanceof SystemError && e.code === "EINVAL");
        }
        reg.register(r, 1, Interest.READABLE);
        assert.throws(() => reg.register(r, 1, Interest.READABLE), (e) => e instanceof SystemError && e.code === "EEXIST");
        assert.throws(() => reg.reregister(w, 1, Interest.WRITABLE), (e) => e instanceof SystemError && e.code === "ENOENT");
        for (const bad of [null, {}, { kind: "evloop.registrator" }, { ...reactor.registratorHandle, ctl: new ArrayBuffer(64) }]) {
          assert.throws(() => Registrator.fromHandle(bad), typeError(/not a RegistratorHandle/));
        }
      } finally {
        raw.close(r);
        raw.close(w);
        await reactor.close();
      }
      await assert.rejects(Reactor.start({ capacity: 0, selector }), RangeError);
      await assert.rejects(Reactor.start({ capacity: 1.5, selector }), RangeError);
      await assert.rejects(Reactor.start({ registrations: -1, selector }), RangeError);
      await assert.rejects(Reactor.start({ selector: "select" }), TypeError);
    });
  });
}

test("Reactor.start refuses a selector of another OS with a SystemError", { skip: IS_WINDOWS && "this asks for afd off Windows; on Windows afd is the platform's own selector" }, async () => {
  await assert.rejects(Reactor.start({ selector: "afd" }), (e) => e instanceof SystemError && e.code === "EOPNOTSUPP");
});

test("the message wake-up (EVLOOP_REACTOR_WAKE=message) delivers every event too", { skip: selectors.length === 0 && "no readiness selector here to run a reactor on (none on Windows in this suite)", timeout: STRESS_MS + 10_000 }, async () => {
  process.env.EVLOOP_REACTOR_WAKE = "message";
  try {
    await stress(selectors[0], 3_000);
  } finally {
    delete process.env.EVLOOP_REACTOR_WAKE;
  }
});
