/**
 * The C library's functions evloop calls, declared once. Each entry carries its C prototype.
 */
import { ffi } from "../ffi/runtime/load.js";
import type { SymbolTable } from "../ffi/types.js";

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
  // int fcntl(int fd, int cmd, ... /* int arg */)
  fcntl: { result: "i32", params: ["i32", "i32", "i32"], variadic: 1 },
  // int pipe2(int pipefd[2], int flags)
  pipe2: { result: "i32", params: ["buffer", "i32"] },
  // int eventfd(unsigned int initval, int flags)
  eventfd: { result: "i32", params: ["u32", "i32"] },
  // int socket(int domain, int type, int protocol)
  socket: { result: "i32", params: ["i32", "i32", "i32"] },
  // int socketpair(int domain, int type, int protocol, int sv[2])
  socketpair: { result: "i32", params: ["i32", "i32", "i32", "buffer"] },
  // int bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen)
  bind: { result: "i32", params: ["i32", "buffer", "u32"] },
  // int listen(int sockfd, int backlog)
  listen: { result: "i32", params: ["i32", "i32"] },
  // int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags)
  accept4: { result: "i32", params: ["i32", "buffer", "buffer", "i32"] },
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
  // int epoll_create1(int flags)
  epoll_create1: { result: "i32", params: ["i32"] },
  // int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
  epoll_ctl: { result: "i32", params: ["i32", "i32", "i32", "buffer"] },
  // int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
  epoll_wait: { result: "i32", params: ["i32", "buffer", "i32", "i32"] },
  // int poll(struct pollfd *fds, nfds_t nfds, int timeout)
  poll: { result: "i32", params: ["buffer", "u64", "i32"] },
  // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
  mmap: { result: "pointer", params: ["pointer", "usize", "i32", "i32", "i32", "i64"] },
  // int munmap(void *addr, size_t length)
  munmap: { result: "i32", params: ["pointer", "usize"] },
  // long syscall(SYS_io_uring_setup, unsigned entries, struct io_uring_params *p)
  io_uring_setup: { symbol: "syscall", result: "isize", params: ["isize", "u32", "buffer"], variadic: 2 },
  // long syscall(SYS_io_uring_enter, int fd, unsigned to_submit, unsigned min_complete, unsigned flags, const void *arg, size_t argsz)
  io_uring_enter: { symbol: "syscall", result: "isize", params: ["isize", "i32", "u32", "u32", "u32", "buffer", "usize"], variadic: 6 },
  // long syscall(SYS_io_uring_register, int fd, unsigned opcode, void *arg, unsigned nr_args)
  io_uring_register: { symbol: "syscall", result: "isize", params: ["isize", "i32", "u32", "buffer", "u32"], variadic: 4 },
  // void *calloc(size_t nmemb, size_t size)
  calloc: { result: "pointer", params: ["usize", "usize"] },
  // void free(void *ptr)
  free: { result: "void", params: ["pointer"] },
  // unsigned int if_nametoindex(const char *ifname)
  if_nametoindex: { result: "u32", params: ["cstring"] },
  // char *if_indextoname(unsigned int ifindex, char *ifname)
  if_indextoname: { result: "pointer", params: ["u32", "buffer"] },
  // int uname(struct utsname *buf)
  uname: { result: "i32", params: ["buffer"] },
} as const satisfies SymbolTable;

/** libc, bound for the running runtime. */
export const libc = ffi.open("libc.so.6", LIBC);
