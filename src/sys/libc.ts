/**
 * The C library's portable functions, declared once, each with its C prototype, and the library
 * itself, resolved per platform (`libcCandidates` in `platform.ts` says which names are tried).
 *
 * Only functions every supported system has are bound here; the two that macOS lacks (accept4,
 * pipe2) are `optional`, so they are `undefined` there and callers fall back to accept/pipe plus
 * fcntl. Linux-only functions (epoll, eventfd, io_uring, uname) live in `linux/libc.ts`, bound on
 * first use, so nothing here fails on an OS that lacks them.
 *
 * Loading never throws at import: where no C library loads, or evloop cannot run at all
 * (`TARGET.unsupported`), every function throws the reason when called, so the failure surfaces
 * where something is used — typically a backend's probe — with the names that were tried.
 */
import { ffi } from "../ffi/runtime/load.js";
import type { BoundLibrary, SymbolTable } from "../ffi/types.js";
import { libcCandidates } from "./platform.js";
import { TARGET } from "./target.js";

/** `nfds_t`: unsigned long on Linux, unsigned int on macOS and the BSDs. */
const NFDS_T = TARGET.os === "linux" ? "u64" : "u32";

const LIBC = {
  // ssize_t read(int fd, void *buf, size_t count)
  read: { result: "isize", params: ["i32", "buffer", "usize"] },
  // ssize_t write(int fd, const void *buf, size_t count)
  write: { result: "isize", params: ["i32", "buffer", "usize"] },
  // ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
  readv: { result: "isize", params: ["i32", "buffer", "i32"] },
  // ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
  writev: { result: "isize", params: ["i32", "buffer", "i32"] },
  // int close(int fd)
  close: { result: "i32", params: ["i32"] },
  // int fchmod(int fd, mode_t mode) — mode_t is unsigned int on Linux and the BSDs; macOS's
  // uint16_t is passed widened to 32 bits by its ABIs, so u32 carries it too
  fchmod: { result: "i32", params: ["i32", "u32"] },
  // int fcntl(int fd, int cmd, ... /* int arg */)
  fcntl: { result: "i32", params: ["i32", "i32", "i32"], variadic: 1 },
  // int pipe(int pipefd[2])
  pipe: { result: "i32", params: ["buffer"] },
  // int pipe2(int pipefd[2], int flags) — not on macOS
  pipe2: { result: "i32", params: ["buffer", "i32"], optional: true },
  // int socket(int domain, int type, int protocol)
  socket: { result: "i32", params: ["i32", "i32", "i32"] },
  // int socketpair(int domain, int type, int protocol, int sv[2])
  socketpair: { result: "i32", params: ["i32", "i32", "i32", "buffer"] },
  // int bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen)
  bind: { result: "i32", params: ["i32", "buffer", "u32"] },
  // int listen(int sockfd, int backlog)
  listen: { result: "i32", params: ["i32", "i32"] },
  // int accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
  accept: { result: "i32", params: ["i32", "buffer", "buffer"] },
  // int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags) — not on macOS
  accept4: { result: "i32", params: ["i32", "buffer", "buffer", "i32"], optional: true },
  // int connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen)
  connect: { result: "i32", params: ["i32", "buffer", "u32"] },
  // int getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen)
  getsockopt: { result: "i32", params: ["i32", "i32", "i32", "buffer", "buffer"] },
  // int setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen)
  setsockopt: { result: "i32", params: ["i32", "i32", "i32", "buffer", "u32"] },
  // int getsockname(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
  getsockname: { result: "i32", params: ["i32", "buffer", "buffer"] },
  // int getpeername(int sockfd, struct sockaddr *addr, socklen_t *addrlen)
  getpeername: { result: "i32", params: ["i32", "buffer", "buffer"] },
  // int shutdown(int sockfd, int how)
  shutdown: { result: "i32", params: ["i32", "i32"] },
  // ssize_t recv(int sockfd, void *buf, size_t len, int flags)
  recv: { result: "isize", params: ["i32", "buffer", "usize", "i32"] },
  // ssize_t send(int sockfd, const void *buf, size_t len, int flags)
  send: { result: "isize", params: ["i32", "buffer", "usize", "i32"] },
  // ssize_t recvfrom(int sockfd, void *buf, size_t len, int flags, struct sockaddr *src, socklen_t *addrlen)
  recvfrom: { result: "isize", params: ["i32", "buffer", "usize", "i32", "buffer", "buffer"] },
  // ssize_t sendto(int sockfd, const void *buf, size_t len, int flags, const struct sockaddr *dest, socklen_t addrlen)
  sendto: { result: "isize", params: ["i32", "buffer", "usize", "i32", "buffer", "u32"] },
  // ssize_t recvmsg(int sockfd, struct msghdr *msg, int flags)
  recvmsg: { result: "isize", params: ["i32", "buffer", "i32"] },
  // ssize_t sendmsg(int sockfd, const struct msghdr *msg, int flags)
  sendmsg: { result: "isize", params: ["i32", "buffer", "i32"] },
  // int poll(struct pollfd *fds, nfds_t nfds, int timeout)
  poll: { result: "i32", params: ["buffer", NFDS_T, "i32"] },
  // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
  mmap: { result: "pointer", params: ["pointer", "usize", "i32", "i32", "i32", "i64"] },
  // int munmap(void *addr, size_t length)
  munmap: { result: "i32", params: ["pointer", "usize"] },
  // void *calloc(size_t nmemb, size_t size)
  calloc: { result: "pointer", params: ["usize", "usize"] },
  // void free(void *ptr)
  free: { result: "void", params: ["pointer"] },
  // char *strerror(int errnum) — the text of an errno (thread-safe in glibc ≥ 2.32, musl, macOS)
  strerror: { result: "cstring", params: ["i32"] },
  // unsigned int if_nametoindex(const char *ifname)
  if_nametoindex: { result: "u32", params: ["cstring"] },
  // char *if_indextoname(unsigned int ifindex, char *ifname)
  if_indextoname: { result: "pointer", params: ["u32", "buffer"] },
} as const satisfies SymbolTable;

/** What loading the C library gave: the name that loaded, or the error every call will throw. */
export type LibcResolution =
  | { readonly ok: true; readonly path: string }
  | { readonly ok: false; readonly error: Error };

/**
 * Opens the first of `names` that loads with `table`. Never throws: a failure comes back as the
 * error to report, naming every library tried, with the loader's errors as its `cause`.
 */
export function openFirst<T extends SymbolTable>(
  names: readonly string[],
  table: T,
  what: string,
): { lib: BoundLibrary<T>; path: string } | { lib: null; error: Error } {
  const failures: unknown[] = [];
  for (const name of names) {
    try {
      return { lib: ffi.open(name, table), path: name };
    } catch (e) {
      failures.push(e);
    }
  }
  const cause = failures.length === 1 ? failures[0] : new AggregateError(failures, `every ${what} candidate failed`);
  const tried = names.length === 0 ? "there is none to try" : `tried ${names.join(", ")}`;
  return { lib: null, error: new Error(`evloop cannot load ${what} on ${TARGET.os} (${tried})`, { cause }) };
}

/** A table whose every function throws `error`: what callers get when the library is missing. */
export function unavailable<T extends SymbolTable>(table: T, error: Error): BoundLibrary<T> {
  const out: Record<string, () => never> = {};
  for (const name of Object.keys(table)) {
    out[name] = () => {
      throw new Error(`${name}() is not available: ${error.message}`, { cause: error });
    };
  }
  return out as unknown as BoundLibrary<T>;
}

function load(): { lib: BoundLibrary<typeof LIBC>; resolution: LibcResolution } {
  if (TARGET.unsupported !== null) {
    const error = new Error(`evloop cannot run on ${TARGET.os}/${TARGET.arch}: ${TARGET.unsupported}`);
    return { lib: unavailable(LIBC, error), resolution: { ok: false, error } };
  }
  if (TARGET.os === "win32") {
    const error = new Error("Windows has no POSIX C library: evloop uses Winsock, kernel32 and ntdll there (sys/windows/)");
    return { lib: unavailable(LIBC, error), resolution: { ok: false, error } };
  }
  const opened = openFirst(libcCandidates(TARGET), LIBC, "the C library");
  if (opened.lib === null) return { lib: unavailable(LIBC, opened.error), resolution: { ok: false, error: opened.error } };
  return { lib: opened.lib, resolution: { ok: true, path: opened.path } };
}

const loaded = load();

/** libc, bound for the running runtime (every function throws where it could not be loaded). */
export const libc: BoundLibrary<typeof LIBC> = loaded.lib;

/** Which C library was loaded, or why none was: for `evloop info` and backend probes. */
export const libcResolution: LibcResolution = loaded.resolution;
