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
import { struct } from "../../ffi/layout.js";
import type { TargetTable } from "../table.js";

/** Constants, keyed by the portable names of `table.ts`. */
export const C = {
  // bsd/sys/socket.h
  AF_UNSPEC: 0,
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 30,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_RAW: 3,
  SOCK_SEQPACKET: 5,
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
  SOMAXCONN: 128,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  MSG_PEEK: 0x2,
  MSG_TRUNC: 0x10,
  MSG_CTRUNC: 0x20,
  MSG_DONTWAIT: 0x80,
  // Defined since xnu-7195 (macOS 11).
  MSG_NOSIGNAL: 0x80000,
  SCM_RIGHTS: 0x01,
  // bsd/netinet/in.h
  IPPROTO_TCP: 6,
  IPPROTO_UDP: 17,
  IPPROTO_IPV6: 41,
  // bsd/netinet6/in6.h
  IPV6_V6ONLY: 27,
  // bsd/netinet/tcp.h. macOS names the idle time TCP_KEEPALIVE; it is Linux's TCP_KEEPIDLE.
  TCP_NODELAY: 0x01,
  TCP_KEEPIDLE: 0x10,
  TCP_KEEPINTVL: 0x101,
  TCP_KEEPCNT: 0x102,
  // bsd/sys/fcntl.h
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0x00000004,
  O_CLOEXEC: 0x01000000,
  // bsd/sys/poll.h
  POLLIN: 0x0001,
  POLLPRI: 0x0002,
  POLLOUT: 0x0004,
  POLLERR: 0x0008,
  POLLHUP: 0x0010,
  POLLNVAL: 0x0020,
} as const;

/** errno values by name: bsd/sys/errno.h. */
export const ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EDEADLK: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17, EXDEV: 18,
  ENODEV: 19, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26,
  EFBIG: 27, ENOSPC: 28, ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33, ERANGE: 34,
  EAGAIN: 35, EINPROGRESS: 36, EALREADY: 37, ENOTSOCK: 38, EDESTADDRREQ: 39, EMSGSIZE: 40,
  EPROTOTYPE: 41, ENOPROTOOPT: 42, EPROTONOSUPPORT: 43, ESOCKTNOSUPPORT: 44, ENOTSUP: 45,
  EPFNOSUPPORT: 46, EAFNOSUPPORT: 47, EADDRINUSE: 48, EADDRNOTAVAIL: 49, ENETDOWN: 50,
  ENETUNREACH: 51, ENETRESET: 52, ECONNABORTED: 53, ECONNRESET: 54, ENOBUFS: 55, EISCONN: 56,
  ENOTCONN: 57, ESHUTDOWN: 58, ETOOMANYREFS: 59, ETIMEDOUT: 60, ECONNREFUSED: 61, ELOOP: 62,
  ENAMETOOLONG: 63, EHOSTDOWN: 64, EHOSTUNREACH: 65, ENOTEMPTY: 66, EPROCLIM: 67, EUSERS: 68,
  EDQUOT: 69, ESTALE: 70, EREMOTE: 71, EBADRPC: 72, ERPCMISMATCH: 73, EPROGUNAVAIL: 74,
  EPROGMISMATCH: 75, EPROCUNAVAIL: 76, ENOLCK: 77, ENOSYS: 78, EFTYPE: 79, EAUTH: 80, ENEEDAUTH: 81,
  EPWROFF: 82, EDEVERR: 83, EOVERFLOW: 84, EBADEXEC: 85, EBADARCH: 86, ESHLIBVERS: 87, EBADMACHO: 88,
  ECANCELED: 89, EIDRM: 90, ENOMSG: 91, EILSEQ: 92, ENOATTR: 93, EBADMSG: 94, EMULTIHOP: 95,
  ENODATA: 96, ENOLINK: 97, ENOSR: 98, ENOSTR: 99, EPROTO: 100, ETIME: 101, EOPNOTSUPP: 102,
  ENOPOLICY: 103, ENOTRECOVERABLE: 104, EOWNERDEAD: 105, EQFULL: 106,
} as const;

/** Struct layouts (LP64). */
export const LAYOUT = {
  // bsd/sys/socket.h: every sockaddr starts with a length byte and a one-byte family.
  sockaddr_storage: struct("struct sockaddr_storage", 128, {
    len: ["ss_len", 0, "u8"],
    family: ["ss_family", 1, "u8"],
  }),
  // bsd/netinet/in.h
  sockaddr_in: struct("struct sockaddr_in", 16, {
    len: ["sin_len", 0, "u8"],
    family: ["sin_family", 1, "u8"],
    port: ["sin_port", 2, "u16be"],
    addr: ["sin_addr", 4, "bytes", 4],
  }),
  // bsd/netinet6/in6.h
  sockaddr_in6: struct("struct sockaddr_in6", 28, {
    len: ["sin6_len", 0, "u8"],
    family: ["sin6_family", 1, "u8"],
    port: ["sin6_port", 2, "u16be"],
    flowinfo: ["sin6_flowinfo", 4, "u32"],
    addr: ["sin6_addr", 8, "bytes", 16],
    scopeId: ["sin6_scope_id", 24, "u32"],
  }),
  // bsd/sys/un.h
  sockaddr_un: struct("struct sockaddr_un", 106, {
    len: ["sun_len", 0, "u8"],
    family: ["sun_family", 1, "u8"],
    path: ["sun_path", 2, "bytes", 104],
  }),
  // bsd/sys/poll.h
  pollfd: struct("struct pollfd", 8, {
    fd: ["fd", 0, "i32"],
    events: ["events", 4, "i16"],
    revents: ["revents", 6, "i16"],
  }),
  // bsd/sys/_types/_iovec_t.h
  iovec: struct("struct iovec", 16, { base: ["iov_base", 0, "ptr"], len: ["iov_len", 8, "u64"] }),
  // bsd/sys/socket.h: msg_iovlen is an int and msg_controllen a socklen_t.
  msghdr: struct("struct msghdr", 48, {
    name: ["msg_name", 0, "ptr"],
    namelen: ["msg_namelen", 8, "u32"],
    iov: ["msg_iov", 16, "ptr"],
    iovlen: ["msg_iovlen", 24, "i32"],
    control: ["msg_control", 32, "ptr"],
    controllen: ["msg_controllen", 40, "u32"],
    flags: ["msg_flags", 44, "i32"],
  }),
  cmsghdr: struct("struct cmsghdr", 12, {
    len: ["cmsg_len", 0, "u32"],
    level: ["cmsg_level", 4, "i32"],
    type: ["cmsg_type", 8, "i32"],
  }),
  fdPair: struct("int[2]", 8, {}),
} as const;

/** `__DARWIN_ALIGN32` (bsd/i386/_param.h, bsd/arm/_param.h): control messages align to 4 bytes. */
export const CMSG_ALIGN = 4;

/** The macOS table. macOS has no POLLRDHUP: a peer's shutdown shows as POLLIN, then read() = 0. */
export const TABLE: TargetTable = {
  C, ERRNO, LAYOUT, CMSG_ALIGN,
  POLL_READABLE: C.POLLIN | C.POLLPRI,
  POLL_WRITABLE: C.POLLOUT,
  POLL_READ_CLOSED: C.POLLHUP,
};
