/**
 * Borrowed reads' memory: the {@link Loan} a `readBorrowed` resolves with, whoever lent it, and
 * the pool of buffers the readiness backends lend (io_uring lends its provided buffers instead).
 */
import type { BorrowedBytes } from "./event-loop.js";
import { BORROW_DEFAULT, BORROW_MAX } from "./checks.js";

/** Whoever lent a {@link Loan}'s memory, and takes it back. */
export interface Lender {
  /** `ref` and `backing` are what the lender put into the loan. */
  giveBack(ref: number, backing: Uint8Array | null): void;
}

/** The {@link BorrowedBytes} a borrowed read resolves with. */
export class Loan implements BorrowedBytes {
  #lender: Lender | null;
  readonly #ref: number;
  readonly #backing: Uint8Array | null;

  constructor(
    readonly bytes: Uint8Array,
    lender: Lender | null,
    ref: number,
    backing: Uint8Array | null,
  ) {
    this.#lender = lender;
    this.#ref = ref;
    this.#backing = backing;
  }

  release(): void {
    const lender = this.#lender;
    if (lender === null) return;
    this.#lender = null;
    lender.giveBack(this.#ref, this.#backing);
  }
}

/** A loan of memory nobody needs back (a fresh buffer, end of stream). */
export function ownLoan(bytes: Uint8Array): Loan {
  return new Loan(bytes, null, 0, null);
}

/**
 * Buffers lent by borrowed reads that read with a syscall: taken only when a read is attempted,
 * so a waiting read holds none, and kept for reuse when released (a few dozen at most; the rest
 * are left to the GC).
 */
export class BufferPool implements Lender {
  readonly #small: Uint8Array[] = [];
  readonly #large: Uint8Array[] = [];

  /** A buffer to read up to `maxBytes` into: its first `maxBytes` bytes (or fewer) are used. */
  take(maxBytes: number): Uint8Array {
    const large = maxBytes > BORROW_DEFAULT;
    return (large ? this.#large.pop() : this.#small.pop()) ?? new Uint8Array(large ? BORROW_MAX : BORROW_DEFAULT);
  }

  /** The part of `backing` (from {@link take}) a read of at most `maxBytes` uses. */
  static window(backing: Uint8Array, maxBytes: number): Uint8Array {
    return maxBytes < backing.byteLength ? backing.subarray(0, maxBytes) : backing;
  }

  /** Lends `n` bytes of `backing` (returns it at once for end of stream). */
  lend(backing: Uint8Array, n: number): Loan {
    if (n === 0) {
      this.giveBack(0, backing);
      return ownLoan(backing.subarray(0, 0));
    }
    return new Loan(backing.subarray(0, n), this, 0, backing);
  }

  giveBack(_ref: number, backing: Uint8Array | null): void {
    if (backing === null) return;
    const large = backing.byteLength > BORROW_DEFAULT;
    const list = large ? this.#large : this.#small;
    if (list.length < (large ? 8 : 64)) list.push(backing);
  }
}
