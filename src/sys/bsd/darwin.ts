/**
 * Constants, errno numbers and struct layouts for macOS (x86_64 and arm64 share them), from
 * xnu's headers (apple-oss-distributions/xnu, xnu-11417): the file each group comes from is named
 * above it. No C compiler for macOS is at hand where evloop is tested, so
 * `test/sys/tables.test.mjs` checks these values against the same headers, transcribed.
 *
 * What macOS lacks, and how the portable code copes: no SOCK_NONBLOCK/SOCK_CLOEXEC (fcntl after
 * socket/accept), no accept4 or pipe2 (the same), no MSG_CMSG_CLOEXEC (FD_CLOEXEC on each
 * received fd), no SO_DOMAIN (getsockname's family), no POLLRDHUP.
 */
import { BSD_C, BSD_ERRNO, BSD_POLL, bsdLayout, bsdTable } from "./common.js";
import { bsdKevent, KQUEUE_COMMON, NOTE_USER, TIMESPEC, type KqueueTable } from "./kevent.js";
import type { TargetTable } from "../table.js";

/** Constants, keyed by the portable names of `table.ts`: the 4.4BSD ones (`common.ts`), then this OS's own. */
export const C = {
  ...BSD_C,
  // bsd/sys/socket.h
  AF_INET6: 30,
  // Defined since xnu-7195 (macOS 11).
  MSG_NOSIGNAL: 0x80000,
  // bsd/netinet/tcp.h. macOS names the idle time TCP_KEEPALIVE; it is Linux's TCP_KEEPIDLE.
  TCP_KEEPIDLE: 0x10,
  TCP_KEEPINTVL: 0x101,
  TCP_KEEPCNT: 0x102,
  // bsd/sys/fcntl.h
  O_CLOEXEC: 0x01000000,
  ...BSD_POLL,
} as const;

/** errno values by name (bsd/sys/errno.h): the 4.4BSD ones (`common.ts`), then macOS's own. */
export const ERRNO = {
  ...BSD_ERRNO,
  ENOTSUP: 45, EPWROFF: 82, EDEVERR: 83, EOVERFLOW: 84, EBADEXEC: 85, EBADARCH: 86, ESHLIBVERS: 87,
  EBADMACHO: 88, ECANCELED: 89, EIDRM: 90, ENOMSG: 91, EILSEQ: 92, ENOATTR: 93, EBADMSG: 94,
  EMULTIHOP: 95, ENODATA: 96, ENOLINK: 97, ENOSR: 98, ENOSTR: 99, EPROTO: 100, ETIME: 101,
  EOPNOTSUPP: 102, ENOPOLICY: 103, ENOTRECOVERABLE: 104, EOWNERDEAD: 105, EQFULL: 106,
} as const;

/** Struct layouts (LP64): the shared BSD ones (`common.ts`). */
export const LAYOUT = bsdLayout();

/** `__DARWIN_ALIGN32` (bsd/i386/_param.h, bsd/arm/_param.h): control messages align to 4 bytes. */
export const CMSG_ALIGN = 4;

/** The macOS table (no POLLRDHUP: see `bsdTable`). */
export const TABLE: TargetTable = bsdTable({ C, ERRNO, LAYOUT, CMSG_ALIGN });

/**
 * kqueue (bsd/sys/event.h). evloop calls `kevent()`, whose `struct kevent` is 32 bytes (ident
 * uintptr_t, filter int16_t, flags uint16_t, fflags uint32_t, data intptr_t, udata void *), not
 * `kevent64()` and its 48-byte `kevent64_s`. The header wraps `struct kevent` in
 * `#pragma pack(4)`, which moves nothing on LP64: every field already sits on its own alignment.
 * EVFILT_USER is −10 here (FreeBSD's is −11); NOTE_TRIGGER and the NOTE_FF* flags are FreeBSD's.
 */
export const KQUEUE: KqueueTable = {
  flavour: "darwin",
  kevent: bsdKevent(32),
  timespec: TIMESPEC,
  // libSystem exports both unversioned.
  symbols: { kqueue: "kqueue", kevent: "kevent" },
  K: { ...KQUEUE_COMMON, ...NOTE_USER, EVFILT_USER: -10 },
};
