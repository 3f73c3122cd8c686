/**
 * What the io_uring loop records: an operation's io_uring state, the multishot sources feeding
 * an fd's readers, the per-fd state, and the user_data tags that say what a CQE is for.
 */
import { SystemError } from "../../sys/errors.js";
import { C } from "../../sys/linux/constants.js";
import type { NativeBlock } from "../../sys/linux/io_uring.js";
import { socketDomain, socketType } from "../../sys/posix/socket.js";
import { addressOf } from "../../sys/linux/io_uring.js";
import { FdState, Kind, Operation } from "../operation.js";

/** The high word of an SQE's user_data says what the low word (a slot) refers to. */
export const enum Tag {
  /** An operation, a multishot source or a deadline: the slot's entry. */
  Slot = 0,
  /** Cancels and link timeouts: their own results are not needed. */
  Ignore = 1,
  /** The poll on the wake-up fd. */
  Wake = 2,
  /** The poll on the host loop's fd (`wakeOn`). */
  Host = 3,
}

/** What an fd is, for choosing the op: multishot RECV only for TCP, READ/WRITE for non-sockets. */
export const enum FdKind {
  Unknown,
  /** A TCP stream: multishot RECV where the kernel has it. */
  Tcp,
  /** Another stream socket (Unix): one-shot RECV into a provided buffer. */
  Stream,
  /** Datagrams and packets: a read takes a whole message, into the caller's buffer. */
  Packet,
  /** Pipes, character devices, files: READ/WRITE. */
  NotSocket,
}

/** What kind of fd `fd` is. */
export function classify(fd: number): FdKind {
  let type: number;
  try {
    type = socketType(fd);
  } catch {
    return FdKind.NotSocket;
  }
  if (type !== C.SOCK_STREAM) return FdKind.Packet;
  const domain = socketDomain(fd);
  return domain === C.AF_INET || domain === C.AF_INET6 ? FdKind.Tcp : FdKind.Stream;
}

/** An operation with its io_uring state. */
export class UringOp extends Operation {
  // SAFETY: while the operation is in the kernel its buffers stay referenced from the record
  // (see Operation), and the record itself is referenced from its slot until its CQE has
  // arrived: the kernel never writes into or reads from memory the GC may have reclaimed.
  // Backing stores of ArrayBuffers never move (`addressOf` touches `.buffer`, which also moves a
  // small on-heap array's bytes off the heap for good), so the address taken at submission
  // stays valid.
  slot = -1;
  state: UringFd | null = null;
  /** sendmsg/recvmsg: the message block (msghdr, address, iovecs, control) in native memory. */
  message: NativeBlock | null = null;
  /**
   * An accept served by the multishot ACCEPT: the first of its requests that was armed after
   * this accept began waiting (0: not waiting yet). Only their errors describe its time.
   */
  acceptFrom = 0;
  /** The kernel answered EAGAIN: the operation waits for readiness with a POLL_ADD first. */
  polling = false;
  /**
   * A borrowed read that has to read directly (no provided buffer, a packet socket) reads into
   * `backing`, a buffer from the loop's pool that the loan gives back.
   */
  backing: Uint8Array | null = null;
  /** Its SQE receives into a provided buffer (the CQE names it). */
  selected = false;
  /** …from the large ring. */
  largeBuffer = false;
  /** Found no provided buffer free: reads into the caller's buffer, without waiting, instead. */
  direct = false;
  /** Its SQE is the first, MSG_DONTWAIT/RWF_NOWAIT try of a read into the caller's buffer. */
  optimistic = false;
  /** That try found nothing: the read now waits in a provided-buffer receive. */
  waitedDirect = false;
  /** Issued again after a POLL_ADD said ready. */
  retried = false;
  /** A file that answered EAGAIN to RWF_NOWAIT although poll said ready: let the kernel block. */
  mayBlock = false;
  /** A connect the kernel left in progress, now waited for as writability (old kernels). */
  connecting = false;
}

/** A received provided buffer not yet consumed: its ref, length, and bytes already read. */
export interface Chunk {
  readonly bid: number;
  readonly length: number;
  offset: number;
}

/** A multishot request feeding the reader queue of one fd (ACCEPT or RECV). */
export class Source {
  slot = -1;
  armed = false;
  cancelling = false;
  /** Accepted fds not yet taken by an accept(). */
  readonly fds: number[] = [];
  /** Received buffers not yet consumed. */
  readonly chunks: Chunk[] = [];
  eof = false;
  error: SystemError | null = null;
  /** Requests armed so far (numbered from 1): the last one is the one in flight or just ended. */
  arms = 0;
  /** The request whose CQE carried `error`. */
  errorOf = 0;
  /** RECV ran out of provided buffers: re-armed when one is recycled. */
  starved = false;

  constructor(
    readonly kind: Kind.Accept | Kind.Read,
    readonly state: UringFd,
    /** Whether a multishot request feeds it (else it only holds data a read left behind). */
    readonly multishot: boolean,
  ) {}
}

/** Per-fd state: the queues, what the fd is, its requests in flight, its sources. */
export class UringFd extends FdState<UringOp> {
  kind = FdKind.Unknown;
  /** Requests in the kernel on this fd (operations and multishot sources). */
  inflight = 0;
  accept: Source | null = null;
  recv: Source | null = null;
  /** The memory the fd's last direct read or write used, and its address (saves a lookup). */
  lastMemory: ArrayBufferLike | null = null;
  lastAddress = 0;

  /** The address of `buf`'s first byte (see `addressOf`). */
  addressOf(buf: Uint8Array): number {
    const memory = buf.buffer;
    if (memory !== this.lastMemory) {
      this.lastAddress = addressOf(buf) - buf.byteOffset;
      this.lastMemory = memory;
    }
    return this.lastAddress + buf.byteOffset;
  }
}

/** A TIMEOUT armed for the earliest loop timer while owner mode waits. */
export class Deadline {
  slot = -1;
  constructor(readonly at: number) {}
}

/** What a slot holds while its request is in the kernel. */
export type SlotEntry = UringOp | Source | Deadline;
