/**
 * A stand-in for the IOCP loop as the drivers see it (`Drivable` with a `RemoteWait`), on a bare
 * completion port, for the guest driver's tests: `run(false)` takes the batch the helper thread
 * published, records each packet's completion key, and hands the entries back (state[0] = 0).
 * Packets whose key is WAKE_KEY only wake. Its dispose stops the helper itself and waits until
 * the helper says it stopped (state[2]), as the IOCP loop does, unless made with
 * `stopsHelper: false`.
 */
import { windows } from "../../dist/sys/windows/api.js";
import { heapFree, nativeBlock } from "../../dist/sys/windows/memory.js";

/** The key of wake-up packets. */
export const WAKE_KEY = 1;
const ENTRY_SIZE = 32;

export class FakeIocpLoop {
  backend = "iocp";
  guest = false;
  hasDeferred = false;
  hasRefedWork = false;
  nextDeadline = undefined;
  /** Keys of the packets taken, in order. */
  received = [];
  wakes = 0;
  runs = 0;
  /** Nothing pending: run() returns at once without taking the batch, as the core's run does. */
  idle = false;
  remoteWaitCalls = 0;
  wakeOnCalls = [];
  /** state[1] as seen at the points of dispose: in the dispose listeners, after "release". */
  stopSeen = { listeners: -1, release: -1 };
  /** Whether the helper said it stopped (state[2]) within the loop's stop, as the loop waits for it. */
  helperStopped = false;
  #changeListeners = new Set();
  #disposeListeners = [];
  #waiters = [];
  #disposed = false;

  constructor({ capacity = 8, stopsHelper = true } = {}) {
    const { kernel32 } = windows();
    this.port = kernel32.CreateIoCompletionPort(-1n, 0n, 0, 0);
    if (this.port === 0n) throw new Error(`CreateIoCompletionPort failed: ${kernel32.GetLastError()}`);
    this.block = nativeBlock(ENTRY_SIZE * capacity);
    this.state = new Int32Array(new SharedArrayBuffer(16));
    this.capacity = capacity;
    this.stopsHelper = stopsHelper;
  }

  remoteWait() {
    this.remoteWaitCalls++;
    return { port: this.port, entries: this.block.address, capacity: this.capacity, state: this.state, wakeKey: WAKE_KEY };
  }

  /** Posts a packet with `key` to the port (from this thread). */
  post(key) {
    const { kernel32 } = windows();
    if (kernel32.PostQueuedCompletionStatus(this.port, 0, Number(key), 0n) === 0) throw new Error(`PostQueuedCompletionStatus failed: ${kernel32.GetLastError()}`);
  }

  run(_blocking) {
    this.runs++;
    // As the completion core: a loop with nothing pending does not wait, so takes nothing.
    if (this.idle) return false;
    const n = Atomics.load(this.state, 0);
    for (let i = 0; i < n; i++) {
      const key = this.block.view.getBigUint64(i * ENTRY_SIZE, true);
      if (key === BigInt(WAKE_KEY)) this.wakes++;
      else this.received.push(key);
    }
    if (n > 0) {
      Atomics.store(this.state, 0, 0);
      Atomics.notify(this.state, 0);
    }
    for (const w of this.#waiters.splice(0)) {
      if (this.received.length >= w.count) w.resolve();
      else this.#waiters.push(w);
    }
    return n > 0;
  }

  /**
   * Resolves once `count` packets were taken; rejects after `ms`. Its timer does not keep the
   * process alive: whether something else does is what some tests check.
   */
  until(count, ms = 10_000) {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${this.received.length} of ${count} packets reached run(false) within ${ms} ms`)), ms);
      timer.unref();
      this.#waiters.push({ count, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  watch() {}
  wakeOn(fd) {
    this.wakeOnCalls.push(fd);
  }
  ownFds() {
    return [];
  }
  onChange(listener) {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }
  changed() {
    for (const l of this.#changeListeners) l();
  }
  onDispose(listener) {
    this.#disposeListeners.push(listener);
  }

  /** As the loop's dispose: listeners, then "release" (stopping the helper, unless told not to). */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const l of this.#disposeListeners.splice(0)) l();
    this.stopSeen.listeners = Atomics.load(this.state, 1);
    if (this.stopsHelper && Atomics.compareExchange(this.state, 1, 0, 1) === 0) {
      Atomics.notify(this.state, 0);
      this.post(WAKE_KEY);
      // As the IOCP loop: the entries may be freed only once the helper has said it stopped.
      Atomics.wait(this.state, 2, 0, 5000);
      this.helperStopped = Atomics.load(this.state, 2) === 1;
    }
    this.stopSeen.release = Atomics.load(this.state, 1);
  }

  /** Frees the port and the entries; only once the helper thread has exited. */
  free() {
    windows().kernel32.CloseHandle(this.port);
    heapFree(this.block.address);
  }
}
