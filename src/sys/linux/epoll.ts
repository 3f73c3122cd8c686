/**
 * epoll(7) system calls and the struct epoll_event codec. Linux ≥ 2.6.27 (epoll_create1).
 */
import { call, waited } from "../errors.js";
import { C, LAYOUT } from "./constants.js";
import { linuxLibc } from "./libc.js";
import { dataView } from "../../ffi/layout.js";

/** Bytes per struct epoll_event (12 on x86_64, where it is packed; 16 elsewhere). */
export const EPOLL_EVENT_SIZE = LAYOUT.epoll_event.size;
const EVENTS = LAYOUT.epoll_event.fields.events.offset;
const DATA = LAYOUT.epoll_event.fields.data.offset;

const ctlBuf = new Uint8Array(EPOLL_EVENT_SIZE);
const ctlView = dataView(ctlBuf);

/** epoll_create1(EPOLL_CLOEXEC). */
export function epollCreate(): number {
  return call("epoll_create1", false, linuxLibc().epoll_create1, C.EPOLL_CLOEXEC);
}

/**
 * epoll_ctl(2). `data` is the 64-bit user data, carried as a JS number below 2^53 (evloop keeps
 * tokens in that range).
 */
export function epollCtl(epfd: number, op: number, fd: number, events: number, data: number): void {
  ctlView.setUint32(EVENTS, events >>> 0, true);
  ctlView.setUint32(DATA, data >>> 0, true);
  ctlView.setUint32(DATA + 4, Math.floor(data / 0x1_0000_0000), true);
  call("epoll_ctl", false, linuxLibc().epoll_ctl, epfd, op, fd, ctlBuf);
}

/** epoll_wait(2) into `events` (room for `max` entries); `timeout` in ms, -1 to block. */
export function epollWait(epfd: number, events: Uint8Array, max: number, timeout: number): number {
  return waited(linuxLibc().epoll_wait(epfd, events, max, timeout), "epoll_wait");
}

/** The event mask of entry `i` in an epoll_wait result. */
export function eventMask(view: DataView, i: number): number {
  return view.getUint32(i * EPOLL_EVENT_SIZE + EVENTS, true);
}

/** The user data of entry `i` in an epoll_wait result. */
export function eventData(view: DataView, i: number): number {
  const at = i * EPOLL_EVENT_SIZE + DATA;
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * 0x1_0000_0000;
}
