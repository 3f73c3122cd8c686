/**
 * Constants, errno numbers and struct layouts for NetBSD (amd64), from NetBSD/src: the header
 * each group comes from is named above it (paths under `sys/`). `test/sys/tables.test.mjs`
 * checks these values against the same headers, transcribed.
 *
 * NetBSD ≥ 6 has SOCK_NONBLOCK/SOCK_CLOEXEC, accept4, pipe2, MSG_NOSIGNAL and
 * MSG_CMSG_CLOEXEC. It has no SO_DOMAIN (getsockname's family answers) and no POLLRDHUP.
 */
import { BSD_C, BSD_ERRNO, BSD_POLL, bsdLayout, bsdTable } from "./common.js";
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
