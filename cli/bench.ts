/**
 * `evloop bench`: the benchmark suite of BENCHMARKS.md: echo servers (evloop on every backend
 * and mode on Node, Bun and Deno; node:net, Bun.listen, Deno.listen; C) under a C load
 * generator, their memory per connection, and the event loop's internals. Progress goes to
 * stderr, the Markdown report to stdout.
 */
import { writeFileSync } from "node:fs";
import { BASELINE_SUFFIX, BaselineError, checkBaseline, type Baseline } from "../bench/src/baseline.js";
import { BenchBuildError } from "../bench/src/build.js";
import { Progress } from "../bench/src/progress.js";
import { renderMarkdown } from "../bench/src/report.js";
import { runBench, suiteServers } from "../bench/src/run.js";
import { renderSvg } from "../bench/src/svg.js";
import { ECHO_CONFIGS } from "../bench/src/types.js";
import { numberOption, parseOptions, UsageError } from "./args.js";

export const usage = `usage: evloop bench [--quick] [--seconds N] [--servers a,b] [--configs a,b] [--no-internals]
                    [--baseline DIR] [--json FILE] [--svg FILE] [--markdown FILE]

Builds the C load generator and C echo servers (needs cc, gcc or clang), then measures every
available echo server in every configuration, alternating servers, and prints a Markdown report
with each server's ratio to node:net and to the C epoll server (and evloop's on Bun and Deno to
bun and deno). Takes several minutes; --quick takes a few.

  --quick            one short round, 1,000 connections at most: checks that everything works
  --seconds N        measured seconds per run (default 2; quick 0.3)
  --servers a,b      only these servers (labels as in the report: node:net, evloop-epoll-guest,
                     evloop-io_uring-owner@bun, bun, evloop-epoll-owner@deno, deno, c-epoll, …);
                     * matches any characters: --servers '*@bun,bun' is evloop on Bun and Bun.listen
  --configs a,b      only these configurations: ${ECHO_CONFIGS.map((c) => c.name).join(", ")}
  --no-internals     skip the event-loop internals (timers, wake-ups, cost per ready event)
  --baseline DIR     also run the evloop servers of DIR, another evloop checkout (built: dist/
                     exists), labelled evloop-<backend>-<mode>@base, each in the same rounds as
                     this package's, with a × @base column; the internals measure this package
                     only. --baseline . measures the noise. With --servers, each evloop server
                     named brings its @base twin
  --json FILE        also write the report as JSON
  --svg FILE         also write a bar chart as SVG
  --markdown FILE    also write the Markdown report to FILE`;

/** Grace after Ctrl-C for servers to stop; in-process work (the internals) cannot be aborted. */
const FORCED_EXIT_MS = 10_000;

/** A comma-separated list, each item checked against `known` (unless undefined: the caller checks). */
function listOption(value: string | undefined, name: string, known: readonly string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (items.length === 0) throw new UsageError(`--${name} needs at least one name`);
  if (known === undefined) return items;
  const unknown = items.filter((s) => !known.includes(s));
  if (unknown.length > 0) throw new UsageError(`--${name}: unknown ${unknown.map((s) => JSON.stringify(s)).join(", ")}; known: ${known.join(", ")}`);
  return items;
}

/** An argument as a POSIX shell would need it quoted, so the printed command can be pasted. */
function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_\-.,:/=@]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** A `--servers` item as a whole-label pattern in which `*` matches any characters. */
function labelPattern(item: string): RegExp {
  return new RegExp(`^${item.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
}

/**
 * `--servers`: labels, each item naming a known server or, with `*`, matching at least one;
 * the servers selected, in the suite's order.
 */
function serversOption(value: string | undefined, known: readonly string[]): string[] | undefined {
  const items = listOption(value, "servers", undefined);
  if (items === undefined) return undefined;
  const patterns = items.map(labelPattern);
  const unmatched = items.filter((_, i) => !known.some((label) => patterns[i]!.test(label)));
  if (unmatched.length > 0) {
    throw new UsageError(`--servers: unknown ${unmatched.map((s) => JSON.stringify(s)).join(", ")}; known: ${known.join(", ")}`);
  }
  return known.filter((label) => patterns.some((p) => p.test(label)));
}

/**
 * `--servers` naming an evloop server also selects its `@base` twin when `--baseline` made one
 * (listing the twins by hand is allowed, but forgetting them would silently compare nothing).
 */
function withBaselines(servers: string[] | undefined, known: readonly string[]): string[] | undefined {
  if (servers === undefined) return undefined;
  const twins = servers.map((s) => `${s}${BASELINE_SUFFIX}`).filter((t) => known.includes(t) && !servers.includes(t));
  return [...servers, ...twins];
}

/** Runs `evloop bench`; resolves with the exit code. */
export async function runBenchCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseOptions({
    args: [...argv],
    options: {
      quick: { type: "boolean" },
      seconds: { type: "string" },
      servers: { type: "string" },
      configs: { type: "string" },
      "no-internals": { type: "boolean" },
      baseline: { type: "string" },
      json: { type: "string" },
      svg: { type: "string" },
      markdown: { type: "string" },
    },
    allowPositionals: false,
  });
  const quick = values.quick === true;
  const seconds = values.seconds === undefined ? undefined : numberOption(values.seconds, "seconds", 0, 0.05, false);
  const configs = listOption(values.configs, "configs", ECHO_CONFIGS.map((c) => c.name));
  let baseline: Baseline | undefined;
  try {
    baseline = values.baseline === undefined ? undefined : checkBaseline(values.baseline);
  } catch (e) {
    if (e instanceof BaselineError) throw new UsageError(e.message);
    throw e;
  }
  // Probing the servers runs bun and deno --version: only worth it when there is a list to check.
  const known = values.servers === undefined ? [] : suiteServers({ baseline }).map((s) => s.label);
  const servers = withBaselines(serversOption(values.servers, known), known);

  const progress = new Progress();
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++interrupts > 1) process.exit(130);
    progress.note(`${signal}: stopping the running server and load generator…`);
    controller.abort(new Error(`interrupted by ${signal}`));
    setTimeout(() => process.exit(130), FORCED_EXIT_MS).unref();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    const report = await runBench({
      quick,
      seconds,
      servers,
      configs,
      internals: values["no-internals"] !== true,
      baseline,
      command: ["npx evloop bench", ...argv.map(shellQuote)].join(" "),
      progress,
      signal: controller.signal,
    });
    progress.done();
    const markdown = renderMarkdown(report);
    process.stdout.write(markdown);
    if (values.markdown !== undefined) writeFileSync(values.markdown, markdown);
    // JSON has no NaN: a figure that could not be measured (a percentile of no round trips) is null.
    if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
    if (values.svg !== undefined) writeFileSync(values.svg, renderSvg(report));
    if (report.failures.length > 0) console.error(`evloop bench: ${report.failures.length} problem(s) during the run; see the end of the report`);
    return 0;
  } catch (e) {
    progress.stop();
    if (controller.signal.aborted) {
      console.error("evloop bench: interrupted");
      return 130;
    }
    if (e instanceof BenchBuildError) {
      console.error(`evloop bench: ${e.message}`);
      return 1;
    }
    throw e;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
