/**
 * For uv-async.test.mjs, as a Worker or a child process.
 *
 * Worker (workerData `{ address, go }`): each time go[0] is raised to n (a SharedArrayBuffer
 * Int32Array), calls `uv_async_send(address)` n - previous times (node's own export, reached
 * like evloop's worker does), stores the number of sends done in go[1] and notifies; go[0] = -1
 * ends it.
 *
 * Child process (`node async-sender.mjs`): makes a UvAsync on the main loop, has a Worker send
 * to it once, prints "fired" when the callback ran, and returns with the handle open: the process
 * must exit on its own (the handle is unref'd).
 */
import { isMainThread, Worker, workerData } from "node:worker_threads";
import { ffi } from "../../dist/ffi/runtime/load.js";

if (isMainThread) {
  const { UvAsync } = await import("../../dist/driver/libuv.js");
  const go = new Int32Array(new SharedArrayBuffer(8));
  const fired = new Promise((resolve) => {
    const wake = new UvAsync(() => resolve(wake));
    const sender = new Worker(new URL(import.meta.url), { workerData: { address: wake.address, go } });
    sender.unref();
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
  });
  const keep = setTimeout(() => console.log("the callback did not run within 10 s"), 10_000);
  await fired;
  clearTimeout(keep);
  Atomics.store(go, 0, -1);
  Atomics.notify(go, 0);
  console.log("fired");
} else {
  const uv = ffi.open(null, { uv_async_send: { result: "i32", params: ["pointer"] } });
  const { address, go } = workerData;
  let sent = 0;
  for (;;) {
    Atomics.wait(go, 0, sent, 10_000);
    const want = Atomics.load(go, 0);
    if (want < 0) break;
    for (; sent < want; sent++) {
      if (uv.uv_async_send(address) !== 0) throw new Error("uv_async_send failed");
    }
    Atomics.store(go, 1, sent);
    Atomics.notify(go, 1);
  }
}
