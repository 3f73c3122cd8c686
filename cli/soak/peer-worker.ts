/**
 * The Worker side of `peer.ts`: the soak's servers on a loop of their own in owner mode, until
 * the host sets the stop flag. Their failures (an echo that saw corrupt data cannot, but an
 * unexpected error can) go back to the host with the "done" message.
 */
import { parentPort, workerData } from "node:worker_threads";
import { createLoop, runMain } from "evloop";
import { newCounters, Phase } from "./common.js";
import type { PeerData, PeerMessage } from "./peer.js";
import { startServers } from "./servers.js";

const data = workerData as PeerData;
const post = (m: PeerMessage): void => parentPort!.postMessage(m);
const stopFlag = new Int32Array(data.ctl);
const counters = newCounters();
const loop = createLoop({ backend: data.backend, guest: false });
const phase = new Phase(loop, `servers/${data.mode}`, counters, new Uint8Array(0), false);

try {
  await runMain(
    async () => {
      const servers = await startServers(phase, data.dir, data.seed);
      post({ type: "ready", addresses: servers.addresses });
      while (Atomics.load(stopFlag, 0) === 0) await loop.sleep(20);
      const stopped = servers.stop().then(() => true);
      const timer = new AbortController();
      const late = loop.sleep(10_000, { signal: timer.signal }).then(() => false, () => false);
      if (!(await Promise.race([stopped, late]))) {
        phase.fail("stuck: the servers did not end within 10 s of being closed");
        phase.forced = true;
        for (const h of [...phase.handles]) await phase.close(h);
      }
      timer.abort();
      await late;
    },
    { loop },
  );
} catch (e) {
  phase.unexpected(e, "servers");
} finally {
  loop.dispose();
}
post({ type: "done", failures: counters.failures });
