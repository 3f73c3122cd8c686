/**
 * The socket classes on Windows, without an event loop: what they do before any operation is
 * handed to a loop (creating, configuring, binding and closing sockets through Winsock, via
 * `sys/socket.ts`), their errors' codes, and the Unix-only classes' refusal. Runs under the
 * Windows build of Node (under Wine here: `npm run test:windows`); skipped elsewhere.
 *
 * The classes get a stub loop that only holds and closes: nothing here waits for I/O, so the
 * test does not depend on the IOCP backend (the conformance suite covers the classes on it).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FileDescriptor, Pipe, SystemError, TcpListener, UdpSocket, UnixDatagram, UnixListener, UnixStream } from "evloop";
import * as sock from "../../dist/sys/socket.js";
import * as win from "../../dist/sys/windows/socket.js";
import { processHandleCount } from "../../dist/sys/windows/socket.js";
import { C, ERRNO } from "../../dist/sys/target.js";
import { ffi } from "../../dist/ffi/runtime/load.js";

const WINDOWS = process.platform === "win32";

/** Whether this "Windows" is Wine (its ntdll exports wine_get_version). */
function underWine() {
  const ntdll = ffi.open("ntdll.dll", { wine_get_version: { result: "cstring", params: [], optional: true } });
  return ntdll.wine_get_version !== undefined;
}

/**
 * The handle number the next socket gets. Wine hands out the lowest free handle, so while
 * nothing leaks this stays the same; Windows keeps a free list, where only the count tells.
 */
function nextSocketHandle() {
  const s = sock.socket(C.AF_INET, C.SOCK_STREAM);
  sock.closeSocket(s);
  return s;
}

/**
 * A stand-in EventLoop for handles that are only created, inspected and closed: closing closes
 * the socket through sys/socket.ts, as a loop's `close` would.
 */
function stubLoop() {
  const closed = [];
  return {
    closed,
    read: () => Promise.reject(new Error("the stub loop does no I/O")),
    hold: () => () => {},
    setRef: () => {},
    remove: () => {},
    close(fd) {
      closed.push(fd);
      sock.closeSocket(fd);
      return Promise.resolve();
    },
  };
}

/** Asserts that `fn` throws (or its promise rejects with) the Windows refusal for `what`. */
async function refuses(fn, what, instead) {
  let error;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof SystemError, `${what}: expected a SystemError, got ${error}`);
  assert.equal(error.code, "EOPNOTSUPP");
  assert.equal(error.errno, ERRNO.EOPNOTSUPP);
  assert.match(error.message, new RegExp(`^\\w+ EOPNOTSUPP: ${what.replace(".", "\\.")} is not supported on Windows: ${instead}`));
}

describe("sockets on Windows", { skip: !WINDOWS && "Windows only (npm run test:windows)" }, () => {
  test("TcpListener binds to 127.0.0.1:0, reports the port Winsock chose, and closes its socket", async () => {
    const loop = stubLoop();
    const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
    try {
      assert.equal(listener.address.family, "ipv4");
      assert.equal(listener.address.address, "127.0.0.1");
      assert.ok(listener.address.port > 0);
      assert.deepEqual(sock.localAddress(listener.fd), listener.address);
      assert.equal(sock.socketType(listener.fd), C.SOCK_STREAM);
      assert.equal(sock.socketDomain(listener.fd), C.AF_INET);
      assert.equal(sock.getIntOption(listener.fd, C.SOL_SOCKET, C.SO_ACCEPTCONN), 1);
      // No SO_REUSEADDR on Windows: there it would let another socket bind the port in use.
      assert.equal(sock.getIntOption(listener.fd, C.SOL_SOCKET, C.SO_REUSEADDR), 0);
    } finally {
      await listener.close();
    }
    assert.equal(loop.closed.length, 1);
    // Closed for real: the port can be bound again at once.
    const again = await TcpListener.bind({ host: "127.0.0.1", port: listener.address.port, loop });
    await again.close();
  });

  test("a port in use is EADDRINUSE, the code Linux gives, with Winsock's number", async () => {
    const loop = stubLoop();
    const first = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
    try {
      const e = await TcpListener.bind({ host: "127.0.0.1", port: first.address.port, loop }).catch((x) => x);
      assert.ok(e instanceof SystemError);
      assert.equal(e.code, "EADDRINUSE");
      assert.equal(e.errno, 10048); // WSAEADDRINUSE
      assert.equal(e.syscall, "bind");
      assert.match(e.message, new RegExp(`\\(127\\.0\\.0\\.1:${first.address.port}\\)$`));
      const u = await UdpSocket.bind({ host: "127.0.0.1", port: 0, loop });
      try {
        const ue = await UdpSocket.bind({ host: "127.0.0.1", port: u.address.port, loop }).catch((x) => x);
        assert.equal(ue.code, "EADDRINUSE");
      } finally {
        await u.close();
      }
    } finally {
      await first.close();
    }
  });

  test("Winsock errors of the other socket calls have Linux's codes", () => {
    const s = sock.socket(C.AF_INET, C.SOCK_STREAM);
    try {
      assert.throws(() => sock.remoteAddress(s), { code: "ENOTCONN", syscall: "getpeername" });
      assert.throws(() => sock.shutdown(s, C.SHUT_WR), { code: "ENOTCONN", syscall: "shutdown" });
      assert.throws(() => sock.bind(s, { family: "ipv4", address: "192.0.2.1", port: 0 }), { code: "EADDRNOTAVAIL" });
    } finally {
      sock.closeSocket(s);
    }
    // Closed already: Winsock says WSAENOTSOCK, and CloseHandle (tried for handles that are not
    // sockets) ERROR_INVALID_HANDLE: EBADF, as close(2) of a closed fd on Linux.
    assert.throws(() => sock.closeSocket(s), { code: "EBADF" });
  });

  test("IPv6 listeners: ::1, and :: accepting IPv4 too unless ipv6Only", async () => {
    const loop = stubLoop();
    const one = await TcpListener.bind({ host: "::1", port: 0, loop });
    const dual = await TcpListener.bind({ host: "::", port: 0, loop });
    const only = await TcpListener.bind({ host: "::", port: 0, ipv6Only: true, loop });
    try {
      assert.deepEqual({ ...one.address, port: 0 }, { family: "ipv6", address: "::1", port: 0 });
      assert.equal(sock.socketDomain(one.fd), C.AF_INET6);
      // Windows' default is IPv6 only; evloop clears it so "::" behaves as on Linux.
      assert.equal(sock.getIntOption(dual.fd, C.IPPROTO_IPV6, C.IPV6_V6ONLY), 0);
      assert.equal(sock.getIntOption(only.fd, C.IPPROTO_IPV6, C.IPV6_V6ONLY), 1);
      // The dual-stack listener holds the IPv4 port as well.
      const clash = await TcpListener.bind({ host: "0.0.0.0", port: dual.address.port, loop }).catch((x) => x);
      assert.equal(clash.code, "EADDRINUSE");
    } finally {
      await Promise.all([one.close(), dual.close(), only.close()]);
    }
  });

  test("UdpSocket binds, shares a port with reusePort (SO_REUSEADDR on Windows), and sets its options", async () => {
    const loop = stubLoop();
    const a = await UdpSocket.bind({ host: "127.0.0.1", port: 0, reusePort: true, broadcast: true, loop });
    try {
      assert.equal(a.address.family, "ipv4");
      assert.ok(a.address.port > 0);
      assert.equal(sock.socketType(a.fd), C.SOCK_DGRAM);
      assert.equal(sock.getIntOption(a.fd, C.SOL_SOCKET, C.SO_BROADCAST), 1);
      assert.equal(sock.getIntOption(a.fd, C.SOL_SOCKET, C.SO_REUSEADDR), 1);
      const b = await UdpSocket.bind({ host: "127.0.0.1", port: a.address.port, reuseAddress: true, loop });
      assert.equal(b.address.port, a.address.port);
      await b.close();
      const v6 = await UdpSocket.bind({ host: "::", port: 0, loop });
      assert.equal(v6.family, "ipv6");
      assert.equal(sock.getIntOption(v6.fd, C.IPPROTO_IPV6, C.IPV6_V6ONLY), 0);
      await v6.close();
    } finally {
      await a.close();
    }
  });

  test("keep-alive with an idle time works where TCP_KEEPALIVE does not (Wine: SIO_KEEPALIVE_VALS)", () => {
    const s = sock.socket(C.AF_INET, C.SOCK_STREAM);
    try {
      sock.setKeepAlive(s, true, 30);
      assert.equal(sock.getIntOption(s, C.SOL_SOCKET, C.SO_KEEPALIVE), 1);
      sock.setKeepAlive(s, false);
      assert.equal(sock.getIntOption(s, C.SOL_SOCKET, C.SO_KEEPALIVE), 0);
      sock.setIntOption(s, C.IPPROTO_TCP, C.TCP_NODELAY, 1);
      assert.equal(sock.getIntOption(s, C.IPPROTO_TCP, C.TCP_NODELAY), 1);
      // Known before bind, as SO_DOMAIN is on Linux (getsockname would say EINVAL).
      assert.equal(sock.socketDomain(s), C.AF_INET);
    } finally {
      sock.closeSocket(s);
    }
  });

  test("no socket leaks: binds, failed binds and closes leave the handle count as it was", async () => {
    const loop = stubLoop();
    const keep = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
    const before = processHandleCount();
    const next = nextSocketHandle();
    for (let i = 0; i < 20; i++) {
      const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
      await l.close();
      await assert.rejects(TcpListener.bind({ host: "127.0.0.1", port: keep.address.port, loop }), { code: "EADDRINUSE" });
      const u = await UdpSocket.bind({ host: "127.0.0.1", port: 0, loop });
      await u.close();
    }
    // Wine's count leaves sockets out; its handle numbers tell instead.
    assert.equal(processHandleCount(), before);
    if (underWine()) assert.equal(nextSocketHandle(), next);
    await keep.close();
  });

  test("the Unix-only classes refuse with a SystemError EOPNOTSUPP naming the alternative", async () => {
    await refuses(() => UnixStream.connect({ path: "C:\\evloop.sock" }), "UnixStream", "use TcpStream on 127\\.0\\.0\\.1");
    await refuses(() => UnixStream.pair(), "UnixStream.pair", "connect a TcpStream to a TcpListener on 127\\.0\\.0\\.1");
    await refuses(() => UnixListener.bind({ path: "C:\\evloop.sock" }), "UnixListener", "use TcpListener on 127\\.0\\.0\\.1");
    await refuses(() => UnixDatagram.bind({ path: "C:\\evloop.sock" }), "UnixDatagram", "use UdpSocket on 127\\.0\\.0\\.1");
    await refuses(() => UnixDatagram.unbound(), "UnixDatagram", "use UdpSocket on 127\\.0\\.0\\.1");
    await refuses(() => UnixDatagram.pair(), "UnixDatagram.pair", "use two UdpSockets on 127\\.0\\.0\\.1");
    // FileDescriptor adopts sockets on Windows (the handles IOCP drives), nothing else.
    assert.throws(() => FileDescriptor.from(0, { owned: false }), { code: "EBADF", message: /0 is not an open socket, and FileDescriptor adopts only sockets on Windows/ });
    const [a, b] = win.loopbackPair();
    try {
      const f = FileDescriptor.from(a, { owned: false });
      assert.equal(f.fd, a);
      assert.equal(f.release(), a);
    } finally {
      win.closeSocket(a);
      win.closeSocket(b);
    }
    await refuses(() => Pipe.create(), "Pipe", "connect a TcpStream to a TcpListener on 127\\.0\\.0\\.1");
    // Synchronous factories throw, async ones reject: never a throw from an async one.
    assert.ok(UnixStream.connect({ path: "x" }).catch(() => {}) instanceof Promise);
    // Winsock itself has no socketpair, and says so the same way.
    assert.throws(() => sock.socketPair(C.AF_UNIX, C.SOCK_STREAM), { code: "EOPNOTSUPP", syscall: "socketpair" });
  });
});
