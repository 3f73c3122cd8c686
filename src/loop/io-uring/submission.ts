/**
 * The ring as the io_uring loop uses it: request slots (what each in-flight user_data refers
 * to) with their native scratch memory, claiming SQEs, submitting, and reaping CQEs.
 *
 * A request's user_data is `(tag << 32) | slot`: the slot indexes {@link Submission.entries},
 * which keeps the request's record — and so every buffer it holds — referenced until its CQE
 * has arrived; the tag says what kind of request it is (see `Tag`).
 */
import { sqeFaults } from "../../sys/faults.js";
import { ERRNO } from "../../sys/linux/constants.js";
import { CQE_WORDS, NativeBlock, type Ring } from "../../sys/linux/io_uring.js";
import { SYSCALL, Kind } from "../operation.js";
import { Source, Tag, UringOp, type SlotEntry } from "./records.js";

/** One slot's native scratch memory: its address and views over its bytes. */
export interface Scratch {
  readonly address: number;
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

// Per-slot native scratch: the sockaddr (connect), the message block (sendTo/receiveFrom) and
// the timespec of a link timeout or deadline. Slots are grouped in blocks so a slot's scratch
// never moves.
const SCRATCH_SIZE = 256;
/** Where in a slot's scratch its timespec goes. */
export const SCRATCH_TIMESPEC = 224;
const SLOTS_PER_BLOCK = 1024;

/** What the loop does with the ring's completions. */
export interface CompletionHandler {
  /** A CQE for the request in a slot. */
  completed(entry: SlotEntry, res: number, flags: number): void;
  /** The CQE of the poll on the wake-up fd. */
  woken(): void;
  /** The CQE of the poll on the host loop's fd. */
  hostReady(): void;
  /** Publishes recycled provided buffers (before the kernel is entered). */
  publishBuffers(): void;
  /** Re-arms receives that waited for a recycled buffer (before submitting, after reaping). */
  retryStarved(): void;
  /** The kernel took none of the published SQEs (EAGAIN/EBUSY) and nothing else will enter it soon: enter again later. */
  submitLater(): void;
}

/**
 * Counters for benchmarks, tuning and tests: kernel entries, SQEs submitted, CQEs handled, and
 * receives that found every provided buffer in use (ENOBUFS) and waited for one.
 */
export interface RingStats {
  enters: number;
  submitted: number;
  completions: number;
  starved: number;
}

/** Slots, scratch, submission and reaping over one {@link Ring}. */
export class Submission {
  readonly stats: RingStats = { enters: 0, submitted: 0, completions: 0, starved: 0 };
  /** The record of each slot's request, null when free. */
  readonly entries: Array<SlotEntry | null> = [];
  readonly #free: number[] = [];
  readonly #scratch: NativeBlock[] = [];
  readonly #scratchViews: Scratch[] = [];
  #reaping = false;

  constructor(
    readonly ring: Ring,
    readonly handler: CompletionHandler,
  ) {}

  /** The slot of `entry`, taking a free one if it has none. */
  slot(entry: SlotEntry): number {
    if (entry.slot >= 0) return entry.slot;
    let slot = this.#free.pop();
    if (slot === undefined) {
      slot = this.entries.length;
      this.entries.push(null);
    }
    this.entries[slot] = entry;
    entry.slot = slot;
    return slot;
  }

  /** Frees `slot` (its request's CQE has arrived). */
  release(slot: number): void {
    if (slot < 0) return;
    this.entries[slot] = null;
    this.#free.push(slot);
  }

  /** Slots whose request is still in the kernel. */
  get busy(): number {
    return this.entries.length - this.#free.length;
  }

  /** The native scratch memory of `slot` (allocated a block of slots at a time, never moved). */
  scratchOf(slot: number): Scratch {
    let s = this.#scratchViews[slot];
    if (s) return s;
    const index = Math.floor(slot / SLOTS_PER_BLOCK);
    while (this.#scratch.length <= index) this.#scratch.push(new NativeBlock(SCRATCH_SIZE * SLOTS_PER_BLOCK));
    const block = this.#scratch[index]!;
    const offset = (slot % SLOTS_PER_BLOCK) * SCRATCH_SIZE;
    s = {
      address: block.address + offset,
      bytes: block.bytes.subarray(offset, offset + SCRATCH_SIZE),
      view: new DataView(block.bytes.buffer, offset, SCRATCH_SIZE),
    };
    this.#scratchViews[slot] = s;
    return s;
  }

  /** Frees every slot's scratch memory (the ring is closed and nothing is in flight). */
  freeScratch(): void {
    for (const b of this.#scratch) b.free();
  }

  /**
   * Claims an SQE, making sure `n` are free: a linked chain must go out in one submission, so
   * the caller claims the chain's other SQEs with `ring.claim()` straight after.
   */
  claim(n: number): number {
    const ring = this.ring;
    if (!ring.hasSpace(n)) this.submit(false);
    while (!ring.hasSpace(n)) {
      // The kernel did not take everything (CQ overflow backpressure): make room and retry.
      this.reap();
      this.submit(false);
    }
    return ring.claim();
  }

  /** Writes an ASYNC_CANCEL for the request with user_data `(tag << 32) | slot`. */
  cancel(slot: number, tag: Tag): void {
    this.ring.prepCancel(this.claim(1), slot, tag, 0, Tag.Ignore);
  }

  /** Publishes written SQEs and enters the kernel: submits them and, with `wait`, waits for a CQE. */
  submit(wait: boolean): void {
    const ring = this.ring;
    this.handler.publishBuffers();
    this.handler.retryStarved();
    if (sqeFaults !== null) this.#injectFaults(sqeFaults);
    const n = ring.publish();
    if (n === 0 && !wait && !ring.needsEnter()) return;
    for (;;) {
      this.stats.enters++;
      const r = ring.enter(n, wait ? 1 : 0, wait);
      if (r > 0) this.stats.submitted += r;
      if (r === -ERRNO.EBUSY || r === -ERRNO.EAGAIN) {
        // Completions are backed up: reap them, then submit again (without waiting: some just
        // arrived).
        // Found none either: the SQEs wait in the ring, and in guest mode no other
        // io_uring_enter may come (no CQE will make the ring fd readable): have one later.
        if (this.reap() === 0 && !wait) {
          this.handler.submitLater();
          return;
        }
        wait = false;
        continue;
      }
      return; // submitted, or EINTR: the caller's iteration simply ends early
    }
  }

  /**
   * The fault-injection seam (`sys/faults.ts`, tests only): offers each SQE about to be
   * published that is an operation's own (not its readiness poll, a cancel or a timeout) to the
   * active fault plan, which may have it complete with an error or move fewer bytes.
   */
  #injectFaults(decide: NonNullable<typeof sqeFaults>): void {
    const ring = this.ring;
    for (let i = 0, n = ring.unpublished; i < n; i++) {
      const at = ring.unpublishedAt(i);
      const [lo, hi] = ring.sqeUserData(at);
      if (hi !== Tag.Slot) continue;
      const entry = this.entries[lo];
      let call: string;
      let fd: number;
      if (entry instanceof UringOp && !entry.polling && entry.kind !== Kind.Close && entry.kind !== Kind.WaitReadable && entry.kind !== Kind.WaitWritable) {
        call = SYSCALL[entry.kind];
        fd = entry.fd;
      } else if (entry instanceof Source) {
        call = SYSCALL[entry.kind];
        fd = entry.state.fd;
      } else {
        continue;
      }
      const fault = decide(call, fd, ring.sqeHasLength(at));
      if (fault === null) continue;
      if ("result" in fault) ring.injectResult(at, fault.result);
      else ring.limitLength(at, fault.maxLength);
    }
  }

  /** Handles every available CQE; returns how many. Not re-entrant (a nested call returns 0). */
  reap(): number {
    if (this.#reaping) return 0;
    this.#reaping = true;
    try {
      return this.#reapAll();
    } finally {
      this.#reaping = false;
      this.ring.release();
      this.handler.publishBuffers();
      this.handler.retryStarved();
    }
  }

  #reapAll(): number {
    const ring = this.ring;
    const cqes = ring.cqes;
    const handler = this.handler;
    let count = 0;
    for (;;) {
      for (let ready = ring.cqReady(); ready > 0; ready--) {
        const at = ring.cqIndex(0);
        const lo = cqes[at + CQE_WORDS.userLo]! >>> 0;
        const hi = cqes[at + CQE_WORDS.userHi]! >>> 0;
        const res = cqes[at + CQE_WORDS.res]!;
        const flags = cqes[at + CQE_WORDS.flags]! >>> 0;
        ring.advance(1);
        count++;
        this.stats.completions++;
        if (hi === Tag.Slot) {
          const entry = this.entries[lo];
          if (entry) handler.completed(entry, res, flags);
        } else if (hi === Tag.Wake) {
          handler.woken();
        } else if (hi === Tag.Host) {
          handler.hostReady();
        }
        // Tag.Ignore: a cancel or a link timeout — the operation's own CQE carries the outcome.
      }
      ring.release();
      if (ring.cqReady() > 0) continue;
      if (!ring.needsEnter()) return count;
      // The kernel holds completions it could not post (CQ overflow), or task work that posts
      // them (COOP_TASKRUN): have it run and flush them.
      handler.publishBuffers();
      ring.enter(0, 0, true);
    }
  }
}
