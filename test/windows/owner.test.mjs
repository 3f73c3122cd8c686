/**
 * Owner mode on Windows: libuv's loop has no fd evloop could watch there, so runMain waits in
 * slices and yields to Node between them. A Worker sitting in runMain with an operation that
 * never completes still gets its messages, and worker.terminate() ends it; on the main thread,
 * Node's timers and sockets progress beside a runMain that waits.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect } from "node:net";
import { Worker } from "node:worker_threads";
import { createLoop, runMain } from "evloop";
import { raw, within } from "../helpers.mjs";

const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
import(workerData.url).then(async ({ createLoop, runMain }) => {
  const { loopbackPair } = await import(workerData.socketUrl);
  const loop = createLoop({ backend: "iocp" });
  const [a] = loopbackPair();
  parentPort.on("message", (m) => parentPort.postMessage("echo " + m));
  await runMain(async () => {
    parentPort.postMessage("running");
    await loop.read(a, new Uint8Array(16)); // never completes
  }, { loop });
});
`;


test("a Worker in runMain with a read pending gets its messages, and terminate() ends it", async () => {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: {
      url: new URL("../../dist/index.js", import.meta.url).href,
      socketUrl: new URL("../../dist/sys/windows/socket.js", import.meta.url).href,
    },
  });
  const messages = [];
  const next = () => new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  try {
    messages.push(await within(next(), 10_000, "the Worker's start"));
    assert.equal(messages[0], "running");
    const reply = next();
    worker.postMessage("ping");
    assert.equal(await within(reply, 5_000, "the Worker's reply while it waits in runMain"), "echo ping");
  } finally {
    const exited = new Promise((resolve) => worker.once("exit", resolve));
    await worker.terminate();
    await within(exited, 5_000, "the Worker's exit after terminate()");
  }
});

test("on the main thread, Node's timers and sockets progress beside runMain waiting on a read", async () => {
  const loop = createLoop({ backend: "iocp", guest: false });
  const [a, b] = raw.socketPair();
  const server = createServer((s) => s.end("hello"));
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const got = await runMain(async () => {
      const reading = loop.read(a, new Uint8Array(16));
      const timer = new Promise((resolve) => setTimeout(() => resolve("timer"), 100));
      const socket = new Promise((resolve, reject) => {
        const c = connect(server.address().port, "127.0.0.1");
        let text = "";
        c.on("data", (d) => (text += d));
        c.on("end", () => resolve(text));
        c.on("error", reject);
      });
      const results = await Promise.all([timer, socket]);
      raw.write(b, new Uint8Array([1]));
      assert.equal(await reading, 1);
      return results;
    }, { loop });
    assert.deepEqual(got, ["timer", "hello"]);
  } finally {
    server.close();
    raw.close(a);
    raw.close(b);
    loop.dispose();
  }
});
