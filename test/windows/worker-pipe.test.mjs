/**
 * A terminated Worker's named pipes are closed: JavaScript cannot run when a Worker is
 * terminated, so the pipe's handle is closed by its native cleanup hook, which calls kernel32's
 * CloseHandle for a handle that is not a socket (ws2_32's closesocket for a socket could not
 * close it). The server here sees the end of the stream. Skipped off Windows.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { createLoop, NamedPipeServer, SystemError } from "evloop";

const WINDOWS = process.platform === "win32";

test("a terminated Worker's NamedPipe is closed: the server reads the end of the stream", { skip: !WINDOWS && "Windows only (npm run test:windows)" }, async () => {
  const loop = createLoop({ backend: "iocp" });
  const name = `\\\\.\\pipe\\evloop-worker-pipe-${process.pid}`;
  const server = NamedPipeServer.create({ name, loop });
  const worker = new Worker(new URL("./pipe-worker.mjs", import.meta.url), { workerData: { name } });
  try {
    const accepted = await server.accept({ timeout: 20_000 });
    const buf = new Uint8Array(16);
    const n = await accepted.read(buf, { timeout: 20_000 });
    assert.equal(new TextDecoder().decode(buf.subarray(0, n)), "hi");
    await new Promise((resolve, reject) => worker.once("message", resolve).once("error", reject));
    await worker.terminate();
    // The Worker wrote nothing more: the next read is the end (EOF, or EPIPE from a broken pipe).
    const end = await accepted.read(buf, { timeout: 10_000 }).catch((e) => e);
    assert.ok(end === 0 || (end instanceof SystemError && end.code === "EPIPE"), `expected the end of the stream, got ${end}`);
    await accepted.close();
  } finally {
    await worker.terminate();
    await server.close();
    loop.dispose();
  }
});
