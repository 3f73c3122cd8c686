/**
 * `evloop demo`: an evloop echo server and a `node:net` echo server, each loaded in turn by the
 * same in-process client, side by side in one table.
 *
 * Everything shares one thread, so this shows evloop in its default setting (guest mode inside
 * Node's loop) next to Node's own sockets under identical conditions; it is a demonstration, not
 * the benchmark (bench/ uses a C client and separate server processes, see BENCHMARKS.md).
 */
import { defaultLoop } from "evloop";
import { parseOptions, numberOption } from "./args.js";
import { runEchoClient, type EchoResult } from "./echo-client.js";
import { startEvloopEchoServer, startNodeEchoServer, type EchoServer } from "./echo-servers.js";
import { formatInteger, formatNumber, renderTable } from "../bench/src/format.js";

const WARMUP_SECONDS = 0.5;

export const usage = `usage: evloop demo [--seconds N] [--connections C] [--size S] [--depth D]

Runs an echo server on evloop (default backend, guest mode) and one on node:net, drives each in
turn with the same node:net client over loopback, and prints messages/s, MB/s and round-trip
latency for both. EVLOOP_BACKEND picks the backend.

  --seconds N       measured seconds per server (default 3), after a ${WARMUP_SECONDS} s warm-up
  --connections C   concurrent connections (default 50)
  --size S          bytes per message, at least 8: the send timestamp (default 64)
  --depth D         messages in flight per connection (default 4)`;

interface Row {
  readonly server: string;
  readonly setup: string;
  readonly result: EchoResult;
}

/** Loads `server` with the client, then closes it (also when the client fails). */
async function measure(server: EchoServer, options: { connections: number; size: number; depth: number; seconds: number }): Promise<EchoResult> {
  let result: EchoResult;
  try {
    result = await runEchoClient({ port: server.port, ...options, warmup: WARMUP_SECONDS });
  } catch (e) {
    await server.close().catch(() => {});
    throw e;
  }
  await server.close();
  return result;
}

/** Shows what is running on a terminal, so the pause between lines is explained. */
function status(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
}

function formatRows(rows: readonly Row[]): string {
  return renderTable(
    [
      { title: "server" },
      { title: "backend/mode" },
      { title: "msgs/s", align: "right" },
      { title: "MB/s", align: "right" },
      { title: "p50 µs", align: "right" },
      { title: "p99 µs", align: "right" },
    ],
    rows.map(({ server, setup, result: r }) => [
      server,
      setup,
      formatInteger(r.messages / r.seconds),
      formatNumber(r.bytes / r.seconds / 1e6),
      formatInteger(r.latencyUs.p50),
      formatInteger(r.latencyUs.p99),
    ]),
  );
}

/** Runs `evloop demo`; resolves with the exit code. */
export async function runDemo(argv: readonly string[]): Promise<number> {
  const { values } = parseOptions({
    args: [...argv],
    options: {
      seconds: { type: "string" },
      connections: { type: "string" },
      size: { type: "string" },
      depth: { type: "string" },
    },
    allowPositionals: false,
  });
  const options = {
    seconds: numberOption(values.seconds, "seconds", 3, 0.1, false),
    connections: numberOption(values.connections, "connections", 50, 1),
    size: numberOption(values.size, "size", 64, 8),
    depth: numberOption(values.depth, "depth", 4, 1),
  };

  const loop = defaultLoop();
  if (loop.mode !== "guest" || loop.backend === "blocking") {
    // The client runs on this thread's Node loop: an owner-mode or blocking loop would stop it.
    console.error(`evloop demo needs a non-blocking backend in guest mode; this loop is ${loop.backend}/${loop.mode}`);
    return 1;
  }

  const { seconds, connections, size, depth } = options;
  const plural = (n: number, word: string): string => `${formatInteger(n)} ${word}${n === 1 ? "" : "s"}`;
  console.log(`evloop demo — echo server, ${plural(connections, "connection")} × ${depth} in flight × ${formatInteger(size)} B, ${seconds} s each, loopback`);
  const rows: Row[] = [];
  status(`measuring evloop (${loop.backend}/${loop.mode})…`);
  rows.push({ server: "evloop", setup: `${loop.backend}/${loop.mode}`, result: await measure(await startEvloopEchoServer(loop), options) });
  status("measuring node:net…");
  rows.push({ server: "node:net", setup: "libuv", result: await measure(await startNodeEchoServer(), options) });
  status("");

  console.log(formatRows(rows));
  const [ours, theirs] = rows.map((r) => r.result.messages / r.result.seconds) as [number, number];
  const ratio = ours / theirs;
  console.log(`evloop / node:net: ${Number.isFinite(ratio) ? ratio.toFixed(2) : "–"}× messages/s`);
  for (const { server, result } of rows) {
    if (result.errors > 0) console.log(`note: ${result.errors} ${server} connection(s) failed during the run`);
  }
  return 0;
}
