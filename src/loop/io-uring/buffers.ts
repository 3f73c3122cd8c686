/**
 * The provided buffer rings every stream/file read receives into, shared by all fds and touched
 * only as data arrives, and the lending of their buffers to borrowed reads.
 *
 * Two rings: 512 × 16 KiB for most reads (and multishot RECV), and 64 × 64 KiB for reads into a
 * caller's buffer larger than 16 KiB, so a bulk transfer moves 64 KiB per RECV as it would with
 * recv(2). A buffer is named by a "ref": its id, plus LARGE_REF for the large ring.
 */
import { BufferRing, type Ring } from "../../sys/linux/io_uring.js";
import { debug } from "../debug.js";
import { type Lender, Loan } from "../lending.js";

export const SMALL_BUFFERS = { group: 1, count: 512, size: 16 * 1024 } as const;
export const LARGE_BUFFERS = { group: 2, count: 64, size: 64 * 1024 } as const;
/** Added to a large-ring buffer's id to make its ref. */
export const LARGE_REF = 0x10000;

/** The two buffer rings, or nothing where the kernel has none (before Linux 5.19). */
export class ProvidedBuffers {
  readonly #small: BufferRing;
  readonly #large: BufferRing;
  /** Buffers lent to borrowed reads and not given back yet. */
  #lent = 0;
  /** Whether a buffer went back since the receives that found none were last retried. */
  recycled = false;
  /** Called when a loan comes back (a receive waiting for a buffer may go). */
  onGiveBack: () => void = () => {};
  /** Set once the ring is gone: the last loan back frees the memory (when `freeable`). */
  #retired = false;
  #freeable = false;
  readonly #lender: Lender = { giveBack: (ref) => this.#giveBack(ref) };

  private constructor(small: BufferRing, large: BufferRing) {
    this.#small = small;
    this.#large = large;
  }

  /** Registers both rings; null (with the reason logged) where the kernel cannot. */
  static open(ring: Ring): ProvidedBuffers | null {
    let small: BufferRing | null = null;
    try {
      small = new BufferRing(ring, SMALL_BUFFERS.group, SMALL_BUFFERS.count, SMALL_BUFFERS.size);
      return new ProvidedBuffers(small, new BufferRing(ring, LARGE_BUFFERS.group, LARGE_BUFFERS.count, LARGE_BUFFERS.size));
    } catch (e) {
      small?.close();
      // Before Linux 5.19: reads use the caller's buffer with MSG_DONTWAIT/RWF_NOWAIT instead.
      debug(`io_uring: no provided buffer ring (${e instanceof Error ? e.message : String(e)}); reads are MSG_DONTWAIT + POLL_ADD`);
      return null;
    }
  }

  /** The group and the most bytes one receive may take, for a read that wants `want` bytes. */
  static pick(want: number): { readonly group: number; readonly size: number; readonly large: boolean } {
    return want > SMALL_BUFFERS.size ? LARGE_PICK : SMALL_PICK;
  }

  /** Bytes `[0, end)` of buffer `ref`. */
  view(ref: number, end: number): Uint8Array {
    return ref >= LARGE_REF ? this.#large.view(ref - LARGE_REF, end) : this.#small.view(ref, end);
  }

  /** Gives buffer `ref` back to its ring; a receive waiting for one may go. */
  recycle(ref: number): void {
    if (ref >= LARGE_REF) this.#large.recycle(ref - LARGE_REF);
    else this.#small.recycle(ref);
    this.recycled = true;
  }

  /** Publishes recycled buffers to the kernel. */
  publish(): void {
    this.#small.publish();
    this.#large.publish();
  }

  /**
   * Lends buffer `ref` (its first `length` bytes) to a borrowed read.
   * SAFETY: a buffer taken off the ring is not the kernel's until `recycle` puts it back, which
   * only the loan's release does; the memory stays mapped while any loan is out, even after the
   * loop is disposed (see {@link retire}).
   */
  lend(ref: number, length: number): Loan {
    this.#lent++;
    return new Loan(this.view(ref, length), this.#lender, ref, null);
  }

  /**
   * The loop is gone: nothing is recycled any more. `freeable` says whether the kernel gave
   * back every request (only then may the memory go); it goes now, or with the last loan.
   */
  retire(freeable: boolean): void {
    this.#retired = true;
    this.#freeable = freeable;
    if (freeable && this.#lent === 0) this.#free();
  }

  #giveBack(ref: number): void {
    this.#lent--;
    if (this.#retired) {
      if (this.#lent === 0 && this.#freeable) this.#free();
      return;
    }
    this.recycle(ref);
    this.onGiveBack();
  }

  #free(): void {
    this.#small.close();
    this.#large.close();
  }
}

const SMALL_PICK = { group: SMALL_BUFFERS.group, size: SMALL_BUFFERS.size, large: false } as const;
const LARGE_PICK = { group: LARGE_BUFFERS.group, size: LARGE_BUFFERS.size, large: true } as const;
