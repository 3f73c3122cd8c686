// One loop per core (issue 15): pipelined echo against evloop with 1 and 2 loop threads
// (spawnLoops, each thread's listener bound with reusePort), node:cluster with 2 workers, and
// single-process servers for reference (node:net, evloop owner mode on the main thread), on
// the same load from the C load generator (bench/c/loadgen.c).
//
//   npm run build && node bench/multicore.mjs
//
// Environment: EVLOOP_BENCH_SECONDS (measured seconds per run, default 5),
// EVLOOP_BENCH_REPEATS (rounds, default 3: every server once per round, alternating; the
// table gives medians), EVLOOP_BACKEND (the loops' backend; default the best available).
//
// Each server is a child process of this script (`--serve <kind>`), and its CPU time is read
// from /proc before and after each measured run, summed over its process and its children
// (node:cluster's workers), so "CPU µs/msg" counts every thread and process that served.
// Benchmarks are not tests: nothing here asserts a figure.
import { spawn } from "node:child_process";
import cluster from "node:cluster";
import { readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { fileURLToPath } from "node:url";

const LOAD = { connections: 100, size: 64, depth: 16 };
const SECONDS = Number(process.env.EVLOOP_BENCH_SECONDS ?? 5);
const REPEATS = Number(process.env.EVLOOP_BENCH_REPEATS ?? 3);
const WARMUP = 1;
const self = fileURLToPath(import.meta.url);
const servers = [
  { label: "evloop, 1 loop thread", args: ["--serve", "threads", "1"] },
  { label: "evloop, 2 loop threads", args: ["--serve", "threads", "2"] },
  { label: "node:cluster, 2 workers", args: ["--serve", "cluster", "2"] },
  { label: "node:net, 1 process", args: ["--serve", "net"] },
  { label: "evloop owner mode, main thread", args: ["--serve", "owner"] },
];

/** The echo of bench/servers/node.mjs, on node:net. */
function netEcho(listenOptions, onListening) {
  const server = net.createServer({ noDelay: true }, (s) => {
    s.on("error", () => s.destroy());
    s.on("data", (chunk) => {
      if (!s.write(chunk)) {
        s.pause();
        s.once("drain", () => s.resume());
      }
    });
  });
  server.listen({ host: "127.0.0.1", backlog: 4096, ...listenOptions }, () => onListening(server.address().port));
}

async function serve(kind, n) {
  const ready = (port) => process.stdout.write(`PORT ${port}\n`);
  const exitOn = (fn) => {
    for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, fn);
  };
  if (kind === "threads") {
    const { spawnLoops, TcpListener } = await import("evloop");
    // The port, reserved with reusePort so the threads can bind it too, then given up before
    // any client connects.
    const reserved = await TcpListener.bind({ host: "127.0.0.1", port: 0, reusePort: true });
    const port = reserved.address.port;
    const threads = await spawnLoops(n, new URL("./multicore-thread.mjs", import.meta.url), { workerData: { port } });
    await reserved.close();
    exitOn(() => threads.close().then(() => process.exit(0), (e) => (console.error(e), process.exit(1))));
    ready(port);
  } else if (kind === "cluster") {
    if (cluster.isPrimary) {
      // node:cluster's default on Linux: the primary accepts and hands connections round-robin.
      let listening = 0;
      for (let i = 0; i < n; i++) cluster.fork();
      cluster.on("listening", (_, address) => {
        if (++listening === n) ready(address.port);
      });
      exitOn(() => {
        for (const w of Object.values(cluster.workers)) w.kill();
        process.exit(0);
      });
    } else {
      netEcho({ port: Number(process.env.EVLOOP_BENCH_PORT) }, () => {});
    }
  } else if (kind === "net") {
    netEcho({ port: 0 }, ready);
    exitOn(() => process.exit(0));
  } else if (kind === "owner") {
    const { createLoop, runMain, TcpListener } = await import("evloop");
    const loop = createLoop({ guest: false });
    exitOn(() => process.exit(0));
    await runMain(async () => {
      // A ticking timer, so SIGTERM (delivered through libuv) is handled within 50 ms.
      void (async () => {
        for (;;) await loop.sleep(50);
      })();
      const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, backlog: 4096, loop });
      ready(listener.address.port);
      for await (const conn of listener) {
        void (async () => {
          const buf = new Uint8Array(4096);
          try {
            conn.setNoDelay();
            for (let n; (n = await conn.read(buf)) > 0; ) await conn.writeAll(buf.subarray(0, n));
          } catch {
            // The load generator closes with echoes in flight.
          } finally {
            await conn.close();
          }
        })();
      }
    }, { loop });
  }
}

/** utime + stime of `pid` and its children, in seconds. */
function cpuSeconds(pid) {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  const visit = (p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += (Number(fields[11]) + Number(fields[12])) / tick;
      for (const task of readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) visit(task);
    } catch {
      // A child that exited meanwhile.
    }
  };
  visit(pid);
  return total;
}

/** Servers still running, killed if this script exits early (a crash, Ctrl-C). */
const live = new Set();
process.once("exit", () => {
  for (const child of live) process.kill(-child.pid, "SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM"]) if (process.argv.indexOf("--serve") < 0) process.once(signal, () => process.exit(130));

function startServer(spec) {
  // The cluster's workers need the port before they listen: the primary picks a free one.
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    const go = (port) => {
      if (port !== undefined) env.EVLOOP_BENCH_PORT = String(port);
      // detached: its own process group, so a cluster's workers die with their primary.
      const child = spawn(process.execPath, [self, ...spec.args], { stdio: ["ignore", "pipe", "inherit"], env, detached: true });
      live.add(child);
      child.once("exit", () => live.delete(child));
      let buffered = "";
      child.stdout.on("data", (d) => {
        buffered += d;
        const m = /PORT (\d+)/.exec(buffered);
        if (m) resolve({ child, port: Number(m[1]) });
      });
      child.once("exit", (code) => reject(new Error(`${spec.label} exited with ${code} before listening`)));
    };
    if (spec.args[1] !== "cluster") return go();
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => go(port));
    });
  });
}

async function measure(spec, loadgen, startLoad) {
  const { child, port } = await startServer(spec);
  try {
    const load = startLoad(loadgen, { port, ...LOAD, seconds: SECONDS, warmup: WARMUP });
    // CPU is sampled around the measured window only (after the warm-up).
    await new Promise((r) => setTimeout(r, WARMUP * 1000));
    const before = cpuSeconds(child.pid);
    const result = await load.done;
    const cpu = cpuSeconds(child.pid) - before;
    return { rate: result.messages / result.seconds, cpuUsPerMsg: (cpu * 1e6) / result.messages, p50: result.p50Us, errors: result.errors };
  } finally {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const { buildC } = await import("../dist-tools/bench/src/build.js");
  const { startLoad } = await import("../dist-tools/bench/src/loadgen.js");
  const { loadgen } = await buildC({ quiet: true });
  const { availableBackends } = await import("evloop");
  const backend = process.env.EVLOOP_BACKEND ?? availableBackends()[0];
  const results = new Map(servers.map((s) => [s.label, []]));
  for (let round = 1; round <= REPEATS; round++) {
    for (const spec of servers) {
      process.stderr.write(`round ${round}/${REPEATS}: ${spec.label}…\n`);
      results.get(spec.label).push(await measure(spec, loadgen, startLoad));
    }
  }
  const base = median(results.get("node:net, 1 process").map((r) => r.rate));
  console.log(`\nPipelined echo: ${LOAD.connections} connections, ${LOAD.size} B messages, ${LOAD.depth} in flight each; ${SECONDS} s measured after ${WARMUP} s warm-up, median of ${REPEATS} alternating rounds. evloop backend: ${backend}. ${os.cpus().length} CPUs, ${os.cpus()[0]?.model ?? "?"}; Node ${process.version}.\n`);
  console.log("| server | messages/s | vs node:net | server CPU µs/msg | p50 µs | runs (msgs/s) |");
  console.log("|---|---:|---:|---:|---:|---|");
  for (const spec of servers) {
    const rs = results.get(spec.label);
    const rate = median(rs.map((r) => r.rate));
    const errors = rs.reduce((a, r) => a + r.errors, 0);
    console.log(
      `| ${spec.label} | ${Math.round(rate).toLocaleString("en")} | ${(rate / base).toFixed(2)}× | ${median(rs.map((r) => r.cpuUsPerMsg)).toFixed(2)} | ${Math.round(median(rs.map((r) => r.p50)))} | ${rs.map((r) => Math.round(r.rate / 1000) + "k").join(", ")}${errors ? ` (${errors} errors)` : ""} |`,
    );
  }
}

const at = process.argv.indexOf("--serve");
if (at >= 0) await serve(process.argv[at + 1], Number(process.argv[at + 2] ?? 1));
else await main();
