// A multi-core echo server: one evloop loop per thread, the kernel sharing the connections.
//
//   npm run build && node examples/multicore-echo.mjs [port] [threads]
//
// The same file is the program and its threads: run as the program, it starts `threads`
// Workers (default: one per CPU) with spawnLoops; in each Worker, loopThread() says which
// thread it is, and the thread binds the port with reusePort, so every thread listens on it
// and Linux balances incoming connections among them. Ctrl-C stops every thread: each closes
// its listener and connections, and the program exits once all have.
import { availableParallelism } from "node:os";
import { isMainThread } from "node:worker_threads";
import { loopThread, runMain, spawnLoops, TcpListener } from "evloop";

if (isMainThread) {
  const port = Number(process.argv[2] ?? 7000);
  const count = Number(process.argv[3] ?? availableParallelism());
  const threads = await spawnLoops(count, import.meta.url, { workerData: { port } });
  console.log(`echo on 127.0.0.1:${port} with ${count} loop threads; Ctrl-C stops`);
  process.once("SIGINT", () => {
    threads.close().then(
      () => console.log("every thread stopped"),
      (e) => {
        console.error(e);
        process.exitCode = 1;
      },
    );
  });
} else {
  const thread = loopThread();
  await runMain(async () => {
    const listener = await TcpListener.bind({ host: "127.0.0.1", port: thread.workerData.port, reusePort: true });
    const open = new Set();
    thread.signal.addEventListener("abort", () => {
      void listener.close();
      for (const conn of open) void conn.close();
    });
    thread.ready();
    for await (const conn of listener) {
      open.add(conn);
      void (async () => {
        try {
          for await (const chunk of conn) await conn.writeAll(chunk);
        } catch {
          // Closed at stop, or reset by the peer.
        } finally {
          open.delete(conn);
          await conn.close();
        }
      })();
    }
  });
}
