/**
 * Faults the user must never see: EINTR, EAGAIN and short transfers on the server's end of a
 * TCP or Unix stream, and EINTR from the loop's own kernel waits, while 512 KiB are echoed
 * through it. On every backend, variant and mode: every byte arrives once and in order (sha256
 * of what the peer sent, what the server read and what came back), nothing rejects, nothing
 * hangs (every operation has a timeout, every body a watchdog), and the fds come back to their
 * count before the test.
 *
 * The faults are scoped to the server's fd, so the peer (on the same loop, except on the
 * blocking backend, where it runs in a Worker with its own evloop and no faults) is untouched.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { TcpListener, UnixListener } from "evloop";
import { abstractName, forEachLoop, sha256 } from "../helpers.mjs";
import { fdBaseline, HOST, withFaults } from "./common.mjs";

const TOTAL = 512 * 1024;
const CHUNK = 64 * 1024;
const OP_TIMEOUT = 20_000;

/** The fault plans, given the server's fd. */
const PLANS = {
  "EINTR on every other read and write": (fd) => [
    { call: "read", errno: "EINTR", fd, every: 2 },
    { call: "write", errno: "EINTR", fd, every: 2 },
  ],
  "short reads (1000 bytes) and writes (777 bytes)": (fd) => [
    { call: "read", short: 1000, fd },
    { call: "write", short: 777, fd },
  ],
  "EAGAIN on every third read and write": (fd) => [
    { call: "read", errno: "EAGAIN", fd, every: 3 },
    { call: "write", errno: "EAGAIN", fd, every: 3 },
  ],
  "EINTR on every other wait of the loop (epoll_wait, kevent, poll, io_uring_enter)": () => [
    { call: "epoll_wait", errno: "EINTR", every: 2 },
    // kevent's changes (receipts only) never wait, so there an EINTR is retried.
    { call: "kevent", errno: "EINTR", every: 2 },
    { call: "poll", errno: "EINTR", every: 2 },
    // io_uring_enter reports EINTR only once it has submitted what it was given: perform it.
    { call: "io_uring_enter", errno: "EINTR", every: 2, perform: true },
  ],
};

/** The peer: connects, sends TOTAL random bytes while reading the echo, returns both hashes. */
async function echoClient({ evloop, loop, randomBytes, sha256 }, { kind, port, path, TOTAL, CHUNK, OP_TIMEOUT }) {
  const c =
    kind === "tcp"
      ? await evloop.TcpStream.connect({ host: "127.0.0.1", port, timeout: 5000, loop })
      : await evloop.UnixStream.connect({ path, timeout: 5000, loop });
  try {
    const sent = sha256();
    const echoed = sha256();
    const reader = (async () => {
      const buf = new Uint8Array(64 * 1024);
      let total = 0;
      for (;;) {
        const n = await c.read(buf, { timeout: OP_TIMEOUT });
        if (n === 0) return total;
        echoed.update(buf.subarray(0, n));
        total += n;
        if (total > TOTAL) throw new Error(`the echo is longer than the ${TOTAL} bytes sent`);
      }
    })();
    reader.catch(() => {}); // awaited below; a failed write must not leave it unhandled
    for (let at = 0; at < TOTAL; at += CHUNK) {
      const chunk = randomBytes(CHUNK);
      sent.update(chunk);
      await c.writeAll(chunk, { timeout: OP_TIMEOUT });
    }
    await c.shutdown();
    const total = await reader;
    return { sent: sent.digest("hex"), echoed: echoed.digest("hex"), total };
  } finally {
    await c.close();
  }
}

forEachLoop("faults: invisible to the user", (ctx) => {
  test("the peer thread is up before fds are counted", () =>
    ctx.run(async () => {
      // On the blocking backend the first peer starts a Worker, whose loop's fds stay open
      // until the block ends: start it here, so the tests below count only their own fds.
      const peer = ctx.peer(async () => 1);
      assert.equal(await peer.result(), 1);
    }));

  for (const kind of ["tcp", "unix"]) {
    for (const [name, plan] of Object.entries(PLANS)) {
      test(`${kind}: ${name}: 512 KiB echo intact`, () =>
        ctx.run(async () => {
          const fds = fdBaseline(ctx.blocking);
          const path = kind === "unix" ? abstractName() : undefined;
          const l = kind === "tcp" ? await TcpListener.bind({ host: HOST, port: 0, loop: ctx.loop }) : await UnixListener.bind({ path, loop: ctx.loop });
          let read = 0;
          const got = sha256();
          try {
            const peer = ctx.peer(echoClient, { kind, port: l.address.port, path, TOTAL, CHUNK, OP_TIMEOUT }, { timeout: 50_000 });
            const s = await l.accept({ timeout: 5000 });
            try {
              await withFaults(plan(s.fd), async (faults) => {
                // A few waits in the kernel for certain, whatever the transfer needs.
                for (let i = 0; i < 4; i++) await ctx.loop.sleep(1);
                const buf = new Uint8Array(64 * 1024);
                for (;;) {
                  const n = await s.read(buf, { timeout: OP_TIMEOUT });
                  if (n === 0) break;
                  got.update(buf.subarray(0, n));
                  read += n;
                  assert.ok(read <= TOTAL, `the server read more than the ${TOTAL} bytes sent`);
                  await s.writeAll(buf.subarray(0, n), { timeout: OP_TIMEOUT });
                }
                await s.shutdown();
                // The blocking backend in guest mode waits only inside operations that would block.
                if (!(ctx.blocking && ctx.mode === "guest")) assert.ok(faults.fired > 0, "no fault fired: the test tested nothing");
                for (const rule of faults.rules) {
                  // Each backend makes only one of the waits; and on io_uring a TCP stream may
                  // read through one multishot RECV, armed once, with no length to cut short.
                  const mayNotApply = rule.spec.fd === undefined || (ctx.backend === "io_uring" && rule.spec.call === "read" && kind === "tcp");
                  if (!mayNotApply) assert.ok(rule.fired > 0, `${rule.spec.call} ${rule.spec.errno ?? `short ${rule.spec.short}`} never fired`);
                }
              });
              const echo = await peer.result();
              assert.equal(read, TOTAL, "the server read every byte once");
              assert.equal(got.digest("hex"), echo.sent, "the server read exactly what the peer sent");
              assert.equal(echo.total, TOTAL, "the peer got every byte back once");
              assert.equal(echo.echoed, echo.sent, "the echo is exactly what the peer sent");
            } finally {
              await s.close();
            }
          } finally {
            await l.close();
          }
          fds.check();
        }, { timeout: 55_000 }));
    }
  }
});
