/**
 * One try of an operation's syscall on a non-blocking fd: the result, or {@link WOULD_BLOCK_RESULT}
 * when the kernel says it would block. The readiness backends (epoll, kqueue, poll) and the blocking one
 * all run operations through it; they differ only in how they wait between tries. The calls are
 * `sys/nonblocking.ts`'s: POSIX's, or Winsock's on Windows.
 */
import { SystemError } from "../sys/errors.js";
import { ERRNO, POLL_READABLE, POLL_WRITABLE, C } from "../sys/target.js";
import { accept, connect, pollOne, read, recvFrom, recvMsg, sendMsg, sendTo, socketError, write, WOULD_BLOCK } from "../sys/nonblocking.js";
import type { ReceiveFromResult } from "./event-loop.js";
import { isDetached } from "./checks.js";
import { BufferPool } from "./lending.js";
import { Kind, type Operation, SYSCALL, written } from "./operation.js";

/** What {@link attempt} returns when the operation would block. */
export const WOULD_BLOCK_RESULT = Symbol("would block");

/** The poll(2) events an operation of `kind` waits for. */
export const pollEvents = (kind: Kind): number => (kind <= Kind.WaitReadable ? POLL_READABLE : POLL_WRITABLE);

/**
 * Runs `op`'s syscall once. Returns its result, or WOULD_BLOCK_RESULT; throws what failed. A
 * borrowed read takes a buffer from `pool` only now, and gives it back if nothing was there.
 */
export function attempt(op: Operation, pool: BufferPool): unknown {
  const fd = op.fd;
  // A buffer transferred away while the operation waited reads as 0 bytes long: without this
  // check a read would report a false EOF and a write 0 bytes written.
  if (op.buf !== null && op.buf.byteLength === 0 && isDetached(op.buf)) {
    throw new TypeError(`${SYSCALL[op.kind]}: buffer was detached while the operation was pending`);
  }
  switch (op.kind) {
    case Kind.Read: {
      if (op.borrow === 0) return orWouldBlock(read(fd, op.buf!));
      const backing = pool.take(op.borrow);
      const n = read(fd, BufferPool.window(backing, op.borrow));
      if (n !== WOULD_BLOCK) return pool.lend(backing, n);
      pool.giveBack(0, backing);
      return WOULD_BLOCK_RESULT;
    }
    case Kind.Write: {
      const n = write(fd, op.buf!);
      return n === WOULD_BLOCK ? WOULD_BLOCK_RESULT : written(n);
    }
    case Kind.Accept:
      return orWouldBlock(accept(fd));
    case Kind.Connect: {
      if (!op.attempted) {
        op.attempted = true;
        return connect(fd, op.address!) === WOULD_BLOCK ? WOULD_BLOCK_RESULT : undefined;
      }
      const err = socketError(fd);
      if (err !== 0) throw new SystemError(err, "connect");
      return undefined;
    }
    case Kind.SendTo:
      return orWouldBlock(sendTo(fd, op.buf!, op.address!));
    case Kind.ReceiveFrom: {
      const r = recvFrom(fd, op.buf!);
      return r === null ? WOULD_BLOCK_RESULT : ([r.bytes, r.address] as ReceiveFromResult);
    }
    case Kind.SendMessage:
      return orWouldBlock(sendMsg(fd, op.bufs!, op.fds));
    case Kind.ReceiveMessage:
      return recvMsg(fd, op.buf!, op.maxFds) ?? WOULD_BLOCK_RESULT;
    case Kind.WaitReadable:
    case Kind.WaitWritable:
      return readyNow(fd, pollEvents(op.kind));
    case Kind.Close:
      throw new TypeError("close is not an operation a readiness backend attempts");
  }
}

function orWouldBlock(n: number): number | typeof WOULD_BLOCK_RESULT {
  return n === WOULD_BLOCK ? WOULD_BLOCK_RESULT : n;
}

/** Whether `fd` is ready now (one poll(2) with a zero timeout). */
function readyNow(fd: number, events: number): undefined | typeof WOULD_BLOCK_RESULT {
  const revents = pollOne(fd, events, 0);
  if (revents & C.POLLNVAL) throw new SystemError(ERRNO.EBADF, "poll", `fd ${fd} is not open`);
  return revents === 0 ? WOULD_BLOCK_RESULT : undefined;
}
