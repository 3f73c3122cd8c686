/**
 * What a soak child reports and how it is judged and printed: the messages on its stdout, the
 * resource checks with their tolerances, the progress lines and the summary per backend.
 */
import type { BackendName } from "evloop";
import { formatInteger, formatNumber } from "../../bench/src/format.js";
import type { Counters } from "./common.js";

/** Resources in use at one moment. */
export interface Usage {
  /** Open fds (/proc/self/fd). */
  readonly fds: number;
  /** Resident set size, bytes. */
  readonly rss: number;
  /** V8 heap in use, bytes. */
  readonly heap: number;
}

/** One resource check. */
export interface Check {
  readonly name: "fds" | "rss" | "heap";
  readonly ok: boolean;
  readonly text: string;
}

/** A line of a child's stdout. */
export type ChildMessage =
  | { readonly type: "sample"; readonly backend: BackendName; readonly mode: string; readonly elapsed: number; readonly counters: Counters; readonly usage: Usage }
  | {
      readonly type: "result";
      readonly backend: BackendName;
      readonly seed: number;
      readonly seconds: number;
      readonly counters: Counters;
      readonly start: Usage;
      readonly baseline: Usage;
      readonly end: Usage;
      readonly checks: Check[];
    }
  | { readonly type: "crash"; readonly backend: BackendName; readonly error: string };

const MiB = 1024 * 1024;

/**
 * The tolerances, measured from the baseline: usage after the warm-up phase and a forced GC, not
 * the start. The warm-up has already run every code path once, so what the process keeps for
 * good (compiled and optimised code, inline caches, the FFI's type and symbol caches, the
 * allocator's arenas, V8's grown new space) is in the baseline, and what grows after it is the
 * soak's own doing.
 *
 * - fds: exactly back to the start. Every loop is disposed, every socket, pipe and passed fd
 *   closed and the servers' Worker gone; a single fd more is a leak.
 * - heap (V8's heapUsed after the GCs): at most 4 MiB or 10 % over the baseline, whichever is
 *   more. Past the warm-up the heap only moves by what V8 still compiles and caches, well under
 *   that; a leak of one small object per operation or connection (a closure, a promise, an
 *   operation record) exceeds it within seconds at the soak's rate of operations.
 * - RSS: at most 64 MiB or 50 % over the baseline, whichever is more. RSS does not shrink on
 *   demand: the C allocator keeps freed memory in its arenas and V8 keeps pages it may reuse,
 *   so RSS climbs to the peak working set of the busiest moment (16 lanes with buffers of up to
 *   256 KiB, io_uring's provided buffers, a Worker per phase on the blocking backend) and stays
 *   there. Measured here: RSS levels off within the first minute, 28-42 MiB over the baseline,
 *   and stays level for minutes (io_uring +40 MiB after one minute, +42 MiB after three,
 *   while 2.4 million operations added 1.2 MiB of heap). A native leak that grows with the work
 *   (a per-operation native block or a provided-buffer ring not freed, 16 KiB and more at a
 *   time) passes the bound within a minute or two; leaked rings and sockets fail the fd check
 *   exactly.
 */
export const TOLERANCE = {
  heap: { bytes: 4 * MiB, fraction: 0.1 },
  rss: { bytes: 64 * MiB, fraction: 0.5 },
} as const;

/** The allowed growth of `name` over `baseline`. */
export function allowance(name: "heap" | "rss", baseline: number): number {
  const t = TOLERANCE[name];
  return Math.max(t.bytes, t.fraction * baseline);
}

const mib = (bytes: number): string => `${formatNumber(bytes / MiB)} MiB`;
const signedMib = (bytes: number): string => `${bytes >= 0 ? "+" : "−"}${formatNumber(Math.abs(bytes) / MiB)} MiB`;

/** The checks of the end against the start (fds) and the baseline (memory). */
export function checkUsage(start: Usage, baseline: Usage, end: Usage): Check[] {
  const memory = (name: "heap" | "rss"): Check => {
    const grown = end[name] - baseline[name];
    const allowed = allowance(name, baseline[name]);
    return { name, ok: grown <= allowed, text: `${mib(start[name])} start, ${mib(baseline[name])} baseline, ${mib(end[name])} end (${signedMib(grown)}, at most +${mib(allowed)} allowed)` };
  };
  return [
    { name: "fds", ok: end.fds === start.fds, text: `${start.fds} start, ${baseline.fds} after warm-up, ${end.fds} end (must equal the start)` },
    memory("rss"),
    memory("heap"),
  ];
}

/** A progress line. */
export function formatSample(m: Extract<ChildMessage, { type: "sample" }>): string {
  const c = m.counters;
  return [
    `${formatNumber(m.elapsed).padStart(6)} s`,
    `${`${m.backend}/${m.mode}`.padEnd(16)}`,
    `ops ${formatInteger(c.ops)}`,
    `aborted ${formatInteger(c.aborted)}`,
    `timed out ${formatInteger(c.timedOut)}`,
    `verified ${mib(c.bytesVerified)}`,
    `fds ${m.usage.fds}`,
    `rss ${mib(m.usage.rss)}`,
    `heap ${mib(m.usage.heap)}`,
    c.failures.length > 0 ? `FAILURES ${c.failures.length}` : "",
  ]
    .filter(Boolean)
    .join("  ");
}

/** One backend's outcome as the parent saw it. */
export interface BackendOutcome {
  readonly backend: BackendName;
  readonly ok: boolean;
  /** The child's result, absent when it crashed or hung. */
  readonly result: Extract<ChildMessage, { type: "result" }> | null;
  /** Why it failed, beyond the result's own failures and checks. */
  readonly problems: string[];
}

/** Whether a child's result passes: no failure, no unexpected error, work done, resources back. */
export function judge(result: Extract<ChildMessage, { type: "result" }>): string[] {
  const c = result.counters;
  const problems = [...c.failures];
  if (c.unexpected > c.failures.length) problems.push(`${c.unexpected} unexpected errors`);
  if (c.ops === 0) problems.push("no operation completed");
  if (c.bytesVerified === 0) problems.push("no byte was verified");
  for (const check of result.checks) if (!check.ok) problems.push(`${check.name} not back to its baseline: ${check.text}`);
  return problems;
}

/** The summary of one backend. */
export function formatOutcome(o: BackendOutcome): string {
  const lines = [`${o.backend}: ${o.ok ? "PASS" : "FAIL"}`];
  const r = o.result;
  if (r) {
    const c = r.counters;
    const modes = Object.entries(c.opsByMode)
      .map(([mode, n]) => `${mode} ${formatInteger(n)}`)
      .join(", ");
    const errors = Object.entries(c.errors)
      .sort((a, b) => b[1] - a[1])
      .map(([code, n]) => `${code} ${formatInteger(n)}`)
      .join(", ");
    const cancels = Object.entries(c.cancelledByOp)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([what, n]) => `${what} ${formatInteger(n)}`)
      .join(", ");
    lines.push(
      `  operations  ${formatInteger(c.ops)} completed (${modes}); ${formatInteger(c.aborted)} aborted, ${formatInteger(c.timedOut)} timed out`,
      `  cancelled   ${cancels || "none"}`,
      `  verified    ${mib(c.bytesVerified)} in ${formatInteger(c.connections)} stream connections, ${formatInteger(c.datagrams)} datagrams, ${formatInteger(c.fdsPassed)} passed fds`,
      `  errors      ${errors || "none"}; unexpected: ${c.unexpected}`,
    );
    for (const check of r.checks) lines.push(`  ${check.name.padEnd(10)}  ${check.ok ? "ok  " : "FAIL"}  ${check.text}`);
    lines.push(`  ${formatNumber(r.seconds)} s, seed ${r.seed}`);
  }
  for (const p of o.problems) lines.push(`  ! ${p}`);
  return lines.join("\n");
}
