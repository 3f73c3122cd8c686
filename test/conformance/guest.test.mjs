/**
 * Guest mode: evloop runs inside Node's event loop and never blocks it, so Node's timers and
 * its own sockets (node:http here) keep working while evloop sockets are busy; and it keeps the
 * process alive exactly like Node's own handles do (checked in child processes, each killed
 * after CHILD_TIMEOUT_MS so a process that never exits fails the test instead of hanging it).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { get, createServer } from "node:http";
import { once } from "node:events";
import { spawn } from "node:child_process";
import { TcpListener, TcpStream } from "evloop";
import { distIndexUrl, forEachLoop, randomBytes, sha256 } from "../helpers.mjs";

const CHILD_TIMEOUT_MS = 10_000;

/**
 * Runs an ES module in a child node with `evloop` (imported by URL) and `backend` in scope;
 * resolves with { code, signal, stdout, stderr } once it exits (or is killed at the timeout).
 */
async function runChild(backend, body) {
  const source = `import * as evloop from ${JSON.stringify(distIndexUrl)};\nconst backend = ${JSON.stringify(backend)};\n${body}`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", source], { timeout: CHILD_TIMEOUT_MS, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
  const [code, signal] = await once(child, "exit");
  return { code, signal, stdout: stdout.trim(), stderr };
}

/** Asserts the child exited by itself, successfully. */
function exitedCleanly(r) {
  assert.equal(r.signal, null, `the child did not exit by itself within ${CHILD_TIMEOUT_MS} ms (stdout: ${JSON.stringify(r.stdout)})`);
  assert.equal(r.code, 0, `the child failed: ${r.stderr}`);
}

/** GET http://127.0.0.1:port/path; resolves with { status, body }. */
function httpGet(port, path) {
  return new Promise((resolve, reject) => {
    const req = get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

forEachLoop(
  "guest",
  (ctx) => {
    test("a setTimeout and an http request complete while an evloop TCP transfer is running", () =>
      ctx.run(async () => {
        assert.equal(ctx.loop.mode, "guest");
        const server = createServer((req, res) => res.end(`hello ${req.url}`));
        server.listen(0, "127.0.0.1");
        await once(server, "listening");
        const l = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop: ctx.loop });
        const [c, s] = await Promise.all([TcpStream.connect({ host: "127.0.0.1", port: l.address.port, timeout: 5000, loop: ctx.loop }), l.accept({ timeout: 5000 })]);
        try {
          // The transfer runs until told to stop, bounded at LIMIT bytes: if it is still running
          // when the host's timer and http request complete, they ran while evloop was busy.
          const LIMIT = 256 * 1024 * 1024;
          let stop = false;
          let writerDone = false;
          let written = 0;
          const sent = sha256();
          const writer = (async () => {
            const chunk = randomBytes(256 * 1024);
            while (!stop && written < LIMIT) {
              await c.writeAll(chunk);
              sent.update(chunk);
              written += chunk.length;
            }
            writerDone = true;
            await c.shutdown();
          })();
          let received = 0;
          const got = sha256();
          const reader = (async () => {
            const buf = new Uint8Array(128 * 1024);
            for (;;) {
              const n = await s.read(buf);
              if (n === 0) return;
              got.update(buf.subarray(0, n));
              received += n;
            }
          })();

          const timer = await new Promise((resolve) => setTimeout(() => resolve({ received, writerDone }), 20));
          const before = received;
          const res = await httpGet(server.address().port, "/evloop");
          const during = received - before;
          const writerDoneAtResponse = writerDone;
          stop = true;
          await Promise.all([writer, reader]);

          assert.equal(res.status, 200);
          assert.equal(res.body, "hello /evloop");
          assert.equal(timer.writerDone, false, `setTimeout(20) fired only after the whole ${LIMIT >> 20} MiB transfer had ended: evloop operations that complete at once starved Node's event loop`);
          assert.ok(timer.received > 0, "the transfer made progress before the timer fired");
          assert.equal(writerDoneAtResponse, false, "the http request completed only after the transfer had ended");
          assert.ok(during > 0, "evloop kept moving data while the http request was in flight");
          assert.equal(received, written, "every byte written was read");
          assert.equal(got.digest("hex"), sent.digest("hex"));
        } finally {
          await c.close();
          await s.close();
          await l.close();
          server.close();
          await once(server, "close");
        }
      }));

    // In the children below, Node timers that would write or close are unref'd: they fire only
    // if evloop is what keeps the process alive.

    test("a pending read keeps the process alive until it completes, then the process exits", () =>
      ctx.run(async () => {
        const r = await runChild(ctx.backend, `
          const loop = evloop.createLoop({ backend });
          const [a, b] = evloop.UnixStream.pair({ loop });
          a.read(new Uint8Array(8)).then(async (n) => {
            console.log("read " + n);
            await a.close();
            await b.close();
          });
          setTimeout(() => b.write(new Uint8Array([1, 2, 3])), 50).unref();
        `);
        exitedCleanly(r);
        assert.equal(r.stdout, "read 3", "the process exited while the read was pending");
      }));

    test("a pending loop.sleep() keeps the process alive", () =>
      ctx.run(async () => {
        const r = await runChild(ctx.backend, `
          const loop = evloop.createLoop({ backend });
          loop.sleep(50).then(() => console.log("slept"));
        `);
        exitedCleanly(r);
        assert.equal(r.stdout, "slept");
      }));

    test("loop.unref() lets the process exit with a read pending", () =>
      ctx.run(async () => {
        const r = await runChild(ctx.backend, `
          const loop = evloop.createLoop({ backend });
          const [a] = evloop.UnixStream.pair({ loop });
          a.read(new Uint8Array(8)).then(() => console.log("unexpected read"));
          loop.unref();
        `);
        exitedCleanly(r);
        assert.equal(r.stdout, "");
      }));

    test("an open TcpListener keeps the process alive; listener.unref() lets it exit while accepting", () =>
      ctx.run(async () => {
        const held = await runChild(ctx.backend, `
          const loop = evloop.createLoop({ backend });
          const l = await evloop.TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
          setTimeout(async () => {
            console.log("still alive");
            await l.close();
          }, 50).unref();
        `);
        exitedCleanly(held);
        assert.equal(held.stdout, "still alive", "the process exited with the listener open");

        const unrefed = await runChild(ctx.backend, `
          const loop = evloop.createLoop({ backend });
          const l = await evloop.TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
          (async () => {
            for await (const c of l) await c.close();
          })();
          l.unref();
        `);
        exitedCleanly(unrefed);
      }));
  },
  { modes: ["guest"] },
);
