/**
 * What the BSDs and macOS share: the errno numbers they inherited from 4.4BSD, and the struct
 * layouts (LP64) — 4.4BSD socket structures, where every sockaddr starts with a length byte and
 * a one-byte family, and the same pollfd, iovec, msghdr and cmsghdr. Each OS's table takes them from here with its own differences; the headers are
 * macOS `bsd/sys/socket.h`, `bsd/netinet/in.h`, `bsd/netinet6/in6.h`, `bsd/sys/un.h`,
 * `bsd/sys/poll.h`, `bsd/sys/_types/_iovec_t.h`, and the BSDs' `sys/sys/socket.h`,
 * `sys/sys/_sockaddr_storage.h` (FreeBSD), `sys/netinet/in.h`, `sys/netinet6/in6.h`,
 * `sys/sys/un.h`, `sys/sys/poll.h`, `sys/sys/uio.h` / `sys/sys/_iovec.h` (FreeBSD).
 */
import { struct } from "../../ffi/layout.js";
import type { TargetTable } from "../table.js";

/**
 * errno values 1 to 81, which the BSDs and macOS inherited from 4.4BSD and share (macOS
 * bsd/sys/errno.h, the BSDs' sys/sys/errno.h); each OS's table adds the rest.
 */
export const BSD_ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9,
  ECHILD: 10, EDEADLK: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17,
  EXDEV: 18, ENODEV: 19, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25,
  ETXTBSY: 26, EFBIG: 27, ENOSPC: 28, ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33,
  ERANGE: 34, EAGAIN: 35, EINPROGRESS: 36, EALREADY: 37, ENOTSOCK: 38, EDESTADDRREQ: 39,
  EMSGSIZE: 40, EPROTOTYPE: 41, ENOPROTOOPT: 42, EPROTONOSUPPORT: 43, ESOCKTNOSUPPORT: 44,
  EPFNOSUPPORT: 46, EAFNOSUPPORT: 47, EADDRINUSE: 48, EADDRNOTAVAIL: 49, ENETDOWN: 50,
  ENETUNREACH: 51, ENETRESET: 52, ECONNABORTED: 53, ECONNRESET: 54, ENOBUFS: 55, EISCONN: 56,
  ENOTCONN: 57, ESHUTDOWN: 58, ETOOMANYREFS: 59, ETIMEDOUT: 60, ECONNREFUSED: 61, ELOOP: 62,
  ENAMETOOLONG: 63, EHOSTDOWN: 64, EHOSTUNREACH: 65, ENOTEMPTY: 66, EPROCLIM: 67, EUSERS: 68,
  EDQUOT: 69, ESTALE: 70, EREMOTE: 71, EBADRPC: 72, ERPCMISMATCH: 73, EPROGUNAVAIL: 74,
  EPROGMISMATCH: 75, EPROCUNAVAIL: 76, ENOLCK: 77, ENOSYS: 78, EFTYPE: 79, EAUTH: 80, ENEEDAUTH: 81,
} as const;

/**
 * The socket, fcntl and protocol constants every BSD and macOS inherited from 4.4BSD with the
 * same values; each OS's table adds the ones that differ (AF_INET6, MSG_NOSIGNAL, O_CLOEXEC,
 * the TCP keep-alive options, SOCK_NONBLOCK/SOCK_CLOEXEC, SO_DOMAIN, MSG_CMSG_CLOEXEC).
 */
export const BSD_C = {
  // sys/socket.h
  AF_UNSPEC: 0,
  AF_UNIX: 1,
  AF_INET: 2,
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
  SCM_RIGHTS: 0x01,
  // netinet/in.h
  IPPROTO_TCP: 6,
  IPPROTO_UDP: 17,
  IPPROTO_IPV6: 41,
  // netinet6/in6.h
  IPV6_V6ONLY: 27,
  // netinet/tcp.h
  TCP_NODELAY: 1,
  // sys/fcntl.h
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0x0004,
} as const;

/** poll(2)'s events, the same on every BSD and macOS (sys/poll.h). */
export const BSD_POLL = {
  POLLIN: 0x0001,
  POLLPRI: 0x0002,
  POLLOUT: 0x0004,
  POLLERR: 0x0008,
  POLLHUP: 0x0010,
  POLLNVAL: 0x0020,
} as const;

/**
 * A BSD's table from its parts. None has POLLRDHUP: a peer's shutdown shows as POLLIN (then
 * read() returns 0), and a connection gone both ways as POLLHUP.
 */
export function bsdTable(parts: Pick<TargetTable, "C" | "ERRNO" | "LAYOUT" | "CMSG_ALIGN">): TargetTable {
  return {
    ...parts,
    POLL_READABLE: BSD_POLL.POLLIN | BSD_POLL.POLLPRI,
    POLL_WRITABLE: BSD_POLL.POLLOUT,
    POLL_READ_CLOSED: BSD_POLL.POLLHUP,
    // read(2)/write(2) fail with EINVAL past INT_MAX (sys_generic.c, `if (nbyte > INT_MAX)`).
    MAX_IO_BYTES: 0x7fffffff,
  };
}

/** Where one BSD's struct layouts differ from the others'. */
export interface BsdLayoutOptions {
  /** sizeof(struct sockaddr_storage): 128, or 256 on OpenBSD. */
  readonly storageSize?: number;
  /** msg_iovlen: an int, or an unsigned int on OpenBSD. */
  readonly iovlen?: "i32" | "u32";
}

/** The layouts of one BSD (or macOS). */
export function bsdLayout(options: BsdLayoutOptions = {}) {
  return {
    sockaddr_storage: struct("struct sockaddr_storage", options.storageSize ?? 128, {
      len: ["ss_len", 0, "u8"],
      family: ["ss_family", 1, "u8"],
    }),
    sockaddr_in: struct("struct sockaddr_in", 16, {
      len: ["sin_len", 0, "u8"],
      family: ["sin_family", 1, "u8"],
      port: ["sin_port", 2, "u16be"],
      addr: ["sin_addr", 4, "bytes", 4],
    }),
    sockaddr_in6: struct("struct sockaddr_in6", 28, {
      len: ["sin6_len", 0, "u8"],
      family: ["sin6_family", 1, "u8"],
      port: ["sin6_port", 2, "u16be"],
      flowinfo: ["sin6_flowinfo", 4, "u32"],
      addr: ["sin6_addr", 8, "bytes", 16],
      scopeId: ["sin6_scope_id", 24, "u32"],
    }),
    sockaddr_un: struct("struct sockaddr_un", 106, {
      len: ["sun_len", 0, "u8"],
      family: ["sun_family", 1, "u8"],
      path: ["sun_path", 2, "bytes", 104],
    }),
    pollfd: struct("struct pollfd", 8, {
      fd: ["fd", 0, "i32"],
      events: ["events", 4, "i16"],
      revents: ["revents", 6, "i16"],
    }),
    iovec: struct("struct iovec", 16, { base: ["iov_base", 0, "ptr"], len: ["iov_len", 8, "u64"] }),
    // msg_controllen is a socklen_t everywhere.
    msghdr: struct("struct msghdr", 48, {
      name: ["msg_name", 0, "ptr"],
      namelen: ["msg_namelen", 8, "u32"],
      iov: ["msg_iov", 16, "ptr"],
      iovlen: ["msg_iovlen", 24, options.iovlen ?? "i32"],
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
}
