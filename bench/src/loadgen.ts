/**
 * Runs the C load generator (bench/c/loadgen.c, built by build.ts) and reads its one line of
 * JSON. The load comes from C so the client is never the JavaScript under test.
 *
 * Two modes:
 * - echo load ({@link startLoad}): C connections keep D messages of S bytes in flight for a
 *   warm-up and then T measured seconds (or until stopped); the JSON line sums up the measured
 *   window.
 * - idle connections ({@link openIdle}): N connections that send nothing, held open until
 *   released, for measuring what a connection costs a server in memory.
 *
 * Every loadgen process is killed when its run is aborted, and any still alive when this process
 * exits (a crash, process.exit) is killed then, so a failed benchmark leaves nothing running.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { LoadResult } from "./types.js";

/** A failed loadgen run: it exited non-zero, printed no result, or took far too long. */
export class LoadgenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LoadgenError";
  }
}

/** Options of one echo-load run. */
export interface LoadOptions {
  readonly port: number;
  readonly host?: string;
  readonly connections: number;
  readonly depth: number;
  readonly size: number;
  /** Measured seconds, unless {@link LoadRun.stop} ends the window earlier. */
  readonly seconds: number;
  /** Seconds of load before measuring, not counted. */
  readonly warmup: number;
  /** Kills the loadgen; the run then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** A running load. */
export interface LoadRun {
  /** The result, once the loadgen has printed it and exited. */
  readonly done: Promise<LoadResult>;
  /**
   * Ends the measured window now (SIGTERM): the loadgen stops counting at once, closes its
   * connections without waiting for echoes in flight, and prints the result.
   */
  stop(): void;
}

/** Idle connections held open by a loadgen in `--idle` mode. */
export interface IdleLoad {
  /** Connections established. */
  readonly connected: number;
  /** Releases the connections: closes the loadgen's stdin, then SIGTERM; resolves once it exited. */
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Last resort: loadgens outlive a crashed parent only until its 'exit' handlers run. */
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of live) c.kill("SIGKILL");
    });
  }
  live.add(child);
  child.once("exit", () => live.delete(child));
}

/**
 * How long a run may take before it is declared hung: its own length plus generous room for
 * connecting (10,000 connections to a slow server take seconds) and closing.
 */
function deadlineMs(seconds: number, connections: number): number {
  return (seconds + 20 + connections / 500) * 1000;
}

function number(value: unknown, key: string, line: string): number {
  // C's printf has no JSON for NaN; the loadgen prints null for a percentile of no samples.
  if (value === null) return Number.NaN;
  if (typeof value !== "number") throw new LoadgenError(`loadgen printed no number for ${key}: ${line}`);
  return value;
}

/**
 * Parses the loadgen's result line (`{"messages":N,"bytes":N,"seconds":T,"p50_us":X,…}`) into
 * a {@link LoadResult}; throws {@link LoadgenError} when a field is missing.
 *
 * @example
 * ```ts
 * parseLoadResult('{"messages":10,"bytes":640,"seconds":1,"p50_us":20,"p99_us":31,"errors":0,"connected":1}');
 * // { messages: 10, bytes: 640, seconds: 1, p50Us: 20, p99Us: 31, errors: 0, connected: 1 }
 * ```
 */
function parseLoadResult(line: string): LoadResult {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (e) {
    throw new LoadgenError(`loadgen printed something other than JSON: ${line}`, { cause: e });
  }
  if (typeof raw !== "object" || raw === null) throw new LoadgenError(`loadgen printed no JSON object: ${line}`);
  const o = raw as Record<string, unknown>;
  return {
    messages: number(o.messages, "messages", line),
    bytes: number(o.bytes, "bytes", line),
    seconds: number(o.seconds, "seconds", line),
    p50Us: number(o.p50_us, "p50_us", line),
    p99Us: number(o.p99_us, "p99_us", line),
    errors: number(o.errors, "errors", line),
    connected: number(o.connected, "connected", line),
  };
}

/** Spawns the loadgen with piped stdio, collecting stderr for error messages. */
function start(binary: string, args: readonly string[]): { child: ChildProcess; stderr: () => string } {
  const child = spawn(binary, [...args], { stdio: ["pipe", "pipe", "pipe"] });
  track(child);
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    // Only the tail matters for an error message; a chatty loadgen must not grow this forever.
    stderr = (stderr + chunk).slice(-4000);
  });
  // EPIPE on a stdin the loadgen already closed is not an error worth crashing for.
  child.stdin?.on("error", () => {});
  return { child, stderr: () => stderr.trim() };
}

/** Calls `onLine` for each complete stdout line. */
function onLines(child: ChildProcess, onLine: (line: string) => void): void {
  let pending = "";
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line !== "") onLine(line);
    }
  });
}

function describeExit(code: number | null, signal: NodeJS.Signals | null, stderr: string): string {
  const how = signal === null ? `exit code ${String(code)}` : signal;
  return stderr === "" ? how : `${how}: ${stderr}`;
}

/**
 * Starts loading an echo server with the run's options. `done` rejects with
 * {@link LoadgenError} when the loadgen fails or hangs.
 *
 * @example
 * ```ts
 * const load = startLoad(binaries.loadgen, { port, connections: 100, depth: 16, size: 64, seconds: 2, warmup: 0.5 });
 * const result = await load.done;
 * console.log(result.messages / result.seconds, "msgs/s");
 * ```
 */
export function startLoad(binary: string, options: LoadOptions): LoadRun {
  const { signal } = options;
  signal?.throwIfAborted();
  const args = [
    "--host", options.host ?? "127.0.0.1",
    "--port", String(options.port),
    "--connections", String(options.connections),
    "--depth", String(options.depth),
    "--size", String(options.size),
    "--seconds", String(options.seconds),
    "--warmup", String(options.warmup),
  ];
  const { child, stderr } = start(binary, args);
  child.stdin?.end();
  const limit = deadlineMs(options.seconds + options.warmup, options.connections);
  const done = new Promise<LoadResult>((resolve, reject) => {
    let result: LoadResult | undefined;
    let failure: unknown;
    const deadline = setTimeout(() => {
      failure = new LoadgenError(`loadgen did not finish within ${limit / 1000} s`);
      child.kill("SIGKILL");
    }, limit);
    const abort = (): void => {
      failure = signal?.reason;
      child.kill("SIGKILL");
    };
    signal?.addEventListener("abort", abort, { once: true });
    onLines(child, (line) => {
      if (result !== undefined) return;
      try {
        result = parseLoadResult(line);
      } catch (e) {
        failure ??= e;
      }
    });
    child.once("error", (e) => {
      failure ??= new LoadgenError(`cannot run ${binary}: ${e.message}`, { cause: e });
    });
    child.once("close", (code, exitSignal) => {
      clearTimeout(deadline);
      signal?.removeEventListener("abort", abort);
      if (failure !== undefined) reject(failure);
      else if (code !== 0) reject(new LoadgenError(`loadgen failed (${describeExit(code, exitSignal, stderr())})`));
      else if (result === undefined) reject(new LoadgenError(`loadgen printed no result${stderr() === "" ? "" : `: ${stderr()}`}`));
      else resolve(result);
    });
  });
  const stop = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  };
  return { done, stop };
}

/**
 * Opens `connections` idle connections to `port` and resolves once all are established (or the
 * loadgen gave up on some: `connected` says how many). They stay open until `close()`, or for at
 * most `holdSeconds`.
 *
 * @example
 * ```ts
 * const idle = await openIdle(binaries.loadgen, { port, connections: 10_000, holdSeconds: 60 });
 * const rss = server.rssBytes();
 * await idle.close();
 * ```
 */
export function openIdle(binary: string, options: { port: number; connections: number; holdSeconds: number; signal?: AbortSignal }): Promise<IdleLoad> {
  const { signal } = options;
  signal?.throwIfAborted();
  const args = ["--port", String(options.port), "--connections", String(options.connections), "--idle", "--hold", String(options.holdSeconds)];
  const { child, stderr } = start(binary, args);
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const close = async (): Promise<void> => {
    child.stdin?.end();
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  };
  return new Promise<IdleLoad>((resolve, reject) => {
    let settled = false;
    const fail = (e: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      signal?.removeEventListener("abort", abort);
      child.kill("SIGKILL");
      reject(e);
    };
    const deadline = setTimeout(
      () => fail(new LoadgenError(`loadgen did not connect ${options.connections} idle connections within ${deadlineMs(0, options.connections) / 1000} s`)),
      deadlineMs(0, options.connections),
    );
    const abort = (): void => fail(signal?.reason);
    signal?.addEventListener("abort", abort, { once: true });
    onLines(child, (line) => {
      if (settled) return;
      let connected: unknown;
      try {
        connected = (JSON.parse(line) as { connected?: unknown }).connected;
      } catch (e) {
        fail(new LoadgenError(`loadgen printed something other than JSON: ${line}`, { cause: e }));
        return;
      }
      if (typeof connected !== "number") {
        fail(new LoadgenError(`loadgen printed no connection count: ${line}`));
        return;
      }
      settled = true;
      clearTimeout(deadline);
      signal?.removeEventListener("abort", abort);
      resolve({ connected, close });
    });
    child.once("error", (e) => fail(new LoadgenError(`cannot run ${binary}: ${e.message}`, { cause: e })));
    child.once("close", (code, exitSignal) =>
      fail(new LoadgenError(`loadgen exited before its idle connections were up (${describeExit(code, exitSignal, stderr())})`)),
    );
  });
}
