/**
 * What every backend knows about an operation: its kind (and so which of an fd's two queues it
 * waits in), the syscall its errors name, its record, and the FIFO of operations per fd and
 * direction. Backends extend {@link Operation} and {@link FdState} with their own fields.
 */
import { SystemError } from "../sys/errors.js";
import type { SocketAddress } from "../sys/posix/sockaddr.js";
import { ERRNO } from "../sys/target.js";
import type { Timer } from "./timers.js";

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
  // Neither queue (a close the kernel performs, io_uring's CLOSE).
  Close,
  // An overlapped operation the caller starts on a handle (IOCP): the fd's third queue, where
  // any number may be in the kernel at once.
  Overlapped,
}

/**
 * A write's count, checked: the buffer of a write is never empty, so a count of 0 would be no
 * progress, and a caller looping until everything is written (`writeAll`) would spin. Lengths
 * are clamped so the kernel never sees one it shortens to 0; should a count of 0 come anyway,
 * the write fails with EIO instead.
 */
export function written(n: number): number {
  if (n === 0) throw new SystemError(ERRNO.EIO, "write", "the kernel accepted none of the bytes");
  return n;
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
  [Kind.Overlapped]: "overlapped",
};

/** Whether operations of `kind` wait in an fd's reader queue (else its writer queue). */
export const isReader = (kind: Kind): boolean => kind <= Kind.WaitReadable;

/** Where an operation is in its life. */
export const enum Phase {
  /** Not in the kernel: being tried, or parked in its fd's queue (nothing the kernel holds). */
  Waiting,
  /** Handed to the kernel (a completion backend): it settles only on the kernel's answer. */
  InKernel,
  /** Settled. */
  Done,
}

function noop(): void {}

/** The passed fds of every operation that passes none (shared: no array per operation). */
const NO_FDS: readonly number[] = Object.freeze([]);

/**
 * One operation: its arguments, its promise's settle functions, and how it may end early (timer,
 * abort signal). Created per call; a backend subclasses it for its own state.
 */
export class Operation {
  kind: Kind = Kind.Read;
  fd = -1;
  phase = Phase.Waiting;
  // SAFETY: an operation's buffers stay referenced here until it settles; each backend says
  // where the kernel may touch them (see its `SAFETY` notes).
  buf: Uint8Array | null = null;
  bufs: readonly Uint8Array[] | null = null;
  fds: readonly number[] = NO_FDS;
  address: SocketAddress | null = null;
  /** connect: the address, encoded (and so validated) when the operation was called. */
  sockaddr: Uint8Array | null = null;
  maxFds = 0;
  /** A borrowed read's `maxBytes` (its memory is the loop's); else 0. */
  borrow = 0;
  /** Tried once already (connect: later tries ask SO_ERROR; a passed deadline is a timeout). */
  attempted = false;
  /**
   * A completion backend asked the kernel to cancel it ({@link CompletionLoop.cancelInKernel}):
   * the kernel's answer settles it with `cancelReason`, unless the operation completed first.
   */
  cancelled = false;
  cancelReason: unknown = undefined;
  resolve: (value: never) => void = noop;
  reject: (reason: unknown) => void = noop;
  /** Absolute deadline (clock ms), Infinity without a timeout. */
  deadline = Infinity;
  timeoutMs = 0;
  /** The heap timer enforcing `deadline` while it is armed. */
  timer: Timer | null = null;
  signal: AbortSignal | null = null;
  onAbort: (() => void) | null = null;
  /** Whether this operation keeps the process alive (its fd is not unref'd). */
  refed = true;
  /** An overlapped operation's start: called with its OVERLAPPED's address, returns a Win32 error code. */
  start: ((overlapped: bigint) => number) | null = null;
  /** An overlapped operation's file offset (OVERLAPPED.Offset/OffsetHigh). */
  offset = 0;
  queue: Queue<this> | null = null;
  prev: this | null = null;
  next: this | null = null;
}

/** A FIFO of operations on one fd and direction (doubly linked, so an abort unlinks in O(1)). */
export class Queue<T extends Operation> {
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

/** What a loop keeps per fd: its reader and writer queues. Backends extend it. */
export class FdState<Op extends Operation = Operation> {
  readonly readers = new Queue<Op>();
  readonly writers = new Queue<Op>();
  /** Overlapped operations (IOCP), which do not wait for one another. */
  readonly others = new Queue<Op>();
  /** Set by remove/close: the fd is forgotten; nothing new starts on this state. */
  removed = false;
  /**
   * A completion backend's close() in progress ({@link CompletionLoop.parkClose}): new operations
   * on the fd are refused until the kernel has given everything back and the fd is closed.
   */
  closer: Op | null = null;

  constructor(readonly fd: number) {}

  /** The queue operations of `kind` wait in. */
  queueOf(kind: Kind): Queue<Op> {
    return kind <= Kind.WaitReadable ? this.readers : kind === Kind.Overlapped ? this.others : this.writers;
  }
}
