/**
 * epoll selector (Linux ≥ 2.6.27).
 *
 * Every registration is edge-triggered (EPOLLET) with EPOLLRDHUP, so a socket is registered once
 * for its whole life and never touched again while it is ready and not ready in turn: the
 * polling event loop costs no epoll_ctl per operation. Thread safety: one thread selects; the
 * only cross-thread call is a Waker write, which epoll observes like any other event.
 */
import { C } from "../sys/linux/constants.js";
import { epollCreate, epollCtl, epollWait, eventData, eventMask, EPOLL_EVENT_SIZE } from "../sys/linux/epoll.js";
import { close } from "../sys/posix/fd.js";
import { dataView } from "../ffi/layout.js";
import { Interest, readinessFrom, type Events, type ReadinessBits } from "./event.js";
import type { Selector } from "./selector.js";

/** The epoll event mask of a registration for `interest`: edge-triggered, with EPOLLRDHUP. */
export function epollMask(interest: number): number {
  let mask = C.EPOLLET | C.EPOLLRDHUP;
  if (interest & Interest.READABLE) mask |= C.EPOLLIN;
  if (interest & Interest.WRITABLE) mask |= C.EPOLLOUT;
  if (interest & Interest.PRIORITY) mask |= C.EPOLLPRI;
  return mask;
}

/** What epoll's event bits mean. */
const EPOLL_BITS: ReadinessBits = {
  readable: C.EPOLLIN,
  writable: C.EPOLLOUT,
  priority: C.EPOLLPRI,
  error: C.EPOLLERR,
  hangup: C.EPOLLHUP,
  readClosed: C.EPOLLRDHUP,
};

/** Translates an epoll event mask into {@link Ready} bits. */
export function readinessOf(mask: number): number {
  return readinessFrom(mask, EPOLL_BITS);
}

/** The epoll(7) backend of the readiness API. */
export class EpollSelector implements Selector {
  readonly name = "epoll";
  readonly fd: number;
  #buf: Uint8Array;
  #view: DataView;

  constructor(capacity = 1024) {
    this.fd = epollCreate();
    this.#buf = new Uint8Array(capacity * EPOLL_EVENT_SIZE);
    this.#view = dataView(this.#buf);
  }

  register(fd: number, token: number, interest: number): void {
    epollCtl(this.fd, C.EPOLL_CTL_ADD, fd, epollMask(interest), token);
  }

  reregister(fd: number, token: number, interest: number): void {
    epollCtl(this.fd, C.EPOLL_CTL_MOD, fd, epollMask(interest), token);
  }

  deregister(fd: number): void {
    epollCtl(this.fd, C.EPOLL_CTL_DEL, fd, 0, 0);
  }

  select(events: Events, timeout: number): void {
    events.clear();
    const max = Math.min(events.capacity, this.#buf.byteLength / EPOLL_EVENT_SIZE);
    const n = epollWait(this.fd, this.#buf, max, timeout);
    for (let i = 0; i < n; i++) events.push(eventData(this.#view, i), readinessOf(eventMask(this.#view, i)));
  }

  close(): void {
    close(this.fd);
  }
}
