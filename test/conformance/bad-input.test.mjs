/**
 * Misuse gets a clear error — the right class, code and message — never a crash, a hang or a
 * silently wrong result: bad sizes and timeouts, detached buffers, closed and foreign fds,
 * ports in use, bad addresses and wrong families.
 *
 * Loop methods may throw synchronously or return a rejected promise for bad arguments (the
 * contract allows both), so they are called inside `async () => …`, which turns either into a
 * rejection.
 *
 * On the blocking backend a buffer cannot be detached while its operation waits (the operation
 * holds the thread): "blocking:" tests check instead that a buffer detached before the call is
 * refused before the syscall, so no data is taken or sent.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  availableBackends, createLoop, FileDescriptor, SystemError, TcpListener, TcpStream, UdpSocket,
} from "evloop";
import { allZero, bytes, forEachLoop, IS_WINDOWS, raw, streamPair, text, track } from "../helpers.mjs";

/** A Uint8Array whose ArrayBuffer has been transferred away (detached). */
function detached(size = 8) {
  const buf = new Uint8Array(size);
  structuredClone(buf.buffer, { transfer: [buf.buffer] });
  assert.equal(buf.byteLength, 0, "the test could not detach a buffer");
  return buf;
}

/** A validator for assert.rejects: a SystemError with `code` (and `syscall`, if given). */
function systemError(code, syscall) {
  return (e) => {
    assert.ok(e instanceof SystemError, `expected a SystemError ${code}, got ${e?.name}: ${e?.message}`);
    assert.equal(e.code, code);
    if (syscall) assert.equal(e.syscall, syscall);
    assert.ok(e.message.includes(code), `the message names the code: ${e.message}`);
    return true;
  };
}

forEachLoop("bad input", (ctx) => {
  const spin = async () => {
    for (let i = 0; i < 3; i++) await ctx.loop.sleep(5);
  };

  /** Runs `body(a, b)` with a fresh socket pair and closes it afterwards. */
  async function withPair(body, kind = "stream") {
    const [a, b] = raw.socketPair(kind);
    try {
      await body(a, b);
    } finally {
      await ctx.loop.close(a);
      raw.close(b);
    }
  }

  test("negative, fractional and NaN sizes and counts are RangeErrors", () =>
    ctx.run(() =>
      withPair(async (a) => {
        const buf = new Uint8Array(8);
        // With a timeout: a backend that skipped the check would wait for data on `a`, and on the
        // blocking backend nothing else could end that wait.
        for (const maxFds of [-1, NaN, 1.5, 254, Infinity]) {
          await assert.rejects(async () => ctx.loop.receiveMessage(a, buf, maxFds, { timeout: 1000 }), RangeError, `maxFds ${maxFds}`);
        }
        for (const ms of [-1, NaN, Infinity, 2 ** 31]) {
          await assert.rejects(async () => ctx.loop.sleep(ms), RangeError, `sleep(${ms})`);
        }
        await assert.rejects(async () => ctx.loop.sleep("10"), (e) => e instanceof TypeError || e instanceof RangeError);
        for (const timeout of [-5, NaN, -Infinity, 2 ** 31]) {
          await assert.rejects(async () => ctx.loop.read(a, buf, { timeout }), RangeError, `timeout ${timeout}`);
          await assert.rejects(async () => ctx.loop.write(a, buf, { timeout }), RangeError, `timeout ${timeout}`);
        }
        await assert.rejects(async () => ctx.loop.read(a, new Uint8Array(0)), RangeError, "an empty read buffer is indistinguishable from EOF");
        await assert.rejects(async () => ctx.loop.write(a, new Uint8Array(0)), RangeError);
      }),
    ));

  test("malformed options are TypeErrors", () =>
    ctx.run(() =>
      withPair(async (a) => {
        const buf = new Uint8Array(8);
        await assert.rejects(async () => ctx.loop.read(a, buf, { signal: {} }), TypeError);
        await assert.rejects(async () => ctx.loop.read(a, buf, { signal: "abort" }), TypeError);
        await assert.rejects(async () => ctx.loop.read(a, buf, 5), TypeError);
        await assert.rejects(async () => ctx.loop.sleep(1, { signal: 1 }), TypeError);
        // Found by test/property/options.test.mjs: without removeEventListener, which runs when
        // the operation settles, this was accepted and then crashed the process from the loop.
        const noRemove = { aborted: false, addEventListener() {} };
        await assert.rejects(async () => ctx.loop.read(a, buf, { signal: noRemove }), TypeError);
        await assert.rejects(async () => ctx.loop.sleep(1, { signal: noRemove }), TypeError);
      }),
    ));

  test("buffers that are not Uint8Arrays are TypeErrors", () =>
    ctx.run(() =>
      withPair(async (a) => {
        for (const bad of [new ArrayBuffer(8), "abc", null, undefined, [1, 2, 3], new Uint16Array(4), new DataView(new ArrayBuffer(8))]) {
          await assert.rejects(async () => ctx.loop.read(a, bad), TypeError, `read into ${Object.prototype.toString.call(bad)}`);
          await assert.rejects(async () => ctx.loop.write(a, bad), TypeError, `write from ${Object.prototype.toString.call(bad)}`);
        }
        await assert.rejects(async () => ctx.loop.sendMessage(a, "not an array", []), TypeError);
        await assert.rejects(async () => ctx.loop.sendMessage(a, [new ArrayBuffer(1)], []), TypeError);
      }),
    ));

  test("detached buffers are TypeErrors for every operation that takes a buffer", () =>
    ctx.run(() =>
      withPair(async (a) => {
        await assert.rejects(async () => ctx.loop.read(a, detached()), TypeError);
        await assert.rejects(async () => ctx.loop.write(a, detached()), TypeError);
        await assert.rejects(async () => ctx.loop.receiveMessage(a, detached(), 0), TypeError);
        await assert.rejects(async () => ctx.loop.sendMessage(a, [detached()], []), TypeError);
        await assert.rejects(async () => ctx.loop.receiveFrom(a, detached()), TypeError);
        await assert.rejects(async () => ctx.loop.sendTo(a, detached(), { family: "unix", path: "\0x" }), TypeError);
        const [x, y] = await streamPair(ctx.loop);
        try {
          await assert.rejects(x.read(detached()), TypeError);
          await assert.rejects(x.write(detached()), TypeError);
          await assert.rejects(x.writeAll(detached()), TypeError);
        } finally {
          await x.close();
          await y.close();
        }
      }),
    ));

  // Buffers detached while their operation waits: no operation ever waits on the blocking
  // backend, whose variants are declared below.
  const pendingTest = ctx.blocking ? () => {} : test;

  if (ctx.blocking) {
    test("blocking: a read into a buffer detached before the call rejects with TypeError and leaves the data for the next read", () =>
      ctx.run(() =>
        withPair(async (a, b) => {
          raw.write(b, bytes("data"));
          await assert.rejects(async () => ctx.loop.read(a, detached()), TypeError);
          const next = new Uint8Array(8);
          const n = await ctx.loop.read(a, next, { timeout: 5000 });
          assert.equal(text(next.subarray(0, n)), "data", "the data is kept for the next read");
        }),
      ));

    test("blocking: a write from a buffer detached before the call rejects with TypeError and sends nothing", () =>
      ctx.run(() =>
        withPair(async (a, b) => {
          await assert.rejects(async () => ctx.loop.write(a, detached()), TypeError);
          await assert.rejects(async () => ctx.loop.sendMessage(a, [bytes("x"), detached()], []), TypeError);
          assert.equal(raw.read(b, new Uint8Array(8)), -1, "a refused write sent bytes");
        }),
      ));
  }

  pendingTest("a read whose buffer is detached while it waits rejects with TypeError, not a false EOF", () =>
    ctx.run(() =>
      withPair(async (a, b) => {
        const buf = new Uint8Array(8);
        const reading = track(ctx.loop.read(a, buf));
        await spin();
        const moved = structuredClone(buf.buffer, { transfer: [buf.buffer] });
        raw.write(b, bytes("data"));
        await spin();
        assert.notEqual(reading.state, "pending", "the read neither completed nor failed");
        assert.equal(reading.state, "rejected", `the read resolved with ${reading.value} (taken as EOF)`);
        assert.ok(reading.reason instanceof TypeError, `expected TypeError, got ${reading.reason}`);
        assert.ok(allZero(new Uint8Array(moved)), "the kernel wrote into the transferred memory");
        const next = new Uint8Array(8);
        const n = await ctx.loop.read(a, next, { timeout: 5000 });
        assert.equal(text(next.subarray(0, n)), "data", "the data is kept for the next read");
      }),
    ));

  pendingTest("a write whose buffer is detached while it waits rejects with TypeError, not 0 bytes written", () =>
    ctx.run(() =>
      withPair(async (a, b) => {
        const filled = raw.fill(a);
        const buf = new Uint8Array(8).fill(7);
        const writing = track(ctx.loop.write(a, buf));
        await spin();
        structuredClone(buf.buffer, { transfer: [buf.buffer] });
        if (ctx.backend === "iocp") {
          // On iocp a write's bytes are copied into native memory when it starts, so this one,
          // started before the detach, resolves with its full count once the peer reads. What
          // the test is about still holds: never 0 bytes written, nothing sent from freed memory
          // (the peer gets the filler, then exactly the 8 bytes the buffer held).
          const got = new Uint8Array(filled + 16);
          let received = 0;
          for (let i = 0; i < 1000 && received < filled + 8; i++) {
            const n = raw.read(b, got.subarray(received));
            if (n > 0) received += n;
            else await ctx.loop.sleep(5);
          }
          await spin();
          assert.equal(writing.state, "fulfilled", `the write did not complete: ${writing.reason}`);
          assert.equal(writing.value, 8, "a write that started before the detach sends all of its bytes");
          assert.equal(received, filled + 8, "the peer gets the filler and the write's bytes, nothing more");
          assert.deepEqual(got.subarray(filled, filled + 8), new Uint8Array(8).fill(7), "the write sent what the buffer held when it started");
          return;
        }
        raw.drain(b);
        await spin();
        assert.equal(writing.state, "rejected", `the write resolved with ${writing.value}; write() must move at least one byte`);
        assert.ok(writing.reason instanceof TypeError, `expected TypeError, got ${writing.reason}`);
      }),
    ));

  test("fds that are not non-negative integers are TypeErrors", () =>
    ctx.run(async () => {
      // With a timeout: a backend that passed such a number on to poll(2) would wait there (2^31
      // becomes a negative fd, which poll ignores), and on the blocking backend nothing else could
      // end that wait.
      for (const fd of [-1, 1.5, "3", null, undefined, NaN, 2 ** 31]) {
        await assert.rejects(async () => ctx.loop.read(fd, new Uint8Array(4), { timeout: 1000 }), TypeError, `fd ${String(fd)}`);
        await assert.rejects(async () => ctx.loop.waitReadable(fd, { timeout: 1000 }), TypeError, `fd ${String(fd)}`);
      }
      await assert.rejects(async () => ctx.loop.close(-1), TypeError);
      assert.throws(() => FileDescriptor.from(-1, { loop: ctx.loop }), TypeError);
      assert.throws(() => FileDescriptor.from("0", { loop: ctx.loop }), TypeError);
    }));

  // Found by test/property/options.test.mjs: past the fast-path budget the poll backend parks
  // the read before trying it, and in guest mode uv_poll_init refused the fd with a plain Error
  // ("uv_poll_init failed (-9)") and left it registered with the selector.
  test("a read on an fd number nobody opened rejects with EBADF, also past the fast-path budget", () =>
    ctx.run(() =>
      withPair(async (a, b) => {
        raw.write(b, new Uint8Array(300));
        const reads = [];
        for (let i = 0; i < 200; i++) reads.push(ctx.loop.read(a, new Uint8Array(1), { timeout: 5000 }));
        const unopened = 2 ** 30;
        await assert.rejects(async () => ctx.loop.read(unopened, new Uint8Array(8), { timeout: 1000 }), systemError("EBADF"));
        assert.deepEqual(await Promise.all(reads), new Array(200).fill(1));
        await assert.rejects(async () => ctx.loop.read(unopened, new Uint8Array(8), { timeout: 1000 }), systemError("EBADF"));
      }),
    ));

  test("operations on a closed fd number reject with EBADF", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      raw.close(a);
      raw.close(b);
      // Nothing runs between the close and these calls, so the numbers are still free.
      await assert.rejects(async () => ctx.loop.read(a, new Uint8Array(4)), systemError("EBADF", "read"));
      await assert.rejects(async () => ctx.loop.write(a, new Uint8Array(4)), systemError("EBADF", "write"));
      await assert.rejects(async () => ctx.loop.accept(a), systemError("EBADF", "accept"));
      await assert.rejects(async () => ctx.loop.waitReadable(a), systemError("EBADF"));
      await assert.rejects(async () => ctx.loop.waitWritable(a), systemError("EBADF"));
      assert.throws(() => FileDescriptor.from(a, { loop: ctx.loop }), systemError("EBADF"));
    }));

  test("socket operations on a non-socket (a pipe) reject with ENOTSOCK", { skip: IS_WINDOWS && "a non-socket fd (a pipe) is Unix-only: on Windows evloop drives sockets only" }, () =>
    ctx.run(async () => {
      const [r, w] = raw.pipe();
      try {
        await assert.rejects(async () => ctx.loop.accept(r), systemError("ENOTSOCK", "accept"));
        await assert.rejects(async () => ctx.loop.connect(r, { family: "ipv4", address: "127.0.0.1", port: 9 }), systemError("ENOTSOCK", "connect"));
        await assert.rejects(async () => ctx.loop.receiveFrom(r, new Uint8Array(4)), systemError("ENOTSOCK"));
        await assert.rejects(async () => ctx.loop.sendMessage(w, [bytes("x")], []), systemError("ENOTSOCK"));
      } finally {
        await ctx.loop.close(r);
        await ctx.loop.close(w);
      }
    }));

  test("passing a closed fd with SCM_RIGHTS rejects with EBADF", { skip: process.platform === "win32" && "SCM_RIGHTS fd passing is Unix-only" }, () =>
    ctx.run(() =>
      withPair(async (a) => {
        const [p, q] = raw.pipe();
        raw.close(p);
        raw.close(q);
        await assert.rejects(async () => ctx.loop.sendMessage(a, [bytes("x")], [p]), systemError("EBADF", "sendmsg"));
      }),
    ));

  test("bad socket addresses are TypeErrors/RangeErrors; a wrong family is EAFNOSUPPORT", () =>
    ctx.run(async () => {
      const fd = raw.tcpSocket();
      try {
        const bad = [
          [{ family: "ipv4", address: "999.1.1.1", port: 80 }, TypeError],
          [{ family: "ipv4", address: "not-an-ip", port: 80 }, TypeError],
          [{ family: "ipv4", address: "1.2.3", port: 80 }, TypeError],
          [{ family: "ipv4", address: "127.0.0.1", port: 70000 }, RangeError],
          [{ family: "ipv4", address: "127.0.0.1", port: -1 }, RangeError],
          [{ family: "ipv6", address: "::g", port: 80 }, TypeError],
          [{ family: "ipv6", address: "1:2:3:4:5:6:7:8:9", port: 80 }, TypeError],
          [{ family: "bogus", address: "127.0.0.1", port: 80 }, TypeError],
          [null, TypeError],
          ["127.0.0.1:80", TypeError],
        ];
        for (const [address, cls] of bad) {
          await assert.rejects(async () => ctx.loop.connect(fd, address), cls, JSON.stringify(address));
        }
        // An IPv6 address on an IPv4 socket: the kernel's answer, with the syscall named.
        await assert.rejects(async () => ctx.loop.connect(fd, { family: "ipv6", address: "::1", port: 9 }), systemError("EAFNOSUPPORT", "connect"));
      } finally {
        await ctx.loop.close(fd);
      }
    }));

  test("TcpListener.bind() on a port in use rejects with EADDRINUSE; reusePort on both shares it", () =>
    ctx.run(async () => {
      const first = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop: ctx.loop });
      try {
        const port = first.address.port;
        await assert.rejects(TcpListener.bind({ host: "127.0.0.1", port, loop: ctx.loop }), (e) => {
          systemError("EADDRINUSE", "bind")(e);
          assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`), "the message names the address");
          return true;
        });
      } finally {
        await first.close();
      }
      const a = await TcpListener.bind({ host: "127.0.0.1", port: 0, reusePort: true, loop: ctx.loop });
      try {
        // Windows has no SO_REUSEPORT: reusePort sets SO_REUSEADDR there, which shares no load
        // between listeners (and Wine refuses a second TCP listener on the port, EACCES).
        if (!IS_WINDOWS) {
          const b = await TcpListener.bind({ host: "127.0.0.1", port: a.address.port, reusePort: true, loop: ctx.loop });
          await b.close();
        }
      } finally {
        await a.close();
      }
    }));

  test("TcpListener.bind() and UdpSocket.bind() reject bad ports and hosts with TypeError/RangeError", () =>
    ctx.run(async () => {
      for (const port of [70000, -1, 1.5, NaN]) {
        await assert.rejects(TcpListener.bind({ host: "127.0.0.1", port, loop: ctx.loop }), RangeError, `port ${port}`);
        await assert.rejects(UdpSocket.bind({ host: "127.0.0.1", port, loop: ctx.loop }), RangeError, `port ${port}`);
      }
      await assert.rejects(TcpListener.bind({ host: 127001, port: 0, loop: ctx.loop }), TypeError);
      await assert.rejects(TcpListener.bind({ host: "", port: 0, loop: ctx.loop }), TypeError);
      await assert.rejects(TcpListener.bind({ host: "127.0.0.1", port: "80", loop: ctx.loop }), TypeError);
      await assert.rejects(TcpListener.bind({ host: "127.0.0.1", port: 0, backlog: -1, loop: ctx.loop }), RangeError);
      await assert.rejects(TcpListener.bind({ host: "127.0.0.1", port: 0, ipv6Only: true, loop: ctx.loop }), TypeError);
      await assert.rejects(TcpListener.bind({ host: "127.0.0.1", port: 0, loop: "not a loop" }), TypeError);
      await assert.rejects(TcpStream.connect({ host: "127.0.0.1", port: 9, timeout: -1, loop: ctx.loop }), RangeError);
    }));

  // The contract (DESIGN.md, mio's rule): close fds through loop.close(), or call
  // loop.remove(fd) before closing them elsewhere. epoll forgets a closed fd by itself, so
  // detecting a reused number without remove() would cost a syscall on every park.
  test("an fd closed behind the loop's back, then remove()d: its reused number works", () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      // Writes one byte each time the body waits: to `b`, then to the fd the body sends.
      const peer = ctx.peer(async ({ raw, bytes, whenWaiting, receive }, { b }) => {
        await whenWaiting();
        raw.write(b, bytes("1"));
        const d = await receive();
        await whenWaiting();
        raw.write(d, bytes("2"));
      }, { b });
      // Park (and so register) an operation on `a`, and let it finish.
      const first = track(ctx.loop.read(a, new Uint8Array(4)));
      await peer.proceed(first);
      assert.equal(await first.promise, 1);
      // Closed elsewhere, and the loop told with remove(). The number is free again…
      raw.close(a);
      raw.close(b);
      ctx.loop.remove(a);
      // Numbers are handed out lowest free first, but on Windows another thread (the blocking
      // backend's peer Worker) or the system (Wine's short-lived handles) may have freed a lower
      // one since: pairs are made until one reuses `a`, the others holding the numbers in the way.
      const spare = [];
      let [c, d] = raw.socketPair();
      while (c !== a && spare.length < 32) {
        spare.push(c, d);
        [c, d] = raw.socketPair();
      }
      for (const fd of spare) raw.close(fd);
      try {
        assert.equal(c, a, "precondition: the new socket reuses the number");
        peer.send(d);
        // …and an operation on the new fd must not wait for ever on a stale registration.
        const buf = new Uint8Array(4);
        const reading = track(ctx.loop.read(c, buf, { timeout: 2000 }));
        await peer.proceed(reading);
        await reading.promise.catch(() => {});
        assert.equal(reading.state, "fulfilled", `the read on the reused fd failed: ${reading.reason}`);
        assert.equal(text(buf.subarray(0, 1)), "2");
        await peer.result();
      } finally {
        await ctx.loop.close(c);
        raw.close(d);
      }
    }));
});

test("createLoop() with an unknown or unavailable backend fails loudly", () => {
  assert.throws(() => createLoop({ backend: "nope" }), TypeError);
  // A backend of another OS (iocp here, kqueue on Windows) is named in the error.
  const foreign = process.platform === "win32" ? "kqueue" : "iocp";
  assert.throws(() => createLoop({ backend: foreign }), new RegExp(foreign));
  // kqueue exists on Linux only through libkqueue (EVLOOP_KQUEUE_LIB); without it, naming it fails.
  if (!availableBackends().includes("kqueue")) assert.throws(() => createLoop({ backend: "kqueue" }), /kqueue/);
  // Naming io_uring where the kernel refuses it is an error, not a fallback. This process can
  // check that only on such a kernel; test/loop/io-uring-fallback.test.mjs forces the refusal
  // (EVLOOP_IO_URING_DISABLE_FOR_TEST=1, in child processes) and checks it on every kernel.
  if (!availableBackends().includes("io_uring")) assert.throws(() => createLoop({ backend: "io_uring" }), /io_uring/);
});
