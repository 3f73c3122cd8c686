/**
 * What the completion-style loops share about operations: their kinds (and so which of an fd's
 * two queues each waits in), the syscall each is reported as, the argument check every
 * operation starts with, and the FIFO of operations per fd and direction.
 */
import { ClosedError } from "../sys/errors.js";
import type { OperationOptions } from "./event-loop.js";
import { checkOptions } from "./common.js";

/** The operations of the EventLoop contract; readers first, so {@link isReader} is one compare. */
export const enum Kind {
  // Readers.
  Read,
  Accept,
  ReceiveFrom,
  ReceiveMessage,
  WaitReadable,
  // Writers.
  Write,
  Connect,
  SendTo,
  SendMessage,
  WaitWritable,
  // Neither queue (io_uring's CLOSE).
  Close,
}

/** The syscall an operation's errors name. */
export const SYSCALL: Record<Kind, string> = {
  [Kind.Read]: "read",
  [Kind.Accept]: "accept",
  [Kind.ReceiveFrom]: "recvfrom",
  [Kind.ReceiveMessage]: "recvmsg",
  [Kind.WaitReadable]: "poll",
  [Kind.Write]: "write",
  [Kind.Connect]: "connect",
  [Kind.SendTo]: "sendto",
  [Kind.SendMessage]: "sendmsg",
  [Kind.WaitWritable]: "poll",
  [Kind.Close]: "close",
};

/** Whether operations of `kind` wait in an fd's reader queue (else its writer queue). */
export const isReader = (kind: Kind): boolean => kind <= Kind.WaitReadable;

/**
 * The checks every operation starts with: the loop is open, `fd` is a plausible descriptor and
 * the options are well-formed. Throws ClosedError, TypeError or RangeError.
 */
export function checkOperation(kind: Kind, fd: unknown, options: OperationOptions | undefined, disposed: boolean): asserts fd is number {
  if (disposed) throw new ClosedError(SYSCALL[kind], typeof fd === "number" ? fd : -1);
  if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
    throw new TypeError(`fd must be a non-negative integer file descriptor, got ${String(fd)}`);
  }
  checkOptions(options);
}

/** An operation record a {@link Queue} can hold. */
export interface Queued<T extends Queued<T>> {
  prev: T | null;
  next: T | null;
  queue: Queue<T> | null;
}

/** A FIFO of operations on one fd and direction (doubly linked, so an abort unlinks in O(1)). */
export class Queue<T extends Queued<T>> {
  head: T | null = null;
  tail: T | null = null;

  push(op: T): void {
    op.queue = this;
    op.prev = this.tail;
    op.next = null;
    if (this.tail) this.tail.next = op;
    else this.head = op;
    this.tail = op;
  }

  unlink(op: T): void {
    if (op.prev) op.prev.next = op.next;
    else this.head = op.next;
    if (op.next) op.next.prev = op.prev;
    else this.tail = op.prev;
    op.queue = op.prev = op.next = null;
  }
}

/**
 * Marks every operation in `queues` as keeping the process alive or not (`setRef`); returns by
 * how much the count of ref'd operations changed.
 */
export function markRefed<T extends Queued<T> & { refed: boolean }>(queues: readonly Queue<T>[], ref: boolean): number {
  let delta = 0;
  for (const q of queues) {
    for (let op = q.head; op; op = op.next) {
      if (op.refed !== ref) delta += ref ? 1 : -1;
      op.refed = ref;
    }
  }
  return delta;
}
