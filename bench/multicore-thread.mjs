// One loop thread of bench/multicore.mjs's evloop server: an echo server on workerData.port,
// bound with reusePort so every thread listens on the port and the kernel shares connections,
// in owner mode on the thread's own loop (the backend from EVLOOP_BACKEND, else the best).
// The echo is bench/servers/evloop.mjs's: a buffer only once a connection has sent data
// (waitReadable first), growing fourfold when a read fills it, up to 64 KiB.
import { loopThread, runMain, TcpListener } from "evloop";

const MIN_BUFFER = 4 * 1024;
const MAX_BUFFER = 64 * 1024;
const DISCONNECTS = new Set(["ECONNRESET", "EPIPE", "EBADF", "ETIMEDOUT"]);

const thread = loopThread();

async function echo(conn) {
  let buf = null;
  try {
    conn.setNoDelay();
    for (;;) {
      if (buf === null) {
        await conn.loop.waitReadable(conn.fd);
        buf = new Uint8Array(MIN_BUFFER);
      }
      const n = await conn.read(buf);
      if (n === 0) break;
      await conn.writeAll(buf.subarray(0, n));
      if (n === buf.length && n < MAX_BUFFER) buf = new Uint8Array(n * 4);
    }
  } catch (e) {
    if (!DISCONNECTS.has(e?.code) && !thread.signal.aborted) process.stderr.write(`evloop thread ${thread.index}: ${e?.stack ?? e}\n`);
  } finally {
    await conn.close();
  }
}

await runMain(async () => {
  const listener = await TcpListener.bind({ host: "127.0.0.1", port: thread.workerData.port, backlog: 4096, reusePort: true });
  const open = new Set();
  thread.signal.addEventListener("abort", () => {
    void listener.close();
    for (const conn of open) void conn.close();
  });
  thread.ready();
  for await (const conn of listener) {
    open.add(conn);
    void echo(conn).finally(() => open.delete(conn));
  }
});
