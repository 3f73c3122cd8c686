/**
 * Each operation kind's SQE, and what its CQE's result means: the io_uring side of the
 * EventLoop operations (tokio-uring keeps a file per op; here one function each way).
 *
 * SAFETY (every kind): the kernel writes only into native memory — a provided buffer, the
 * slot's scratch, `op.message` — which stays reserved until the CQE. It touches the caller's
 * buffer only while performing a MSG_DONTWAIT/RWF_NOWAIT operation inside our own
 * io_uring_enter, while `op` holds the buffer; a would-block comes back as EAGAIN. The one
 * exception is `mayBlock`: a regular file that answered EAGAIN although poll said ready is read
 * or written by an io-wq worker later; `op` (referenced from its slot until the CQE) keeps the
 * buffer alive until then.
 */
import { SystemError } from "../../sys/errors.js";
import { C, ERRNO } from "../../sys/linux/constants.js";
import { NativeBlock } from "../../sys/linux/io_uring.js";
import { POLL_READABLE, POLL_WRITABLE } from "../../sys/target.js";
import { messageSize, readMessage, socketError, writeMessage } from "../../sys/posix/socket.js";
import type { SocketAddress } from "../../sys/posix/sockaddr.js";
import type { ReceiveFromResult } from "../event-loop.js";
import { BufferPool } from "../lending.js";
import { isReader, Kind, written } from "../operation.js";
import { ProvidedBuffers } from "./buffers.js";
import { FdKind, Tag, type UringFd, type UringOp } from "./records.js";
import type { Submission } from "./submission.js";

/** The source of a datagram from an unbound Unix socket. */
const UNNAMED: SocketAddress = { family: "unix", path: "" };

/**
 * Writes `op`'s SQE at `at` (claimed by the caller), with `link` (IOSQE_IO_LINK or 0) when a
 * LINK_TIMEOUT follows. `buffers` is null where the kernel has no provided buffer rings.
 */
export function prepare(submission: Submission, at: number, link: number, op: UringOp, state: UringFd, buffers: ProvidedBuffers | null, pool: BufferPool): void {
  const ring = submission.ring;
  const fd = op.fd;
  const slot = op.slot;
  if (op.polling) {
    ring.prepPollAdd(at, link, fd, isReader(op.kind) ? POLL_READABLE : POLL_WRITABLE, slot, Tag.Slot);
    return;
  }
  switch (op.kind) {
    case Kind.Read:
      prepareRead(submission, at, link, op, state, buffers, pool);
      return;
    case Kind.Write: {
      const buf = op.buf!;
      if (state.kind === FdKind.NotSocket) ring.prepWrite(at, link, fd, state.addressOf(buf), buf.byteLength, op.mayBlock ? 0 : C.RWF_NOWAIT, slot, Tag.Slot);
      else ring.prepSend(at, link, fd, state.addressOf(buf), buf.byteLength, C.MSG_DONTWAIT | C.MSG_NOSIGNAL, slot, Tag.Slot);
      return;
    }
    case Kind.Accept:
      ring.prepAccept(at, link, fd, false, slot, Tag.Slot);
      return;
    case Kind.Connect: {
      const addr = op.sockaddr!;
      const scratch = submission.scratchOf(slot);
      scratch.bytes.set(addr, 0);
      ring.prepConnect(at, link, fd, scratch.address, addr.byteLength, slot, Tag.Slot);
      return;
    }
    case Kind.SendTo:
    case Kind.ReceiveFrom: {
      const receive = op.kind === Kind.ReceiveFrom;
      const scratch = submission.scratchOf(slot);
      writeMessage(scratch.bytes, scratch.address, [op.buf!], [], 0, op.address ?? undefined, receive);
      if (receive) ring.prepRecvmsg(at, link, fd, scratch.address, C.MSG_DONTWAIT, slot, Tag.Slot);
      else ring.prepSendmsg(at, link, fd, scratch.address, C.MSG_DONTWAIT | C.MSG_NOSIGNAL, slot, Tag.Slot);
      return;
    }
    case Kind.SendMessage:
    case Kind.ReceiveMessage: {
      const receive = op.kind === Kind.ReceiveMessage;
      const bufs = receive ? [op.buf!] : op.bufs!;
      const block = (op.message ??= new NativeBlock(messageSize(bufs.length, receive ? op.maxFds : op.fds.length)));
      writeMessage(block.bytes, block.address, bufs, op.fds, op.maxFds, undefined, receive);
      if (receive) ring.prepRecvmsg(at, link, fd, block.address, C.MSG_DONTWAIT | C.MSG_CMSG_CLOEXEC, slot, Tag.Slot);
      else ring.prepSendmsg(at, link, fd, block.address, C.MSG_DONTWAIT | C.MSG_NOSIGNAL, slot, Tag.Slot);
      return;
    }
    case Kind.WaitReadable:
      ring.prepPollAdd(at, link, fd, POLL_READABLE, slot, Tag.Slot);
      return;
    case Kind.WaitWritable:
      ring.prepPollAdd(at, link, fd, POLL_WRITABLE, slot, Tag.Slot);
      return;
    case Kind.Close:
      ring.prepClose(at, fd, slot, Tag.Slot);
      return;
  }
}

/**
 * A read: first straight into the caller's buffer without waiting (usually data is there: a
 * copy and a provided buffer saved); when that found nothing (`waitedDirect`), or for a
 * borrowed read, a receive into a provided buffer whenever data comes; and where there is no
 * provided buffer (none free, a packet socket, an old kernel), MSG_DONTWAIT/RWF_NOWAIT into the
 * caller's buffer, with a POLL_ADD wait on EAGAIN.
 */
function prepareRead(submission: Submission, at: number, link: number, op: UringOp, state: UringFd, buffers: ProvidedBuffers | null, pool: BufferPool): void {
  const ring = submission.ring;
  const fd = op.fd;
  const slot = op.slot;
  const notSocket = state.kind === FdKind.NotSocket;
  const borrowed = op.borrow > 0;
  const provided = buffers !== null && state.kind !== FdKind.Packet && !op.direct;
  if (provided && (op.waitedDirect || borrowed)) {
    // A borrowed read lends the provided buffer as it is; a read into the caller's buffer copies
    // it out.
    op.selected = true;
    const want = borrowed ? op.borrow : op.buf!.byteLength;
    const pick = ProvidedBuffers.pick(want);
    op.largeBuffer = pick.large;
    ring.prepReceiveProvided(at, link, fd, Math.min(want, pick.size), pick.group, !notSocket, false, slot, Tag.Slot);
    return;
  }
  // Straight into the caller's buffer (a borrowed read takes one from the pool).
  if (op.buf === null) {
    const backing = (op.backing = pool.take(op.borrow));
    op.buf = BufferPool.window(backing, op.borrow);
  }
  const buf = op.buf;
  op.optimistic = provided;
  if (notSocket) ring.prepRead(at, link, fd, state.addressOf(buf), buf.byteLength, op.mayBlock && !provided ? 0 : C.RWF_NOWAIT, slot, Tag.Slot);
  else ring.prepRecv(at, link, fd, state.addressOf(buf), buf.byteLength, C.MSG_DONTWAIT, slot, Tag.Slot);
}

/** What a successful CQE (`res` ≥ 0) of `op` resolves with. Throws what the result means failed. */
export function decodeResult(submission: Submission, op: UringOp, res: number): unknown {
  switch (op.kind) {
    case Kind.ReceiveFrom: {
      const m = readMessage(submission.scratchOf(op.slot).bytes, res, 0);
      return [res, m.address ?? UNNAMED] as ReceiveFromResult;
    }
    case Kind.ReceiveMessage:
      return readMessage(op.message!.bytes, res, op.maxFds);
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
    case Kind.Write:
      return written(res);
    default:
      return res;
  }
}

/** SO_ERROR of `fd` (EBADF when it is gone). */
export function socketErrorOf(fd: number): number {
  try {
    return socketError(fd);
  } catch (e) {
    return e instanceof SystemError ? e.errno : ERRNO.EBADF;
  }
}
