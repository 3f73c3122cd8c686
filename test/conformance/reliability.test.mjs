/**
 * What adversarial use found (issue 10), on every backend and mode:
 * - buffers of 2 GiB and more: a transfer is clamped to what one system call takes, so a read
 *   reports the bytes waiting (not a false EOF, not EINVAL), a write reports progress (never 0),
 *   and `writeAll`'s timeout and signal end the whole call;
 * - a loop disposed under its handles: closing a handle afterwards closes its fd, and a connect
 *   pending at dispose leaves no socket behind;
 * - every errno comes with its text (the C library's strerror), never a bare "system error".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { ClosedError, createLoop, FileDescriptor, SystemError, TcpStream, TimeoutError, UnixStream } from "evloop";
import { bytes, forEachLoop, IS_WINDOWS, openFdCount, raw, streamPair, text, track } from "../helpers.mjs";

/** One 4 GiB buffer for the file (only the pages a test touches are ever backed by memory). */
let huge = null;
const fourGiB = () => (huge ??= new Uint8Array(2 ** 32));

/** The most one transfer may move on Linux (MAX_RW_COUNT for 64 KiB pages). */
const MAX_IO_BYTES = 0x7fff0000;

forEachLoop("reliability", (ctx) => {
  const pendingTest = ctx.blocking ? () => {} : test;
  /** Closes fds the loop has seen: removed from it first, as the contract asks of fds closed elsewhere. */
  const closeAll = (...fds) => {
    for (const fd of fds) {
      ctx.loop.remove(fd);
      raw.close(fd);
    }
  };

  for (const [label, size] of [["4 GiB", 2 ** 32], ["2 GiB", 2 ** 31], ["2 GiB + 1", 2 ** 31 + 1]]) {
    test(`a read into a ${label} buffer resolves with the bytes waiting`, () =>
      ctx.run(async () => {
        const [a, b] = raw.socketPair();
        try {
          assert.equal(raw.write(b, bytes("hello")), 5);
          const buf = fourGiB().subarray(0, size);
          const n = await ctx.loop.read(a, buf, { timeout: 5000 });
          assert.equal(n, 5, "a false EOF (0) or another count");
          assert.equal(text(buf.subarray(0, 5)), "hello");
        } finally {
          closeAll(a, b);
        }
      }));
  }

  const half = 2 ** 31;
  const sends = {
    "a write of a 4 GiB view": (fd) => ctx.loop.write(fd, fourGiB(), { timeout: 5000 }),
    "sendMessage of two 2 GiB buffers": (fd) => ctx.loop.sendMessage(fd, [fourGiB().subarray(0, half), fourGiB().subarray(half)], [], { timeout: 5000 }),
  };
  for (const [label, send] of Object.entries(sends)) {
    test(`${label} reports the bytes the kernel took: more than 0, at most one syscall's worth`, () =>
      ctx.run(async () => {
        const [a, b] = raw.socketPair();
        try {
          const n = await send(a);
          assert.ok(n > 0 && n <= MAX_IO_BYTES, `sent ${n}`);
          assert.equal(raw.drain(b), n, "the reader gets exactly what was reported");
        } finally {
          closeAll(a, b);
        }
      }));
  }

  test("writeAll of a 4 GiB view to a reader that never reads ends at its timeout", () =>
    ctx.run(async () => {
      const [x, y] = await streamPair(ctx.loop);
      try {
        await assert.rejects(x.writeAll(fourGiB(), { timeout: 200 }), (e) => e instanceof TimeoutError && e.code === "ETIMEDOUT");
      } finally {
        await x.close();
        await y.close();
      }
    }));

  pendingTest("writeAll of a 4 GiB view ends when its signal aborts", () =>
    ctx.run(async () => {
      const [x, y] = await streamPair(ctx.loop);
      try {
        const ac = new AbortController();
        const writing = track(x.writeAll(fourGiB(), { signal: ac.signal }));
        await ctx.loop.sleep(20);
        assert.equal(writing.state, "pending");
        ac.abort(new Error("stop"));
        await assert.rejects(writing.promise, /stop/);
      } finally {
        await x.close();
        await y.close();
      }
    }));

  test("a stream's handle closed after its loop was disposed closes the fd", () =>
    ctx.run(async () => {
      const other = createLoop({ backend: ctx.backend, guest: ctx.mode === "guest" });
      // Made without running `other` (owner mode runs only ctx.loop): on Windows, a loopback
      // socket pair adopted as streams.
      const [x, y] = IS_WINDOWS
        ? raw.socketPair().map((fd) => FileDescriptor.from(fd, { loop: other }))
        : UnixStream.pair({ loop: other });
      const fds = [x.fd, y.fd];
      // A read pending at dispose, on the backends where one can be.
      const reading = ctx.blocking ? null : track(x.read(new Uint8Array(8)));
      other.dispose();
      if (reading) await assert.rejects(reading.promise, (e) => e instanceof ClosedError);
      await x.close();
      await y.close();
      for (const fd of fds) assert.equal(raw.isOpen(fd), false, `fd ${fd} was left open`);
    }));

  pendingTest("a TcpStream.connect pending when its loop is disposed rejects and leaves no socket", () =>
    ctx.run(async () => {
      // A listener whose accept queue is full drops SYNs, so a connect to it stays pending.
      const l = raw.tcpListener(0);
      const fillers = [];
      try {
        for (let i = 0; i < 8; i++) {
          try {
            fillers.push(await TcpStream.connect({ host: "127.0.0.1", port: l.address.port, loop: ctx.loop, timeout: 300 }));
          } catch (e) {
            assert.ok(e instanceof TimeoutError, `a filler failed with ${e}`);
            break;
          }
        }
        const before = openFdCount();
        const other = createLoop({ backend: ctx.backend, guest: ctx.mode === "guest" });
        const connecting = track(TcpStream.connect({ host: "127.0.0.1", port: l.address.port, loop: other }));
        await ctx.loop.sleep(30);
        assert.equal(connecting.state, "pending", "the connect should wait for the full listener");
        other.dispose();
        await assert.rejects(connecting.promise, (e) => e instanceof SystemError && e.code === "EBADF");
        assert.equal(openFdCount(), before, "the pending connect's socket or the loop's own fds leaked");
      } finally {
        for (const s of fillers) await s.close();
        raw.close(l.fd);
      }
    }));

  test("a read cut short by passed fds on a Unix stream does not hide the data after them", { skip: process.platform === "win32" && "SCM_RIGHTS fd passing is Unix-only" }, () =>
    ctx.run(async () => {
      const [a, b] = raw.socketPair();
      const [p, q] = raw.pipe();
      try {
        // Linux ends a stream read at a message that carried fds: read() returns "A" alone
        // although "B" is already queued behind it.
        // The first read waits, so the fd is registered and its one edge is spent on it.
        const buf = new Uint8Array(64);
        const first = ctx.blocking ? null : ctx.loop.read(b, buf, { timeout: 5000 });
        if (first) await ctx.loop.sleep(10);
        assert.equal(await ctx.loop.sendMessage(a, [bytes("A")], [p], { timeout: 5000 }), 1);
        assert.equal(raw.write(a, bytes("B")), 1);
        assert.equal(text(buf.subarray(0, await (first ?? ctx.loop.read(b, buf, { timeout: 5000 })))), "A");
        assert.equal(text(buf.subarray(0, await ctx.loop.read(b, buf, { timeout: 2000 }))), "B");
      } finally {
        closeAll(a, b, p, q);
      }
    }));

  test("an errno without a message of evloop's own has the C library's text", {
    skip: IS_WINDOWS && "Windows has no directory fds for a loop to read (fs fds are the C runtime's, not handles), and no C library text: test/windows checks Winsock errors' texts",
  }, () =>
    ctx.run(async () => {
      const fd = openSync(tmpdir(), "r");
      try {
        const e = await ctx.loop.read(fd, new Uint8Array(16), { timeout: 5000 }).then(
          () => assert.fail("reading a directory succeeded"),
          (err) => err,
        );
        assert.ok(e instanceof SystemError, String(e));
        assert.ok(["EISDIR", "EOPNOTSUPP", "EINVAL"].includes(e.code), e.code);
        assert.doesNotMatch(e.message, /system error/);
        assert.match(e.message, new RegExp(`^read ${e.code}: [a-z].{4,}`));
      } finally {
        ctx.loop.remove(fd);
        closeSync(fd);
      }
    }));
});
