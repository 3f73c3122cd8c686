// Echo server on Deno.listen, for the benchmark suite.
//
//   deno run --allow-net=127.0.0.1 bench/servers/deno.mjs [--port P]
//
// Prints `PORT <n>` once listening on 127.0.0.1, echoes every byte on every connection, answers
// SIGUSR2 with `STATS {"heapUsed":N,"rss":N}`, and exits 0 on SIGTERM or SIGINT.
//
// Each connection loops on `conn.read(buf)` and `conn.write` until all is written, with its own
// 64 KiB buffer. `conn.readable.pipeTo(conn.writable)` is the other idiom; through web streams it
// took 4 to 5 times more CPU per 64-byte message here.
/* global Deno */
import { parsePort } from "./args.mjs";

const BUFFER_SIZE = 64 * 1024;


async function echo(conn) {
  try {
    conn.setNoDelay(true);
    const buf = new Uint8Array(BUFFER_SIZE);
    for (let n; (n = await conn.read(buf)) !== null; ) {
      for (let at = 0; at < n; ) at += await conn.write(buf.subarray(at, n));
    }
  } catch {
    // The peer went away mid-echo (ECONNRESET, EPIPE): that ends this connection only.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

const port = parsePort(Deno.args);
const listener = Deno.listen({ hostname: "127.0.0.1", port });
const encoder = new TextEncoder();
// Handlers first: SIGUSR2's default action would kill a server asked for its stats too early.
Deno.addSignalListener("SIGUSR2", () => {
  const { heapUsed, rss } = Deno.memoryUsage();
  Deno.stdout.writeSync(encoder.encode(`STATS ${JSON.stringify({ heapUsed, rss })}\n`));
});
for (const signal of ["SIGTERM", "SIGINT"]) Deno.addSignalListener(signal, () => Deno.exit(0));
Deno.stdout.writeSync(encoder.encode(`PORT ${listener.addr.port}\n`));
for await (const conn of listener) void echo(conn);
