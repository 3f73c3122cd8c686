/**
 * What `thread-poll.ts` and its helper thread (`thread-poll-worker.ts`) share: the layout of the
 * control words, the watch set's header, and the data the helper starts with.
 */
import type { MessagePort } from "node:worker_threads";

/** Indices in the control words (an Int32Array over a SharedArrayBuffer). */
export const CTL = {
  /** 0: the helper's turn to poll; 1: the loop's thread's turn to run an iteration. */
  TURN: 0,
  /** 1 once the helper must end. */
  STOP: 1,
  /** The watch set's version: odd while the loop's thread writes it (a seqlock). */
  VERSION: 2,
  /** The id of the buffer that holds the current set (a bigger set comes in a new buffer). */
  SET_ID: 3,
  /** Counted up and notified by the helper when the wake-up is `atomics`. */
  SIGNAL: 4,
  /** Set to 1 and notified by the helper once it has loaded and is about to poll. */
  ONLINE: 5,
  /** Set to 1 by the loop's thread (then the wake-up fd written): report a wake-up even if no fd is ready. */
  KICK: 6,
} as const;

/** Int32s in the control buffer. */
export const CTL_WORDS = 8;

/** A set buffer: [id, count, then (fd, poll events) pairs]. */
export const SET_HEADER = 2;

/** How the helper wakes the loop's thread (see `thread-poll.ts`). */
export const WAKE_MESSAGE = "message";
export const WAKE_ATOMICS = "atomics";
export const WAKE_CALLBACK = "callback";
export type WakeKind = typeof WAKE_MESSAGE | typeof WAKE_ATOMICS | typeof WAKE_CALLBACK;

/** The helper's workerData. */
export interface ThreadPollData {
  readonly ctl: SharedArrayBuffer;
  readonly set: SharedArrayBuffer;
  /**
   * The helper's end of a channel: bigger set buffers come in on it, and the `message` wake-up
   * and failures go out on it (a port, not the Worker's parent port: Bun keeps the process
   * alive while an unref'd Worker has a `message` listener, not so an unref'd port).
   */
  readonly port: MessagePort;
  /** The read end of the wake-up fd the loop's thread writes when the set changes or at stop. */
  readonly wakeFd: number;
  readonly wake: WakeKind;
  /** The thread-safe callback's address, when `wake` is `callback`. */
  readonly callback: bigint;
}
