/**
 * Shared test utilities: `forEachLoop` instantiates a conformance file once per backend and
 * driver mode, `ctx.peer` runs the other end of a connection where it can make progress while
 * the test body waits, and `raw` creates plain fds for loop-level tests.
 *
 * The conformance files use only the public API; what they need beyond it (`raw`, plain fds)
 * comes from here, the one file of the suite that imports evloop internals (`dist/sys/…`), so
 * when the public API covers it only this file changes. (The unit tests under test/sys and
 * test/loop import the internals they test directly.)
 *
 * Every wait in a test is bounded. `ctx.run` races the body against a timer on the test's own
 * loop, which fires even in owner mode, where the thread blocks in the kernel and Node's timers
 * (including node:test's own timeout) cannot run. On the blocking backend an operation holds the
 * thread inside poll(2), where no timer of any kind runs: there the bounds are the operations'
 * own timeouts; the peer's (a peer that fails or outlives its watchdog closes its sockets in its
 * `finally` blocks, which ends the body's wait on them); and last, the per-test timeout with which
 * scripts/test.mjs kills the file's process from outside.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomFillSync } from "node:crypto";
import { networkInterfaces, tmpdir } from "node:os";
import { readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { MessageChannel, receiveMessageOnPort, Worker } from "node:worker_threads";
import * as evloop from "evloop";
import { availableBackends, createLoop, runMain } from "evloop";
import * as helpers from "./helpers.mjs";

import { bind, listen, localAddress, socket, socketPair } from "../dist/sys/posix/socket.js";
import { close, isOpen, pipe, read, write, WOULD_BLOCK } from "../dist/sys/posix/fd.js";
import { C } from "../dist/sys/target.js";
import * as win from "../dist/sys/windows/socket.js";

/** Windows: no socketpair, pipes or fd calls; `raw` uses loopback sockets and Winsock there. */
export const IS_WINDOWS = process.platform === "win32";

/** The driver modes every conformance file runs in (EVLOOP_TEST_MODES=owner restricts them). */
export const MODES = (process.env.EVLOOP_TEST_MODES ?? "guest,owner").split(",").map((m) => m.trim()).filter((m) => m === "guest" || m === "owner");

/** Default bound on one `ctx.run` body, in ms. */
export const RUN_TIMEOUT = 60_000;

/** Default bound on one peer's work (`ctx.peer`), in ms; shorter than a body's, so a stuck peer fails first. */
export const PEER_TIMEOUT = 30_000;

/**
 * The backends the conformance suite runs on: every available one, restricted by
 * `EVLOOP_TEST_BACKENDS=epoll,poll` when set. "blocking" is one of them: its operations block the
 * thread, so where a test needs both ends of a connection to make progress at once, `ctx.peer`
 * runs the other end in a Worker.
 */
export function testBackends() {
  let names = availableBackends();
  const wanted = process.env.EVLOOP_TEST_BACKENDS;
  if (wanted) {
    const list = wanted.split(",").map((s) => s.trim()).filter(Boolean);
    names = names.filter((b) => list.includes(b));
  }
  return names;
}

/**
 * The readiness API's selectors to test (`new Poll(name)`): the tested backends that are
 * selectors, and on Windows "afd" where "iocp" is tested (it needs the same completion port and
 * AFD device).
 */
export function readinessSelectors() {
  const backends = testBackends();
  const names = backends.filter((b) => b === "epoll" || b === "kqueue" || b === "poll");
  if (IS_WINDOWS && backends.includes("iocp")) names.push("afd");
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
 * `ctx.loop` is the loop (valid once tests run), `ctx.backend`/`ctx.mode` say which,
 * `ctx.blocking` whether it is the blocking backend (operations block the thread; nothing is
 * ever pending), `ctx.run(body, { timeout })` runs `body` in that mode: awaited directly in
 * guest mode, under `runMain` in owner mode; `ctx.peer(fn, args)` starts the other end of a
 * connection (see {@link Peer}); `ctx.both(first, second)` runs two operations that complete
 * each other, such as a connect and the accept that takes it: together (`Promise.all`) where
 * operations park, so the second waits while the first runs; one after the other on the
 * blocking backend, where `first` must be the one that completes alone (a connect completes
 * against the listen backlog) because `second` would otherwise hold the thread first. In owner
 * mode a body must only wait for evloop (loop.sleep, evloop sockets, a peer): Node's timers and
 * I/O do not run while the loop blocks.
 *
 * `options.modes` restricts the modes (guest-only features), within those EVLOOP_TEST_MODES
 * selects: where that leaves none, one skipped test says so.
 */
export function forEachLoop(title, fn, options = {}) {
  const modes = (options.modes ?? MODES).filter((m) => MODES.includes(m));
  describe(title, () => {
    if (modes.length === 0) {
      const why = `only ${options.modes.join(" and ")} mode, which EVLOOP_TEST_MODES=${process.env.EVLOOP_TEST_MODES} leaves out`;
      test(`skipped: ${why}`, { skip: why }, () => {});
      return;
    }
    const backends = testBackends();
    if (backends.length === 0) {
      describe("no backend", { skip: "no backend selected by EVLOOP_TEST_BACKENDS is available" }, () => {});
      return;
    }
    for (const { backend, label, options: loopOptions } of loopVariants(backends)) {
      for (const mode of modes) {
        describe(`${label} ${mode}`, () => {
          let loop = null;
          const blocking = backend === "blocking";
          const threads = new PeerThreads();
          const ctx = {
            backend,
            mode,
            blocking,
            get loop() {
              if (!loop) throw new Error("ctx.loop is only available inside tests");
              return loop;
            },
            run(body, { timeout = RUN_TIMEOUT } = {}) {
              const bounded = () => withWatchdog(loop, body, timeout);
              return mode === "guest" ? bounded() : runMain(bounded, { loop });
            },
            async both(first, second) {
              if (!blocking) return Promise.all([first(), second()]);
              const a = await first();
              return [a, await second()];
            },
            peer(peerFn, args = {}, { timeout = PEER_TIMEOUT } = {}) {
              return blocking ? threads.start(peerFn, args, timeout) : inThreadPeer(ctx.loop, peerFn, args);
            },
          };
          before(() => {
            loop = createLoop({ backend, guest: mode === "guest", ...loopOptions });
          });
          after(async () => {
            loop?.dispose();
            loop = null;
            await threads.close();
          });
          fn(ctx);
        });
      }
    }
  });
}

/**
 * The other end of a connection in a conformance test, started with `ctx.peer(fn, args)`.
 *
 * `fn(env, args)` is an async function that must use nothing but its two parameters: on the
 * blocking backend it is sent as source text to a Worker. `args` must be structured-cloneable
 * (fds are process-wide numbers: pass them). `env` holds every export of this file, `evloop`
 * (the package), `loop` (the loop to use for its sockets), and:
 * - `whenWaiting()`: resolves once the test body is waiting for the peer (see `proceed`);
 * - `send(value)` / `receive()`: messages to and from the body (`peer.receive()` / `peer.send()`);
 * - `where`: "thread" or "worker".
 *
 * Where it runs:
 * - on a backend that parks operations, as a concurrent task on the body's own loop (what the
 *   suite always did: both ends on one loop);
 * - on the blocking backend, whose operations block the thread, in a Worker (test/peer-worker.mjs)
 *   with its own loop (epoll where available) in owner mode, bounded by its own watchdog.
 *   The body talks to it with synchronous, bounded waits (Atomics.wait and receiveMessageOnPort),
 *   which need neither the body's loop nor Node's.
 *
 * The handle's methods:
 * - `await peer.result()`: what `fn` returned; rejects with its error;
 * - `await peer.proceed(...tracked)`: lets the peer past its next `whenWaiting()`. On a loop
 *   that parks operations it first lets the loop run a few iterations and asserts that each
 *   tracked operation (see {@link track}) is still pending. On the blocking backend the body's
 *   operation has already blocked until the peer acted; there the peer's `whenWaiting()` itself
 *   waits until the body's thread sits in poll(2) (read from /proc), and fails if it never does,
 *   so "the operation waited for the peer" is asserted on both kinds of backend;
 * - `peer.send(value)` / `await peer.receive()`.
 *
 * @typedef {{ result(): Promise<unknown>, proceed(...tracked: object[]): Promise<void>, send(value: unknown): void, receive(): Promise<unknown> }} Peer
 */

/** A queue whose `take()` waits for the next `push()`. */
function asyncQueue() {
  const items = [];
  const takers = [];
  return {
    push(v) {
      const t = takers.shift();
      if (t) t(v);
      else items.push(v);
    },
    take() {
      return items.length > 0 ? Promise.resolve(items.shift()) : new Promise((resolve) => takers.push(resolve));
    },
  };
}

/** A peer as a concurrent task on the body's loop. */
function inThreadPeer(loop, fn, args) {
  const toPeer = asyncQueue();
  const toBody = asyncQueue();
  const gate = asyncQueue();
  const env = {
    ...helpers,
    evloop,
    loop,
    where: "thread",
    whenWaiting: () => gate.take(),
    send: (v) => toBody.push(v),
    receive: () => toPeer.take(),
  };
  const task = (async () => fn(env, args))();
  task.catch(() => {}); // handled by whoever calls result(); a body that failed first never does
  return {
    result: () => task,
    async proceed(...tracked) {
      for (let i = 0; i < 3; i++) await loop.sleep(5);
      for (const t of tracked) assert.equal(t.state, "pending", `an operation completed (${t.state}) before the peer acted`);
      gate.push();
    },
    send: (v) => toPeer.push(v),
    receive: () => toBody.take(),
  };
}

/**
 * The Workers that run peers for one describe block on the blocking backend: started when first
 * needed, reused once a peer's result has been collected, ended by `close()`.
 */
class PeerThreads {
  #idle = [];
  #all = [];

  start(fn, args, timeout) {
    const thread = this.#idle.pop() ?? this.#spawn();
    return thread.run(fn, args, timeout, () => this.#idle.push(thread));
  }

  #spawn() {
    const thread = new PeerThread();
    this.#all.push(thread);
    return thread;
  }

  async close() {
    const all = this.#all;
    this.#all = [];
    this.#idle = [];
    await Promise.all(all.map((t) => t.close()));
  }
}

/**
 * The backend a peer Worker's loop uses: one that parks operations, so the peer can run many at
 * once. Never kqueue, which on Linux is libkqueue, a backend under test rather than a trusted far
 * end (on macOS and the BSDs poll serves).
 */
function peerBackend() {
  const available = availableBackends();
  return ["epoll", "poll", "io_uring", "iocp"].find((b) => available.includes(b)) ?? "blocking";
}

/**
 * The kernel's id of the calling thread, from /proc/thread-self ("<pid>/task/<tid>"), for a peer
 * Worker to watch this thread in /proc; the process id where /proc does not say (not Linux, or a
 * kernel before 3.17), which is the main thread's. Not always the main thread's: `deno test`
 * runs JavaScript on a thread of its own.
 */
function threadId() {
  try {
    return Number(readlinkSync("/proc/thread-self").split("/").pop());
  } catch {
    return process.pid;
  }
}

/**
 * One peer Worker. Messages go through a MessageChannel; `ctl` counts them ([0] to the worker,
 * [1] to the body) so that either side can wait for the next one with Atomics.wait and take it
 * with receiveMessageOnPort, without an event loop.
 */
class PeerThread {
  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.ctl = new Int32Array(new SharedArrayBuffer(8));
    this.worker = new Worker(new URL("./peer-worker.mjs", import.meta.url), {
      workerData: { port: port2, ctl: this.ctl.buffer, backend: peerBackend(), bodyThread: threadId() },
      transferList: [port2],
    });
    this.failure = null;
    this.worker.on("error", (e) => (this.failure = e));
    this.exited = new Promise((resolve) => this.worker.once("exit", resolve));
  }

  post(message) {
    this.port.postMessage(message);
    Atomics.add(this.ctl, 0, 1);
    Atomics.notify(this.ctl, 0);
  }

  /** The next message from the worker, waiting at most `ms` (synchronously). */
  next(ms, what) {
    const deadline = performance.now() + ms;
    for (;;) {
      const count = Atomics.load(this.ctl, 1);
      const got = receiveMessageOnPort(this.port);
      if (got) return got.message;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`the peer Worker sent nothing within ${ms} ms while the test waited for ${what}${this.failure ? ` (worker error: ${this.failure.message})` : ""}`);
      }
      Atomics.wait(this.ctl, 1, count, left);
    }
  }

  run(fn, args, timeout, release) {
    this.post({ type: "run", source: fn.toString(), args, timeout });
    const inbox = [];
    let outcome = null;
    // The peer's own watchdog ends it after `timeout`; its answer may take a little longer.
    const bound = timeout + 10_000;
    const take = (what) => {
      const m = this.next(bound, what);
      if (m.type === "result") {
        outcome = m;
        release();
      } else inbox.push(m.value);
    };
    const settle = () => {
      if (outcome.ok) return outcome.value;
      const e = new Error(`peer failed: ${outcome.error.message}`);
      e.stack += `\n  peer stack: ${outcome.error.stack}`;
      if (outcome.error.code !== undefined) e.code = outcome.error.code;
      throw e;
    };
    return {
      async result() {
        while (!outcome) take("the peer's result");
        return settle();
      },
      async proceed() {
        // Nothing to do: see Peer.proceed.
      },
      send: (value) => this.post({ type: "message", value }),
      async receive() {
        while (inbox.length === 0 && !outcome) take("a message from the peer");
        if (inbox.length > 0) return inbox.shift();
        settle();
        throw new Error("the peer finished without sending the message the test waited for");
      },
    };
  }

  /** Asks the worker to exit once its current peer (if any) is done; ends it after 5 s. */
  async close() {
    this.post({ type: "exit" });
    let timer;
    const late = new Promise((resolve) => (timer = setTimeout(resolve, 5000, "running")));
    const exited = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (exited === "running") await this.worker.terminate();
  }
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
/**
 * `promise`, or a rejection naming `what` after `ms` (a Node timer: for tests on the host's own
 * loop, where it also keeps the process alive meanwhile).
 */
export function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Decodes UTF-8. */
export const text = (buf) => new TextDecoder().decode(buf);

/** `raw` on Unix: socketpair, pipe and the fd calls. */
const posixRaw = {
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
  close(fd) {
    close(fd);
  },
  /** Whether `fd` is open. Only meaningful right after the test itself closed it: numbers are reused. */
  isOpen(fd) {
    return isOpen(fd);
  },
};

/** The same on Windows: a loopback TCP (or connected UDP) pair stands in for socketpair. */
const windowsRaw = {
  socketPair(kind = "stream") {
    return win.loopbackPair(kind);
  },
  pipe() {
    throw new Error("raw.pipe(): Windows has no pipe(2); this test is Unix-only");
  },
  tcpSocket(family = "ipv4") {
    return win.socket(family === "ipv6" ? C.AF_INET6 : C.AF_INET, C.SOCK_STREAM, C.IPPROTO_TCP);
  },
  tcpListener(backlog = 16) {
    const fd = win.socket(C.AF_INET, C.SOCK_STREAM, C.IPPROTO_TCP);
    try {
      win.bind(fd, { family: "ipv4", address: "127.0.0.1", port: 0 });
      win.listen(fd, backlog);
      return { fd, address: win.localAddress(fd) };
    } catch (e) {
      win.closeSocket(fd);
      throw e;
    }
  },
  write(fd, buf) {
    return win.sendNow(fd, buf);
  },
  read(fd, buf) {
    return win.receiveNow(fd, buf);
  },
  close(fd) {
    win.closeSocket(fd);
  },
  isOpen(fd) {
    return win.isOpenSocket(fd);
  },
};

const os = IS_WINDOWS ? windowsRaw : posixRaw;

/**
 * Plain fds for loop-level tests (non-blocking, close-on-exec), and synchronous I/O on them
 * that never blocks: `write`/`read` return -1 when the call would block. On Windows the fds
 * are sockets (a loopback pair stands in for socketpair) and there are no pipes.
 */
export const raw = {
  ...os,
  /**
   * Writes to `fd` until the kernel buffer is full (write would block); returns the bytes
   * written. Bounded: gives up (throws) after 256 MiB.
   */
  fill(fd) {
    const chunk = new Uint8Array(64 * 1024).fill(0x5a);
    let total = 0;
    for (;;) {
      const n = os.write(fd, chunk);
      if (n === -1) return total;
      total += n;
      if (total > 256 * 1024 * 1024) throw new Error(`fd ${fd} accepted 256 MiB without blocking`);
    }
  },
  /** Reads and discards whatever `fd` has now; returns the count. */
  drain(fd) {
    const buf = new Uint8Array(64 * 1024);
    let total = 0;
    for (;;) {
      const n = os.read(fd, buf);
      if (n === -1 || n === 0) return total;
      total += n;
    }
  },
};

/** The local address of socket `fd` (getsockname), as evloop reports addresses. */
export function localAddressOf(fd) {
  return IS_WINDOWS ? win.localAddress(fd) : localAddress(fd);
}

/**
 * A connected pair of stream handles on `loop`, for tests that need only *a stream pair*:
 * `UnixStream.pair()` on Unix (what those tests always used), and on Windows, which has no
 * socketpair, a loopback TCP connection: [the connecting TcpStream, the accepted one].
 */
export async function streamPair(loop) {
  if (!IS_WINDOWS) return evloop.UnixStream.pair({ loop });
  const l = await evloop.TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
  try {
    // The connect completes against the listen backlog, so the accept can follow it.
    const c = await evloop.TcpStream.connect({ host: "127.0.0.1", port: l.address.port, timeout: 5000, loop });
    try {
      return [c, await l.accept({ timeout: 5000 })];
    } catch (e) {
      await c.close();
      throw e;
    }
  } finally {
    await l.close();
  }
}

/**
 * `raw.fill()` for the socket of an evloop stream: fills its kernel buffer. On Unix evloop's fds
 * are non-blocking already; on Windows evloop leaves its sockets in blocking mode (IOCP needs no
 * other), where raw's send() would block once the buffer is full, so the socket is made
 * non-blocking first (FIONBIO), as raw.socketPair()'s sockets are.
 */
export function fillStream(stream) {
  if (IS_WINDOWS) win.setNonBlocking(stream.fd, true);
  return raw.fill(stream.fd);
}

/** The JavaScript runtime running the tests: "node", "bun" or "deno". */
export const RUNTIME = globalThis.Deno !== undefined ? "deno" : globalThis.Bun !== undefined ? "bun" : "node";

/**
 * How to run ES module `source` (static imports by absolute URL, top-level await) in a child
 * process of the runtime running the tests: `[program, args]` for `spawn`. Node needs
 * `--input-type=module -e`, Bun takes `-e`, Deno `eval` (which has every permission). The child
 * gets no arguments of its own (each runtime puts them at another index of `process.argv`):
 * write what it needs into `source`.
 */
export function evalCommand(source) {
  const args = { node: ["--input-type=module", "-e", source], bun: ["-e", source], deno: ["eval", source] }[RUNTIME];
  return [process.execPath, args];
}

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

/** The number of fds this process has open (from /proc/self/fd; on Windows, its open sockets). */
export function openFdCount() {
  if (!IS_WINDOWS) return readdirSync("/proc/self/fd").length;
  // Windows: count the open sockets. Handle numbers are multiples of 4 handed out lowest-free
  // first, so every open one lies below a new socket's number plus some room for other handles.
  const probe = win.socket(C.AF_INET, C.SOCK_STREAM, C.IPPROTO_TCP);
  win.closeSocket(probe);
  let open = 0;
  for (let h = 4; h <= probe + 4096; h += 4) if (win.isOpenSocket(h)) open++;
  return open;
}
