/**
 * The readiness API on Windows (the AFD selector) beyond the conformance file: a listener, its
 * clients and their transfers driven by nothing but `Poll` (mio's pattern: do I/O until it would
 * block, then `reregister`), a refused connect, and the handles a Poll opens (its completion
 * port and AFD device) all closed again by `close()`, polls in flight or not.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Events, Interest, Poll } from "evloop";
import * as win from "../../dist/sys/windows/socket.js";
import { ERRNO } from "../../dist/sys/target.js";
import { raw } from "../helpers.mjs";

const WOULD_BLOCK = win.WOULD_BLOCK;

/** A non-blocking TCP socket. */
function tcpSocket() {
  const fd = raw.tcpSocket();
  win.setNonBlocking(fd, true);
  return fd;
}

test("afd: 20 clients connect, send 256 KiB each and get it back, driven by Poll alone", () => {
  const CLIENTS = 20;
  const BYTES = 256 * 1024;
  const poll = new Poll();
  const events = new Events(64);
  const listener = raw.tcpListener(64);
  win.setNonBlocking(listener.fd, true);
  /** Every socket by token: { fd, role, out (bytes to send), sent, got (chunks), gotBytes }. */
  const conns = new Map();
  const digest = (chunks) => createHash("sha256").update(Buffer.concat(chunks)).digest("hex");
  const sentDigests = [];
  let nextToken = 1;
  const LISTENER = 0;
  try {
    poll.registry.register(listener.fd, LISTENER, Interest.READABLE);
    for (let i = 0; i < CLIENTS; i++) {
      const fd = tcpSocket();
      const out = new Uint8Array(BYTES).map((_, j) => (i * 7 + j * 13) & 0xff);
      sentDigests.push(digest([out]));
      const token = nextToken++;
      conns.set(token, { fd, role: "client", out, sent: 0, got: [], gotBytes: 0 });
      assert.ok([0, WOULD_BLOCK].includes(win.connect(fd, listener.address)));
      poll.registry.register(fd, token, Interest.READABLE | Interest.WRITABLE);
    }
    const buf = new Uint8Array(64 * 1024);
    const done = () => [...conns.values()].filter((c) => c.role === "client" && c.gotBytes === BYTES).length === CLIENTS;
    const until = Date.now() + 60_000;
    while (!done()) {
      assert.ok(Date.now() < until, "the transfers did not finish within 60 s");
      poll.poll(events, 1000);
      for (const e of events) {
        if (e.token === LISTENER) {
          for (let fd; (fd = win.accept(listener.fd)) !== WOULD_BLOCK; ) {
            const token = nextToken++;
            conns.set(token, { fd, role: "server", out: null, pending: [], sent: 0, got: [], gotBytes: 0 });
            poll.registry.register(fd, token, Interest.READABLE | Interest.WRITABLE);
          }
          poll.registry.reregister(listener.fd, LISTENER, Interest.READABLE);
          continue;
        }
        const c = conns.get(e.token);
        assert.ok(c, `an event for unknown token ${e.token}`);
        assert.equal(e.isError, false, `socket ${e.token} reported an error`);
        let blocked = false;
        if (e.isReadable) {
          for (;;) {
            const n = win.receiveNow(c.fd, buf);
            if (n === WOULD_BLOCK) {
              blocked = true;
              break;
            }
            if (n === 0) break;
            const chunk = buf.slice(0, n);
            if (c.role === "server") c.pending.push(chunk);
            else {
              c.got.push(chunk);
              c.gotBytes += n;
            }
          }
        }
        // Writes: a client its data, a server what it received (echo).
        for (;;) {
          const data = c.role === "client" ? c.out.subarray(c.sent) : c.pending[0];
          if (data === undefined || data.byteLength === 0) break;
          const n = win.sendNow(c.fd, data);
          if (n === WOULD_BLOCK) {
            blocked = true;
            break;
          }
          if (c.role === "client") c.sent += n;
          else if (n === data.byteLength) c.pending.shift();
          else c.pending[0] = data.subarray(n);
        }
        // mio's re-arm: a direction that would block is armed again (an echo server that has
        // data left to send must hear when the socket is writable again).
        if (blocked || (c.role === "server" && c.pending.length > 0)) {
          poll.registry.reregister(c.fd, e.token, Interest.READABLE | Interest.WRITABLE);
        }
      }
    }
    const clients = [...conns.values()].filter((c) => c.role === "client");
    assert.deepEqual(clients.map((c) => digest(c.got)), sentDigests, "every client got its own bytes back, in order");
  } finally {
    for (const c of conns.values()) {
      poll.registry.deregister(c.fd);
      raw.close(c.fd);
    }
    poll.registry.deregister(listener.fd);
    raw.close(listener.fd);
    poll.close();
  }
});

test("afd: a refused connect is reported as an error event, writable and readable", () => {
  const poll = new Poll();
  const events = new Events(8);
  // A port nothing listens on: bind a listener's address, then close it.
  const gone = raw.tcpListener(1);
  raw.close(gone.fd);
  const fd = tcpSocket();
  try {
    const rc = win.connect(fd, gone.address);
    assert.equal(rc, WOULD_BLOCK);
    poll.registry.register(fd, 5, Interest.WRITABLE);
    const until = Date.now() + 10_000;
    while (events.isEmpty && Date.now() < until) poll.poll(events, 1000);
    assert.equal(events.length, 1);
    const e = events.get(0);
    assert.equal(e.token, 5);
    assert.equal(e.isError, true);
    assert.equal(e.isWritable, true);
    assert.equal(win.socketError(fd), ERRNO.ECONNREFUSED, "SO_ERROR says why");
  } finally {
    poll.close();
    raw.close(fd);
  }
});

test("afd: Poll.close() with polls in flight and deregistered sockets leaves no handle open", () => {
  const events = new Events(64);
  const warm = new Poll();
  warm.close();
  const start = win.processHandleCount();
  for (let round = 0; round < 10; round++) {
    const poll = new Poll();
    const pairs = Array.from({ length: 8 }, () => raw.socketPair());
    try {
      pairs.forEach(([a, b], i) => {
        poll.registry.register(a, 2 * i, Interest.READABLE);
        poll.registry.register(b, 2 * i + 1, Interest.READABLE | Interest.WRITABLE);
      });
      poll.poll(events, 0); // submits every poll: the readable ones stay in flight
      for (const [a] of pairs.slice(0, 4)) poll.registry.deregister(a); // cancelled in flight
    } finally {
      poll.close();
      for (const [a, b] of pairs) {
        raw.close(a);
        raw.close(b);
      }
    }
  }
  assert.equal(win.processHandleCount(), start, "every completion port and AFD handle was closed");
});
