/**
 * Guest mode: evloop runs inside Node's event loop and never blocks it, so Node's timers and
 * its own sockets (node:http here) keep working while evloop sockets are busy.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { get, createServer } from "node:http";
import { once } from "node:events";
import { TcpListener, TcpStream } from "evloop";
import { forEachLoop, randomBytes, sha256 } from "../helpers.mjs";

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
  },
  { modes: ["guest"] },
);
