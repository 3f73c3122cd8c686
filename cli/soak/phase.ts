/**
 * One phase of a backend's soak: a fresh loop in one driver mode (guest, or owner under
 * `runMain`), the servers, every lane running until the phase's time is up, then everything
 * closed and the loop disposed.
 *
 * Every wait is bounded. Operations that must complete carry the stuck limit as their timeout;
 * the phase as a whole gets {@link OVERRUN_S} seconds after its time is up to wind down, after
 * which the lanes still running are reported (with what each was doing) and their handles are
 * closed by force, which rejects whatever waits on them. The timers are the loop's own
 * (`loop.sleep`), which run in owner mode too. A blocking backend's operation that never returns
 * is beyond any timer in its thread; the parent process bounds each child for that.
 */
import { createLoop, runMain, TcpStream, UnixStream, type BackendName, type EventLoop } from "evloop";
import { Phase, prngFor, SoakFailure, type Counters } from "./common.js";
import { fdPassingLane, udpLane, unixDatagramLane } from "./datagrams.js";
import { startPeer } from "./peer.js";
import { startServers, type ServerAddresses } from "./servers.js";
import { streamLane } from "./streams.js";

/** Seconds a phase may overrun its time before its lanes count as stuck. */
export const OVERRUN_S = 30;

/** What a phase needs to know. */
export interface PhaseConfig {
  readonly backend: BackendName;
  readonly mode: "warm-up" | "guest" | "owner";
  readonly seconds: number;
  readonly seed: number;
  /** The run's temp dir (Unix sockets). */
  readonly dir: string;
  readonly corpus: Uint8Array;
  /** Called every so often while the phase runs (on the loop's timer). */
  readonly sample: (phase: Phase) => void;
  readonly intervalMs: number;
}

interface Lane {
  readonly name: string;
  run(): Promise<void>;
}

/** Whether `p` settles within `ms` on `loop`'s clock. */
async function within(loop: EventLoop, p: Promise<unknown>, ms: number): Promise<boolean> {
  const stop = new AbortController();
  const timer = loop.sleep(ms, { signal: stop.signal }).then(
    () => false,
    () => false,
  );
  try {
    return await Promise.race([p.then(() => true), timer]);
  } finally {
    stop.abort();
  }
}

/** The lanes of a phase; where operations block the thread, one of each kind is enough. */
function makeLanes(phase: Phase, addresses: ServerAddresses, seed: number): Lane[] {
  const loop = phase.loop;
  const few = phase.blocking;
  const lanes: Lane[] = [];
  let index = 0;
  const add = (count: number, kind: string, run: (name: string, i: number) => Promise<void>): void => {
    for (let k = 0; k < (few ? Math.min(1, count) : count); k++) {
      const i = index++;
      const name = `${kind}#${k}`;
      lanes.push({ name, run: () => run(name, i) });
    }
  };
  const rand = (i: number) => prngFor(seed, 7, i);
  add(4, "tcp4", (name, i) => streamLane(phase, name, rand(i), (o) => TcpStream.connect({ host: "127.0.0.1", port: addresses.tcp4, loop, ...o })));
  const { tcp6, udp6 } = addresses;
  if (tcp6 !== null) add(2, "tcp6", (name, i) => streamLane(phase, name, rand(i), (o) => TcpStream.connect({ host: "::1", port: tcp6, loop, ...o })));
  add(3, "unix", (name, i) => streamLane(phase, name, rand(i), (o) => UnixStream.connect({ path: addresses.unix, loop, ...o })));
  add(2, "udp4", (name, i) => udpLane(phase, name, i, rand(i), "127.0.0.1", addresses.udp4));
  if (udp6 !== null) add(1, "udp6", (name, i) => udpLane(phase, name, i, rand(i), "::1", udp6));
  add(2, "unix-dgram", (name, i) => unixDatagramLane(phase, name, i, rand(i)));
  add(2, "scm-rights", (name, i) => fdPassingLane(phase, name, i, rand(i)));
  return lanes;
}

/** Runs a lane; its failure is recorded and ends that lane only. */
async function runLane(phase: Phase, lane: Lane): Promise<void> {
  try {
    await lane.run();
  } catch (e) {
    if (e instanceof SoakFailure) return;
    if (phase.forced && (e as { code?: unknown }).code === "EBADF") phase.count(e);
    else phase.unexpected(e, lane.name);
  }
}

/** Closes every handle still open, which rejects whatever waits on them. */
async function closeAll(phase: Phase): Promise<void> {
  phase.forced = true;
  for (const h of [...phase.handles]) await phase.close(h);
}

async function phaseBody(phase: Phase, config: PhaseConfig, peer: ServerAddresses | null): Promise<void> {
  const loop = phase.loop;
  const servers = peer === null ? await startServers(phase, config.dir, config.seed) : null;
  const stopTimers = new AbortController();
  const sampling = (async () => {
    for (;;) {
      await loop.sleep(config.intervalMs, { signal: stopTimers.signal });
      config.sample(phase);
    }
  })().catch(() => {});
  const deadline = loop.sleep(config.seconds * 1000, { signal: stopTimers.signal }).then(
    () => {
      phase.stopping = true;
    },
    () => {},
  );
  try {
    const running = Promise.all(makeLanes(phase, servers?.addresses ?? peer!, config.seed).map((lane) => runLane(phase, lane)));
    if (!(await within(loop, running, (config.seconds + OVERRUN_S) * 1000))) {
      const doing = [...phase.doing].map(([lane, what]) => `${lane} (${what})`).join("; ");
      phase.fail(`stuck: lanes still running ${OVERRUN_S} s after the phase's time was up: ${doing}`);
      await closeAll(phase);
      if (!(await within(loop, running, 5000))) phase.fail("stuck: lanes did not end even after their handles were closed");
    }
    if (servers && !(await within(loop, servers.stop(), 10_000))) {
      phase.fail("stuck: the servers did not end within 10 s of being closed");
    }
  } finally {
    stopTimers.abort();
    await closeAll(phase);
    await Promise.all([sampling, deadline, ...phase.timers]);
  }
}

/**
 * Runs one phase on a fresh loop of `config.backend` and disposes of the loop, adding to
 * `counters`. On the blocking backend the servers run in a Worker on another backend.
 */
export async function runPhase(config: PhaseConfig, counters: Counters, peerBackend: BackendName | null): Promise<void> {
  const blocking = config.backend === "blocking";
  let peer = null;
  if (blocking) {
    if (peerBackend === null) throw new Error("the blocking backend's soak needs another backend for its servers' thread");
    peer = await startPeer({ backend: peerBackend, dir: config.dir, seed: config.seed, mode: config.mode });
  }
  try {
    const loop = createLoop({ backend: config.backend, guest: config.mode !== "owner" });
    const phase = new Phase(loop, config.mode, counters, config.corpus, blocking);
    try {
      const body = (): Promise<void> => phaseBody(phase, config, peer?.addresses ?? null);
      if (config.mode === "owner") await runMain(body, { loop });
      else await body();
    } finally {
      loop.dispose();
    }
  } finally {
    if (peer) for (const f of await peer.stop()) counters.failures.push(`peer: ${f}`);
  }
}
