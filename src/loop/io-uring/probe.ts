/**
 * Whether io_uring works here, and what it offers: a small ring is set up, its ops probed and
 * released. The answer is cached; `EVLOOP_IO_URING_DISABLE_FOR_TEST=1` forces the failure path.
 */
import { ffi } from "../../ffi/runtime/load.js";
import { SystemError } from "../../sys/errors.js";
import { ERRNO } from "../../sys/linux/constants.js";
import { featureNames, kernelRelease, OPS, Ring, setupNames } from "../../sys/linux/io_uring.js";

/** Ops evloop cannot work without (all in Linux 5.6). */
const REQUIRED: ReadonlyArray<keyof typeof OPS> = [
  "READ", "WRITE", "SEND", "RECV", "ACCEPT", "CONNECT", "SENDMSG", "RECVMSG", "POLL_ADD",
  "ASYNC_CANCEL", "LINK_TIMEOUT", "TIMEOUT", "CLOSE",
];

/**
 * What the kernel's io_uring offers evloop: setup succeeded, every required op is supported,
 * and which throughput features are on.
 *
 * @example
 * ```ts
 * const p = probeIoUring();
 * console.log(p.features.join(" "), p.multishotAccept, p.multishotRecv);
 * ```
 */
export interface IoUringProbe {
  /** `IORING_FEAT_*` names the kernel reported. */
  readonly features: readonly string[];
  /** `IORING_SETUP_*` flags the kernel accepted (newer ones are tried first). */
  readonly setup: readonly string[];
  /** Multishot ACCEPT (Linux 5.19). */
  readonly multishotAccept: boolean;
  /** Multishot RECV with a provided buffer ring (Linux 6.0). */
  readonly multishotRecv: boolean;
  /** The kernel release the multishot decisions were made from. */
  readonly kernel: string;
}

/** Why io_uring_setup failed, in words a user can act on. */
function setupFailure(e: unknown): string {
  if (!(e instanceof SystemError)) return e instanceof Error ? e.message : String(e);
  switch (e.code) {
    case "EPERM":
      return `io_uring_setup failed with EPERM: io_uring is disabled (sysctl kernel.io_uring_disabled) or refused by a seccomp filter${e.message.includes("EVLOOP_IO_URING_DISABLE_FOR_TEST") ? " (forced by EVLOOP_IO_URING_DISABLE_FOR_TEST=1)" : ""}`;
    case "ENOSYS":
      return "io_uring_setup failed with ENOSYS: this kernel has no io_uring (Linux 5.1+), or a seccomp filter hides it";
    case "ENOMEM":
      return "io_uring_setup failed with ENOMEM: the memory lock limit (ulimit -l) is too low for a ring on this kernel";
    default:
      return `io_uring_setup failed with ${e.code}`;
  }
}

/** `[major, minor]` of a kernel release string (`uname -r`). */
function kernelVersion(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function atLeast(v: [number, number], major: number, minor: number): boolean {
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

/**
 * Sets up a small ring, probes its ops and releases it. Throws, with the reason, when io_uring
 * cannot be used here: `io_uring_setup` failed (ENOSYS: no io_uring; EPERM:
 * `kernel.io_uring_disabled` or a seccomp filter), or a required op is missing.
 * `EVLOOP_IO_URING_MULTISHOT=0` turns the multishot features off. The answer is cached.
 *
 * @example
 * ```ts
 * try {
 *   console.log("io_uring on kernel", probeIoUring().kernel);
 * } catch (e) {
 *   console.log("no io_uring:", (e as Error).message);
 * }
 * ```
 */
export function probeIoUring(): IoUringProbe {
  probed ??= probeOnce();
  return probed;
}

let probed: IoUringProbe | undefined;

function probeOnce(): IoUringProbe {
  if (ffi.env("EVLOOP_IO_URING_DISABLE_FOR_TEST") === "1") {
    // The failure path, forced: behaves as a kernel with io_uring disabled by sysctl.
    throw new Error(setupFailure(new SystemError(ERRNO.EPERM, "io_uring_setup", "EVLOOP_IO_URING_DISABLE_FOR_TEST=1")));
  }
  let ring: Ring;
  try {
    ring = Ring.setup({ entries: 4 });
  } catch (e) {
    throw new Error(setupFailure(e), { cause: e });
  }
  try {
    const ops = ring.probe();
    const missing = REQUIRED.filter((name) => !ops.has(OPS[name]));
    if (missing.length > 0) throw new Error(`the kernel's io_uring lacks ${missing.map((m) => `IORING_OP_${m}`).join(", ")}`);
    const release = kernelRelease();
    const version = kernelVersion(release);
    const multishot = ffi.env("EVLOOP_IO_URING_MULTISHOT") !== "0";
    return {
      features: featureNames(ring.features),
      setup: setupNames(ring.setupFlags),
      multishotAccept: multishot && atLeast(version, 5, 19),
      multishotRecv: multishot && atLeast(version, 6, 0),
      kernel: release,
    };
  } finally {
    ring.close();
  }
}

/** The backend table's probe: throws where io_uring cannot be used, else describes it. */
export function describeIoUring(): string {
  const p = probeIoUring();
  const multishot = [p.multishotAccept ? "accept" : "", p.multishotRecv ? "recv (on request)" : ""].filter(Boolean);
  return `kernel ${p.kernel}; multishot ${multishot.length ? multishot.join(", ") : "off"}; setup ${p.setup.join(" ")}; features ${p.features.join(" ")}`;
}
