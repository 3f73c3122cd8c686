// Echo server on Bun.listen, for the benchmark suite.
//
//   bun bench/servers/bun.mjs [--port P]
//
// Prints `PORT <n>` once listening on 127.0.0.1, echoes every byte on every connection, answers
// SIGUSR2 with `STATS {"heapUsed":N,"rss":N}`, and exits 0 on SIGTERM or SIGINT.
//
// `socket.write` returns how many bytes the kernel took, which may be fewer than given. The rest
// is copied (Bun may reuse the `data` buffer once the handler returns; `new Uint8Array(view)`
// copies) and queued on the socket, and the socket stops reading (`pause`) until `drain` has
// written the whole queue: the backpressure node:net's server and the C servers apply too. Data
// that still arrives meanwhile goes behind the queue, so bytes are echoed in order.
/* global Bun */
import { parsePort } from "./args.mjs";


/** Writes the socket's queue until the kernel stops taking bytes; returns whether it emptied. */
function flush(socket) {
  const queue = socket.data.queue;
  while (queue.length > 0) {
    const chunk = queue[0];
    const n = socket.write(chunk);
    if (n < chunk.byteLength) {
      if (n > 0) queue[0] = chunk.subarray(n);
      return false;
    }
    queue.shift();
  }
  return true;
}

const port = parsePort(process.argv.slice(2));
const server = Bun.listen({
  hostname: "127.0.0.1",
  port,
  socket: {
    open(socket) {
      socket.setNoDelay(true);
      socket.data = { queue: [] };
    },
    data(socket, data) {
      const queue = socket.data.queue;
      if (queue.length > 0) {
        queue.push(new Uint8Array(data));
        return;
      }
      const n = socket.write(data);
      if (n < data.byteLength) {
        queue.push(new Uint8Array(data.subarray(Math.max(n, 0))));
        socket.pause();
      }
    },
    drain(socket) {
      if (flush(socket)) socket.resume();
    },
    error(socket) {
      socket.end();
    },
  },
});
// Handlers first: SIGUSR2's default action would kill a server asked for its stats too early.
process.on("SIGUSR2", () => {
  const { heapUsed, rss } = process.memoryUsage();
  process.stdout.write(`STATS ${JSON.stringify({ heapUsed, rss })}\n`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
process.stdout.write(`PORT ${server.port}\n`);
