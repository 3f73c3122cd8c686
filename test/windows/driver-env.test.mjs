/**
 * The drivers' view of Node on Windows (node.exe): its MSVC-decorated C++ exports give the
 * thread's isolate, libuv's backend fd is -1 (libuv's loop is a completion port) so owner mode
 * never calls wakeOn, guest mode is available on the main thread only, and the native cleanup
 * hooks close a Worker's sockets (closesocket) when it is terminated or returns.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { Worker } from "node:worker_threads";
import { fdsClosedAtExit, closeAtExit } from "../../dist/driver/cleanup.js";
import { currentIsolate, hostBackendFd, hostLoopAvailable } from "../../dist/driver/libuv.js";
import { ownLoop } from "../../dist/driver/owner.js";
import { closeSocket } from "../../dist/sys/windows/socket.js";
import { FakeIocpLoop } from "./fake-iocp.mjs";
import { within } from "../helpers.mjs";


/** Connects to 127.0.0.1:`port`: "connected", or the error's code. */
function tryConnect(port) {
  return within(
    new Promise((resolve) => {
      const s = connect({ host: "127.0.0.1", port });
      s.once("connect", () => {
        s.destroy();
        resolve("connected");
      });
      s.once("error", (e) => resolve(e.code));
    }),
    10_000,
    `a connection to port ${port}`,
  );
}

/** Starts hook-worker.mjs and returns it with its report. */
async function hookWorker(mode, stay = true) {
  const worker = new Worker(new URL("./hook-worker.mjs", import.meta.url), { workerData: { mode, stay } });
  const report = await within(
    new Promise((resolve, reject) => worker.once("message", resolve).once("error", reject)),
    20_000,
    `the ${mode} Worker's report`,
  );
  const exited = new Promise((resolve) => worker.once("exit", resolve));
  return { worker, report, exited };
}

describe("Node's own state on Windows", () => {
  test("the main thread's isolate comes from node.exe's MSVC exports; libuv's backend fd is -1", () => {
    assert.notEqual(currentIsolate(), 0n);
    assert.equal(hostBackendFd(), -1);
    assert.equal(hostLoopAvailable(), true);
  });

  test("a Worker has its own isolate, and no guest mode", async () => {
    const { worker, report } = await hookWorker("none");
    try {
      assert.notEqual(report.isolate, "0");
      assert.notEqual(report.isolate, String(currentIsolate()));
      assert.equal(report.backendFd, -1);
      assert.equal(report.hostLoop, false);
    } finally {
      await worker.terminate();
      closeSocket(report.fd);
    }
  });

  test("owner mode runs a function without calling wakeOn (libuv has no fd to watch)", async () => {
    const loop = new FakeIocpLoop();
    try {
      const result = await within(
        ownLoop(loop, async () => {
          await new Promise((resolve) => setTimeout(resolve, 10));
          return 42;
        }),
        10_000,
        "ownLoop",
      );
      assert.equal(result, 42);
      assert.deepEqual(loop.wakeOnCalls, []);
    } finally {
      loop.free();
    }
  });
});

describe("cleanup hooks on Windows (closesocket)", () => {
  test("nothing is registered on the main thread", () => {
    closeAtExit(123456);
    assert.equal(fdsClosedAtExit(), 0);
  });

  test("a terminated Worker's hooked socket is closed", async () => {
    const { worker, report } = await hookWorker("hook");
    assert.equal(report.hooked, 1, "closeAtExit did not register exactly one hook");
    assert.equal(await tryConnect(report.port), "connected");
    await within(worker.terminate(), 20_000, "terminate()");
    assert.equal(await tryConnect(report.port), "ECONNREFUSED", "the listening socket outlived its Worker");
  });

  test("a Worker that returns has its hooked socket closed", async () => {
    const { report, exited } = await hookWorker("hook", false);
    await within(exited, 20_000, "the Worker's exit");
    assert.equal(await tryConnect(report.port), "ECONNREFUSED", "the listening socket outlived its Worker");
  });

  test("without a hook (never added, or removed) the socket outlives its Worker", async () => {
    for (const mode of ["none", "unhook"]) {
      const { worker, report } = await hookWorker(mode);
      try {
        if (mode === "unhook") assert.deepEqual([report.hookedBefore, report.hooked], [1, 0]);
        await within(worker.terminate(), 20_000, "terminate()");
        assert.equal(await tryConnect(report.port), "connected", `${mode}: the socket was closed anyway`);
      } finally {
        closeSocket(report.fd);
      }
    }
  });
});
