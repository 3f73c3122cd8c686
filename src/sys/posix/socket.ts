/**
 * Socket system calls. Every socket is created non-blocking and close-on-exec: atomically with
 * SOCK_NONBLOCK|SOCK_CLOEXEC and accept4 where the OS has them, with fcntl right after where it
 * does not (macOS; another thread's fork+exec could inherit the fd in between). Calls that may
 * block return {@link WOULD_BLOCK} instead of throwing; the rest throw {@link SystemError}.
 */
import { C, CMSG_DATA_OFFSET, ERRNO, LAYOUT, TARGET, cmsgAlign, cmsgLen, cmsgSpace } from "../target.js";
import { call, errno, SystemError, WOULD_BLOCK } from "../errors.js";
import { libc } from "../libc.js";
import { dataView, getField, setField } from "../../ffi/layout.js";
import { ffi } from "../../ffi/runtime/load.js";
import { fillIovecs, setCloseOnExec, setNonBlocking } from "./fd.js";
import { decodeSockaddr, encodeSockaddr, SOCKADDR_MAX, type SocketAddress } from "./sockaddr.js";

// Scratch memory for calls that complete synchronously. Reusing it is safe because JavaScript
// runs one call at a time on a thread and the kernel does not keep these pointers.
const addrBuf = new Uint8Array(SOCKADDR_MAX);
const lenBuf = new Uint32Array(1);
const intBuf = new Int32Array(1);
const pairBuf = new Int32Array(2);
let msgScratch = new Uint8Array(1024);

/** SOCK_NONBLOCK|SOCK_CLOEXEC, or null where the OS has no such socket type flags. */
const TYPE_FLAGS = C.SOCK_NONBLOCK !== undefined && C.SOCK_CLOEXEC !== undefined ? C.SOCK_NONBLOCK | C.SOCK_CLOEXEC : null;

/** Makes a new fd non-blocking and close-on-exec, closing it if that fails. */
function adopt(fd: number): number {
  try {
    setCloseOnExec(fd);
    setNonBlocking(fd, true);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}

/** socket(2), non-blocking and close-on-exec. */
export function socket(domain: number, type: number, protocol = 0): number {
  if (TYPE_FLAGS !== null) return call("socket", false, libc.socket, domain, type | TYPE_FLAGS, protocol);
  return adopt(call("socket", false, libc.socket, domain, type, protocol));
}

/** socketpair(2), both ends non-blocking and close-on-exec. */
export function socketPair(domain: number, type: number, protocol = 0): [number, number] {
  if (TYPE_FLAGS !== null) {
    call("socketpair", false, libc.socketpair, domain, type | TYPE_FLAGS, protocol, pairBuf);
    return [pairBuf[0]!, pairBuf[1]!];
  }
  call("socketpair", false, libc.socketpair, domain, type, protocol, pairBuf);
  const [a, b] = [pairBuf[0]!, pairBuf[1]!];
  try {
    adopt(a);
  } catch (e) {
    libc.close(b);
    throw e;
  }
  try {
    adopt(b);
  } catch (e) {
    libc.close(a);
    throw e;
  }
  return [a, b];
}

/** bind(2). */
export function bind(fd: number, address: SocketAddress): void {
  const len = encodeSockaddr(address, addrBuf);
  call("bind", false, libc.bind, fd, addrBuf, len);
}

/** listen(2). */
export function listen(fd: number, backlog: number): void {
  call("listen", false, libc.listen, fd, backlog);
}

/** accept4(2) (or accept(2) and fcntl), non-blocking and close-on-exec: the new fd, or WOULD_BLOCK. */
export function accept(fd: number): number {
  const accept4 = libc.accept4;
  if (accept4 !== undefined && TYPE_FLAGS !== null) return call("accept", true, accept4, fd, null, null, TYPE_FLAGS);
  const conn = call("accept", true, libc.accept, fd, null, null);
  return conn === WOULD_BLOCK ? conn : adopt(conn);
}

/**
 * connect(2): 0 when connected at once, WOULD_BLOCK while the connection is in progress.
 *
 * Not through `call()`: connect's errno needs its own reading. EINTR means the connection goes
 * on asynchronously (a retry would fail with EALREADY), so it is in progress like EINPROGRESS.
 * EAGAIN is not "in progress": a Unix socket reports it when the listener's backlog is full,
 * and nothing would ever complete, so it is an error.
 */
export function connect(fd: number, address: SocketAddress): number {
  const len = encodeSockaddr(address, addrBuf);
  if (libc.connect(fd, addrBuf, len) === 0) return 0;
  const e = errno();
  if (e === ERRNO.EINPROGRESS || e === ERRNO.EINTR) return WOULD_BLOCK;
  throw new SystemError(e, "connect", e === ERRNO.EAGAIN ? "the listener's backlog is full" : undefined);
}

/** getsockopt(2) for an int option. */
export function getIntOption(fd: number, level: number, name: number): number {
  lenBuf[0] = 4;
  call("getsockopt", false, libc.getsockopt, fd, level, name, intBuf, lenBuf);
  return intBuf[0]!;
}

/** setsockopt(2) for an int option. */
export function setIntOption(fd: number, level: number, name: number, value: number): void {
  intBuf[0] = value;
  call("setsockopt", false, libc.setsockopt, fd, level, name, intBuf, 4);
}

/** The pending error of a socket (SO_ERROR), cleared by reading it; 0 if none. */
export function socketError(fd: number): number {
  return getIntOption(fd, C.SOL_SOCKET, C.SO_ERROR);
}

/**
 * The AF_* domain of a socket; throws ENOTSOCK for other fds. Where there is no SO_DOMAIN
 * (macOS, NetBSD), the family of its local address says the same.
 */
export function socketDomain(fd: number): number {
  if (C.SO_DOMAIN !== undefined) return getIntOption(fd, C.SOL_SOCKET, C.SO_DOMAIN);
  lenBuf[0] = SOCKADDR_MAX;
  call("getsockname", false, libc.getsockname, fd, addrBuf, lenBuf);
  return Number(getField(dataView(addrBuf), 0, LAYOUT.sockaddr_storage.fields.family));
}

/** The SOCK_* type of a socket; throws ENOTSOCK for other fds. */
export function socketType(fd: number): number {
  return getIntOption(fd, C.SOL_SOCKET, C.SO_TYPE);
}

function nameOf(fn: typeof libc.getsockname, syscall: string, fd: number): SocketAddress {
  lenBuf[0] = SOCKADDR_MAX;
  call(syscall, false, fn, fd, addrBuf, lenBuf);
  return decodeSockaddr(addrBuf, lenBuf[0]!);
}

/** getsockname(2). */
export function localAddress(fd: number): SocketAddress {
  return nameOf(libc.getsockname, "getsockname", fd);
}

/** getpeername(2). */
export function remoteAddress(fd: number): SocketAddress {
  return nameOf(libc.getpeername, "getpeername", fd);
}

/**
 * A Unix socket peer's process and user, as the kernel recorded them when the connection was
 * made (connect(2), or socketpair(2)).
 *
 * @example
 * ```ts
 * const { pid, uid, gid }: PeerCredentials = conn.peerCredentials();
 * ```
 */
export interface PeerCredentials {
  /** The peer's process id (0 if it is in a PID namespace this one cannot see). */
  readonly pid: number;
  /** The peer's effective user id. */
  readonly uid: number;
  /** The peer's effective group id. */
  readonly gid: number;
}

/**
 * getsockopt(2) SO_PEERCRED: the credentials of a connected Unix socket's peer. Linux only for
 * now: on macOS and the BSDs this throws; the kqueue work (issue #10) will add LOCAL_PEERCRED
 * (macOS, FreeBSD) and getpeereid(3) there.
 */
export function peerCredentials(fd: number): PeerCredentials {
  const ucred = LAYOUT.ucred;
  if (C.SO_PEERCRED === undefined || ucred === undefined) {
    throw new Error(`peer credentials are not supported on ${TARGET.os} yet (SO_PEERCRED is Linux-only; LOCAL_PEERCRED/getpeereid will follow)`);
  }
  const buf = new Uint8Array(ucred.size);
  lenBuf[0] = ucred.size;
  call("getsockopt", false, libc.getsockopt, fd, C.SOL_SOCKET, C.SO_PEERCRED, buf, lenBuf);
  const view = dataView(buf);
  const f = ucred.fields;
  return { pid: Number(getField(view, 0, f.pid)), uid: Number(getField(view, 0, f.uid)), gid: Number(getField(view, 0, f.gid)) };
}

/** shutdown(2); `how` is SHUT_RD, SHUT_WR or SHUT_RDWR. */
export function shutdown(fd: number, how: number): void {
  call("shutdown", false, libc.shutdown, fd, how);
}

/** recv(2): bytes received (0 at EOF), or WOULD_BLOCK. */
export function recv(fd: number, buf: Uint8Array, flags = 0): number {
  return call("recv", true, libc.recv, fd, buf, buf.byteLength, flags);
}

/** send(2) with MSG_NOSIGNAL (a closed peer gives EPIPE, never SIGPIPE), or WOULD_BLOCK. */
export function send(fd: number, buf: Uint8Array, flags = 0): number {
  return call("send", true, libc.send, fd, buf, buf.byteLength, flags | C.MSG_NOSIGNAL);
}

/** sendto(2) with MSG_NOSIGNAL, or WOULD_BLOCK. */
export function sendTo(fd: number, buf: Uint8Array, address: SocketAddress): number {
  const len = encodeSockaddr(address, addrBuf);
  return call("sendto", true, libc.sendto, fd, buf, buf.byteLength, C.MSG_NOSIGNAL, addrBuf, len);
}

/** A received datagram: its size and source. */
export interface Received {
  bytes: number;
  address: SocketAddress;
}

/** recvfrom(2): the datagram's size and source, or null when nothing is waiting. */
export function recvFrom(fd: number, buf: Uint8Array): Received | null {
  lenBuf[0] = SOCKADDR_MAX;
  const n = call("recvfrom", true, libc.recvfrom, fd, buf, buf.byteLength, 0, addrBuf, lenBuf);
  if (n === WOULD_BLOCK) return null;
  return { bytes: n, address: decodeSockaddr(addrBuf, lenBuf[0]!) };
}

/**
 * What recvmsg(2) delivered.
 *
 * @example
 * ```ts
 * const m: ReceivedMessage = await loop.receiveMessage(fd, buf, 4);
 * for (const passed of m.fds) FileDescriptor.from(passed);
 * ```
 */
export interface ReceivedMessage {
  bytes: number;
  /** File descriptors passed with SCM_RIGHTS (already close-on-exec). */
  fds: number[];
  /** The source address, when the socket reports one. */
  address: SocketAddress | null;
  /** True when the datagram or the control data was cut short (MSG_TRUNC/MSG_CTRUNC). */
  truncated: boolean;
}

const FD_SIZE = 4;

/**
 * One message's memory for sendmsg/recvmsg: the msghdr, the address, the iovecs and the control
 * data, laid out in that order in one block, so a single allocation serves an asynchronous
 * operation (io_uring keeps the pointers until the operation completes).
 */
const MSG_AT = 0;
const NAME_AT = LAYOUT.msghdr.size;
const IOV_AT = NAME_AT + SOCKADDR_MAX;

/** Bytes a message block needs for `iovCount` buffers and `controlBytes` of control data. */
export function messageSize(iovCount: number, maxFds: number): number {
  return IOV_AT + iovCount * LAYOUT.iovec.size + (maxFds > 0 ? cmsgSpace(maxFds * FD_SIZE) : 0);
}

/**
 * Fills a message block: `block` is its memory (zeroed by the caller's allocator or here) and
 * `base` the native address of `block[0]`. For sending, `fds` go out with SCM_RIGHTS and
 * `address`, when given, is the destination; for receiving, pass `maxFds` room for descriptors
 * and `receive` true, and the address field is left for the kernel to fill.
 *
 * SAFETY: the msghdr holds raw addresses of `bufs`; the caller keeps `bufs` and `block` alive
 * until the kernel is done with the message.
 */
export function writeMessage(block: Uint8Array, base: number, bufs: readonly Uint8Array[], fds: readonly number[], maxFds: number, address: SocketAddress | undefined, receive: boolean): void {
  const f = LAYOUT.msghdr.fields;
  const view = dataView(block);
  const controlAt = IOV_AT + bufs.length * LAYOUT.iovec.size;
  block.fill(0, 0, messageSize(bufs.length, Math.max(fds.length, maxFds)));
  fillIovecs(block.subarray(IOV_AT, controlAt), bufs);
  setField(view, MSG_AT, f.iov, base + IOV_AT);
  setField(view, MSG_AT, f.iovlen, bufs.length);
  if (receive) {
    setField(view, MSG_AT, f.name, base + NAME_AT);
    setField(view, MSG_AT, f.namelen, SOCKADDR_MAX);
  } else if (address) {
    const len = encodeSockaddr(address, block.subarray(NAME_AT, IOV_AT));
    setField(view, MSG_AT, f.name, base + NAME_AT);
    setField(view, MSG_AT, f.namelen, len);
  }
  const count = receive ? maxFds : fds.length;
  if (count > 0) {
    const space = cmsgSpace(count * FD_SIZE);
    if (!receive) {
      const h = LAYOUT.cmsghdr.fields;
      setField(view, controlAt, h.len, cmsgLen(fds.length * FD_SIZE));
      setField(view, controlAt, h.level, C.SOL_SOCKET);
      setField(view, controlAt, h.type, C.SCM_RIGHTS);
      fds.forEach((x, i) => view.setInt32(controlAt + CMSG_DATA_OFFSET + i * FD_SIZE, x, true));
    }
    setField(view, MSG_AT, f.control, base + controlAt);
    setField(view, MSG_AT, f.controllen, space);
  }
}

/**
 * Decodes what recvmsg left in a message block written by {@link writeMessage} for one buffer:
 * `n` is recvmsg's result. Descriptors beyond `maxFds` are closed and reported as truncation.
 */
export function readMessage(block: Uint8Array, n: number, maxFds: number): ReceivedMessage {
  const f = LAYOUT.msghdr.fields;
  const view = dataView(block);
  const controlAt = IOV_AT + LAYOUT.iovec.size;
  const flags = Number(getField(view, MSG_AT, f.flags));
  const fds: number[] = [];
  if (maxFds > 0) {
    const used = Number(getField(view, MSG_AT, f.controllen));
    const h = LAYOUT.cmsghdr.fields;
    for (let at = 0; at + LAYOUT.cmsghdr.size <= used; ) {
      const len = Number(getField(view, controlAt + at, h.len));
      if (len < LAYOUT.cmsghdr.size) break;
      if (getField(view, controlAt + at, h.level) === C.SOL_SOCKET && getField(view, controlAt + at, h.type) === C.SCM_RIGHTS) {
        for (let p = at + CMSG_DATA_OFFSET; p + FD_SIZE <= at + len; p += FD_SIZE) fds.push(view.getInt32(controlAt + p, true));
      }
      at += cmsgAlign(len);
    }
  }
  // CMSG_SPACE rounds up (to 8 bytes on Linux), so the kernel may fit one fd more than asked
  // for: close the extras, as the kernel does with those that did not fit, and report it.
  const extra = fds.length > maxFds ? fds.splice(maxFds) : [];
  for (const x of extra) libc.close(x);
  // Without MSG_CMSG_CLOEXEC (macOS) received fds arrive inheritable: mark them now.
  if (C.MSG_CMSG_CLOEXEC === undefined) for (const x of fds) setCloseOnExec(x);
  const namelen = Number(getField(view, MSG_AT, f.namelen));
  return {
    bytes: n,
    fds,
    address: namelen > 0 ? decodeSockaddr(block.subarray(NAME_AT, IOV_AT), namelen) : null,
    truncated: extra.length > 0 || (flags & (C.MSG_TRUNC | C.MSG_CTRUNC)) !== 0,
  };
}

/** The message block of the synchronous calls below, grown as needed. */
function scratchMessage(iovCount: number, maxFds: number): Uint8Array {
  const size = messageSize(iovCount, maxFds);
  if (msgScratch.byteLength < size) msgScratch = new Uint8Array(size);
  return msgScratch;
}

/**
 * sendmsg(2) with MSG_NOSIGNAL: gathers `bufs`, passes `fds` with SCM_RIGHTS and sends to
 * `address` when given. Returns the bytes sent, or WOULD_BLOCK.
 */
export function sendMsg(fd: number, bufs: readonly Uint8Array[], fds: readonly number[], address?: SocketAddress): number {
  const block = scratchMessage(bufs.length, fds.length);
  writeMessage(block, Number(ffi.address(block)), bufs, fds, 0, address, false);
  // SAFETY: the msghdr holds raw addresses of `bufs`, which this frame keeps referenced until
  // the synchronous call returns; `block` is module-level scratch.
  return call("sendmsg", true, libc.sendmsg, fd, block, C.MSG_NOSIGNAL);
}

/**
 * recvmsg(2) into `buf`, accepting up to `maxFds` SCM_RIGHTS descriptors (close-on-exec: with
 * MSG_CMSG_CLOEXEC, or marked right after where the OS has no such flag). Returns null when
 * nothing is waiting. Descriptors beyond `maxFds` are closed by the kernel and reported through
 * `truncated`.
 */
export function recvMsg(fd: number, buf: Uint8Array, maxFds: number): ReceivedMessage | null {
  const block = scratchMessage(1, maxFds);
  writeMessage(block, Number(ffi.address(block)), [buf], [], maxFds, undefined, true);
  // SAFETY: as in sendMsg: `buf` is referenced by this frame through the synchronous call.
  const n = call("recvmsg", true, libc.recvmsg, fd, block, C.MSG_CMSG_CLOEXEC ?? 0);
  if (n === WOULD_BLOCK) return null;
  return readMessage(block, n, maxFds);
}
