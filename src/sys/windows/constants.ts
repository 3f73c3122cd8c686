/**
 * Every constant, error number and struct layout evloop uses on Windows (x64), in one place.
 *
 * `TABLE` is the portable table (`table.ts`) with Winsock's values, so `sys/posix/sockaddr.ts`
 * and the socket classes encode addresses and name options the same way on every OS. `WIN` and
 * `WIN_LAYOUT` are Windows' own: IOCP, Winsock's extension functions, and the AFD driver that
 * readiness is built on. The numbers come from the Windows SDK headers (winsock2.h, ws2def.h,
 * ws2ipdef.h, mswsock.h, minwinbase.h, winternl.h) and were checked under Wine 8
 * (`../shared/notes/windows.md`); `test/sys/windows-layout.test.mjs` checks them against
 * MinGW-w64's headers at compile time, and AFD's, which no header has, against those notes.
 *
 * Windows has no POSIX fd calls (fcntl, pipe2, close on a socket): the table's F_*, O_* and
 * FD_CLOEXEC are -1, and nothing reads them there, because the C library is not loaded on
 * Windows (`libc.ts`) and the socket layer is Winsock's (`windows/socket.ts`).
 */
import { struct } from "../../ffi/layout.js";
import type { TargetTable } from "../table.js";

/** Not on Windows: a POSIX fd constant nothing reads there (see above). */
const NONE = -1;

/** Constants under their POSIX names, with Winsock's values. */
export const C = {
  AF_UNSPEC: 0,
  AF_UNIX: 1,
  AF_INET: 2,
  AF_INET6: 23,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_RAW: 3,
  SOCK_SEQPACKET: 5,
  IPPROTO_TCP: 6,
  IPPROTO_UDP: 17,
  IPPROTO_IPV6: 41,
  SOL_SOCKET: 0xffff,
  SO_REUSEADDR: 0x4,
  SO_TYPE: 0x1008,
  SO_ERROR: 0x1007,
  SO_BROADCAST: 0x20,
  SO_SNDBUF: 0x1001,
  SO_RCVBUF: 0x1002,
  SO_KEEPALIVE: 0x8,
  // Windows has no SO_REUSEPORT; its SO_REUSEADDR lets sockets share a port outright, which is
  // what the option asks for (`reusePort`), so that is what it maps to.
  SO_REUSEPORT: 0x4,
  SO_ACCEPTCONN: 0x2,
  TCP_NODELAY: 1,
  // TCP_KEEPALIVE (the idle time, Windows 10 1709+), TCP_KEEPINTVL and TCP_KEEPCNT (1703+).
  TCP_KEEPIDLE: 3,
  TCP_KEEPINTVL: 17,
  TCP_KEEPCNT: 16,
  IPV6_V6ONLY: 27,
  // SD_RECEIVE, SD_SEND, SD_BOTH.
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  SOMAXCONN: 0x7fffffff,
  MSG_PEEK: 0x2,
  MSG_TRUNC: 0x100,
  MSG_CTRUNC: 0x200,
  // Windows has no per-call non-blocking flag (overlapped I/O is how it does not block) and no
  // SIGPIPE to suppress: 0 asks for nothing, which is exactly right for both.
  MSG_DONTWAIT: 0,
  MSG_NOSIGNAL: 0,
  // Windows passes no handles over sockets: nothing sends SCM_RIGHTS there.
  SCM_RIGHTS: NONE,
  F_GETFD: NONE,
  F_SETFD: NONE,
  F_GETFL: NONE,
  F_SETFL: NONE,
  FD_CLOEXEC: NONE,
  O_NONBLOCK: NONE,
  O_CLOEXEC: NONE,
  // WSAPoll's values: POLLIN is POLLRDNORM|POLLRDBAND, POLLOUT is POLLWRNORM.
  POLLIN: 0x300,
  POLLPRI: 0x400,
  POLLOUT: 0x10,
  POLLERR: 0x1,
  POLLHUP: 0x2,
  POLLNVAL: 0x4,
} as const;

/**
 * Error numbers by their POSIX names. A name Winsock has (WSAECONNREFUSED …) takes Winsock's
 * number, which is the BSD errno plus 10000, so `SystemError.errno` is what WSAGetLastError
 * reported; the rest take the number of the C runtime's errno.h (EPIPE 32, ECANCELED 105 …), and
 * ENOTBLK, which neither defines, the BSDs' 15. No two names share a number.
 */
export const ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, ECHILD: 10, ENOMEM: 12,
  ENOTBLK: 15, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19, ENOTDIR: 20, EISDIR: 21, ENFILE: 23,
  ENOTTY: 25, EFBIG: 27, ENOSPC: 28, ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33,
  ERANGE: 34, EDEADLK: 36, ENOLCK: 39, ENOSYS: 40, EILSEQ: 42, EBADMSG: 104, ECANCELED: 105,
  EIDRM: 111, ENODATA: 120, ENOMSG: 122, ENOTSUP: 129, EOVERFLOW: 132, EPROTO: 134, ETXTBSY: 139,
  EINTR: 10004, EBADF: 10009, EACCES: 10013, EFAULT: 10014, EINVAL: 10022, EMFILE: 10024,
  EAGAIN: 10035, EINPROGRESS: 10036, EALREADY: 10037, ENOTSOCK: 10038, EDESTADDRREQ: 10039,
  EMSGSIZE: 10040, EPROTOTYPE: 10041, ENOPROTOOPT: 10042, EPROTONOSUPPORT: 10043,
  ESOCKTNOSUPPORT: 10044, EOPNOTSUPP: 10045, EPFNOSUPPORT: 10046, EAFNOSUPPORT: 10047,
  EADDRINUSE: 10048, EADDRNOTAVAIL: 10049, ENETDOWN: 10050, ENETUNREACH: 10051, ENETRESET: 10052,
  ECONNABORTED: 10053, ECONNRESET: 10054, ENOBUFS: 10055, EISCONN: 10056, ENOTCONN: 10057,
  ESHUTDOWN: 10058, ETOOMANYREFS: 10059, ETIMEDOUT: 10060, ECONNREFUSED: 10061, ELOOP: 10062,
  ENAMETOOLONG: 10063, EHOSTDOWN: 10064, EHOSTUNREACH: 10065, ENOTEMPTY: 10066, EDQUOT: 10069,
  ESTALE: 10070,
} as const;

/** The portable layouts, Windows' shapes under the POSIX names (WSABUF for iovec, WSAMSG for msghdr). */
export const LAYOUT = {
  // SOCKADDR_STORAGE: 128 bytes, a 16-bit family first (no length byte, as on Linux).
  sockaddr_storage: struct("SOCKADDR_STORAGE", 128, { family: ["ss_family", 0, "u16"] }),
  sockaddr_in: struct("SOCKADDR_IN", 16, {
    family: ["sin_family", 0, "u16"],
    port: ["sin_port", 2, "u16be"],
    addr: ["sin_addr", 4, "bytes", 4],
  }),
  sockaddr_in6: struct("SOCKADDR_IN6", 28, {
    family: ["sin6_family", 0, "u16"],
    port: ["sin6_port", 2, "u16be"],
    flowinfo: ["sin6_flowinfo", 4, "u32"],
    addr: ["sin6_addr", 8, "bytes", 16],
    scopeId: ["sin6_scope_id", 24, "u32"],
  }),
  // afunix.h: AF_UNIX exists since Windows 10 1803.
  sockaddr_un: struct("SOCKADDR_UN", 110, { family: ["sun_family", 0, "u16"], path: ["sun_path", 2, "bytes", 108] }),
  // WSAPOLLFD: the fd is a SOCKET (64 bits).
  pollfd: struct("WSAPOLLFD", 16, { fd: ["fd", 0, "u64"], events: ["events", 8, "i16"], revents: ["revents", 10, "i16"] }),
  // WSABUF: the length comes first.
  iovec: struct("WSABUF", 16, { len: ["len", 0, "u32"], base: ["buf", 8, "ptr"] }),
  // WSAMSG: Control is a WSABUF at 32 (its len at 32, its buf at 40).
  msghdr: struct("WSAMSG", 56, {
    name: ["name", 0, "ptr"],
    namelen: ["namelen", 8, "i32"],
    iov: ["lpBuffers", 16, "ptr"],
    iovlen: ["dwBufferCount", 24, "u32"],
    controllen: ["Control.len", 32, "u32"],
    control: ["Control.buf", 40, "ptr"],
    flags: ["dwFlags", 48, "u32"],
  }),
  cmsghdr: struct("WSACMSGHDR", 16, { len: ["cmsg_len", 0, "u64"], level: ["cmsg_level", 8, "i32"], type: ["cmsg_type", 12, "i32"] }),
  fdPair: struct("int[2]", 8, {}),
};

/** Windows' own constants: IOCP, Winsock's extensions, NTSTATUS and Win32 error codes, AFD. */
export const WIN = {
  INVALID_HANDLE_VALUE: -1n,
  INFINITE: 0xffffffff,
  HEAP_ZERO_MEMORY: 0x8,
  HANDLE_FLAG_INHERIT: 0x1,
  FILE_SKIP_COMPLETION_PORT_ON_SUCCESS: 0x1,
  FILE_SKIP_SET_EVENT_ON_HANDLE: 0x2,
  WSA_FLAG_OVERLAPPED: 0x1,
  WSA_FLAG_NO_HANDLE_INHERIT: 0x80,
  WINSOCK_VERSION_2_2: 0x0202,
  FIONBIO: 0x8004667e,
  SIO_GET_EXTENSION_FUNCTION_POINTER: 0xc8000006,
  SIO_BASE_HANDLE: 0x48000022,
  SO_UPDATE_ACCEPT_CONTEXT: 0x700b,
  SO_UPDATE_CONNECT_CONTEXT: 0x7010,
  /** getsockopt: the socket's WSAPROTOCOL_INFOW (family, type, protocol), bound or not. */
  SO_PROTOCOL_INFOW: 0x2005,
  /** WSAIoctl: keep-alive on/off, idle time and interval in ms (struct tcp_keepalive). */
  SIO_KEEPALIVE_VALS: 0x98000004,
  /** WSAIoctl: whether an ICMP port unreachable fails a UDP socket's later receives. */
  SIO_UDP_CONNRESET: 0x9800000c,
  /** GUIDs of the extension functions, as {Data1, Data2, Data3, Data4[8]}. */
  WSAID_ACCEPTEX: "b5367df1-cbac-11cf-95ca-00805f48a192",
  WSAID_CONNECTEX: "25a207b9-ddf3-4660-8ee9-76e58c74063e",
  WSAID_GETACCEPTEXSOCKADDRS: "b5367df2-cbac-11cf-95ca-00805f48a192",
  // GetFileType.
  FILE_TYPE_DISK: 1,
  FILE_TYPE_CHAR: 2,
  FILE_TYPE_PIPE: 3,
  // Win32 errors.
  ERROR_INVALID_HANDLE: 6,
  ERROR_NOT_ENOUGH_MEMORY: 8,
  ERROR_HANDLE_EOF: 38,
  ERROR_NOT_SUPPORTED: 50,
  ERROR_NETNAME_DELETED: 64,
  ERROR_INVALID_PARAMETER: 87,
  ERROR_BROKEN_PIPE: 109,
  ERROR_SEM_TIMEOUT: 121,
  ERROR_MORE_DATA: 234,
  WAIT_TIMEOUT: 258,
  ERROR_HANDLES_CLOSED: 676,
  ERROR_OPERATION_ABORTED: 995,
  ERROR_IO_INCOMPLETE: 996,
  ERROR_IO_PENDING: 997,
  ERROR_NOT_FOUND: 1168,
  ERROR_CONNECTION_REFUSED: 1225,
  ERROR_GRACEFUL_DISCONNECT: 1226,
  ERROR_ADDRESS_ALREADY_ASSOCIATED: 1227,
  ERROR_NETWORK_UNREACHABLE: 1231,
  ERROR_HOST_UNREACHABLE: 1232,
  ERROR_PROTOCOL_UNREACHABLE: 1233,
  ERROR_PORT_UNREACHABLE: 1234,
  ERROR_REQUEST_ABORTED: 1235,
  ERROR_CONNECTION_ABORTED: 1236,
  ERROR_CONNECTION_INVALID: 1229,
  // NTSTATUS.
  STATUS_SUCCESS: 0,
  STATUS_PENDING: 0x103,
  STATUS_CANCELLED: 0xc0000120,
  /** A datagram larger than the buffer: the buffer is full, the rest dropped. */
  STATUS_BUFFER_OVERFLOW: 0x80000005,
  // NtCreateFile for \Device\Afd.
  SYNCHRONIZE: 0x00100000,
  FILE_SHARE_READ: 0x1,
  FILE_SHARE_WRITE: 0x2,
  FILE_OPEN: 0x1,
  IOCTL_AFD_POLL: 0x00012024,
  AFD_POLL_RECEIVE: 0x1,
  AFD_POLL_RECEIVE_EXPEDITED: 0x2,
  AFD_POLL_SEND: 0x4,
  AFD_POLL_DISCONNECT: 0x8,
  AFD_POLL_ABORT: 0x10,
  AFD_POLL_LOCAL_CLOSE: 0x20,
  AFD_POLL_ACCEPT: 0x80,
  AFD_POLL_CONNECT_FAIL: 0x100,
  // Named pipes (CreateNamedPipeW, CreateFileW, SetNamedPipeHandleState, GetNamedPipeInfo).
  PIPE_ACCESS_DUPLEX: 0x3,
  FILE_FLAG_OVERLAPPED: 0x40000000,
  /** CreateNamedPipeW fails (ERROR_ACCESS_DENIED) when the name exists already. */
  FILE_FLAG_FIRST_PIPE_INSTANCE: 0x00080000,
  PIPE_TYPE_BYTE: 0x0,
  PIPE_TYPE_MESSAGE: 0x4,
  PIPE_READMODE_BYTE: 0x0,
  PIPE_READMODE_MESSAGE: 0x2,
  PIPE_REJECT_REMOTE_CLIENTS: 0x8,
  /** GetNamedPipeInfo's flag: this handle is the server end. */
  PIPE_SERVER_END: 0x1,
  PIPE_UNLIMITED_INSTANCES: 255,
  GENERIC_READ: 0x80000000,
  GENERIC_WRITE: 0x40000000,
  OPEN_EXISTING: 3,
  /** CreateFileW on a pipe: the server may identify the client but not act as it. */
  SECURITY_SQOS_PRESENT: 0x00100000,
  SECURITY_IDENTIFICATION: 0x00010000,
  ERROR_FILE_NOT_FOUND: 2,
  ERROR_ACCESS_DENIED: 5,
  ERROR_INVALID_NAME: 123,
  ERROR_BAD_PIPE: 230,
  ERROR_PIPE_BUSY: 231,
  ERROR_NO_DATA: 232,
  ERROR_PIPE_NOT_CONNECTED: 233,
  ERROR_PIPE_CONNECTED: 535,
  ERROR_PIPE_LISTENING: 536,
} as const;

/** Windows' own layouts (x64). */
export const WIN_LAYOUT = {
  OVERLAPPED: struct("OVERLAPPED", 32, {
    internal: ["Internal", 0, "u64"],
    internalHigh: ["InternalHigh", 8, "u64"],
    offset: ["Offset", 16, "u32"],
    offsetHigh: ["OffsetHigh", 20, "u32"],
    event: ["hEvent", 24, "ptr"],
  }),
  OVERLAPPED_ENTRY: struct("OVERLAPPED_ENTRY", 32, {
    key: ["lpCompletionKey", 0, "u64"],
    overlapped: ["lpOverlapped", 8, "ptr"],
    internal: ["Internal", 16, "u64"],
    bytes: ["dwNumberOfBytesTransferred", 24, "u32"],
  }),
  WSABUF: struct("WSABUF", 16, { len: ["len", 0, "u32"], buf: ["buf", 8, "ptr"] }),
  WSADATA: struct("WSADATA", 408, { version: ["wVersion", 0, "u16"] }),
  /** What SO_PROTOCOL_INFOW returns; only the fields evloop reads. */
  WSAPROTOCOL_INFOW: struct("WSAPROTOCOL_INFOW", 628, {
    family: ["iAddressFamily", 76, "i32"],
    type: ["iSocketType", 88, "i32"],
    protocol: ["iProtocol", 92, "i32"],
  }),
  /** struct tcp_keepalive (mstcpip.h), SIO_KEEPALIVE_VALS's input. */
  tcp_keepalive: struct("struct tcp_keepalive", 12, {
    on: ["onoff", 0, "u32"],
    time: ["keepalivetime", 4, "u32"],
    interval: ["keepaliveinterval", 8, "u32"],
  }),
  IO_STATUS_BLOCK: struct("IO_STATUS_BLOCK", 16, { status: ["Status", 0, "u32"], information: ["Information", 8, "u64"] }),
  UNICODE_STRING: struct("UNICODE_STRING", 16, {
    length: ["Length", 0, "u16"],
    maximumLength: ["MaximumLength", 2, "u16"],
    buffer: ["Buffer", 8, "ptr"],
  }),
  OBJECT_ATTRIBUTES: struct("OBJECT_ATTRIBUTES", 48, {
    length: ["Length", 0, "u32"],
    rootDirectory: ["RootDirectory", 8, "ptr"],
    objectName: ["ObjectName", 16, "ptr"],
    attributes: ["Attributes", 24, "u32"],
  }),
  /** AFD_POLL_INFO with one AFD_POLL_HANDLE_INFO (16 + 16 bytes). */
  AFD_POLL_INFO: struct("AFD_POLL_INFO", 32, {
    timeout: ["Timeout", 0, "i64"],
    count: ["NumberOfHandles", 8, "u32"],
    exclusive: ["Exclusive", 12, "u32"],
    handle: ["Handles[0].Handle", 16, "u64"],
    events: ["Handles[0].Events", 24, "u32"],
    status: ["Handles[0].Status", 28, "u32"],
  }),
};

const CMSG_ALIGN = 8;

export const TABLE: TargetTable = {
  C,
  ERRNO,
  LAYOUT,
  CMSG_ALIGN,
  // Not POLLPRI: WSAPoll fails the whole call (WSAEINVAL) for events it does not take.
  POLL_READABLE: C.POLLIN,
  POLL_WRITABLE: C.POLLOUT,
  POLL_READ_CLOSED: C.POLLHUP,
  // WSABUF lengths are 32-bit; INT_MAX keeps every count a non-negative int, as on the BSDs.
  MAX_IO_BYTES: 0x7fffffff,
};
