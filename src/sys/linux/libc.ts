/**
 * The C library's Linux-only functions: epoll, eventfd, the io_uring system calls, uname
 * (whose `struct utsname` layout here is Linux's) and fstat (`stat.ts`, same reason). They are bound from the same library as
 * `../libc.ts`, on first use, so importing evloop on another OS binds none of them, and a call
 * there fails with a message naming the OS.
 */
import { ffi } from "../../ffi/runtime/load.js";
import type { BoundLibrary, SymbolTable } from "../../ffi/types.js";
import { libcResolution, unavailable } from "../libc.js";
import { TARGET } from "../target.js";

const LINUX = {
  // int epoll_create1(int flags)
  epoll_create1: { result: "i32", params: ["i32"] },
  // int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
  epoll_ctl: { result: "i32", params: ["i32", "i32", "i32", "buffer"] },
  // int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
  epoll_wait: { result: "i32", params: ["i32", "buffer", "i32", "i32"] },
  // int eventfd(unsigned int initval, int flags)
  eventfd: { result: "i32", params: ["u32", "i32"] },
  // long syscall(SYS_io_uring_setup, unsigned entries, struct io_uring_params *p)
  io_uring_setup: { symbol: "syscall", result: "isize", params: ["isize", "u32", "buffer"], variadic: 2 },
  // long syscall(SYS_io_uring_enter, int fd, unsigned to_submit, unsigned min_complete, unsigned flags, const void *arg, size_t argsz)
  io_uring_enter: { symbol: "syscall", result: "isize", params: ["isize", "i32", "u32", "u32", "u32", "buffer", "usize"], variadic: 6 },
  // long syscall(SYS_io_uring_register, int fd, unsigned opcode, void *arg, unsigned nr_args)
  io_uring_register: { symbol: "syscall", result: "isize", params: ["isize", "i32", "u32", "buffer", "u32"], variadic: 4 },
  // int uname(struct utsname *buf)
  uname: { result: "i32", params: ["buffer"] },
  // int fstat(int fd, struct stat *buf) — a symbol of its own since glibc 2.33 (and in musl);
  // older glibc has only __fxstat, so it is optional
  fstat: { result: "i32", params: ["i32", "buffer"], optional: true },
} as const satisfies SymbolTable;

/** The Linux-only functions, once bound. */
export type LinuxLibc = BoundLibrary<typeof LINUX>;

let bound: LinuxLibc | undefined;

function bind(): LinuxLibc {
  if (TARGET.os !== "linux") {
    return unavailable(LINUX, new Error(`epoll, eventfd and io_uring are Linux system calls, and this is ${TARGET.os}`));
  }
  if (!libcResolution.ok) return unavailable(LINUX, libcResolution.error);
  return ffi.open(libcResolution.path, LINUX);
}

/**
 * The Linux-only functions, bound on the first call. Elsewhere every one of them throws,
 * naming the OS.
 */
export function linuxLibc(): LinuxLibc {
  return (bound ??= bind());
}
