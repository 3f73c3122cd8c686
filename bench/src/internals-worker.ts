/**
 * The far side of the wake-up benchmark in `internals.ts`: a Worker that blocks in its own
 * `Poll` and ping-pongs with the main thread, whose loop blocks in `run(true)`. A ping is
 * `Waker.fromHandle(loop.interruptHandle).wake()`; the reply wakes this thread's own `Waker`.
 * Both threads therefore sleep in the kernel between messages, which is what is measured.
 *
 * The counters live in a SharedArrayBuffer, so a spurious wake-up on either side is recognised
 * (no new count) instead of being taken for a message. Lifetime rule: this thread closes its
 * waker only after the main thread set STOP (or, if the main thread went silent, after
 * `giveUpMs`), and raises EXITING first, so the main thread never writes to a closed or reused
 * fd number while the protocol is followed.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { Events, Poll, Waker, type SelectorName, type WakerHandle } from "evloop";

/** Slots of the shared Int32Array. */
export const SLOT = {
  /** Pings sent by the worker. */
  PINGS: 0,
  /** Replies sent by the main thread; the first one is the "go". */
  REPLIES: 1,
  /** Set by the main thread when the run is over. */
  STOP: 2,
  /** Set by the worker just before it closes its waker. */
  EXITING: 3,
} as const;

/** Number of Int32 slots in the shared buffer. */
export const SLOT_COUNT = 4;

/** What the main thread passes as `workerData`. */
export interface WakeupWorkerData {
  readonly kind: "evloop-bench-wakeup";
  /** Selector of the worker's own Poll; without one, `Poll`'s default. */
  readonly selector?: SelectorName;
  /** The main loop's `interruptHandle`. */
  readonly target: WakerHandle;
  /** SLOT_COUNT Int32 slots. */
  readonly shared: SharedArrayBuffer;
  /** Pings to send at most. */
  readonly trips: number;
  /** The worker gives up waiting for the main thread after this long (ms). */
  readonly giveUpMs: number;
}

/** The worker's first and only message: the handle of the waker that receives replies. */
export interface WakeupReady {
  readonly kind: "ready";
  readonly handle: WakerHandle;
}

const WAKER_TOKEN = 1;

/** Whether `value` is a {@link WakeupWorkerData}. */
export function isWakeupWorkerData(value: unknown): value is WakeupWorkerData {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Partial<WakeupWorkerData>;
  return v.kind === "evloop-bench-wakeup" && v.shared instanceof SharedArrayBuffer && Number.isInteger(v.trips) && typeof v.giveUpMs === "number";
}

/**
 * Runs the worker's side of the ping-pong on the calling thread (a Worker: it blocks).
 *
 * @param data What the main thread sent.
 * @param post Sends the {@link WakeupReady} message to the main thread.
 */
export function runWakeupWorker(data: WakeupWorkerData, post: (message: WakeupReady) => void): void {
  const counters = new Int32Array(data.shared);
  const poll = new Poll(data.selector);
  const events = new Events(4);
  let waker: Waker | null = null;
  try {
    waker = new Waker(poll.registry, WAKER_TOKEN);
    const target = Waker.fromHandle(data.target);
    post({ kind: "ready", handle: waker.handle });
    const giveUp = performance.now() + data.giveUpMs;
    let sent = 0;
    // Bounded: each pass sends a ping (at most `trips`), stops, or blocks at most 1 s and
    // checks the give-up deadline.
    for (;;) {
      if (Atomics.load(counters, SLOT.STOP) !== 0) break;
      if (sent < data.trips && Atomics.load(counters, SLOT.REPLIES) > sent) {
        sent++;
        Atomics.store(counters, SLOT.PINGS, sent);
        target.wake();
        continue;
      }
      if (performance.now() > giveUp) break;
      poll.poll(events, 1000);
    }
  } finally {
    Atomics.store(counters, SLOT.EXITING, 1);
    waker?.close();
    poll.close();
  }
}

if (!isMainThread && parentPort !== null) {
  const data: unknown = workerData;
  const port = parentPort;
  if (isWakeupWorkerData(data)) runWakeupWorker(data, (message) => port.postMessage(message));
}
