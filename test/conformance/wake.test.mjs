/**
 * Cross-thread wake-ups: a Worker wakes a loop blocked in `run(true)` through
 * `loop.interruptHandle`, and a `Poll` blocked with no timeout through a `Waker` handle.
 *
 * How the tests stay bounded although the main thread blocks in the kernel, where no timer of
 * its own can fire: before blocking, a second "watchdog" Worker is started. It uses only
 * node:fs, not evloop, and after WATCHDOG_MS marks a flag and then writes one byte into an fd
 * the blocked call is waiting on, which ends the wait. The flags are read the moment the blocked
 * call returns: the waker worker's flag must be set and the watchdog's not yet, so a broken wake
 * fails after WATCHDOG_MS instead of hanging. The watchdog is cancelled (through a
 * SharedArrayBuffer) and joined before its fd is closed, so it never writes into a reused fd.
 *
 * On the blocking backend run(true) waits for nothing but the next timer: the pending work is a
 * sleep of WATCHDOG_MS, which is itself the watchdog (it ends run(true) if the wake does not).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { createLoop, Events, Interest, Poll, Waker } from "evloop";
import { distIndexUrl, IS_WINDOWS, raw, readinessSelectors, testBackends, track } from "../helpers.mjs";

const WATCHDOG_MS = 10_000;
/** How long the waker worker waits after saying "ready" before it wakes the main thread. */
const WAKE_DELAY_MS = 200;

// Shared flags: [0] the waker worker has called wake(); [1] cancel the watchdog;
// [2] the watchdog wrote its byte.
const WOKE = 0;
const CANCEL = 1;
const FIRED = 2;

// FIRED is set before the byte is written: a wait that its byte ended returns with FIRED set.
// On Windows the fd is a socket, written with Winsock's send (the module at workerData.socketUrl).
const WATCHDOG_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const flags = new Int32Array(workerData.flags);
(async () => {
  const send = workerData.socketUrl == null
    ? (fd, bytes) => fs.writeSync(fd, bytes)
    : (await import(workerData.socketUrl)).sendNow;
  parentPort.postMessage("armed");
  Atomics.wait(flags, ${CANCEL}, 0, workerData.ms);
  if (Atomics.load(flags, ${CANCEL}) === 0) {
    Atomics.store(flags, ${FIRED}, 1);
    send(workerData.fd, new Uint8Array([0x77]));
  }
})();
`;

const SOCKET_URL = process.platform === "win32" ? new URL("../../dist/sys/windows/socket.js", import.meta.url).href : null;

const WAKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
import(workerData.url).then(({ Waker }) => {
  const flags = new Int32Array(workerData.flags);
  const waker = Waker.fromHandle(workerData.handle);
  parentPort.postMessage("ready");
  // Give the main thread time to enter its blocking call.
  Atomics.wait(flags, ${CANCEL}, 0, workerData.delay);
  Atomics.store(flags, ${WOKE}, 1);
  waker.wake();
});
`;

/** Starts an eval'd worker; `exited` resolves when it ends (whatever the cause). */
function spawn(source, workerData) {
  const worker = new Worker(source, { eval: true, workerData });
  const error = new Promise((resolve) => worker.once("error", resolve));
  const exited = new Promise((resolve) => worker.once("exit", resolve));
  // Listen at once: a message sent before anyone listens would be lost.
  const message = new Promise((resolve) => worker.once("message", resolve));
  return { worker, error, exited, message };
}

/** Resolves with the worker's first message; rejects if it errors or exits first. */
async function firstMessage({ error, exited, message }) {
  const failed = Promise.race([
    error.then((e) => {
      throw new Error(`worker failed before saying it was ready: ${e?.message ?? e}`);
    }),
    exited.then((code) => {
      throw new Error(`worker exited with code ${code} before saying it was ready`);
    }),
  ]);
  return Promise.race([message, failed]);
}

/**
 * Starts the watchdog (unless `watchdogFd` is null: the caller has a watchdog of its own) and the
 * waker workers; resolves once they are running.
 */
async function startWorkers({ watchdogFd, handle }) {
  const flags = new SharedArrayBuffer(12);
  const watchdog = watchdogFd === null ? null : spawn(WATCHDOG_SOURCE, { flags, fd: watchdogFd, ms: WATCHDOG_MS, socketUrl: SOCKET_URL });
  const waker = spawn(WAKER_SOURCE, { flags, url: distIndexUrl, handle, delay: WAKE_DELAY_MS });
  try {
    if (watchdog) assert.equal(await firstMessage(watchdog), "armed");
    assert.equal(await firstMessage(waker), "ready");
  } catch (e) {
    await stopWorkers({ flags, watchdog, waker });
    throw e;
  }
  return { flags: new Int32Array(flags), watchdog, waker };
}

/** Cancels the watchdog and waits for the workers to end. */
async function stopWorkers({ flags, watchdog, waker }) {
  const f = flags instanceof Int32Array ? flags : new Int32Array(flags);
  Atomics.store(f, CANCEL, 1);
  Atomics.notify(f, CANCEL);
  await Promise.all([watchdog?.exited, waker.exited]);
}

/** The flags as they are now: read them the moment a blocking call returns. */
function flagsNow(flags) {
  return { woke: Atomics.load(flags, WOKE), fired: Atomics.load(flags, FIRED) };
}

/**
 * Consumes the readiness a fresh registration reports at once (a socket is writable as soon as
 * it is registered), so the next run(true) really has nothing to report and blocks.
 */
function settle(loop) {
  for (let i = 0; i < 3; i++) loop.run(false);
}

/** Lets promise callbacks queued by a synchronous run() execute. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

for (const backend of testBackends()) {
  describe(`wake ${backend}`, () => {
    if (backend === "blocking") {
      test("blocking: a Worker's wake through loop.interruptHandle ends a loop.run(true) that waits for a timer", async () => {
        const loop = createLoop({ backend, guest: false });
        try {
          // The watchdog: if the wake does nothing, run(true) returns when this timer fires.
          const sleeping = track(loop.sleep(WATCHDOG_MS));
          const workers = await startWorkers({ watchdogFd: null, handle: loop.interruptHandle });
          let more;
          let at;
          try {
            more = loop.run(true);
            at = flagsNow(workers.flags);
          } finally {
            await stopWorkers(workers);
          }
          await flush();
          assert.equal(at.woke, 1, "run(true) returned before the worker woke it");
          assert.equal(sleeping.state, "pending", "run(true) waited for the timer instead of returning on the worker's wake");
          assert.equal(more, true, "run() returns true while a timer is pending");
        } finally {
          loop.dispose();
        }
      });

      test("blocking: loop.interrupt() before run(true) makes that run return without waiting for the timer", async () => {
        const loop = createLoop({ backend, guest: false });
        try {
          // The watchdog: if interrupt() does nothing, run(true) returns when this timer fires.
          const sleeping = track(loop.sleep(WATCHDOG_MS));
          loop.interrupt();
          assert.equal(loop.run(true), true);
          await flush();
          assert.equal(sleeping.state, "pending", "run(true) waited for the timer instead of returning on interrupt()");
        } finally {
          loop.dispose();
        }
      });
      return;
    }

    test("a Worker's wake through loop.interruptHandle ends a blocking loop.run(true)", async () => {
      const loop = createLoop({ backend, guest: false });
      const [a, b] = raw.socketPair();
      try {
        // Something pending that never completes on its own, so run(true) would block forever.
        const pending = track(loop.read(a, new Uint8Array(16)));
        settle(loop);
        const workers = await startWorkers({ watchdogFd: b, handle: loop.interruptHandle });
        let more;
        let at;
        try {
          more = loop.run(true);
          at = flagsNow(workers.flags);
        } finally {
          await stopWorkers(workers);
        }
        await flush();
        assert.equal(at.fired, 0, "the watchdog had to end run(true): the wake did not");
        assert.equal(at.woke, 1, "run(true) returned before the worker woke it");
        assert.equal(pending.state, "pending", "the read completed, so run(true) was ended by data, not by the wake");
        assert.equal(more, true, "run() returns true while work is pending");
        await loop.close(a);
        await flush();
        assert.equal(pending.state, "rejected");
        assert.equal(pending.reason.code, "EBADF");
      } finally {
        loop.dispose();
        raw.close(b);
      }
    });

    test("loop.interrupt() before run(true) makes that run return without blocking", async () => {
      const loop = createLoop({ backend, guest: false });
      const [a, b] = raw.socketPair();
      const flags = new SharedArrayBuffer(12);
      const watchdog = spawn(WATCHDOG_SOURCE, { flags, fd: b, ms: WATCHDOG_MS, socketUrl: SOCKET_URL });
      try {
        assert.equal(await firstMessage(watchdog), "armed");
        const pending = track(loop.read(a, new Uint8Array(16)));
        settle(loop);
        loop.interrupt();
        let more;
        let at;
        try {
          more = loop.run(true);
          at = flagsNow(new Int32Array(flags));
        } finally {
          const f = new Int32Array(flags);
          Atomics.store(f, CANCEL, 1);
          Atomics.notify(f, CANCEL);
          await watchdog.exited;
        }
        await flush();
        assert.equal(at.fired, 0, "the watchdog had to end run(true)");
        assert.equal(pending.state, "pending");
        assert.equal(more, true);
        await loop.close(a);
      } finally {
        loop.dispose();
        raw.close(b);
      }
    });
  });
}

for (const selector of readinessSelectors()) {
  describe(`wake Poll ${selector}`, () => {
    test("a Worker's Waker.fromHandle(handle).wake() ends poll(events) with no timeout, with the waker's token", async () => {
      const poll = new Poll(selector);
      const waker = new Waker(poll.registry, 77);
      // On Windows (AFD) a loopback TCP pair stands in for the pipe.
      const [r, w] = IS_WINDOWS ? raw.socketPair() : raw.pipe();
      poll.registry.register(r, 78, Interest.READABLE);
      const events = new Events(8);
      try {
        const workers = await startWorkers({ watchdogFd: w, handle: waker.handle });
        let at;
        try {
          poll.poll(events);
          at = flagsNow(workers.flags);
        } finally {
          await stopWorkers(workers);
        }
        const tokens = [...events].map((e) => e.token);
        assert.equal(at.fired, 0, "the watchdog had to end poll(): the wake did not");
        assert.equal(at.woke, 1, "poll() returned before the worker woke it");
        assert.deepEqual(tokens, [77]);
        // Poll.poll reset the waker: no leftover wake-up.
        poll.poll(events, 0);
        assert.deepEqual([...events].map((e) => e.token), []);
      } finally {
        waker.close();
        poll.close();
        raw.close(r);
        raw.close(w);
      }
    });
  });
}
