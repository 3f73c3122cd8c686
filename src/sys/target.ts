/**
 * The platform we run on, and its table of constants, errno numbers and struct layouts.
 *
 * `TARGET` describes the running process (`platform.ts` holds the pure description, so every OS
 * can be tested anywhere). The table is chosen by OS: `linux/constants.ts`, `bsd/darwin.ts`,
 * `bsd/freebsd.ts`, `bsd/openbsd.ts`, `bsd/netbsd.ts`, `windows/constants.ts`. Importing this
 * module never throws: where evloop has no table (an unknown OS) the Linux one stands in so that
 * modules which size buffers at import still load, and `libc.ts` makes every call fail with
 * `TARGET.unsupported` instead, so no number from the wrong table ever reaches a kernel.
 */
import { ffi } from "../ffi/runtime/load.js";
import { describeTarget, type TableName, type TargetDescription } from "./platform.js";
import { cmsgMacros, type PosixConstants, type TargetTable } from "./table.js";
import { TABLE as LINUX } from "./linux/constants.js";
import { TABLE as DARWIN } from "./bsd/darwin.js";
import { TABLE as FREEBSD } from "./bsd/freebsd.js";
import { TABLE as OPENBSD } from "./bsd/openbsd.js";
import { TABLE as NETBSD } from "./bsd/netbsd.js";
import { TABLE as WIN32 } from "./windows/constants.js";

export {
  describeTarget,
  libcCandidates,
  type KnownOs,
  type LibcFlavour,
  type PlatformFeatures,
  type TableName,
  type TargetDescription,
  type TargetInput,
} from "./platform.js";
export type { ErrnoName, ErrnoTable, PosixConstants, PosixLayout, TargetTable } from "./table.js";

/**
 * glibc or musl, told apart by a symbol only glibc exports (`gnu_get_libc_version`), looked up
 * among the running executable's symbols, which include its C library: no library name is
 * guessed, and it costs one dlsym. null when the runtime cannot open the executable.
 */
function linuxLibc(): "glibc" | "musl" | null {
  try {
    const self = ffi.open(null, { gnu_get_libc_version: { result: "pointer", params: [], optional: true } });
    return self.gnu_get_libc_version === undefined ? "musl" : "glibc";
  } catch {
    return null;
  }
}

/** The running platform. */
export const TARGET: TargetDescription = describeTarget({
  platform: ffi.platform,
  arch: ffi.arch,
  libc: ffi.platform === "linux" ? linuxLibc() : null,
});

const TABLES: Readonly<Record<TableName, TargetTable>> = {
  linux: LINUX,
  darwin: DARWIN,
  freebsd: FREEBSD,
  openbsd: OPENBSD,
  netbsd: NETBSD,
  win32: WIN32,
};

/** The running target's table (the Linux one standing in where there is none; see above). */
export const TABLE: TargetTable = TABLES[TARGET.table ?? "linux"];

/** The running target's constants (the portable names; `linux/constants.ts` has Linux's own). */
export const C: PosixConstants = TABLE.C;
/** The running target's errno numbers by name. */
export const ERRNO = TABLE.ERRNO;
/** The running target's struct layouts. */
export const LAYOUT = TABLE.LAYOUT;

/** poll(2) events meaning "a read will not block": POLLIN|POLLPRI, and POLLRDHUP on Linux. */
export const POLL_READABLE = TABLE.POLL_READABLE;
/** poll(2) events meaning "a write will not block": POLLOUT. */
export const POLL_WRITABLE = TABLE.POLL_WRITABLE;
/** Returned poll(2) events meaning "the peer will send nothing more": POLLHUP, and POLLRDHUP on Linux. */
export const POLL_READ_CLOSED = TABLE.POLL_READ_CLOSED;

/** The most bytes one read/write/send/recv may be asked for (see `TargetTable.MAX_IO_BYTES`). */
export const MAX_IO_BYTES = TABLE.MAX_IO_BYTES;

const CMSG = cmsgMacros(LAYOUT.cmsghdr.size, TABLE.CMSG_ALIGN);
/** `CMSG_ALIGN(n)`: `n` rounded up to the control-message alignment. */
export const cmsgAlign = CMSG.align;
/** `CMSG_LEN(n)`: the `cmsg_len` of a control message with `n` data bytes. */
export const cmsgLen = CMSG.len;
/** `CMSG_SPACE(n)`: bytes a control message with `n` data bytes takes. */
export const cmsgSpace = CMSG.space;
/** Where a control message's data starts, from its header (`CMSG_DATA(c) - c`). */
export const CMSG_DATA_OFFSET = CMSG.dataOffset;
