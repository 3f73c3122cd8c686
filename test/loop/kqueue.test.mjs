/**
 * The kqueue selector's own edges, beyond the conformance suite (which runs the loop on kqueue in
 * both modes) and the readiness API tests (which run `Poll` on it): the waker it makes, the host
 * watch it offers where its fd cannot be polled (libkqueue), the libkqueue behaviours it works
 * around, and the fds it leaves behind (none). On Linux these need libkqueue: `npm test` builds
 * it and sets EVLOOP_KQUEUE_LIB; without it the file is skipped with the reason.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { availableBackends, createLoop, Events, Interest, probeBackends, SystemError, TcpListener, TcpStream, Waker } from "evloop";
import { KqueueSelector } from "../../dist/selector/kqueue.js";
import { isLibkqueue } from "../../dist/sys/bsd/kqueue.js";
import { openFdCount, raw } from "../helpers.mjs";

const available = availableBackends().includes("kqueue");
const reason = available ? false : `kqueue is unavailable here: ${probeBackends().find((p) => p.name === "kqueue")?.reason ?? "not a candidate on this OS"}`;

/** Tokens and readiness of one non-blocking select, as strings like "5:R", "5:WE". */
function selectNow(selector, events = new Events(32)) {
  selector.select(events, 0);
  return [...events].map((e) => `${e.token}:${e.isReadable ? "R" : ""}${e.isWritable ? "W" : ""}${e.isReadClosed ? "E" : ""}`);
}

describe("kqueue selector", { skip: reason }, () => {
  test("PRIORITY is refused with EINVAL, and nothing stays registered", () => {
    const selector = new KqueueSelector();
    const [r, w] = raw.pipe();
    try {
      assert.throws(() => selector.register(r, 1, Interest.READABLE | Interest.PRIORITY), (e) => e instanceof SystemError && e.code === "EINVAL" && /PRIORITY/.test(e.message));
      selector.register(r, 1, Interest.READABLE);
      raw.write(w, new Uint8Array([1]));
      assert.deepEqual(selectNow(selector), ["1:R"]);
    } finally {
      selector.close();
      raw.close(r);
      raw.close(w);
    }
  });

  test("a change the kernel refuses throws its errno from the receipt, naming the fd", () => {
    const selector = new KqueueSelector();
    const [r, w] = raw.pipe();
    raw.close(r);
    raw.close(w);
    try {
      assert.throws(() => selector.register(r, 1, Interest.READABLE | Interest.WRITABLE), (e) => e instanceof SystemError && e.code === "EBADF" && e.message.includes(`fd ${r}`));
      // Nothing was left behind: the fd number is free to register once it is open again.
      assert.throws(() => selector.deregister(r), (e) => e instanceof SystemError && e.code === "ENOENT");
    } finally {
      selector.close();
    }
  });

  test("Waker: an EVFILT_USER event with a 'kqueue' handle; wakes coalesce; closed, its handle is ignored", () => {
    const selector = new KqueueSelector();
    const waker = selector.waker(41);
    assert.notEqual(waker, null, "every kqueue evloop runs on here has EVFILT_USER");
    try {
      assert.equal(waker.handle.kind, "kqueue");
      assert.equal(waker.handle.fd, selector.ownFd);
      waker.wake();
      waker.wake();
      assert.deepEqual(selectNow(selector), ["41:R"]);
      assert.deepEqual(selectNow(selector), [], "EV_CLEAR: one event per batch of wakes");
      Waker.fromHandle(waker.handle).wake();
      assert.deepEqual(selectNow(selector), ["41:R"], "a handle wakes the same event");
      const handle = waker.handle;
      waker.close();
      Waker.fromHandle(handle).wake();
      assert.deepEqual(selectNow(selector), [], "a closed waker's handle wakes nothing, and does not throw");
    } finally {
      waker.close();
      selector.close();
    }
  });

  test("a FIN that arrives with data unread is reported as read-closed (libkqueue: knotes added WRITE first)", async () => {
    // TCP, half-closed: the FIN shows only as EPOLLRDHUP under libkqueue (a Unix socket's close
    // also raises EPOLLHUP, which would hide the difference).
    const loop = createLoop({ backend: "poll", guest: true });
    const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
    const client = await TcpStream.connect({ host: "127.0.0.1", port: listener.address.port, loop });
    const server = await listener.accept();
    const selector = new KqueueSelector();
    try {
      selector.register(server.fd, 3, Interest.READABLE | Interest.WRITABLE);
      assert.deepEqual(selectNow(selector), ["3:W"]);
      await client.writeAll(new Uint8Array(1000));
      await loop.sleep(20);
      selectNow(selector);
      assert.equal(raw.read(server.fd, new Uint8Array(10)), 10, "part of the data is read; the rest waits");
      await client.shutdown();
      await loop.sleep(20);
      const seen = selectNow(selector);
      assert.ok(seen.includes("3:RE"), `the FIN must come with EV_EOF while data is unread, got ${seen.join(" ")}`);
    } finally {
      selector.close();
      await client.close();
      await server.close();
      await listener.close();
      loop.dispose();
    }
  });

  test("more ready fds than the event list holds: every one is reported by the polls that follow", () => {
    // 40 socket pairs, each end readable and writable: an event list of 16 fills at once
    // (libkqueue drops what epoll returned beyond it; the selector has those fds reported again).
    const selector = new KqueueSelector();
    const pairs = Array.from({ length: 40 }, () => raw.socketPair());
    try {
      pairs.forEach(([a], i) => selector.register(a, i, Interest.READABLE | Interest.WRITABLE));
      for (const [, b] of pairs) raw.write(b, new Uint8Array([1]));
      const readable = new Set();
      const writable = new Set();
      const events = new Events(16);
      for (let i = 0; i < 50; i++) {
        selector.select(events, 0);
        if (events.isEmpty) break;
        for (const e of events) {
          if (e.isReadable) readable.add(e.token);
          if (e.isWritable) writable.add(e.token);
        }
      }
      assert.equal(readable.size, 40, "every readable fd was reported");
      assert.equal(writable.size, 40, "every writable fd was reported");
    } finally {
      selector.close();
      for (const [a, b] of pairs) {
        raw.close(a);
        raw.close(b);
      }
    }
  });

  test("closing selectors leaves no fd behind", () => {
    new KqueueSelector().close();
    const before = openFdCount();
    for (let i = 0; i < 20; i++) {
      const selector = new KqueueSelector();
      selector.waker(1);
      selector.close();
    }
    assert.equal(openFdCount(), before);
  });

  test("processes that used kqueue exit cleanly, many at once (libkqueue's thread never outlives its code)", async () => {
    // Node's exit unloads the libraries it loaded through koffi; libkqueue's close-detection
    // thread, still winding down, then crashed about one exit in sixteen when six ran at once.
    const source = `import { createLoop } from ${JSON.stringify(new URL("../../dist/index.js", import.meta.url).href)};
      createLoop({ backend: "kqueue", guest: true }).dispose();`;
    const exits = [];
    for (let round = 0; round < 8; round++) {
      const batch = Array.from({ length: 6 }, () => new Promise((resolve) => {
        const child = spawn(process.execPath, ["--input-type=module", "-e", source], { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });
        let err = "";
        child.stderr.on("data", (d) => (err += d));
        child.on("exit", (code, signal) => resolve({ code, signal, err }));
      }));
      exits.push(...(await Promise.all(batch)));
    }
    const bad = exits.filter((e) => e.code !== 0);
    assert.deepEqual(bad, [], `${bad.length} of ${exits.length} exits failed`);
  });

  describe("libkqueue: the host watches the registered fds", { skip: isLibkqueue() ? false : "a real kqueue's fd is polled by the host itself" }, () => {
    test("fd is -1; watch names each fd, disarms a direction that fired, rearm arms it again", () => {
      const selector = new KqueueSelector();
      const [r, w] = raw.pipe();
      const seen = [];
      try {
        assert.equal(selector.fd, -1);
        assert.ok(selector.ownFd >= 0);
        selector.watch((fd, interest) => seen.push([fd, interest]));
        selector.register(r, 7, Interest.READABLE);
        assert.deepEqual(seen, [[r, Interest.READABLE]]);
        raw.write(w, new Uint8Array([1]));
        assert.deepEqual(selectNow(selector), ["7:R"]);
        assert.deepEqual(seen.at(-1), [r, 0], "the direction that fired is no longer watched by the host");
        selector.rearm(r, Interest.READABLE);
        assert.deepEqual(seen.at(-1), [r, Interest.READABLE]);
        selector.deregister(r);
        assert.deepEqual(seen.at(-1), [r, 0]);
      } finally {
        selector.close();
        raw.close(r);
        raw.close(w);
      }
    });

    test("a guest loop is woken through a wake-up fd its host watches; an owner loop through EVFILT_USER", () => {
      const guest = createLoop({ backend: "kqueue", guest: true });
      const owner = createLoop({ backend: "kqueue", guest: false });
      try {
        assert.notEqual(guest.interruptHandle.kind, "kqueue");
        assert.equal(owner.interruptHandle.kind, "kqueue");
      } finally {
        guest.dispose();
        owner.dispose();
      }
    });
  });
});
