/**
 * Every constant and struct layout evloop uses on Linux, in one place.
 *
 * Values are the kernel's generic ABI, shared by x86_64 and aarch64; the one difference that
 * matters here is `struct epoll_event`, packed on x86_64 only. `test/sys/layout.test.mjs` compiles
 * a C file from this table and checks every value against the system headers.
 */
import { ffi } from "../../ffi/runtime/load.js";
import { struct } from "../../ffi/layout.js";
import { cmsgMacros, type TargetTable } from "../table.js";

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
  SO_PEERCRED: 17,
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
  // dlopen(3): the same in glibc and musl
  RTLD_NOW: 0x2,
  RTLD_NODELETE: 0x1000,
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
  // mmap(2)
  PROT_READ: 0x1,
  PROT_WRITE: 0x2,
  MAP_SHARED: 0x1,
  MAP_PRIVATE: 0x2,
  MAP_ANONYMOUS: 0x20,
  MAP_POPULATE: 0x8000,
  // io_uring(7): system call numbers (the generic table; x86_64 and aarch64 agree)
  SYS_io_uring_setup: 425,
  SYS_io_uring_enter: 426,
  SYS_io_uring_register: 427,
  // io_uring_setup(2) flags and features
  IORING_SETUP_CQSIZE: 1 << 3,
  IORING_SETUP_CLAMP: 1 << 4,
  IORING_SETUP_SUBMIT_ALL: 1 << 7,
  IORING_SETUP_COOP_TASKRUN: 1 << 8,
  IORING_SETUP_TASKRUN_FLAG: 1 << 9,
  IORING_SETUP_SINGLE_ISSUER: 1 << 12,
  IORING_FEAT_SINGLE_MMAP: 1 << 0,
  IORING_FEAT_NODROP: 1 << 1,
  IORING_FEAT_SUBMIT_STABLE: 1 << 2,
  IORING_FEAT_RW_CUR_POS: 1 << 3,
  IORING_FEAT_CUR_PERSONALITY: 1 << 4,
  IORING_FEAT_FAST_POLL: 1 << 5,
  IORING_FEAT_POLL_32BITS: 1 << 6,
  IORING_FEAT_SQPOLL_NONFIXED: 1 << 7,
  IORING_FEAT_EXT_ARG: 1 << 8,
  IORING_FEAT_NATIVE_WORKERS: 1 << 9,
  IORING_FEAT_RSRC_TAGS: 1 << 10,
  IORING_FEAT_CQE_SKIP: 1 << 11,
  IORING_FEAT_LINKED_FILE: 1 << 12,
  // mmap offsets of the rings
  IORING_OFF_SQ_RING: 0,
  IORING_OFF_CQ_RING: 0x8000000,
  IORING_OFF_SQES: 0x10000000,
  // io_uring_enter(2) flags; SQ ring flags
  IORING_ENTER_GETEVENTS: 1 << 0,
  IORING_SQ_CQ_OVERFLOW: 1 << 1,
  IORING_SQ_TASKRUN: 1 << 2,
  // SQE flags and per-op flags
  IOSQE_IO_LINK: 1 << 2,
  IOSQE_BUFFER_SELECT: 1 << 5,
  IOSQE_CQE_SKIP_SUCCESS: 1 << 6,
  IORING_ASYNC_CANCEL_ALL: 1 << 0,
  IORING_ASYNC_CANCEL_FD: 1 << 1,
  IORING_ASYNC_CANCEL_ANY: 1 << 2,
  IORING_RECV_MULTISHOT: 1 << 1,
  IORING_ACCEPT_MULTISHOT: 1 << 0,
  IORING_CQE_F_BUFFER: 1 << 0,
  IORING_CQE_F_MORE: 1 << 1,
  IO_URING_OP_SUPPORTED: 1 << 0,
  // preadv2/pwritev2 flags, also io_uring READ/WRITE's rw_flags
  RWF_NOWAIT: 0x8,
} as const;

/**
 * io_uring values the kernel headers declare as enum members, not macros: the compiler check
 * prints them unconditionally (an older header without one fails to compile, which is the point).
 */
export const IORING = {
  IORING_OP_NOP: 0,
  IORING_OP_POLL_ADD: 6,
  IORING_OP_SENDMSG: 9,
  IORING_OP_RECVMSG: 10,
  IORING_OP_TIMEOUT: 11,
  IORING_OP_ACCEPT: 13,
  IORING_OP_ASYNC_CANCEL: 14,
  IORING_OP_LINK_TIMEOUT: 15,
  IORING_OP_CONNECT: 16,
  IORING_OP_CLOSE: 19,
  IORING_OP_READ: 22,
  IORING_OP_WRITE: 23,
  IORING_OP_SEND: 26,
  IORING_OP_RECV: 27,
  IORING_REGISTER_PROBE: 8,
  IORING_REGISTER_PBUF_RING: 22,
  IORING_UNREGISTER_PBUF_RING: 23,
  IORING_CQE_BUFFER_SHIFT: 16,
} as const;

/**
 * io_uring values only the fault-injection seam (`sys/faults.ts`) uses. Kept apart from
 * {@link IORING} because older kernel headers do not declare them (Linux 6.10 added the NOP's
 * flags), so the header check cannot print them.
 */
export const IORING_TESTING = {
  /** `sqe->nop_flags`: the NOP completes with `sqe->len` (as a signed result). */
  IORING_NOP_INJECT_RESULT: 1 << 0,
} as const;

/**
 * io_uring values newer than the kernel headers the layout check may find (Linux 6.5), kept
 * apart from {@link IORING} for that reason; from include/uapi/linux/io_uring.h.
 */
export const IORING_NEWER = {
  /** The application provides the rings' memory (`sq_off.user_addr`, `cq_off.user_addr`). */
  IORING_SETUP_NO_MMAP: 1 << 14,
  /** Offset of `user_addr` (`__u64`, once `resv2`) in io_sqring_offsets and io_cqring_offsets. */
  OFF_USER_ADDR: 32,
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
  /** What SO_PEERCRED reports: the peer's credentials when it connected (or called socketpair). */
  ucred: struct("struct ucred", 12, {
    pid: ["pid", 0, "i32"],
    uid: ["uid", 4, "u32"],
    gid: ["gid", 8, "u32"],
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
  // io_uring(7)
  io_sqring_offsets: struct("struct io_sqring_offsets", 40, {
    head: ["head", 0, "u32"],
    tail: ["tail", 4, "u32"],
    ringMask: ["ring_mask", 8, "u32"],
    ringEntries: ["ring_entries", 12, "u32"],
    flags: ["flags", 16, "u32"],
    dropped: ["dropped", 20, "u32"],
    array: ["array", 24, "u32"],
  }),
  io_cqring_offsets: struct("struct io_cqring_offsets", 40, {
    head: ["head", 0, "u32"],
    tail: ["tail", 4, "u32"],
    ringMask: ["ring_mask", 8, "u32"],
    ringEntries: ["ring_entries", 12, "u32"],
    overflow: ["overflow", 16, "u32"],
    cqes: ["cqes", 20, "u32"],
    flags: ["flags", 24, "u32"],
  }),
  io_uring_params: struct("struct io_uring_params", 120, {
    sqEntries: ["sq_entries", 0, "u32"],
    cqEntries: ["cq_entries", 4, "u32"],
    flags: ["flags", 8, "u32"],
    features: ["features", 20, "u32"],
    sqOff: ["sq_off", 40, "bytes", 40],
    cqOff: ["cq_off", 80, "bytes", 40],
  }),
  io_uring_sqe: struct("struct io_uring_sqe", 64, {
    opcode: ["opcode", 0, "u8"],
    flags: ["flags", 1, "u8"],
    ioprio: ["ioprio", 2, "u16"],
    fd: ["fd", 4, "i32"],
    off: ["off", 8, "u64"],
    addr: ["addr", 16, "u64"],
    len: ["len", 24, "u32"],
    opFlags: ["rw_flags", 28, "u32"],
    userData: ["user_data", 32, "u64"],
    bufGroup: ["buf_group", 40, "u16"],
    personality: ["personality", 42, "u16"],
    fileIndex: ["file_index", 44, "u32"],
    addr3: ["addr3", 48, "u64"],
  }),
  io_uring_cqe: struct("struct io_uring_cqe", 16, {
    userData: ["user_data", 0, "u64"],
    res: ["res", 8, "i32"],
    flags: ["flags", 12, "u32"],
  }),
  io_uring_probe: struct("struct io_uring_probe", 16, {
    lastOp: ["last_op", 0, "u8"],
    opsLen: ["ops_len", 1, "u8"],
  }),
  io_uring_probe_op: struct("struct io_uring_probe_op", 8, {
    op: ["op", 0, "u8"],
    flags: ["flags", 2, "u16"],
  }),
  io_uring_buf: struct("struct io_uring_buf", 16, {
    addr: ["addr", 0, "u64"],
    len: ["len", 8, "u32"],
    bid: ["bid", 12, "u16"],
  }),
  io_uring_buf_ring: struct("struct io_uring_buf_ring", 16, { tail: ["tail", 14, "u16"] }),
  io_uring_buf_reg: struct("struct io_uring_buf_reg", 40, {
    ringAddr: ["ring_addr", 0, "u64"],
    ringEntries: ["ring_entries", 8, "u32"],
    bgid: ["bgid", 12, "u16"],
  }),
  __kernel_timespec: struct("struct __kernel_timespec", 16, {
    sec: ["tv_sec", 0, "i64"],
    nsec: ["tv_nsec", 8, "i64"],
  }),
  utsname: struct("struct utsname", 390, { release: ["release", 130, "bytes", 65] }),
  /** `int[2]`, as filled by pipe2/socketpair. */
  fdPair: struct("int[2]", 8, {}),
  /** `uint64_t`, the eventfd counter. */
  eventfdValue: struct("uint64_t", 8, {}),
} as const;

/** Alignment of control messages (`CMSG_ALIGN`): sizeof(size_t). */
export const CMSG_ALIGN = 8;
const CMSG = cmsgMacros(LAYOUT.cmsghdr.size, CMSG_ALIGN);
/** `CMSG_SPACE(n)`: bytes a control message with `n` data bytes takes. */
export const cmsgSpace = CMSG.space;
/** `CMSG_LEN(n)`: the `cmsg_len` of a control message with `n` data bytes. */
export const cmsgLen = CMSG.len;

/**
 * poll(2) events meaning "a read will not block". POLLRDHUP (the peer shut down its writing
 * side) is asked for too, so a wait reports a half-closed socket as such, not only as readable.
 */
export const POLL_READABLE = C.POLLIN | C.POLLPRI | C.POLLRDHUP;
/** poll(2) events meaning "a write will not block". */
export const POLL_WRITABLE = C.POLLOUT;
/** Returned poll(2) events meaning "the peer will send nothing more". */
export const POLL_READ_CLOSED = C.POLLHUP | C.POLLRDHUP;

/**
 * The most bytes one transfer may be asked for: MAX_RW_COUNT (`INT_MAX & PAGE_MASK`,
 * include/linux/fs.h) for the largest page size Linux runs with (64 KiB). read(2) and write(2)
 * shorten longer requests themselves, but io_uring takes the length as a u32: 4 GiB reads as 0
 * (a false EOF) and lengths past MAX_RW_COUNT fail with EINVAL.
 */
export const MAX_IO_BYTES = 0x7fff0000;

/** The Linux table, as `target.ts` sees it. */
export const TABLE: TargetTable = { C, ERRNO, LAYOUT, CMSG_ALIGN, POLL_READABLE, POLL_WRITABLE, POLL_READ_CLOSED, MAX_IO_BYTES };
