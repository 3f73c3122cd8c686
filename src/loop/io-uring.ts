/**
 * IoUringEventLoop: the completion contract on io_uring, with the kernel's own completions.
 *
 * Every operation becomes one 64-byte SQE written straight into the ring's shared memory; a
 * whole batch of them costs one `io_uring_enter`. The kernel performs the recv/send/accept
 * itself (trying it at once, and arming an internal poll when it would block) and posts a CQE
 * with the result, which settles the operation's promise.
 *
 * Batching. In guest mode (the driver sets {@link IoUringEventLoop.guest}), the first SQE written
 * in a macrotask schedules one flush in a microtask, so every operation the resolved promises'
 * continuations start is submitted by the same syscall; Node's own loop polls the ring fd and
 * runs `run(false)` to reap CQEs when it turns readable. In owner mode, `run(true)` submits and
 * waits in the same `io_uring_enter`.
 *
 * Order. Per fd and direction, operations are a FIFO queue of which only the head is in the
 * kernel: two RECVs armed on one socket would be woken together and could take the bytes out of
 * order, and two SENDs could interleave. The next operation is issued when the head settles.
 *
 * Multishot (where the kernel has it, see {@link probeIoUring}): a listener gets one multishot
 * ACCEPT that keeps producing connections. On request (`multishotRecv`), a TCP socket gets one
 * multishot RECV that keeps filling buffers from the provided buffer ring; `read` copies out of
 * those buffers and gives each back once consumed, and such a read waits in JS, not in the
 * kernel. It is off by default because it measured slower on request/response traffic: it
 * receives each arriving segment on its own, so the replies go out in smaller pieces, while a
 * one-shot RECV issued when the caller reads takes everything that has arrived by then (see
 * bench/RESULTS.md). Bulk transfers are as fast either way.
 *
 * Memory the kernel may touch after `io_uring_enter` returns is native, never a JS buffer:
 * - a read of a stream or file is first tried straight into the caller's buffer with
 *   MSG_DONTWAIT/RWF_NOWAIT (done inside our io_uring_enter, or EAGAIN); when nothing is there
 *   it waits in a receive into a provided buffer ring (native memory the kernel picks from when
 *   data arrives), copied into the caller's buffer on completion;
 * - sends, writes, datagram and message I/O use the caller's memory, but with MSG_DONTWAIT /
 *   RWF_NOWAIT, so the kernel performs them inside our own `io_uring_enter` or answers EAGAIN;
 *   on EAGAIN the operation waits for readiness with a POLL_ADD (no buffer) and tries again;
 * - addresses, msghdrs, iovecs and timespecs live in native scratch memory per slot.
 * So a caller that detaches (transfers) a buffer while its operation waits gets a TypeError and
 * loses nothing, exactly as on the polling backends.
 *
 * Cancellation is exact: an operation that is in the kernel (it owns a slot) is cancelled with
 * ASYNC_CANCEL, or times out through its linked LINK_TIMEOUT, and its promise settles only when
 * its own CQE arrives. An operation that waits in JS (behind the queue head, or for multishot
 * data) holds nothing the kernel could touch and settles at once.
 */
import { ffi } from "../ffi/runtime/load.js";
import { ClosedError, SystemError, TimeoutError } from "../sys/errors.js";
import { C, ERRNO, IORING } from "../sys/linux/constants.js";
import { addressOf, BufferRing, featureNames, kernelRelease, NativeBlock, OPS, Ring, setupNames } from "../sys/linux/io_uring.js";
import { eventfdRead } from "../sys/linux/eventfd.js";
import { close as closeFd } from "../sys/posix/fd.js";
import { messageSize, readMessage, socketDomain, socketError, socketType, writeMessage, type ReceivedMessage } from "../sys/posix/socket.js";
import { encodeSockaddr, SOCKADDR_MAX, type SocketAddress } from "../sys/posix/sockaddr.js";
import type { Timer } from "./timers.js";
import type { BackendName, BorrowedBytes, BorrowOptions, EventLoop, OperationOptions, ReceiveFromResult } from "./event-loop.js";
import { BufferPool, checkBorrow, checkBuffer, checkBuffers, clock, isDetached, type Lender, Loan, LoopBase, ownLoan } from "./common.js";
import { checkOperation, isReader, Kind, markRefed, Queue, SYSCALL } from "./operations.js";
import { debug } from "./debug.js";

// ---- kernel facts ----------------------------------------------------------------------------

/** Ops evloop cannot work without (all in Linux 5.6). */
const REQUIRED: ReadonlyArray<keyof typeof OPS> = [
  "READ", "WRITE", "SEND", "RECV", "ACCEPT", "CONNECT", "SENDMSG", "RECVMSG", "POLL_ADD",
  "ASYNC_CANCEL", "LINK_TIMEOUT", "TIMEOUT", "CLOSE",
];

/**
 * What the kernel's io_uring offers evloop: setup succeeded, every required op is supported,
 * and which throughput features are on.
 *
 * @example
 * ```ts
 * const p = probeIoUring();
 * console.log(p.features.join(" "), p.multishotAccept, p.multishotRecv);
 * ```
 */
export interface IoUringProbe {
  /** `IORING_FEAT_*` names the kernel reported. */
  readonly features: readonly string[];
  /** `IORING_SETUP_*` flags the kernel accepted (newer ones are tried first). */
  readonly setup: readonly string[];
  /** Multishot ACCEPT (Linux 5.19). */
  readonly multishotAccept: boolean;
  /** Multishot RECV with a provided buffer ring (Linux 6.0). */
  readonly multishotRecv: boolean;
  /** The kernel release the multishot decisions were made from. */
  readonly kernel: string;
}

/** Why io_uring_setup failed, in words a user can act on. */
function setupFailure(e: unknown): string {
  if (!(e instanceof SystemError)) return e instanceof Error ? e.message : String(e);
  switch (e.code) {
    case "EPERM":
      return `io_uring_setup failed with EPERM: io_uring is disabled (sysctl kernel.io_uring_disabled) or refused by a seccomp filter${e.message.includes("EVLOOP_IO_URING_DISABLE_FOR_TEST") ? " (forced by EVLOOP_IO_URING_DISABLE_FOR_TEST=1)" : ""}`;
    case "ENOSYS":
      return "io_uring_setup failed with ENOSYS: this kernel has no io_uring (Linux 5.1+), or a seccomp filter hides it";
    case "ENOMEM":
      return "io_uring_setup failed with ENOMEM: the memory lock limit (ulimit -l) is too low for a ring on this kernel";
    default:
      return `io_uring_setup failed with ${e.code}`;
  }
}

/** `[major, minor]` of the running kernel, from /proc via uname's release string. */
function kernelVersion(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function atLeast(v: [number, number], major: number, minor: number): boolean {
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

/**
 * Sets up a small ring, probes its ops and releases it. Throws, with the reason, when io_uring
 * cannot be used here: `io_uring_setup` failed (ENOSYS: no io_uring; EPERM:
 * `kernel.io_uring_disabled` or a seccomp filter), or a required op is missing.
 * `EVLOOP_IO_URING_MULTISHOT=0` turns the multishot features off. The answer is cached.
 *
 * @example
 * ```ts
 * try {
 *   console.log("io_uring on kernel", probeIoUring().kernel);
 * } catch (e) {
 *   console.log("no io_uring:", (e as Error).message);
 * }
 * ```
 */
export function probeIoUring(): IoUringProbe {
  probed ??= probeOnce();
  return probed;
}

let probed: IoUringProbe | undefined;

function probeOnce(): IoUringProbe {
  if (ffi.env("EVLOOP_IO_URING_DISABLE_FOR_TEST") === "1") {
    // The failure path, forced: behaves as a kernel with io_uring disabled by sysctl.
    throw new Error(setupFailure(new SystemError(ERRNO.EPERM, "io_uring_setup", "EVLOOP_IO_URING_DISABLE_FOR_TEST=1")));
  }
  let ring: Ring;
  try {
    ring = Ring.setup({ entries: 4 });
  } catch (e) {
    throw new Error(setupFailure(e), { cause: e });
  }
  try {
    const ops = ring.probe();
    const missing = REQUIRED.filter((name) => !ops.has(OPS[name]));
    if (missing.length > 0) throw new Error(`the kernel's io_uring lacks ${missing.map((m) => `IORING_OP_${m}`).join(", ")}`);
    const release = kernelRelease();
    const version = kernelVersion(release);
    const multishot = ffi.env("EVLOOP_IO_URING_MULTISHOT") !== "0";
    return {
      features: featureNames(ring.features),
      setup: setupNames(ring.setupFlags),
      multishotAccept: multishot && atLeast(version, 5, 19),
      multishotRecv: multishot && atLeast(version, 6, 0),
      kernel: release,
    };
  } finally {
    ring.close();
  }
}

// ---- operation records -----------------------------------------------------------------------

/** Where an operation is. */
const enum Phase {
  /** In its fd's queue behind the head, or waiting for multishot data: nothing in the kernel. */
  Waiting,
  /** Its SQE is written: it owns a slot and settles only on its CQE. */
  InKernel,
  Done,
}

/** The high word of an SQE's user_data says what the low word (a slot) refers to. */
const enum Tag {
  /** An operation, a multishot source or a deadline: `#slots[lo]`. */
  Slot = 0,
  /** Cancels and link timeouts: their own results are not needed. */
  Ignore = 1,
  /** The poll on the wake eventfd. */
  Wake = 2,
}

/** What an fd is, for choosing the op: multishot RECV only for TCP, READ/WRITE for non-sockets. */
const enum FdKind {
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

type Settle = (value: never) => void;

function noop(): void {}

class Op {
  kind: Kind = Kind.Read;
  fd = -1;
  phase = Phase.Waiting;
  slot = -1;
  state: FdState | null = null;
  // SAFETY: while the operation is in the kernel its buffers stay referenced from here, and the
  // record itself is referenced from `#slots` until its CQE has arrived: the kernel never
  // writes into or reads from memory the GC may have reclaimed. Backing stores of ArrayBuffers
  // never move (`addressOf` touches `.buffer`, which also moves a small on-heap array's bytes
  // off the heap for good), so the address taken at submission stays valid.
  buf: Uint8Array | null = null;
  bufs: readonly Uint8Array[] | null = null;
  fds: readonly number[] = [];
  address: SocketAddress | null = null;
  maxFds = 0;
  /** sendmsg/recvmsg: the message block (msghdr, address, iovecs, control) in native memory. */
  message: NativeBlock | null = null;
  resolve: Settle = noop;
  reject: (reason: unknown) => void = noop;
  /** Absolute deadline (clock ms), Infinity without a timeout. */
  deadline = Infinity;
  timeoutMs = 0;
  /** Heap timer while the operation waits in JS. */
  timer: Timer | null = null;
  signal: AbortSignal | null = null;
  onAbort: (() => void) | null = null;
  /** Set when we asked the kernel to cancel it: the reason it rejects with. */
  cancelled = false;
  cancelReason: unknown = undefined;
  /** The address, encoded when the operation was started (connect). */
  sockaddr: Uint8Array | null = null;
  /** The kernel answered EAGAIN: the operation waits for readiness with a POLL_ADD first. */
  polling = false;
  /** Tried once already: a deadline that has passed now means a timeout. */
  attempted = false;
  /**
   * A borrowed read's `maxBytes`, else 0. It has no buffer of its own (`buf` stays null) unless
   * it has to read directly (no provided buffer, a packet socket): into `backing` then, a
   * buffer from the loop's pool that the loan gives back.
   */
  borrow = 0;
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
  refed = true;
  prev: Op | null = null;
  next: Op | null = null;
  queue: Queue<Op> | null = null;
}

/** A multishot request feeding the reader queue of one fd (ACCEPT or RECV). */
class Source {
  slot = -1;
  armed = false;
  cancelling = false;
  /** Accepted fds not yet taken by an accept(). */
  readonly fds: number[] = [];
  /** Received buffers not yet consumed: buffer id, length, bytes already read. */
  readonly chunks: Array<{ bid: number; length: number; offset: number }> = [];
  eof = false;
  error: SystemError | null = null;
  /** RECV ran out of provided buffers: re-armed when one is recycled. */
  starved = false;

  constructor(
    readonly kind: Kind.Accept | Kind.Read,
    readonly state: FdState,
    /** Whether a multishot request feeds it (else it only holds data a read left behind). */
    readonly multishot: boolean,
  ) {}
}

class FdState {
  readonly readers = new Queue<Op>();
  readonly writers = new Queue<Op>();
  kind = FdKind.Unknown;
  /** Requests in the kernel on this fd (operations and multishot sources). */
  inflight = 0;
  /** Set by remove/close: the fd is forgotten; its in-flight requests are being cancelled. */
  removed = false;
  /** The close() in progress: operations on the fd are refused until its CLOSE completes. */
  closer: Op | null = null;
  accept: Source | null = null;
  recv: Source | null = null;
  /** The memory the fd's last direct read or write used, and its address (saves a lookup). */
  lastMemory: ArrayBufferLike | null = null;
  lastAddress = 0;

  constructor(readonly fd: number) {}

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
class Deadline {
  slot = -1;
  constructor(readonly at: number) {}
}

type SlotEntry = Op | Source | Deadline;

// Per-slot native scratch: the sockaddr (connect), the message block (sendTo/receiveFrom) and
// the link timeout's timespec. Slots are grouped in blocks so a slot's scratch never moves.
const SCRATCH_SIZE = 256;
const SCRATCH_TIMESPEC = 224;
const SLOTS_PER_BLOCK = 1024;

/**
 * Flushes per host-loop turn (guest mode) that may also handle the completions their
 * io_uring_enter produced at once; the rest wait for the host loop to poll the ring fd.
 */
const INLINE_REAPS = 16;

/**
 * The provided buffer rings every stream/file read receives into, shared by all fds and touched
 * only as data arrives: 512 × 16 KiB for most reads (and multishot RECV), and 64 × 64 KiB for
 * reads into a caller's buffer larger than 16 KiB, so a bulk transfer moves 64 KiB per RECV as
 * it would with recv(2). A buffer is named by a "ref": its id, plus LARGE_REF for the large ring.
 */
const SMALL_BUFFERS = { group: 1, count: 512, size: 16 * 1024 } as const;
const LARGE_BUFFERS = { group: 2, count: 64, size: 64 * 1024 } as const;
const LARGE_REF = 0x10000;
/** A socket with this many unread buffers stops receiving (its multishot is cancelled). */
const MAX_CHUNKS_PER_FD = 16;
/** Accepted connections kept ready for accept() before the multishot accept is paused. */
const MAX_READY_ACCEPTS = 64;

/** The source of a datagram from an unbound Unix socket. */
const UNNAMED: SocketAddress = { family: "unix", path: "" };

const POLL_READABLE = C.POLLIN | C.POLLPRI | C.POLLRDHUP;
const U64_MAX_AS_NUMBER = -1; // written as 0xffffffff_ffffffff: "the current file position"

/**
 * Options of {@link IoUringEventLoop}'s constructor (`createLoop({ ioUring })` passes them on).
 *
 * @example
 * ```ts
 * const options: IoUringOptions = { entries: 256, multishotRecv: true };
 * const loop = createLoop({ backend: "io_uring", ioUring: options });
 * ```
 */
export interface IoUringOptions {
  /** SQ entries (default 2048; the CQ gets four times as many). */
  readonly entries?: number;
  /** `false`: no multishot request at all, even where the kernel has them (default: as below). */
  readonly multishot?: boolean;
  /**
   * Multishot RECV on TCP sockets where the kernel has it (default false, or
   * `EVLOOP_IO_URING_MULTISHOT_RECV=1`); multishot ACCEPT is on wherever the kernel has it.
   */
  readonly multishotRecv?: boolean;
}

/**
 * The io_uring backend. Create it with `createLoop({ backend: "io_uring" })`, which also attaches
 * the driver; it is the default on Linux wherever the kernel allows io_uring.
 *
 * @example
 * ```ts
 * const loop = createLoop({ backend: "io_uring" });
 * const listener = await TcpListener.bind({ host: "127.0.0.1", port: 0, loop });
 * ```
 */
export class IoUringEventLoop extends LoopBase implements EventLoop {
  readonly backend: BackendName = "io_uring";
  readonly probe: IoUringProbe;
  readonly #ring: Ring;
  readonly #multishotAccept: boolean;
  readonly #multishotRecv: boolean;
  readonly #buffers: BufferRing | null;
  readonly #largeBuffers: BufferRing | null;
  readonly #fds = new Map<number, FdState>();
  readonly #slots: Array<SlotEntry | null> = [];
  readonly #freeSlots: number[] = [];
  readonly #scratch: NativeBlock[] = [];
  readonly #scratchViews: Scratch[] = [];
  /** Sources waiting for a recycled buffer. */
  readonly #starved = new Set<Source>();
  #pending = 0;
  #refedPending = 0;
  readonly #unrefedFds = new Set<number>();
  #flushQueued = false;
  readonly #flushTask = (): void => {
    this.#flushQueued = false;
    if (this.disposed) return;
    this.#submit(false);
    // Most submissions complete inside that io_uring_enter (a send with room, a recv with data):
    // handle their CQEs now, so their continuations join this macrotask's batch instead of
    // waiting for the host loop's next turn. Bounded, so the host's own work is never starved.
    if (this.#inlineReaps > 0 && this.#ring.cqReady() > 0) {
      this.#inlineReaps--;
      this.#reap();
    }
  };
  /** Inline reaps left before the host loop must have had a turn (reset by `run`). */
  #inlineReaps = INLINE_REAPS;
  /** Earliest deadline a TIMEOUT is armed for (owner mode). */
  #armedDeadline = Infinity;
  /** Whether the POLL_ADD on the wake eventfd is in the kernel. */
  #wakeArmed = false;
  /** Set while `dispose` waits for the kernel to give everything back. */
  #disposing = false;

  constructor(options: IoUringOptions = {}) {
    super();
    this.probe = probeIoUring();
    const entries = options.entries ?? 4096;
    if (!Number.isInteger(entries) || entries < 2 || entries > 32768) {
      throw new RangeError(`io_uring entries must be an integer from 2 to 32768, got ${String(entries)}`);
    }
    this.#ring = Ring.setup({ entries, cqEntries: Math.min(entries * 16, 65536) });
    this.#multishotAccept = options.multishot !== false && this.probe.multishotAccept;
    let buffers: BufferRing | null = null;
    let large: BufferRing | null = null;
    try {
      buffers = new BufferRing(this.#ring, SMALL_BUFFERS.group, SMALL_BUFFERS.count, SMALL_BUFFERS.size);
      large = new BufferRing(this.#ring, LARGE_BUFFERS.group, LARGE_BUFFERS.count, LARGE_BUFFERS.size);
    } catch (e) {
      buffers?.close();
      buffers = null;
      // Before Linux 5.19: reads use the caller's buffer with MSG_DONTWAIT/RWF_NOWAIT instead.
      debug(`io_uring: no provided buffer ring (${e instanceof Error ? e.message : String(e)}); reads are MSG_DONTWAIT + POLL_ADD`);
    }
    this.#buffers = buffers;
    this.#largeBuffers = large;
    const wantRecv = options.multishotRecv ?? ffi.env("EVLOOP_IO_URING_MULTISHOT_RECV") === "1";
    this.#multishotRecv = buffers !== null && options.multishot !== false && wantRecv && this.probe.multishotRecv;
    this.#armWake();
    debug(`io_uring ring: ${this.#ring.sqEntries} SQ / ${this.#ring.cqEntries} CQ entries; features ${this.probe.features.join(" ")}; multishot accept ${this.#multishotAccept}, recv ${this.#multishotRecv}`);
  }

  /** The ring fd: readable when CQEs are waiting (guest mode hands it to the host loop). */
  override get selectorFd(): number {
    return this.#ring.fd;
  }

  protected override get pendingCount(): number {
    return this.#refedPending;
  }

  setRef(fd: number, ref: boolean): void {
    if (ref === !this.#unrefedFds.has(fd)) return;
    if (ref) this.#unrefedFds.delete(fd);
    else this.#unrefedFds.add(fd);
    const state = this.#fds.get(fd);
    if (state) this.#refedPending += markRefed([state.readers, state.writers], ref);
    this.changed();
  }

  // ---- operations ------------------------------------------------------------------------

  read(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.Read, fd, options);
    op.buf = checkBuffer(buf, "read");
    return this.#start(op, options);
  }

  readBorrowed(fd: number, options?: BorrowOptions): Promise<BorrowedBytes> {
    const max = checkBorrow(options);
    const op = this.#op(Kind.Read, fd, options);
    op.borrow = max;
    return this.#start(op, options);
  }

  write(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.Write, fd, options);
    op.buf = checkBuffer(buf, "write");
    return this.#start(op, options);
  }

  accept(fd: number, options?: OperationOptions): Promise<number> {
    return this.#start(this.#op(Kind.Accept, fd, options), options);
  }

  connect(fd: number, address: SocketAddress, options?: OperationOptions): Promise<void> {
    const op = this.#op(Kind.Connect, fd, options);
    op.sockaddr = encodeAddress(address);
    return this.#start(op, options);
  }

  sendTo(fd: number, buf: Uint8Array, address: SocketAddress, options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.SendTo, fd, options);
    op.buf = checkBuffer(buf, "sendTo", true);
    encodeAddress(address);
    op.address = address;
    return this.#start(op, options);
  }

  receiveFrom(fd: number, buf: Uint8Array, options?: OperationOptions): Promise<ReceiveFromResult> {
    const op = this.#op(Kind.ReceiveFrom, fd, options);
    op.buf = checkBuffer(buf, "receiveFrom", true);
    return this.#start(op, options);
  }

  sendMessage(fd: number, bufs: readonly Uint8Array[], fds: readonly number[], options?: OperationOptions): Promise<number> {
    const op = this.#op(Kind.SendMessage, fd, options);
    op.bufs = checkBuffers(bufs, "sendMessage");
    op.fds = fds;
    return this.#start(op, options);
  }

  receiveMessage(fd: number, buf: Uint8Array, maxFds: number, options?: OperationOptions): Promise<ReceivedMessage> {
    const op = this.#op(Kind.ReceiveMessage, fd, options);
    op.buf = checkBuffer(buf, "receiveMessage", true);
    if (!Number.isInteger(maxFds) || maxFds < 0 || maxFds > 253) {
      throw new RangeError(`maxFds must be an integer from 0 to 253, got ${String(maxFds)}`);
    }
    op.maxFds = maxFds;
    return this.#start(op, options);
  }

  waitReadable(fd: number, options?: OperationOptions): Promise<void> {
    return this.#start(this.#op(Kind.WaitReadable, fd, options), options);
  }

  waitWritable(fd: number, options?: OperationOptions): Promise<void> {
    return this.#start(this.#op(Kind.WaitWritable, fd, options), options);
  }

  remove(fd: number): void {
    if (!this.#forget(fd) || this.disposed) return;
    // Have the kernel act on the cancels now, so the operations settle within this call in the
    // usual case (as on the polling backends) even on a loop nobody is running.
    this.#submit(false);
    this.#reap();
  }

  /** Cancels everything on `fd` and forgets it; returns whether the loop knew it. */
  #forget(fd: number): boolean {
    this.#unrefedFds.delete(fd);
    const state = this.#fds.get(fd);
    if (!state) return false;
    this.#fds.delete(fd);
    state.removed = true;
    for (const q of [state.readers, state.writers]) {
      for (let op = q.head; op; ) {
        const next = op.next;
        this.#cancel(op, new ClosedError(SYSCALL[op.kind], fd));
        op = next;
      }
    }
    for (const source of [state.accept, state.recv]) {
      if (source) this.#cancelSource(source);
    }
    return true;
  }

  close(fd: number): Promise<void> {
    if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`fd must be a non-negative integer, got ${String(fd)}`);
    if (this.disposed) return Promise.reject(new ClosedError("close", fd));
    let state = this.#fds.get(fd);
    if (state?.closer) return Promise.reject(new SystemError(ERRNO.EBADF, "close", `fd ${fd} is already being closed`));
    if (!state) {
      state = new FdState(fd);
      this.#fds.set(fd, state);
    }
    this.#forget(fd);
    // The fd number stays taken (and open) until its requests are cancelled and CLOSE is done:
    // keep the state findable so new operations on it are refused, not sent to the kernel.
    this.#fds.set(fd, state);
    const op = new Op();
    op.kind = Kind.Close;
    op.fd = fd;
    op.state = state;
    state.closer = op;
    const promise = new Promise<void>((resolve, reject) => {
      op.resolve = resolve as Settle;
      op.reject = reject;
    });
    this.#pending++;
    this.#refedPending++;
    // CLOSE goes out in the same submission as the cancels remove() wrote. Requests still in
    // flight hold their own reference to the file, so closing the number cannot pull anything
    // from under them; they settle on their (cancelled) CQEs. Entering the kernel right away
    // makes close() finish within this call in the usual case, as on the polling backends.
    this.#sqe(op);
    this.#submit(false);
    this.#reap();
    this.changed();
    return promise;
  }

  // ---- the loop --------------------------------------------------------------------------

  run(blocking: boolean): boolean {
    if (this.disposed) return false;
    this.#inlineReaps = INLINE_REAPS;
    if (this.#pending === 0 && this.timers.size === 0) return false;
    let wait = false;
    if (blocking && this.#ring.cqReady() === 0) {
      const timeout = this.timers.timeout(clock());
      if (timeout !== 0) {
        wait = true;
        if (timeout > 0) this.#armDeadline(clock() + timeout, timeout);
      }
    }
    this.#submit(wait);
    this.#reap();
    this.timers.runDue(clock());
    return true;
  }

  override dispose(): void {
    if (this.disposed || this.#disposing) return;
    this.#disposing = true;
    for (const fd of [...this.#fds.keys()]) this.#forget(fd);
    // Everything else the kernel still holds: the wake poll, deadline timeouts, closes.
    for (let slot = 0; slot < this.#slots.length; slot++) {
      const entry = this.#slots[slot];
      if (entry instanceof Op && !entry.cancelled) this.#cancel(entry, new ClosedError(SYSCALL[entry.kind], -1));
      else if (entry instanceof Deadline) this.#cancelRequest(slot, Tag.Slot);
    }
    this.#cancelRequest(0, Tag.Wake);
    // SAFETY: wait (bounded) until every request's CQE is in: only then is no buffer of ours
    // in the kernel's hands. A request that will not finish in time (a READ of a slow device in
    // an io-wq worker) keeps its record, and so its buffer, referenced forever in `leaked`.
    const until = clock() + 2000;
    for (;;) {
      this.#submit(false);
      this.#reap();
      if (this.#busySlots() === 0 && !this.#wakeArmed) break;
      if (clock() > until) {
        leaked.push(...this.#slots.filter((s) => s !== null));
        debug(`io_uring dispose: ${this.#busySlots()} requests did not finish; their memory is kept`);
        break;
      }
      pause(1);
    }
    this.#pending = this.#refedPending = 0;
    const clean = this.#busySlots() === 0;
    this.#disposedClean = clean;
    this.#ring.close();
    if (clean) {
      // SAFETY: borrowed reads' views point into the provided buffers: their memory is freed
      // only when the last loan comes back (#giveBack).
      if (this.#lent === 0) this.#freeBuffers();
      for (const b of this.#scratch) b.free();
    }
    super.dispose();
  }

  // ---- starting operations ---------------------------------------------------------------

  #op(kind: Kind, fd: number, options: OperationOptions | undefined): Op {
    checkOperation(kind, fd, options, this.disposed);
    const op = new Op();
    op.kind = kind;
    op.fd = fd;
    return op;
  }

  #start<T>(op: Op, options: OperationOptions | undefined): Promise<T> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let state = this.#fds.get(op.fd);
    if (state?.closer) return Promise.reject(new ClosedError(SYSCALL[op.kind], op.fd));
    if (!state) {
      state = new FdState(op.fd);
      this.#fds.set(op.fd, state);
    }
    op.state = state;
    const promise = new Promise<T>((resolve, reject) => {
      op.resolve = resolve as Settle;
      op.reject = reject;
    });
    const timeout = options?.timeout;
    if (timeout !== undefined) {
      op.timeoutMs = timeout;
      op.deadline = clock() + timeout;
    }
    if (signal) {
      op.signal = signal;
      op.onAbort = () => this.#cancel(op, signal.reason);
      signal.addEventListener("abort", op.onAbort, { once: true });
    }
    this.#pending++;
    op.refed = !this.#unrefedFds.has(op.fd);
    if (op.refed) this.#refedPending++;
    const queue = isReader(op.kind) ? state.readers : state.writers;
    queue.push(op);
    if (queue.head === op) this.#issue(op);
    this.#waitingTimer(op);
    // Drivers care about transitions only: the first pending operation (owner mode waking up)
    // and the first ref'd one (keep-alive); #waitTimer reports new deadlines itself.
    if (this.#pending === 1 || (op.refed && this.#refedPending === 1)) this.changed();
    return promise;
  }

  /** A heap timer for an operation that waits in JS (an SQE gets a LINK_TIMEOUT instead). */
  #waitTimer(op: Op): void {
    op.timer = this.timers.add(op.deadline, () => {
      op.timer = null;
      this.#cancel(op, new TimeoutError(SYSCALL[op.kind], op.timeoutMs));
    });
    this.changed(); // the guest driver mirrors the earliest deadline with a host timer
  }

  /** Starts the operation at the head of its queue: from multishot data, or as an SQE. */
  #issue(op: Op): void {
    const state = op.state!;
    if (state.kind === FdKind.Unknown) state.kind = classify(op.fd);
    if (op.buf !== null && op.buf.byteLength === 0 && isDetached(op.buf)) {
      this.#settle(op, false, new TypeError(`${SYSCALL[op.kind]}: buffer was detached while the operation was waiting`));
      return;
    }
    if (op.attempted && op.deadline <= clock()) {
      this.#settle(op, false, new TimeoutError(SYSCALL[op.kind], op.timeoutMs));
      return;
    }
    op.attempted = true;
    switch (op.kind) {
      case Kind.Read:
      case Kind.ReceiveMessage:
      case Kind.WaitReadable:
        if (state.recv || (op.kind === Kind.Read && this.#multishotRecv && state.kind === FdKind.Tcp)) {
          if (this.#fromRecvSource(op, state)) return this.#waitingTimer(op);
        }
        break;
      case Kind.Accept:
        if (this.#multishotAccept || state.accept) {
          this.#fromAcceptSource(op, state);
          return this.#waitingTimer(op);
        }
        break;
    }
    this.#sqe(op);
  }

  /** An operation left waiting in JS keeps its deadline through a heap timer. */
  #waitingTimer(op: Op): void {
    if (op.phase === Phase.Waiting && op.deadline !== Infinity && !op.timer) this.#waitTimer(op);
  }

  /** Writes the operation's SQE (and its LINK_TIMEOUT). */
  #sqe(op: Op): void {
    const state = op.state!;
    const fd = op.fd;
    const slot = this.#slot(op);
    const link = op.deadline !== Infinity ? C.IOSQE_IO_LINK : 0;
    const at = this.#claim(link ? 2 : 1);
    const ring = this.#ring;
    // SAFETY (every case): the kernel writes only into native memory — a provided buffer, the
    // slot's scratch, `op.message` — which stays reserved until the CQE. It touches the caller's
    // buffer only while performing a MSG_DONTWAIT/RWF_NOWAIT operation inside our own
    // io_uring_enter, while `op` holds the buffer; a would-block comes back as EAGAIN. The one
    // exception is `mayBlock`: a regular file that answered EAGAIN although poll said ready is
    // read or written by an io-wq worker later; `op` (referenced from `#slots` until the CQE)
    // keeps the buffer alive until then.
    if (op.polling) {
      ring.prep(at, OPS.POLL_ADD, link, fd, 0, 0, 0, isReader(op.kind) ? POLL_READABLE : C.POLLOUT, slot, Tag.Slot);
    } else {
      switch (op.kind) {
        case Kind.Read: {
          const notSocket = state.kind === FdKind.NotSocket;
          const borrowed = op.borrow > 0;
          if (this.#buffers && state.kind !== FdKind.Packet && !op.direct && (op.waitedDirect || borrowed)) {
            // Into a provided buffer, whenever the data comes. A borrowed read lends that buffer
            // to the caller as is; a read into the caller's buffer copies it out.
            op.selected = true;
            const want = borrowed ? op.borrow : op.buf!.byteLength;
            const large = want > SMALL_BUFFERS.size;
            op.largeBuffer = large;
            const len = Math.min(want, large ? LARGE_BUFFERS.size : SMALL_BUFFERS.size);
            ring.prep(at, notSocket ? OPS.READ : OPS.RECV, link | C.IOSQE_BUFFER_SELECT, fd, 0, len, notSocket ? U64_MAX_AS_NUMBER : 0, 0, slot, Tag.Slot);
            ring.setBufGroup(at, large ? LARGE_BUFFERS.group : SMALL_BUFFERS.group);
            break;
          }
          // Straight into the caller's buffer (a borrowed read takes one from the pool).
          if (op.buf === null) {
            const backing = (op.backing = this.#pool.take(op.borrow));
            op.buf = op.borrow < backing.byteLength ? backing.subarray(0, op.borrow) : backing;
          }
          const buf = op.buf;
          if (this.#buffers && state.kind !== FdKind.Packet && !op.direct) {
            // First straight into the caller's buffer, without waiting: usually data is there
            // (a copy and a provided buffer saved); on EAGAIN the read waits as below.
            op.optimistic = true;
            if (notSocket) ring.prep(at, OPS.READ, link, fd, state.addressOf(buf), buf.byteLength, U64_MAX_AS_NUMBER, C.RWF_NOWAIT, slot, Tag.Slot);
            else ring.prep(at, OPS.RECV, link, fd, state.addressOf(buf), buf.byteLength, 0, C.MSG_DONTWAIT, slot, Tag.Slot);
          } else if (notSocket) {
            ring.prep(at, OPS.READ, link, fd, state.addressOf(buf), buf.byteLength, U64_MAX_AS_NUMBER, op.mayBlock ? 0 : C.RWF_NOWAIT, slot, Tag.Slot);
          } else {
            ring.prep(at, OPS.RECV, link, fd, state.addressOf(buf), buf.byteLength, 0, C.MSG_DONTWAIT, slot, Tag.Slot);
          }
          break;
        }
        case Kind.Write: {
          const buf = op.buf!;
          if (state.kind === FdKind.NotSocket) ring.prep(at, OPS.WRITE, link, fd, state.addressOf(buf), buf.byteLength, U64_MAX_AS_NUMBER, op.mayBlock ? 0 : C.RWF_NOWAIT, slot, Tag.Slot);
          else ring.prep(at, OPS.SEND, link, fd, state.addressOf(buf), buf.byteLength, 0, C.MSG_DONTWAIT | C.MSG_NOSIGNAL, slot, Tag.Slot);
          break;
        }
        case Kind.Accept:
          ring.prep(at, OPS.ACCEPT, link, fd, 0, 0, 0, C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, slot, Tag.Slot);
          break;
        case Kind.Connect: {
          const addr = op.sockaddr!;
          const scratch = this.#scratchOf(slot);
          scratch.bytes.set(addr, 0);
          // IORING_OP_CONNECT takes the address length in `off`.
          ring.prep(at, OPS.CONNECT, link, fd, scratch.address, 0, addr.byteLength, 0, slot, Tag.Slot);
          break;
        }
        case Kind.SendTo:
        case Kind.ReceiveFrom: {
          const receive = op.kind === Kind.ReceiveFrom;
          const scratch = this.#scratchOf(slot);
          writeMessage(scratch.bytes, scratch.address, [op.buf!], [], 0, op.address ?? undefined, receive);
          ring.prep(at, receive ? OPS.RECVMSG : OPS.SENDMSG, link, fd, scratch.address, 1, 0, C.MSG_DONTWAIT | (receive ? 0 : C.MSG_NOSIGNAL), slot, Tag.Slot);
          break;
        }
        case Kind.SendMessage:
        case Kind.ReceiveMessage: {
          const receive = op.kind === Kind.ReceiveMessage;
          const bufs = receive ? [op.buf!] : op.bufs!;
          const block = (op.message ??= new NativeBlock(messageSize(bufs.length, receive ? op.maxFds : op.fds.length)));
          writeMessage(block.bytes, block.address, bufs, op.fds, op.maxFds, undefined, receive);
          ring.prep(at, receive ? OPS.RECVMSG : OPS.SENDMSG, link, fd, block.address, 1, 0, C.MSG_DONTWAIT | (receive ? C.MSG_CMSG_CLOEXEC : C.MSG_NOSIGNAL), slot, Tag.Slot);
          break;
        }
        case Kind.WaitReadable:
        case Kind.WaitWritable:
          ring.prep(at, OPS.POLL_ADD, link, fd, 0, 0, 0, op.kind === Kind.WaitReadable ? POLL_READABLE : C.POLLOUT, slot, Tag.Slot);
          break;
        case Kind.Close:
          ring.prep(at, OPS.CLOSE, 0, fd, 0, 0, 0, 0, slot, Tag.Slot);
          break;
      }
    }
    if (link) this.#linkTimeout(this.#scratchOf(slot), Math.max(0, op.deadline - clock()));
    op.phase = Phase.InKernel;
    if (op.timer) {
      this.timers.cancel(op.timer);
      op.timer = null;
    }
    state.inflight++;
    this.#queueFlush();
  }

  /** Writes a LINK_TIMEOUT for the SQE just written; `ms` from now. */
  #linkTimeout(scratch: Scratch, ms: number): void {
    const at = this.#ring.claim(); // reserved by #claim(2)
    const ns = Math.max(0, Math.round(ms * 1e6));
    // SAFETY: the timespec lives in the slot's native scratch; the kernel copies it when it
    // prepares the SQE, which happens before the slot can be reused.
    scratch.view.setBigInt64(SCRATCH_TIMESPEC, BigInt(Math.floor(ns / 1e9)), true);
    scratch.view.setBigInt64(SCRATCH_TIMESPEC + 8, BigInt(ns % 1e9), true);
    this.#ring.prep(at, OPS.LINK_TIMEOUT, 0, -1, scratch.address + SCRATCH_TIMESPEC, 1, 0, 0, 0, Tag.Ignore);
  }

  /** One request on `state`'s fd finished (an idle state may be replaced on fd reuse). */
  #inflightDone(state: FdState): void {
    state.inflight--;
  }

  // ---- multishot sources -----------------------------------------------------------------

  #fromAcceptSource(op: Op, state: FdState): void {
    const source = (state.accept ??= new Source(Kind.Accept, state, true));
    const fd = source.fds.shift();
    if (fd !== undefined) {
      this.#adoptAccepted(fd, state);
      this.#settle(op, true, fd);
      return;
    }
    if (source.error) {
      const e = source.error;
      source.error = null;
      this.#settle(op, false, e);
      return;
    }
    if (!source.armed) this.#armSource(source);
  }

  /**
   * Serves a reader from the fd's received data. Returns false when there is none and the fd
   * has no multishot RECV to wait for: the operation then goes to the kernel itself.
   */
  #fromRecvSource(op: Op, state: FdState): boolean {
    const source = (state.recv ??= new Source(Kind.Read, state, this.#multishotRecv && state.kind === FdKind.Tcp));
    if (op.kind === Kind.WaitReadable) {
      if (source.chunks.length > 0 || source.eof || source.error) this.#settle(op, true, undefined);
      else if (!source.multishot) return false;
      else if (!source.armed && !source.starved) this.#armSource(source);
      return true;
    }
    if (source.chunks.length > 0 && op.buf === null) {
      // A borrowed read: lend the first buffer as it is, unless a read already took part of it
      // or it holds more than the caller wants; then copy into a fresh buffer below.
      const chunk = source.chunks[0]!;
      if (chunk.offset === 0 && chunk.length <= op.borrow) {
        source.chunks.shift();
        this.#rearmPaused(source);
        this.#settle(op, true, this.#lend(chunk.bid, chunk.length));
        return true;
      }
      const backing = (op.backing = this.#pool.take(op.borrow));
      op.buf = backing.subarray(0, Math.min(op.borrow, backing.byteLength));
    }
    if (source.chunks.length > 0) {
      // Everything received so far that fits: one read (and the caller's one write after it)
      // for what arrived in several segments.
      const buf = op.buf!;
      let n = 0;
      while (n < buf.byteLength && source.chunks.length > 0) {
        const chunk = source.chunks[0]!;
        const take = Math.min(buf.byteLength - n, chunk.length - chunk.offset);
        buf.set(this.#view(chunk.bid, chunk.offset + take).subarray(chunk.offset), n);
        chunk.offset += take;
        n += take;
        if (chunk.offset < chunk.length) break;
        source.chunks.shift();
        this.#recycle(chunk.bid);
        if (op.kind === Kind.ReceiveMessage) break;
      }
      this.#rearmPaused(source);
      if (op.kind === Kind.ReceiveMessage) this.#settle(op, true, { bytes: n, fds: [], address: null, truncated: false });
      else this.#settle(op, true, n);
      return true;
    }
    if (source.error) {
      const e = source.error;
      source.error = null;
      this.#settle(op, false, e);
      return true;
    }
    if (source.eof) {
      this.#settle(op, true, op.kind === Kind.ReceiveMessage ? { bytes: 0, fds: [], address: null, truncated: false } : 0);
      return true;
    }
    // Every provided buffer is taken (borrowed reads may keep them as long as they like): the
    // read goes to the kernel itself, and reads directly if none is free by then.
    if (!source.multishot || source.starved) return false;
    if (!source.armed) this.#armSource(source);
    return true;
  }

  /** A multishot receive paused for having too much unread resumes once there is room again. */
  #rearmPaused(source: Source): void {
    if (source.multishot && !source.armed && !source.eof && !source.error && !source.starved && source.chunks.length < MAX_CHUNKS_PER_FD / 2) {
      this.#armSource(source);
    }
  }

  #armSource(source: Source): void {
    const state = source.state;
    if (state.removed) return;
    const slot = this.#slot(source);
    const at = this.#claim(1);
    if (source.kind === Kind.Accept) {
      this.#ring.prep(at, OPS.ACCEPT, 0, state.fd, 0, 0, 0, C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, slot, Tag.Slot);
      this.#ring.setIoprio(at, C.IORING_ACCEPT_MULTISHOT);
    } else {
      // SAFETY: the kernel picks buffers from the provided ring (native memory, see BufferRing).
      this.#ring.prep(at, OPS.RECV, C.IOSQE_BUFFER_SELECT, state.fd, 0, 0, 0, 0, slot, Tag.Slot);
      this.#ring.setIoprio(at, C.IORING_RECV_MULTISHOT);
      this.#ring.setBufGroup(at, SMALL_BUFFERS.group);
    }
    source.armed = true;
    state.inflight++;
    this.#queueFlush();
  }

  #cancelSource(source: Source): void {
    if (source.armed && !source.cancelling) {
      source.cancelling = true;
      this.#cancelRequest(source.slot, Tag.Slot);
    }
    this.#starved.delete(source);
    this.#drainSource(source);
  }

  /** Releases what a forgotten source holds: buffers back to the ring, accepted fds closed. */
  #drainSource(source: Source): void {
    for (const c of source.chunks.splice(0)) this.#recycle(c.bid);
    for (const fd of source.fds.splice(0)) closeQuietly(fd);
  }

  #publishBuffers(): void {
    this.#buffers?.publish();
    this.#largeBuffers?.publish();
  }

  /** Bytes `[0, end)` of the provided buffer `ref`. */
  #view(ref: number, end: number): Uint8Array {
    return ref >= LARGE_REF ? this.#largeBuffers!.view(ref - LARGE_REF, end) : this.#buffers!.view(ref, end);
  }

  /** Gives the provided buffer `ref` back to its ring; a receive waiting for one may go. */
  #recycle(ref: number): void {
    if (ref >= LARGE_REF) this.#largeBuffers!.recycle(ref - LARGE_REF);
    else this.#buffers!.recycle(ref);
    this.#recycled = true;
  }

  /** Whether a buffer went back since the receives that found none were last retried. */
  #recycled = false;

  /** Buffers for borrowed reads that cannot use a provided buffer. */
  readonly #pool = new BufferPool();
  /** Provided buffers lent to callers by borrowed reads and not given back yet. */
  #lent = 0;
  readonly #lender: Lender = { giveBack: (ref) => this.#giveBack(ref) };

  /**
   * Lends provided buffer `ref` (its first `length` bytes) to a borrowed read.
   * SAFETY: a buffer taken off the ring is not the kernel's until `#recycle` puts it back, which
   * only the loan's release does; the memory stays mapped while any loan is out, even after
   * `dispose` (see there).
   */
  #lend(ref: number, length: number): Loan {
    this.#lent++;
    return new Loan(this.#view(ref, length), this.#lender, ref, null);
  }

  #giveBack(ref: number): void {
    this.#lent--;
    if (this.disposed || this.#disposing) {
      // The rings are gone or going: nothing to recycle into. The last loan frees their memory,
      // unless a request the kernel never gave back may still use them (see dispose).
      if (this.#lent === 0 && this.disposed && this.#disposedClean) this.#freeBuffers();
      return;
    }
    this.#recycle(ref);
    // A receive waiting for a free buffer may go now (owner mode submits on its next iteration).
    if (this.#starved.size > 0) this.#queueFlush();
  }

  /** Set by dispose when every request came back: the buffer rings may then be freed. */
  #disposedClean = false;

  #freeBuffers(): void {
    this.#buffers?.close();
    this.#largeBuffers?.close();
  }

  /**
   * Re-arms the multishot receives that found every provided buffer in use, once buffers came back
   * (and been published). Called at the end of each reap and before each submission: an ENOBUFS
   * may arrive after the recycles that made room, in the same batch.
   */
  #retryStarved(): void {
    if (!this.#recycled || this.#starved.size === 0) return;
    this.#recycled = false;
    const sources = [...this.#starved];
    this.#starved.clear();
    for (const source of sources) {
      source.starved = false;
      const head = source.state.readers.head;
      if (!source.state.removed && !source.armed && head && head.phase === Phase.Waiting) this.#armSource(source);
    }
  }

  #sourceCqe(source: Source, res: number, flags: number): void {
    const state = source.state;
    const more = (flags & C.IORING_CQE_F_MORE) !== 0;
    if (!more) {
      source.armed = false;
      source.cancelling = false;
      this.#release(source.slot);
      source.slot = -1;
      this.#inflightDone(state);
    }
    if (source.kind === Kind.Accept) {
      if (res >= 0) {
        source.fds.push(res);
      } else if (res !== -ERRNO.ECANCELED) {
        source.error = new SystemError(-res, "accept");
      }
      if (state.removed) {
        this.#drainSource(source);
      } else {
        while (state.readers.head?.kind === Kind.Accept && state.readers.head.phase === Phase.Waiting && (source.fds.length > 0 || source.error)) {
          this.#fromAcceptSource(state.readers.head, state);
        }
        if (source.armed && source.fds.length >= MAX_READY_ACCEPTS && !source.cancelling) {
          source.cancelling = true;
          this.#cancelRequest(source.slot, Tag.Slot);
        } else if (!source.armed && state.readers.head?.kind === Kind.Accept && !source.error) {
          this.#armSource(source);
        }
      }
    } else {
      if (res > 0 && flags & C.IORING_CQE_F_BUFFER) {
        source.chunks.push({ bid: flags >>> IORING.IORING_CQE_BUFFER_SHIFT, length: res, offset: 0 });
      } else if (res === 0) {
        if (flags & C.IORING_CQE_F_BUFFER) this.#recycle(flags >>> IORING.IORING_CQE_BUFFER_SHIFT);
        source.eof = true;
      } else if (res === -ERRNO.ENOBUFS) {
        this.stats.starved++;
        source.starved = true;
        this.#starved.add(source);
      } else if (res < 0 && res !== -ERRNO.ECANCELED) {
        source.error = new SystemError(-res, "read");
      }
      if (state.removed) {
        this.#drainSource(source);
        return;
      }
      while (state.readers.head && state.readers.head.phase === Phase.Waiting) {
        const head = state.readers.head;
        if (source.chunks.length === 0 && !source.eof && !source.error) break;
        this.#fromRecvSource(head, state);
        if (head.phase !== Phase.Done) break;
      }
      if (source.armed && source.chunks.length >= MAX_CHUNKS_PER_FD && !source.cancelling) {
        source.cancelling = true;
        this.#cancelRequest(source.slot, Tag.Slot);
      } else if (!source.armed && !source.starved && !source.eof && !source.error && state.readers.head && state.readers.head.phase === Phase.Waiting) {
        this.#armSource(source);
      }
    }
  }

  /** An accepted fd is a socket of the listener's kind: no need to ask the kernel later. */
  #adoptAccepted(fd: number, listener: FdState): void {
    const stale = this.#fds.get(fd);
    if (stale && !stale.closer && stale.inflight === 0 && !stale.readers.head && !stale.writers.head) this.#fds.delete(fd);
    if (!this.#fds.has(fd) && listener.kind !== FdKind.Unknown) {
      const state = new FdState(fd);
      state.kind = listener.kind;
      this.#fds.set(fd, state);
    }
  }

  // ---- cancellation and settling ---------------------------------------------------------

  /**
   * Cancels `op` with `reason`: at once when it waits in JS; through ASYNC_CANCEL when it is in
   * the kernel, where it then settles on its own CQE (with its result if it won the race).
   */
  #cancel(op: Op, reason: unknown): void {
    if (op.phase === Phase.Done) return;
    if (op.phase === Phase.Waiting) {
      this.#settle(op, false, reason);
      return;
    }
    if (op.cancelled) return;
    op.cancelled = true;
    op.cancelReason = reason;
    this.#cancelRequest(op.slot, Tag.Slot);
  }

  /** Writes an ASYNC_CANCEL for the request with user_data `(tag << 32) | slot`. */
  #cancelRequest(slot: number, tag: Tag): void {
    const at = this.#claim(1);
    this.#ring.prep(at, OPS.ASYNC_CANCEL, 0, -1, tag * 0x1_0000_0000 + slot, 0, 0, 0, 0, Tag.Ignore);
    this.#queueFlush();
  }

  /** Completes `op`: unlinks it, releases what it holds, settles its promise, issues the next. */
  #settle(op: Op, ok: boolean, value: unknown): void {
    if (op.phase === Phase.Done) return;
    const wasInKernel = op.phase === Phase.InKernel;
    op.phase = Phase.Done;
    const state = op.state!;
    const queue = op.queue;
    const wasHead = queue !== null && queue.head === op;
    if (queue) queue.unlink(op);
    if (wasInKernel) {
      this.#release(op.slot);
      op.slot = -1;
    }
    this.#pending--;
    if (op.refed) this.#refedPending--;
    if (op.timer) {
      this.timers.cancel(op.timer);
      op.timer = null;
    }
    if (op.signal && op.onAbort) op.signal.removeEventListener("abort", op.onAbort);
    op.message?.free();
    op.message = null;
    // A borrowed read that read into a pool buffer (or hit EOF) lends that buffer.
    const backing = op.backing;
    if (backing !== null) {
      op.backing = null;
      if (ok) value = this.#pool.lend(backing, value as number);
      else this.#pool.giveBack(0, backing);
    } else if (ok && op.borrow > 0 && typeof value === "number") {
      value = ownLoan(new Uint8Array(0)); // end of stream: the only count without a buffer
    }
    op.buf = null;
    op.bufs = null;
    if (ok) op.resolve(value as never);
    else op.reject(value);
    if (op.kind === Kind.Close) {
      if (this.#fds.get(op.fd) === state) this.#fds.delete(op.fd);
      state.closer = null;
    } else if (wasHead && !state.removed && queue.head && queue.head.phase === Phase.Waiting) {
      this.#issue(queue.head);
    }
    if (wasInKernel) this.#inflightDone(state);
    if (this.#refedPending === 0) this.changed();
  }

  /** A CQE for operation `op`. */
  #opCqe(op: Op, res: number, flags: number): void {
    if (op.selected && flags & C.IORING_CQE_F_BUFFER) {
      this.#selectedCqe(op, res, (flags >>> IORING.IORING_CQE_BUFFER_SHIFT) + (op.largeBuffer ? LARGE_REF : 0));
    } else if (res >= 0 && op.polling && op.cancelled) {
      // Its readiness poll fired, but the operation itself was never retried: nothing happened.
      this.#settle(op, false, op.cancelReason);
    } else if (res >= 0 && op.polling) {
      // Ready now: try the operation itself again (from the top: buffer, deadline).
      this.#backToWaiting(op);
      op.polling = false;
      op.retried = true;
      if (op.connecting) this.#finishConnect(op);
      else this.#issue(op);
    } else if (res >= 0) {
      let value: unknown;
      try {
        value = this.#result(op, res);
      } catch (e) {
        this.#settle(op, false, e);
        return;
      }
      this.#settle(op, true, value);
    } else if (op.cancelled) {
      // Cancelled by us (abort, close, dispose): whatever the kernel says, the kernel is done.
      this.#settle(op, false, op.cancelReason);
    } else if ((res === -ERRNO.ECANCELED || res === -ERRNO.EINTR) && op.deadline !== Infinity) {
      // Its LINK_TIMEOUT fired.
      this.#settle(op, false, new TimeoutError(SYSCALL[op.kind], op.timeoutMs));
    } else if (res === -ERRNO.ENOBUFS && op.selected) {
      // Every provided buffer is in use (a burst of receives larger than the ring): the data is
      // there, so take it straight into the caller's buffer with MSG_DONTWAIT/RWF_NOWAIT.
      this.stats.starved++;
      this.#backToWaiting(op);
      op.direct = true;
      this.#issue(op);
    } else if (res === -ERRNO.EAGAIN && op.optimistic) {
      // Nothing to read yet: wait for data in a receive into a provided buffer.
      this.#backToWaiting(op);
      op.optimistic = false;
      op.waitedDirect = true;
      this.#issue(op);
    } else if (res === -ERRNO.EAGAIN || (op.kind === Kind.Connect && (res === -ERRNO.EINPROGRESS || res === -ERRNO.EALREADY))) {
      // Would block (MSG_DONTWAIT/RWF_NOWAIT), or (before Linux 5.x) a connect in progress:
      // wait for readiness with a POLL_ADD, which holds no buffer, then try again. A file that
      // says EAGAIN again right after poll said ready cannot do NOWAIT: let the kernel block.
      if (op.retried && (op.kind === Kind.Write || op.kind === Kind.Read)) op.mayBlock = true;
      this.#backToWaiting(op);
      op.polling = true;
      op.connecting = op.kind === Kind.Connect;
      this.#sqe(op);
    } else {
      this.#settle(op, false, new SystemError(-res, SYSCALL[op.kind]));
    }
  }

  /** The operation leaves the kernel but not its queue (it will be issued again). */
  #backToWaiting(op: Op): void {
    this.#release(op.slot);
    op.slot = -1;
    op.phase = Phase.Waiting;
    op.selected = false;
    this.#inflightDone(op.state!);
  }

  /** A connect that was in progress and whose socket turned writable: SO_ERROR says how it went. */
  #finishConnect(op: Op): void {
    const err = socketErrorOf(op.fd);
    if (err === 0) this.#settle(op, true, undefined);
    else this.#settle(op, false, new SystemError(err, "connect"));
  }

  /** A read into provided buffer `bid` (a ref) completed with `res` bytes. */
  #selectedCqe(op: Op, res: number, bid: number): void {
    if (res <= 0) {
      this.#recycle(bid);
      if (res === 0) this.#settle(op, true, 0);
      else this.#settle(op, false, op.cancelled ? op.cancelReason : new SystemError(-res, SYSCALL[op.kind]));
      return;
    }
    if (op.buf === null) {
      // A borrowed read: the provided buffer itself is the result.
      this.#settle(op, true, this.#lend(bid, res));
      return;
    }
    const buf = op.buf;
    if (buf.byteLength === 0 && isDetached(buf)) {
      // The caller gave the buffer away while the read waited: keep the data for the next read.
      const source = (op.state!.recv ??= new Source(Kind.Read, op.state!, false));
      source.chunks.push({ bid, length: res, offset: 0 });
      this.#settle(op, false, new TypeError("read: buffer was detached while the operation was pending"));
      return;
    }
    // Data that arrived is delivered even when a cancel lost the race: nothing is dropped.
    buf.set(this.#view(bid, res), 0);
    this.#recycle(bid);
    this.#settle(op, true, res);
  }

  #result(op: Op, res: number): unknown {
    switch (op.kind) {
      case Kind.ReceiveFrom: {
        const m = readMessage(this.#scratchOf(op.slot).bytes, res, 0);
        return [res, m.address ?? UNNAMED] as ReceiveFromResult;
      }
      case Kind.ReceiveMessage:
        return readMessage(op.message!.bytes, res, op.maxFds);
      case Kind.Accept:
        this.#adoptAccepted(res, op.state!);
        return res;
      case Kind.WaitReadable:
      case Kind.WaitWritable: {
        if (res & C.POLLNVAL) throw new SystemError(ERRNO.EBADF, "poll", `fd ${op.fd} is not open`);
        const err = op.connecting ? socketErrorOf(op.fd) : 0;
        if (err !== 0) throw new SystemError(err, "connect");
        return undefined;
      }
      case Kind.Connect:
      case Kind.Close:
        return undefined;
      default:
        return res;
    }
  }

  // ---- the rings -------------------------------------------------------------------------

  #slot(entry: SlotEntry): number {
    if (entry.slot >= 0) return entry.slot;
    let slot = this.#freeSlots.pop();
    if (slot === undefined) {
      slot = this.#slots.length;
      this.#slots.push(null);
    }
    this.#slots[slot] = entry;
    entry.slot = slot;
    return slot;
  }

  #release(slot: number): void {
    if (slot < 0) return;
    this.#slots[slot] = null;
    this.#freeSlots.push(slot);
  }

  #busySlots(): number {
    return this.#slots.length - this.#freeSlots.length;
  }

  /** The native scratch memory of `slot` (allocated a block of slots at a time, never moved). */
  #scratchOf(slot: number): Scratch {
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

  /**
   * Claims an SQE, making sure `n` are free: a linked chain must go out in one submission, so
   * the caller claims the chain's other SQEs with `ring.claim()` straight after.
   */
  #claim(n: number): number {
    if (!this.#ring.hasSpace(n)) this.#submit(false);
    while (!this.#ring.hasSpace(n)) {
      // The kernel did not take everything (CQ overflow backpressure): make room and retry.
      this.#reap();
      this.#submit(false);
    }
    return this.#ring.claim();
  }

  #queueFlush(): void {
    if (this.guest && !this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flushTask);
    }
  }

  /** Publishes written SQEs and enters the kernel: submits them and, with `wait`, waits for a CQE. */
  #submit(wait: boolean): void {
    const ring = this.#ring;
    this.#publishBuffers();
    this.#retryStarved();
    const n = ring.publish();
    if (n === 0 && !wait && !ring.needsEnter()) return;
    for (;;) {
      this.stats.enters++;
      const r = ring.enter(n, wait ? 1 : 0, wait);
      if (r > 0) this.stats.submitted += r;
      if (r === -ERRNO.EBUSY || r === -ERRNO.EAGAIN) {
        // Completions are backed up: reap them, then submit again (without waiting: some just
        // arrived).
        if (this.#reap() === 0 && !wait) return;
        wait = false;
        continue;
      }
      return; // submitted, or EINTR: the caller's iteration simply ends early
    }
  }

  /** Handles every available CQE; returns how many. Not re-entrant (a nested call returns 0). */
  #reap(): number {
    if (this.#reaping) return 0;
    this.#reaping = true;
    try {
      return this.#reapAll();
    } finally {
      this.#reaping = false;
      this.#ring.release();
      this.#publishBuffers();
      this.#retryStarved();
    }
  }

  #reaping = false;

  /**
   * Counters for benchmarks, tuning and tests: kernel entries, SQEs submitted, CQEs handled, and
   * receives that found every provided buffer in use (ENOBUFS) and waited for one.
   */
  readonly stats = { enters: 0, submitted: 0, completions: 0, starved: 0 };

  #reapAll(): number {
    const ring = this.#ring;
    const cqes = ring.cqes;
    let count = 0;
    for (;;) {
      for (let ready = ring.cqReady(); ready > 0; ready--) {
        const at = ring.cqIndex(0);
        const lo = cqes[at]! >>> 0;
        const hi = cqes[at + 1]! >>> 0;
        const res = cqes[at + 2]!;
        const flags = cqes[at + 3]! >>> 0;
        ring.advance(1);
        count++;
        this.stats.completions++;
        if (hi === Tag.Slot) {
          const entry = this.#slots[lo];
          if (entry instanceof Op) this.#opCqe(entry, res, flags);
          else if (entry instanceof Source) this.#sourceCqe(entry, res, flags);
          else if (entry instanceof Deadline) this.#deadlineCqe(entry);
        } else if (hi === Tag.Wake) {
          this.#wakeArmed = false;
          if (!this.disposed && !this.#disposing) {
            eventfdRead(this.wakeFd);
            this.#armWake();
          }
        }
        // Tag.Ignore: a cancel or a link timeout — the operation's own CQE carries the outcome.
      }
      ring.release();
      if (ring.cqReady() > 0) continue;
      if (!ring.needsEnter()) return count;
      // The kernel holds completions it could not post (CQ overflow), or task work that posts
      // them (COOP_TASKRUN): have it run and flush them.
      this.#publishBuffers();
      ring.enter(0, 0, true);
    }
  }

  #armWake(): void {
    if (this.#wakeArmed) return;
    const at = this.#claim(1);
    this.#ring.prep(at, OPS.POLL_ADD, 0, this.wakeFd, 0, 0, 0, C.POLLIN, 0, Tag.Wake);
    this.#wakeArmed = true;
    this.#queueFlush();
  }

  /** Arms a TIMEOUT for the earliest timer unless one at least as early is armed. */
  #armDeadline(at: number, ms: number): void {
    if (at >= this.#armedDeadline) return;
    this.#armedDeadline = at;
    const d = new Deadline(at);
    const slot = this.#slot(d);
    const scratch = this.#scratchOf(slot);
    const ns = Math.round(ms * 1e6);
    // SAFETY: the timespec is in the slot's native scratch, which stays reserved until the
    // TIMEOUT's CQE releases the slot.
    scratch.view.setBigInt64(SCRATCH_TIMESPEC, BigInt(Math.floor(ns / 1e9)), true);
    scratch.view.setBigInt64(SCRATCH_TIMESPEC + 8, BigInt(ns % 1e9), true);
    const sqe = this.#claim(1);
    this.#ring.prep(sqe, OPS.TIMEOUT, 0, -1, scratch.address + SCRATCH_TIMESPEC, 1, 0, 0, slot, Tag.Slot);
  }

  #deadlineCqe(d: Deadline): void {
    this.#release(d.slot);
    if (d.at === this.#armedDeadline) this.#armedDeadline = Infinity;
  }
}

/** Records of requests that never completed on a disposed loop: kept so their memory lives. */
const leaked: SlotEntry[] = [];

/** How many requests disposed loops had to abandon in the kernel (tests expect 0). */
export function leakedRequests(): number {
  return leaked.length;
}

/** One slot's native scratch memory: its address and views over its bytes. */
interface Scratch {
  readonly address: number;
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

function classify(fd: number): FdKind {
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

function socketErrorOf(fd: number): number {
  try {
    return socketError(fd);
  } catch (e) {
    return e instanceof SystemError ? e.errno : ERRNO.EBADF;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // Already gone.
  }
}

/** Validates and encodes a socket address (a bad one throws before anything is queued). */
function encodeAddress(address: SocketAddress): Uint8Array {
  const bytes = new Uint8Array(SOCKADDR_MAX);
  return bytes.subarray(0, encodeSockaddr(address, bytes));
}

/** Sleeps the thread for `ms` (dispose waiting for the kernel; never on the hot path). */
function pause(ms: number): void {
  Atomics.wait(pauseCell, 0, 0, ms);
}
const pauseCell = new Int32Array(new SharedArrayBuffer(4));
