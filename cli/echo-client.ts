/**
 * An in-process echo load generator on `node:net`, used by `evloop demo` (the benchmark suite
 * uses the C load generator, `bench/c/loadgen.c`, so the client is never JavaScript under test).
 * Both servers the demo compares face this same client, so their numbers compare.
 *
 * Protocol: each connection keeps `depth` frames of `size` bytes in flight. A frame's first 8
 * bytes hold its send time (`performance.now()` as a little-endian float64); the rest is zeros.
 * The server echoes bytes, not frames, so replies arrive re-chunked: the client counts bytes
 * per connection, keeps only the 8 timestamp bytes of the frame being received, and records a
 * round trip each time a whole frame is back. Each completed frame is replaced at once, all the
 * frames completed by one chunk going out in one write.
 */
import net from "node:net";
import { performance } from "node:perf_hooks";
import { LatencyHistogram, type LatencySummary } from "./latency.js";

/** Options for {@link runEchoClient}. */
export interface EchoClientOptions {
  /** Server host; default `"127.0.0.1"`. */
  host?: string;
  port: number;
  /** Concurrent connections. */
  connections: number;
  /** Bytes per frame, at least 8 (the timestamp). */
  size: number;
  /** Frames in flight per connection. */
  depth: number;
  /** Length of the measured period, in seconds. */
  seconds: number;
  /** Seconds of load before measuring starts, to warm the JIT and the TCP windows; default 0. */
  warmup?: number;
}

/** What one run measured (the warm-up excluded). */
export interface EchoResult {
  /** Frames echoed back whole during the measured period. */
  readonly messages: number;
  /** `messages × size`: echoed payload bytes. */
  readonly bytes: number;
  /** The measured period as it actually ran. */
  readonly seconds: number;
  /** Round-trip times of the counted frames. */
  readonly latencyUs: LatencySummary;
  /** Connections that failed (reset, error) after connecting. */
  readonly errors: number;
}

const TIMESTAMP_BYTES = 8;
/** Parallel connects: enough to be quick, few enough not to overflow a small listen backlog. */
const CONNECT_BATCH = 128;
/** How long closing connections may take before they are destroyed. */
const CLOSE_GRACE_MS = 2000;

/** Shared state of one run, read by every connection. */
interface Run {
  readonly size: number;
  /** 0 warm-up, 1 measuring, 2 stopping: no new frames. */
  phase: 0 | 1 | 2;
  messages: number;
  errors: number;
  readonly latency: LatencyHistogram;
}

/** One client connection and its position inside the frame being received. */
class EchoConnection {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  readonly #run: Run;
  /** Bytes of the current frame received so far. */
  #offset = 0;
  readonly #stamp = Buffer.alloc(TIMESTAMP_BYTES);

  constructor(socket: net.Socket, run: Run) {
    this.socket = socket;
    this.#run = run;
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", () => {
      if (run.phase !== 2) run.errors++;
    });
  }

  /** Puts `count` frames in flight, stamped now. */
  send(count: number): void {
    const size = this.#run.size;
    // A fresh buffer per write: node:net may keep it queued past this call.
    const frames = Buffer.alloc(count * size);
    const now = performance.now();
    for (let i = 0; i < count; i++) frames.writeDoubleLE(now, i * size);
    this.socket.write(frames);
  }

  #onData(chunk: Buffer): void {
    const run = this.#run;
    const size = run.size;
    let completed = 0;
    for (let at = 0; at < chunk.length; ) {
      if (this.#offset < TIMESTAMP_BYTES) {
        const take = Math.min(TIMESTAMP_BYTES - this.#offset, chunk.length - at);
        chunk.copy(this.#stamp, this.#offset, at, at + take);
        this.#offset += take;
        at += take;
      } else {
        const take = Math.min(size - this.#offset, chunk.length - at);
        this.#offset += take;
        at += take;
      }
      if (this.#offset === size) {
        this.#offset = 0;
        completed++;
        if (run.phase === 1) {
          run.messages++;
          run.latency.recordMs(performance.now() - this.#stamp.readDoubleLE(0));
        }
      }
    }
    if (completed > 0 && run.phase !== 2) this.send(completed);
  }
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const fail = (e: Error): void => reject(e);
    socket.once("error", fail);
    socket.once("connect", () => {
      socket.off("error", fail);
      // Small pipelined frames: without this, Nagle holds a frame back until the previous one
      // is acknowledged, and latency measures the delayed-ACK timer instead of the server.
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

function checkCount(value: number, name: string, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be an integer of at least ${min}, got ${String(value)}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Connects, loads an echo server for `warmup + seconds`, then closes every connection and
 * resolves with what was measured. Rejects if a connection cannot be made (after closing the
 * ones that were).
 *
 * @example
 * ```ts
 * const r = await runEchoClient({ port: 7000, connections: 50, size: 64, depth: 4, seconds: 3 });
 * console.log(r.messages / r.seconds, "msgs/s; p99", r.latencyUs.p99, "µs");
 * ```
 */
export async function runEchoClient(options: EchoClientOptions): Promise<EchoResult> {
  const { port, connections, size, depth, seconds } = options;
  const host = options.host ?? "127.0.0.1";
  const warmup = options.warmup ?? 0;
  checkCount(connections, "connections", 1);
  checkCount(size, "size", TIMESTAMP_BYTES);
  checkCount(depth, "depth", 1);
  if (!(seconds > 0) || !(warmup >= 0)) throw new RangeError("seconds must be positive and warmup non-negative");

  const run: Run = { size, phase: 0, messages: 0, errors: 0, latency: new LatencyHistogram() };
  const conns: EchoConnection[] = [];
  try {
    for (let i = 0; i < connections; i += CONNECT_BATCH) {
      const batch = Math.min(CONNECT_BATCH, connections - i);
      const settled = await Promise.allSettled(Array.from({ length: batch }, () => connect(host, port)));
      for (const s of settled) if (s.status === "fulfilled") conns.push(new EchoConnection(s.value, run));
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
      if (failed) throw failed.reason;
    }
  } catch (e) {
    for (const c of conns) c.socket.destroy();
    throw e;
  }

  for (const c of conns) c.send(depth);
  if (warmup > 0) await sleep(warmup * 1000);
  run.phase = 1;
  const start = performance.now();
  await sleep(seconds * 1000);
  run.phase = 2;
  const elapsed = (performance.now() - start) / 1000;

  // end() lets the server echo what is still in flight and close its side; a server that does
  // not is cut off after the grace period, so the run always finishes.
  for (const c of conns) c.socket.end();
  const grace = setTimeout(() => {
    for (const c of conns) c.socket.destroy();
  }, CLOSE_GRACE_MS);
  await Promise.all(conns.map((c) => c.closed));
  clearTimeout(grace);

  return {
    messages: run.messages,
    bytes: run.messages * size,
    seconds: elapsed,
    latencyUs: run.latency.summary(),
    errors: run.errors,
  };
}
