/**
 * Properties of argument checking, with fast-check: for the public functions' options and
 * arguments (timeouts, signals, maxBytes, buffers, fds, maxFds, ports, hosts, paths, modes,
 * backlogs, backend names, createLoop's options, chunk sizes), any value either is accepted,
 * and the call then does what it should, or is refused with a TypeError/RangeError at once:
 * thrown, or a promise already rejected before the loop runs, with nothing started (no data
 * taken, no socket left open). Never another kind of error, a crash from the loop later, or a
 * hang. Each property has an oracle: the rule, stated independently, that says which values
 * are valid.
 *
 * Loop methods run on every available backend (guest mode); the socket classes on the default
 * loop. Hosts and connect ports are generated only invalid (a valid one would resolve names or
 * connect somewhere), so the tests stay on loopback and Unix sockets.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

// Failure reports carry the failing assertion's message, not only the counterexample.
fc.configureGlobal({ includeErrorInReport: true });
import {
  availableBackends, createLoop, FileDescriptor, SystemError, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream,
} from "evloop";
import { abstractName, openFdCount, raw, testBackends } from "../helpers.mjs";

const RUNS = { numRuns: 150 };

/** Values of every kind, the numbers that sit on the edges of ranges weighted in. */
const edgeNumbers = fc.constantFrom(0, -0, -1, 1, 0.5, 1.5, NaN, Infinity, -Infinity, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 65535, 65536, 0o777, 0o1000, Number.MAX_SAFE_INTEGER, Number.MIN_VALUE);
const anyValue = fc.oneof(fc.anything(), edgeNumbers, fc.double(), fc.integer(), fc.bigInt(), fc.constant(undefined), fc.constant(null), fc.string());

const isInt = (v, min, max) => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;

/**
 * Calls `fn` and reports how it ended after a few microtask turns, without running the loop:
 * `{ threw }`, `{ rejected }`, `{ fulfilled }` or `{ pending }` (with the promise).
 */
async function immediately(fn) {
  let result;
  try {
    result = fn();
  } catch (e) {
    return { threw: e };
  }
  if (!(result instanceof Promise)) return { fulfilled: result };
  const t = { state: "pending" };
  result.then(
    (v) => Object.assign(t, { state: "fulfilled", value: v }),
    (e) => Object.assign(t, { state: "rejected", reason: e }),
  );
  for (let i = 0; i < 5; i++) await null;
  if (t.state === "rejected") return { rejected: t.reason };
  if (t.state === "fulfilled") return { fulfilled: t.value };
  return { pending: result };
}

/** Asserts a refusal: a TypeError or RangeError thrown or rejected at once, with a message. */
function assertRefused(outcome, what, kinds = [TypeError, RangeError]) {
  const e = outcome.threw ?? outcome.rejected;
  assert.ok(e !== undefined, `${what} was accepted (${"pending" in outcome ? "it waits" : "it completed"}) but is invalid`);
  assert.ok(kinds.some((K) => e instanceof K), `${what}: expected ${kinds.map((K) => K.name).join("/")}, got ${e?.name}: ${e?.message}`);
  assert.ok(typeof e.message === "string" && e.message.length > 5, `${what}: unclear message ${e.message}`);
}

/** A description of a generated value for messages (fast-check prints the counterexample too). */
const show = (v) => (typeof v === "bigint" ? `${v}n` : typeof v === "symbol" ? v.toString() : fc.stringify(v));

for (const backend of testBackends()) {
  describe(`${backend} loop: operation arguments`, () => {
    const loop = createLoop({ backend, guest: true });
    after(() => loop.dispose());

    /**
     * A socket pair with one byte waiting on `a`: a valid read completes at once (also on the
     * blocking backend) and takes it; an invalid one must leave it.
     */
    async function withByte(body) {
      const [a, b] = raw.socketPair();
      try {
        raw.write(b, new Uint8Array([42]));
        await body(a);
      } finally {
        await loop.close(a);
        raw.close(b);
      }
    }

    /** The byte is still there: the refused call took nothing. */
    function assertByteKept(a) {
      const buf = new Uint8Array(4);
      assert.equal(raw.read(a, buf), 1, "a refused read took the waiting byte");
      assert.equal(buf[0], 42);
    }

    /** Checks a read call with options or arguments the oracle judged. */
    async function checkRead(valid, call, what) {
      await withByte(async (a) => {
        const outcome = await immediately(() => call(a));
        if (!valid) {
          assertRefused(outcome, what);
          assertByteKept(a);
          return;
        }
        assert.ok(!("threw" in outcome) && !("rejected" in outcome), `${what} is valid but was refused: ${(outcome.threw ?? outcome.rejected)?.message}`);
        const value = "pending" in outcome ? await outcome.pending : outcome.fulfilled;
        // read: a count; readBorrowed: { bytes: Uint8Array }; receiveMessage: { bytes: count }.
        const n = typeof value === "number" ? value : typeof value.bytes === "number" ? value.bytes : value.bytes.byteLength;
        value.release?.();
        assert.equal(n, 1, `${what}: the read did not take the waiting byte`);
      });
    }

    test("timeout: a number of ms from 0 to 2^31-1 is accepted, anything else is a RangeError/TypeError", async () => {
      const valid = (v) => v === undefined || (typeof v === "number" && v >= 0 && v <= 2 ** 31 - 1);
      await fc.assert(
        fc.asyncProperty(fc.oneof(anyValue, fc.double({ min: 0, max: 2 ** 31 - 1, noNaN: true })), async (timeout) => {
          await checkRead(valid(timeout), (fd) => loop.read(fd, new Uint8Array(8), { timeout }), `timeout ${show(timeout)}`);
        }),
        RUNS,
      );
    });

    test("sleep(ms): the same rule; a valid sleep with an aborted signal rejects with its reason", async () => {
      await fc.assert(
        fc.asyncProperty(anyValue, async (ms) => {
          const valid = typeof ms === "number" && ms >= 0 && ms <= 2 ** 31 - 1;
          const reason = new Error("stop");
          // An aborted signal, so a valid sleep ends at once: the arguments are checked first.
          const outcome = await immediately(() => loop.sleep(ms, { signal: AbortSignal.abort(reason) }));
          if (!valid) assertRefused(outcome, `sleep(${show(ms)})`);
          else assert.equal(outcome.rejected, reason, `sleep(${show(ms)})`);
        }),
        RUNS,
      );
    });

    test("signal: an AbortSignal (or an object with aborted, addEventListener and removeEventListener) is accepted, anything else is a TypeError", async () => {
      const signalLike = fc.record(
        { aborted: fc.oneof(fc.constant(false), anyValue), addEventListener: fc.oneof(fc.constant(() => {}), anyValue), removeEventListener: fc.oneof(fc.constant(() => {}), anyValue) },
        { requiredKeys: [] },
      );
      const valid = (s) =>
        s === undefined || (typeof s === "object" && s !== null && typeof s.aborted === "boolean" && typeof s.addEventListener === "function" && typeof s.removeEventListener === "function");
      await fc.assert(
        fc.asyncProperty(fc.oneof(anyValue, signalLike, fc.constant(new AbortController().signal)), async (signal) => {
          if (valid(signal) && signal?.aborted === true) return; // an aborted signal-like rejects with its reason: not this property
          await checkRead(valid(signal), (fd) => loop.read(fd, new Uint8Array(8), { signal }), `signal ${show(signal)}`);
        }),
        RUNS,
      );
    });

    test("options that are not an object are a TypeError", async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.integer(), fc.string({ minLength: 1 }), fc.boolean(), fc.bigInt(), fc.constant(Symbol("x"))), async (options) => {
          await checkRead(false, (fd) => loop.read(fd, new Uint8Array(8), options), `options ${show(options)}`);
        }),
        { numRuns: 40 },
      );
    });

    test("read buffer: a non-empty Uint8Array (or Buffer) is accepted, anything else is a TypeError/RangeError", async () => {
      const buffers = fc.oneof(
        anyValue,
        fc.uint8Array({ maxLength: 16 }),
        fc.constantFrom(new Uint8Array(0), Buffer.alloc(4), new Uint16Array(4), new Int8Array(4), new Uint8ClampedArray(4), new ArrayBuffer(4), new DataView(new ArrayBuffer(4)), [1, 2]),
      );
      await fc.assert(
        fc.asyncProperty(buffers, async (buf) => {
          const valid = buf instanceof Uint8Array && buf.byteLength > 0;
          await checkRead(valid, (fd) => loop.read(fd, buf), `buffer ${Object.prototype.toString.call(buf)} of ${buf?.byteLength} bytes`);
        }),
        RUNS,
      );
    });

    test("readBorrowed maxBytes: an integer from 1 to 65536 is accepted, anything else is a RangeError", async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(anyValue, fc.integer({ min: 1, max: 65536 })), async (maxBytes) => {
          const valid = maxBytes === undefined || isInt(maxBytes, 1, 65536);
          await checkRead(valid, (fd) => loop.readBorrowed(fd, { maxBytes }), `maxBytes ${show(maxBytes)}`);
        }),
        RUNS,
      );
    });

    test("receiveMessage maxFds: an integer from 0 to 253 is accepted, anything else is a RangeError", async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(anyValue, fc.integer({ min: 0, max: 253 })), async (maxFds) => {
          await checkRead(isInt(maxFds, 0, 253), (fd) => loop.receiveMessage(fd, new Uint8Array(8), maxFds), `maxFds ${show(maxFds)}`);
        }),
        RUNS,
      );
    });

    test("fds that are not integers from 0 to 2^31-1 are a TypeError; unopened ones EBADF", async () => {
      const notFd = anyValue.filter((v) => !isInt(v, 0, 2 ** 31 - 1));
      // Far above any fd this process has open (its limit is lower), so never one in use.
      const unopened = fc.integer({ min: 2 ** 30, max: 2 ** 31 - 1 });
      await fc.assert(
        fc.asyncProperty(fc.oneof(notFd, unopened), async (fd) => {
          const outcome = await immediately(() => loop.read(fd, new Uint8Array(8), { timeout: 1000 }));
          if (!isInt(fd, 0, 2 ** 31 - 1)) {
            assertRefused(outcome, `fd ${show(fd)}`, [TypeError]);
            return;
          }
          const e = outcome.threw ?? outcome.rejected ?? (await outcome.pending?.then(() => undefined, (x) => x));
          assert.ok(e instanceof SystemError && e.code === "EBADF", `fd ${fd}: ${e?.name} ${e?.message}`);
        }),
        RUNS,
      );
    });

    test("sendMessage fds: an array of at most 253 fds is accepted, anything else is refused without sending", async () => {
      // Lists whose only valid fd is 0 (stdin: passing it is harmless, the receiver closes its copy).
      const notFd = anyValue.filter((v) => !isInt(v, 0, 2 ** 31 - 1));
      const fdLists = fc.oneof(anyValue, fc.array(fc.oneof(fc.constant(0), notFd), { maxLength: 4 }), fc.constant(new Array(254).fill(0)));
      await fc.assert(
        fc.asyncProperty(fdLists, async (fds) => {
          const valid = Array.isArray(fds) && fds.length <= 253 && fds.every((fd) => isInt(fd, 0, 2 ** 31 - 1));
          const [a, b] = raw.socketPair();
          try {
            const outcome = await immediately(() => loop.sendMessage(a, [new Uint8Array([7])], fds));
            if (!valid) {
              assertRefused(outcome, `fds ${show(fds)}`);
              assert.equal(raw.read(b, new Uint8Array(4)), -1, "a refused sendMessage sent bytes");
              return;
            }
            const sent = "pending" in outcome ? await outcome.pending : outcome.fulfilled;
            assert.equal(sent, 1);
            const got = await loop.receiveMessage(b, new Uint8Array(4), 253);
            for (const fd of got.fds) raw.close(fd);
            assert.equal(got.fds.length, fds.length);
          } finally {
            await loop.close(a);
            await loop.close(b);
          }
        }),
        { numRuns: 80 },
      );
    });
  });
}

describe("socket classes and createLoop: options", () => {
  // Everything here is refused before a socket exists, or binds on loopback/abstract names and is
  // closed again; the count of open fds says nothing leaked.
  let before;
  const loop = createLoop({ guest: true });
  after(() => {
    loop.dispose();
  });

  test("ports: TcpListener/UdpSocket.bind accept integers from 0 to 65535; connect refuses anything invalid, and 0", async () => {
    before = openFdCount();
    const ports = fc.oneof(anyValue, fc.integer({ min: 0, max: 65535 }));
    await fc.assert(
      fc.asyncProperty(ports, fc.boolean(), async (port, tcp) => {
        const valid = port === undefined || isInt(port, 0, 65535);
        const bind = tcp ? () => TcpListener.bind({ host: "127.0.0.1", port, loop }) : () => UdpSocket.bind({ host: "127.0.0.1", port, loop });
        const outcome = await immediately(bind);
        if (!valid) {
          assertRefused(outcome, `bind port ${show(port)}`);
        } else {
          let s;
          try {
            s = "pending" in outcome ? await outcome.pending : outcome.fulfilled ?? (await Promise.reject(outcome.threw ?? outcome.rejected));
          } catch (e) {
            // A valid port may be taken (or privileged for another user): then a SystemError.
            assert.ok(e instanceof SystemError && ["EADDRINUSE", "EACCES"].includes(e.code), `bind port ${port}: ${e?.message}`);
            return;
          }
          await s.close();
        }
        if (!isInt(port, 1, 65535)) {
          assertRefused(await immediately(() => TcpStream.connect({ host: "127.0.0.1", port, loop })), `connect port ${show(port)}`);
        }
      }),
      { numRuns: 100 },
    );
    assert.equal(openFdCount(), before, "fds leaked");
  });

  test("hosts that are not non-empty strings are a TypeError", async () => {
    const notHost = anyValue.filter((v) => v !== undefined && (typeof v !== "string" || v === ""));
    await fc.assert(
      fc.asyncProperty(notHost, fc.constantFrom("tcp-bind", "tcp-connect", "udp-bind"), async (host, which) => {
        const call = {
          "tcp-bind": () => TcpListener.bind({ host, port: 0, loop }),
          "tcp-connect": () => TcpStream.connect({ host, port: 1, loop }),
          "udp-bind": () => UdpSocket.bind({ host, port: 0, loop }),
        }[which];
        assertRefused(await immediately(call), `${which} host ${show(host)}`, [TypeError]);
      }),
      { numRuns: 100 },
    );
  });

  test("unix: path, mode and backlog are accepted by the rule or refused with nothing bound", async () => {
    before = openFdCount();
    const paths = fc.oneof(anyValue, fc.constant(""), fc.constant("\0"), fc.constant(null)).filter((p) => typeof p !== "string" || p === "" || p === "\0");
    const options = fc.record(
      {
        path: fc.oneof(fc.constant("abstract"), paths),
        mode: fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 0o777 }), anyValue),
        backlog: fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 1024 }), anyValue),
        kind: fc.constantFrom("listener", "datagram", "connect"),
      },
      { requiredKeys: ["path", "kind"] },
    );
    await fc.assert(
      fc.asyncProperty(options, async ({ path: p, mode, backlog, kind }) => {
        const path = p === "abstract" ? abstractName() : p;
        const pathOk = typeof path === "string" && path !== "" && path !== "\0";
        // Abstract names have no permissions: any mode with one is refused.
        const modeOk = mode === undefined;
        // `backlog ?? 511`: null is the default too.
        const backlogOk = backlog === undefined || backlog === null || isInt(backlog, 0, 2 ** 31 - 1);
        const call = {
          listener: () => UnixListener.bind({ path, mode, backlog, loop }),
          datagram: () => UnixDatagram.bind({ path, mode, loop }),
          connect: () => UnixStream.connect({ path, timeout: 1000, loop }),
        }[kind];
        const valid = pathOk && (kind === "connect" || modeOk) && (kind !== "listener" || backlogOk);
        const outcome = await immediately(call);
        if (!valid) {
          assertRefused(outcome, `${kind} ${show({ path, mode, backlog })}`);
          return;
        }
        const result = "pending" in outcome ? await outcome.pending.then((v) => ({ v }), (e) => ({ e })) : { v: outcome.fulfilled, e: outcome.threw ?? outcome.rejected };
        if (kind === "connect") {
          assert.ok(result.e instanceof SystemError && result.e.code === "ECONNREFUSED", `connect to nobody: ${result.e?.message}`);
          return;
        }
        assert.ok(result.e === undefined, `${kind} ${show({ path, mode, backlog })}: ${result.e?.message}`);
        await result.v.close();
      }),
      { numRuns: 120 },
    );
    assert.equal(openFdCount(), before, "fds leaked");
  });

  test("createLoop: known available backends are created, unknown names are a TypeError, bad guest/ioUring a TypeError", async () => {
    const names = fc.oneof(anyValue, fc.constantFrom(...availableBackends(), "kqueue", "iocp", "EPOLL", " epoll", "uring"));
    await fc.assert(
      fc.asyncProperty(names, fc.oneof(fc.constant(undefined), fc.boolean(), anyValue), async (backend, guest) => {
        const known = ["io_uring", "epoll", "poll", "blocking", "kqueue", "iocp"];
        let created;
        try {
          created = createLoop({ backend, guest: guest === undefined ? undefined : guest, ioUring: undefined });
        } catch (e) {
          if (guest !== undefined && typeof guest !== "boolean") {
            assert.ok(e instanceof TypeError, `guest ${show(guest)}: ${e?.name} ${e?.message}`);
            return;
          }
          if (backend !== undefined && !known.includes(backend)) {
            assert.ok(e instanceof TypeError && /backend/.test(e.message), `backend ${show(backend)}: ${e?.name} ${e?.message}`);
            return;
          }
          // Known but not here (kqueue, iocp), or guest mode where it cannot be.
          assert.ok(e instanceof Error && !availableBackends().includes(backend) || guest === true, `backend ${show(backend)}: ${e?.message}`);
          return;
        }
        try {
          assert.ok(backend === undefined || availableBackends().includes(backend), `backend ${show(backend)} was accepted`);
          assert.ok(guest === undefined || typeof guest === "boolean", `guest ${show(guest)} was accepted`);
        } finally {
          created.dispose();
        }
      }),
      { numRuns: 60 },
    );
  });

  test("chunks({ size }) and FileDescriptor.from(fd): refused at once by the rule", async () => {
    await fc.assert(
      fc.asyncProperty(anyValue, async (value) => {
        const [a, b] = UnixStream.pair({ loop });
        try {
          // `size ?? 64 KiB`: null is the default too.
          const sizeOk = value === undefined || value === null || isInt(value, 1, 2 ** 31 - 1);
          if (!sizeOk) assertRefused(await immediately(() => a.chunks({ size: value }).next()), `chunk size ${show(value)}`, [RangeError]);
          if (!isInt(value, 0, 2 ** 31 - 1)) assertRefused(await immediately(() => FileDescriptor.from(value, { loop })), `FileDescriptor.from(${show(value)})`, [TypeError]);
        } finally {
          await a.close();
          await b.close();
        }
      }),
      { numRuns: 100 },
    );
  });
});
