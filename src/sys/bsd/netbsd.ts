/**
 * Constants, errno numbers and struct layouts for NetBSD (amd64), from NetBSD/src: the header
 * each group comes from is named above it (paths under `sys/`). `test/sys/tables.test.mjs`
 * checks these values against the same headers, transcribed.
 *
 * NetBSD ≥ 6 has SOCK_NONBLOCK/SOCK_CLOEXEC, accept4, pipe2, MSG_NOSIGNAL and
 * MSG_CMSG_CLOEXEC. It has no SO_DOMAIN (getsockname's family answers) and no POLLRDHUP.
 */
import { BSD_C, BSD_ERRNO, BSD_POLL, bsdLayout, bsdTable } from "./common.js";
import { struct } from "../../ffi/layout.js";
import { KQUEUE_COMMON, NOTE_USER, TIMESPEC, type KqueueTable } from "./kevent.js";
import type { TargetTable } from "../table.js";

/** Constants, keyed by the portable names of `table.ts`: the 4.4BSD ones (`common.ts`), then this OS's own. */
export const C = {
  ...BSD_C,
  // sys/sys/socket.h
  AF_INET6: 24,
  SOCK_CLOEXEC: 0x10000000,
  SOCK_NONBLOCK: 0x20000000,
  MSG_NOSIGNAL: 0x0400,
  MSG_CMSG_CLOEXEC: 0x0800,
  // sys/netinet/tcp.h
  TCP_KEEPIDLE: 3,
  TCP_KEEPINTVL: 5,
  TCP_KEEPCNT: 6,
  // sys/sys/fcntl.h
  O_CLOEXEC: 0x00400000,
  ...BSD_POLL,
} as const;

/** errno values by name (sys/sys/errno.h): the 4.4BSD ones (`common.ts`), then this OS's own (ENOTSUP is its own number here). */
export const ERRNO = {
  ...BSD_ERRNO,
  EOPNOTSUPP: 45, EIDRM: 82, ENOMSG: 83, EOVERFLOW: 84, EILSEQ: 85, ENOTSUP: 86, ECANCELED: 87,
  EBADMSG: 88, ENODATA: 89, ENOSR: 90, ENOSTR: 91, ETIME: 92, ENOATTR: 93, EMULTIHOP: 94,
  ENOLINK: 95, EPROTO: 96,
} as const;

/** Struct layouts (LP64): the shared BSD ones (`common.ts`). */
export const LAYOUT = bsdLayout();

/**
 * `__ALIGNBYTES + 1` on amd64 (sizeof(long)), which sys/sys/socket.h's `__CMSG_ALIGN` uses: 8,
 * so the 12-byte cmsghdr's data starts at 16.
 */
export const CMSG_ALIGN = 8;

/** The NetBSD table (no POLLRDHUP: see `bsdTable`). */
export const TABLE: TargetTable = bsdTable({ C, ERRNO, LAYOUT, CMSG_ALIGN });

/**
 * `struct kevent` as `__kevent50` takes it (sys/sys/event.h, revision 1.45; sys/compat/sys/event.h
 * calls the same layout `struct kevent100`): filter and flags are uint32_t, not short and
 * u_short, so fflags moves to 16, data (int64_t) to 24 after 4 bytes of padding, udata to 32,
 * and the struct is 40 bytes. udata was an intptr_t before NetBSD 10 and is a void * since: the
 * same 8 bytes.
 */
const KEVENT_50 = struct("struct kevent", 40, {
  ident: ["ident", 0, "u64"],
  filter: ["filter", 8, "u32"],
  flags: ["flags", 12, "u32"],
  fflags: ["fflags", 16, "u32"],
  data: ["data", 24, "i64"],
  udata: ["udata", 32, "ptr"],
});

/**
 * kqueue (sys/sys/event.h). NetBSD renames kevent in its headers (`__RENAME`), so the symbol to
 * bind is not `kevent` (that name is NetBSD 5's entry point, whose timeout has a 32-bit time_t).
 * `__kevent50` takes the 40-byte struct above and is the only entry point of NetBSD 6 to 10.
 * NetBSD's current development branch, the future 11, appended `uint64_t ext[4]` (72 bytes) in
 * July 2023 behind a new symbol, `__kevent100` (sys/compat/common/kern_event_100.c, 2023-07-28,
 * after the netbsd-10 branch): its libc keeps `__kevent50` with the 40-byte layout for older
 * binaries, so binding `__kevent50` works on 10 and on 11. That libc's `__kevent50` converts to
 * `__kevent100` rather than entering the kernel directly; this was read in NetBSD's sources, not
 * run on a NetBSD 11 system.
 *
 * NetBSD numbers its filters from 0 (EVFILT_READ 0 … EVFILT_TIMER 6, EVFILT_USER 8), so the
 * 4.4BSD values of `KQUEUE_COMMON` are overridden; the EV_* and NOTE_* values are the common
 * ones. EVFILT_USER is in the header by revision 1.45 (October 2021), after NetBSD 9 branched:
 * NetBSD ≥ 10 (not checked against a NetBSD 9 header).
 */
export const KQUEUE: KqueueTable = {
  flavour: "netbsd",
  kevent: KEVENT_50,
  timespec: TIMESPEC,
  symbols: { kqueue: "kqueue", kevent: "__kevent50" },
  K: {
    ...KQUEUE_COMMON,
    ...NOTE_USER,
    EVFILT_READ: 0,
    EVFILT_WRITE: 1,
    EVFILT_VNODE: 3,
    EVFILT_PROC: 4,
    EVFILT_SIGNAL: 5,
    EVFILT_TIMER: 6,
    EVFILT_USER: 8,
  },
};
