/**
 * Every constant and struct layout evloop uses on Linux, in one place.
 *
 * Values are the kernel's generic ABI, shared by x86_64 and aarch64; the one difference that
 * matters here is `struct epoll_event`, packed on x86_64 only. `test/sys/layout.test.mjs` compiles
 * a C file from this table and checks every value against the system headers.
 */
import { ffi } from "../../ffi/runtime/load.js";
import { struct } from "../../ffi/layout.js";

const X86_64 = ffi.arch === "x64";

/** Constants, keyed by their C macro name (the compiler check relies on that). */
export const C = {
  // socket(2)
  AF_UNSPEC: 0,
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_RAW: 3,
  SOCK_SEQPACKET: 5,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  IPPROTO_TCP: 6,
  IPPROTO_UDP: 17,
  IPPROTO_IPV6: 41,
  // getsockopt/setsockopt
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_TYPE: 3,
  SO_ERROR: 4,
  SO_BROADCAST: 6,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_KEEPALIVE: 9,
  SO_REUSEPORT: 15,
  SO_ACCEPTCONN: 30,
  SO_DOMAIN: 39,
  TCP_NODELAY: 1,
  TCP_KEEPIDLE: 4,
  TCP_KEEPINTVL: 5,
  TCP_KEEPCNT: 6,
  IPV6_V6ONLY: 26,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  SOMAXCONN: 4096,
  // send/recv flags
  MSG_PEEK: 0x2,
  MSG_CTRUNC: 0x8,
  MSG_TRUNC: 0x20,
  MSG_DONTWAIT: 0x40,
  MSG_NOSIGNAL: 0x4000,
  MSG_CMSG_CLOEXEC: 0x40000000,
  SCM_RIGHTS: 1,
  // fcntl(2), pipe2(2), eventfd(2)
  F_GETFD: 1,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  O_NONBLOCK: 0o4000,
  O_CLOEXEC: 0o2000000,
  EFD_NONBLOCK: 0o4000,
  EFD_CLOEXEC: 0o2000000,
  // epoll(7)
  EPOLL_CLOEXEC: 0o2000000,
  EPOLL_CTL_ADD: 1,
  EPOLL_CTL_DEL: 2,
  EPOLL_CTL_MOD: 3,
  EPOLLIN: 0x1,
  EPOLLPRI: 0x2,
  EPOLLOUT: 0x4,
  EPOLLERR: 0x8,
  EPOLLHUP: 0x10,
  EPOLLRDHUP: 0x2000,
  EPOLLET: 0x80000000,
  // poll(2)
  POLLIN: 0x1,
  POLLPRI: 0x2,
  POLLOUT: 0x4,
  POLLERR: 0x8,
  POLLHUP: 0x10,
  POLLNVAL: 0x20,
  POLLRDHUP: 0x2000,
} as const;

/** errno values by name (Linux generic ABI). */
export const ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9,
  ECHILD: 10, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17,
  EXDEV: 18, ENODEV: 19, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25,
  ETXTBSY: 26, EFBIG: 27, ENOSPC: 28, ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33,
  ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36, ENOLCK: 37, ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40,
  ENOMSG: 42, EIDRM: 43, ENOSTR: 60, ENODATA: 61, ETIME: 62, ENOSR: 63, ENOLINK: 67, EPROTO: 71,
  EMULTIHOP: 72, EBADMSG: 74, EOVERFLOW: 75, EBADFD: 77, EILSEQ: 84, ENOTSOCK: 88,
  EDESTADDRREQ: 89, EMSGSIZE: 90, EPROTOTYPE: 91, ENOPROTOOPT: 92, EPROTONOSUPPORT: 93,
  ESOCKTNOSUPPORT: 94, EOPNOTSUPP: 95, EPFNOSUPPORT: 96, EAFNOSUPPORT: 97, EADDRINUSE: 98,
  EADDRNOTAVAIL: 99, ENETDOWN: 100, ENETUNREACH: 101, ENETRESET: 102, ECONNABORTED: 103,
  ECONNRESET: 104, ENOBUFS: 105, EISCONN: 106, ENOTCONN: 107, ESHUTDOWN: 108, ETOOMANYREFS: 109,
  ETIMEDOUT: 110, ECONNREFUSED: 111, EHOSTDOWN: 112, EHOSTUNREACH: 113, EALREADY: 114,
  EINPROGRESS: 115, ESTALE: 116, EDQUOT: 122, ECANCELED: 125, EOWNERDEAD: 130,
  ENOTRECOVERABLE: 131,
} as const;

/** Struct layouts (x86_64 and aarch64, LP64). */
export const LAYOUT = {
  sockaddr_storage: struct("struct sockaddr_storage", 128, { family: ["ss_family", 0, "u16"] }),
  sockaddr_in: struct("struct sockaddr_in", 16, {
    family: ["sin_family", 0, "u16"],
    port: ["sin_port", 2, "u16be"],
    addr: ["sin_addr", 4, "bytes", 4],
  }),
  sockaddr_in6: struct("struct sockaddr_in6", 28, {
    family: ["sin6_family", 0, "u16"],
    port: ["sin6_port", 2, "u16be"],
    flowinfo: ["sin6_flowinfo", 4, "u32"],
    addr: ["sin6_addr", 8, "bytes", 16],
    scopeId: ["sin6_scope_id", 24, "u32"],
  }),
  sockaddr_un: struct("struct sockaddr_un", 110, {
    family: ["sun_family", 0, "u16"],
    path: ["sun_path", 2, "bytes", 108],
  }),
  epoll_event: X86_64
    ? struct("struct epoll_event", 12, { events: ["events", 0, "u32"], data: ["data", 4, "u64"] })
    : struct("struct epoll_event", 16, { events: ["events", 0, "u32"], data: ["data", 8, "u64"] }),
  pollfd: struct("struct pollfd", 8, {
    fd: ["fd", 0, "i32"],
    events: ["events", 4, "i16"],
    revents: ["revents", 6, "i16"],
  }),
  iovec: struct("struct iovec", 16, { base: ["iov_base", 0, "ptr"], len: ["iov_len", 8, "u64"] }),
  msghdr: struct("struct msghdr", 56, {
    name: ["msg_name", 0, "ptr"],
    namelen: ["msg_namelen", 8, "u32"],
    iov: ["msg_iov", 16, "ptr"],
    iovlen: ["msg_iovlen", 24, "u64"],
    control: ["msg_control", 32, "ptr"],
    controllen: ["msg_controllen", 40, "u64"],
    flags: ["msg_flags", 48, "i32"],
  }),
  cmsghdr: struct("struct cmsghdr", 16, {
    len: ["cmsg_len", 0, "u64"],
    level: ["cmsg_level", 8, "i32"],
    type: ["cmsg_type", 12, "i32"],
  }),
  /** `int[2]`, as filled by pipe2/socketpair. */
  fdPair: struct("int[2]", 8, {}),
  /** `uint64_t`, the eventfd counter. */
  eventfdValue: struct("uint64_t", 8, {}),
} as const;

/** Alignment of control messages (`CMSG_ALIGN`): sizeof(size_t). */
export const CMSG_ALIGN = 8;
/** `CMSG_SPACE(n)`: bytes a control message with `n` data bytes takes. */
export const cmsgSpace = (n: number): number => LAYOUT.cmsghdr.size + Math.ceil(n / CMSG_ALIGN) * CMSG_ALIGN;
/** `CMSG_LEN(n)`: the `cmsg_len` of a control message with `n` data bytes. */
export const cmsgLen = (n: number): number => LAYOUT.cmsghdr.size + n;
