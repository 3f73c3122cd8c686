/**
 * WSAPoll, in place of poll(2) (`sys/nonblocking.ts` picks one of the two by OS). The WSAPOLLFD
 * entries are written with `posix/poll.ts`'s codec: its layout is the running table's.
 *
 * Differences from poll(2): an entry's fd is a SOCKET (64 bits, in the layout); WSAPoll fails the
 * whole call with WSAEINVAL for events it does not take, POLLPRI among them, so the Windows
 * table's POLL_READABLE is POLLIN (POLLRDNORM|POLLRDBAND) alone; it watches sockets only; and it
 * is never interrupted by a signal. A closed socket fails the whole call (WSAENOTSOCK), where
 * poll(2) would mark its entry POLLNVAL: that is EBADF.
 */
import { ERRNO } from "./constants.js";
import { windows } from "./api.js";
import { winError } from "./errors.js";
import { SystemError } from "../errors.js";

/**
 * WSAPoll over the first `count` entries of `fds` (written with `posix/poll.ts`'s codec, whose
 * layout is the running table's WSAPOLLFD here); `timeout` in ms, -1 to block.
 */
export function poll(fds: Uint8Array, count: number, timeout: number): number {
  const { ws2 } = windows();
  const n = ws2.WSAPoll(fds, count, timeout);
  if (n >= 0) return n;
  const code = ws2.WSAGetLastError();
  // A closed socket fails the whole call (where poll(2) reports POLLNVAL): EBADF, as there.
  if (code === ERRNO.ENOTSOCK) throw new SystemError(ERRNO.EBADF, "WSAPoll", "a polled socket is not open");
  throw winError(code, "WSAPoll");
}
