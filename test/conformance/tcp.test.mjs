/**
 * TCP conformance: TcpListener and TcpStream on every backend and driver mode.
 *
 * Where both ends must make progress at once (a transfer larger than the socket buffers, many
 * clients), the clients are a peer (`ctx.peer`): another thread on the blocking backend.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { SystemError, TcpListener, TcpStream, TimeoutError } from "evloop";
import {
  bytes, forEachLoop, hasIPv6Loopback, openFdCount, randomBytes, readExactly, readToEnd, sha256, text,
} from "../helpers.mjs";

const HOST = "127.0.0.1";

forEachLoop("tcp", (ctx) => {
  /** A listener on 127.0.0.1 and one connected pair: [client, server]. */
  async function connectedPair(listener) {
    const { port } = listener.address;
    return ctx.both(
      () => TcpStream.connect({ host: HOST, port, timeout: 5000, loop: ctx.loop }),
      () => listener.accept({ timeout: 5000 }),
    );
  }

  test("TcpStream round trip: connect, write, read, addresses", () =>
    ctx.run(async () => {
      const l = await TcpListener.bind({ host: HOST, port: 0, loop: ctx.loop });
      try {
        assert.equal(l.address.family, "ipv4");
        assert.equal(l.address.address, HOST);
        assert.ok(l.address.port > 0, "port 0 binds an ephemeral port");
        const [c, s] = await connectedPair(l);
        try {
          assert.deepEqual(c.remoteAddress, { family: "ipv4", address: HOST, port: l.address.port });
          assert.deepEqual(s.remoteAddress, c.localAddress);
          await c.writeAll(bytes("ping"));
          assert.equal(text(await readExactly(s, 4)), "ping");
          await s.writeAll(bytes("pong!"));
          assert.equal(text(await readExactly(c, 5)), "pong!");
        } finally {
          await c.close();
          await s.close();
        }
      } finally {
        await l.close();
      }
    }));

  test("TcpStream transfers 64 MiB intact while the peer reads concurrently (sha256 on both sides)", () =>
    ctx.run(async () => {
      const TOTAL = 64 * 1024 * 1024;
      const CHUNK = 1024 * 1024;
      const l = await TcpListener.bind({ host: HOST, port: 0, loop: ctx.loop });
      // The writer is the peer: it connects, sends TOTAL random bytes and returns their sha256.
      const writer = ctx.peer(async ({ evloop, loop, randomBytes, sha256 }, { port, TOTAL, CHUNK }) => {
        const c = await evloop.TcpStream.connect({ host: "127.0.0.1", port, timeout: 5000, loop });
        try {
          const sent = sha256();
          for (let at = 0; at < TOTAL; at += CHUNK) {
            const chunk = randomBytes(CHUNK);
            sent.update(chunk);
            await c.writeAll(chunk);
          }
          await c.shutdown();
          return sent.digest("hex");
        } finally {
          await c.close();
        }
      }, { port: l.address.port, TOTAL, CHUNK }, { timeout: 80_000 });
      const s = await l.accept({ timeout: 5000 });
      try {
        const received = sha256();
        const reader = (async () => {
          const buf = new Uint8Array(256 * 1024);
          let total = 0;
          for (;;) {
            const n = await s.read(buf);
            if (n === 0) return total;
            received.update(buf.subarray(0, n));
            total += n;
            if (total > TOTAL) throw new Error(`received more than the ${TOTAL} bytes sent`);
          }
        })();
        const total = await reader;
        assert.equal(total, TOTAL);
        assert.equal(received.digest("hex"), await writer.result());
      } finally {
        await s.close();
        await l.close();
      }
    }, { timeout: 90_000 }));

  test("TcpStream.shutdown() half-closes: the server reads EOF, can still write, and the client reads it", () =>
    ctx.run(async () => {
      const l = await TcpListener.bind({ host: HOST, port: 0, loop: ctx.loop });
      const [c, s] = await connectedPair(l);
      try {
        await c.writeAll(bytes("request"));
        await c.shutdown();
        assert.equal(text(await readExactly(s, 7)), "request");
        assert.equal(await s.read(new Uint8Array(16)), 0, "read returns 0 at EOF");
        assert.equal(await s.read(new Uint8Array(16)), 0, "and keeps returning 0");
        await s.writeAll(bytes("response after EOF"));
        await s.shutdown();
        assert.equal(text(await readToEnd(c)), "response after EOF");
      } finally {
        await c.close();
        await s.close();
        await l.close();
      }
    }));

  test("1,000 concurrent connections each echo a message", () =>
    ctx.run(async () => {
      const N = 1000;
      const l = await TcpListener.bind({ host: HOST, port: 0, backlog: 1024, loop: ctx.loop });
      // The clients are the peer; it returns how many got their own message back.
      const clients = ctx.peer(async ({ evloop, loop, bytes, text, readExactly }, { port, N }) => {
        const results = await Promise.all(
          Array.from({ length: N }, async (_, i) => {
            const c = await evloop.TcpStream.connect({ host: "127.0.0.1", port, timeout: 30_000, loop });
            try {
              const msg = `hello from client ${i}`;
              await c.writeAll(bytes(msg));
              const echo = text(await readExactly(c, msg.length, { timeout: 30_000 }));
              await c.shutdown();
              if ((await c.read(new Uint8Array(8), { timeout: 30_000 })) !== 0) throw new Error("the server sent more than the echo");
              return echo === msg;
            } finally {
              await c.close();
            }
          }),
        );
        return results.filter(Boolean).length;
      }, { port: l.address.port, N }, { timeout: 80_000 });
      let accepted = 0;
      const handlers = [];
      const server = (async () => {
        for await (const conn of l) {
          accepted++;
          handlers.push(
            (async () => {
              try {
                const buf = new Uint8Array(256);
                for (;;) {
                  const n = await conn.read(buf);
                  if (n === 0) break;
                  await conn.writeAll(buf.subarray(0, n));
                }
              } finally {
                await conn.close();
              }
            })(),
          );
          // On the blocking backend a further accept would wait for ever: stop after N.
          if (accepted === N) break;
        }
      })();
      try {
        await server;
        await Promise.all(handlers);
      } finally {
        await l.close();
      }
      assert.equal(accepted, N);
      assert.equal(await clients.result(), N, "every client got its own message back");
    }, { timeout: 90_000 }));

  // A new iteration waiting when the listener is closed: nothing ever waits on the blocking
  // backend, which runs the variant below instead.
  const pendingTest = ctx.blocking ? () => {} : test;

  if (ctx.blocking) {
    test("blocking: TcpListener async iteration yields connections; break keeps it open; an iteration after close yields nothing", () =>
      ctx.run(async () => {
        const l = await TcpListener.bind({ host: HOST, port: 0, loop: ctx.loop });
        const clients = [];
        try {
          const port = l.address.port;
          for (let i = 0; i < 3; i++) clients.push(await TcpStream.connect({ host: HOST, port, timeout: 5000, loop: ctx.loop }));
          const got = [];
          for await (const conn of l) {
            got.push(conn);
            if (got.length === 3) break;
          }
          const peers = new Set(got.map((s) => s.remoteAddress.port));
          assert.deepEqual(peers, new Set(clients.map((c) => c.localAddress.port)));
          for (const s of got) await s.close();
          assert.equal(l.closed, false, "breaking out of for-await leaves the listener open");
          await l.close();
          let n = 0;
          for await (const conn of l) {
            n++;
            await conn.close();
          }
          assert.equal(n, 0);
        } finally {
          for (const c of clients) await c.close();
          await l.close();
        }
      }));
  }

  pendingTest("TcpListener async iteration yields connections; break keeps it open; close ends the iteration", () =>
    ctx.run(async () => {
      const l = await TcpListener.bind({ host: HOST, port: 0, loop: ctx.loop });
      const clients = [];
      try {
        const port = l.address.port;
        for (let i = 0; i < 3; i++) clients.push(await TcpStream.connect({ host: HOST, port, timeout: 5000, loop: ctx.loop }));
        const got = [];
        for await (const conn of l) {
          got.push(conn);
          if (got.length === 3) break;
        }
        assert.equal(got.length, 3);
        // Each accepted connection is a distinct peer of one of the clients.
        const peers = new Set(got.map((s) => s.remoteAddress.port));
        assert.deepEqual(peers, new Set(clients.map((c) => c.localAddress.port)));
        for (const s of got) await s.close();
        assert.equal(l.closed, false, "breaking out of for-await leaves the listener open");
        // A new iteration waits; closing the listener ends it without an error.
        const iteration = (async () => {
          let n = 0;
          for await (const conn of l) {
            n++;
            await conn.close();
          }
          return n;
        })();
        await ctx.loop.sleep(20);
        await l.close();
        assert.equal(await iteration, 0);
      } finally {
        for (const c of clients) await c.close();
        await l.close();
      }
    }));

  test("TcpStream round trip over IPv6 ::1", { skip: hasIPv6Loopback() ? false : "::1 is not configured on this host" }, () =>
    ctx.run(async () => {
      const l = await TcpListener.bind({ host: "::1", port: 0, loop: ctx.loop });
      try {
        assert.equal(l.address.family, "ipv6");
        assert.equal(l.address.address, "::1");
        const [c, s] = await ctx.both(
          () => TcpStream.connect({ host: "::1", port: l.address.port, timeout: 5000, loop: ctx.loop }),
          () => l.accept({ timeout: 5000 }),
        );
        try {
          assert.equal(c.remoteAddress.family, "ipv6");
          assert.equal(c.remoteAddress.address, "::1");
          await c.writeAll(bytes("over v6"));
          assert.equal(text(await readExactly(s, 7)), "over v6");
          await s.writeAll(bytes("back"));
          assert.equal(text(await readExactly(c, 4)), "back");
        } finally {
          await c.close();
          await s.close();
        }
      } finally {
        await l.close();
      }
    }));

  test("TcpStream.connect({ host: 'localhost' }) reaches a listener on ::1 only", { skip: hasIPv6Loopback() ? false : "::1 is not configured on this host" }, () =>
    ctx.run(async () => {
      const l = await TcpListener.bind({ host: "::1", port: 0, ipv6Only: true, loop: ctx.loop });
      try {
        // 127.0.0.1 is tried first and refused; ::1 must then be tried.
        const [c, s] = await ctx.both(
          () => TcpStream.connect({ host: "localhost", port: l.address.port, timeout: 5000, loop: ctx.loop }),
          () => l.accept({ timeout: 5000 }),
        );
        assert.equal(c.remoteAddress.address, "::1");
        await c.close();
        await s.close();
      } finally {
        await l.close();
      }
    }));

  test("TcpStream.connect() to a closed port rejects with ECONNREFUSED and leaks no fd", () =>
    ctx.run(async () => {
      const l = await TcpListener.bind({ host: HOST, port: 0, loop: ctx.loop });
      const port = l.address.port;
      await l.close();
      const before = openFdCount();
      for (let i = 0; i < 5; i++) {
        await assert.rejects(TcpStream.connect({ host: HOST, port, timeout: 5000, loop: ctx.loop }), (e) => {
          assert.ok(e instanceof SystemError, `expected a SystemError, got ${e}`);
          assert.equal(e.code, "ECONNREFUSED");
          assert.equal(e.syscall, "connect");
          assert.match(e.message, new RegExp(`${port}`), "the message names the address");
          return true;
        });
      }
      assert.equal(openFdCount(), before, "a failed connect closes its socket");
    }));

  // Connect timeout, on loopback only. A listener with backlog 0 that never accepts has a full
  // accept queue after its first connection; Linux then drops further SYNs (with
  // net.ipv4.tcp_abort_on_overflow = 0, the default) instead of refusing them, so those connects
  // stay in SYN_SENT and only the timeout can end them. Which attempt is the first to hang
  // depends on the kernel's queue accounting (backlog + 1), so up to 8 sequential attempts are
  // made: at least one must time out, and every attempt must either connect or time out.
  test("TcpStream.connect() with a timeout to a listener whose accept queue is full rejects with TimeoutError ETIMEDOUT", (t) => {
    if (tcpAbortOnOverflow()) {
      t.skip("net.ipv4.tcp_abort_on_overflow = 1: a full queue refuses instead of dropping SYNs");
      return;
    }
    return ctx.run(async () => {
      const l = await TcpListener.bind({ host: HOST, port: 0, backlog: 0, loop: ctx.loop });
      const connected = [];
      const before = openFdCount();
      let timedOut = 0;
      try {
        for (let i = 0; i < 8 && timedOut === 0; i++) {
          try {
            connected.push(await TcpStream.connect({ host: HOST, port: l.address.port, timeout: 300, loop: ctx.loop }));
          } catch (e) {
            assert.ok(e instanceof TimeoutError, `expected a TimeoutError, got ${e}`);
            assert.ok(e instanceof SystemError);
            assert.equal(e.code, "ETIMEDOUT");
            assert.equal(e.syscall, "connect");
            timedOut++;
          }
        }
        assert.equal(timedOut, 1, "a connect to a full accept queue must time out");
        assert.equal(openFdCount(), before + connected.length, "the timed-out connect closed its socket");
      } finally {
        for (const c of connected) await c.close();
        await l.close();
      }
    });
  });
});

function tcpAbortOnOverflow() {
  try {
    return readFileSync("/proc/sys/net/ipv4/tcp_abort_on_overflow", "utf8").trim() === "1";
  } catch {
    return false;
  }
}

test("TcpStream.connect() rejects a bad port before doing anything", async () => {
  for (const port of [0, -1, 70000, 1.5, NaN]) {
    await assert.rejects(TcpStream.connect({ host: HOST, port }), RangeError, `port ${port}`);
  }
  await assert.rejects(TcpStream.connect({ host: HOST, port: "80" }), TypeError);
});
