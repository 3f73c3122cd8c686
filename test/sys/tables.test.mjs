/**
 * The macOS and BSD tables, checked against values transcribed a second time from the systems'
 * headers (cited above each group), since no compiler for those systems is at hand. The Linux
 * table is checked against the C compiler instead, in layout.test.mjs; here every table is also
 * checked for the shape the portable code relies on: every portable name, the common errno
 * names, one name per errno number, layouts whose fields fit, and the CMSG_* macros.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { cmsgMacros } from "../../dist/sys/table.js";
import * as linux from "../../dist/sys/linux/constants.js";
import * as darwin from "../../dist/sys/bsd/darwin.js";
import * as freebsd from "../../dist/sys/bsd/freebsd.js";
import * as openbsd from "../../dist/sys/bsd/openbsd.js";
import * as netbsd from "../../dist/sys/bsd/netbsd.js";

const TABLES = { linux: linux.TABLE, darwin: darwin.TABLE, freebsd: freebsd.TABLE, openbsd: openbsd.TABLE, netbsd: netbsd.TABLE };
const BSDS = ["darwin", "freebsd", "openbsd", "netbsd"];

/** The names of `PosixConstants` (src/sys/table.ts) every table defines. */
const REQUIRED = [
  "AF_UNSPEC", "AF_UNIX", "AF_INET", "AF_INET6", "SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_SEQPACKET",
  "IPPROTO_TCP", "IPPROTO_UDP", "IPPROTO_IPV6", "SOL_SOCKET", "SO_REUSEADDR", "SO_TYPE", "SO_ERROR", "SO_BROADCAST",
  "SO_SNDBUF", "SO_RCVBUF", "SO_KEEPALIVE", "SO_REUSEPORT", "SO_ACCEPTCONN", "TCP_NODELAY", "IPV6_V6ONLY",
  "SHUT_RD", "SHUT_WR", "SHUT_RDWR", "SOMAXCONN", "MSG_PEEK", "MSG_CTRUNC", "MSG_TRUNC", "MSG_DONTWAIT",
  "MSG_NOSIGNAL", "SCM_RIGHTS", "F_GETFD", "F_SETFD", "F_GETFL", "F_SETFL", "FD_CLOEXEC", "O_NONBLOCK", "O_CLOEXEC",
  "POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL",
];

/** The optional names, and the tables that lack each (the portable code checks for them). */
const OPTIONAL = {
  SOCK_NONBLOCK: ["darwin"],
  SOCK_CLOEXEC: ["darwin"],
  SO_DOMAIN: ["darwin", "netbsd"],
  SO_PEERCRED: ["darwin", "freebsd", "openbsd", "netbsd"],
  TCP_KEEPIDLE: ["openbsd"],
  TCP_KEEPINTVL: ["openbsd"],
  TCP_KEEPCNT: ["openbsd"],
  MSG_CMSG_CLOEXEC: ["darwin"],
};

/** `ErrnoName` (src/sys/table.ts). */
const COMMON_ERRNO = [
  "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF", "ECHILD", "EDEADLK", "ENOMEM",
  "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV", "ENOTDIR", "EISDIR", "EINVAL", "ENFILE",
  "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC", "ESPIPE", "EROFS", "EMLINK", "EPIPE", "EDOM", "ERANGE", "EAGAIN",
  "EINPROGRESS", "EALREADY", "ENOTSOCK", "EDESTADDRREQ", "EMSGSIZE", "EPROTOTYPE", "ENOPROTOOPT", "EPROTONOSUPPORT",
  "ESOCKTNOSUPPORT", "EOPNOTSUPP", "EPFNOSUPPORT", "EAFNOSUPPORT", "EADDRINUSE", "EADDRNOTAVAIL", "ENETDOWN",
  "ENETUNREACH", "ENETRESET", "ECONNABORTED", "ECONNRESET", "ENOBUFS", "EISCONN", "ENOTCONN", "ESHUTDOWN",
  "ETOOMANYREFS", "ETIMEDOUT", "ECONNREFUSED", "ELOOP", "ENAMETOOLONG", "EHOSTDOWN", "EHOSTUNREACH", "ENOTEMPTY",
  "EDQUOT", "ESTALE", "ENOLCK", "ENOSYS", "EIDRM", "ENOMSG", "EOVERFLOW", "ECANCELED", "EILSEQ",
];

/** errno 1 to 66 are the 4.4BSD numbers, the same on macOS and every BSD (sys/errno.h). */
const BSD_ERRNO_1_TO_66 = [
  "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF", "ECHILD", "EDEADLK", "ENOMEM",
  "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV", "ENOTDIR", "EISDIR", "EINVAL", "ENFILE",
  "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC", "ESPIPE", "EROFS", "EMLINK", "EPIPE", "EDOM", "ERANGE",
  "EAGAIN", "EINPROGRESS", "EALREADY", "ENOTSOCK", "EDESTADDRREQ", "EMSGSIZE", "EPROTOTYPE", "ENOPROTOOPT",
  "EPROTONOSUPPORT", "ESOCKTNOSUPPORT", null /* 45: ENOTSUP on macOS, EOPNOTSUPP on the BSDs */, "EPFNOSUPPORT",
  "EAFNOSUPPORT", "EADDRINUSE", "EADDRNOTAVAIL", "ENETDOWN", "ENETUNREACH", "ENETRESET", "ECONNABORTED", "ECONNRESET",
  "ENOBUFS", "EISCONN", "ENOTCONN", "ESHUTDOWN", "ETOOMANYREFS", "ETIMEDOUT", "ECONNREFUSED", "ELOOP", "ENAMETOOLONG",
  "EHOSTDOWN", "EHOSTUNREACH", "ENOTEMPTY",
];

/** Every errno name of each system's sys/errno.h from 67 on, in numeric order (aliases left out). */
const ERRNO_FROM_67 = {
  // xnu bsd/sys/errno.h (xnu-11417)
  darwin: [
    "EPROCLIM", "EUSERS", "EDQUOT", "ESTALE", "EREMOTE", "EBADRPC", "ERPCMISMATCH", "EPROGUNAVAIL", "EPROGMISMATCH",
    "EPROCUNAVAIL", "ENOLCK", "ENOSYS", "EFTYPE", "EAUTH", "ENEEDAUTH", "EPWROFF", "EDEVERR", "EOVERFLOW", "EBADEXEC",
    "EBADARCH", "ESHLIBVERS", "EBADMACHO", "ECANCELED", "EIDRM", "ENOMSG", "EILSEQ", "ENOATTR", "EBADMSG",
    "EMULTIHOP", "ENODATA", "ENOLINK", "ENOSR", "ENOSTR", "EPROTO", "ETIME", "EOPNOTSUPP", "ENOPOLICY",
    "ENOTRECOVERABLE", "EOWNERDEAD", "EQFULL",
  ],
  // freebsd-src sys/sys/errno.h (ELAST 97)
  freebsd: [
    "EPROCLIM", "EUSERS", "EDQUOT", "ESTALE", "EREMOTE", "EBADRPC", "ERPCMISMATCH", "EPROGUNAVAIL", "EPROGMISMATCH",
    "EPROCUNAVAIL", "ENOLCK", "ENOSYS", "EFTYPE", "EAUTH", "ENEEDAUTH", "EIDRM", "ENOMSG", "EOVERFLOW", "ECANCELED",
    "EILSEQ", "ENOATTR", "EDOOFUS", "EBADMSG", "EMULTIHOP", "ENOLINK", "EPROTO", "ENOTCAPABLE", "ECAPMODE",
    "ENOTRECOVERABLE", "EOWNERDEAD", "EINTEGRITY",
  ],
  // openbsd/src sys/sys/errno.h (revision 1.25, ELAST 95)
  openbsd: [
    "EPROCLIM", "EUSERS", "EDQUOT", "ESTALE", "EREMOTE", "EBADRPC", "ERPCMISMATCH", "EPROGUNAVAIL", "EPROGMISMATCH",
    "EPROCUNAVAIL", "ENOLCK", "ENOSYS", "EFTYPE", "EAUTH", "ENEEDAUTH", "EIPSEC", "ENOATTR", "EILSEQ", "ENOMEDIUM",
    "EMEDIUMTYPE", "EOVERFLOW", "ECANCELED", "EIDRM", "ENOMSG", "ENOTSUP", "EBADMSG", "ENOTRECOVERABLE", "EOWNERDEAD",
    "EPROTO",
  ],
  // NetBSD/src sys/sys/errno.h (ELAST 96)
  netbsd: [
    "EPROCLIM", "EUSERS", "EDQUOT", "ESTALE", "EREMOTE", "EBADRPC", "ERPCMISMATCH", "EPROGUNAVAIL", "EPROGMISMATCH",
    "EPROCUNAVAIL", "ENOLCK", "ENOSYS", "EFTYPE", "EAUTH", "ENEEDAUTH", "EIDRM", "ENOMSG", "EOVERFLOW", "EILSEQ",
    "ENOTSUP", "ECANCELED", "EBADMSG", "ENODATA", "ENOSR", "ENOSTR", "ETIME", "ENOATTR", "EMULTIHOP", "ENOLINK", "EPROTO",
  ],
};

/** Constants as the headers define them, per system and header. */
const CONSTANTS = {
  darwin: {
    // xnu bsd/sys/socket.h
    "bsd/sys/socket.h": {
      AF_UNSPEC: 0, AF_UNIX: 1, AF_INET: 2, AF_INET6: 30, SOCK_STREAM: 1, SOCK_DGRAM: 2, SOCK_RAW: 3,
      SOCK_SEQPACKET: 5, SOL_SOCKET: 0xffff, SO_ACCEPTCONN: 0x2, SO_REUSEADDR: 0x4, SO_KEEPALIVE: 0x8,
      SO_BROADCAST: 0x20, SO_REUSEPORT: 0x200, SO_SNDBUF: 0x1001, SO_RCVBUF: 0x1002, SO_ERROR: 0x1007,
      SO_TYPE: 0x1008, SOMAXCONN: 128, SHUT_RD: 0, SHUT_WR: 1, SHUT_RDWR: 2, MSG_PEEK: 0x2, MSG_TRUNC: 0x10,
      MSG_CTRUNC: 0x20, MSG_DONTWAIT: 0x80, MSG_NOSIGNAL: 0x80000, SCM_RIGHTS: 1,
    },
    // xnu bsd/netinet/in.h, bsd/netinet6/in6.h
    "bsd/netinet/in.h": { IPPROTO_TCP: 6, IPPROTO_UDP: 17, IPPROTO_IPV6: 41, IPV6_V6ONLY: 27 },
    // xnu bsd/netinet/tcp.h (TCP_KEEPIDLE is TCP_KEEPALIVE there)
    "bsd/netinet/tcp.h": { TCP_NODELAY: 0x1, TCP_KEEPIDLE: 0x10, TCP_KEEPINTVL: 0x101, TCP_KEEPCNT: 0x102 },
    // xnu bsd/sys/fcntl.h
    "bsd/sys/fcntl.h": { F_GETFD: 1, F_SETFD: 2, F_GETFL: 3, F_SETFL: 4, FD_CLOEXEC: 1, O_NONBLOCK: 0x4, O_CLOEXEC: 0x1000000 },
    // xnu bsd/sys/poll.h
    "bsd/sys/poll.h": { POLLIN: 0x1, POLLPRI: 0x2, POLLOUT: 0x4, POLLERR: 0x8, POLLHUP: 0x10, POLLNVAL: 0x20 },
  },
  freebsd: {
    // freebsd-src sys/sys/socket.h
    "sys/sys/socket.h": {
      AF_UNSPEC: 0, AF_UNIX: 1, AF_INET: 2, AF_INET6: 28, SOCK_STREAM: 1, SOCK_DGRAM: 2, SOCK_RAW: 3,
      SOCK_SEQPACKET: 5, SOCK_CLOEXEC: 0x10000000, SOCK_NONBLOCK: 0x20000000, SOL_SOCKET: 0xffff,
      SO_ACCEPTCONN: 0x2, SO_REUSEADDR: 0x4, SO_KEEPALIVE: 0x8, SO_BROADCAST: 0x20, SO_REUSEPORT: 0x200,
      SO_SNDBUF: 0x1001, SO_RCVBUF: 0x1002, SO_ERROR: 0x1007, SO_TYPE: 0x1008, SO_DOMAIN: 0x1019, SOMAXCONN: 128,
      SHUT_RD: 0, SHUT_WR: 1, SHUT_RDWR: 2, MSG_PEEK: 0x2, MSG_TRUNC: 0x10, MSG_CTRUNC: 0x20, MSG_DONTWAIT: 0x80,
      MSG_NOSIGNAL: 0x20000, MSG_CMSG_CLOEXEC: 0x40000, SCM_RIGHTS: 1,
    },
    // freebsd-src sys/netinet/in.h, sys/netinet6/in6.h
    "sys/netinet/in.h": { IPPROTO_TCP: 6, IPPROTO_UDP: 17, IPPROTO_IPV6: 41, IPV6_V6ONLY: 27 },
    // freebsd-src sys/netinet/tcp.h
    "sys/netinet/tcp.h": { TCP_NODELAY: 1, TCP_KEEPIDLE: 256, TCP_KEEPINTVL: 512, TCP_KEEPCNT: 1024 },
    // freebsd-src sys/sys/fcntl.h
    "sys/sys/fcntl.h": { F_GETFD: 1, F_SETFD: 2, F_GETFL: 3, F_SETFL: 4, FD_CLOEXEC: 1, O_NONBLOCK: 0x4, O_CLOEXEC: 0x100000 },
    // freebsd-src sys/sys/poll.h
    "sys/sys/poll.h": { POLLIN: 0x1, POLLPRI: 0x2, POLLOUT: 0x4, POLLERR: 0x8, POLLHUP: 0x10, POLLNVAL: 0x20 },
  },
  openbsd: {
    // openbsd/src sys/sys/socket.h
    "sys/sys/socket.h": {
      AF_UNSPEC: 0, AF_UNIX: 1, AF_INET: 2, AF_INET6: 24, SOCK_STREAM: 1, SOCK_DGRAM: 2, SOCK_RAW: 3,
      SOCK_SEQPACKET: 5, SOCK_CLOEXEC: 0x8000, SOCK_NONBLOCK: 0x4000, SOL_SOCKET: 0xffff, SO_ACCEPTCONN: 0x2,
      SO_REUSEADDR: 0x4, SO_KEEPALIVE: 0x8, SO_BROADCAST: 0x20, SO_REUSEPORT: 0x200, SO_SNDBUF: 0x1001,
      SO_RCVBUF: 0x1002, SO_ERROR: 0x1007, SO_TYPE: 0x1008, SO_DOMAIN: 0x1024, SOMAXCONN: 128, SHUT_RD: 0,
      SHUT_WR: 1, SHUT_RDWR: 2, MSG_PEEK: 0x2, MSG_TRUNC: 0x10, MSG_CTRUNC: 0x20, MSG_DONTWAIT: 0x80,
      MSG_NOSIGNAL: 0x400, MSG_CMSG_CLOEXEC: 0x800, SCM_RIGHTS: 1,
    },
    // openbsd/src sys/netinet/in.h, sys/netinet6/in6.h
    "sys/netinet/in.h": { IPPROTO_TCP: 6, IPPROTO_UDP: 17, IPPROTO_IPV6: 41, IPV6_V6ONLY: 27 },
    // openbsd/src sys/netinet/tcp.h: no keep-alive options
    "sys/netinet/tcp.h": { TCP_NODELAY: 0x1 },
    // openbsd/src sys/sys/fcntl.h
    "sys/sys/fcntl.h": { F_GETFD: 1, F_SETFD: 2, F_GETFL: 3, F_SETFL: 4, FD_CLOEXEC: 1, O_NONBLOCK: 0x4, O_CLOEXEC: 0x10000 },
    // openbsd/src sys/sys/poll.h
    "sys/sys/poll.h": { POLLIN: 0x1, POLLPRI: 0x2, POLLOUT: 0x4, POLLERR: 0x8, POLLHUP: 0x10, POLLNVAL: 0x20 },
  },
  netbsd: {
    // NetBSD/src sys/sys/socket.h
    "sys/sys/socket.h": {
      AF_UNSPEC: 0, AF_UNIX: 1, AF_INET: 2, AF_INET6: 24, SOCK_STREAM: 1, SOCK_DGRAM: 2, SOCK_RAW: 3,
      SOCK_SEQPACKET: 5, SOCK_CLOEXEC: 0x10000000, SOCK_NONBLOCK: 0x20000000, SOL_SOCKET: 0xffff,
      SO_ACCEPTCONN: 0x2, SO_REUSEADDR: 0x4, SO_KEEPALIVE: 0x8, SO_BROADCAST: 0x20, SO_REUSEPORT: 0x200,
      SO_SNDBUF: 0x1001, SO_RCVBUF: 0x1002, SO_ERROR: 0x1007, SO_TYPE: 0x1008, SOMAXCONN: 128, SHUT_RD: 0,
      SHUT_WR: 1, SHUT_RDWR: 2, MSG_PEEK: 0x2, MSG_TRUNC: 0x10, MSG_CTRUNC: 0x20, MSG_DONTWAIT: 0x80,
      MSG_NOSIGNAL: 0x400, MSG_CMSG_CLOEXEC: 0x800, SCM_RIGHTS: 1,
    },
    // NetBSD/src sys/netinet/in.h, sys/netinet6/in6.h
    "sys/netinet/in.h": { IPPROTO_TCP: 6, IPPROTO_UDP: 17, IPPROTO_IPV6: 41, IPV6_V6ONLY: 27 },
    // NetBSD/src sys/netinet/tcp.h
    "sys/netinet/tcp.h": { TCP_NODELAY: 1, TCP_KEEPIDLE: 3, TCP_KEEPINTVL: 5, TCP_KEEPCNT: 6 },
    // NetBSD/src sys/sys/fcntl.h
    "sys/sys/fcntl.h": { F_GETFD: 1, F_SETFD: 2, F_GETFL: 3, F_SETFL: 4, FD_CLOEXEC: 1, O_NONBLOCK: 0x4, O_CLOEXEC: 0x400000 },
    // NetBSD/src sys/sys/poll.h
    "sys/sys/poll.h": { POLLIN: 0x1, POLLPRI: 0x2, POLLOUT: 0x4, POLLERR: 0x8, POLLHUP: 0x10, POLLNVAL: 0x20 },
  },
};

/** Struct layouts as `[size, { field: [offset, byteWidth] }]`, from the headers cited per OS. */
const BSD_SOCKADDRS = {
  // sys/socket.h, netinet/in.h, netinet6/in6.h, sys/un.h on every BSD and macOS: a length byte,
  // a one-byte family, then the address; sun_path is 104 bytes.
  sockaddr_in: [16, { len: [0, 1], family: [1, 1], port: [2, 2], addr: [4, 4] }],
  sockaddr_in6: [28, { len: [0, 1], family: [1, 1], port: [2, 2], flowinfo: [4, 4], addr: [8, 16], scopeId: [24, 4] }],
  sockaddr_un: [106, { len: [0, 1], family: [1, 1], path: [2, 104] }],
  // sys/poll.h, sys/uio.h (LP64)
  pollfd: [8, { fd: [0, 4], events: [4, 2], revents: [6, 2] }],
  iovec: [16, { base: [0, 8], len: [8, 8] }],
  // sys/socket.h: msg_iovlen is an int and msg_controllen a socklen_t (Linux: both size_t)
  msghdr: [48, { name: [0, 8], namelen: [8, 4], iov: [16, 8], iovlen: [24, 4], control: [32, 8], controllen: [40, 4], flags: [44, 4] }],
  cmsghdr: [12, { len: [0, 4], level: [4, 4], type: [8, 4] }],
};
/** sockaddr_storage: 128 bytes, but 256 on OpenBSD (its sys/socket.h pads it to 256). */
const STORAGE_SIZE = { darwin: 128, freebsd: 128, openbsd: 256, netbsd: 128 };
/** CMSG_ALIGN: __DARWIN_ALIGN32 on macOS; _ALIGNBYTES + 1 = sizeof(long) on the BSDs (amd64, arm64). */
const CMSG_ALIGN = { darwin: 4, freebsd: 8, openbsd: 8, netbsd: 8 };

const WIDTH = { u8: 1, u16: 2, u16be: 2, i16: 2, u32: 4, i32: 4, u64: 8, i64: 8, ptr: 8 };
const width = (field) => (field.kind === "bytes" ? field.length : WIDTH[field.kind]);

describe("every target table", () => {
  for (const [os, table] of Object.entries(TABLES)) {
    test(`${os}: has every portable constant, and lacks only the optional ones it should`, () => {
      for (const name of REQUIRED) assert.equal(typeof table.C[name], "number", `${os} C.${name}`);
      for (const [name, lacking] of Object.entries(OPTIONAL)) {
        assert.equal(typeof table.C[name], lacking.includes(os) ? "undefined" : "number", `${os} C.${name}`);
      }
    });

    test(`${os}: defines the common errno names, each number once`, () => {
      for (const name of COMMON_ERRNO) assert.equal(typeof table.ERRNO[name], "number", `${os} ERRNO.${name}`);
      const byNumber = new Map();
      for (const [name, value] of Object.entries(table.ERRNO)) {
        assert.equal(byNumber.get(value), undefined, `${os}: ${name} and ${byNumber.get(value)} are both ${value}`);
        byNumber.set(value, name);
      }
    });

    test(`${os}: every layout field lies within its struct`, () => {
      for (const [key, layout] of Object.entries(table.LAYOUT)) {
        for (const [fieldKey, field] of Object.entries(layout.fields)) {
          assert.ok(field.offset + width(field) <= layout.size, `${os} ${key}.${fieldKey}`);
        }
      }
    });

    test(`${os}: POLL_READABLE, POLL_WRITABLE, POLL_READ_CLOSED`, () => {
      const { C } = table;
      const rdhup = os === "linux" ? C.POLLRDHUP : 0;
      assert.equal(table.POLL_READABLE, C.POLLIN | C.POLLPRI | rdhup);
      assert.equal(table.POLL_WRITABLE, C.POLLOUT);
      assert.equal(table.POLL_READ_CLOSED, C.POLLHUP | rdhup);
    });
  }
});

describe("the macOS and BSD tables match their headers", () => {
  for (const os of BSDS) {
    const table = TABLES[os];

    test(`${os}: constants`, () => {
      const expected = Object.assign({}, ...Object.values(CONSTANTS[os]));
      assert.deepEqual({ ...table.C }, expected);
    });

    test(`${os}: errno numbers`, () => {
      const expected = {};
      BSD_ERRNO_1_TO_66.forEach((name, i) => {
        if (name !== null) expected[name] = i + 1;
      });
      expected[os === "darwin" ? "ENOTSUP" : "EOPNOTSUPP"] = 45;
      ERRNO_FROM_67[os].forEach((name, i) => {
        expected[name] = 67 + i;
      });
      assert.deepEqual({ ...table.ERRNO }, expected);
      assert.equal(table.ERRNO.EAGAIN, 35);
    });

    test(`${os}: struct layouts`, () => {
      const { LAYOUT } = table;
      for (const [key, [size, fields]] of Object.entries(BSD_SOCKADDRS)) {
        assert.equal(LAYOUT[key].size, size, `${os} ${key} size`);
        const got = Object.fromEntries(Object.entries(LAYOUT[key].fields).map(([k, f]) => [k, [f.offset, width(f)]]));
        assert.deepEqual(got, fields, `${os} ${key}`);
      }
      assert.equal(LAYOUT.sockaddr_storage.size, STORAGE_SIZE[os]);
      assert.deepEqual([LAYOUT.sockaddr_storage.fields.len.offset, LAYOUT.sockaddr_storage.fields.family.offset], [0, 1]);
      assert.equal(LAYOUT.sockaddr_in.fields.port.kind, "u16be", "ports are in network byte order");
      assert.equal(table.CMSG_ALIGN, CMSG_ALIGN[os]);
    });
  }
});

describe("cmsgMacros()", () => {
  test("Linux: a 16-byte header, 8-byte alignment", () => {
    const m = cmsgMacros(linux.LAYOUT.cmsghdr.size, linux.CMSG_ALIGN);
    assert.deepEqual([m.dataOffset, m.len(4), m.space(4), m.len(8), m.space(8), m.space(12)], [16, 20, 24, 24, 24, 32]);
  });

  test("macOS: a 12-byte header, 4-byte alignment, so the data follows the header directly", () => {
    const m = cmsgMacros(darwin.LAYOUT.cmsghdr.size, darwin.CMSG_ALIGN);
    assert.deepEqual([m.dataOffset, m.len(4), m.space(4), m.len(8), m.space(8), m.space(12)], [12, 16, 16, 20, 20, 24]);
  });

  test("FreeBSD (and the other BSDs): a 12-byte header padded to 16, 8-byte alignment", () => {
    for (const mod of [freebsd, openbsd, netbsd]) {
      const m = cmsgMacros(mod.LAYOUT.cmsghdr.size, mod.CMSG_ALIGN);
      assert.deepEqual([m.dataOffset, m.len(4), m.space(4), m.len(8), m.space(8), m.space(12)], [16, 20, 24, 24, 24, 32]);
      assert.equal(m.align(20), 24);
    }
  });
});
