// The per-thread I/O queue: wait for raw fds to be readable or writable, drive the waits with
// run(), and see a premature close reported instead of a hang.
//
//   npm run build && node examples/io-queue.mjs
import { readSync, writeSync } from "node:fs";
import { IoQueue, Pipe, PrematureCloseError } from "evloop";

const q = IoQueue.current();
const [r, w] = Pipe.create();

// A reader that waits on the raw fd, three times; each wait may only start once the last ended.
const reader = (async () => {
  const buf = Buffer.alloc(64);
  for (let i = 0; i < 3; i++) {
    const got = await q.wait(r.fd, "read");
    const n = readSync(r.fd, buf);
    console.log(`read ${JSON.stringify(buf.toString("utf8", 0, n))} (reported: ${JSON.stringify(got)})`);
  }
})();

// A writer that waits for room before each write.
const writer = (async () => {
  for (const word of ["one", "two", "three"]) {
    await q.wait(w.fd, "write");
    writeSync(w.fd, word);
    await new Promise((resolve) => setTimeout(resolve, 10)); // the host's timers run meanwhile
  }
})();

// On Node's main thread, run without blocking it: the queue's selector is waited on through
// evloop's default loop. In a Worker, `await q.run()` blocks in the selector instead.
while (q.running) await q.run({ blocking: false });
await Promise.all([reader, writer]);

// Closing an fd that still has a waiter is a bug the queue reports.
const pending = q.wait(r.fd, "read").catch((e) => e);
await r.close();
q.poll(0);
const error = await pending;
console.log(error instanceof PrematureCloseError ? `premature close of fd ${error.fd} reported (${error.code})` : `unexpected: ${error}`);
await w.close();
