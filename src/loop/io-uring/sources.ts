/**
 * Multishot sources: one ACCEPT per listener that keeps producing connections (Linux 5.19), and
 * on request one RECV per TCP socket that keeps filling provided buffers (6.0). A source feeds
 * its fd's reader queue: an accept takes a connection the source already has, a read copies (or
 * borrows) received buffers, and only when there is nothing does the operation wait — in JS,
 * holding nothing the kernel could touch. A source also keeps what a read left behind (data
 * that arrived for a read whose buffer was detached meanwhile).
 *
 * Back-pressure: a source pauses (its request is cancelled) when MAX_READY_ACCEPTS connections
 * or MAX_CHUNKS_PER_FD buffers wait unread, and resumes when they are taken; a RECV that found
 * every provided buffer in use (ENOBUFS) is "starved" and re-armed once a buffer is recycled.
 */
import { SystemError } from "../../sys/errors.js";
import { ERRNO } from "../../sys/linux/constants.js";
import { cqeBuffer, cqeMore } from "../../sys/linux/io_uring.js";
import { close as closeFd } from "../../sys/posix/fd.js";
import type { ReceivedMessage } from "../../sys/posix/socket.js";
import { exitHooks } from "../exit-hooks.js";
import { BufferPool } from "../lending.js";
import { Kind, Phase } from "../operation.js";
import { SMALL_BUFFERS, type ProvidedBuffers } from "./buffers.js";
import { FdKind, Source, Tag, type UringFd, type UringOp } from "./records.js";
import type { Submission } from "./submission.js";

/** A socket with this many unread buffers stops receiving (its multishot is cancelled). */
const MAX_CHUNKS_PER_FD = 16;
/** Accepted connections kept ready for accept() before the multishot accept is paused. */
const MAX_READY_ACCEPTS = 64;

/** What the sources need from their loop. */
export interface SourceHost {
  readonly submission: Submission;
  readonly buffers: ProvidedBuffers | null;
  readonly pool: BufferPool;
  /** Settles `op` (which waits in JS) with its result. */
  settle(op: UringOp, ok: boolean, value: unknown): void;
  /** Records an accepted fd as a socket of the listener's kind. */
  adoptAccepted(fd: number, listener: UringFd): void;
  /** Schedules a flush of the written SQEs (guest mode). */
  queueFlush(): void;
}

const EMPTY_MESSAGE = (bytes: number): ReceivedMessage => ({ bytes, fds: [], address: null, truncated: false });

/** The multishot sources of one loop. */
export class Sources {
  /** Sources waiting for a recycled buffer. */
  readonly #starved = new Set<Source>();

  constructor(
    readonly host: SourceHost,
    /** Multishot ACCEPT is on. */
    readonly multishotAccept: boolean,
    /** Multishot RECV is on (TCP sockets). */
    readonly multishotRecv: boolean,
  ) {}

  /** Whether `op` (at the head of its queue) is served by a source instead of its own SQE. */
  serves(op: UringOp, state: UringFd): boolean {
    switch (op.kind) {
      case Kind.Read:
      case Kind.ReceiveMessage:
      case Kind.WaitReadable:
        return (state.recv !== null || (op.kind === Kind.Read && this.multishotRecv && state.kind === FdKind.Tcp)) && this.fromRecv(op, state);
      case Kind.Accept:
        if (!this.multishotAccept && !state.accept) return false;
        this.fromAccept(op, state);
        return true;
      default:
        return false;
    }
  }

  /** Whether a receive waits for a recycled buffer. */
  get hasStarved(): boolean {
    return this.#starved.size > 0;
  }

  /** Serves an accept from the listener's accepted connections, or arms the multishot ACCEPT. */
  fromAccept(op: UringOp, state: UringFd): void {
    const source = (state.accept ??= new Source(Kind.Accept, state, true));
    const fd = source.fds.shift();
    if (fd !== undefined) {
      // The caller owns it now (a handle registers its own hook).
      exitHooks.keepAtExit(fd);
      this.host.adoptAccepted(fd, state);
      this.host.settle(op, true, fd);
      return;
    }
    // An error describes the moment its request met it. One from a request armed before this
    // accept() began waiting may be stale (an EMFILE from before fds were freed): it is dropped,
    // and a new request finds the state as it is now.
    if (op.acceptFrom === 0) op.acceptFrom = source.arms + 1;
    const error = source.error;
    if (error !== null) {
      source.error = null;
      if (source.errorOf >= op.acceptFrom) {
        this.host.settle(op, false, error);
        return;
      }
    }
    if (!source.armed) this.#arm(source);
  }

  /**
   * Serves a reader from the fd's received data. Returns false when there is none and the fd
   * has no multishot RECV to wait for: the operation then goes to the kernel itself.
   */
  fromRecv(op: UringOp, state: UringFd): boolean {
    const source = (state.recv ??= new Source(Kind.Read, state, this.multishotRecv && state.kind === FdKind.Tcp));
    const host = this.host;
    if (op.kind === Kind.WaitReadable) {
      if (source.chunks.length > 0 || source.eof || source.error) host.settle(op, true, undefined);
      else if (!source.multishot) return false;
      else if (!source.armed && !source.starved) this.#arm(source);
      return true;
    }
    if (source.chunks.length > 0 && op.buf === null) {
      // A borrowed read: lend the first buffer as it is, unless a read already took part of it
      // or it holds more than the caller wants; then copy into a fresh buffer below.
      const chunk = source.chunks[0]!;
      if (chunk.offset === 0 && chunk.length <= op.borrow) {
        source.chunks.shift();
        this.#rearmPaused(source);
        host.settle(op, true, host.buffers!.lend(chunk.bid, chunk.length));
        return true;
      }
      const backing = (op.backing = host.pool.take(op.borrow));
      op.buf = BufferPool.window(backing, op.borrow);
    }
    if (source.chunks.length > 0) {
      // Everything received so far that fits: one read (and the caller's one write after it)
      // for what arrived in several segments.
      const buf = op.buf!;
      const buffers = host.buffers!;
      let n = 0;
      while (n < buf.byteLength && source.chunks.length > 0) {
        const chunk = source.chunks[0]!;
        const take = Math.min(buf.byteLength - n, chunk.length - chunk.offset);
        buf.set(buffers.view(chunk.bid, chunk.offset + take).subarray(chunk.offset), n);
        chunk.offset += take;
        n += take;
        if (chunk.offset < chunk.length) break;
        source.chunks.shift();
        buffers.recycle(chunk.bid);
        if (op.kind === Kind.ReceiveMessage) break;
      }
      this.#rearmPaused(source);
      host.settle(op, true, op.kind === Kind.ReceiveMessage ? EMPTY_MESSAGE(n) : n);
      return true;
    }
    if (source.error) {
      const e = source.error;
      source.error = null;
      host.settle(op, false, e);
      return true;
    }
    if (source.eof) {
      host.settle(op, true, op.kind === Kind.ReceiveMessage ? EMPTY_MESSAGE(0) : 0);
      return true;
    }
    // Every provided buffer is taken (borrowed reads may keep them as long as they like): the
    // read goes to the kernel itself, and reads directly if none is free by then.
    if (!source.multishot || source.starved) return false;
    if (!source.armed) this.#arm(source);
    return true;
  }

  /** Keeps data that arrived for a read whose buffer was detached: the next read gets it. */
  keep(state: UringFd, bid: number, length: number): void {
    const source = (state.recv ??= new Source(Kind.Read, state, false));
    source.chunks.push({ bid, length, offset: 0 });
  }

  /** A CQE of `source`'s multishot request. */
  completed(source: Source, res: number, flags: number): void {
    const state = source.state;
    if (!cqeMore(flags)) {
      source.armed = false;
      source.cancelling = false;
      this.host.submission.release(source.slot);
      source.slot = -1;
      state.inflight--;
    }
    if (source.kind === Kind.Accept) this.#acceptCqe(source, res);
    else this.#recvCqe(source, res, flags);
  }

  #acceptCqe(source: Source, res: number): void {
    const state = source.state;
    if (res >= 0) {
      // Until an accept() takes it, the fd is nobody's but ours: closed if the thread goes away.
      exitHooks.closeAtExit(res);
      source.fds.push(res);
    }
    // EINTR (a signal) ends the multishot like ECANCELED: it is re-armed below, not an error.
    else if (res !== -ERRNO.ECANCELED && res !== -ERRNO.EINTR) {
      source.error = new SystemError(-res, "accept");
      source.errorOf = source.arms;
    }
    if (state.removed) {
      this.#drain(source);
      return;
    }
    const readers = state.readers;
    while (readers.head?.kind === Kind.Accept && readers.head.phase === Phase.Waiting && (source.fds.length > 0 || source.error)) {
      this.fromAccept(readers.head, state);
    }
    // An error no accept() was waiting for is not kept for a later one, by when it may be stale.
    source.error = null;
    if (source.armed && source.fds.length >= MAX_READY_ACCEPTS && !source.cancelling) {
      source.cancelling = true;
      this.#cancelRequest(source.slot);
    } else if (!source.armed && readers.head?.kind === Kind.Accept) {
      this.#arm(source);
    }
  }

  #recvCqe(source: Source, res: number, flags: number): void {
    const state = source.state;
    const bid = cqeBuffer(flags);
    if (res > 0 && bid >= 0) {
      source.chunks.push({ bid, length: res, offset: 0 });
    } else if (res === 0) {
      if (bid >= 0) this.host.buffers!.recycle(bid);
      source.eof = true;
    } else if (res === -ERRNO.ENOBUFS) {
      this.host.submission.stats.starved++;
      source.starved = true;
      this.#starved.add(source);
    } else if (res < 0 && res !== -ERRNO.ECANCELED && res !== -ERRNO.EINTR) {
      source.error = new SystemError(-res, "read");
    }
    if (state.removed) {
      this.#drain(source);
      return;
    }
    const readers = state.readers;
    while (readers.head && readers.head.phase === Phase.Waiting) {
      const head = readers.head;
      if (source.chunks.length === 0 && !source.eof && !source.error) break;
      this.fromRecv(head, state);
      if (head.phase !== Phase.Done) break;
    }
    if (source.armed && source.chunks.length >= MAX_CHUNKS_PER_FD && !source.cancelling) {
      source.cancelling = true;
      this.#cancelRequest(source.slot);
    } else if (!source.armed && !source.starved && !source.eof && !source.error && readers.head && readers.head.phase === Phase.Waiting) {
      this.#arm(source);
    }
  }

  /** Cancels the source's request (if armed) and releases what it holds. */
  cancel(source: Source): void {
    if (source.armed && !source.cancelling) {
      source.cancelling = true;
      this.#cancelRequest(source.slot);
    }
    this.#starved.delete(source);
    this.#drain(source);
  }

  /**
   * Re-arms the multishot receives that found every provided buffer in use, once buffers came
   * back (and were published). Called at the end of each reap and before each submission: an
   * ENOBUFS may arrive after the recycles that made room, in the same batch.
   */
  retryStarved(): void {
    const buffers = this.host.buffers;
    if (buffers === null || !buffers.recycled || this.#starved.size === 0) return;
    buffers.recycled = false;
    const sources = [...this.#starved];
    this.#starved.clear();
    for (const source of sources) {
      source.starved = false;
      const head = source.state.readers.head;
      if (!source.state.removed && !source.armed && head && head.phase === Phase.Waiting) this.#arm(source);
    }
  }

  /** A multishot receive paused for having too much unread resumes once there is room again. */
  #rearmPaused(source: Source): void {
    if (source.multishot && !source.armed && !source.eof && !source.error && !source.starved && source.chunks.length < MAX_CHUNKS_PER_FD / 2) {
      this.#arm(source);
    }
  }

  #arm(source: Source): void {
    const state = source.state;
    if (state.removed) return;
    const submission = this.host.submission;
    const slot = submission.slot(source);
    const at = submission.claim(1);
    source.arms++;
    // SAFETY: a RECV takes buffers from the provided ring (native memory, see BufferRing).
    if (source.kind === Kind.Accept) submission.ring.prepAccept(at, 0, state.fd, true, slot, Tag.Slot);
    else submission.ring.prepReceiveProvided(at, 0, state.fd, 0, SMALL_BUFFERS.group, true, true, slot, Tag.Slot);
    source.armed = true;
    state.inflight++;
    this.host.queueFlush();
  }

  #cancelRequest(slot: number): void {
    this.host.submission.cancel(slot, Tag.Slot);
    this.host.queueFlush();
  }

  /** Releases what a forgotten source holds: buffers back to the ring, accepted fds closed. */
  #drain(source: Source): void {
    for (const c of source.chunks.splice(0)) this.host.buffers!.recycle(c.bid);
    for (const fd of source.fds.splice(0)) {
      exitHooks.keepAtExit(fd);
      try {
        closeFd(fd);
      } catch {
        // Already gone.
      }
    }
  }
}
