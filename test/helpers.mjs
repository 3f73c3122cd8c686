/**
 * Shared test utilities: `forEachLoop` instantiates a conformance file once per backend and
 * driver mode, and `raw` creates plain fds for loop-level tests.
 *
 * This is the only test file that imports evloop internals (`dist/sys/…`): when the public API
 * covers what `raw` does, only this file changes.
 *
 * Every wait in a test is bounded: `ctx.run` races the body against a timer on the test's own
 * loop, which fires even in owner mode, where the thread blocks in the kernel and Node's timers
 * (including node:test's own timeout) cannot run.
 */
import { after, before, describe } from "node:test";
import { createHash, randomFillSync } from "node:crypto";
import { networkInterfaces, tmpdir } from "node:os";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { availableBackends, createLoop, runMain } from "evloop";

import { bind, listen, localAddress, socket, socketPair } from "../dist/sys/posix/socket.js";
import { close, isOpen, pipe, read, write, WOULD_BLOCK } from "../dist/sys/posix/fd.js";
import { C } from "../dist/sys/target.js";

/** The driver modes every conformance file runs in. */
export const MODES = ["guest", "owner"];

/** Default bound on one `ctx.run` body, in ms. */
export const RUN_TIMEOUT = 60_000;

/**
 * The backends the conformance suite runs on: every available one except "blocking" (which
 * cannot run a client and a server on one thread; `test/loop/blocking.test.mjs` covers it),
 * restricted by `EVLOOP_TEST_BACKENDS=epoll,poll` when set.
 */
export function testBackends() {
  let names = availableBackends().filter((b) => b !== "blocking");
  const wanted = process.env.EVLOOP_TEST_BACKENDS;
  if (wanted) {
    const list = wanted.split(",").map((s) => s.trim()).filter(Boolean);
    names = names.filter((b) => list.includes(b));
  }
  return names;
}

/**
 * Resolves with `fn()`, or rejects when `ms` pass first. The timer lives on `loop`, so it also
 * bounds an owner-mode body, whose thread sits in epoll_wait/poll between iterations.
 */
export async function withWatchdog(loop, fn, ms = RUN_TIMEOUT) {
  const stop = new AbortController();
  const dog = loop.sleep(ms, { signal: stop.signal }).then(() => {
    throw new Error(`test body did not finish within ${ms} ms (watchdog on the ${loop.backend} loop)`);
  });
  try {
    return await Promise.race([fn(), dog]);
  } finally {
    stop.abort();
    // The aborted sleep rejects; Promise.race already handles that rejection.
  }
}

/**
 * The loop configurations the conformance suite runs: one per backend, and for io_uring also its
 * fallback without multishot ACCEPT ("io_uring one-shot", what kernels before 5.19 get) and
 * its opt-in multishot RECV ("io_uring multishot-recv").
 */
export function loopVariants(backends = testBackends()) {
  const out = [];
  for (const backend of backends) {
    out.push({ backend, label: backend, options: {} });
    if (backend === "io_uring") {
      out.push({ backend, label: "io_uring one-shot", options: { ioUring: { multishot: false } } });
      out.push({ backend, label: "io_uring multishot-recv", options: { ioUring: { multishotRecv: true } } });
    }
  }
  return out;
}

/**
 * Declares `describe(title)` with one nested `describe("<backend> <mode>")` per backend and
 * mode, each with a fresh loop (disposed afterwards). `fn(ctx)` declares the tests, where
 * `ctx.loop` is the loop (valid once tests run), `ctx.backend`/`ctx.mode` say which, and
 * `ctx.run(body, { timeout })` runs `body` in that mode: awaited directly in guest mode, under
 * `runMain` in owner mode. In owner mode a body must only wait for evloop (loop.sleep, evloop
 * sockets): Node's timers and I/O do not run while the loop blocks.
 *
 * `options.modes` restricts the modes (guest-only features).
 */
export function forEachLoop(title, fn, options = {}) {
  const modes = options.modes ?? MODES;
  describe(title, () => {
    const backends = testBackends();
    if (backends.length === 0) {
      describe("no backend", { skip: "no non-blocking backend available (or none selected by EVLOOP_TEST_BACKENDS)" }, () => {});
      return;
    }
    for (const { backend, label, options: loopOptions } of loopVariants(backends)) {
      for (const mode of modes) {
        describe(`${label} ${mode}`, () => {
          let loop = null;
          const ctx = {
            backend,
            mode,
            get loop() {
              if (!loop) throw new Error("ctx.loop is only available inside tests");
              return loop;
            },
            run(body, { timeout = RUN_TIMEOUT } = {}) {
              const bounded = () => withWatchdog(loop, body, timeout);
              return mode === "guest" ? bounded() : runMain(bounded, { loop });
            },
          };
          before(() => {
            loop = createLoop({ backend, guest: mode === "guest", ...loopOptions });
          });
          after(() => {
            loop?.dispose();
            loop = null;
          });
          fn(ctx);
        });
      }
    }
  });
}

/**
 * Records how a promise settles without awaiting it: `t.state` is "pending", "fulfilled" or
 * "rejected", with `t.value` / `t.reason`. `t.promise` is the original promise, handled.
 */
export function track(promise) {
  const t = { state: "pending", value: undefined, reason: undefined, promise };
  promise.then(
    (v) => {
      t.state = "fulfilled";
      t.value = v;
    },
    (e) => {
      t.state = "rejected";
      t.reason = e;
    },
  );
  return t;
}

/** A sha256 hasher (node:crypto): `update()` it chunk by chunk, then `digest("hex")`. */
export function sha256() {
  return createHash("sha256");
}

/** `n` random bytes. */
export function randomBytes(n) {
  return randomFillSync(new Uint8Array(n));
}

/** Whether every byte of `buf` is zero. */
export function allZero(buf) {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Whether the loopback interface has ::1. */
export function hasIPv6Loopback() {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv6" && a.address === "::1") return true;
  }
  return false;
}

let nameCounter = 0;

/** A Linux abstract unix socket name unique to this process: "\0evloop-test-<pid>-<n>". */
export function abstractName() {
  return `\0evloop-test-${process.pid}-${++nameCounter}`;
}

/** A filesystem path for a unix socket (not created); the caller unlinks it. */
export function socketPath() {
  return join(tmpdir(), `evloop-test-${process.pid}-${++nameCounter}.sock`);
}

/** Encodes text as UTF-8. */
export const bytes = (text) => new TextEncoder().encode(text);
/** Decodes UTF-8. */
export const text = (buf) => new TextDecoder().decode(buf);

/**
 * Plain fds for loop-level tests (non-blocking, close-on-exec), and synchronous I/O on them
 * that never blocks: `write`/`read` return -1 when the call would block.
 */
export const raw = {
  /** A connected AF_UNIX socket pair: "stream" or "dgram". */
  socketPair(kind = "stream") {
    return socketPair(C.AF_UNIX, kind === "dgram" ? C.SOCK_DGRAM : C.SOCK_STREAM);
  },
  /** A pipe: [read end, write end]. */
  pipe() {
    return pipe(true);
  },
  /** An unconnected TCP socket (IPv4 unless `family` is "ipv6"). */
  tcpSocket(family = "ipv4") {
    return socket(family === "ipv6" ? C.AF_INET6 : C.AF_INET, C.SOCK_STREAM);
  },
  /** A listening TCP socket on 127.0.0.1 with the given backlog: { fd, address }. */
  tcpListener(backlog = 16) {
    const fd = socket(C.AF_INET, C.SOCK_STREAM);
    try {
      bind(fd, { family: "ipv4", address: "127.0.0.1", port: 0 });
      listen(fd, backlog);
      return { fd, address: localAddress(fd) };
    } catch (e) {
      close(fd);
      throw e;
    }
  },
  write(fd, buf) {
    const n = write(fd, buf);
    return n === WOULD_BLOCK ? -1 : n;
  },
  read(fd, buf) {
    const n = read(fd, buf);
    return n === WOULD_BLOCK ? -1 : n;
  },
  /**
   * Writes to `fd` until the kernel buffer is full (write would block); returns the bytes
   * written. Bounded: gives up (throws) after 256 MiB.
   */
  fill(fd) {
    const chunk = new Uint8Array(64 * 1024).fill(0x5a);
    let total = 0;
    for (;;) {
      const n = write(fd, chunk);
      if (n === WOULD_BLOCK) return total;
      total += n;
      if (total > 256 * 1024 * 1024) throw new Error(`fd ${fd} accepted 256 MiB without blocking`);
    }
  },
  /** Reads and discards whatever `fd` has now; returns the count. */
  drain(fd) {
    const buf = new Uint8Array(64 * 1024);
    let total = 0;
    for (;;) {
      const n = read(fd, buf);
      if (n === WOULD_BLOCK || n === 0) return total;
      total += n;
    }
  },
  close(fd) {
    close(fd);
  },
  /** Whether `fd` is open. Only meaningful right after the test itself closed it: numbers are reused. */
  isOpen(fd) {
    return isOpen(fd);
  },
};

/** The URL of the compiled package entry, for Workers that import it by absolute URL. */
export const distIndexUrl = new URL("../dist/index.js", import.meta.url).href;

/** Reads exactly `n` bytes from a stream; rejects if it ends first. */
export async function readExactly(stream, n, options) {
  const out = new Uint8Array(n);
  let at = 0;
  while (at < n) {
    const k = await stream.read(out.subarray(at), options);
    if (k === 0) throw new Error(`stream ended after ${at} of ${n} bytes`);
    at += k;
  }
  return out;
}

/** Reads a stream to its end (at most `limit` bytes, else rejects) and returns the bytes. */
export async function readToEnd(stream, limit = 16 * 1024 * 1024, options) {
  const chunks = [];
  const buf = new Uint8Array(64 * 1024);
  let total = 0;
  for (;;) {
    const n = await stream.read(buf, options);
    if (n === 0) break;
    total += n;
    if (total > limit) throw new Error(`stream sent more than ${limit} bytes`);
    chunks.push(buf.slice(0, n));
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The number of fds this process has open (from /proc/self/fd). */
export function openFdCount() {
  return readdirSync("/proc/self/fd").length;
}
