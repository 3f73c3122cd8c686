/**
 * Guest mode with the IOCP loop itself: `createLoop()` on node.exe's main thread drives an iocp
 * loop through the guest driver's helper thread. Raw Winsock sockets (a listening socket here, a
 * node:net client as the peer) and the loop's own accept/read/write: completions arrive through
 * the helper, a wake-up while the loop is idle does not stall it, Node's timers and sockets run
 * beside it, a pending read keeps the process alive and nothing else does (child processes with
 * a time limit, guest-iocp-fixture.mjs).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer, get } from "node:http";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import { createLoop } from "evloop";
import { C } from "../../dist/sys/windows/constants.js";
import { bind, listen, localAddress, socket } from "../../dist/sys/windows/socket.js";
import { within } from "../helpers.mjs";

const FIXTURE = fileURLToPath(new URL("./guest-iocp-fixture.mjs", import.meta.url));
const CHILD_LIMIT_MS = 30_000;


/** A guest iocp loop with one accepted connection from a node:net client. */
async function connection() {
  const loop = createLoop();
  const listener = socket(C.AF_INET, C.SOCK_STREAM, C.IPPROTO_TCP);
  bind(listener, { family: "ipv4", address: "127.0.0.1", port: 0 });
  listen(listener, 8);
  const client = connect({ host: "127.0.0.1", port: localAddress(listener).port });
  const fd = await within(loop.accept(listener), 10_000, "accept");
  const end = async () => {
    client.destroy();
    await loop.close(fd);
    await loop.close(listener);
    loop.dispose();
  };
  return { loop, client, fd, end };
}

/** Reads once from `fd` and decodes what came. */
async function readText(loop, fd) {
  const buf = new Uint8Array(64);
  const n = await within(loop.read(fd, buf), 10_000, "read");
  return new TextDecoder().decode(buf.subarray(0, n));
}

function scenario(name) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [FIXTURE, name], { timeout: CHILD_LIMIT_MS }, (error, stdout, stderr) => {
      if (error?.killed) {
        reject(new Error(`${name}: the child did not exit within ${CHILD_LIMIT_MS} ms\n${stdout}\n${stderr}`));
        return;
      }
      const line = stdout.trim().split("\n").at(-1);
      resolve({ code: error ? error.code : 0, stderr, result: line ? JSON.parse(line) : null });
    });
  });
}

describe("the iocp loop in guest mode", () => {
  test("createLoop() on node.exe's main thread is iocp in guest mode; sleep() runs on a host timer", async () => {
    const loop = createLoop();
    try {
      assert.equal(loop.backend, "iocp");
      assert.equal(loop.mode, "guest");
      await within(loop.sleep(20), 5000, "sleep(20)");
    } finally {
      loop.dispose();
    }
  });

  test("accept, read and write complete through the helper; a wake-up while idle does not stall the loop", async () => {
    const { loop, client, fd, end } = await connection();
    try {
      client.write("hello");
      assert.equal(await readText(loop, fd), "hello");
      loop.interrupt();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const reading = readText(loop, fd);
      client.write("again");
      assert.equal(await reading, "again");
      const echoed = new Promise((resolve) => client.once("data", (d) => resolve(String(d))));
      assert.equal(await within(loop.write(fd, new TextEncoder().encode("pong")), 10_000, "write"), 4);
      assert.equal(await within(echoed, 10_000, "the client's data"), "pong");
    } finally {
      await end();
    }
  });

  test("Node's timers and an http request complete while a read waits", async () => {
    const { loop, client, fd, end } = await connection();
    const server = createServer((req, res) => res.end("ok"));
    try {
      const reading = readText(loop, fd);
      await within(new Promise((resolve) => setTimeout(resolve, 30)), 5000, "a 30 ms setTimeout");
      await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
      const body = await within(
        new Promise((resolve, reject) => {
          get({ host: "127.0.0.1", port: server.address().port }, (res) => {
            let text = "";
            res.on("data", (d) => (text += d)).on("end", () => resolve(text));
          }).on("error", reject);
        }),
        10_000,
        "the http request",
      );
      assert.equal(body, "ok");
      client.write("after");
      assert.equal(await reading, "after");
    } finally {
      server.close();
      await end();
    }
  });

  test("a pending read keeps the process alive until its data comes, then the process exits", async () => {
    const { code, result, stderr } = await scenario("pending-read");
    assert.equal(code, 0, stderr);
    assert.ok(result, `the child exited before its read completed\n${stderr}`);
    assert.equal(result.mode, "guest");
    assert.equal(result.text, "late");
    assert.ok(result.waitedMs >= 600, `the read completed after ${result.waitedMs} ms, before the data was sent`);
  });

  test("a script that returns with an idle loop exits (its helper thread is stopped at exit)", async () => {
    const { code, result, stderr } = await scenario("return");
    assert.equal(code, 0, stderr);
    assert.deepEqual(result, { scenario: "return", mode: "guest" });
  });
});
