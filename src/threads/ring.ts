/**
 * The event ring: a single-producer, single-consumer queue of ready events in a
 * SharedArrayBuffer, from the reactor thread (producer) to the thread that owns the reactor
 * (consumer). No message per event: the producer publishes a batch by storing the tail index,
 * and wakes the consumer only when it said it waits (`CTL.CONSUMER_WAITING`).
 *
 * Each slot is three Uint32s: the token's low and high 32 bits (tokens go up to 2^48) and the
 * readiness bits. HEAD and TAIL count slots modulo 2 × capacity, so a full ring (tail − head =
 * capacity) and an empty one (tail = head) differ for any capacity. The slot words are plain
 * reads and writes; the Atomics store of TAIL (producer) and of HEAD (consumer) orders them.
 *
 * Backpressure: when the ring is full the producer publishes what it has, sets
 * `CTL.PRODUCER_WAITING` and blocks in `Atomics.wait` on HEAD until the consumer frees slots or
 * the reactor is closing. No event is dropped; the kernel keeps later readiness meanwhile.
 */
import { CTL, STATE } from "./shared.js";

/** Uint32 words per slot: token low, token high, readiness. */
export const SLOT_WORDS = 3;

/** Bytes of ring storage for `capacity` events. */
export function ringBytes(capacity: number): number {
  return capacity * SLOT_WORDS * 4;
}

const TWO_32 = 0x1_0000_0000;

/** The reactor thread's end: `push` events, then `publish` the batch. */
export class RingProducer {
  readonly #ctl: Int32Array;
  readonly #slots: Uint32Array;
  readonly #capacity: number;
  readonly #wrap: number;
  readonly #wakeOwner: () => void;
  /** The next slot to write (not yet published). */
  #tail: number;
  /** The consumer's head as last read. */
  #head: number;

  constructor(ctl: Int32Array, ring: SharedArrayBuffer, capacity: number, wakeOwner: () => void) {
    this.#ctl = ctl;
    this.#slots = new Uint32Array(ring);
    this.#capacity = capacity;
    this.#wrap = 2 * capacity;
    this.#wakeOwner = wakeOwner;
    this.#tail = Atomics.load(ctl, CTL.TAIL);
    this.#head = Atomics.load(ctl, CTL.HEAD);
  }

  /**
   * Appends one event, waiting for room when the ring is full. Returns false, having written
   * nothing, when the reactor is closing.
   */
  push(token: number, readiness: number): boolean {
    while (this.#used() === this.#capacity) {
      this.#head = Atomics.load(this.#ctl, CTL.HEAD);
      if (this.#used() < this.#capacity) break;
      if (!this.#waitForRoom()) return false;
    }
    const at = (this.#tail % this.#capacity) * SLOT_WORDS;
    this.#slots[at] = token % TWO_32;
    this.#slots[at + 1] = Math.floor(token / TWO_32);
    this.#slots[at + 2] = readiness;
    this.#tail = (this.#tail + 1) % this.#wrap;
    return true;
  }

  /** Makes the pushed events visible, and wakes the owner if it waits for them. */
  publish(): void {
    if (Atomics.load(this.#ctl, CTL.TAIL) === this.#tail) return;
    // SAFETY (ordering): this seq-cst store publishes the slot writes above it; the consumer's
    // load of TAIL that sees it happens after them.
    Atomics.store(this.#ctl, CTL.TAIL, this.#tail);
    if (Atomics.load(this.#ctl, CTL.CONSUMER_WAITING) !== 0) {
      Atomics.store(this.#ctl, CTL.CONSUMER_WAITING, 0);
      this.#wakeOwner();
    }
  }

  #used(): number {
    return (this.#tail - this.#head + this.#wrap) % this.#wrap;
  }

  /** Blocks until the owner takes events; false when the reactor is closing instead. */
  #waitForRoom(): boolean {
    // What is written must be visible before we sleep, or the owner would wait for us forever.
    this.publish();
    Atomics.add(this.#ctl, CTL.FULL_WAITS, 1);
    Atomics.store(this.#ctl, CTL.PRODUCER_WAITING, 1);
    const head = this.#head;
    // Check after announcing the wait: a consumer that moved HEAD before seeing the flag has
    // changed it, and Atomics.wait then returns at once ("not-equal").
    while (Atomics.load(this.#ctl, CTL.STATE) === STATE.OPEN && Atomics.load(this.#ctl, CTL.HEAD) === head) {
      Atomics.wait(this.#ctl, CTL.HEAD, head);
    }
    Atomics.store(this.#ctl, CTL.PRODUCER_WAITING, 0);
    this.#head = Atomics.load(this.#ctl, CTL.HEAD);
    return Atomics.load(this.#ctl, CTL.STATE) === STATE.OPEN;
  }
}

/** The owner's end: `take` copies out every published event and frees their slots at once. */
export class RingConsumer {
  readonly #ctl: Int32Array;
  readonly #slots: Uint32Array;
  readonly #capacity: number;
  readonly #wrap: number;
  #head: number;

  constructor(ctl: Int32Array, ring: SharedArrayBuffer, capacity: number) {
    this.#ctl = ctl;
    this.#slots = new Uint32Array(ring);
    this.#capacity = capacity;
    this.#wrap = 2 * capacity;
    this.#head = Atomics.load(ctl, CTL.HEAD);
  }

  /** The published tail, to wait on while it equals the head (`Atomics.waitAsync`). */
  get tail(): number {
    return Atomics.load(this.#ctl, CTL.TAIL);
  }

  /** Whether no published event is waiting. */
  get isEmpty(): boolean {
    return Atomics.load(this.#ctl, CTL.TAIL) === this.#head;
  }

  /** Calls `sink` with each published event in order, then frees their slots; returns the count. */
  take(sink: (token: number, readiness: number) => void): number {
    const tail = Atomics.load(this.#ctl, CTL.TAIL);
    let n = 0;
    for (let i = this.#head; i !== tail; i = (i + 1) % this.#wrap, n++) {
      const at = (i % this.#capacity) * SLOT_WORDS;
      sink(this.#slots[at]! + this.#slots[at + 1]! * TWO_32, this.#slots[at + 2]!);
    }
    if (n === 0) return 0;
    this.#head = tail;
    Atomics.store(this.#ctl, CTL.HEAD, tail);
    if (Atomics.load(this.#ctl, CTL.PRODUCER_WAITING) !== 0) Atomics.notify(this.#ctl, CTL.HEAD);
    return n;
  }
}
