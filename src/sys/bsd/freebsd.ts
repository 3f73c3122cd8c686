/**
 * Constants, errno numbers and struct layouts for FreeBSD (amd64 and arm64 share them), from
 * freebsd/freebsd-src: the header each group comes from is named above it (paths under `sys/`).
 * `test/sys/tables.test.mjs` checks these values against the same headers, transcribed.
 *
 * FreeBSD ≥ 10 has what evloop relies on: SOCK_NONBLOCK/SOCK_CLOEXEC, accept4, pipe2,
 * MSG_NOSIGNAL and MSG_CMSG_CLOEXEC. It has no POLLRDHUP.
 */
import { BSD_C, BSD_ERRNO, BSD_POLL, bsdLayout, bsdTable } from "./common.js";
import { bsdKevent, KQUEUE_COMMON, NOTE_USER, TIMESPEC, type KqueueTable } from "./kevent.js";
import type { TargetTable } from "../table.js";

/** Constants, keyed by the portable names of `table.ts`: the 4.4BSD ones (`common.ts`), then this OS's own. */
export const C = {
  ...BSD_C,
  // sys/sys/socket.h
  AF_INET6: 28,
  SOCK_CLOEXEC: 0x10000000,
  SOCK_NONBLOCK: 0x20000000,
  SO_DOMAIN: 0x1019,
  MSG_NOSIGNAL: 0x20000,
  MSG_CMSG_CLOEXEC: 0x40000,
  // sys/netinet/tcp.h
  TCP_KEEPIDLE: 256,
  TCP_KEEPINTVL: 512,
  TCP_KEEPCNT: 1024,
  // sys/sys/fcntl.h
  O_CLOEXEC: 0x00100000,
  ...BSD_POLL,
} as const;

/** errno values by name (sys/sys/errno.h): the 4.4BSD ones (`common.ts`), then this OS's own (ENOTSUP is an alias of EOPNOTSUPP there). */
export const ERRNO = {
  ...BSD_ERRNO,
  EOPNOTSUPP: 45, EIDRM: 82, ENOMSG: 83, EOVERFLOW: 84, ECANCELED: 85, EILSEQ: 86, ENOATTR: 87,
  EDOOFUS: 88, EBADMSG: 89, EMULTIHOP: 90, ENOLINK: 91, EPROTO: 92, ENOTCAPABLE: 93, ECAPMODE: 94,
  ENOTRECOVERABLE: 95, EOWNERDEAD: 96, EINTEGRITY: 97,
} as const;

/** Struct layouts (LP64): the shared BSD ones (`common.ts`). */
export const LAYOUT = bsdLayout();

/**
 * `_ALIGNBYTES + 1` (sys/x86/include/_align.h: sizeof(register_t); sys/arm64/include/_align.h:
 * sizeof(long long)): 8, so the 12-byte cmsghdr's data starts at 16.
 */
export const CMSG_ALIGN = 8;

/** The FreeBSD table (no POLLRDHUP: see `bsdTable`). */
export const TABLE: TargetTable = bsdTable({ C, ERRNO, LAYOUT, CMSG_ALIGN });

/**
 * kqueue (sys/sys/event.h, FreeBSD ≥ 12). `struct kevent` grew to 64 bytes in FreeBSD 12: data
 * became int64_t (it was intptr_t, the same width on LP64) and four `uint64_t ext[4]` words follow
 * udata, so a change or event list has a 64-byte stride. EVFILT_USER is −11.
 *
 * The symbol: libc.so.7 exports `kevent` twice through symbol versioning. The default version,
 * the one an unversioned dlsym("kevent") and a build against today's headers bind, is FreeBSD
 * 12's (FBSD_1.5), which takes the 64-byte struct; `kevent@FBSD_1.0` is FreeBSD 11's
 * `freebsd11_kevent`, which takes the old 32-byte one (lib/libc/include/compat.h:
 * `__sym_compat(kevent, freebsd11_kevent, FBSD_1.0)`). FreeBSD 11 and older are not supported.
 */
export const KQUEUE: KqueueTable = {
  flavour: "freebsd",
  kevent: bsdKevent(64),
  timespec: TIMESPEC,
  symbols: { kqueue: "kqueue", kevent: "kevent" },
  K: { ...KQUEUE_COMMON, ...NOTE_USER, EVFILT_USER: -11 },
};
