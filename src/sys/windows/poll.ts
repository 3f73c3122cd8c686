/**
 * WSAPoll and the WSAPOLLFD codec, with the exports of `posix/poll.ts` (`sys/nonblocking.ts`
 * picks one of the two by OS).
 *
 * Differences from poll(2), handled here: an entry's fd is a SOCKET (64 bits); WSAPoll fails the
 * whole call with WSAEINVAL for events it does not take, POLLPRI among them, so only POLLIN
 * (POLLRDNORM|POLLRDBAND) and POLLOUT (POLLWRNORM) are asked for; it watches sockets only; and it
 * is never interrupted by a signal. A closed socket fails the whole call (WSAENOTSOCK), where
 * poll(2) would mark its entry POLLNVAL: that is EBADF.
 */
import { C, ERRNO, LAYOUT, TABLE } from "./constants.js";
import { windows } from "./api.js";
import { winError } from "./errors.js";
import { SystemError } from "../errors.js";

/** poll events meaning "a read will not block" (the table's; POLLPRI is dropped when asked). */
export const POLL_READABLE = TABLE.POLL_READABLE;
/** poll events meaning "a write will not block": POLLOUT (POLLWRNORM). */
export const POLL_WRITABLE = TABLE.POLL_WRITABLE;
/** Returned events meaning "the peer will send nothing more": POLLHUP. */
export const POLL_READ_CLOSED = TABLE.POLL_READ_CLOSED;

/** Bytes per WSAPOLLFD. */
export const POLLFD_SIZE = LAYOUT.pollfd.size;
const F = LAYOUT.pollfd.fields;

/** The events WSAPoll accepts in a request. */
const ACCEPTED = C.POLLIN | C.POLLOUT;

/** WSAPoll over the first `count` entries of `fds`; `timeout` in ms, -1 to block. */
export function poll(fds: Uint8Array, count: number, timeout: number): number {
  const { ws2 } = windows();
  const n = ws2.WSAPoll(fds, count, timeout);
  if (n >= 0) return n;
  const code = ws2.WSAGetLastError();
  // A closed socket fails the whole call (where poll(2) reports POLLNVAL): EBADF, as there.
  if (code === ERRNO.ENOTSOCK) throw new SystemError(ERRNO.EBADF, "WSAPoll", "a polled socket is not open");
  throw winError(code, "WSAPoll");
}

/** Writes entry `i`: the socket and the events of interest (revents cleared). */
export function setPollFd(view: DataView, i: number, fd: number, events: number): void {
  const at = i * POLLFD_SIZE;
  view.setBigUint64(at + F.fd.offset, BigInt.asUintN(64, BigInt(fd)), true);
  view.setInt16(at + F.events.offset, events & ACCEPTED, true);
  view.setInt16(at + F.revents.offset, 0, true);
}

/** The returned events of entry `i`. */
export function pollRevents(view: DataView, i: number): number {
  return view.getUint16(i * POLLFD_SIZE + F.revents.offset, true);
}

const oneBuf = new Uint8Array(POLLFD_SIZE);
const oneView = new DataView(oneBuf.buffer);

/** WSAPoll on a single socket: the returned events (0 on timeout). */
export function pollOne(fd: number, events: number, timeout: number): number {
  setPollFd(oneView, 0, fd, events);
  return poll(oneBuf, 1, timeout) === 0 ? 0 : pollRevents(oneView, 0);
}
