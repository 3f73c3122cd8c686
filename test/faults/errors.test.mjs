/**
 * Faults the user must see, as the right SystemError, after which evloop goes on working:
 * ECONNRESET on a read, EPIPE on a write, EMFILE/ENFILE/ENOMEM/ENOBUFS on accept (the listener
 * keeps serving, and the connection that waited is not lost), EMFILE/ENFILE on socket creation,
 * ECONNREFUSED on connect, ENOBUFS/ENOMEM on UDP sends and receives (the datagram is not lost);
 * and EINTR on connect, which must not. On every backend, variant and mode; fds back to where
 * they were.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { TcpListener, TcpStream, UdpSocket, UnixStream } from "evloop";
import { bytes, forEachLoop, readExactly, text } from "../helpers.mjs";
import { fdBaseline, HOST, rejectsWith, tcpPair, withFaults } from "./common.mjs";

forEachLoop("faults: errors the user sees", (ctx) => {
  /** Runs `body(l)` on a fresh listener, closes it, and checks that the fds are as they were. */
  async function withListener(body) {
    const fds = fdBaseline(ctx.blocking);
    const l = await TcpListener.bind({ host: HOST, port: 0, loop: ctx.loop });
    try {
      await body(l);
    } finally {
      await l.close();
    }
    fds.check();
  }

  /** Runs `body(c, s)` on a new connected pair through `l`, then closes the pair. */
  async function onPair(l, body) {
    const [c, s] = await tcpPair(ctx, l);
    try {
      await body(c, s);
    } finally {
      await c.close();
      await s.close();
    }
  }

  /** Runs `body(c, s)` on a connected pair through a fresh listener (see `withListener`). */
  const withPair = (body) => withListener((l) => onPair(l, body));

  /** Asserts that a new connection through `l` carries `message` from client to server. */
  const connectsThrough = (l, message) =>
    onPair(l, async (c, s) => {
      await c.writeAll(bytes(message));
      assert.equal(text(await readExactly(s, message.length, { timeout: 5000 })), message);
    });

  /** Runs `body(a, b)` on two fresh UDP sockets, closes them, and checks that the fds are as they were. */
  async function withUdpSockets(body) {
    const fds = fdBaseline(ctx.blocking);
    const a = await UdpSocket.bind({ host: HOST, port: 0, loop: ctx.loop });
    const b = await UdpSocket.bind({ host: HOST, port: 0, loop: ctx.loop });
    try {
      await body(a, b);
    } finally {
      await a.close();
      await b.close();
    }
    fds.check();
  }

  test("ECONNRESET on read rejects that read with ECONNRESET; nothing is consumed", () =>
    ctx.run(() =>
      withPair(async (c, s) => {
        await c.writeAll(bytes("kept"));
        await withFaults({ call: "read", errno: "ECONNRESET", fd: s.fd, times: 1 }, async (plan) => {
          await rejectsWith(s.read(new Uint8Array(16), { timeout: 5000 }), "ECONNRESET", "read");
          assert.equal(plan.fired, 1);
        });
        // The injected error took nothing: the bytes are all still there, once.
        assert.equal(text(await readExactly(s, 4, { timeout: 5000 })), "kept");
      }),
    ));

  test("EPIPE on write rejects that write with EPIPE; nothing is sent twice or lost", () =>
    ctx.run(() =>
      withPair(async (c, s) => {
        await withFaults({ call: "write", errno: "EPIPE", fd: s.fd, times: 1 }, async (plan) => {
          await rejectsWith(s.write(bytes("lost"), { timeout: 5000 }), "EPIPE", "write");
          assert.equal(plan.fired, 1);
        });
        await s.writeAll(bytes("after"), { timeout: 5000 });
        await s.shutdown();
        assert.equal(text(await readExactly(c, 5, { timeout: 5000 })), "after");
        assert.equal(await c.read(new Uint8Array(8), { timeout: 5000 }), 0, "nothing but the second write arrived");
      }),
    ));

  for (const code of ["EMFILE", "ENFILE", "ENOMEM", "ENOBUFS"]) {
    test(`${code} on accept reaches accept() as ${code}; the listener keeps serving, and the waiting connection is not lost`, () =>
      ctx.run(() =>
        withListener(async (l) => {
          // The connection completes against the backlog and waits there.
          const c = await TcpStream.connect({ host: HOST, port: l.address.port, timeout: 5000, loop: ctx.loop });
          try {
            await withFaults({ call: "accept", errno: code, fd: l.fd, times: 1 }, async (plan) => {
              await rejectsWith(l.accept({ timeout: 5000 }), code, "accept");
              assert.equal(plan.fired, 1);
            });
            const s = await l.accept({ timeout: 5000 });
            try {
              await c.writeAll(bytes("still here"));
              assert.equal(text(await readExactly(s, 10, { timeout: 5000 })), "still here");
            } finally {
              await s.close();
            }
            // And the next connection too.
            await connectsThrough(l, "next");
          } finally {
            await c.close();
          }
        }),
      ));
  }

  for (const code of ["EMFILE", "ENFILE"]) {
    test(`${code} on socket() rejects TcpStream.connect and UnixStream.pair with ${code}, leaking nothing`, () =>
      ctx.run(() =>
        withListener(async (l) => {
          await withFaults([{ call: "socket", errno: code, times: 1 }, { call: "socketpair", errno: code, times: 1 }], async (plan) => {
            await rejectsWith(TcpStream.connect({ host: HOST, port: l.address.port, timeout: 5000, loop: ctx.loop }), code, "socket");
            assert.throws(() => UnixStream.pair({ loop: ctx.loop }), (e) => e.code === code);
            assert.equal(plan.fired, 2);
          });
          await connectsThrough(l, "ok");
        }),
      ));
  }

  test("ECONNREFUSED on connect rejects with ECONNREFUSED and closes the socket", () =>
    ctx.run(() =>
      withListener(async (l) => {
        await withFaults({ call: "connect", errno: "ECONNREFUSED", times: 1 }, async (plan) => {
          await rejectsWith(TcpStream.connect({ host: HOST, port: l.address.port, timeout: 5000, loop: ctx.loop }), "ECONNREFUSED", "connect");
          assert.equal(plan.fired, 1);
        });
        // The refused attempt left nothing behind in the backlog or in the loop.
        await connectsThrough(l, "ok");
      }),
    ));

  test("EINTR on connect (the connection goes on) is invisible", () =>
    ctx.run(() =>
      withListener((l) =>
        withFaults({ call: "connect", errno: "EINTR", perform: true, times: 1 }, async (plan) => {
          await connectsThrough(l, "connected");
          // io_uring connects in the kernel, where this fault cannot be had.
          if (ctx.backend !== "io_uring") assert.equal(plan.fired, 1);
        }),
      ),
    ));

  for (const code of ["ENOBUFS", "ENOMEM"]) {
    test(`UDP: ${code} on sendTo and receiveFrom rejects with ${code}; the datagram is neither lost nor doubled`, () =>
      ctx.run(() =>
        withUdpSockets(async (a, b) => {
          const to = { address: HOST, port: b.address.port };
          await withFaults({ call: "sendto", errno: code, fd: a.fd, times: 1 }, async (plan) => {
            await rejectsWith(a.sendTo(bytes("first"), to), code, "sendto");
            assert.equal(plan.fired, 1);
          });
          await a.sendTo(bytes("second"), to);
          await a.sendTo(bytes("third"), to);
          const buf = new Uint8Array(16);
          await withFaults({ call: "recvfrom", errno: code, fd: b.fd, times: 1 }, async (plan) => {
            await rejectsWith(b.receiveFrom(buf, { timeout: 5000 }), code, "recvfrom");
            assert.equal(plan.fired, 1);
          });
          for (const want of ["second", "third"]) {
            const got = await b.receiveFrom(buf, { timeout: 5000 });
            assert.equal(text(buf.subarray(0, got.bytes)), want);
            assert.equal(got.address.port, a.address.port);
          }
        }),
      ));
  }

  test("UDP: 200 datagrams arrive exactly once while EINTR hits every other sendTo and receiveFrom", () =>
    ctx.run(() =>
      withUdpSockets(async (a, b) => {
        const to = { address: HOST, port: b.address.port };
        const buf = new Uint8Array(64);
        const specs = [
          { call: "sendto", errno: "EINTR", fd: a.fd, every: 2 },
          { call: "recvfrom", errno: "EINTR", fd: b.fd, every: 2 },
        ];
        await withFaults(specs, async (plan) => {
          // In rounds of 10 (well within the socket buffer), so no datagram can be dropped.
          for (let round = 0; round < 20; round++) {
            for (let i = 0; i < 10; i++) await a.sendTo(bytes(`datagram ${round * 10 + i}`), to);
            for (let i = 0; i < 10; i++) {
              const got = await b.receiveFrom(buf, { timeout: 5000 });
              assert.equal(text(buf.subarray(0, got.bytes)), `datagram ${round * 10 + i}`);
            }
          }
          assert.ok(plan.rules.every((r) => r.fired > 0), "both faults fired");
        });
      }),
    ));
});
