/**
 * Scenarios of guest-driver.test.mjs that end the process, run in a child node.exe: each prints
 * one JSON line, and the test asserts how (and whether, within a bound) the child ended.
 *
 *   return    the helper is up (a packet went round), then the script returns without disposing
 *   exit      the same, then process.exit(3)
 *   refed     the loop has refed work: the process must stay alive until a Worker's packet arrives
 *             800 ms later (the keep-alive is the driver's timer, not the helper), then exits
 */
import { Worker } from "node:worker_threads";
import { GuestDriver } from "../../dist/driver/guest.js";
import { FakeIocpLoop } from "./fake-iocp.mjs";

const scenario = process.argv[2];
const loop = new FakeIocpLoop();
GuestDriver.attach(loop);

/** Sets whether the loop has work that keeps the process alive (the driver's keep-alive timer). */
function refed(on) {
  loop.hasRefedWork = on;
  loop.changed();
}

if (scenario === "return" || scenario === "exit") {
  refed(true);
  loop.post(7);
  await loop.until(1);
  refed(false);
  // Back in GetQueuedCompletionStatusEx by now, or about to be: both must end.
  await new Promise((r) => setTimeout(r, 100));
  console.log(JSON.stringify({ scenario, received: loop.received.map(String) }));
  if (scenario === "exit") process.exit(3);
} else if (scenario === "refed") {
  refed(true);
  const started = Date.now();
  const go = new Int32Array(new SharedArrayBuffer(4));
  const poster = new Worker(new URL("./poster-worker.mjs", import.meta.url), { workerData: { port: loop.port, first: 40, count: 1, go } });
  poster.unref();
  setTimeout(() => {
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
  }, 800).unref();
  loop.until(1, 30_000).then(() => {
    console.log(JSON.stringify({ scenario, received: loop.received.map(String), waitedMs: Date.now() - started }));
    refed(false);
  });
} else {
  throw new Error(`unknown scenario ${scenario}`);
}
