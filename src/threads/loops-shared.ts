/**
 * What `spawnLoops` (loops.ts, the parent's side) and `loopThread` (loop-thread.ts, a Worker's
 * side) agree on: the envelope each Worker's `workerData` is, and the messages on its ports.
 */
import type { MessagePort } from "node:worker_threads";

/** The key that marks a Worker's `workerData` as spawnLoops' envelope. */
export const ENVELOPE = "evloop.loopThread";

/**
 * A loop thread's `workerData`: who it is, its ports, and the caller's own `workerData`.
 *
 * @example
 * ```ts
 * const envelope: LoopEnvelope = { [ENVELOPE]: 1, index: 0, count: 2, control, peers, data: null };
 * ```
 */
export interface LoopEnvelope {
  readonly [ENVELOPE]: 1;
  /** This thread's place among its group, from 0. */
  readonly index: number;
  /** How many threads the group has. */
  readonly count: number;
  /** To and from the parent: `ready` up, `stop` down. */
  readonly control: MessagePort;
  /** A port to each other thread of the group, by index (null at the thread's own). */
  readonly peers: readonly (MessagePort | null)[];
  /** The `workerData` given to spawnLoops. */
  readonly data: unknown;
}

/**
 * The messages on a control port and between peers.
 *
 * @example
 * ```ts
 * control.postMessage({ type: "stop" } satisfies LoopMessage);
 * ```
 */
export type LoopMessage =
  | { readonly type: "ready" }
  | { readonly type: "stop" }
  | { readonly type: "hand-off"; readonly fd: number; readonly info: unknown };

/**
 * Whether `value` is spawnLoops' envelope.
 *
 * @example
 * ```ts
 * if (!isEnvelope(workerData)) throw new Error("not a loop thread");
 * ```
 */
export function isEnvelope(value: unknown): value is LoopEnvelope {
  return value !== null && typeof value === "object" && (value as Record<string, unknown>)[ENVELOPE] === 1;
}

/**
 * Whether `value` is one of the messages above, of kind `type`.
 *
 * @example
 * ```ts
 * port.on("message", (m) => { if (isMessage(m, "stop")) stop(); });
 * ```
 */
export function isMessage<T extends LoopMessage["type"]>(value: unknown, type: T): value is Extract<LoopMessage, { type: T }> {
  return value !== null && typeof value === "object" && (value as { type?: unknown }).type === type;
}
