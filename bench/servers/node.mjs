// Echo server on node:net, the reference every other server is compared with.
//
//   node bench/servers/node.mjs [--port P]
//
// Prints `PORT <n>` once listening on 127.0.0.1, echoes every byte on every connection, answers
// SIGUSR2 with `STATS {"heapUsed":N,"rss":N}`, and exits 0 on SIGTERM or SIGINT.
//
// Each chunk is written back from the 'data' handler, and the socket pauses while its write
// buffer is over the high-water mark, until 'drain'. `s.pipe(s)` does the same through the
// stream machinery; it measured 5 to 10% more CPU per message, within the noise of this machine.
import net from "node:net";
import { parsePort } from "./args.mjs";


const port = parsePort(process.argv.slice(2));
const server = net.createServer({ noDelay: true }, (s) => {
  s.on("error", () => s.destroy());
  s.on("data", (chunk) => {
    if (!s.write(chunk)) {
      s.pause();
      s.once("drain", () => s.resume());
    }
  });
});
// A backlog as large as the C servers' (SOMAXCONN), so the 10,000-connection runs measure the
// server and not SYN retransmission back-off.
server.listen({ port, host: "127.0.0.1", backlog: 4096 }, () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
process.on("SIGUSR2", () => {
  const { heapUsed, rss } = process.memoryUsage();
  process.stdout.write(`STATS ${JSON.stringify({ heapUsed, rss })}\n`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
