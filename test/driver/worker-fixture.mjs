/**
 * Child process for test/driver/workers.test.mjs: `node worker-fixture.mjs <scenario> <backend>`
 * starts a Worker that uses evloop in owner mode, does to it what the scenario says, and prints
 * one JSON line with what it saw. The test runs it with a timeout, so a Worker that cannot be
 * stopped (and a `process.exit` that then hangs) fails the test instead of hanging the file.
 *
 * Scenarios:
 * - `idle`: the Worker sits in runMain (a 60 s sleep, or a read that never completes); once its
 *   thread is seen asleep in the kernel, the parent posts it a message, then terminates it;
 * - `transfer-terminate` / `transfer-exit`: the Worker connects a TcpStream and a UnixStream to
 *   node:net servers here and writes to both until they block; the parent terminates it (or the
 *   Worker returns from runMain, leaving its sockets open): the servers' sockets must see the
 *   end, and this process's fd count must come back to where it was;
 * - `listener`: the Worker listens, takes one of five connections and sleeps; the parent
 *   terminates it: the clients must see their connections end (those accepted by the kernel
 *   ahead of `accept()`, on io_uring, included), and this process's sockets come back;
 * - `reuse`: the Worker closes an evloop socket and then opens a raw socketpair that reuses its
 *   number, and releases a FileDescriptor; after the Worker is terminated, neither the raw fds
 *   nor the released one may have been closed by it.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const LIMIT_MS = 8000;

if (isMainThread) {
  const [scenario, backend] = process.argv.slice(2);
  const result = await main(scenario, backend);
  console.log(JSON.stringify(result));
  process.exit(0);
} else {
  await worker(workerData);
}

/** Open fds of this process. */
function fdCount() {
  return readdirSync("/proc/self/fd").length;
}

/** Open sockets and kernel objects (epoll, eventfd, io_uring) of this process: what evloop opens. */
function kernelFdCount() {
  let n = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (/^(socket|anon_inode):/.test(readlinkSync(`/proc/self/fd/${fd}`))) n++;
    } catch {
      // Closed meanwhile (the readdir's own fd).
    }
  }
  return n;
}

function isOpenFd(fd) {
  try {
    readlinkSync(`/proc/self/fd/${fd}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves once thread `tid` of this process has slept in one system call for 100 ms without a
 * wake-up (or rejects after LIMIT_MS). A Worker in runMain with an evloop operation or timer
 * pending sleeps only in evloop's wait (libuv is then polled with a zero timeout), so this is
 * the moment a message or a terminate must get through evloop's wait, not slip in before it.
 *
 * `quiet: false` asks only that it be asleep in the same system call at both looks, woken or
 * not in between: the blocking backend's read holds the thread in poll(2), and when the host's
 * fd was readable as the read began (a Worker's own start-up can leave it so), it leaves that fd
 * out for 20 ms slices and passes through JavaScript after each, so it never sleeps 100 ms
 * unwoken, yet it is waiting there all the same.
 */
async function sleepingInKernel(tid, what = "", quiet = true) {
  const read = () => {
    const status = readFileSync(`/proc/self/task/${tid}/status`, "utf8");
    const state = /^State:\s*(\S)/m.exec(status)?.[1];
    const switches = quiet ? /^voluntary_ctxt_switches:\s*(\d+)$/m.exec(status)?.[1] : "-";
    const call = readFileSync(`/proc/self/task/${tid}/syscall`, "utf8").trim();
    return `${state} ${switches} ${quiet ? call : call.split(" ")[0]}`;
  };
  const until = performance.now() + LIMIT_MS;
  let last = "";
  while (performance.now() < until) {
    const now = read();
    if (now === last && now.startsWith("S ") && !now.endsWith("running")) return;
    last = now;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the Worker's thread ${tid}${what} was not seen waiting in the kernel within ${LIMIT_MS} ms (last: state, switches, syscall: ${last})`);
}

/** Resolves with `promise`'s value, or with `fallback` after `ms`. */
function within(promise, ms, fallback) {
  let timer;
  return Promise.race([promise, new Promise((r) => (timer = setTimeout(() => r(fallback), ms)))]).finally(() => clearTimeout(timer));
}

function nextMessage(w) {
  return new Promise((resolve, reject) => {
    w.once("message", resolve);
    w.once("error", reject);
  });
}

/** Terminates `w`, timing it; `exited` says whether its 'exit' event came. */
async function terminate(w) {
  const exit = new Promise((r) => w.once("exit", r));
  const start = performance.now();
  const settled = await within(w.terminate().then(() => true), LIMIT_MS, false);
  const ms = performance.now() - start;
  const exited = (await within(exit.then(() => true), LIMIT_MS, false)) === true;
  return { settled, exited, ms };
}

async function main(scenario, backend) {
  // Probing the backends opens what a library keeps for the life of the process (libkqueue: its
  // close-detection epoll fd and eventfd, made with its first kqueue, in whichever thread): let
  // that happen here, before any fd count, as it would in an application that used evloop.
  (await import("evloop")).probeBackends();
  if (scenario === "idle") {
    const out = {};
    for (const wait of ["sleep", "read"]) {
      const w = new Worker(new URL(import.meta.url), { workerData: { scenario, backend, wait } });
      const { tid } = await nextMessage(w);
      await sleepingInKernel(tid, ` (waiting in a ${wait})`, !(backend === "blocking" && wait === "read"));
      w.postMessage("ping");
      // On the blocking backend a read holds the thread: no message can be handled meanwhile.
      const echo = await within(nextMessage(w), wait === "read" && backend === "blocking" ? 200 : LIMIT_MS, null);
      out[wait] = { echo, ...(await terminate(w)) };
    }
    return out;
  }
  if (scenario === "reuse") {
    const w = new Worker(new URL(import.meta.url), { workerData: { scenario, backend } });
    const fds = await nextMessage(w);
    const stopped = await terminate(w);
    const open = Object.fromEntries(Object.entries(fds).map(([k, fd]) => [k, typeof fd === "number" && isOpenFd(fd)]));
    return { fds, open, ...stopped };
  }
  if (scenario === "listener") {
    // Node opens a file of its own (/dev/null) around a Worker's first connections: only the
    // kinds of fd evloop opens are compared.
    const baseline = kernelFdCount();
    const w = new Worker(new URL(import.meta.url), { workerData: { scenario, backend } });
    w.on("error", () => {});
    const port = await nextMessage(w);
    const clients = [];
    const ended = [];
    for (let i = 0; i < 5; i++) {
      const c = connect({ port, host: "127.0.0.1" });
      c.on("error", () => {});
      c.on("data", () => {});
      ended.push(new Promise((r) => c.once("close", () => r(true))));
      clients.push(c);
    }
    const accepted = await nextMessage(w);
    // Time for a backend that accepts ahead (io_uring's multishot ACCEPT) to take the rest.
    await new Promise((r) => setTimeout(r, 100));
    const stopped = await terminate(w);
    const ends = await within(Promise.all(ended), LIMIT_MS, null);
    for (const c of clients) c.destroy();
    let after = kernelFdCount();
    for (const until = performance.now() + LIMIT_MS; after !== baseline && performance.now() < until; after = kernelFdCount()) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return { accepted, clientsClosed: ends !== null, baseline, after, ...stopped };
  }
  // transfer-terminate, transfer-exit
  const path = join(tmpdir(), `evloop-worker-${process.pid}.sock`);
  rmSync(path, { force: true });
  const peers = [];
  const closed = [];
  const received = [];
  const onConnection = (socket) => {
    peers.push(socket);
    closed.push(new Promise((r) => socket.once("close", () => r(true))));
    socket.on("error", () => {});
    // Mid-transfer: the peer takes 64 KiB, then stops reading, so the Worker's writes wait.
    received.push(
      new Promise((r) => {
        let total = 0;
        const onData = (data) => {
          total += data.byteLength;
          if (total < 65536) return;
          socket.off("data", onData);
          if (scenario === "transfer-terminate") socket.pause();
          socket.on("data", () => {});
          r();
        };
        socket.on("data", onData);
      }),
    );
  };
  let onAccept = onConnection;
  const tcp = createServer((s) => onAccept(s));
  const unix = createServer((s) => onAccept(s));
  await new Promise((r) => tcp.listen(0, "127.0.0.1", r));
  await new Promise((r) => unix.listen(path, r));
  // A first accept opens libuv's spare fd (for EMFILE): let that happen before the baseline.
  onAccept = (s) => s.destroy();
  for (const options of [{ port: tcp.address().port, host: "127.0.0.1" }, { path }]) {
    await new Promise((r) => connect(options).on("close", r).on("error", r));
  }
  await new Promise((r) => setTimeout(r, 20));
  onAccept = onConnection;
  const baseline = fdCount();
  const w = new Worker(new URL(import.meta.url), { workerData: { scenario, backend, port: tcp.address().port, path } });
  w.on("error", () => {});
  const exit = new Promise((r) => w.once("exit", r));
  const writing = await nextMessage(w);
  const midTransfer = (await within(Promise.all(received.slice(0, writing)), LIMIT_MS, null)) !== null;
  let stopped;
  if (scenario === "transfer-terminate") stopped = await terminate(w);
  else stopped = { exited: (await within(exit.then(() => true), LIMIT_MS, false)) === true };
  // The peers read again, so they see the end of the stream after the data.
  for (const s of peers) s.resume();
  const ends = await within(Promise.all(closed), LIMIT_MS, null);
  for (const s of peers) s.destroy();
  let after = fdCount();
  for (const until = performance.now() + LIMIT_MS; after !== baseline && performance.now() < until; after = fdCount()) {
    await new Promise((r) => setTimeout(r, 20));
  }
  tcp.close();
  unix.close();
  rmSync(path, { force: true });
  return { writing, midTransfer, peers: peers.length, peersClosed: ends !== null, baseline, after, ...stopped };
}

async function worker({ scenario, backend, wait, port, path }) {
  const evloop = await import("evloop");
  const loop = evloop.createLoop({ backend, guest: false });
  if (scenario === "idle") {
    parentPort.on("message", (m) => parentPort.postMessage(`echo ${m}`));
    const koffi = (await import("koffi")).default;
    const tid = koffi.load(null).func("int gettid(void)")();
    await evloop.runMain(async () => {
      parentPort.postMessage({ tid });
      if (wait === "sleep") await loop.sleep(60_000);
      const [a] = evloop.UnixStream.pair({ loop });
      await a.read(new Uint8Array(16));
    }, { loop });
    return;
  }
  if (scenario === "listener") {
    await evloop.runMain(async () => {
      const l = await evloop.TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
      parentPort.postMessage(l.address.port);
      await l.accept();
      parentPort.postMessage(1);
      await loop.sleep(60_000);
    }, { loop });
    return;
  }
  if (scenario === "reuse") {
    const { socketPair } = await import("../../dist/sys/posix/socket.js");
    const { pipe } = await import("../../dist/sys/posix/fd.js");
    const { C } = await import("../../dist/sys/target.js");
    await evloop.runMain(async () => {
      const [a, b] = evloop.UnixStream.pair({ loop });
      const closedNumber = a.fd;
      await a.close();
      // The lowest free numbers: `closedNumber` is reused here, and must not be closed at exit.
      const [x, y] = socketPair(C.AF_UNIX, C.SOCK_STREAM);
      const [r, wEnd] = pipe(true);
      const released = evloop.FileDescriptor.from(r, { loop }).release();
      const owned = evloop.FileDescriptor.from(wEnd, { loop });
      parentPort.postMessage({ closedNumber, x, y, released, owned: owned.fd, kept: b.fd });
      await loop.sleep(60_000);
    }, { loop });
    return;
  }
  await evloop.runMain(async () => {
    const tcp = await evloop.TcpStream.connect({ host: "127.0.0.1", port, loop });
    const unix = await evloop.UnixStream.connect({ path, loop });
    const chunk = new Uint8Array(65536);
    if (scenario === "transfer-exit") {
      // What fits in the sockets' buffers, then gone without closing anything.
      await tcp.writeAll(chunk);
      await unix.writeAll(chunk);
      parentPort.postMessage(2);
      return;
    }
    // On the blocking backend a waiting write holds the thread: only one stream is written.
    const streams = backend === "blocking" ? [tcp] : [tcp, unix];
    parentPort.postMessage(streams.length);
    const pump = async (s) => {
      for (;;) await s.writeAll(chunk);
    };
    const reads = backend === "blocking" ? [] : [tcp.read(new Uint8Array(16)), unix.read(new Uint8Array(16))];
    await Promise.all([...streams.map(pump), ...reads]);
  }, { loop });
}
