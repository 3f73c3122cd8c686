/**
 * poll(2) and the struct pollfd codec.
 *
 * Event masks: ask for {@link POLL_READABLE} / {@link POLL_WRITABLE}, and read a peer's shutdown
 * from {@link POLL_READ_CLOSED} in what comes back. They include POLLRDHUP on Linux only; the
 * BSDs and macOS report a shutdown as POLLIN, and read() then returns 0.
 */
import { LAYOUT, POLL_READABLE, POLL_READ_CLOSED, POLL_WRITABLE } from "../target.js";
import { waited } from "../errors.js";
import { libc } from "../libc.js";
import { setField } from "../../ffi/layout.js";

export { POLL_READABLE, POLL_READ_CLOSED, POLL_WRITABLE };

/** Bytes per struct pollfd. */
export const POLLFD_SIZE = LAYOUT.pollfd.size;
const F = LAYOUT.pollfd.fields;

/** poll(2) over the first `count` entries of `fds`; `timeout` in ms, -1 to block. */
export function poll(fds: Uint8Array, count: number, timeout: number): number {
  return waited(libc.poll(fds, count, timeout), "poll");
}

/**
 * Writes entry `i`: the fd and the events of interest (revents cleared). The running target's
 * layout says how wide the fd is: an int, or on Windows (WSAPOLLFD) a 64-bit SOCKET.
 */
export function setPollFd(view: DataView, i: number, fd: number, events: number): void {
  const at = i * POLLFD_SIZE;
  setField(view, at, F.fd, fd);
  view.setInt16(at + F.events.offset, events, true);
  view.setInt16(at + F.revents.offset, 0, true);
}

/** The returned events of entry `i`. */
export function pollRevents(view: DataView, i: number): number {
  return view.getUint16(i * POLLFD_SIZE + F.revents.offset, true);
}

const oneBuf = new Uint8Array(POLLFD_SIZE);
const oneView = new DataView(oneBuf.buffer);

/**
 * poll(2) — or `wait`, a call of the same shape (WSAPoll) — on a single fd: the returned events
 * (0 on timeout).
 *
 * @example
 * ```ts
 * if (pollOne(fd, POLL_READABLE, 100) & POLL_READABLE) read(fd, buf);
 * ```
 */
export function pollOne(fd: number, events: number, timeout: number, wait: typeof poll = poll): number {
  setPollFd(oneView, 0, fd, events);
  return wait(oneBuf, 1, timeout) === 0 ? 0 : pollRevents(oneView, 0);
}
