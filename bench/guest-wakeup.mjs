// Guest mode's wake-up cost on each runtime (issue 14): how long from a byte written to a pipe by
// another thread until the guest loop's read of it has resolved on the main thread.
//
//   node bench/guest-wakeup.mjs            runs every runtime × wake-up found, prints a table
//   node bench/guest-wakeup.mjs --one      (internal) one measurement in this process
//
// On Node the guest driver watches the loop's fd with a libuv poll handle; on Bun and Deno a
// helper thread blocks in poll(2) and wakes the main thread by one of EVLOOP_GUEST_WAKE's ways
// (src/driver/thread-poll.ts): `message` (postMessage on a MessagePort), `atomics`
// (Atomics.notify to an Atomics.waitAsync) or `callback` (a thread-safe FFI callback). A peer
// Worker writes one byte when told (Atomics.notify), the main thread's `read` resolves, and the
// round trip is timed on the main thread; ROUNDS of them after WARMUP, in each of REPEATS runs
// per configuration (EVLOOP_BENCH_REPEATS, default 3; EVLOOP_BENCH_BACKENDS, default epoll,io_uring). The peer's own wake-up
// (Atomics.wait) and its write are in every figure alike, so the differences are the drivers'.
// Benchmarks are not tests: nothing here asserts a time.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker, isMainThread, workerData } from "node:worker_threads";

const ROUNDS = 5000;
const WARMUP = 500;
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist", "index.js");
const runtimeName = globalThis.Bun !== undefined ? "bun" : globalThis.Deno !== undefined ? "deno" : "node";

if (!isMainThread) {
  // The peer: writes one byte each time the main thread counts `go` up.
  const { createLoop, runMain } = await import(dist);
  const loop = createLoop({ guest: false });
  const go = new Int32Array(workerData.sab);
  const one = new Uint8Array([1]);
  await runMain(async () => {
    let seen = 0;
    for (;;) {
      Atomics.wait(go, 0, seen);
      seen = Atomics.load(go, 0);
      if (seen < 0) break;
      await loop.write(workerData.fd, one);
    }
  }, { loop });
  loop.dispose();
} else if (process.argv.includes("--one")) {
  const { Pipe, createLoop } = await import(dist);
  const loop = createLoop({ backend: process.env.EVLOOP_BACKEND || undefined });
  const [r, w] = Pipe.create({ loop });
  const sab = new SharedArrayBuffer(4);
  const go = new Int32Array(sab);
  const peer = new Worker(new URL(import.meta.url), { workerData: { sab, fd: w.fd } });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const buf = new Uint8Array(16);
  const times = [];
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const t0 = performance.now();
    Atomics.store(go, 0, i + 1);
    Atomics.notify(go, 0);
    await r.read(buf);
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  Atomics.store(go, 0, -1);
  Atomics.notify(go, 0);
  await new Promise((resolve) => peer.once("exit", resolve));
  times.sort((a, b) => a - b);
  const q = (f) => Math.round(times[Math.floor(f * (times.length - 1))] * 10_000) / 10;
  console.log(JSON.stringify({ runtime: runtimeName, backend: loop.backend, mode: loop.mode, p50: q(0.5), p90: q(0.9), p99: q(0.99) }));
  await r.close();
  await w.close();
  loop.dispose();
  process.exit(0);
} else {
  const bun = join(root, "node_modules", "bun", "bin", "bun.exe");
  const deno = join(root, "node_modules", ".bin", "deno");
  const script = fileURLToPath(import.meta.url);
  const runs = [{ label: "node, uv_poll", cmd: process.execPath, args: [script, "--one"], env: {} }];
  for (const wake of ["message", "atomics", "callback"]) {
    if (existsSync(bun)) runs.push({ label: `bun, ${wake}`, cmd: bun, args: [script, "--one"], env: { EVLOOP_GUEST_WAKE: wake } });
    if (existsSync(deno)) runs.push({ label: `deno, ${wake}`, cmd: deno, args: ["run", "--allow-ffi", "--allow-read", "--allow-env", script, "--one"], env: { EVLOOP_GUEST_WAKE: wake } });
  }
  const backends = (process.env.EVLOOP_BENCH_BACKENDS ?? "epoll,io_uring").split(",");
  const REPEATS = Number(process.env.EVLOOP_BENCH_REPEATS ?? 3);
  // Each configuration runs REPEATS times, the configurations alternating, and the medians of
  // its runs' percentiles are printed (the spread of its p50s beside them).
  const results = new Map();
  for (let rep = 0; rep < REPEATS; rep++) {
    for (const backend of backends) {
      for (const run of runs) {
        const key = `${run.label}|${backend}`;
        const child = spawnSync(run.cmd, run.args, { env: { ...process.env, ...run.env, EVLOOP_BACKEND: backend }, encoding: "utf8", timeout: 120_000 });
        const line = child.stdout?.trim().split("\n").at(-1) ?? "";
        let got;
        try {
          got = JSON.parse(line);
        } catch {
          results.set(key, { failed: (child.stderr || child.error?.message || "").trim().split("\n")[0] });
          continue;
        }
        if (got.mode !== "guest") throw new Error(`${run.label}: the loop ran in ${got.mode} mode`);
        const r = results.get(key) ?? { p50: [], p90: [], p99: [] };
        if (r.failed === undefined) for (const q of ["p50", "p90", "p99"]) r[q].push(got[q]);
        results.set(key, r);
      }
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  console.log(`guest-mode wake-up: pipe write on another thread → read resolved on the main thread; ${ROUNDS} rounds per run, median of ${REPEATS} runs (µs)\n`);
  console.log("| runtime, wake-up | backend | p50 | p90 | p99 | p50 of each run |");
  console.log("|---|---|---:|---:|---:|---|");
  for (const [key, r] of results) {
    const [label, backend] = key.split("|");
    if (r.failed !== undefined) console.log(`| ${label} | ${backend} | failed: ${r.failed} | | | |`);
    else console.log(`| ${label} | ${backend} | ${median(r.p50)} | ${median(r.p90)} | ${median(r.p99)} | ${r.p50.join(", ")} |`);
  }
}
