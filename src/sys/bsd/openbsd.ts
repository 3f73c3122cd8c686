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
import { struct } from "../../ffi/layout.js";
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
  // sys/sys/poll.h
  POLLIN: 0x0001,
  POLLPRI: 0x0002,
  POLLOUT: 0x0004,
  POLLERR: 0x0008,
  POLLHUP: 0x0010,
  POLLNVAL: 0x0020,
} as const;

/** errno values by name: sys/sys/errno.h (revision 1.25). */
export const ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EDEADLK: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17, EXDEV: 18,
  ENODEV: 19, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26,
  EFBIG: 27, ENOSPC: 28, ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33, ERANGE: 34,
  EAGAIN: 35, EINPROGRESS: 36, EALREADY: 37, ENOTSOCK: 38, EDESTADDRREQ: 39, EMSGSIZE: 40,
  EPROTOTYPE: 41, ENOPROTOOPT: 42, EPROTONOSUPPORT: 43, ESOCKTNOSUPPORT: 44, EOPNOTSUPP: 45,
  EPFNOSUPPORT: 46, EAFNOSUPPORT: 47, EADDRINUSE: 48, EADDRNOTAVAIL: 49, ENETDOWN: 50,
  ENETUNREACH: 51, ENETRESET: 52, ECONNABORTED: 53, ECONNRESET: 54, ENOBUFS: 55, EISCONN: 56,
  ENOTCONN: 57, ESHUTDOWN: 58, ETOOMANYREFS: 59, ETIMEDOUT: 60, ECONNREFUSED: 61, ELOOP: 62,
  ENAMETOOLONG: 63, EHOSTDOWN: 64, EHOSTUNREACH: 65, ENOTEMPTY: 66, EPROCLIM: 67, EUSERS: 68,
  EDQUOT: 69, ESTALE: 70, EREMOTE: 71, EBADRPC: 72, ERPCMISMATCH: 73, EPROGUNAVAIL: 74,
  EPROGMISMATCH: 75, EPROCUNAVAIL: 76, ENOLCK: 77, ENOSYS: 78, EFTYPE: 79, EAUTH: 80, ENEEDAUTH: 81,
  EIPSEC: 82, ENOATTR: 83, EILSEQ: 84, ENOMEDIUM: 85, EMEDIUMTYPE: 86, EOVERFLOW: 87, ECANCELED: 88,
  EIDRM: 89, ENOMSG: 90, ENOTSUP: 91, EBADMSG: 92, ENOTRECOVERABLE: 93, EOWNERDEAD: 94, EPROTO: 95,
} as const;

/** Struct layouts (LP64). */
export const LAYOUT = {
  // sys/sys/socket.h: every sockaddr starts with a length byte and a one-byte family.
  sockaddr_storage: struct("struct sockaddr_storage", 256, {
    len: ["ss_len", 0, "u8"],
    family: ["ss_family", 1, "u8"],
  }),
  // sys/netinet/in.h
  sockaddr_in: struct("struct sockaddr_in", 16, {
    len: ["sin_len", 0, "u8"],
    family: ["sin_family", 1, "u8"],
    port: ["sin_port", 2, "u16be"],
    addr: ["sin_addr", 4, "bytes", 4],
  }),
  // sys/netinet6/in6.h
  sockaddr_in6: struct("struct sockaddr_in6", 28, {
    len: ["sin6_len", 0, "u8"],
    family: ["sin6_family", 1, "u8"],
    port: ["sin6_port", 2, "u16be"],
    flowinfo: ["sin6_flowinfo", 4, "u32"],
    addr: ["sin6_addr", 8, "bytes", 16],
    scopeId: ["sin6_scope_id", 24, "u32"],
  }),
  // sys/sys/un.h
  sockaddr_un: struct("struct sockaddr_un", 106, {
    len: ["sun_len", 0, "u8"],
    family: ["sun_family", 1, "u8"],
    path: ["sun_path", 2, "bytes", 104],
  }),
  // sys/sys/poll.h
  pollfd: struct("struct pollfd", 8, {
    fd: ["fd", 0, "i32"],
    events: ["events", 4, "i16"],
    revents: ["revents", 6, "i16"],
  }),
  // sys/sys/uio.h
  iovec: struct("struct iovec", 16, { base: ["iov_base", 0, "ptr"], len: ["iov_len", 8, "u64"] }),
  // sys/sys/socket.h: msg_iovlen is an unsigned int and msg_controllen a socklen_t.
  msghdr: struct("struct msghdr", 48, {
    name: ["msg_name", 0, "ptr"],
    namelen: ["msg_namelen", 8, "u32"],
    iov: ["msg_iov", 16, "ptr"],
    iovlen: ["msg_iovlen", 24, "u32"],
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

/**
 * `_ALIGNBYTES + 1` (sys/arch/amd64/include/_types.h, sys/arch/arm64/include/_types.h:
 * sizeof(long)): 8, so the 12-byte cmsghdr's data starts at 16.
 */
export const CMSG_ALIGN = 8;

/** The OpenBSD table. OpenBSD has no POLLRDHUP: a peer's shutdown shows as POLLIN, then read() = 0. */
export const TABLE: TargetTable = {
  C, ERRNO, LAYOUT, CMSG_ALIGN,
  POLL_READABLE: C.POLLIN | C.POLLPRI,
  POLL_WRITABLE: C.POLLOUT,
  POLL_READ_CLOSED: C.POLLHUP,
};
