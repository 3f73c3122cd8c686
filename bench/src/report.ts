/**
 * The benchmark report as Markdown: what was measured, on what, with which command, and per
 * configuration each server's figures beside its ratio to `node:net` and to the C epoll server,
 * and, when evloop also ran on Bun or Deno, each evloop server's ratio to its own runtime's
 * sockets (`× runtime`).
 *
 * Tables are padded to their widest cell so the report reads as well in a terminal as rendered.
 */
import { formatInteger, formatNumber } from "./format.js";
import { BASELINE_SUFFIX } from "./baseline.js";
import { describeEvloop, ownSocketsFor } from "./labels.js";
import { SYSCALL_EVENT } from "./syscalls.js";
import { ECHO_CONFIGS, SYSCALL_CONFIGS, type BenchReport, type EchoConfig, type EchoMeasurement, type InternalsResult } from "./types.js";

/** The servers every other one is compared with. */
export const REFERENCES = ["node:net", "c-epoll"] as const;

/** A server's family, for grouping and colour: evloop, the runtimes' own sockets, or C. */
export type Family = "evloop" | "runtime" | "c";

/**
 * `evloop-epoll-guest` (and `evloop-epoll-guest@base`, `evloop-epoll-owner@bun`) → evloop,
 * `c-io_uring` → c, `node:net`/`bun`/`deno` → runtime.
 */
export function familyOf(server: string): Family {
  if (server.startsWith("evloop")) return "evloop";
  if (server.startsWith("c-")) return "c";
  return "runtime";
}

/** `1 connection × 64 B, 1 in flight`. */
export function describeConfig(c: EchoConfig): string {
  const conns = `${formatInteger(c.connections)} connection${c.connections === 1 ? "" : "s"}`;
  const size = c.size >= 1024 && c.size % 1024 === 0 ? `${c.size / 1024} KiB` : `${c.size} B`;
  return `${conns} × ${size}, ${c.depth} in flight`;
}

/** The measurements of `config`, in the order the servers were listed. */
function measurementsOf(report: BenchReport, config: string): EchoMeasurement[] {
  return report.echo.filter((m) => m.config === config);
}

/** `a / b` as `"1.23×"`, or `–` when either side is missing. */
function formatRatio(a: number, b: number): string {
  const r = a / b;
  return Number.isFinite(r) && b > 0 ? `${r.toFixed(2)}×` : "–";
}

/** Bytes in the unit that keeps 1–4 significant digits: `1536` → `"1.5 KiB"`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "–";
  const abs = Math.abs(n);
  if (abs < 1024) return `${Math.round(n)} B`;
  if (abs < 1024 ** 2) return `${formatNumber(n / 1024)} KiB`;
  if (abs < 1024 ** 3) return `${formatNumber(n / 1024 ** 2)} MiB`;
  return `${formatNumber(n / 1024 ** 3)} GiB`;
}

/**
 * `n` to three significant digits, for figures far below 1: `0.001912` → `"0.00191"`, `0.1184`
 * → `"0.118"`; `–` when missing.
 */
export function formatSignificant(n: number | null): string {
  if (n === null || !Number.isFinite(n)) return "–";
  return Math.abs(n) >= 1000 ? formatInteger(n) : n.toPrecision(3);
}

type Align = "left" | "right";

/** A Markdown table, columns padded to their widest cell. */
function table(header: readonly string[], align: readonly Align[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, 3, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => (align[i] === "right" ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (align[i] === "right" ? `${"-".repeat(w + 1)}:` : `${"-".repeat(w + 2)}`)).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** `2025-11-22T04:05:06.789Z` → `2025-11-22 04:05 UTC`. */
export function formatDate(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** One line naming the machine. */
export function describeMachineLine(m: BenchReport["machine"]): string {
  return `${m.cpu}, ${m.cores} cores, ${formatBytes(m.memoryBytes)} RAM, Linux ${m.kernel}, Node ${m.node}`;
}

/** The header line naming the baseline, or "" without one. */
function baselineLine(r: BenchReport): string {
  const b = r.baseline;
  if (b === null) return "";
  const at = b.commit === null ? `version ${b.version}` : `commit ${b.commit}, version ${b.version}`;
  return `\n- Baseline: the servers labelled \`${BASELINE_SUFFIX}\` run the evloop checkout at \`${b.dir}\` (${at}), each in the same rounds as its counterpart; × ${BASELINE_SUFFIX} is messages/s relative to it`;
}

function header(r: BenchReport): string {
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
  const scaled = r.configs.flatMap((c) => {
    const standard = ECHO_CONFIGS.find((s) => s.name === c.name);
    return standard !== undefined && standard.connections !== c.connections
      ? [`${c.name} runs ${formatInteger(c.connections)} connections, not ${formatInteger(standard.connections)}`]
      : [];
  });
  const quick = r.quick
    ? `\n\n**Quick mode**: short runs and a single round, a check that everything works rather than a measurement${scaled.map((s) => `; ${s}`).join("")}.`
    : "";
  return `# evloop benchmark

- Machine: ${describeMachineLine(r.machine)}
- Date: ${formatDate(r.date)}
- Command: \`${r.command}\`${baselineLine(r)}
- Runs: ${plural(r.rounds, "round")} of every server in every configuration, each run ${r.secondsPerRun} s measured after ${r.warmupSeconds} s of warm-up, each server in a fresh process; the order of the servers rotates every round so that a drifting machine affects all of them alike. Figures are medians over the rounds.${quick}

The machine is shared and small: absolute figures mean little, the ratios (measured side by side in one run) are the result.${r.notes.map((n) => `\n\n**Note**: ${n}.`).join("")}`;
}

/** The column comparing each evloop server with its own runtime's sockets. */
const RUNTIME_COLUMN = "× runtime";
const RUNTIME_COLUMN_NOTE = ` ${RUNTIME_COLUMN} is each evloop server's messages/s relative to its own runtime's sockets in the same run: \`node:net\` for evloop on Node, \`bun\` (Bun.listen) for \`…@bun\`, \`deno\` (Deno.listen) for \`…@deno\`.`;

/**
 * Whether `rows` hold an evloop server run by Bun or Deno: only then does {@link RUNTIME_COLUMN}
 * say more than × node:net.
 */
function runtimeColumn(rows: readonly EchoMeasurement[]): boolean {
  return rows.some((m) => (describeEvloop(m.server)?.runtime ?? "node") !== "node");
}

/**
 * `m` against its own runtime's sockets (see {@link ownSocketsFor}); – for servers that are not
 * evloop's and where that server has no row.
 */
function runtimeRatio(m: EchoMeasurement, rows: readonly EchoMeasurement[]): string {
  const own = ownSocketsFor(m.server);
  const ref = own === undefined ? undefined : rows.find((o) => o.server === own);
  return ref === undefined ? "–" : formatRatio(m.messagesPerSec, ref.messagesPerSec);
}

function echoSection(r: BenchReport): string {
  const parts = [
    `## Echo

Load from the C client (\`bench/c/loadgen.c\`) over loopback; every server echoes bytes back. msgs/s and MB/s count echoed messages; p50/p99 are round trips as the client saw them; CPU µs/msg is the server process's utime+stime (from /proc) during the measured window divided by the messages echoed in it — the steadiest figure; the window opens once every connection is up and warmed up and is closed by the bench itself, so neither connecting nor closing is counted. syscalls/msg (${SYSCALL_CONFIGS.join(", ")} only) is the number of system calls the server process made, all its threads, counted by \`perf stat -e ${SYSCALL_EVENT} -p <pid>\` through the measured window of an extra round run only for counting (the tracepoint slows every system call, so the other figures come from rounds without it), divided by the messages echoed in it${r.syscallsUnavailable === null ? "" : ` (– where perf could not count: ${r.syscallsUnavailable})`}. × node:net and × c-epoll are messages/s relative to those servers in the same run.${runtimeColumn(r.echo) ? RUNTIME_COLUMN_NOTE : ""}`,
  ];
  for (const config of r.configs) {
    const rows = measurementsOf(r, config.name);
    parts.push(`### ${config.name} — ${describeConfig(config)}`);
    if (rows.length === 0) {
      parts.push("No server completed this configuration.");
      continue;
    }
    const refs = REFERENCES.map((name) => ({ name, m: rows.find((m) => m.server === name) })).filter(
      (ref): ref is { name: (typeof REFERENCES)[number]; m: EchoMeasurement } => ref.m !== undefined,
    );
    const syscalls = SYSCALL_CONFIGS.includes(config.name);
    const runtime = runtimeColumn(rows);
    const base = r.baseline !== null;
    /** `m` against its `@base` twin; – for the twin itself and for servers that have none. */
    const baseRatio = (m: EchoMeasurement): string => {
      const twin = rows.find((b) => b.server === `${m.server}${BASELINE_SUFFIX}`);
      return twin === undefined ? "–" : formatRatio(m.messagesPerSec, twin.messagesPerSec);
    };
    parts.push(
      table(
        [
          "server",
          "msgs/s",
          "MB/s",
          "p50 µs",
          "p99 µs",
          "CPU µs/msg",
          ...(syscalls ? ["syscalls/msg"] : []),
          ...refs.map((ref) => `× ${ref.name}`),
          ...(runtime ? [RUNTIME_COLUMN] : []),
          ...(base ? [`× ${BASELINE_SUFFIX}`] : []),
        ],
        [
          "left",
          "right",
          "right",
          "right",
          "right",
          "right",
          ...(syscalls ? ["right" as const] : []),
          ...refs.map((): Align => "right"),
          ...(runtime ? ["right" as const] : []),
          ...(base ? ["right" as const] : []),
        ],
        rows.map((m) => [
          m.server,
          formatInteger(m.messagesPerSec),
          formatNumber(m.mbPerSec),
          formatInteger(m.p50Us),
          formatInteger(m.p99Us),
          formatNumber(m.cpuUsPerMessage, 2),
          ...(syscalls ? [formatSignificant(m.syscallsPerMessage)] : []),
          ...refs.map((ref) => formatRatio(m.messagesPerSec, ref.m.messagesPerSec)),
          ...(runtime ? [runtimeRatio(m, rows)] : []),
          ...(base ? [baseRatio(m)] : []),
        ]),
      ),
    );
    const errors = rows.filter((m) => m.errors > 0);
    if (errors.length > 0) parts.push(`Connection errors: ${errors.map((m) => `${m.server} ${m.errors}`).join(", ")}.`);
  }
  return parts.join("\n\n");
}

function memorySection(r: BenchReport): string {
  if (r.memory.length === 0) return "";
  const n = Math.max(...r.memory.map((m) => m.idleConnections));
  return `## Memory

Each server fresh, then ${formatInteger(n)} idle connections from the C client. RSS / connection is (RSS with the connections − RSS before them) / connections; JS heap likewise, as the server's own \`process.memoryUsage()\` (or its runtime's equivalent) reports it, read twice to let a pending GC run. Peak RSS is VmHWM at the end of the pipelined run (the largest over its rounds).

${table(
  ["server", "idle conns", "RSS", "RSS / conn", "JS heap", "heap / conn", "peak RSS, pipelined"],
  ["left", "right", "right", "right", "right", "right", "right"],
  r.memory.map((m) => [
    m.server,
    formatInteger(m.idleConnections),
    formatBytes(m.rssBytes),
    formatBytes(m.rssPerConnectionBytes),
    m.heapBytes === null ? "–" : formatBytes(m.heapBytes),
    m.heapPerConnectionBytes === null ? "–" : formatBytes(m.heapPerConnectionBytes),
    m.peakRssPipelinedBytes === null ? "–" : formatBytes(m.peakRssPipelinedBytes),
  ]),
)}`;
}

function internalsSection(i: InternalsResult): string {
  const t = i.timers;
  const timers = table(
    ["timers", "ms", "× setTimeout"],
    ["left", "right", "right"],
    [
      ["evloop", formatNumber(t.evloopMs), formatRatio(t.evloopMs, t.setTimeoutMs)],
      ["setTimeout", formatNumber(t.setTimeoutMs), formatRatio(t.setTimeoutMs, t.setTimeoutMs)],
    ],
  );
  const wake = Object.entries(i.wakeups.perSecond);
  const wakeups = table(
    ["backend", "round trips/s"],
    ["left", "right"],
    wake.map(([backend, perSecond]) => [backend, formatInteger(perSecond)]),
  );
  const backends = [...new Set(i.readyCost.map((c) => c.backend))];
  const fdCounts = [...new Set(i.readyCost.map((c) => c.fds))].sort((a, b) => a - b);
  const cost = table(
    ["registered fds", ...backends.map((b) => `${b} ns/event`)],
    ["right", ...backends.map((): Align => "right")],
    fdCounts.map((fds) => [
      formatInteger(fds),
      ...backends.map((b) => formatNumber(i.readyCost.find((c) => c.backend === b && c.fds === fds)?.nsPerEvent ?? Number.NaN)),
    ]),
  );
  return `## Event-loop internals

### Timers

${formatInteger(t.count)} timers with random deadlines, ${formatInteger(t.cancelled)} of them cancelled, the rest fired: evloop's timer heap against \`setTimeout\` in the same process (lower is better).

${timers}

### Wake-ups

Cross-thread \`interrupt()\` round trips per second, both threads sleeping in the kernel between messages.

${wake.length > 0 ? wakeups : "No backend measured."}

### Cost per ready event

Time per ready event as the registered fds grow (one ready at a time); epoll and io_uring should stay flat, poll(2) scans every fd.

${fdCounts.length > 0 ? cost : "No backend measured."}`;
}

function problemsSection(r: BenchReport): string {
  const parts: string[] = [];
  if (r.skipped.length > 0) parts.push(`## Skipped servers\n\n${r.skipped.map((s) => `- ${s.server}: ${s.reason}`).join("\n")}`);
  if (r.failures.length > 0) {
    parts.push(`## Problems during the run\n\n${r.failures.map((f) => `- ${f.server} · ${f.config}: ${f.reason}`).join("\n")}`);
  }
  return parts.join("\n\n");
}

/**
 * The whole report as Markdown.
 *
 * @example
 * ```ts
 * process.stdout.write(renderMarkdown(await runBench(options)));
 * ```
 */
export function renderMarkdown(report: BenchReport): string {
  const sections = [
    header(report),
    echoSection(report),
    memorySection(report),
    report.internals === null ? "" : internalsSection(report.internals),
    problemsSection(report),
  ];
  return `${sections.filter((s) => s !== "").join("\n\n")}\n`;
}
