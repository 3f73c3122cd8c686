/**
 * The contract every target's table meets: the constants, errno numbers and struct layouts the
 * portable code (`sys/posix/`, `selector/poll.ts`, `net/`, `io/`) uses, under the same names on
 * every OS. Each table lives in one file per target (`linux/constants.ts`, `bsd/darwin.ts`, …);
 * `target.ts` picks the one for the running OS.
 *
 * The numbers differ between systems (SOL_SOCKET is 1 on Linux and 0xffff on the BSDs, EAGAIN 11
 * and 35); so do some layouts (BSD socket addresses start with a length byte, `sin_len`, and a
 * one-byte family; `msghdr` counts are `int` instead of `size_t`).
 */
import type { Field, StructLayout } from "../ffi/layout.js";

/**
 * Constants portable code may use. An optional one is missing on some OS (the comment says
 * where), and code checks for it: a flag the OS lacks is not silently OR-ed in as 0.
 */
export interface PosixConstants {
  readonly AF_UNSPEC: number;
  readonly AF_UNIX: number;
  readonly AF_INET: number;
  readonly AF_INET6: number;
  readonly SOCK_STREAM: number;
  readonly SOCK_DGRAM: number;
  readonly SOCK_RAW: number;
  readonly SOCK_SEQPACKET: number;
  /** socket(2)/socketpair(2) type flags; missing on macOS, where fcntl sets them afterwards. */
  readonly SOCK_NONBLOCK?: number;
  readonly SOCK_CLOEXEC?: number;
  readonly IPPROTO_TCP: number;
  readonly IPPROTO_UDP: number;
  readonly IPPROTO_IPV6: number;
  readonly SOL_SOCKET: number;
  readonly SO_REUSEADDR: number;
  readonly SO_TYPE: number;
  readonly SO_ERROR: number;
  readonly SO_BROADCAST: number;
  readonly SO_SNDBUF: number;
  readonly SO_RCVBUF: number;
  readonly SO_KEEPALIVE: number;
  readonly SO_REUSEPORT: number;
  readonly SO_ACCEPTCONN: number;
  /** The socket's domain; missing on macOS and NetBSD, where getsockname's family answers. */
  readonly SO_DOMAIN?: number;
  /**
   * A Unix socket peer's credentials (`struct ucred`); Linux only here. The BSDs have other
   * shapes (LOCAL_PEERCRED with `struct xucred` on macOS and FreeBSD, getpeereid(3) everywhere),
   * which the kqueue work will add (issue #10).
   */
  readonly SO_PEERCRED?: number;
  readonly TCP_NODELAY: number;
  /** Idle time before keep-alive probes (macOS calls it TCP_KEEPALIVE); missing on OpenBSD. */
  readonly TCP_KEEPIDLE?: number;
  readonly TCP_KEEPINTVL?: number;
  readonly TCP_KEEPCNT?: number;
  readonly IPV6_V6ONLY: number;
  readonly SHUT_RD: number;
  readonly SHUT_WR: number;
  readonly SHUT_RDWR: number;
  readonly SOMAXCONN: number;
  readonly MSG_PEEK: number;
  readonly MSG_CTRUNC: number;
  readonly MSG_TRUNC: number;
  readonly MSG_DONTWAIT: number;
  readonly MSG_NOSIGNAL: number;
  /** recvmsg(2) flag; missing on macOS, where received fds get FD_CLOEXEC afterwards. */
  readonly MSG_CMSG_CLOEXEC?: number;
  readonly SCM_RIGHTS: number;
  readonly F_GETFD: number;
  readonly F_SETFD: number;
  readonly F_GETFL: number;
  readonly F_SETFL: number;
  readonly FD_CLOEXEC: number;
  readonly O_NONBLOCK: number;
  readonly O_CLOEXEC: number;
  readonly POLLIN: number;
  readonly POLLPRI: number;
  readonly POLLOUT: number;
  readonly POLLERR: number;
  readonly POLLHUP: number;
  readonly POLLNVAL: number;
}

/** errno names every target defines (POSIX's, plus the BSD socket errors all of them share). */
export type ErrnoName =
  | "EPERM" | "ENOENT" | "ESRCH" | "EINTR" | "EIO" | "ENXIO" | "E2BIG" | "ENOEXEC" | "EBADF" | "ECHILD"
  | "EDEADLK" | "ENOMEM" | "EACCES" | "EFAULT" | "ENOTBLK" | "EBUSY" | "EEXIST" | "EXDEV" | "ENODEV"
  | "ENOTDIR" | "EISDIR" | "EINVAL" | "ENFILE" | "EMFILE" | "ENOTTY" | "ETXTBSY" | "EFBIG" | "ENOSPC"
  | "ESPIPE" | "EROFS" | "EMLINK" | "EPIPE" | "EDOM" | "ERANGE" | "EAGAIN" | "EINPROGRESS" | "EALREADY"
  | "ENOTSOCK" | "EDESTADDRREQ" | "EMSGSIZE" | "EPROTOTYPE" | "ENOPROTOOPT" | "EPROTONOSUPPORT"
  | "ESOCKTNOSUPPORT" | "EOPNOTSUPP" | "EPFNOSUPPORT" | "EAFNOSUPPORT" | "EADDRINUSE" | "EADDRNOTAVAIL"
  | "ENETDOWN" | "ENETUNREACH" | "ENETRESET" | "ECONNABORTED" | "ECONNRESET" | "ENOBUFS" | "EISCONN"
  | "ENOTCONN" | "ESHUTDOWN" | "ETOOMANYREFS" | "ETIMEDOUT" | "ECONNREFUSED" | "ELOOP" | "ENAMETOOLONG"
  | "EHOSTDOWN" | "EHOSTUNREACH" | "ENOTEMPTY" | "EDQUOT" | "ESTALE" | "ENOLCK" | "ENOSYS" | "EIDRM"
  | "ENOMSG" | "EOVERFLOW" | "ECANCELED" | "EILSEQ";

/**
 * errno numbers by name: the common names, and whatever else the OS defines (for messages).
 * Aliases (EWOULDBLOCK = EAGAIN) are left out, so every number has one name.
 */
export type ErrnoTable = { readonly [K in ErrnoName]: number } & { readonly [name: string]: number };

/** A socket address layout; `len` is the BSD length byte (`sin_len`), absent on Linux. */
type SockaddrLayout<F extends string> = StructLayout<F> & { readonly fields: { readonly len?: Field } };

/** Struct layouts portable code uses. */
export interface PosixLayout {
  readonly sockaddr_storage: SockaddrLayout<"family">;
  readonly sockaddr_in: SockaddrLayout<"family" | "port" | "addr">;
  readonly sockaddr_in6: SockaddrLayout<"family" | "port" | "flowinfo" | "addr" | "scopeId">;
  readonly sockaddr_un: SockaddrLayout<"family" | "path">;
  readonly pollfd: StructLayout<"fd" | "events" | "revents">;
  readonly iovec: StructLayout<"base" | "len">;
  readonly msghdr: StructLayout<"name" | "namelen" | "iov" | "iovlen" | "control" | "controllen" | "flags">;
  readonly cmsghdr: StructLayout<"len" | "level" | "type">;
  /** `int[2]`, as filled by pipe/socketpair. */
  readonly fdPair: StructLayout;
  /** `struct ucred` for SO_PEERCRED; where the table has no SO_PEERCRED, none. */
  readonly ucred?: StructLayout<"pid" | "uid" | "gid">;
}

/** One target's table. */
export interface TargetTable {
  readonly C: PosixConstants;
  readonly ERRNO: ErrnoTable;
  readonly LAYOUT: PosixLayout;
  /** The unit control messages are aligned to (`CMSG_ALIGN`): 8 on Linux and FreeBSD, 4 on macOS. */
  readonly CMSG_ALIGN: number;
  /** poll(2) events meaning "a read will not block": POLLIN|POLLPRI, and POLLRDHUP on Linux. */
  readonly POLL_READABLE: number;
  /** poll(2) events meaning "a write will not block": POLLOUT. */
  readonly POLL_WRITABLE: number;
  /** Returned poll(2) events meaning "the peer will send nothing more": POLLHUP, and POLLRDHUP on Linux. */
  readonly POLL_READ_CLOSED: number;
  /**
   * The most bytes one read/write/send/recv may be asked for. Linux's own limit is MAX_RW_COUNT
   * (INT_MAX rounded down to a page); the BSDs and macOS refuse more than INT_MAX with EINVAL.
   */
  readonly MAX_IO_BYTES: number;
}

/** The `CMSG_*` macros for a header of `headerSize` bytes aligned to `align`. */
export interface CmsgMacros {
  /** `CMSG_ALIGN(n)`. */
  readonly align: (n: number) => number;
  /** Offset of the data from the header (`CMSG_DATA(c) - c`): the aligned header size. */
  readonly dataOffset: number;
  /** `CMSG_LEN(n)`: the `cmsg_len` of a message with `n` data bytes. */
  readonly len: (n: number) => number;
  /** `CMSG_SPACE(n)`: the bytes a message with `n` data bytes takes, padding included. */
  readonly space: (n: number) => number;
}

/**
 * The `CMSG_*` macros, as every target's headers define them. The data starts at the aligned
 * header size, which is not the header size on FreeBSD: its 12-byte header is padded to 16.
 */
export function cmsgMacros(headerSize: number, alignment: number): CmsgMacros {
  const align = (n: number): number => Math.ceil(n / alignment) * alignment;
  const dataOffset = align(headerSize);
  return { align, dataOffset, len: (n) => dataOffset + n, space: (n) => dataOffset + align(n) };
}
