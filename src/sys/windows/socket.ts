/**
 * Winsock's socket calls, under the names `sys/posix/socket.ts` uses. Every socket is created
 * overlapped (WSA_FLAG_OVERLAPPED, for IOCP) and not inheritable (WSA_FLAG_NO_HANDLE_INHERIT,
 * Windows' close-on-exec). A SOCKET is a kernel handle; evloop passes it around as a number,
 * like an fd: handle values are multiples of 4 below 2^24 in practice, and Windows keeps them
 * within 32 bits so 32-bit processes can share them. {@link socket} checks that it fits.
 */
import { dataView, getField, setField } from "../../ffi/layout.js";
import { C, ERRNO, LAYOUT, WIN, WIN_LAYOUT } from "./constants.js";
import { windows } from "./api.js";
import { winError, wsaError } from "./errors.js";
import { SystemError } from "../errors.js";
import { decodeSockaddr, encodeSockaddr, SOCKADDR_MAX, type SocketAddress } from "../posix/sockaddr.js";
import type { ReceivedMessage } from "../posix/socket.js";

const SOCKET_ERROR = -1;
const addrBuf = new Uint8Array(SOCKADDR_MAX);
const lenBuf = new Int32Array(1);
const intBuf = new Int32Array(1);
/** Winsock's error for a datagram larger than the buffer (the buffer holds its start). */
const WSAEMSGSIZE = ERRNO.EMSGSIZE;

/** A SOCKET handle as evloop's fd number (throws if it does not fit, which Windows rules out). */
export function handleNumber(handle: bigint): number {
  if (handle < 0n || handle > 0x7fffffffn) throw new RangeError(`handle ${handle} does not fit in an fd number`);
  return Number(handle);
}

/** A new overlapped, non-inheritable socket. */
export function socket(domain: number, type: number, protocol = 0): number {
  const { ws2 } = windows();
  const s = ws2.WSASocketW(domain, type, protocol, 0n, 0, WIN.WSA_FLAG_OVERLAPPED | WIN.WSA_FLAG_NO_HANDLE_INHERIT);
  if (s === -1n) throw wsaError("socket");
  return handleNumber(s);
}

/** socketpair(2) does not exist on Windows. */
export function socketPair(_domain: number, _type: number, _protocol = 0): [number, number] {
  throw new SystemError(ERRNO.EOPNOTSUPP, "socketpair", "Windows has no socketpair; connect two TCP sockets on 127.0.0.1 instead");
}

function check(rc: number, syscall: string): void {
  if (rc === SOCKET_ERROR) throw wsaError(syscall);
}

/** bind(). */
export function bind(fd: number, address: SocketAddress): void {
  const len = encodeSockaddr(address, addrBuf);
  check(windows().ws2.bind(fd, addrBuf, len), "bind");
}

/** listen(). */
export function listen(fd: number, backlog: number): void {
  check(windows().ws2.listen(fd, backlog), "listen");
}

/** getsockopt() for an int option. */
export function getIntOption(fd: number, level: number, name: number): number {
  lenBuf[0] = 4;
  intBuf[0] = 0;
  check(windows().ws2.getsockopt(fd, level, name, intBuf, lenBuf), "getsockopt");
  return intBuf[0]!;
}

/** setsockopt() for an int option. */
export function setIntOption(fd: number, level: number, name: number, value: number): void {
  intBuf[0] = value;
  check(windows().ws2.setsockopt(fd, level, name, intBuf, 4), "setsockopt");
}

/** setsockopt() with raw bytes (SO_UPDATE_ACCEPT_CONTEXT takes the listener's SOCKET). */
export function setOption(fd: number, level: number, name: number, value: Uint8Array): void {
  check(windows().ws2.setsockopt(fd, level, name, value, value.byteLength), "setsockopt");
}

/** The pending error of a socket (SO_ERROR), as an errno of the Windows table; 0 if none. */
export function socketError(fd: number): number {
  const code = getIntOption(fd, C.SOL_SOCKET, C.SO_ERROR);
  return code === 0 ? 0 : winError(code, "getsockopt").errno;
}

/** The SOCK_* type of a socket. */
export function socketType(fd: number): number {
  return getIntOption(fd, C.SOL_SOCKET, C.SO_TYPE);
}

const protocolInfo = new Uint8Array(WIN_LAYOUT.WSAPROTOCOL_INFOW.size);

/**
 * The AF_* family of a socket, from its WSAPROTOCOL_INFOW (SO_PROTOCOL_INFOW): unlike its local
 * address, known before it is bound, as Linux's SO_DOMAIN is. ENOTSOCK for other handles.
 */
export function socketDomain(fd: number): number {
  const info = WIN_LAYOUT.WSAPROTOCOL_INFOW;
  lenBuf[0] = info.size;
  check(windows().ws2.getsockopt(fd, C.SOL_SOCKET, WIN.SO_PROTOCOL_INFOW, protocolInfo, lenBuf), "getsockopt");
  return Number(getField(dataView(protocolInfo), 0, info.fields.family));
}

function nameOf(peer: boolean, fd: number): SocketAddress {
  const { ws2 } = windows();
  lenBuf[0] = SOCKADDR_MAX;
  const syscall = peer ? "getpeername" : "getsockname";
  check(peer ? ws2.getpeername(fd, addrBuf, lenBuf) : ws2.getsockname(fd, addrBuf, lenBuf), syscall);
  return decodeSockaddr(addrBuf, lenBuf[0]!);
}

/** getsockname(). */
export function localAddress(fd: number): SocketAddress {
  return nameOf(false, fd);
}

/** getpeername(). */
export function remoteAddress(fd: number): SocketAddress {
  return nameOf(true, fd);
}

/** shutdown(); `how` is SD_RECEIVE, SD_SEND or SD_BOTH (the table's SHUT_*). */
export function shutdown(fd: number, how: number): void {
  check(windows().ws2.shutdown(fd, how), "shutdown");
}

/**
 * closesocket(); for a handle that is not a socket (a pipe or file the loop was given, which
 * Winsock refuses with WSAENOTSOCK), CloseHandle.
 */
export function closeSocket(fd: number): void {
  const { ws2, kernel32 } = windows();
  if (ws2.closesocket(fd) === 0) return;
  const code = ws2.WSAGetLastError();
  if (code !== ERRNO.ENOTSOCK) throw winError(code, "close");
  if (kernel32.CloseHandle(fd) === 0) throw winError(kernel32.GetLastError(), "close");
}

const keepAliveBuf = new Uint8Array(WIN_LAYOUT.tcp_keepalive.size);

/**
 * SIO_KEEPALIVE_VALS: keep-alive on or off, with the idle time before the first probe and the
 * interval between probes, in ms. Every Windows has it (and Wine does); TCP_KEEPALIVE, the
 * per-socket option in seconds, needs Windows 10 1709 and is missing under Wine 8.
 */
export function setKeepAliveValues(fd: number, on: boolean, timeMs: number, intervalMs: number): void {
  const { fields } = WIN_LAYOUT.tcp_keepalive;
  const view = dataView(keepAliveBuf);
  setField(view, 0, fields.on, on ? 1 : 0);
  setField(view, 0, fields.time, timeMs);
  setField(view, 0, fields.interval, intervalMs);
  const returned = new Uint8Array(4);
  check(windows().ws2.WSAIoctl(fd, WIN.SIO_KEEPALIVE_VALS, keepAliveBuf, keepAliveBuf.byteLength, null, 0, returned, 0n, 0n), "WSAIoctl");
}

/**
 * SIO_UDP_CONNRESET: whether an ICMP port unreachable, answering a datagram this UDP socket
 * sent, fails its next receive (WSAECONNRESET; Windows' default is on). Off, a UDP socket
 * behaves like an unconnected one on Linux, which never reports such errors.
 */
export function setUdpConnReset(fd: number, on: boolean): void {
  const returned = new Uint8Array(4);
  check(windows().ws2.WSAIoctl(fd, WIN.SIO_UDP_CONNRESET, new Uint8Array(new Uint32Array([on ? 1 : 0]).buffer), 4, null, 0, returned, 0n, 0n), "WSAIoctl");
}

/** Puts a socket in (or out of) non-blocking mode for calls made without an OVERLAPPED. */
export function setNonBlocking(fd: number, on: boolean): void {
  const arg = new Uint32Array([on ? 1 : 0]);
  check(windows().ws2.ioctlsocket(fd, WIN.FIONBIO, arg), "ioctlsocket");
}

/**
 * The base service provider's handle of a socket (SIO_BASE_HANDLE): what the AFD driver polls.
 * Without a layered provider it is the socket itself.
 */
export function baseHandle(fd: number): bigint {
  const out = new Uint8Array(8);
  const returned = new Uint8Array(4);
  check(windows().ws2.WSAIoctl(fd, WIN.SIO_BASE_HANDLE, null, 0, out, 8, returned, 0n, 0n), "WSAIoctl");
  return dataView(out).getBigUint64(0, true);
}

/**
 * A connected pair of loopback sockets: Windows' stand-in for socketpair(2) where one is needed
 * (tests; the two ends of something local). TCP for "stream", connected UDP for "dgram". Both
 * are overlapped and non-blocking, like every socket evloop makes.
 */
export function loopbackPair(kind: "stream" | "dgram" = "stream"): [number, number] {
  const { ws2 } = windows();
  const loopback = { family: "ipv4" as const, address: "127.0.0.1", port: 0 };
  const made: number[] = [];
  try {
    if (kind === "dgram") {
      const a = socket(C.AF_INET, C.SOCK_DGRAM, C.IPPROTO_UDP);
      made.push(a);
      const b = socket(C.AF_INET, C.SOCK_DGRAM, C.IPPROTO_UDP);
      made.push(b);
      bind(a, loopback);
      bind(b, loopback);
      for (const [from, to] of [[a, b], [b, a]] as const) {
        const len = encodeSockaddr(localAddress(to), addrBuf);
        check(ws2.connect(from, addrBuf, len), "connect");
      }
      for (const fd of made) setNonBlocking(fd, true);
      return [a, b];
    }
    // The client first: handle numbers go lowest free first (as fds do), so the pair's first
    // end takes the number socketpair(2)'s would, not the short-lived listener.
    const client = socket(C.AF_INET, C.SOCK_STREAM, C.IPPROTO_TCP);
    made.push(client);
    const listener = socket(C.AF_INET, C.SOCK_STREAM, C.IPPROTO_TCP);
    made.push(listener);
    bind(listener, loopback);
    listen(listener, 1);
    // Blocking calls (the sockets are still in blocking mode): the connection completes against
    // the listener's backlog, and accept finds it there.
    const len = encodeSockaddr(localAddress(listener), addrBuf);
    check(ws2.connect(client, addrBuf, len), "connect");
    lenBuf[0] = SOCKADDR_MAX;
    const server = ws2.accept(listener, addrBuf, lenBuf);
    if (server === -1n) throw wsaError("accept");
    const accepted = handleNumber(server);
    closeSocket(listener);
    made.splice(1, 1);
    made.push(accepted);
    setNonBlocking(client, true);
    setNonBlocking(accepted, true);
    return [client, accepted];
  } catch (e) {
    for (const fd of made) windows().ws2.closesocket(fd);
    throw e;
  }
}

/** Winsock's "would block": what {@link sendNow} and {@link receiveNow} return instead. */
export const WOULD_BLOCK = -1;

/** send() on a non-blocking socket, now: the bytes sent, or WOULD_BLOCK; errors name `syscall`. */
export function sendNow(fd: number, buf: Uint8Array, syscall = "send"): number {
  const { ws2 } = windows();
  const n = ws2.send(fd, buf, Math.min(buf.byteLength, 0x7fffffff), 0);
  if (n >= 0) return n;
  const code = ws2.WSAGetLastError();
  if (code === ERRNO.EAGAIN) return WOULD_BLOCK;
  throw winError(code, syscall);
}

/**
 * recv() on a non-blocking socket, now: the bytes received (0 at the end), or WOULD_BLOCK;
 * errors name `syscall`. A datagram longer than `buf` fills it and the rest is dropped, as
 * read(2) does on Linux (Winsock fails the call with WSAEMSGSIZE).
 */
export function receiveNow(fd: number, buf: Uint8Array, syscall = "recv"): number {
  const { ws2 } = windows();
  const n = ws2.recv(fd, buf, Math.min(buf.byteLength, 0x7fffffff), 0);
  if (n >= 0) return n;
  const code = ws2.WSAGetLastError();
  if (code === ERRNO.EAGAIN) return WOULD_BLOCK;
  if (code === WSAEMSGSIZE) return Math.min(buf.byteLength, 0x7fffffff);
  throw winError(code, syscall);
}

/**
 * accept() on a non-blocking listener, now: the new socket, or WOULD_BLOCK. It inherits the
 * listener's properties (overlapped, non-blocking); it is made non-inheritable here, as every
 * socket evloop makes.
 */
export function accept(fd: number): number {
  const { ws2, kernel32 } = windows();
  lenBuf[0] = SOCKADDR_MAX;
  const s = ws2.accept(fd, addrBuf, lenBuf);
  if (s === -1n) {
    const code = ws2.WSAGetLastError();
    if (code === ERRNO.EAGAIN) return WOULD_BLOCK;
    throw winError(code, "accept");
  }
  if (!kernel32.SetHandleInformation(s, WIN.HANDLE_FLAG_INHERIT, 0)) {
    const e = winError(kernel32.GetLastError(), "SetHandleInformation");
    ws2.closesocket(s);
    throw e;
  }
  return handleNumber(s);
}

/**
 * connect() on a non-blocking socket: 0 when connected at once, WOULD_BLOCK while the connection
 * is in progress (Winsock says WSAEWOULDBLOCK where POSIX says EINPROGRESS). Its outcome is then
 * the socket's pending error ({@link socketError}) once it turns writable.
 */
export function connect(fd: number, address: SocketAddress): number {
  const { ws2 } = windows();
  const len = encodeSockaddr(address, addrBuf);
  if (ws2.connect(fd, addrBuf, len) === 0) return 0;
  const code = ws2.WSAGetLastError();
  if (code === ERRNO.EAGAIN || code === ERRNO.EINPROGRESS) return WOULD_BLOCK;
  // An address of another family: Linux says EAFNOSUPPORT, Winsock something else (Wine:
  // WSAEOPNOTSUPP). Told apart only once it failed, so a connect costs nothing more.
  const domain = code === ERRNO.EAFNOSUPPORT ? 0 : domainOrZero(fd);
  if (domain !== 0 && familyOf(address) !== domain) {
    throw new SystemError(ERRNO.EAFNOSUPPORT, "connect", "the address is not of the socket's family");
  }
  throw winError(code, "connect");
}

function domainOrZero(fd: number): number {
  try {
    return socketDomain(fd);
  } catch {
    return 0;
  }
}

function familyOf(address: SocketAddress): number {
  return address.family === "ipv6" ? C.AF_INET6 : address.family === "ipv4" ? C.AF_INET : C.AF_UNIX;
}

/** sendto() on a non-blocking socket, now: the bytes sent, or WOULD_BLOCK. */
export function sendTo(fd: number, buf: Uint8Array, address: SocketAddress): number {
  const { ws2 } = windows();
  const len = encodeSockaddr(address, addrBuf);
  const n = ws2.sendto(fd, buf, Math.min(buf.byteLength, 0x7fffffff), 0, addrBuf, len);
  if (n >= 0) return n;
  const code = ws2.WSAGetLastError();
  if (code === ERRNO.EAGAIN) return WOULD_BLOCK;
  throw winError(code, "sendto");
}

/** A datagram (or stream bytes) received by {@link recvFrom}. */
export interface Received {
  bytes: number;
  /** The source, or null where the socket reports none (a connected stream). */
  address: SocketAddress | null;
  /** Whether the datagram was longer than the buffer (the rest is dropped, as on Linux). */
  truncated: boolean;
}

const FAMILY = LAYOUT.sockaddr_storage.fields.family;

/**
 * recvfrom() on a non-blocking socket, now: what arrived and from where, or null when nothing
 * is waiting. A datagram longer than `buf` fills it and reports `truncated` (Winsock fails such a
 * receive with WSAEMSGSIZE; Linux returns the part that fit, and so does this).
 */
export function recvFrom(fd: number, buf: Uint8Array, syscall = "recvfrom"): Received | null {
  const { ws2 } = windows();
  lenBuf[0] = SOCKADDR_MAX;
  // A stream socket leaves the address alone: a family of 0 afterwards means "none".
  setField(dataView(addrBuf), 0, FAMILY, 0);
  const n = ws2.recvfrom(fd, buf, Math.min(buf.byteLength, 0x7fffffff), 0, addrBuf, lenBuf);
  let truncated = false;
  let bytes = n;
  if (n < 0) {
    const code = ws2.WSAGetLastError();
    if (code === ERRNO.EAGAIN) return null;
    if (code !== WSAEMSGSIZE) throw winError(code, syscall);
    truncated = true;
    bytes = buf.byteLength;
  }
  const family = Number(getField(dataView(addrBuf), 0, FAMILY));
  return { bytes, address: family === 0 ? null : decodeSockaddr(addrBuf, lenBuf[0]!), truncated };
}

const NO_HANDLES = "Windows passes no handles over sockets (SCM_RIGHTS is Unix-only)";
let gatherBuf = new Uint8Array(64 * 1024);

/**
 * sendmsg() as Windows has it: `bufs` gathered (copied) into one send on a non-blocking socket,
 * so a datagram goes out whole. The bytes sent, or WOULD_BLOCK. Passing `fds` is EOPNOTSUPP.
 */
export function sendMsg(fd: number, bufs: readonly Uint8Array[], fds: readonly number[]): number {
  if (fds.length > 0) throw new SystemError(ERRNO.EOPNOTSUPP, "sendmsg", NO_HANDLES);
  let total = 0;
  for (const b of bufs) total += b.byteLength;
  if (gatherBuf.byteLength < total) gatherBuf = new Uint8Array(Math.max(total, 2 * gatherBuf.byteLength));
  let at = 0;
  for (const b of bufs) {
    gatherBuf.set(b, at);
    at += b.byteLength;
  }
  return sendNow(fd, gatherBuf.subarray(0, total), "sendmsg");
}

/**
 * recvmsg() as Windows has it: one receive into `buf` on a non-blocking socket, with its source
 * address; null when nothing is waiting. Asking for handles (`maxFds` > 0) is EOPNOTSUPP.
 */
export function recvMsg(fd: number, buf: Uint8Array, maxFds: number): ReceivedMessage | null {
  if (maxFds > 0) throw new SystemError(ERRNO.EOPNOTSUPP, "recvmsg", NO_HANDLES);
  const r = recvFrom(fd, buf, "recvmsg");
  return r === null ? null : { bytes: r.bytes, fds: [], address: r.address, truncated: r.truncated };
}

/** Whether `fd` is an open socket (getsockopt answers). */
export function isOpenSocket(fd: number): boolean {
  lenBuf[0] = 4;
  return windows().ws2.getsockopt(fd, C.SOL_SOCKET, C.SO_TYPE, intBuf, lenBuf) === 0;
}

/** How many handles the process has open (GetProcessHandleCount): for leak checks. */
export function processHandleCount(): number {
  const { kernel32 } = windows();
  const out = new Uint32Array(1);
  if (!kernel32.GetProcessHandleCount(kernel32.GetCurrentProcess(), out)) throw winError(kernel32.GetLastError(), "GetProcessHandleCount");
  return out[0]!;
}
