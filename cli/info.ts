/**
 * `evloop info`: what evloop can use on this machine and which backend it would pick.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import { probeBackends, type BackendName, type BackendProbe } from "evloop";
import { chosenBackend, hostLoopAvailable, runtime } from "evloop/internal";
import { renderTable } from "../bench/src/format.js";
import { parseOptions } from "./args.js";
import { packageVersion } from "./version.js";

export const usage = `usage: evloop info [--json]

Prints the runtime, FFI, platform and kernel, whether guest mode (evloop inside Node's event
loop) is available, and every backend of this OS with why it is or is not available. The
default backend honours EVLOOP_BACKEND. Exits with 1 when no backend can be used.

  --json   print the same as one JSON object`;

/** Everything `evloop info` reports. */
export interface Info {
  readonly evloop: string;
  readonly runtime: { readonly name: string; readonly version: string };
  readonly ffi: string;
  readonly platform: string;
  readonly arch: string;
  readonly kernel: string;
  readonly libc: string;
  readonly waker: string;
  readonly guestMode: boolean;
  readonly backends: readonly BackendProbe[];
  /** The backend `createLoop()` would use, or null with the reason in `defaultError`. */
  readonly defaultBackend: BackendName | null;
  /** EVLOOP_BACKEND when set. */
  readonly forcedBackend: string | null;
  readonly defaultError: string | null;
}

/**
 * The kernel release; /proc has it without a syscall on Linux, os.release() elsewhere (Windows'
 * version there, e.g. 10.0.19045: under Wine, /proc would be the Linux host's, read through Z:).
 */
function kernelRelease(): string {
  if (runtime.platform !== "linux") return os.release();
  try {
    return readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    return os.release();
  }
}

/** Windows has no C library for evloop, and its wake-up fd is a socket pair: said in full. */
const WINDOWS_SYSTEM = "none: Windows, where evloop calls Winsock 2.2 (ws2_32), kernel32 and ntdll";
const WINDOWS_WAKER = "socket: a loopback UDP pair (blocking); iocp posts to its completion port instead";

/** Gathers the report. Probing creates and closes each backend's kernel object. */
export function collectInfo(): Info {
  let defaultBackend: BackendName | null = null;
  let defaultError: string | null = null;
  try {
    defaultBackend = chosenBackend();
  } catch (e) {
    defaultError = e instanceof Error ? e.message : String(e);
  }
  return {
    evloop: packageVersion(),
    runtime: { name: runtime.name, version: runtime.version },
    ffi: runtime.ffi,
    platform: runtime.platform,
    arch: runtime.arch,
    kernel: kernelRelease(),
    libc: runtime.platform === "win32" ? WINDOWS_SYSTEM : runtime.libc,
    waker: runtime.platform === "win32" ? WINDOWS_WAKER : runtime.waker,
    guestMode: hostLoopAvailable(),
    backends: probeBackends(),
    defaultBackend,
    forcedBackend: process.env.EVLOOP_BACKEND || null,
    defaultError,
  };
}

/** The human-readable report. */
export function formatInfo(info: Info): string {
  const forced = info.forcedBackend === null ? "" : ` (EVLOOP_BACKEND=${info.forcedBackend})`;
  const chosen = info.defaultBackend ?? `none: ${info.defaultError ?? "no backend is available"}`;
  // The first fact, evloop's version, doubles as the table's header row.
  const facts = renderTable(
    [{ title: "evloop" }, { title: info.evloop }],
    [
      ["runtime", `${info.runtime.name} ${info.runtime.version}`],
      ["ffi", info.ffi],
      ["platform", `${info.platform} ${info.arch}`],
      ["kernel", info.kernel],
      ["libc", info.libc],
      ["waker", info.waker],
      ["guest mode", info.guestMode ? "available (driven by Node's libuv loop)" : "unavailable (needs Node's main thread; use runMain)"],
      ["default", `${chosen}${forced}`],
    ],
  );
  const backends = renderTable(
    [{ title: "  backend" }, { title: "available" }, { title: "note" }],
    info.backends.map((b) => [`${b.name === info.defaultBackend ? "*" : " "} ${b.name}`, b.available ? "yes" : "no", b.reason ?? ""]),
  );
  return `${facts}\n\n${backends}`;
}

/** Runs `evloop info`; returns the exit code. */
export function runInfo(argv: readonly string[]): number {
  const { values } = parseOptions({ args: [...argv], options: { json: { type: "boolean" } }, allowPositionals: false });
  const info = collectInfo();
  console.log(values.json ? JSON.stringify(info, null, 2) : formatInfo(info));
  return info.defaultBackend === null ? 1 : 0;
}
