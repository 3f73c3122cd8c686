/**
 * IoUringEventLoop: the completion contract on io_uring, with the kernel's own completions.
 *
 * Every operation becomes one 64-byte SQE written straight into the ring's shared memory; a
 * whole batch of them costs one `io_uring_enter`. The kernel performs the recv/send/accept
 * itself (trying it at once, and arming an internal poll when it would block) and posts a CQE
 * with the result, which settles the operation's promise. Requires Linux 5.6 for the ops
 * (`probe.ts`); provided buffer rings (5.19) and multishot requests (5.19/6.0) where present.
 *
 * Files: `probe.ts` (what the kernel offers), `records.ts` (what is recorded per operation and
 * fd), `submission.ts` (slots, submit, reap), `prep.ts` (each operation's SQE and result),
 * `buffers.ts` (provided buffers and lending), `sources.ts` (multishot requests); this file is
 * the operation's life: issue, CQE state machine, cancellation, close and dispose.
 *
 * Batching. In guest mode (the driver sets `guest`), the first SQE written in a macrotask
 * schedules one flush in a microtask, so every operation the resolved promises' continuations
 * start is submitted by the same syscall; Node's own loop polls the ring fd and runs `run(false)`
 * to reap CQEs when it turns readable. In owner mode, `run(true)` submits and waits in the same
 * `io_uring_enter`. The ring is set up with COOP_TASKRUN (no interrupt while JavaScript runs),
 * not DEFER_TASKRUN: deferred task work only runs inside our own io_uring_enter, so the ring fd
 * would never turn readable for the host's epoll in guest mode.
 *
 * Order. Per fd and direction, operations are a FIFO queue of which only the head is in the
 * kernel: two RECVs armed on one socket would be woken together and could take the bytes out of
 * order, and two SENDs could interleave. The next operation is issued when the head settles.
 *
 * Memory the kernel may touch after `io_uring_enter` returns is native, never a JS buffer
 * (see `prep.ts` for each kind): a read waits in a receive into a provided buffer; sends,
 * writes and message I/O use the caller's memory with MSG_DONTWAIT/RWF_NOWAIT, so the kernel
 * performs them inside our own `io_uring_enter` or answers EAGAIN, and then wait for readiness
 * with a POLL_ADD (no buffer). The one exception is a regular file that cannot do NOWAIT. So a
 * caller that detaches a buffer while its operation waits gets a TypeError and loses nothing.
 *
 * Cancellation is exact: an operation in the kernel (it owns a slot) is cancelled with
 * ASYNC_CANCEL, or times out through its linked LINK_TIMEOUT, and its promise settles only when
 * its own CQE arrives. An operation that waits in JS (behind the queue head, or for multishot
 * data) holds nothing the kernel could touch and settles at once.
 */
import { ffi } from "../../ffi/runtime/load.js";
import { ClosedError, SystemError, TimeoutError } from "../../sys/errors.js";
import { C, ERRNO } from "../../sys/linux/constants.js";
import { cqeBuffer, Ring, writeTimespec } from "../../sys/linux/io_uring.js";
import { openWakeup, wakeupFds, type WakeupFd } from "../../sys/wakeup.js";
import { Interest } from "../../selector/event.js";
import type { BackendName } from "../event-loop.js";
import { checkFd, isDetached } from "../checks.js";
import { CompletionLoop } from "../completion.js";
import { BufferPool, ownLoan } from "../lending.js";
import { Kind, Phase, type Queue, SYSCALL } from "../operation.js";
import { clock, type Timer } from "../timers.js";
import { debug } from "../debug.js";
import { LARGE_REF, ProvidedBuffers } from "./buffers.js";
import { decodeResult, prepare, socketErrorOf } from "./prep.js";
import { probeIoUring, type IoUringProbe } from "./probe.js";
import { classify, Deadline, FdKind, Source, Tag, UringFd, UringOp, type SlotEntry } from "./records.js";
import { Sources } from "./sources.js";
import { SCRATCH_TIMESPEC, Submission, type CompletionHandler, type RingStats } from "./submission.js";
import { describeValue } from "../../sys/args.js";

/**
 * Flushes per host-loop turn (guest mode) that may also handle the completions their
 * io_uring_enter produced at once; the rest wait for the host loop to poll the ring fd.
 */
const INLINE_REAPS = 16;

/** How long dispose waits for the kernel to give every request back. */
const DISPOSE_WAIT_MS = 2000;

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
  /** SQ entries, 2 to 32,768 (default 4096); the CQ gets 16 times as many, at most 65,536. */
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
export class IoUringEventLoop extends CompletionLoop<UringOp, UringFd> implements CompletionHandler {
  readonly backend: BackendName = "io_uring";
  /** What the kernel's io_uring offers. */
  readonly probe: IoUringProbe;
  readonly #ring: Ring;
  readonly #submission: Submission;
  readonly #buffers: ProvidedBuffers | null;
  /** Buffers for borrowed reads that cannot use a provided buffer. */
  readonly #pool = new BufferPool();
  readonly #sources: Sources;
  readonly #wakeup: WakeupFd;
  /** Whether the POLL_ADD on the wake-up fd is in the kernel. */
  #wakeArmed = false;
  /** The host loop's fd (`wakeOn`), or -1; and whether a POLL_ADD on it is in the kernel. */
  #hostFd = -1;
  #hostArmed = false;
  #flushQueued = false;
  /** Inline reaps left before the host loop must have had a turn (reset by `run`). */
  #inlineReaps = INLINE_REAPS;
  /** The timer of {@link submitLater}, while one is armed. */
  #resubmit: Timer | null = null;
  /** Earliest deadline a TIMEOUT is armed for (owner mode). */
  #armedDeadline = Infinity;
  readonly #flushTask = (): void => {
    this.#flushQueued = false;
    if (this.disposed) return;
    this.#submission.submit(false);
    // Most submissions complete inside that io_uring_enter (a send with room, a recv with data):
    // handle their CQEs now, so their continuations join this macrotask's batch instead of
    // waiting for the host loop's next turn. Bounded, so the host's own work is never starved.
    if (this.#inlineReaps > 0 && this.#ring.cqReady() > 0) {
      this.#inlineReaps--;
      this.#submission.reap();
    }
  };

  /** @internal Use `createLoop({ backend: "io_uring", ioUring })`. */
  constructor(options: IoUringOptions = {}) {
    const probe = probeIoUring();
    const entries = options.entries ?? 4096;
    if (!Number.isInteger(entries) || entries < 2 || entries > 32768) {
      throw new RangeError(`io_uring entries must be an integer from 2 to 32768, got ${describeValue(entries)}`);
    }
    const wakeup = openWakeup();
    let ring: Ring;
    try {
      ring = Ring.setup({ entries, cqEntries: Math.min(entries * 16, 65536) });
    } catch (e) {
      wakeup.close();
      throw e;
    }
    super(wakeup, { operation: UringOp, fdState: UringFd });
    this.probe = probe;
    this.#wakeup = wakeup;
    this.#ring = ring;
    this.#submission = new Submission(ring, this);
    const buffers = (this.#buffers = ProvidedBuffers.open(ring));
    if (buffers) buffers.onGiveBack = () => this.#sources.hasStarved && this.#queueFlush();
    const wantRecv = options.multishotRecv ?? ffi.env("EVLOOP_IO_URING_MULTISHOT_RECV") === "1";
    const multishot = options.multishot !== false;
    const host = {
      submission: this.#submission,
      buffers,
      pool: this.#pool,
      settle: (op: UringOp, ok: boolean, value: unknown) => this.settle(op, ok, value),
      adoptAccepted: (fd: number, listener: UringFd) => this.#adoptAccepted(fd, listener),
      queueFlush: () => this.#queueFlush(),
    };
    this.#sources = new Sources(host, multishot && probe.multishotAccept, buffers !== null && multishot && wantRecv && probe.multishotRecv);
    this.#armWake();
    debug(`io_uring ring: ${ring.sqEntries} SQ / ${ring.cqEntries} CQ entries; features ${probe.features.join(" ")}; multishot accept ${this.#sources.multishotAccept}, recv ${this.#sources.multishotRecv}`);
  }

  /** Counters for benchmarks, tuning and tests (see {@link RingStats}). */
  get stats(): RingStats {
    return this.#submission.stats;
  }

  watch(listener: (fd: number, interest: number) => void): void {
    // The ring fd is readable when CQEs are waiting.
    listener(this.#ring.fd, Interest.READABLE);
  }

  wakeOn(fd: number): void {
    if (fd === this.#hostFd) return;
    // A poll on a previous host fd ends with its cancel's CQE, which arms the new one.
    if (this.#hostArmed) this.#submission.cancel(0, Tag.Host);
    this.#hostFd = fd;
    this.#armHost();
  }

  ownFds(): number[] {
    return [this.#ring.fd, ...wakeupFds(this.#wakeup)];
  }

  override run(blocking: boolean, maxWait?: number): boolean {
    this.#inlineReaps = INLINE_REAPS;
    return super.run(blocking, maxWait);
  }

  override remove(fd: number): void {
    checkFd(fd);
    if (!this.forget(fd) || this.disposed) return;
    // Have the kernel act on the cancels now, so the operations settle within this call in the
    // usual case (as on the polling backends) even on a loop nobody is running.
    this.#submission.submit(false);
    this.#submission.reap();
  }

  // ---- hooks of the completion core ------------------------------------------------------



  protected begin<T>(op: UringOp): Promise<T> {
    let state = this.fds.get(op.fd);
    if (state === undefined) state = this.stateOf(op.fd);
    else if (state.closer) return Promise.reject(new ClosedError(SYSCALL[op.kind], op.fd));
    op.state = state;
    const queue = state.queueOf(op.kind);
    const promise = this.park<T>(op, queue);
    if (queue.head === op) this.#issue(op);
    this.#waitingTimer(op);
    // Drivers care about transitions only: the first pending operation (owner mode waking up)
    // and the first ref'd one (keep-alive); #waitingTimer reports new deadlines itself.
    if (this.pending === 1 || (op.refed && this.refedPending === 1)) this.changed();
    return promise;
  }

  protected wait(timeout: number): void {
    let wait = false;
    if (timeout !== 0 && this.#ring.cqReady() === 0) {
      wait = true;
      if (timeout > 0) this.#armDeadline(clock() + timeout, timeout);
    }
    this.#submission.submit(wait);
    this.#submission.reap();
  }

  /**
   * Cancels `op` with `reason`: at once when it waits in JS; through ASYNC_CANCEL when it is in
   * the kernel, where it then settles on its own CQE (with its result if it won the race).
   */
  protected override cancel(op: UringOp, reason: unknown): void {
    if (!this.cancelInKernel(op, reason)) return;
    this.#submission.cancel(op.slot, Tag.Slot);
    this.#queueFlush();
  }

  protected override finish(op: UringOp, ok: boolean, value: unknown): unknown {
    if (op.phase === Phase.InKernel) {
      this.#submission.release(op.slot);
      op.slot = -1;
      op.state!.inflight--;
    }
    op.message?.free();
    op.message = null;
    // A borrowed read that read into a pool buffer (or hit EOF) lends that buffer.
    const backing = op.backing;
    if (backing !== null) {
      op.backing = null;
      if (ok) return this.#pool.lend(backing, value as number);
      this.#pool.giveBack(0, backing);
    } else if (ok && op.borrow > 0 && typeof value === "number") {
      return ownLoan(new Uint8Array(0)); // end of stream: the only count without a buffer
    }
    return value;
  }

  protected override advance(op: UringOp, queue: Queue<UringOp> | null, wasHead: boolean): void {
    const state = op.state!;
    if (op.kind === Kind.Close) {
      if (this.fds.get(op.fd) === state) this.fds.delete(op.fd);
      state.closer = null;
    } else if (wasHead && !state.removed && queue!.head && queue!.head.phase === Phase.Waiting) {
      this.#issue(queue!.head);
    }
  }

  protected override holdsData(state: UringFd): boolean {
    const recv = state.recv;
    return state.inflight > 0 || (recv !== null && (recv.chunks.length > 0 || recv.armed || recv.cancelling));
  }

  protected override detach(state: UringFd): void {
    if (state.accept) this.#sources.cancel(state.accept);
    if (state.recv) this.#sources.cancel(state.recv);
  }

  protected override closeFd(fd: number): Promise<void> {
    let state = this.fds.get(fd);
    if (state?.closer) return Promise.reject(new SystemError(ERRNO.EBADF, "close", `fd ${fd} is already being closed`));
    if (!state) {
      state = new UringFd(fd);
      this.fds.set(fd, state);
    }
    this.forget(fd);
    // The fd number stays taken (and open) until its requests are cancelled and CLOSE is done.
    const { op, promise } = this.parkClose(state);
    op.state = state;
    // CLOSE goes out in the same submission as the cancels forget() wrote. Requests still in
    // flight hold their own reference to the file, so closing the number cannot pull anything
    // from under them; they settle on their (cancelled) CQEs. Entering the kernel right away
    // makes close() finish within this call in the usual case, as on the polling backends.
    this.#sqe(op);
    this.#submission.submit(false);
    this.#submission.reap();
    this.changed();
    return promise;
  }

  /** Dispose: waits (bounded) for the kernel to give every request back, then frees the ring. */
  protected override release(): void {
    const submission = this.#submission;
    // Everything else the kernel still holds: the wake poll, deadline timeouts, closes.
    const entries = submission.entries;
    for (let slot = 0; slot < entries.length; slot++) {
      const entry = entries[slot];
      if (entry instanceof UringOp && !entry.cancelled) this.cancel(entry, new ClosedError(SYSCALL[entry.kind], -1));
      else if (entry instanceof Deadline) submission.cancel(slot, Tag.Slot);
    }
    if (this.#wakeArmed) submission.cancel(0, Tag.Wake);
    if (this.#hostArmed) submission.cancel(0, Tag.Host);
    // SAFETY: wait (bounded) until every request's CQE is in: only then is no buffer of ours
    // in the kernel's hands. A request that will not finish in time (a READ of a slow device in
    // an io-wq worker) keeps its record, and so its buffer, referenced forever in `leaked`.
    const until = clock() + DISPOSE_WAIT_MS;
    for (;;) {
      submission.submit(false);
      submission.reap();
      if (submission.busy === 0 && !this.#wakeArmed && !this.#hostArmed) break;
      if (clock() > until) {
        leaked.push(...entries.filter((s) => s !== null));
        if (this.#wakeArmed) leaked.push(this.#wakeup);
        debug(`io_uring dispose: ${submission.busy} requests did not finish; their memory is kept`);
        break;
      }
      pause(1);
    }
    const clean = submission.busy === 0;
    this.#ring.close();
    // SAFETY: borrowed reads' views point into the provided buffers: their memory is freed only
    // when the last loan comes back, and never if a request may still use it.
    this.#buffers?.retire(clean);
    if (clean) submission.freeScratch();
  }

  // ---- completions (CompletionHandler) ---------------------------------------------------

  /** @internal A CQE for the request in a slot. */
  completed(entry: SlotEntry, res: number, flags: number): void {
    if (entry instanceof UringOp) this.#opCqe(entry, res, flags);
    else if (entry instanceof Source) this.#sources.completed(entry, res, flags);
    else this.#deadlineCqe(entry);
  }

  /** @internal The wake-up poll fired. */
  woken(): void {
    this.#wakeArmed = false;
    if (this.disposed) return;
    this.#wakeup.drain();
    this.#armWake();
  }

  /**
   * @internal The poll on the host's fd fired (or was cancelled). Armed again at once, it goes
   * to the kernel with the next wait's submission, after the host's turn: a poll finds a fd
   * that is still readable ready at once, so the host's fd is watched level-triggered.
   */
  hostReady(): void {
    this.#hostArmed = false;
    if (!this.disposed) this.#armHost();
  }

  /** @internal */
  publishBuffers(): void {
    this.#buffers?.publish();
  }

  /** @internal */
  retryStarved(): void {
    this.#sources.retryStarved();
  }

  /** @internal io_uring_enter took nothing (EAGAIN: short of memory; EBUSY): try in 1 ms. */
  submitLater(): void {
    if (this.#resubmit !== null || this.disposed) return;
    this.#resubmit = this.timers.add(clock() + 1, () => {
      this.#resubmit = null;
      this.#submission.submit(false);
    });
    this.changed(); // the guest driver mirrors the new deadline with a host timer
  }

  // ---- an operation's life ---------------------------------------------------------------

  /** Starts the operation at the head of its queue: from multishot data, or as an SQE. */
  #issue(op: UringOp): void {
    const state = op.state!;
    if (state.kind === FdKind.Unknown) state.kind = classify(op.fd);
    if (op.buf !== null && op.buf.byteLength === 0 && isDetached(op.buf)) {
      this.settle(op, false, new TypeError(`${SYSCALL[op.kind]}: buffer was detached while the operation was waiting`));
      return;
    }
    if (op.attempted && op.deadline <= clock()) {
      this.settle(op, false, new TimeoutError(SYSCALL[op.kind], op.timeoutMs));
      return;
    }
    op.attempted = true;
    if (this.#sources.serves(op, state)) this.#waitingTimer(op);
    else this.#sqe(op);
  }

  /** An operation left waiting in JS keeps its deadline through a heap timer. */
  #waitingTimer(op: UringOp): void {
    if (op.phase !== Phase.Waiting || op.deadline === Infinity || op.timer !== null) return;
    this.armTimer(op);
    this.changed(); // the guest driver mirrors the earliest deadline with a host timer
  }

  /** Writes the operation's SQE (and its LINK_TIMEOUT, which then enforces the deadline). */
  #sqe(op: UringOp): void {
    const state = op.state!;
    const submission = this.#submission;
    const slot = submission.slot(op);
    const link = op.deadline !== Infinity ? C.IOSQE_IO_LINK : 0;
    const at = submission.claim(link ? 2 : 1);
    prepare(submission, at, link, op, state, this.#buffers, this.#pool);
    if (link) {
      // SAFETY: the timespec lives in the slot's native scratch; the kernel copies it when it
      // prepares the SQE, which happens before the slot can be reused.
      const scratch = submission.scratchOf(slot);
      writeTimespec(scratch.view, SCRATCH_TIMESPEC, Math.max(0, op.deadline - clock()));
      this.#ring.prepLinkTimeout(this.#ring.claim(), scratch.address + SCRATCH_TIMESPEC, 0, Tag.Ignore);
    }
    op.phase = Phase.InKernel;
    this.disarmTimer(op);
    state.inflight++;
    this.#queueFlush();
  }

  /** A CQE for operation `op`. */
  #opCqe(op: UringOp, res: number, flags: number): void {
    const bid = op.selected ? cqeBuffer(flags) : -1;
    if (bid >= 0) {
      this.#selectedCqe(op, res, bid + (op.largeBuffer ? LARGE_REF : 0));
    } else if (res >= 0 && op.polling && op.cancelled) {
      // Its readiness poll fired, but the operation itself was never retried: nothing happened.
      this.settle(op, false, op.cancelReason);
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
        value = decodeResult(this.#submission, op, res);
      } catch (e) {
        this.settle(op, false, e);
        return;
      }
      if (op.kind === Kind.Accept) this.#adoptAccepted(res, op.state!);
      this.settle(op, true, value);
    } else if (op.cancelled) {
      // Cancelled by us (abort, close, dispose): whatever the kernel says, the kernel is done.
      this.settle(op, false, op.cancelReason);
    } else if (res === -ERRNO.EINTR) {
      // A signal interrupted it (the kernel turns ERESTARTSYS into EINTR), or its LINK_TIMEOUT
      // fired: issue it again, as call() retries EINTR; #issue reports a passed deadline.
      this.#backToWaiting(op);
      this.#issue(op);
    } else if (res === -ERRNO.ECANCELED && op.deadline !== Infinity) {
      // Its LINK_TIMEOUT fired.
      this.settle(op, false, new TimeoutError(SYSCALL[op.kind], op.timeoutMs));
    } else if (res === -ERRNO.ENOBUFS && op.selected) {
      // Every provided buffer is in use (a burst of receives larger than the ring): the data is
      // there, so take it straight into the caller's buffer with MSG_DONTWAIT/RWF_NOWAIT.
      this.#submission.stats.starved++;
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
      this.settle(op, false, new SystemError(-res, SYSCALL[op.kind]));
    }
  }

  /** The operation leaves the kernel but not its queue (it will be issued again). */
  #backToWaiting(op: UringOp): void {
    this.#submission.release(op.slot);
    op.slot = -1;
    op.phase = Phase.Waiting;
    op.selected = false;
    op.state!.inflight--;
  }

  /** A connect that was in progress and whose socket turned writable: SO_ERROR says how it went. */
  #finishConnect(op: UringOp): void {
    const err = socketErrorOf(op.fd);
    if (err === 0) this.settle(op, true, undefined);
    else this.settle(op, false, new SystemError(err, "connect"));
  }

  /** A read into provided buffer `ref` completed with `res` bytes. */
  #selectedCqe(op: UringOp, res: number, ref: number): void {
    const buffers = this.#buffers!;
    if (res <= 0) {
      buffers.recycle(ref);
      if (res === 0) this.settle(op, true, 0);
      else this.settle(op, false, op.cancelled ? op.cancelReason : new SystemError(-res, SYSCALL[op.kind]));
      return;
    }
    if (op.buf === null) {
      // A borrowed read: the provided buffer itself is the result.
      this.settle(op, true, buffers.lend(ref, res));
      return;
    }
    const buf = op.buf;
    if (buf.byteLength === 0 && isDetached(buf)) {
      // The caller gave the buffer away while the read waited: keep the data for the next read.
      this.#sources.keep(op.state!, ref, res);
      this.settle(op, false, new TypeError("read: buffer was detached while the operation was pending"));
      return;
    }
    // Data that arrived is delivered even when a cancel lost the race: nothing is dropped.
    buf.set(buffers.view(ref, res), 0);
    buffers.recycle(ref);
    this.settle(op, true, res);
  }

  /** An accepted fd is a socket of the listener's kind: no need to ask the kernel later. */
  #adoptAccepted(fd: number, listener: UringFd): void {
    const stale = this.fds.get(fd);
    if (stale && !stale.closer && stale.inflight === 0 && !stale.readers.head && !stale.writers.head) this.fds.delete(fd);
    if (!this.fds.has(fd) && listener.kind !== FdKind.Unknown) {
      const state = new UringFd(fd);
      state.kind = listener.kind;
      this.fds.set(fd, state);
    }
  }

  // ---- the loop's own requests -----------------------------------------------------------

  #queueFlush(): void {
    if (this.guest && !this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flushTask);
    }
  }

  /** Polls the wake-up fd, so `interrupt()` ends a wait in io_uring_enter. */
  #armWake(): void {
    if (this.#wakeArmed) return;
    this.#ring.prepPollAdd(this.#submission.claim(1), 0, this.#wakeup.fd, C.POLLIN, 0, Tag.Wake);
    this.#wakeArmed = true;
    this.#queueFlush();
  }

  /** Polls the host loop's fd, so a wait in io_uring_enter also ends when the host has work. */
  #armHost(): void {
    if (this.#hostArmed || this.#hostFd < 0) return;
    this.#ring.prepPollAdd(this.#submission.claim(1), 0, this.#hostFd, C.POLLIN, 0, Tag.Host);
    this.#hostArmed = true;
    this.#queueFlush();
  }

  /** Arms a TIMEOUT for the earliest timer unless one at least as early is armed. */
  #armDeadline(at: number, ms: number): void {
    if (at >= this.#armedDeadline) return;
    this.#armedDeadline = at;
    const d = new Deadline(at);
    const slot = this.#submission.slot(d);
    const scratch = this.#submission.scratchOf(slot);
    // SAFETY: the timespec is in the slot's native scratch, which stays reserved until the
    // TIMEOUT's CQE releases the slot.
    writeTimespec(scratch.view, SCRATCH_TIMESPEC, ms);
    this.#ring.prepTimeout(this.#submission.claim(1), scratch.address + SCRATCH_TIMESPEC, slot, Tag.Slot);
  }

  #deadlineCqe(d: Deadline): void {
    this.#submission.release(d.slot);
    if (d.at === this.#armedDeadline) this.#armedDeadline = Infinity;
  }
}

/** What requests that never completed on a disposed loop hold: kept so their memory lives. */
const leaked: Array<SlotEntry | WakeupFd> = [];

/** How many requests disposed loops had to abandon in the kernel (tests expect 0). */
export function leakedRequests(): number {
  return leaked.length;
}

/** Sleeps the thread for `ms` (dispose waiting for the kernel; never on the hot path). */
function pause(ms: number): void {
  Atomics.wait(pauseCell, 0, 0, ms);
}
const pauseCell = new Int32Array(new SharedArrayBuffer(4));
