/**
 * The blocking backend's servers, in a Worker (`peer-worker.ts`) on another backend in owner
 * mode: an operation of the blocking backend holds its thread until it completes, so a server on
 * that thread could never answer the client that holds it.
 *
 * The worker is told to stop through shared memory it polls on its own loop's timer (its thread
 * sits in the kernel between iterations, where a message would wait), and every wait here is
 * bounded by Node's timers: this side runs between phases, outside any evloop loop.
 */
import { Worker } from "node:worker_threads";
import type { BackendName } from "evloop";
import type { ServerAddresses } from "./servers.js";

/** What peer-worker.ts gets as workerData. */
export interface PeerData {
  readonly backend: BackendName;
  readonly dir: string;
  readonly seed: number;
  readonly mode: string;
  /** Int32 [0]: set to 1 to stop. */
  readonly ctl: SharedArrayBuffer;
}

/** What the worker posts: its servers' addresses once they listen, then its failures. */
export type PeerMessage = { readonly type: "ready"; readonly addresses: ServerAddresses } | { readonly type: "done"; readonly failures: string[] };

/** A running peer. */
export interface Peer {
  readonly addresses: ServerAddresses;
  /** Stops the servers and the worker; resolves with the failures the servers recorded. */
  stop(): Promise<string[]>;
}

const READY_MS = 10_000;
const STOP_MS = 30_000;

/** Starts the servers in a Worker on `backend`. */
export async function startPeer(options: { backend: BackendName; dir: string; seed: number; mode: string }): Promise<Peer> {
  const ctl = new SharedArrayBuffer(4);
  const data: PeerData = { ...options, ctl };
  const worker = new Worker(new URL("./peer-worker.js", import.meta.url), { workerData: data });
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  const next = (ms: number, what: string): Promise<PeerMessage> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(() => reject(new Error(`the servers' worker did not ${what} within ${ms} ms`))), ms);
      const done = (settle: () => void): void => {
        clearTimeout(timer);
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
        settle();
      };
      const onMessage = (m: PeerMessage): void => done(() => resolve(m));
      const onError = (e: Error): void => done(() => reject(e));
      const onExit = (code: number): void => done(() => reject(new Error(`the servers' worker exited with code ${code} before it could ${what}`)));
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.on("exit", onExit);
    });
  const ready = await next(READY_MS, "listen").catch(async (e: unknown) => {
    await worker.terminate();
    throw e;
  });
  if (ready.type !== "ready") {
    await exited;
    throw new Error(`the servers' worker ended before it listened: ${ready.failures.join("; ")}`);
  }
  return {
    addresses: ready.addresses,
    async stop() {
      Atomics.store(new Int32Array(ctl), 0, 1);
      try {
        const m = await next(STOP_MS, "stop");
        return m.type === "done" ? m.failures : [`the servers' worker said ${m.type} instead of done`];
      } catch (e) {
        await worker.terminate();
        return [`stuck: ${e instanceof Error ? e.message : String(e)}`];
      } finally {
        await exited;
      }
    },
  };
}
