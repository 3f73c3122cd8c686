/**
 * A Worker for worker-pipe.test.mjs: in owner mode (`runMain`), connects a NamedPipe to the
 * name in workerData, writes "hi", reports, and then waits until terminated, its pipe open.
 */
import { parentPort, workerData } from "node:worker_threads";
import { NamedPipe, runMain } from "evloop";

await runMain(async () => {
  const pipe = await NamedPipe.connect({ name: workerData.name, timeout: 10_000 });
  await pipe.writeAll(new TextEncoder().encode("hi"));
  parentPort.postMessage("connected");
  const loop = pipe.loop;
  for (;;) await loop.sleep(60_000);
});
