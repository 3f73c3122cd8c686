// The reactor pattern (README, "Threads: the reactor"): a selector blocked on a thread of its
// own, fds registered from any thread, ready events consumed here as an async iterable.
//
//   npm run build && node examples/reactor.mjs
//
// A Worker registers the read end of a pipe with the reactor (through the handle it is sent) and
// writes three messages; this thread reads each one when the reactor says the pipe is readable.
// Node's own loop is never blocked: its timers and I/O run between events.
import { readSync, writeSync } from "node:fs";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { Interest, Pipe, Reactor, Registrator } from "evloop";

const TOKEN = 7;

if (!isMainThread) {
  const { handle, readFd, writeFd } = workerData;
  Registrator.fromHandle(handle).register(readFd, TOKEN, Interest.READABLE);
  for (const word of ["one", "two", "three"]) {
    writeSync(writeFd, word + "\n");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  parentPort.postMessage("sent");
} else {
  const reactor = await Reactor.start({ capacity: 1024 });
  const [reader, writer] = Pipe.create();
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { handle: reactor.registratorHandle, readFd: reader.fd, writeFd: writer.fd },
  });
  const buf = Buffer.alloc(256);
  let lines = 0;
  for await (const event of reactor) {
    if (event.token !== TOKEN || !event.isReadable) continue;
    // Edge-triggered: read until the pipe would block, then re-arm (needed on poll(2)).
    for (;;) {
      let n;
      try {
        n = readSync(reader.fd, buf);
      } catch (e) {
        if (e.code === "EAGAIN") break;
        throw e;
      }
      const text = buf.subarray(0, n).toString();
      process.stdout.write(`read on the main thread: ${text}`);
      lines += text.split("\n").length - 1;
    }
    if (lines === 3) break;
    reactor.registrator().reregister(reader.fd, TOKEN, Interest.READABLE);
  }
  reactor.registrator().deregister(reader.fd);
  await reactor.close();
  await worker.terminate();
  await reader.close();
  await writer.close();
}
