// The reactor (issue 15): how fast ready events reach the main thread from the reactor thread,
// and how long one takes. Node only.
//
//   node bench/reactor.mjs            every selector here × each owner wake-up; prints a table
//
// Rate: FDS pipe read ends, each holding a byte, re-armed by the main thread with `reregister`
// as soon as its event arrives (so FDS events are always in flight); events per second over
// RATE_EVENTS, after a warm-up. Latency: the main thread writes one byte to an idle pipe and
// awaits the event; the time from the write to the event in hand covers the reactor thread's
// wake-up in the kernel, its push to the ring and the owner's wake-up (Atomics.waitAsync, or a
// MessagePort message with EVLOOP_REACTOR_WAKE=message); ROUNDS of them after WARMUP, each run
// REPEATS times (EVLOOP_BENCH_REPEATS, default 3), medians of the runs printed. kqueue runs
// through libkqueue when EVLOOP_KQUEUE_LIB names it. Benchmarks are not tests: nothing here
// asserts a time.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist", "index.js");
const FDS = 64;
const RATE_EVENTS = 200_000;
const ROUNDS = 5000;
const WARMUP = 500;
const REPEATS = Number(process.env.EVLOOP_BENCH_REPEATS ?? 3);

if (process.argv.includes("--one")) {
  const { Interest, Reactor } = await import(dist);
  const { close, pipe, read, write } = await import(join(root, "dist", "sys", "posix", "fd.js"));
  const selector = process.argv[process.argv.indexOf("--one") + 1];
  const one = new Uint8Array([1]);
  const scratch = new Uint8Array(16);

  // Rate.
  const reactor = await Reactor.start({ capacity: 1024, selector });
  const reg = reactor.registrator();
  const pipes = Array.from({ length: FDS }, () => pipe(true));
  pipes.forEach(([r, w], i) => {
    write(w, one);
    reg.register(r, i, Interest.READABLE);
  });
  let n = 0;
  let t0 = 0;
  const warm = RATE_EVENTS / 10;
  for await (const event of reactor) {
    if (++n === warm) t0 = performance.now();
    if (n === warm + RATE_EVENTS) break;
    reg.reregister(pipes[event.token][0], event.token, Interest.READABLE);
  }
  const rate = RATE_EVENTS / ((performance.now() - t0) / 1000);
  const fullWaits = reactor.fullWaits;
  await reactor.close();

  // Latency: one idle pipe, on a reactor of its own (the first one's events are still coming).
  const latency = await Reactor.start({ capacity: 1024, selector });
  const [r, w] = pipe(true);
  latency.registrator().register(r, 1000, Interest.READABLE);
  const times = [];
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const start = performance.now();
    write(w, one);
    const { value } = await latency.next();
    const took = performance.now() - start;
    if (value.token !== 1000) throw new Error(`unexpected token ${value.token}`);
    read(r, scratch);
    latency.registrator().reregister(r, 1000, Interest.READABLE); // poll(2) disarms a direction that fired
    if (i >= WARMUP) times.push(took);
  }
  await latency.close();
  for (const fd of [r, w, ...pipes.flat()]) close(fd);
  times.sort((a, b) => a - b);
  const pick = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))] * 1000;
  console.log(JSON.stringify({ rate, p50: pick(0.5), p99: pick(0.99), fullWaits }));
} else {
  const { availableBackends } = await import(dist);
  const selectors = availableBackends().filter((b) => b === "epoll" || b === "kqueue" || b === "poll");
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`reactor → main thread, Node ${process.version}, ${REPEATS} runs each (medians)`);
  console.log("selector  wake      events/s    latency p50 µs   p99 µs");
  for (const selector of selectors) {
    for (const wake of ["atomics", "message"]) {
      const runs = [];
      for (let i = 0; i < REPEATS; i++) {
        const out = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--one", selector], {
          env: { ...process.env, EVLOOP_REACTOR_WAKE: wake },
          encoding: "utf8",
          timeout: 120_000,
        });
        if (out.status !== 0) {
          console.log(`${selector} ${wake}: failed\n${out.stderr}`);
          break;
        }
        runs.push(JSON.parse(out.stdout.trim().split("\n").at(-1)));
      }
      if (runs.length === 0) continue;
      const row = [
        selector.padEnd(9),
        wake.padEnd(9),
        Math.round(median(runs.map((r) => r.rate))).toLocaleString("en").padStart(10),
        median(runs.map((r) => r.p50)).toFixed(1).padStart(16),
        median(runs.map((r) => r.p99)).toFixed(1).padStart(8),
      ];
      console.log(row.join(" "));
    }
  }
}
