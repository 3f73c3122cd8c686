/**
 * What evloop knows about a platform, as a pure function of what the runtime reports (OS, CPU
 * architecture and, on Linux, the C library's flavour), so the description of every OS can be
 * unit-tested on any one of them. `target.ts` applies it to the running process.
 *
 * A description never throws: on a platform evloop cannot drive, `unsupported` says why, and the
 * parts that cannot work fail with that sentence when they are used (a backend's probe, a libc
 * call), not when evloop is imported.
 */

/** Operating systems evloop has tables for, by Node's `process.platform` names. */
export type KnownOs = "linux" | "darwin" | "freebsd" | "openbsd" | "netbsd" | "win32";

/** The C library: glibc or musl on Linux; the system's own libc elsewhere. */
export type LibcFlavour = "glibc" | "musl" | "darwin" | "freebsd" | "openbsd" | "netbsd";

/** The per-target table of constants, errno numbers and struct layouts (`linux/constants.ts`, `bsd/*.ts`). */
export type TableName = "linux" | "darwin" | "freebsd" | "openbsd" | "netbsd" | "win32";

/** Kernel interfaces a platform offers. */
export interface PlatformFeatures {
  /** epoll(7): Linux. */
  readonly epoll: boolean;
  /**
   * io_uring(7) exists in this kernel family (Linux ≥ 5.1). Whether it works on this machine
   * (kernel version, `kernel.io_uring_disabled`, seccomp) is for the backend's probe to say.
   */
  readonly ioUring: boolean;
  /** eventfd(2): Linux. Where it is missing, wakers are pipes. */
  readonly eventfd: boolean;
  /** kqueue(2): macOS and the BSDs. */
  readonly kqueue: boolean;
  /** poll(2): every POSIX system. */
  readonly poll: boolean;
  /** I/O completion ports: Windows. */
  readonly iocp: boolean;
  /** Unix sockets in the abstract namespace (a path that starts with a NUL byte): Linux. */
  readonly abstractUnixSockets: boolean;
}

/**
 * A platform as evloop sees it.
 *
 * @example
 * ```ts
 * describeTarget({ platform: "darwin", arch: "arm64" }).has.kqueue; // true
 * ```
 */
export interface TargetDescription {
  /** Node's `process.platform` name, kept as given for an OS evloop does not know. */
  readonly os: string;
  /** Node's `process.arch` name. */
  readonly arch: string;
  /** The C library; null where there is none evloop uses (Windows) or it is not known. */
  readonly libc: LibcFlavour | null;
  /** The table of constants and layouts for this OS; null where evloop has none. */
  readonly table: TableName | null;
  readonly has: PlatformFeatures;
  /**
   * Why evloop's POSIX layer cannot run here, as a sentence for error messages; null when it
   * can. Every libc call fails with it (see `libc.ts`).
   */
  readonly unsupported: string | null;
}

/** What the description is computed from. */
export interface TargetInput {
  /** `process.platform` (or the runtime's equivalent). */
  readonly platform: string;
  /** `process.arch` (or the runtime's equivalent). */
  readonly arch: string;
  /** Linux only: the C library of the running process, when it could be told. */
  readonly libc?: "glibc" | "musl" | null | undefined;
}

const NONE: PlatformFeatures = {
  epoll: false, ioUring: false, eventfd: false, kqueue: false, poll: false, iocp: false, abstractUnixSockets: false,
};

const LINUX: PlatformFeatures = { ...NONE, epoll: true, ioUring: true, eventfd: true, poll: true, abstractUnixSockets: true };
const BSD: PlatformFeatures = { ...NONE, kqueue: true, poll: true };
const WINDOWS: PlatformFeatures = { ...NONE, iocp: true };

/**
 * The architectures the tables describe: 64-bit pointers and `long` (LP64), little-endian
 * (`ffi/layout.ts` reads native fields as little-endian). Node's `ppc64` on Linux is ppc64le.
 */
const LP64_LITTLE_ENDIAN: ReadonlySet<string> = new Set(["x64", "arm64", "riscv64", "loong64", "ppc64"]);

const BSDS: ReadonlySet<string> = new Set(["darwin", "freebsd", "openbsd", "netbsd"]);

/**
 * Describes the platform `input` names. Pure: the same input always gives the same description.
 *
 * @example
 * ```ts
 * const t = describeTarget({ platform: "linux", arch: "x64", libc: "musl" });
 * t.table;      // "linux"
 * t.has.epoll;  // true
 * ```
 */
export function describeTarget(input: TargetInput): TargetDescription {
  const { platform: os, arch } = input;
  if (os === "linux") {
    return { os, arch, libc: input.libc ?? null, table: "linux", has: LINUX, unsupported: archProblem(os, arch) };
  }
  if (BSDS.has(os)) {
    const table = os as TableName;
    return { os, arch, libc: os as LibcFlavour, table, has: BSD, unsupported: archProblem(os, arch) };
  }
  if (os === "win32") {
    // No C library: Winsock, kernel32 and ntdll are the system layer (`sys/windows/`).
    const unsupported = arch === "x64" ? null : `evloop's Windows layouts are for x64, not ${arch}`;
    return { os, arch, libc: null, table: "win32", has: WINDOWS, unsupported };
  }
  return { os, arch, libc: null, table: null, has: NONE, unsupported: `evloop has no constants or struct layouts for ${os}` };
}

function archProblem(os: string, arch: string): string | null {
  if (!LP64_LITTLE_ENDIAN.has(arch)) {
    return `evloop's struct layouts for ${os} are for 64-bit little-endian CPUs, and ${arch} is not one`;
  }
  // NetBSD's control-message alignment is per CPU, and only amd64's was checked.
  if (os === "netbsd" && arch !== "x64") return `evloop's NetBSD table is for x64 only, not ${arch}`;
  return null;
}

/**
 * Alpine's names for its musl library (`/lib/libc.musl-<arch>.so.1`), by Node's arch names.
 */
const ALPINE_ARCH: Readonly<Record<string, string>> = {
  x64: "x86_64", arm64: "aarch64", riscv64: "riscv64", loong64: "loongarch64", ppc64: "ppc64le",
};

/**
 * The names `libc.ts` tries, in order, to load the C library of a platform; empty where evloop
 * uses none (Windows, unknown systems). Pure, for the same reason as {@link describeTarget}.
 *
 * - glibc: `libc.so.6`, its soname since glibc 2.0.
 * - musl: the Alpine soname, then `libc.so`. musl's dynamic loader answers any request for a name
 *   that starts with `libc.` with itself (`load_library` in `ldso/dynlink.c` keeps a list of
 *   such reserved names), so either loads on every musl system, whatever its file layout.
 * - Linux with an unknown C library: both of the above.
 * - macOS: `libSystem.B.dylib` by full path; since macOS 11 the file is not on disk, but dyld
 *   finds it in its shared cache.
 * - FreeBSD `libc.so.7` (since FreeBSD 7); NetBSD `libc.so.12` (since NetBSD 1.6).
 * - OpenBSD bumps libc's major version with most releases; its ld.so resolves a name without a
 *   version to the highest installed one.
 *
 * @example
 * ```ts
 * libcCandidates(describeTarget({ platform: "freebsd", arch: "x64" })); // ["libc.so.7"]
 * ```
 */
export function libcCandidates(target: TargetDescription): readonly string[] {
  switch (target.os) {
    case "linux": {
      const alpine = ALPINE_ARCH[target.arch];
      const musl = alpine === undefined ? ["libc.so"] : [`libc.musl-${alpine}.so.1`, "libc.so"];
      if (target.libc === "glibc") return ["libc.so.6"];
      if (target.libc === "musl") return musl;
      return ["libc.so.6", ...musl];
    }
    case "darwin":
      return ["/usr/lib/libSystem.B.dylib"];
    case "freebsd":
      return ["libc.so.7"];
    case "openbsd":
      return ["libc.so"];
    case "netbsd":
      return ["libc.so.12"];
    default:
      return [];
  }
}
