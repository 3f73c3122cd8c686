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
import { BSD_ERRNO, BSD_POLL, bsdLayout, bsdTable } from "./common.js";
import type { TargetTable } from "../table.js";

/** Constants, keyed by the portable names of `table.ts`. */
export const C = {
  // sys/sys/socket.h
  AF_UNSPEC: 0,
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 24,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_RAW: 3,
  SOCK_SEQPACKET: 5,
  SOCK_CLOEXEC: 0x8000,
  SOCK_NONBLOCK: 0x4000,
  SOL_SOCKET: 0xffff,
  SO_ACCEPTCONN: 0x0002,
  SO_REUSEADDR: 0x0004,
  SO_KEEPALIVE: 0x0008,
  SO_BROADCAST: 0x0020,
  SO_REUSEPORT: 0x0200,
  SO_SNDBUF: 0x1001,
  SO_RCVBUF: 0x1002,
  SO_ERROR: 0x1007,
  SO_TYPE: 0x1008,
  SO_DOMAIN: 0x1024,
  SOMAXCONN: 128,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  MSG_PEEK: 0x2,
  MSG_TRUNC: 0x10,
  MSG_CTRUNC: 0x20,
  MSG_DONTWAIT: 0x80,
  MSG_NOSIGNAL: 0x400,
  MSG_CMSG_CLOEXEC: 0x800,
  SCM_RIGHTS: 0x01,
  // sys/netinet/in.h
  IPPROTO_TCP: 6,
  IPPROTO_UDP: 17,
  IPPROTO_IPV6: 41,
  // sys/netinet6/in6.h
  IPV6_V6ONLY: 27,
  // sys/netinet/tcp.h
  TCP_NODELAY: 0x01,
  // sys/sys/fcntl.h
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0x0004,
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
