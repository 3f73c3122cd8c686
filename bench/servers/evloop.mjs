// Echo server on evloop's public API, for the benchmark suite (see ../../../shared/BENCHMARKS.md).
//
//   node bench/servers/evloop.mjs --backend io_uring|epoll|kqueue|poll --mode guest|owner [--port P]
//   bun bench/servers/evloop.mjs …
//   deno run --no-prompt --allow-ffi --allow-env=EVLOOP_* --allow-read=dist bench/servers/evloop.mjs …
//
// The same file runs on all three (labelled evloop-<backend>-<mode>, …@bun and …@deno in the
// report): it uses only evloop's API and the `process` global Bun and Deno provide too. Deno needs
// --allow-ffi for evloop, --allow-env=EVLOOP_* for the variables read here and in evloop, and
// --allow-read of evloop's dist/ for guest mode's helper thread; no --allow-net, since evloop's
// sockets are made through FFI (see bench/src/runtimes.ts).
//
// Prints `PORT <n>` once listening on 127.0.0.1, echoes every byte on every connection, answers
// SIGUSR2 with `STATS {"heapUsed":N,"rss":N}`, and exits 0 on SIGTERM or SIGINT. With
// EVLOOP_STATS=1 it prints the io_uring loop's counters on exit to stderr (`LOOPSTATS {...}`:
// kernel entries, SQEs submitted, CQEs handled), for tuning. EVLOOP_BENCH_BORROWED=1 echoes with
// borrowed reads instead (see echoBorrowed).
//
// Buffers: a connection holds a read buffer only once it has sent data, and only as large as its
// traffic needs. It starts without one and waits for data with `loop.waitReadable(fd)`, which
// parks no buffer; then it allocates MIN_BUFFER bytes and loops on read → writeAll. A read that
// fills the buffer means more is waiting, so the buffer grows fourfold, up to MAX_BUFFER (64 KiB).
// Idle connections thus hold no buffer and small-message ones 4 KiB. A buffer belongs to one
// connection from its read until its writeAll has finished.
//
// An earlier version also dropped the buffer after 100 ms without data, through a timeout on
// every read; at 10,000 connections each connection's turn comes about every 100 ms, so reads
// kept timing out and buffers were dropped and reallocated on every message (3× the CPU of
// node:net on the scale configuration). Keeping the 4 KiB costs 40 MB at 10,000 busy connections.
//
// Rejected designs (measured with a C client on 100 connections, and 2,000 for memory):
//   - a plain `read(buf)` loop with a 64 KiB buffer per connection: the same CPU per message,
//     but every connection that has sent one message keeps ~52 KiB resident (Node zero-fills
//     the buffer), against ~11 KiB with this design: some 500 MB at 10,000 connections;
//   - waitReadable before every read, borrowing a buffer from a server-wide pool only for
//     read → writeAll: a poll(2) and a promise more per message, ~45% more server CPU per
//     message at depth 1;
//   - one buffer shared by all connections: corrupted, because the loop completes the reads of
//     every ready connection into it before any of their continuations runs, and a writeAll
//     waiting on a slow peer would send bytes another connection's read has overwritten.
//
// Owner mode and signals: Node delivers signals through libuv, which only runs between evloop
// iterations (runMain yields to it once per iteration). evloop's blocking wait returns on EINTR,
// but the signal may land on another thread; a ticking evloop timer bounds each blocking wait to
// TICK_MS, so a signal is handled within TICK_MS even when no connection is active.
import { TcpListener, createLoop, runMain } from "evloop";

const MIN_BUFFER = 4 * 1024;
const MAX_BUFFER = 64 * 1024;
const TICK_MS = 50;

function parseArgs(argv) {
  const options = { backend: undefined, mode: "guest", port: 0 };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case "--backend":
        options.backend = value;
        break;
      case "--mode":
        if (value !== "guest" && value !== "owner") throw new Error(`--mode must be guest or owner, got ${value}`);
        options.mode = value;
        break;
      case "--port":
        options.port = Number(value);
        break;
      default:
        throw new Error(`unknown argument ${argv[i]}`);
    }
    i++;
  }
  return options;
}

/** Errors a peer causes by going away mid-echo; they end that connection and nothing more. */
const DISCONNECTS = new Set(["ECONNRESET", "EPIPE", "EBADF", "ETIMEDOUT"]);

async function echo(loop, conn) {
  let buf = null;
  try {
    conn.setNoDelay();
    for (;;) {
      if (buf === null) {
        await loop.waitReadable(conn.fd);
        buf = new Uint8Array(MIN_BUFFER);
      }
      const n = await conn.read(buf);
      if (n === 0) break;
      await conn.writeAll(buf.subarray(0, n));
      if (n === buf.length && n < MAX_BUFFER) buf = new Uint8Array(n * 4);
    }
  } catch (e) {
    if (!DISCONNECTS.has(e?.code)) process.stderr.write(`evloop echo: ${e?.stack ?? e}\n`);
  } finally {
    await conn.close();
  }
}

/**
 * The same echo with `readBorrowed` (EVLOOP_BENCH_BORROWED=1): no buffer of the server's own; on
 * io_uring each read lends the provided buffer the kernel received into, written back as is.
 * Measured on pipelined echo: io_uring the same as `echo` (0.46–0.50 µs CPU/msg both), epoll
 * about 15 % more CPU per message (a pool buffer and a loan per read), so `echo` stays the default.
 */
async function echoBorrowed(conn) {
  try {
    conn.setNoDelay();
    for (;;) {
      const chunk = await conn.readBorrowed();
      try {
        if (chunk.bytes.byteLength === 0) break;
        await conn.writeAll(chunk.bytes);
      } finally {
        chunk.release();
      }
    }
  } catch (e) {
    if (!DISCONNECTS.has(e?.code)) process.stderr.write(`evloop echo: ${e?.stack ?? e}\n`);
  } finally {
    await conn.close();
  }
}

async function serve(loop, port) {
  // The same backlog as the C servers (SOMAXCONN): see node.mjs.
  const listener = await TcpListener.bind({ host: "127.0.0.1", port, backlog: 4096, loop });
  process.stdout.write(`PORT ${listener.address.port}\n`);
  for await (const conn of listener) void (process.env.EVLOOP_BENCH_BORROWED === "1" ? echoBorrowed(conn) : echo(loop, conn));
}

function onSignals() {
  process.on("SIGUSR2", () => {
    const { heapUsed, rss } = process.memoryUsage();
    process.stdout.write(`STATS ${JSON.stringify({ heapUsed, rss })}\n`);
  });
  for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => {
    if (process.env.EVLOOP_STATS) process.stderr.write(`LOOPSTATS ${JSON.stringify(loop.stats ?? {})}\n`);
    process.exit(0);
  });
}

const { backend, mode, port } = parseArgs(process.argv.slice(2));
const loop = createLoop({ backend, guest: mode === "guest" });
onSignals();
if (mode === "guest") {
  await serve(loop, port);
} else {
  await runMain(async () => {
    void (async () => {
      for (;;) await loop.sleep(TICK_MS);
    })();
    await serve(loop, port);
  }, { loop });
}
