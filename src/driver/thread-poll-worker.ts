/**
 * The helper thread of `thread-poll.ts`: blocks in poll(2) on the fds the guest loop names, and
 * tells the loop's thread when one is ready.
 *
 * It repeats: wait for its turn (`ctl[TURN]` = 0); take the watch set if it changed; poll the
 * wake-up fd and the set with no timeout; drain the wake-up fd if it fired; if a watched fd is
 * ready (or the loop's thread asked for a wake-up, `CTL.KICK`), give the turn to the loop's thread (`ctl[TURN]` = 1) and wake it (`thread-poll.ts` says
 * how). The loop's thread runs one iteration and gives the turn back, so the helper never polls
 * a set the loop is changing under it without being woken, and never reports readiness the loop
 * has not yet had a chance to take (poll is level-triggered: polling again at once would spin).
 * It ends when `ctl[STOP]` is set (the loop's thread also writes the wake-up fd then).
 */
import { receiveMessageOnPort, workerData, type MessagePort } from "node:worker_threads";
import { read as readFd } from "../sys/posix/fd.js";
import { poll, pollRevents, setPollFd, POLLFD_SIZE } from "../sys/posix/poll.js";
import { C } from "../sys/target.js";
import { CTL, SET_HEADER, WAKE_CALLBACK, WAKE_MESSAGE, type ThreadPollData } from "./thread-poll-shared.js";
import { ffi } from "../ffi/runtime/load.js";

const data = workerData as ThreadPollData;
const ctl = new Int32Array(data.ctl);
const port: MessagePort = data.port;
let set = new Int32Array(data.set);
let version = -1;
/** Entry 0 is the wake-up fd; then the watched fds. */
let count = 1;
let fds = new Uint8Array(POLLFD_SIZE * 16);
let view = new DataView(fds.buffer);
const scratch = new Uint8Array(64);

const wakeMain: () => void = (() => {
  if (data.wake === WAKE_MESSAGE) return () => port.postMessage(null);
  if (data.wake === WAKE_CALLBACK) {
    // The loop's thread made a thread-safe native callback (Bun's JSCallback with
    // `threadsafe`, Deno's UnsafeCallback.threadSafe): calling it from here queues its call on
    // that thread's event loop.
    const call = ffi.functionAt(data.callback, { result: "void", params: [] });
    return () => call();
  }
  return () => {
    Atomics.add(ctl, CTL.SIGNAL, 1);
    Atomics.notify(ctl, CTL.SIGNAL);
  };
})();

/** Copies the watch set the loop's thread published (a seqlock: retried if it changes meanwhile). */
function takeSet(): void {
  for (;;) {
    const before = Atomics.load(ctl, CTL.VERSION);
    if (before === version) return;
    if (before & 1) continue; // being written
    // A bigger set comes in a new buffer, posted before the version that names it.
    while (Atomics.load(ctl, CTL.SET_ID) !== set[0]) {
      const got = receiveMessageOnPort(port);
      if (got !== undefined) set = new Int32Array(got.message as SharedArrayBuffer);
    }
    const n = set[1]!;
    if (POLLFD_SIZE * (n + 1) > fds.byteLength) {
      fds = new Uint8Array(POLLFD_SIZE * (n + 1) * 2);
      view = new DataView(fds.buffer);
    }
    setPollFd(view, 0, data.wakeFd, C.POLLIN);
    for (let i = 0; i < n; i++) setPollFd(view, i + 1, set[SET_HEADER + 2 * i]!, set[SET_HEADER + 2 * i + 1]!);
    if (Atomics.load(ctl, CTL.VERSION) !== before) continue;
    version = before;
    count = n + 1;
    return;
  }
}

function drainWake(): void {
  // Until it would block (a pipe whose write end is gone reads 0: nothing more to drain either).
  while (readFd(data.wakeFd, scratch) > 0);
}

Atomics.store(ctl, CTL.ONLINE, 1);
Atomics.notify(ctl, CTL.ONLINE);

for (;;) {
  if (Atomics.load(ctl, CTL.STOP) === 1) break;
  if (Atomics.load(ctl, CTL.TURN) === 1) {
    Atomics.wait(ctl, CTL.TURN, 1);
    continue;
  }
  takeSet();
  let ready: number;
  try {
    ready = poll(fds, count, -1);
  } catch (e) {
    // poll itself failed (ENOMEM): say so to the loop's thread, which stops the guest driver.
    port.postMessage({ error: e instanceof Error ? e.message : String(e) });
    break;
  }
  if (ready <= 0) continue; // EINTR
  let watched = false;
  if (pollRevents(view, 0) !== 0) {
    drainWake();
    // The loop's thread has work to run after the host's turn: report as if an fd were ready.
    if (Atomics.exchange(ctl, CTL.KICK, 0) === 1) watched = true;
  }
  for (let i = 1; i < count; i++) {
    const revents = pollRevents(view, i);
    if (revents === 0) continue;
    watched = true;
    // An fd closed while watched reports POLLNVAL at once, every time: leave it out of this
    // copy of the set (the loop's thread is told once; its next set replaces the copy).
    if (revents & C.POLLNVAL) setPollFd(view, i, -1, 0);
  }
  if (!watched || Atomics.load(ctl, CTL.STOP) === 1) continue;
  Atomics.store(ctl, CTL.TURN, 1);
  wakeMain();
}
