/**
 * The blocking backend on Windows, where the conformance suite does not reach: it is available
 * (after iocp); sockets made by `sys/socket.ts`, which Windows makes blocking, are put into
 * non-blocking mode by the loop before its first call on them, so an operation's timeout holds;
 * and that is remembered per number only until the loop closes the socket, so a new blocking
 * socket that reuses the number is made non-blocking again; a datagram longer than the buffer is
 * cut as on Linux. Skipped elsewhere.
 *
 * Everything here is on one thread and nothing can block for ever on a socket in non-blocking
 * mode; were the loop to skip FIONBIO, the read would block the thread, and the test runner's
 * per-test timeout would end the file.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { availableBackends, createLoop, TimeoutError } from "evloop";
import * as sock from "../../dist/sys/socket.js";
import * as win from "../../dist/sys/windows/socket.js";
import { C } from "../../dist/sys/target.js";

const WINDOWS = process.platform === "win32";
const LOOPBACK = { family: "ipv4", address: "127.0.0.1", port: 0 };

/** A blocking-mode listener on 127.0.0.1 (as `sys/socket.ts` makes it): { fd, address }. */
function listener() {
  const fd = sock.socket(C.AF_INET, C.SOCK_STREAM);
  sock.bind(fd, LOOPBACK);
  sock.listen(fd, 4);
  return { fd, address: sock.localAddress(fd) };
}

/** A new blocking-mode TCP socket whose number is `wanted` (bounded tries; null if none). */
function socketNumbered(wanted) {
  const spare = [];
  try {
    for (let i = 0; i < 32; i++) {
      const fd = sock.socket(C.AF_INET, C.SOCK_STREAM);
      if (fd === wanted) return fd;
      spare.push(fd);
    }
    return null;
  } finally {
    for (const fd of spare) sock.closeSocket(fd);
  }
}

describe("the blocking backend on Windows", { skip: !WINDOWS && "Windows only (npm run test:windows)" }, () => {
  test("availableBackends() is iocp, then blocking", () => {
    assert.deepEqual(availableBackends(), ["iocp", "blocking"]);
  });

  test("a socket Windows made blocking gets non-blocking on first use: a read times out; a reused number is made non-blocking again", async () => {
    const loop = createLoop({ backend: "blocking" });
    const l = listener();
    try {
      const client = sock.socket(C.AF_INET, C.SOCK_STREAM);
      // Completes against the backlog; then accept finds the connection there.
      await loop.connect(client, l.address);
      const accepted = await loop.accept(l.fd);
      await assert.rejects(loop.read(accepted, new Uint8Array(8), { timeout: 50 }), TimeoutError);
      await assert.rejects(loop.read(client, new Uint8Array(8), { timeout: 50 }), TimeoutError);
      assert.equal(await loop.write(client, new Uint8Array([1, 2, 3])), 3);
      assert.equal(await loop.read(accepted, new Uint8Array(8), { timeout: 5000 }), 3);
      await loop.close(accepted);
      // The number is free: a new blocking socket that takes it is not the one the loop knew.
      await loop.close(client);
      const reused = socketNumbered(client);
      assert.notEqual(reused, null, "precondition: a new socket reuses the number");
      try {
        await loop.connect(reused, l.address);
        const other = await loop.accept(l.fd);
        try {
          await assert.rejects(loop.read(reused, new Uint8Array(8), { timeout: 50 }), TimeoutError);
        } finally {
          await loop.close(other);
        }
      } finally {
        await loop.close(reused);
      }
    } finally {
      await loop.close(l.fd);
      loop.dispose();
    }
  });

  test("a datagram longer than the buffer fills it, the rest dropped, as on Linux (Winsock says WSAEMSGSIZE)", async () => {
    const loop = createLoop({ backend: "blocking" });
    const [a, b] = win.loopbackPair("dgram");
    try {
      const long = new Uint8Array(100).map((_, i) => i);
      for (let i = 0; i < 3; i++) assert.equal(win.sendNow(a, long), 100);
      const buf = new Uint8Array(10);
      assert.equal(await loop.read(b, buf, { timeout: 5000 }), 10);
      assert.deepEqual([...buf], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const [n, from] = await loop.receiveFrom(b, buf, { timeout: 5000 });
      assert.equal(n, 10);
      assert.equal(from.port, win.localAddress(a).port);
      const msg = await loop.receiveMessage(b, buf, 0, { timeout: 5000 });
      assert.equal(msg.bytes, 10);
      assert.equal(msg.truncated, true);
    } finally {
      await loop.close(a);
      await loop.close(b);
      loop.dispose();
    }
  });

  test("the loop's interrupt handle is the socket waker's (conformance/wake.test.mjs wakes it)", () => {
    const loop = createLoop({ backend: "blocking", guest: false });
    try {
      assert.equal(loop.interruptHandle.kind, "socket");
      assert.equal(typeof loop.interruptHandle.fd, "number");
    } finally {
      loop.dispose();
    }
  });
});
