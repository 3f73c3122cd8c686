/**
 * The OS's socket API in one place: Winsock's calls (`windows/socket.ts`) on Windows, the POSIX
 * ones (`posix/socket.ts`, and close(2) from `posix/fd.ts`) everywhere else, under one set of
 * names. The socket and fd classes (`net/`, `io/`) call these and never pick an OS themselves.
 *
 * Importing this module works on every OS: both implementations bind their libraries lazily (the
 * POSIX C library's functions throw the reason when called on Windows, the Windows API's off
 * Windows), and the choice below only picks function references. A socket is a number on every
 * OS: an fd on POSIX, a SOCKET handle on Windows.
 *
 * Beyond the calls, the few places where the OSes' sockets mean different things by default are
 * decided here ({@link LISTENER_REUSE_ADDRESS}, {@link DEFAULT_V6ONLY}, {@link setKeepAlive},
 * datagram sockets' ICMP errors in {@link socket}), so that a class behaves the same everywhere.
 */
import { C, ERRNO, TARGET } from "./target.js";
import { SystemError } from "./errors.js";
import { close as posixClose } from "./posix/fd.js";
import * as posix from "./posix/socket.js";
import * as win from "./windows/socket.js";
import type { SocketAddress } from "./posix/sockaddr.js";

const WINDOWS = TARGET.os === "win32";

/** Closes `fd`, a socket this module created; pass failures on. */
export const closeSocket: (fd: number) => void = WINDOWS ? win.closeSocket : posixClose;

/**
 * A new socket, ready for the event loop: non-blocking and close-on-exec on POSIX; overlapped and
 * not inheritable on Windows. On Windows a datagram socket also gets SIO_UDP_CONNRESET off: an
 * ICMP port unreachable answering an earlier datagram would otherwise fail its next receive
 * (ECONNRESET), which Linux never does for an unconnected socket.
 */
export const socket: (domain: number, type: number, protocol?: number) => number = WINDOWS ? windowsSocket : posix.socket;

function windowsSocket(domain: number, type: number, protocol = 0): number {
  const fd = win.socket(domain, type, protocol);
  if (type === C.SOCK_DGRAM) {
    try {
      win.setUdpConnReset(fd, false);
    } catch (e) {
      win.closeSocket(fd);
      throw e;
    }
  }
  return fd;
}

/** A connected pair of sockets (socketpair(2)); on Windows a SystemError EOPNOTSUPP. */
export const socketPair: (domain: number, type: number, protocol?: number) => [number, number] = WINDOWS ? win.socketPair : posix.socketPair;

/** bind(). */
export const bind: (fd: number, address: SocketAddress) => void = WINDOWS ? win.bind : posix.bind;

/** listen(). */
export const listen: (fd: number, backlog: number) => void = WINDOWS ? win.listen : posix.listen;

/** getsockname(): the socket's own address (Windows: EINVAL while it is unbound). */
export const localAddress: (fd: number) => SocketAddress = WINDOWS ? win.localAddress : posix.localAddress;

/** getpeername(): the connected peer's address; ENOTCONN when there is none. */
export const remoteAddress: (fd: number) => SocketAddress = WINDOWS ? win.remoteAddress : posix.remoteAddress;

/** getsockopt() for an int option. */
export const getIntOption: (fd: number, level: number, name: number) => number = WINDOWS ? win.getIntOption : posix.getIntOption;

/** setsockopt() for an int option. */
export const setIntOption: (fd: number, level: number, name: number, value: number) => void = WINDOWS ? win.setIntOption : posix.setIntOption;

/** shutdown(); `how` is SHUT_RD, SHUT_WR or SHUT_RDWR (Windows' SD_*). ENOTCONN when unconnected. */
export const shutdown: (fd: number, how: number) => void = WINDOWS ? win.shutdown : posix.shutdown;

/** The AF_* family of a socket, bound or not; ENOTSOCK for anything else. */
export const socketDomain: (fd: number) => number = WINDOWS ? win.socketDomain : posix.socketDomain;

/** The SOCK_* type of a socket; ENOTSOCK for anything else. */
export const socketType: (fd: number) => number = WINDOWS ? win.socketType : posix.socketType;

/**
 * Whether a listening TCP socket gets SO_REUSEADDR. On POSIX it lets a restarted server bind its
 * port while the old connections linger in TIME_WAIT, and nothing more. On Windows it would let
 * another socket bind the port while the listener uses it (Windows' SO_REUSEADDR is what POSIX
 * calls SO_REUSEPORT), and Windows binds over TIME_WAIT without it: so not there (as libuv).
 */
export const LISTENER_REUSE_ADDRESS = !WINDOWS;

/**
 * The IPV6_V6ONLY an IPv6 socket gets when its user did not choose, or null for the kernel's
 * default. Windows' default is on (IPv6 only); Linux's (net.ipv6.bindv6only) is off, and so is
 * Node's on Windows: 0 there, so `host: "::"` accepts IPv4 too as on Linux. The BSDs keep theirs.
 */
export const DEFAULT_V6ONLY: 0 | null = WINDOWS ? 0 : null;

/** Windows' default keep-alive probe interval (KeepAliveInterval), used with SIO_KEEPALIVE_VALS. */
const WINDOWS_KEEPALIVE_INTERVAL_MS = 1000;

/**
 * Turns TCP keep-alive on or off (SO_KEEPALIVE), and when turning it on with `idleSeconds`, sets
 * how long the connection must be idle before the first probe: TCP_KEEPIDLE (TCP_KEEPALIVE on
 * Windows; where that is missing, before Windows 10 1709 and under Wine, SIO_KEEPALIVE_VALS,
 * which also sets the interval between probes to Windows' default, 1 s). Throws ENOPROTOOPT
 * before changing anything where the OS has no per-socket idle time (OpenBSD).
 */
export function setKeepAlive(fd: number, on: boolean, idleSeconds?: number): void {
  const keepIdle = C.TCP_KEEPIDLE;
  if (idleSeconds !== undefined && keepIdle === undefined) {
    throw new SystemError(ERRNO.ENOPROTOOPT, "setsockopt", "this OS has no per-socket keep-alive delay (TCP_KEEPIDLE)");
  }
  setIntOption(fd, C.SOL_SOCKET, C.SO_KEEPALIVE, on ? 1 : 0);
  if (!on || idleSeconds === undefined || keepIdle === undefined) return;
  try {
    setIntOption(fd, C.IPPROTO_TCP, keepIdle, idleSeconds);
  } catch (e) {
    if (!WINDOWS || !(e instanceof SystemError) || e.code !== "ENOPROTOOPT") throw e;
    win.setKeepAliveValues(fd, true, idleSeconds * 1000, WINDOWS_KEEPALIVE_INTERVAL_MS);
  }
}
