/**
 * File-descriptor system calls: read/write (plain and vectored), close, fcntl flags, fchmod,
 * pipes.
 *
 * read/write return {@link WOULD_BLOCK} instead of throwing when a non-blocking fd is not ready,
 * so the event loops' fast path never pays for an exception.
 */
import { C, ERRNO, LAYOUT } from "../target.js";
import { call, SystemError } from "../errors.js";
import { libc } from "../libc.js";
import { ffi } from "../../ffi/runtime/load.js";
import { dataView, setField } from "../../ffi/layout.js";

export { WOULD_BLOCK } from "../errors.js";

/** Reads up to `buf.byteLength` bytes; 0 at end of file. */
export function read(fd: number, buf: Uint8Array): number {
  return call("read", true, libc.read, fd, buf, buf.byteLength);
}

/** Writes up to `buf.byteLength` bytes. */
export function write(fd: number, buf: Uint8Array): number {
  return call("write", true, libc.write, fd, buf, buf.byteLength);
}

/**
 * Fills `iov` (a buffer of `bufs.length` struct iovec) with the addresses of `bufs`.
 *
 * SAFETY: the addresses are only valid while `bufs` are alive and not detached; callers pass
 * them to a synchronous readv/writev/sendmsg/recvmsg in the same tick and keep `bufs` referenced
 * through the call.
 */
export function fillIovecs(iov: Uint8Array, bufs: readonly Uint8Array[]): void {
  const view = dataView(iov);
  const { base, len } = LAYOUT.iovec.fields;
  for (let i = 0; i < bufs.length; i++) {
    const b = bufs[i]!;
    setField(view, i * LAYOUT.iovec.size, base, b.byteLength === 0 ? 0n : ffi.address(b));
    setField(view, i * LAYOUT.iovec.size, len, b.byteLength);
  }
}

/** readv(2): scatters into `bufs`; 0 at end of file. */
export function readv(fd: number, bufs: readonly Uint8Array[]): number {
  const iov = new Uint8Array(bufs.length * LAYOUT.iovec.size);
  fillIovecs(iov, bufs);
  return call("readv", true, libc.readv, fd, iov, bufs.length);
}

/** writev(2): gathers from `bufs`. */
export function writev(fd: number, bufs: readonly Uint8Array[]): number {
  const iov = new Uint8Array(bufs.length * LAYOUT.iovec.size);
  fillIovecs(iov, bufs);
  return call("writev", true, libc.writev, fd, iov, bufs.length);
}

/**
 * close(2). EINTR is not retried here: on Linux the fd is released even when close reports
 * EINTR, and a retry could close an fd another thread just opened.
 */
export function close(fd: number): void {
  if (libc.close(fd) < 0) {
    const e = ffi.errno();
    if (e !== ERRNO.EINTR) throw new SystemError(e, "close");
  }
}

/** The file status flags (F_GETFL); throws EBADF for an fd that is not open. */
export function statusFlags(fd: number): number {
  return call("fcntl", false, libc.fcntl, fd, C.F_GETFL, 0);
}

/** Sets or clears O_NONBLOCK. */
export function setNonBlocking(fd: number, on: boolean): void {
  const flags = statusFlags(fd);
  const next = on ? flags | C.O_NONBLOCK : flags & ~C.O_NONBLOCK;
  if (next !== flags) call("fcntl", false, libc.fcntl, fd, C.F_SETFL, next);
}

/** Whether O_NONBLOCK is set. */
export function isNonBlocking(fd: number): boolean {
  return (statusFlags(fd) & C.O_NONBLOCK) !== 0;
}

/** Sets FD_CLOEXEC. */
export function setCloseOnExec(fd: number): void {
  const flags = call("fcntl", false, libc.fcntl, fd, C.F_GETFD, 0);
  call("fcntl", false, libc.fcntl, fd, C.F_SETFD, flags | C.FD_CLOEXEC);
}

/**
 * fchmod(2): sets the permission bits of the file `fd` refers to (a Unix socket's own mode, before
 * bind). Not node:fs's fchmodSync: on Deno that takes Deno's resource ids, not fds.
 */
export function fchmod(fd: number, mode: number): void {
  call("fchmod", false, libc.fchmod, fd, mode);
}

/** Whether `fd` is an open file descriptor of this process. */
export function isOpen(fd: number): boolean {
  return libc.fcntl(fd, C.F_GETFD, 0) >= 0;
}

const fdPair = new Int32Array(2);

/**
 * A pipe with O_NONBLOCK|O_CLOEXEC on both ends (or blocking ends when `nonBlocking` is false):
 * [read, write]. pipe2(2) sets the flags atomically; where it is missing (macOS) pipe(2) and
 * fcntl do, which leaves a moment in which another thread's fork+exec could inherit the fds.
 */
export function pipe(nonBlocking = true): [number, number] {
  const pipe2 = libc.pipe2;
  if (pipe2 !== undefined) {
    call("pipe2", false, pipe2, fdPair, C.O_CLOEXEC | (nonBlocking ? C.O_NONBLOCK : 0));
    return [fdPair[0]!, fdPair[1]!];
  }
  call("pipe", false, libc.pipe, fdPair);
  const fds: [number, number] = [fdPair[0]!, fdPair[1]!];
  try {
    for (const fd of fds) {
      setCloseOnExec(fd);
      if (nonBlocking) setNonBlocking(fd, true);
    }
  } catch (e) {
    for (const fd of fds) libc.close(fd);
    throw e;
  }
  return fds;
}
