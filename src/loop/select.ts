/**
 * Backend candidates per OS, run-time probes, and construction by name.
 *
 * Linux candidates, best first: io_uring, epoll, poll, blocking. A probe creates the backend's
 * kernel object and releases it, so a backend disabled by sysctl or seccomp shows up here with
 * the reason, not later as a failed operation.
 *
 * NOTE for src/net and src/io: `defaultLoop()` and `createLoop()` live one layer up, in
 * `src/runtime/default.ts` (they attach the guest driver); import them from there.
 */
import { ffi } from "../ffi/runtime/load.js";
import { SystemError } from "../sys/errors.js";
import { epollCreate } from "../sys/linux/epoll.js";
import { close } from "../sys/posix/fd.js";
import { poll } from "../sys/posix/poll.js";
import { EpollSelector } from "../selector/epoll.js";
import { PollSelector } from "../selector/poll.js";
import { BlockingEventLoop } from "./blocking.js";
import type { BackendName, EventLoop } from "./event-loop.js";
import { PollingEventLoop } from "./polling.js";
import { IoUringEventLoop, probeIoUring, type IoUringOptions } from "./io-uring.js";
import { debug } from "./debug.js";

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

const CANDIDATES: Record<string, BackendName[]> = {
  linux: ["io_uring", "epoll", "poll", "blocking"],
  darwin: ["kqueue", "poll", "blocking"],
  freebsd: ["kqueue", "poll", "blocking"],
  openbsd: ["kqueue", "poll", "blocking"],
  netbsd: ["kqueue", "poll", "blocking"],
  win32: ["iocp", "blocking"],
};

/** The backends this OS could have, best first. */
export function candidates(): BackendName[] {
  return CANDIDATES[ffi.platform] ?? ["poll", "blocking"];
}

function why(e: unknown): string {
  return e instanceof SystemError ? `${e.syscall} failed with ${e.code}` : e instanceof Error ? e.message : String(e);
}

function probe(name: BackendName): BackendProbe {
  try {
    switch (name) {
      case "epoll":
        close(epollCreate());
        return { name, available: true };
      case "poll":
        poll(new Uint8Array(0), 0, 0);
        return { name, available: true };
      case "blocking":
        return { name, available: true, reason: "operations block the thread; used only when nothing else works" };
      case "io_uring": {
        const p = probeIoUring();
        const multishot = [p.multishotAccept ? "accept" : "", p.multishotRecv ? "recv (on request)" : ""].filter(Boolean);
        return {
          name,
          available: true,
          reason: `kernel ${p.kernel}; multishot ${multishot.length ? multishot.join(", ") : "off"}; setup ${p.setup.join(" ")}; features ${p.features.join(" ")}`,
        };
      }
      case "kqueue":
      case "iocp":
        return { name, available: false, reason: `not implemented yet on ${ffi.platform}` };
    }
  } catch (e) {
    return { name, available: false, reason: why(e) };
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

const NAMES: readonly BackendName[] = ["io_uring", "epoll", "poll", "blocking", "kqueue", "iocp"];

/**
 * The backend to use: `requested`, else EVLOOP_BACKEND, else the best available. A backend that
 * is named but unavailable is an error, never a silent fallback.
 */
export function chooseBackend(requested?: BackendName): BackendName {
  const forced = requested ?? (ffi.env("EVLOOP_BACKEND") || undefined);
  const all = probeBackends();
  if (forced !== undefined) {
    if (!NAMES.includes(forced as BackendName)) {
      throw new TypeError(`unknown backend ${JSON.stringify(forced)}; expected one of ${NAMES.join(", ")}`);
    }
    const p = all.find((x) => x.name === forced);
    if (!p) throw new Error(`backend ${forced} does not exist on ${ffi.platform} (candidates: ${candidates().join(", ")})`);
    if (!p.available) throw new Error(`backend ${forced} is unavailable: ${p.reason}`);
    return p.name;
  }
  const best = all.find((p) => p.available);
  if (!best) throw new Error("no event loop backend is available");
  return best.name;
}

/** Creates a bare loop of the named backend (no driver attached). */
export function createBackend(name: BackendName, ioUring: IoUringOptions = {}): EventLoop & PollingOrBlocking {
  debug(`creating ${name} loop`);
  switch (name) {
    case "epoll":
      return new PollingEventLoop("epoll", new EpollSelector());
    case "poll": {
      const selector = new PollSelector();
      return new PollingEventLoop("poll", selector, { rearm: (fd, interest) => selector.rearm(fd, interest) });
    }
    case "blocking":
      return new BlockingEventLoop();
    case "io_uring":
      return new IoUringEventLoop(ioUring);
    default:
      throw new Error(`backend ${name} is not implemented`);
  }
}

/** The concrete loop classes. */
export type PollingOrBlocking = PollingEventLoop | BlockingEventLoop | IoUringEventLoop;
