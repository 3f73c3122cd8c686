/**
 * The backend table: every backend evloop has, the platforms it exists on, its probe and its
 * constructor, best first. `availableBackends`, `probeBackends`, `createLoop` and `evloop info`
 * all read it; adding a backend adds one entry here (libxev's `Backend` enum with `available()`
 * and `candidates()` is the model).
 *
 * A probe creates the backend's kernel object and releases it, so a backend disabled by sysctl
 * or seccomp shows up here with the reason, not later as a failed operation.
 *
 * NOTE for src/net and src/io: `defaultLoop()` and `createLoop()` live one layer up, in
 * `src/driver/create.ts` (they attach the guest driver); import them from there.
 */
import { ffi } from "../ffi/runtime/load.js";
import { SystemError } from "../sys/errors.js";
import { libcResolution } from "../sys/libc.js";
import { epollCreate } from "../sys/linux/epoll.js";
import { close } from "../sys/posix/fd.js";
import { poll } from "../sys/posix/poll.js";
import { openWakeup } from "../sys/wakeup.js";
import { kqueueUnavailable } from "../sys/bsd/kqueue.js";
import { EpollSelector } from "../selector/epoll.js";
import { KqueueSelector } from "../selector/kqueue.js";
import { PollSelector } from "../selector/poll.js";
import { BlockingEventLoop } from "./blocking.js";
import type { CompletionLoop } from "./completion.js";
import { BACKEND_NAMES, type BackendName } from "./event-loop.js";
import { IoUringEventLoop, type IoUringOptions } from "./io-uring/loop.js";
import { IocpEventLoop, probeIocp, type IocpOptions } from "./iocp/loop.js";
import { describeIoUring } from "./io-uring/probe.js";
import { PollingEventLoop } from "./polling.js";
import { debug } from "./debug.js";

/** Options some backends take (`createLoop` passes them on). */
export interface BackendOptions {
  /** Backends: io_uring. */
  readonly ioUring?: IoUringOptions | undefined;
  /** Backends: iocp. */
  readonly iocp?: IocpOptions | undefined;
}

/** One backend: where it exists, how to tell whether it works here, how to make one. */
export interface Backend {
  readonly name: BackendName;
  /** The OSes (Node's `process.platform` names) it exists on. */
  readonly platforms: readonly string[];
  /** Throws, with the reason, where it cannot work; else returns a note for `evloop info`. */
  probe(): string | undefined;
  /** A new loop with no driver attached. */
  create(options: BackendOptions): CompletionLoop;
}

const POSIX = ["linux", "darwin", "freebsd", "openbsd", "netbsd", "sunos", "aix", "android"];

/** Every backend, best first. */
const BACKENDS: readonly Backend[] = [
  {
    name: "iocp",
    platforms: ["win32"],
    probe: probeIocp,
    create: (options) => new IocpEventLoop(options.iocp),
  },
  {
    name: "io_uring",
    platforms: ["linux", "android"],
    probe: describeIoUring,
    create: (options) => new IoUringEventLoop(options.ioUring),
  },
  {
    name: "epoll",
    platforms: ["linux", "android"],
    probe: () => void close(epollCreate()),
    create: () => new PollingEventLoop("epoll", new EpollSelector()),
  },
  {
    // macOS and the BSDs; on Linux libkqueue, when EVLOOP_KQUEUE_LIB names it (for testing).
    name: "kqueue",
    platforms: ["darwin", "freebsd", "openbsd", "netbsd", "linux"],
    probe: () => {
      const why = kqueueUnavailable();
      if (why !== null) throw new Error(why);
      new KqueueSelector().close();
      return ffi.platform === "linux" ? "libkqueue, a userspace kqueue over epoll: for testing, not for speed" : undefined;
    },
    create: () => new PollingEventLoop("kqueue", new KqueueSelector()),
  },
  {
    name: "poll",
    platforms: POSIX,
    probe: () => void poll(new Uint8Array(0), 0, 0),
    create: () => new PollingEventLoop("poll", new PollSelector()),
  },
  {
    name: "blocking",
    platforms: [...POSIX, "win32"],
    probe: () => {
      // Windows has no C library: Winsock is what it needs, and its wake-up (a loopback UDP
      // socket pair) is made and closed to show that Winsock works.
      if (ffi.platform === "win32") openWakeup().close();
      // Elsewhere it makes no call to probe with: without a C library it is as unusable as the rest.
      else if (!libcResolution.ok) throw libcResolution.error;
      return "operations block the thread; used only when nothing else works";
    },
    create: () => new BlockingEventLoop(),
  },
];

/**
 * The result of probing one backend.
 *
 * @example
 * ```ts
 * for (const p of probeBackends()) console.log(p.name, p.available, p.reason ?? "");
 * ```
 */
export interface BackendProbe {
  readonly name: BackendName;
  readonly available: boolean;
  /** Why it is unavailable (or a note when it is). */
  readonly reason?: string;
}

/** The backends this OS could have, best first. */
export function candidates(): readonly Backend[] {
  return BACKENDS.filter((b) => b.platforms.includes(ffi.platform));
}

function why(e: unknown): string {
  return e instanceof SystemError ? `${e.syscall} failed with ${e.code}` : e instanceof Error ? e.message : String(e);
}

function probe(backend: Backend): BackendProbe {
  try {
    const note = backend.probe();
    return note === undefined ? { name: backend.name, available: true } : { name: backend.name, available: true, reason: note };
  } catch (e) {
    return { name: backend.name, available: false, reason: why(e) };
  }
}

let probes: BackendProbe[] | null = null;

/**
 * Probes every candidate backend of this OS, best first (cached after the first call).
 *
 * @example
 * ```ts
 * probeBackends(); // [{ name: "io_uring", available: false, reason: "…" }, { name: "epoll", available: true }, …]
 * ```
 */
export function probeBackends(): BackendProbe[] {
  if (!probes) {
    probes = candidates().map(probe);
    for (const p of probes) if (!p.available) debug(`backend ${p.name} unavailable: ${p.reason}`);
  }
  return probes.map((p) => ({ ...p }));
}

/**
 * The available backends, best first; the first is what `createLoop()` picks.
 *
 * @example
 * ```ts
 * availableBackends(); // ["epoll", "poll", "blocking"] on Linux without io_uring
 * ```
 */
export function availableBackends(): BackendName[] {
  return probeBackends()
    .filter((p) => p.available)
    .map((p) => p.name);
}

/**
 * The backend to use: `requested`, else EVLOOP_BACKEND, else the best available. A backend that
 * is named but unavailable is an error, never a silent fallback.
 */
export function chooseBackend(requested?: BackendName): Backend {
  const forced = requested ?? (ffi.env("EVLOOP_BACKEND") || undefined);
  const here = candidates();
  if (forced !== undefined) {
    if (!BACKEND_NAMES.includes(forced as BackendName)) {
      throw new TypeError(`unknown backend ${JSON.stringify(forced)}; expected one of ${BACKEND_NAMES.join(", ")}`);
    }
    const backend = here.find((b) => b.name === forced);
    if (!backend) {
      const where = BACKENDS.some((b) => b.name === forced) ? `does not exist on ${ffi.platform}` : "is not implemented yet";
      throw new Error(`backend ${forced} ${where} (candidates here: ${here.map((b) => b.name).join(", ")})`);
    }
    const p = probeBackends().find((x) => x.name === forced)!;
    if (!p.available) throw new Error(`backend ${forced} is unavailable: ${p.reason}`);
    return backend;
  }
  const probed = probeBackends();
  const best = probed.find((p) => p.available);
  if (!best) {
    const reasons = probed.map((p) => `${p.name}: ${p.reason}`).join("; ");
    throw new Error(`no event loop backend is available on ${ffi.platform}${reasons ? ` (${reasons})` : ""}`);
  }
  return here.find((b) => b.name === best.name)!;
}
