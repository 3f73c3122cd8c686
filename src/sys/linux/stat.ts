/**
 * fstat(2), read for a file's identity only: `st_dev` and `st_ino`, which every Linux
 * architecture evloop supports (x86-64, arm64, riscv64, loongarch64, ppc64le) lays out the same
 * way, two 64-bit fields at offsets 0 and 8 of `struct stat`. The rest of the struct differs
 * per architecture and is not read.
 */
import { call } from "../errors.js";
import { linuxLibc } from "./libc.js";
import { dataView } from "../../ffi/layout.js";

/** Bigger than any architecture's struct stat (144 bytes on x86-64, 128 on the generic ABI). */
const statBuf = new Uint8Array(256);
const statView = dataView(statBuf);

/**
 * The identity of the open file `fd` refers to, as `"dev:ino"`; null where the C library has no
 * `fstat` symbol (glibc before 2.33). Throws a SystemError (EBADF) when `fd` is not open.
 */
export function fstatIdentity(fd: number): string | null {
  const fstat = linuxLibc().fstat;
  if (fstat === undefined) return null;
  call("fstat", false, fstat, fd, statBuf);
  return `${statView.getBigUint64(0, true)}:${statView.getBigUint64(8, true)}`;
}
