/**
 * io_uring under load: 200 concurrent TCP connections over 127.0.0.1 to an echo server on the
 * same loop, with random message sizes and random aborts and timeouts cutting reads and writes
 * short mid-flight. Every byte must still be accounted for: no loss, no duplication, no
 * corruption, no fd left open. Runs in guest mode and in owner mode (`runMain`), each with the
 * default one-shot RECV and with multishot RECV; skipped where io_uring is unavailable.
 *
 * The protocol. From one seed (EVLOOP_STRESS_SEED, else random; every assertion message names
 * it) the test draws a 1.25 MiB corpus of random bytes and, per connection, a plan: 4 to 24
 * messages, each a slice of the corpus at a random offset, 1 byte to 256 KiB long (half of the
 * sizes log-uniform, half uniform). Each client runs two tasks at once:
 *
 * - the writer sends the plan's bytes in order with single `write()` calls, a quarter of them
 *   with an AbortController aborted after 0-4 ms and a quarter with a 1-5 ms `timeout`. The
 *   loop's contract makes this exact: a write that rejects sent none of its bytes, and one that
 *   resolves with n sent exactly its first n, so the writer retries from the first unsent byte
 *   and hashes (SHA-256) exactly what the loop says went out. Then it shuts its side down.
 * - the reader reads until end of stream with random buffer sizes (1 byte to 128 KiB), aborting
 *   or timing out reads in the same proportions. A read that rejects must have consumed nothing
 *   and left its buffer untouched (it is filled with a sentinel first); every byte a read
 *   returns is compared at once with the plan at that offset (a mismatch names the offset),
 *   and hashed.
 *
 * The echo server reads with random buffer sizes (a fifth of its reads with a 1-5 ms timeout,
 * retried) and writes back with `writeAll`; at end of stream it shuts its side down, so the
 * client's reader sees end of stream right after the last echoed byte.
 *
 * Writes only block, and so only give their aborts and timeouts something to cut, when buffers
 * fill: every other socket gets a small SO_SNDBUF, the server sometimes pauses 5-25 ms before
 * reading and the reader 1-15 ms, and the echo then backs up into the client's writes.
 *
 * At the end, per connection: bytes sent = bytes received = the plan's total, and the SHA-256 of
 * what was sent equals that of what came back. Aborted and timed-out reads and writes must each
 * have been observed, or the run did not exercise the cancel paths. The process's fds
 * (/proc/self/fd) are counted before the loop is created and after it is disposed: they must
 * match (the loop's own ring fd and eventfd included).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomInt } from "node:crypto";
import { availableBackends, createLoop, runMain, TcpListener, TcpStream, TimeoutError } from "evloop";
import { openFdCount, withWatchdog } from "../helpers.mjs";

// The public API has no SO_SNDBUF; the internal setsockopt wrapper sets it (see `smallSendBuffer`).
import { setIntOption } from "../../dist/sys/posix/socket.js";
import { C } from "../../dist/sys/target.js";
// The soak's seeded PRNG and size draws (cli/soak/common.ts: importing it runs nothing).
import { between, logSize, mulberry32 } from "../../dist-tools/cli/soak/common.js";

const skip = availableBackends().includes("io_uring") ? false : "io_uring is unavailable here (see `evloop info`)";

const HOST = "127.0.0.1";
const CONNECTIONS = 200;
const MIN_MESSAGES = 4;
const MAX_MESSAGES = 24;
const MAX_MESSAGE = 256 * 1024;
const MAX_READ = 128 * 1024;
const CORPUS_SIZE = 1024 * 1024 + MAX_MESSAGE;
/** Bound on one mode's body, on the loop's own timer (Node's do not run in owner mode). */
const WATCHDOG_MS = 45_000;
/** SO_SNDBUF of every other socket (the kernel doubles it): small enough that writes block. */
const SMALL_SNDBUF = 16 * 1024;
/** A byte no read may leave behind in its buffer when it rejects. */
const SENTINEL = 0xa5;

const SEED = process.env.EVLOOP_STRESS_SEED !== undefined ? Number(process.env.EVLOOP_STRESS_SEED) >>> 0 : randomInt(2 ** 32);

/**
 * The PRNG of one `purpose` (plan, server, writer, reader) of connection `index`: each draws the
 * same numbers whatever order the connections run in.
 */
const prngFor = (purpose, index) => mulberry32(SEED ^ Math.imul(purpose, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b));

function makeCorpus() {
  const rand = mulberry32(SEED);
  const words = new Uint32Array(CORPUS_SIZE / 4);
  for (let i = 0; i < words.length; i++) words[i] = Math.floor(rand() * 2 ** 32);
  return new Uint8Array(words.buffer);
}

/** Connection `index`'s messages: slices of the corpus, in sending order. */
function makePlan(corpus, index) {
  const rand = prngFor(1, index);
  const messages = [];
  for (let i = between(rand, MIN_MESSAGES, MAX_MESSAGES); i > 0; i--) {
    // Half log-uniform (mostly small), half uniform (mostly large: the bulk that fills buffers).
    const size = rand() < 0.5 ? logSize(rand, MAX_MESSAGE) : between(rand, 1, MAX_MESSAGE);
    const offset = between(rand, 0, corpus.length - size);
    messages.push(corpus.subarray(offset, offset + size));
  }
  return { messages, total: messages.reduce((sum, m) => sum + m.length, 0) };
}

/**
 * Caps a socket's send buffer. Loopback TCP grows it up to net.ipv4.tcp_wmem's maximum (4 MiB),
 * which swallows a whole connection's plan in one write: nothing would ever block, and the
 * aborts and timeouts of writes would have nothing to cut short.
 */
function smallSendBuffer(stream) {
  setIntOption(stream.fd, C.SOL_SOCKET, C.SO_SNDBUF, SMALL_SNDBUF);
}

const asBuffer = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);

/** Whether every byte of `buf` is the sentinel. */
function untouched(buf, sentinels) {
  return asBuffer(buf).equals(asBuffer(sentinels.subarray(0, buf.length)));
}

/** Counts of what the run observed, across all connections. */
function newCounters() {
  return {
    readAborts: 0, readTimeouts: 0, writeAborts: 0, writeTimeouts: 0, serverReadTimeouts: 0,
    partialWrites: 0, reads: 0, writes: 0, bytes: 0,
  };
}

/**
 * Options for one operation, drawn from `rand`: a quarter aborted after 0-4 ms (through
 * `loop.sleep`, which runs in owner mode too), a quarter with a 1-5 ms timeout, the rest plain.
 * `aborters` collects the abort timers so the body can wait for them before closing up.
 */
function cancelOptions(loop, rand, aborters) {
  const r = rand();
  if (r < 0.25) {
    const controller = new AbortController();
    const reason = new Error("aborted by the stress test");
    aborters.push(loop.sleep(between(rand, 0, 4)).then(() => controller.abort(reason), () => {}));
    return { kind: "abort", options: { signal: controller.signal }, reason };
  }
  if (r < 0.5) return { kind: "timeout", options: { timeout: between(rand, 1, 5) }, reason: null };
  return { kind: "plain", options: undefined, reason: null };
}

/**
 * Whether `error` is the rejection `cancel` asked for (its abort reason, or a TimeoutError);
 * anything else is rethrown, annotated with `where`.
 */
function expectCancelled(error, cancel, where) {
  if (cancel.kind === "abort" && error === cancel.reason) return "abort";
  if (cancel.kind === "timeout" && error instanceof TimeoutError && error.code === "ETIMEDOUT") return "timeout";
  throw new Error(`${where}: unexpected rejection of a ${cancel.kind} operation: ${error?.stack ?? error}`, { cause: error });
}

/** Echoes the `index`th accepted connection until end of stream, then shuts its side down. */
async function echo(loop, conn, index, counters) {
  const rand = prngFor(2, index);
  const buf = new Uint8Array(MAX_READ);
  for (;;) {
    // A pause backs the client's writes up (this side's receive buffers fill), so they block.
    if (rand() < 0.03) await loop.sleep(between(rand, 5, 25));
    const view = buf.subarray(0, logSize(rand, MAX_READ));
    const timeout = rand() < 0.2 ? between(rand, 1, 5) : undefined;
    let n;
    try {
      n = await conn.read(view, timeout === undefined ? undefined : { timeout });
    } catch (e) {
      if (timeout !== undefined && e instanceof TimeoutError) {
        counters.serverReadTimeouts++;
        continue;
      }
      throw e;
    }
    if (n === 0) break;
    await conn.writeAll(view.subarray(0, n));
  }
  await conn.shutdown();
}

/** Sends connection `c`'s plan with single, randomly cancelled writes, then shuts down. */
async function writer(loop, c, counters, aborters, label) {
  const rand = prngFor(3, c.index);
  for (const message of c.plan.messages) {
    for (let at = 0; at < message.length; ) {
      const chunk = message.subarray(at);
      const cancel = cancelOptions(loop, rand, aborters);
      let n;
      try {
        n = await c.stream.write(chunk, cancel.options);
      } catch (e) {
        // Nothing of `chunk` went out: the next write starts from the same byte.
        if (expectCancelled(e, cancel, `${label} write at byte ${c.sent}`) === "abort") counters.writeAborts++;
        else counters.writeTimeouts++;
        continue;
      }
      assert.ok(Number.isInteger(n) && n >= 1 && n <= chunk.length, `${label}: write of ${chunk.length} bytes resolved with ${n}`);
      counters.writes++;
      if (n < chunk.length) counters.partialWrites++;
      c.sentHash.update(chunk.subarray(0, n));
      c.sent += n;
      at += n;
    }
  }
  await c.stream.shutdown();
}

/**
 * Reads connection `c`'s echo to end of stream with randomly sized and cancelled reads,
 * checking every byte against the plan as it arrives.
 */
async function reader(loop, c, counters, aborters, label) {
  const rand = prngFor(4, c.index);
  const buf = new Uint8Array(MAX_READ);
  const sentinels = new Uint8Array(MAX_READ).fill(SENTINEL);
  let message = 0;
  let offset = 0;
  for (;;) {
    if (rand() < 0.05) await loop.sleep(between(rand, 1, 15));
    const view = buf.subarray(0, logSize(rand, MAX_READ));
    const cancel = cancelOptions(loop, rand, aborters);
    if (cancel.kind !== "plain") view.fill(SENTINEL);
    let n;
    try {
      n = await c.stream.read(view, cancel.options);
    } catch (e) {
      if (expectCancelled(e, cancel, `${label} read at byte ${c.received}`) === "abort") counters.readAborts++;
      else counters.readTimeouts++;
      assert.ok(untouched(view, sentinels), `${label}: a read of ${view.length} bytes at byte ${c.received} rejected (${cancel.kind}) but wrote into its buffer`);
      continue;
    }
    assert.ok(Number.isInteger(n) && n >= 0 && n <= view.length, `${label}: read of ${view.length} bytes resolved with ${n}`);
    if (n === 0) return;
    counters.reads++;
    const got = view.subarray(0, n);
    // Compare with the plan, message by message.
    for (let i = 0; i < n; ) {
      assert.ok(message < c.plan.messages.length, `${label}: received ${n - i} bytes beyond the ${c.plan.total} sent (duplicated data)`);
      const expected = c.plan.messages[message];
      const take = Math.min(n - i, expected.length - offset);
      const want = expected.subarray(offset, offset + take);
      const have = got.subarray(i, i + take);
      if (!asBuffer(have).equals(asBuffer(want))) {
        let k = 0;
        while (have[k] === want[k]) k++;
        assert.fail(`${label}: byte ${c.received + i + k} (message ${message}, offset ${offset + k}) is ${have[k]}, expected ${want[k]}: data lost, duplicated or corrupted`);
      }
      i += take;
      offset += take;
      if (offset === expected.length) {
        message++;
        offset = 0;
      }
    }
    c.receivedHash.update(got);
    c.received += n;
  }
}

/**
 * The test body: a listener, 200 connections, their echo handlers and clients, all on `loop`;
 * adds what it observed to `counters`. Throws on any loss, duplication or corruption.
 */
async function stress(loop, corpus, label, counters) {
  const listener = await TcpListener.bind({ host: HOST, port: 0, backlog: CONNECTIONS + 56, loop });
  const servers = [];
  const clients = [];
  const aborters = [];
  try {
    const accepting = (async () => {
      const handlers = [];
      for (let i = 0; i < CONNECTIONS; i++) {
        const conn = await listener.accept();
        servers.push(conn);
        if (i % 2 === 0) smallSendBuffer(conn);
        handlers.push(echo(loop, conn, i, counters));
      }
      await Promise.all(handlers);
    })();
    const connecting = Array.from({ length: CONNECTIONS }, async (_, index) => {
      const stream = await TcpStream.connect({ host: HOST, port: listener.address.port, loop });
      if (index % 2 === 0) smallSendBuffer(stream);
      const c = {
        index, stream, plan: makePlan(corpus, index),
        sent: 0, received: 0, sentHash: createHash("sha256"), receivedHash: createHash("sha256"),
      };
      clients.push(c);
      const where = `${label}, connection ${index}`;
      await Promise.all([writer(loop, c, counters, aborters, where), reader(loop, c, counters, aborters, where)]);
      return c;
    });
    const done = await Promise.all([...connecting, accepting]);
    // The abort timers are at most 4 ms long; let them all fire before the streams close.
    await Promise.all(aborters);
    for (const c of done.slice(0, CONNECTIONS)) {
      const where = `${label}, connection ${c.index}`;
      assert.equal(c.sent, c.plan.total, `${where}: the writer sent ${c.sent} of ${c.plan.total} bytes`);
      assert.equal(c.received, c.plan.total, `${where}: ${c.received} of ${c.plan.total} bytes came back`);
      assert.equal(c.receivedHash.digest("hex"), c.sentHash.digest("hex"), `${where}: the SHA-256 of the echo differs from what was sent`);
      counters.bytes += c.received;
    }
  } finally {
    for (const c of clients) await c.stream.close().catch(() => {});
    for (const s of servers) await s.close().catch(() => {});
    await listener.close().catch(() => {});
    await Promise.all(aborters);
  }
}

/**
 * The loop configurations: the default (one-shot RECV issued per read, cancelled in the kernel)
 * and multishot RECV (reads served from buffers the kernel keeps filling, cancelled in JS).
 */
const VARIANTS = [
  { label: "default", options: {} },
  { label: "multishot RECV", options: { ioUring: { multishotRecv: true } } },
];

describe("io_uring stress", { skip }, () => {
  const corpus = skip ? null : makeCorpus();

  for (const variant of VARIANTS) {
    for (const mode of ["guest", "owner"]) {
      const name = `${CONNECTIONS} echo connections with random sizes, aborts and timeouts lose no byte and leak no fd (${variant.label}, ${mode} mode)`;
      test(name, { timeout: 60_000 }, async (t) => {
        const label = `seed ${SEED}, ${variant.label}, ${mode} mode`;
        t.diagnostic(`seed ${SEED} (rerun with EVLOOP_STRESS_SEED=${SEED})`);
        const fdsBefore = openFdCount();
        const started = performance.now();
        const counters = newCounters();
        const loop = createLoop({ backend: "io_uring", guest: mode === "guest", ...variant.options });
        try {
          const body = () => withWatchdog(loop, () => stress(loop, corpus, label, counters), WATCHDOG_MS);
          if (mode === "guest") await body();
          else await runMain(body, { loop });
        } finally {
          loop.dispose();
        }
        const ms = Math.round(performance.now() - started);
        t.diagnostic(`${ms} ms, ${(counters.bytes / 2 ** 20).toFixed(1)} MiB echoed; ${JSON.stringify(counters)}`);
        assert.ok(counters.readAborts > 0, `${label}: no read was aborted mid-flight`);
        assert.ok(counters.readTimeouts > 0, `${label}: no read timed out`);
        assert.ok(counters.writeAborts > 0, `${label}: no write was aborted mid-flight`);
        assert.ok(counters.writeTimeouts > 0, `${label}: no write timed out`);
        assert.equal(openFdCount(), fdsBefore, `${label}: fds open before the loop was created vs after it was disposed`);
      });
    }
  }
});
