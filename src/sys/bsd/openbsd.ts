/**
 * Constants, errno numbers and struct layouts for OpenBSD (amd64 and arm64 share them), from
 * openbsd/src: the header each group comes from is named above it (paths under `sys/`).
 * `test/sys/tables.test.mjs` checks these values against the same headers, transcribed.
 *
 * OpenBSD ≥ 5.7 has SOCK_NONBLOCK/SOCK_CLOEXEC, accept4, pipe2, MSG_NOSIGNAL and
 * MSG_CMSG_CLOEXEC. It has no POLLRDHUP, and no per-socket keep-alive timing (TCP_KEEPIDLE and
 * friends): the idle time is the `net.inet.tcp.keepidle` sysctl. Its sockaddr_storage is 256
 * bytes, not 128.
 */
import { BSD_C, BSD_ERRNO, BSD_POLL, bsdLayout, bsdTable } from "./common.js";
import { bsdKevent, KQUEUE_COMMON, NOTE_USER, TIMESPEC, type KqueueTable } from "./kevent.js";
import type { TargetTable } from "../table.js";

/** Constants, keyed by the portable names of `table.ts`: the 4.4BSD ones (`common.ts`), then this OS's own. */
export const C = {
  ...BSD_C,
  // sys/sys/socket.h
  AF_INET6: 24,
  SOCK_CLOEXEC: 0x8000,
  SOCK_NONBLOCK: 0x4000,
  SO_DOMAIN: 0x1024,
  MSG_NOSIGNAL: 0x400,
  MSG_CMSG_CLOEXEC: 0x800,
  // sys/sys/fcntl.h
  O_CLOEXEC: 0x10000,
  ...BSD_POLL,
} as const;

/** errno values by name (sys/sys/errno.h): the 4.4BSD ones (`common.ts`), then this OS's own (revision 1.25). */
export const ERRNO = {
  ...BSD_ERRNO,
  EOPNOTSUPP: 45, EIPSEC: 82, ENOATTR: 83, EILSEQ: 84, ENOMEDIUM: 85, EMEDIUMTYPE: 86,
  EOVERFLOW: 87, ECANCELED: 88, EIDRM: 89, ENOMSG: 90, ENOTSUP: 91, EBADMSG: 92,
  ENOTRECOVERABLE: 93, EOWNERDEAD: 94, EPROTO: 95,
} as const;

/** Struct layouts (LP64): the shared BSD ones (`common.ts`), with OpenBSD's 256-byte sockaddr_storage and unsigned msg_iovlen. */
export const LAYOUT = bsdLayout({ storageSize: 256, iovlen: "u32" });

/**
 * `_ALIGNBYTES + 1` (sys/arch/amd64/include/_types.h, sys/arch/arm64/include/_types.h:
 * sizeof(long)): 8, so the 12-byte cmsghdr's data starts at 16.
 */
export const CMSG_ALIGN = 8;

/** The OpenBSD table (no POLLRDHUP: see `bsdTable`). */
export const TABLE: TargetTable = bsdTable({ C, ERRNO, LAYOUT, CMSG_ALIGN });

/**
 * kqueue (sys/sys/event.h, revision 1.74). `struct kevent` is the 32-byte 4.4BSD one, with data
 * an int64_t (the same width as intptr_t on LP64). OpenBSD has no symbol versioning: `kevent`
 * is the one symbol.
 *
 * EVFILT_USER (−10, macOS's number) and its NOTE_TRIGGER/NOTE_FF* flags were added on
 * 2025-05-10 (event.h 1.74), after OpenBSD 7.7 was released, so only OpenBSD ≥ 7.8 has them; on
 * 7.7 and older, registering EVFILT_USER fails (an unknown filter), and a backend that wants it
 * must try it once and fall back to a pipe.
 */
export const KQUEUE: KqueueTable = {
  flavour: "openbsd",
  kevent: bsdKevent(32),
  timespec: TIMESPEC,
  symbols: { kqueue: "kqueue", kevent: "kevent" },
  K: { ...KQUEUE_COMMON, ...NOTE_USER, EVFILT_USER: -10 },
};
