/**
 * Each operation kind on IOCP: how it starts (the Winsock call and what it writes into its slot
 * first) and what its completion resolves with. `start` returns what the call returned: DONE,
 * PENDING or a Winsock/Win32 error code (see `sys/windows/overlapped.ts`).
 */
import { dataView } from "../../ffi/layout.js";
import { SystemError } from "../../sys/errors.js";
import { decodeSockaddr, encodeSockaddr, SOCKADDR_MAX } from "../../sys/posix/sockaddr.js";
import { C, ERRNO, WIN, WIN_LAYOUT } from "../../sys/windows/constants.js";
import { acceptEx, afdPoll, connectEx, DONE, PENDING, readFile, recv, recvFrom, send, sendTo, writeFile } from "../../sys/windows/overlapped.js";
import { bind, setOption, socket, socketDomain, closeSocket } from "../../sys/windows/socket.js";
import { isDetached } from "../checks.js";
import { Kind, SYSCALL, written } from "../operation.js";
import { ACCEPT_ADDRESS, type IocpFd, type IocpOp, type Records, SLOT, STAGE_MAX } from "./records.js";
import { describeValue } from "../../sys/args.js";

const P = WIN_LAYOUT.AFD_POLL_INFO.fields;
const O = WIN_LAYOUT.OVERLAPPED.fields;

/** AFD events that make a socket readable: data, a connection to accept, the end of it. */
const READ_EVENTS =
  WIN.AFD_POLL_RECEIVE | WIN.AFD_POLL_RECEIVE_EXPEDITED | WIN.AFD_POLL_ACCEPT | WIN.AFD_POLL_DISCONNECT |
  WIN.AFD_POLL_ABORT | WIN.AFD_POLL_LOCAL_CLOSE | WIN.AFD_POLL_CONNECT_FAIL;
/** AFD events that make a socket writable (or a write fail at once). */
const WRITE_EVENTS = WIN.AFD_POLL_SEND | WIN.AFD_POLL_ABORT | WIN.AFD_POLL_LOCAL_CLOSE | WIN.AFD_POLL_CONNECT_FAIL;

const addressScratch = new Uint8Array(SOCKADDR_MAX);
const listenerBytes = new Uint8Array(8);
const NO_BYTES = new Uint8Array(0);

/** What `start` needs besides the operation: the slots, and the AFD handle for polls. */
export interface StartContext {
  readonly records: Records;
  /** The AFD device handle (opened on first use). */
  afd(): bigint;
  /** The base handle of `state`'s socket for AFD (asked once). */
  baseOf(state: IocpFd): bigint;
}

/**
 * The bytes a transfer stages this time: at most STAGE_MAX, so a stream transfer may be short
 * (as every write may be) and a datagram is never cut (UDP's largest, 65,507 bytes, fits; a larger
 * one fails with EMSGSIZE either way).
 */
function stageLength(op: IocpOp): number {
  let n = op.borrow > 0 ? op.borrow : 0;
  if (op.buf !== null) n = op.buf.byteLength;
  if (op.bufs !== null) for (const b of op.bufs) n += b.byteLength;
  return Math.min(n, STAGE_MAX);
}

/** Copies the first `length` bytes of a gather list into `out`. */
function gather(bufs: readonly Uint8Array[], out: Uint8Array, length: number): void {
  let at = 0;
  for (const b of bufs) {
    if (at >= length) break;
    const n = Math.min(b.byteLength, length - at);
    out.set(n === b.byteLength ? b : b.subarray(0, n), at);
    at += n;
  }
}

/** Starts `op` in its (taken) slot. */
export function start(op: IocpOp, state: IocpFd, cx: StartContext): number {
  const { records } = cx;
  const slot = op.slot;
  const base = records.address(slot);
  const { view, bytes: record, at } = records.view(slot);
  const overlapped = base + BigInt(SLOT.overlapped);
  const wsabuf = base + BigInt(SLOT.wsabuf);
  const bytes = base + BigInt(SLOT.bytes);
  const address = base + BigInt(SLOT.address);
  switch (op.kind) {
    case Kind.Read:
    case Kind.Write:
    case Kind.SendTo:
    case Kind.ReceiveFrom:
    case Kind.SendMessage:
    case Kind.ReceiveMessage: {
      const length = stageLength(op);
      // SAFETY: the staging buffer is native and belongs to the slot, which is not reused
      // before this operation's packet is in; the caller's buffer is only copied from/into.
      const stage = records.stage(slot, Math.max(length, 1));
      op.staged = length;
      if (op.kind === Kind.Write || op.kind === Kind.SendTo) stage.bytes.set(op.buf!.subarray(0, length));
      else if (op.kind === Kind.SendMessage) gather(op.bufs!, stage.bytes, length);
      view.setUint32(at + SLOT.wsabuf, length, true);
      view.setBigUint64(at + SLOT.wsabuf + 8, stage.address, true);
      if (!state.socket) {
        // A pipe (or another handle): ReadFile/WriteFile from the same staging buffer. A file
        // has a position a stream does not keep: its reads and writes go through `overlapped`,
        // with an offset each.
        if (state.fileType === WIN.FILE_TYPE_DISK) {
          throw new SystemError(ERRNO.ESPIPE, SYSCALL[op.kind], `handle ${op.fd} is a file: use overlapped() with an offset`);
        }
        if (op.kind === Kind.Read) return readFile(op.fd, stage.address, length, bytes, overlapped);
        if (op.kind === Kind.Write) return writeFile(op.fd, stage.address, length, bytes, overlapped);
        throw new SystemError(ERRNO.ENOTSOCK, SYSCALL[op.kind], `handle ${op.fd} is not a socket`);
      }
      if (op.kind === Kind.Read) return recv(op.fd, wsabuf, bytes, base + BigInt(SLOT.flags), overlapped);
      if (op.kind === Kind.Write || op.kind === Kind.SendMessage) return send(op.fd, wsabuf, bytes, overlapped);
      if (op.kind === Kind.ReceiveFrom || op.kind === Kind.ReceiveMessage) {
        view.setInt32(at + SLOT.addressLength, SOCKADDR_MAX, true);
        return recvFrom(op.fd, wsabuf, bytes, base + BigInt(SLOT.flags), address, base + BigInt(SLOT.addressLength), overlapped);
      }
      const len = encodeSockaddr(op.address!, addressScratch);
      record.set(addressScratch.subarray(0, len), at + SLOT.address);
      return sendTo(op.fd, wsabuf, bytes, address, len, overlapped);
    }
    case Kind.Accept: {
      if (state.family === 0) state.family = socketDomain(op.fd);
      op.accepted = socket(state.family, C.SOCK_STREAM, C.IPPROTO_TCP);
      return acceptEx(op.fd, op.accepted, base + BigInt(SLOT.accept), ACCEPT_ADDRESS, bytes, overlapped);
    }
    case Kind.Connect: {
      if (state.family === 0) state.family = socketDomain(op.fd);
      const family = op.address!.family === "ipv6" ? C.AF_INET6 : op.address!.family === "ipv4" ? C.AF_INET : C.AF_UNIX;
      if (family !== state.family) throw new SystemError(ERRNO.EAFNOSUPPORT, "connect", "the address is not of the socket's family");
      // ConnectEx needs a bound socket: bind to the wildcard unless it is bound already.
      const any = op.address!.family === "ipv6" ? { family: "ipv6" as const, address: "::", port: 0 } : { family: "ipv4" as const, address: "0.0.0.0", port: 0 };
      try {
        bind(op.fd, any);
      } catch (e) {
        if (!(e instanceof SystemError && e.errno === ERRNO.EINVAL)) throw e;
      }
      // The address was encoded (and so checked) when connect() was called.
      const encoded = op.sockaddr!;
      record.set(encoded, at + SLOT.address);
      return connectEx(op.fd, address, encoded.byteLength, overlapped);
    }
    case Kind.WaitReadable:
    case Kind.WaitWritable: {
      const poll = at + SLOT.poll;
      view.setBigInt64(poll + P.timeout.offset, 0x7fffffffffffffffn, true); // INT64_MAX: no timeout
      view.setUint32(poll + P.count.offset, 1, true);
      view.setUint32(poll + P.exclusive.offset, 0, true);
      view.setBigUint64(poll + P.handle.offset, cx.baseOf(state), true);
      view.setUint32(poll + P.events.offset, op.kind === Kind.WaitReadable ? READ_EVENTS : WRITE_EVENTS, true);
      // The OVERLAPPED's first 16 bytes are the IO_STATUS_BLOCK, and its address the context
      // the packet carries: the same record as every other operation's.
      return afdPoll(cx.afd(), overlapped, overlapped, base + BigInt(SLOT.poll), WIN_LAYOUT.AFD_POLL_INFO.size);
    }
    case Kind.Overlapped: {
      view.setUint32(at + SLOT.overlapped + O.offset.offset, op.offset % 0x1_0000_0000, true);
      view.setUint32(at + SLOT.overlapped + O.offsetHigh.offset, Math.floor(op.offset / 0x1_0000_0000), true);
      // SAFETY: the OVERLAPPED is the slot's (native), kept until this operation's packet is in;
      // whatever else the caller's call hands the kernel is the caller's to keep alive.
      const code = op.start!(overlapped);
      if (code === 0) return DONE;
      if (code === WIN.ERROR_IO_PENDING) return PENDING;
      if (typeof code !== "number" || !Number.isInteger(code) || code < 0) {
        throw new TypeError(`overlapped: start must return a Win32 error code (0, 997 or an error), got ${describeValue(code)}`);
      }
      return code;
    }
    default:
      throw new SystemError(ERRNO.EOPNOTSUPP, SYSCALL[op.kind], "not supported on Windows");
  }
}

/**
 * The bytes a call that completed at once reported: in the slot's counter for Winsock's calls,
 * in the OVERLAPPED's InternalHigh for ReadFile/WriteFile and a caller's own call (the kernel
 * fills it however the call ended).
 */
export function immediateBytes(records: Records, op: IocpOp): number {
  const { view, at } = records.view(op.slot);
  // ReadFile leaves its counter unset when it ends with ERROR_MORE_DATA (part of a message).
  if (op.kind === Kind.Overlapped || op.state?.socket === false) return Number(view.getBigUint64(at + SLOT.overlapped + O.internalHigh.offset, true));
  return view.getUint32(at + SLOT.bytes, true);
}

/** What a successful `op` resolves with, `bytes` being what its packet (or call) reported. */
export function result(records: Records, op: IocpOp, bytes: number, truncated: boolean, lend: (data: Uint8Array) => unknown): unknown {
  const slot = op.slot;
  switch (op.kind) {
    case Kind.Read:
    case Kind.ReceiveFrom:
    case Kind.ReceiveMessage: {
      const data = records.stage(slot, 1).bytes.subarray(0, bytes);
      let value: unknown;
      if (op.borrow > 0) value = lend(data);
      else {
        const buf = op.buf!;
        if (isDetached(buf) && bytes > 0) {
          // A stream keeps the bytes for the next read; a datagram cannot be split that way.
          if (op.kind === Kind.Read) op.state!.leftover = data.slice();
          const fate = op.kind === Kind.Read ? "kept for the next read" : "dropped";
          throw new TypeError(`${SYSCALL[op.kind]}: buffer was detached while the operation was in flight (the ${bytes} bytes received are ${fate})`);
        }
        buf.set(data);
        value = bytes;
      }
      if (op.kind === Kind.Read) return value;
      const { view, bytes: raw, at } = records.view(slot);
      const length = view.getInt32(at + SLOT.addressLength, true);
      const from = raw.slice(at + SLOT.address, at + SLOT.address + Math.min(length, SOCKADDR_MAX));
      const address = length > 0 ? decodeSockaddr(from, from.byteLength) : null;
      if (op.kind === Kind.ReceiveFrom) return [value, address];
      // A datagram cut to the buffer's size fills it (the packet's status said so): truncated.
      return { bytes, fds: [], address, truncated: truncated || (view.getUint32(at + SLOT.flags, true) & C.MSG_TRUNC) !== 0 };
    }
    case Kind.Write:
    case Kind.SendMessage:
      return written(bytes);
    case Kind.SendTo:
      return bytes;
    case Kind.Accept: {
      const accepted = op.accepted;
      dataView(listenerBytes).setBigUint64(0, BigInt(op.fd), true);
      setOption(accepted, C.SOL_SOCKET, WIN.SO_UPDATE_ACCEPT_CONTEXT, listenerBytes);
      op.accepted = -1;
      return accepted;
    }
    case Kind.Connect:
      setOption(op.fd, C.SOL_SOCKET, WIN.SO_UPDATE_CONNECT_CONTEXT, NO_BYTES);
      return undefined;
    case Kind.WaitReadable:
    case Kind.WaitWritable:
      return undefined;
    case Kind.Overlapped:
      return { bytes, status: 0 };
    default:
      return undefined;
  }
}

/** The AFD events a finished poll reported (0: none, it timed out or was cancelled). */
export function pollEvents(records: Records, op: IocpOp): number {
  const { view, at } = records.view(op.slot);
  return view.getUint32(at + SLOT.poll + P.events.offset, true);
}

/** Closes what a failed or cancelled accept had made. */
export function discardAccepted(op: IocpOp): void {
  if (op.accepted < 0) return;
  const fd = op.accepted;
  op.accepted = -1;
  try {
    closeSocket(fd);
  } catch {
    // Nothing to recover: it was never handed out.
  }
}

