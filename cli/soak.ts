/**
 * `evloop soak`: mixed traffic with random aborts and timeouts and connection churn on every
 * backend, every byte checked, and the process's fds, RSS and heap back to their baseline at the
 * end. Exit code 1 on any failure.
 *
 * Each backend runs in a child process of its own (`soak/child.ts`), all at once: its resources
 * are its own to measure, and a child that hangs (a blocking backend's operation holds its
 * thread beyond any timer there) is killed from here after a bound and counted as a failure.
 * What a child does is described in `soak/child.ts` and `soak/phase.ts`; the traffic in
 * `soak/streams.ts` and `soak/datagrams.ts`; the tolerances in `soak/report.ts`.
 */
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { availableBackends, type BackendName } from "evloop";
import { numberOption, parseOptions, UsageError } from "./args.js";
import type { ChildConfig } from "./soak/child.js";
import { STUCK_MS } from "./soak/common.js";
import { OVERRUN_S } from "./soak/phase.js";
import { formatOutcome, formatSample, judge, TOLERANCE, type BackendOutcome, type ChildMessage } from "./soak/report.js";

export const usage = `usage: evloop soak [--minutes N | --seconds N] [--backends list] [--seed N] [--interval S] [--json FILE]

Runs mixed traffic on every available backend at once, each in a child process, half the time in
guest mode and half in owner mode (runMain), after a short warm-up: TCP over 127.0.0.1 and ::1,
UDP, Unix stream and datagram sockets, descriptors passed with SCM_RIGHTS, connection churn, and
reads, writes, accepts, connects, sends and receives aborted mid-flight or given 1-5 ms timeouts.
Every byte is compared with what was sent. Prints a progress line per backend every interval and
a summary per backend at the end; exits with 1 if any byte mismatched, any operation got stuck
(${STUCK_MS / 1000} s) or failed unexpectedly, or fds (exactly), RSS (+${TOLERANCE.rss.bytes / 2 ** 20} MiB or ${TOLERANCE.rss.fraction * 100} %) or heap
(+${TOLERANCE.heap.bytes / 2 ** 20} MiB or ${TOLERANCE.heap.fraction * 100} %) are not back to their baseline after a forced GC.

  --minutes N     how long, fractions allowed (default 1)
  --seconds N     how long, in seconds (instead of --minutes)
  --backends L    comma-separated backends (default: every available one)
  --seed N        seed of every random choice (default: random; printed)
  --interval S    seconds between progress lines (default: 10, at most a quarter of the run)
  --json FILE     also write the summary as JSON`;

/** The script each backend's process runs. */
const childScript = fileURLToPath(new URL("./soak/child.js", import.meta.url));

/** Seconds a child may run beyond its phases' time before it counts as hung and is killed. */
const HANG_GRACE_S = 2 * OVERRUN_S + 60;

function parseBackends(value: string | undefined): BackendName[] {
  const available = availableBackends();
  if (value === undefined) return available;
  const names = value.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError("--backends must name at least one backend");
  for (const name of names) {
    if (!(available as string[]).includes(name)) {
      throw new UsageError(`--backends: ${JSON.stringify(name)} is not available here (available: ${available.join(", ")}; see \`evloop info\`)`);
    }
  }
  return [...new Set(names)] as BackendName[];
}

/** Runs one backend's child; resolves with its outcome. */
function runChild(config: ChildConfig, bound: number, log: (line: string) => void): Promise<BackendOutcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--expose-gc", childScript, JSON.stringify(config)], { stdio: ["ignore", "pipe", "pipe"] });
    let result: Extract<ChildMessage, { type: "result" }> | null = null;
    const problems: string[] = [];
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill("SIGKILL");
    }, bound * 1000);
    let pending = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let m: ChildMessage;
        try {
          m = JSON.parse(line) as ChildMessage;
        } catch {
          log(`${config.backend}: ${line}`);
          continue;
        }
        if (m.type === "sample") log(formatSample(m));
        else if (m.type === "result") result = m;
        else problems.push(`crashed: ${m.error}`);
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      for (const line of chunk.split("\n")) if (line) process.stderr.write(`${config.backend}: ${line}\n`);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (hung) problems.push(`hung: still running ${bound} s after it started; killed`);
      else if (code !== 0) problems.push(`the soak process ended with ${signal ?? `exit code ${code}`}`);
      if (result === null && !hung && problems.length === 0) problems.push("the soak process ended without a result");
      const all = result ? [...judge(result), ...problems] : problems;
      resolve({ backend: config.backend, ok: all.length === 0, result, problems: result ? problems : all });
    });
  });
}

/** Runs `evloop soak`; resolves with the exit code. */
export async function runSoak(argv: readonly string[]): Promise<number> {
  const { values } = parseOptions({
    args: [...argv],
    options: {
      minutes: { type: "string" },
      seconds: { type: "string" },
      backends: { type: "string" },
      seed: { type: "string" },
      interval: { type: "string" },
      json: { type: "string" },
    },
    allowPositionals: false,
  });
  if (values.minutes !== undefined && values.seconds !== undefined) throw new UsageError("give --minutes or --seconds, not both");
  const seconds = values.seconds !== undefined ? numberOption(values.seconds, "seconds", 60, 1, false) : numberOption(values.minutes, "minutes", 1, 1 / 60, false) * 60;
  const backends = parseBackends(values.backends);
  const seed = numberOption(values.seed, "seed", randomInt(2 ** 32), 0) >>> 0;
  const interval = Math.max(1, Math.min(numberOption(values.interval, "interval", 10, 1, false), seconds / 4));
  const warmupSeconds = Math.min(5, Math.max(1, seconds / 10));
  const peerBackend = availableBackends().find((b) => b !== "blocking") ?? null;

  console.log(`evloop soak: ${formatSeconds(seconds)} on ${backends.join(", ")} (each after a ${formatSeconds(warmupSeconds)} warm-up), seed ${seed}`);
  const dir = mkdtempSync(join(tmpdir(), "evloop-soak-"));
  let outcomes: BackendOutcome[];
  try {
    outcomes = await Promise.all(
      backends.map((backend) => {
        const childDir = join(dir, backend);
        mkdirSync(childDir);
        const config: ChildConfig = { backend, peerBackend, seed: backendSeed(seed, backend), seconds, warmupSeconds, intervalSeconds: interval, dir: childDir };
        return runChild(config, warmupSeconds + seconds + HANG_GRACE_S, (line) => console.log(line));
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log("");
  for (const o of outcomes) console.log(formatOutcome(o));
  const ok = outcomes.every((o) => o.ok);
  console.log(`\nsoak ${ok ? "passed" : "FAILED"} (seed ${seed})`);
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify({ seed, seconds, ok, tolerance: TOLERANCE, backends: outcomes }, null, 2)}\n`);
  return ok ? 0 : 1;
}

/** A backend's own seed: the run's, mixed with its name, so it does not depend on the others. */
function backendSeed(seed: number, backend: string): number {
  let h = seed >>> 0;
  for (const ch of backend) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

function formatSeconds(s: number): string {
  return s >= 120 ? `${+(s / 60).toFixed(2)} min` : `${+s.toFixed(2)} s`;
}
