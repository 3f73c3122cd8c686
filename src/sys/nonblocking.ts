/**
 * The calls a readiness or blocking backend makes on a non-blocking fd, and the poll it waits in
 * between, under one set of names: the POSIX ones (`posix/fd.ts`, `posix/socket.ts`,
 * `posix/poll.ts`) everywhere but Windows, Winsock's (`windows/socket.ts`, `windows/poll.ts`:
 * recv/send, accept, connect, sendto/recvfrom, WSAPoll) there. `loop/attempt.ts` calls these
 * and never picks an OS itself.
 *
 * Each call tries once: it returns {@link WOULD_BLOCK} (null for the receives that return a
 * record) when the fd is not ready, and throws a SystemError for anything else, with the same
 * codes and the same syscall names on every OS (Winsock's WSAEWOULDBLOCK is EAGAIN; a connect in
 * progress is WSAEWOULDBLOCK there, EINPROGRESS elsewhere: both are WOULD_BLOCK here).
 *
 * What differs beyond the calls is said by {@link SOCKETS_START_BLOCKING}: a Windows socket
 * is blocking until {@link makeNonBlocking} (FIONBIO) is called on it, and nothing tells
 * whether it was; POSIX fds evloop makes are non-blocking from the start.
 */
import { TARGET, ERRNO } from "./target.js";
import { SystemError, WOULD_BLOCK } from "./errors.js";
import * as posixFd from "./posix/fd.js";
import * as posixSocket from "./posix/socket.js";
import * as posixPoll from "./posix/poll.js";
import * as win from "./windows/socket.js";
import * as winPoll from "./windows/poll.js";
import type { SocketAddress } from "./posix/sockaddr.js";
import type { ReceivedMessage } from "./posix/socket.js";

export { WOULD_BLOCK };

const WINDOWS = TARGET.os === "win32";

/** A datagram (or stream bytes) received: its size and source (null where none is reported). */
export interface Received {
  bytes: number;
  address: SocketAddress | null;
}

/** read(2) (Windows: recv): bytes read, 0 at the end, or WOULD_BLOCK. */
export const read: (fd: number, buf: Uint8Array) => number = WINDOWS ? (fd, buf) => win.receiveNow(fd, buf, "read") : posixFd.read;

/** write(2) (Windows: send): bytes written, or WOULD_BLOCK. */
export const write: (fd: number, buf: Uint8Array) => number = WINDOWS ? (fd, buf) => win.sendNow(fd, buf, "write") : posixFd.write;

/** accept: the new socket (non-blocking, not inherited by children), or WOULD_BLOCK. */
export const accept: (fd: number) => number = WINDOWS ? win.accept : posixSocket.accept;

/** connect: 0 when connected at once, WOULD_BLOCK while in progress (then see {@link socketError}). */
export const connect: (fd: number, address: SocketAddress) => number = WINDOWS ? win.connect : posixSocket.connect;

/** The socket's pending error (SO_ERROR) as an errno of the running target's table; 0 if none. */
export const socketError: (fd: number) => number = WINDOWS ? win.socketError : posixSocket.socketError;

/** sendto: bytes sent, or WOULD_BLOCK. */
export const sendTo: (fd: number, buf: Uint8Array, address: SocketAddress) => number = WINDOWS ? win.sendTo : posixSocket.sendTo;

/** recvfrom: the datagram's size and source, or null when nothing is waiting. */
export const recvFrom: (fd: number, buf: Uint8Array) => Received | null = WINDOWS ? win.recvFrom : posixSocket.recvFrom;

/** sendmsg: `bufs` gathered, `fds` passed (SCM_RIGHTS; EOPNOTSUPP on Windows): bytes sent, or WOULD_BLOCK. */
export const sendMsg: (fd: number, bufs: readonly Uint8Array[], fds: readonly number[]) => number = WINDOWS ? win.sendMsg : posixSocket.sendMsg;

/** recvmsg: what arrived (with up to `maxFds` passed fds; none on Windows), or null when nothing is waiting. */
export const recvMsg: (fd: number, buf: Uint8Array, maxFds: number) => ReceivedMessage | null = WINDOWS ? win.recvMsg : posixSocket.recvMsg;

/** Bytes per pollfd entry (struct pollfd; WSAPOLLFD on Windows). */
export const POLLFD_SIZE = posixPoll.POLLFD_SIZE;

/** poll(2) (WSAPoll) over the first `count` entries of `fds`; `timeout` in ms, -1 to block. */
export const poll: (fds: Uint8Array, count: number, timeout: number) => number = WINDOWS ? winPoll.poll : posixPoll.poll;

/** Writes pollfd entry `i`: the fd and the events of interest (revents cleared). */
export const setPollFd: (view: DataView, i: number, fd: number, events: number) => void = posixPoll.setPollFd;

/** The returned events of pollfd entry `i`. */
export const pollRevents: (view: DataView, i: number) => number = posixPoll.pollRevents;

/** poll on a single fd: its returned events (0 on timeout). */
export const pollOne = (fd: number, events: number, timeout: number): number => posixPoll.pollOne(fd, events, timeout, poll);

/**
 * Whether a socket is blocking until {@link makeNonBlocking} is called on it (Windows), and
 * nothing tells whether it was: a backend that tries calls on it must do so first, and remember.
 */
export const SOCKETS_START_BLOCKING = WINDOWS;

/**
 * Puts a socket into non-blocking mode (FIONBIO). Where {@link SOCKETS_START_BLOCKING} is false
 * it does nothing: POSIX fds evloop makes are non-blocking already. On Windows anything but an
 * open socket is EBADF from `syscall`, as a closed fd is elsewhere: a handle that is not a socket
 * is nothing the loop can wait on.
 */
export function makeNonBlocking(fd: number, syscall: string): void {
  if (!WINDOWS) return;
  try {
    win.setNonBlocking(fd, true);
  } catch (e) {
    if (e instanceof SystemError && e.errno === ERRNO.ENOTSOCK) throw new SystemError(ERRNO.EBADF, syscall, `fd ${fd} is not an open socket`);
    throw e;
  }
}
