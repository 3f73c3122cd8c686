/**
 * One backend's soak, in a process of its own (started by `evloop soak` with `--expose-gc`), so
 * that its fd count, RSS and heap are its own and a hang in the kernel can be ended from outside.
 *
 * The run: measure (the start); a warm-up phase in guest mode; measure after a forced GC (the
 * baseline); a guest-mode phase and an owner-mode phase (`runMain`) of half the time each, every
 * phase on a fresh loop disposed at its end; measure again (the end). Each phase's lanes and
 * servers close everything they open. It writes JSON lines on stdout: samples while it runs,
 * then the result with the checks.
 *
 * Usage (internal): node --expose-gc child.js '<ChildConfig as JSON>'
 */
import { readdirSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { probeBackends, type BackendName } from "evloop";
import { makeCorpus, newCounters, type Counters, type Phase } from "./common.js";
import { runPhase } from "./phase.js";
import { checkUsage, type ChildMessage, type Usage } from "./report.js";

/** What the parent passes. */
export interface ChildConfig {
  readonly backend: BackendName;
  /** The backend the blocking backend's servers run on (a Worker), or null. */
  readonly peerBackend: BackendName | null;
  readonly seed: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly intervalSeconds: number;
  readonly dir: string;
}

const config = JSON.parse(process.argv[2] ?? "null") as ChildConfig;

// Node opens stdout and stderr lazily, on first use (a /dev/null among what it opens): use
// them before the first measurement so they count at the start and the end alike.
process.stdout.write("");
process.stderr.write("");
// Probing the backends opens what some libraries keep for the life of the process (libkqueue's
// close-detection epoll fd and eventfd, made with the first kqueue): probe before the start too.
probeBackends();

function emit(message: ChildMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** `gc()`: exposed by --expose-gc, or turned on here (V8 reads the flag when a context is made). */
function collector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

const gc = collector();

/** Open fds: the entries of /proc/self/fd (one of them the directory being read, every time). */
const openFds = (): number => readdirSync("/proc/self/fd").length;

function usageNow(): Usage {
  const m = process.memoryUsage();
  return { fds: openFds(), rss: m.rss, heap: m.heapUsed };
}

/**
 * Usage after a full collection: three GCs with a macrotask between them, so finalizers and
 * weak callbacks (the FFI's among them) run and what they free is collected too.
 */
async function settled(): Promise<Usage> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return usageNow();
}

async function main(): Promise<void> {
  const corpus = makeCorpus(config.seed);
  const counters: Counters = newCounters();
  const started = performance.now();
  const sample = (phase: Phase): void => {
    const u = usageNow();
    emit({ type: "sample", backend: config.backend, mode: phase.mode, elapsed: (performance.now() - started) / 1000, counters: phase.counters, usage: u });
  };
  const phase = (mode: "warm-up" | "guest" | "owner", seconds: number): Promise<void> =>
    runPhase({ backend: config.backend, mode, seconds, seed: config.seed, dir: config.dir, corpus, sample, intervalMs: config.intervalSeconds * 1000 }, counters, config.peerBackend);

  const start = await settled();
  await phase("warm-up", config.warmupSeconds);
  const baseline = await settled();
  await phase("guest", config.seconds / 2);
  await phase("owner", config.seconds / 2);
  const end = await settled();
  const checks = checkUsage(start, baseline, end);
  emit({ type: "result", backend: config.backend, seed: config.seed, seconds: (performance.now() - started) / 1000, counters, start, baseline, end, checks });
}

main().catch((e: unknown) => {
  emit({ type: "crash", backend: config.backend, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  process.exitCode = 1;
});
