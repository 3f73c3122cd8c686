/**
 * Which open file an fd number refers to, so that a number closed and reused by another file can
 * be told from the file first seen under it. On Linux that is fstat's `st_dev:st_ino`
 * (`linux/stat.ts`); elsewhere evloop reads no `struct stat` (its layout differs per OS and
 * version) and only says whether the fd is open, with fcntl(F_GETFD).
 */
import { call } from "./errors.js";
import { libc } from "./libc.js";
import { fstatIdentity } from "./linux/stat.js";
import { C, TARGET } from "./target.js";

/**
 * The identity of the file `fd` refers to (`"dev:ino"`), or `""` where evloop cannot tell files
 * apart (not Linux, or a C library without `fstat`): then only whether it is open is checked.
 * One system call. Throws a SystemError EBADF when `fd` is not open.
 *
 * @example
 * ```ts
 * const id = fileIdentity(fd);
 * // … later: closed, or the number now names another file?
 * const same = fileIdentity(fd) === id;   // throws EBADF if closed
 * ```
 */
export function fileIdentity(fd: number): string {
  if (TARGET.os === "linux") {
    const id = fstatIdentity(fd);
    if (id !== null) return id;
  }
  call("fcntl", false, libc.fcntl, fd, C.F_GETFD, 0);
  return "";
}
