/**
 * A Worker that posts completion packets to a port, for the guest driver's tests: workerData
 * `{ port, first, count, go? }` posts keys first … first + count - 1; with `go` (an Int32Array
 * over a SharedArrayBuffer) it first waits until go[0] is 1 (at most 10 s). It reports "posted".
 */
import { parentPort, workerData } from "node:worker_threads";
import { windows } from "../../dist/sys/windows/api.js";

const { port, first, count, go } = workerData;
const { kernel32 } = windows();
if (go && Atomics.wait(go, 0, 0, 10_000) === "timed-out") throw new Error("the poster was never told to go");
for (let i = 0; i < count; i++) {
  if (kernel32.PostQueuedCompletionStatus(port, 0, first + i, 0n) === 0) throw new Error(`PostQueuedCompletionStatus failed: ${kernel32.GetLastError()}`);
}
parentPort.postMessage("posted");
