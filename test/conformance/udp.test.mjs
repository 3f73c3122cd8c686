/**
 * UDP conformance: UdpSocket on every backend and driver mode.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { availableBackends, SystemError, TimeoutError, UdpSocket } from "evloop";
import { bytes, forEachLoop, hasIPv6Loopback, text } from "../helpers.mjs";

const HOST = "127.0.0.1";

forEachLoop("udp", (ctx) => {
  async function pair(host = HOST) {
    const a = await UdpSocket.bind({ host, port: 0, loop: ctx.loop });
    const b = await UdpSocket.bind({ host, port: 0, loop: ctx.loop });
    return [a, b];
  }

  test("UdpSocket round trip: receiveFrom reports the sender's address", () =>
    ctx.run(async () => {
      const [a, b] = await pair();
      try {
        assert.equal(a.address.family, "ipv4");
        assert.equal(a.address.address, HOST);
        assert.ok(a.address.port > 0);
        assert.equal(await a.sendTo(bytes("hello"), { address: HOST, port: b.address.port }), 5);
        const buf = new Uint8Array(64);
        const got = await b.receiveFrom(buf, { timeout: 5000 });
        assert.equal(got.bytes, 5);
        assert.equal(text(buf.subarray(0, got.bytes)), "hello");
        assert.deepEqual(got.address, { family: "ipv4", address: HOST, port: a.address.port });
        // Reply to the address we were given.
        await b.sendTo(bytes("world!"), got.address);
        const back = await a.receiveFrom(buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, back.bytes)), "world!");
        assert.deepEqual(back.address, b.address);
      } finally {
        await a.close();
        await b.close();
      }
    }));

  test("UdpSocket sends and receives an empty datagram", () =>
    ctx.run(async () => {
      const [a, b] = await pair();
      try {
        assert.equal(await a.sendTo(new Uint8Array(0), { address: HOST, port: b.address.port }), 0);
        await a.sendTo(bytes("next"), { address: HOST, port: b.address.port });
        const buf = new Uint8Array(16);
        const empty = await b.receiveFrom(buf, { timeout: 5000 });
        assert.equal(empty.bytes, 0, "the empty datagram arrives as its own datagram");
        assert.deepEqual(empty.address, a.address);
        const next = await b.receiveFrom(buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, next.bytes)), "next");
      } finally {
        await a.close();
        await b.close();
      }
    }));

  test("UdpSocket.receiveFrom() into a short buffer returns what fit and drops the rest", () =>
    ctx.run(async () => {
      const [a, b] = await pair();
      try {
        await a.sendTo(bytes("0123456789"), { address: HOST, port: b.address.port });
        await a.sendTo(bytes("second"), { address: HOST, port: b.address.port });
        const small = new Uint8Array(4);
        const got = await b.receiveFrom(small, { timeout: 5000 });
        assert.equal(got.bytes, 4);
        assert.equal(text(small), "0123");
        const buf = new Uint8Array(16);
        const next = await b.receiveFrom(buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, next.bytes)), "second", "the truncated datagram's tail is gone");
      } finally {
        await a.close();
        await b.close();
      }
    }));

  test("UdpSocket.connect() then send()/receive()", () =>
    ctx.run(async () => {
      const [a, b] = await pair();
      try {
        assert.equal(a.connected, false);
        await a.connect({ host: HOST, port: b.address.port });
        assert.equal(a.connected, true);
        assert.deepEqual(a.remoteAddress, b.address);
        assert.equal(await a.send(bytes("via send")), 8);
        const buf = new Uint8Array(32);
        const got = await b.receiveFrom(buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, got.bytes)), "via send");
        assert.deepEqual(got.address, a.address);
        await b.sendTo(bytes("reply"), a.address);
        const n = await a.receive(buf, { timeout: 5000 });
        assert.equal(n, 5);
        assert.equal(text(buf.subarray(0, n)), "reply");
      } finally {
        await a.close();
        await b.close();
      }
    }));

  test("UdpSocket.send() before connect() rejects with EDESTADDRREQ", () =>
    ctx.run(async () => {
      const a = await UdpSocket.bind({ host: HOST, port: 0, loop: ctx.loop });
      try {
        await assert.rejects(a.send(bytes("x")), (e) => e instanceof SystemError && e.code === "EDESTADDRREQ");
      } finally {
        await a.close();
      }
    }));

  test("UdpSocket.receiveFrom() with a timeout and nothing sent rejects with TimeoutError", () =>
    ctx.run(async () => {
      const a = await UdpSocket.bind({ host: HOST, port: 0, loop: ctx.loop });
      try {
        await assert.rejects(a.receiveFrom(new Uint8Array(8), { timeout: 30 }), (e) => e instanceof TimeoutError && e.code === "ETIMEDOUT");
      } finally {
        await a.close();
      }
    }));

  test("UdpSocket.sendTo() an IPv6 address from an IPv4 socket rejects with a clear EAFNOSUPPORT", () =>
    ctx.run(async () => {
      const a = await UdpSocket.bind({ host: HOST, port: 0, loop: ctx.loop });
      try {
        for (const target of [{ address: "::1", port: 9 }, { family: "ipv6", address: "::1", port: 9 }]) {
          await assert.rejects(a.sendTo(bytes("x"), target), (e) => {
            assert.ok(e instanceof SystemError, `expected a SystemError, got ${e}`);
            assert.equal(e.code, "EAFNOSUPPORT");
            assert.match(e.message, /IPv6/);
            return true;
          });
        }
      } finally {
        await a.close();
      }
    }));

  test("UdpSocket.sendTo() of a datagram larger than UDP allows rejects with EMSGSIZE", () =>
    ctx.run(async () => {
      const [a, b] = await pair();
      try {
        await assert.rejects(a.sendTo(new Uint8Array(70_000), { address: HOST, port: b.address.port }), (e) => {
          assert.ok(e instanceof SystemError, `expected a SystemError, got ${e}`);
          assert.equal(e.code, "EMSGSIZE");
          assert.equal(e.syscall, "sendto");
          return true;
        });
        // The socket still works.
        await a.sendTo(bytes("small"), { address: HOST, port: b.address.port });
        const buf = new Uint8Array(8);
        const got = await b.receiveFrom(buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, got.bytes)), "small");
      } finally {
        await a.close();
        await b.close();
      }
    }));

  test("UdpSocket round trip over IPv6 ::1", { skip: hasIPv6Loopback() ? false : "::1 is not configured on this host" }, () =>
    ctx.run(async () => {
      const [a, b] = await pair("::1");
      try {
        assert.equal(a.family, "ipv6");
        await a.sendTo(bytes("v6"), { address: "::1", port: b.address.port });
        const buf = new Uint8Array(8);
        const got = await b.receiveFrom(buf, { timeout: 5000 });
        assert.equal(text(buf.subarray(0, got.bytes)), "v6");
        assert.equal(got.address.family, "ipv6");
        assert.equal(got.address.address, "::1");
        assert.equal(got.address.port, a.address.port);
      } finally {
        await a.close();
        await b.close();
      }
    }));

  test("UdpSocket.bind() to a port in use rejects with EADDRINUSE", () =>
    ctx.run(async () => {
      const a = await UdpSocket.bind({ host: HOST, port: 0, loop: ctx.loop });
      try {
        await assert.rejects(UdpSocket.bind({ host: HOST, port: a.address.port, loop: ctx.loop }), (e) => {
          assert.ok(e instanceof SystemError);
          assert.equal(e.code, "EADDRINUSE");
          assert.equal(e.syscall, "bind");
          return true;
        });
      } finally {
        await a.close();
      }
    }));
});

test("UdpSocket.sendTo() rejects targets that are not IP addresses or valid ports", { skip: availableBackends().length === 0 && "no backend is available here" }, async () => {
  const a = await UdpSocket.bind({ host: HOST, port: 0 });
  try {
    const buf = bytes("x");
    await assert.rejects(a.sendTo(buf, { address: "not-an-ip", port: 9 }), TypeError);
    await assert.rejects(a.sendTo(buf, { address: "999.1.1.1", port: 9 }), TypeError);
    await assert.rejects(a.sendTo(buf, { address: HOST, port: 70000 }), RangeError);
    await assert.rejects(a.sendTo(buf, { address: HOST, port: -1 }), RangeError);
    await assert.rejects(a.sendTo(buf, { address: HOST, port: 0 }), RangeError);
    await assert.rejects(a.sendTo(buf, null), TypeError);
    await assert.rejects(a.sendTo(buf, { family: "unix", path: "/tmp/x" }), TypeError);
  } finally {
    await a.close();
  }
});
