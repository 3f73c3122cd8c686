/**
 * libkqueue's kqueue ABI (mheily/libkqueue, `include/sys/event.h.in`; the copy evloop tests
 * against is commit f966089, built by `../shared/tools/build-libkqueue.sh`). libkqueue is a
 * userspace kqueue for Linux over epoll, eventfd, timerfd and friends; evloop loads it from the
 * path in `EVLOOP_KQUEUE_LIB` to run its kqueue backend on Linux. Its `struct kevent` is macOS's
 * 32-byte one; EVFILT_USER is FreeBSD's −11. `test/sys/kqueue-layout.test.mjs` checks this table
 * against the installed header with the C compiler.
 */
import { bsdKevent, KQUEUE_COMMON, NOTE_USER, TIMESPEC, type KqueueTable } from "./kevent.js";

/** libkqueue's table. */
export const KQUEUE: KqueueTable = {
  flavour: "libkqueue",
  kevent: bsdKevent(32),
  timespec: TIMESPEC,
  symbols: { kqueue: "kqueue", kevent: "kevent" },
  K: { ...KQUEUE_COMMON, ...NOTE_USER, EVFILT_USER: -11 },
};
