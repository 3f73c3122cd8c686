/**
 * The fault-injection seam, for tests only: chosen system calls fail with chosen errors, or move
 * fewer bytes, at chosen moments, on every backend. Reached through `evloop/internal`, never
 * through the public API.
 *
 * How. `libc` (`libc.ts`), the Linux table (`linux/libc.ts`) and the kqueue library
 * (`bsd/kqueue.ts`: kevent, libkqueue's on Linux) are plain objects, and every
 * call site reads the function from them at call time. While a plan is active the seam puts
 * wrappers in place of the functions it names, and {@link FaultPlan.restore} puts the originals
 * back: when no plan is active nothing is wrapped, checked or counted, so the seam is free when
 * unused. An injected error is reported the way the C library reports one: the wrapper sets
 * errno (`ffi.setErrno`) and returns -1, so `errno()`, `call()` and every other reader of errno
 * see it as they would see the kernel's.
 *
 * io_uring performs the operations itself, in the kernel, so a plan's operation calls (`read`,
 * `write`, `accept`, `connect`, `sendto`, `recvfrom`, `sendmsg`, `recvmsg`) also apply to those
 * operations' SQEs: before publishing SQEs, the io_uring submission asks {@link sqeFaults} (null
 * unless a plan is active: one check per submission) about each, and a chosen SQE is rewritten
 * as a NOP that completes with the error (IORING_NOP_INJECT_RESULT, Linux 6.10), or has its
 * length capped. The operation's own CQE then carries the error, through the loop's real path.
 *
 * Faithfulness: an injected error means the call did nothing (no byte moved, no connection
 * taken, no fd created), as when the kernel fails it, so nothing is lost or duplicated by the
 * injection itself; `perform` first makes the real call, for the errors that come after the
 * work (EINTR from connect, whose connection goes on). A short transfer calls the real function
 * with a smaller length. An injected EAGAIN, or a short read or write, says "not ready" (or
 * "drained") of an fd that may be ready, and an edge-triggered selector (epoll) reports an fd
 * again only on its next edge; the kernel's own EAGAIN always has one coming (data, the peer's
 * FIN, room freed). So the seam supplies that edge: after such a fault it re-arms the fd in every
 * epoll set that holds it (EPOLL_CTL_MOD with the events and data it was registered with, read
 * from /proc/self/fdinfo), and epoll reports it again if it is ready, as after a real arrival.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { ffi } from "../ffi/runtime/load.js";
import { libc } from "./libc.js";
import { kernelRelease } from "./linux/io_uring.js";
import { linuxLibc } from "./linux/libc.js";
import { kqueueLibrary } from "./bsd/kqueue.js";
import { ERRNO, TARGET } from "./target.js";
import { epollCtl } from "./linux/epoll.js";
import { C as LINUX_C } from "./linux/constants.js";

/** Calls a plan can make fail: C library functions, and (on io_uring) the operations' SQEs. */
export type FaultCall =
  | "read" | "write" | "readv" | "writev" | "recv" | "send" | "recvfrom" | "sendto" | "recvmsg" | "sendmsg"
  | "accept" | "connect" | "socket" | "socketpair" | "bind" | "listen" | "shutdown" | "close" | "fcntl"
  | "getsockopt" | "setsockopt" | "getsockname" | "getpeername" | "pipe" | "pipe2" | "poll"
  | "epoll_create1" | "epoll_ctl" | "epoll_wait" | "eventfd" | "io_uring_setup" | "io_uring_enter" | "io_uring_register"
  | "kevent";

/**
 * One fault: which call, what happens to it, and when.
 *
 * @example
 * ```ts
 * // The second and third reads on `fd` fail with EINTR (retried by evloop: invisible).
 * const spec: FaultSpec = { call: "read", errno: "EINTR", fd, after: 1, times: 2 };
 * ```
 */
export interface FaultSpec {
  readonly call: FaultCall;
  /** The error to report (a name from the target's errno table, or a number). */
  readonly errno?: string | number;
  /** Instead of an error: move at most this many bytes (calls with a length: read, write, recv, send, recvfrom, sendto). */
  readonly short?: number;
  /** Make the real call first, then report `errno` (an error that comes after the work, like connect's EINTR). */
  readonly perform?: boolean;
  /** Only calls on this fd (the call's fd argument; the ring fd for io_uring_enter). */
  readonly fd?: number;
  /** Matching calls to let through before the first fault (default 0). */
  readonly after?: number;
  /** Of the matching calls after `after`, only every n-th one faults (default 1: each). */
  readonly every?: number;
  /** Faults at most this many times (default: no limit). */
  readonly times?: number;
}

/** How often one spec of a plan matched and fired. */
export interface FaultCounter {
  readonly spec: FaultSpec;
  /** Matching calls seen (whether they fired or not). */
  readonly seen: number;
  /** Calls that got the fault. */
  readonly fired: number;
}

/**
 * An active plan, from {@link injectFaults}.
 *
 * @example
 * ```ts
 * const plan = injectFaults({ call: "accept", errno: "EMFILE", times: 1 });
 * try {
 *   await listener.accept().catch((e) => e.code); // "EMFILE"
 * } finally {
 *   plan.restore();
 * }
 * ```
 */
export interface FaultPlan {
  /** One counter per spec, in the order given. */
  readonly rules: readonly FaultCounter[];
  /** Faults injected so far, over all specs. */
  readonly fired: number;
  /** Ends the plan: its specs stop firing, and functions no plan needs are unwrapped. Idempotent. */
  restore(): void;
}

/** What the io_uring submission does with one SQE (see {@link sqeFaults}). */
export type SqeFault = { readonly result: number } | { readonly maxLength: number };

/**
 * Asked by the io_uring submission about each SQE before it is published: `call` names the
 * operation (`SYSCALL` of its kind), `fd` its fd, `hasLength` whether its length can be capped.
 * Null whenever no plan is active.
 */
export let sqeFaults: ((call: string, fd: number, hasLength: boolean) => SqeFault | null) | null = null;

interface CallInfo {
  /** Index of the fd argument, or -1. */
  readonly fd: number;
  /** Index of the length argument, or -1. */
  readonly len: number;
  /** The functions to wrap, and the table they are in (the C library's unless named). */
  readonly symbols: readonly string[];
  readonly table?: "linux" | "kqueue";
  /** Also applies to io_uring operations' SQEs. */
  readonly ring?: boolean;
}

const fdOnly = (name: string): CallInfo => ({ fd: 0, len: -1, symbols: [name] });
const noFd = (name: string, table?: "linux"): CallInfo => (table === undefined ? { fd: -1, len: -1, symbols: [name] } : { fd: -1, len: -1, symbols: [name], table });
const transfer = (name: string, ring: boolean): CallInfo => ({ fd: 0, len: 2, symbols: [name], ring });

const CALLS: Record<FaultCall, CallInfo> = {
  read: transfer("read", true),
  write: transfer("write", true),
  readv: fdOnly("readv"),
  writev: fdOnly("writev"),
  recv: transfer("recv", false),
  send: transfer("send", false),
  recvfrom: transfer("recvfrom", true),
  sendto: transfer("sendto", true),
  recvmsg: { ...fdOnly("recvmsg"), ring: true },
  sendmsg: { ...fdOnly("sendmsg"), ring: true },
  accept: { fd: 0, len: -1, symbols: ["accept", "accept4"], ring: true },
  connect: { ...fdOnly("connect"), ring: true },
  socket: noFd("socket"),
  socketpair: noFd("socketpair"),
  bind: fdOnly("bind"),
  listen: fdOnly("listen"),
  shutdown: fdOnly("shutdown"),
  close: fdOnly("close"),
  fcntl: fdOnly("fcntl"),
  getsockopt: fdOnly("getsockopt"),
  setsockopt: fdOnly("setsockopt"),
  getsockname: fdOnly("getsockname"),
  getpeername: fdOnly("getpeername"),
  pipe: noFd("pipe"),
  pipe2: noFd("pipe2"),
  poll: noFd("poll"),
  epoll_create1: noFd("epoll_create1", "linux"),
  epoll_ctl: { fd: 2, len: -1, symbols: ["epoll_ctl"], table: "linux" },
  epoll_wait: { fd: 0, len: -1, symbols: ["epoll_wait"], table: "linux" },
  eventfd: noFd("eventfd", "linux"),
  // syscall(2): the first argument is the system call's number, the ring fd comes next.
  io_uring_setup: noFd("io_uring_setup", "linux"),
  io_uring_enter: { fd: 1, len: -1, symbols: ["io_uring_enter"], table: "linux" },
  io_uring_register: { fd: 1, len: -1, symbols: ["io_uring_register"], table: "linux" },
  // The fd is the kqueue's.
  kevent: { fd: 0, len: -1, symbols: ["kevent"], table: "kqueue" },
};

type NativeFunction = (...args: unknown[]) => unknown;

class Rule implements FaultCounter {
  seen = 0;
  fired = 0;
  readonly errno: number;
  readonly after: number;
  readonly every: number;
  readonly times: number;

  constructor(readonly spec: FaultSpec) {
    const info = CALLS[spec.call];
    if (info === undefined) throw new TypeError(`injectFaults: unknown call ${String(spec.call)}`);
    if ((spec.errno === undefined) === (spec.short === undefined)) throw new TypeError(`injectFaults(${spec.call}): give either errno or short`);
    if (spec.short !== undefined && (info.len < 0 || !Number.isInteger(spec.short) || spec.short < 1)) {
      throw new TypeError(`injectFaults(${spec.call}): short needs a call with a length and a whole number of bytes ≥ 1`);
    }
    if (spec.fd !== undefined && info.fd < 0) throw new TypeError(`injectFaults(${spec.call}): the call takes no fd to match`);
    this.errno = spec.errno === undefined ? 0 : errnoOf(spec.errno);
    this.after = spec.after ?? 0;
    this.every = spec.every ?? 1;
    this.times = spec.times ?? Infinity;
    for (const [name, n] of [["after", this.after], ["every", this.every - 1], ["times", this.times]] as const) {
      if (n !== Infinity && (!Number.isInteger(n) || n < 0)) throw new RangeError(`injectFaults(${spec.call}): ${name} must be a whole number`);
    }
  }

  /** Counts a call that matches, and says whether it gets the fault. */
  take(fd: number | undefined): boolean {
    if (this.spec.fd !== undefined && fd !== this.spec.fd) return false;
    const past = ++this.seen - this.after;
    if (past <= 0 || past % this.every !== 0 || this.fired >= this.times) return false;
    this.fired++;
    return true;
  }
}

function errnoOf(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value <= 0) throw new RangeError(`injectFaults: errno must be a positive integer, got ${value}`);
    return value;
  }
  const n = ERRNO[value];
  if (n === undefined) throw new TypeError(`injectFaults: ${value} is not an errno name on this target`);
  return n;
}

/** The active rules, in the order they were added. */
let active: Rule[] = [];
/** The original functions of the wrapped symbols, by table and name. */
const originals = new Map<string, { table: Record<string, unknown>; fn: unknown }>();

/** The table `info`'s functions are in; null where it cannot be loaded (kqueue without its library). */
function tableOf(info: CallInfo): Record<string, unknown> | null {
  if (info.table === "kqueue") {
    try {
      return kqueueLibrary() as unknown as Record<string, unknown>;
    } catch {
      return null;
    }
  }
  return (info.table === "linux" ? linuxLibc() : libc) as unknown as Record<string, unknown>;
}

/** The first active rule for `call` that fires on this call, if any. */
function due(call: FaultCall, fd: number | undefined): Rule | null {
  let hit: Rule | null = null;
  for (const rule of active) {
    if (rule.spec.call === call && rule.take(fd) && hit === null) hit = rule;
  }
  return hit;
}

function wrapper(call: FaultCall, info: CallInfo, real: NativeFunction): NativeFunction {
  return (...args: unknown[]): unknown => {
    const rule = due(call, info.fd >= 0 ? (args[info.fd] as number) : undefined);
    if (rule === null) return real(...args);
    if (rule.spec.short !== undefined) {
      const shortened = args.slice();
      shortened[info.len] = Math.min(Number(args[info.len]), rule.spec.short);
      const result = real(...shortened);
      if (info.fd >= 0) supplyEdge(args[info.fd] as number);
      return result;
    }
    if (rule.spec.perform) real(...args);
    if (rule.errno === ERRNO.EAGAIN && info.fd >= 0) supplyEdge(args[info.fd] as number);
    ffi.setErrno(rule.errno);
    return -1;
  };
}

/**
 * The edge a real EAGAIN (or a real short transfer) would be followed by: `fd` re-armed in each
 * epoll set that holds it, so epoll reports it again if it is ready. Read from /proc (Linux);
 * elsewhere, and for selectors that are not edge-triggered, there is nothing to do.
 */
function supplyEdge(fd: number): void {
  if (TARGET.os !== "linux") return;
  let entries: string[];
  try {
    entries = readdirSync("/proc/self/fd");
  } catch {
    return;
  }
  for (const entry of entries) {
    let target: string;
    let info: string;
    try {
      target = readlinkSync(`/proc/self/fd/${entry}`);
      if (target !== "anon_inode:[eventpoll]") continue;
      info = readFileSync(`/proc/self/fdinfo/${entry}`, "utf8");
    } catch {
      continue; // closed meanwhile
    }
    const line = new RegExp(`^tfd:\\s*${fd}\\s+events:\\s*([0-9a-f]+)\\s+data:\\s*([0-9a-f]+)`, "m").exec(info);
    if (line === null) continue;
    try {
      epollCtl(Number(entry), LINUX_C.EPOLL_CTL_MOD, fd, parseInt(line[1]!, 16), parseInt(line[2]!, 16));
    } catch {
      // The fd left the set meanwhile.
    }
  }
}

function install(): void {
  const wanted = new Set<string>();
  for (const rule of active) {
    const info = CALLS[rule.spec.call];
    for (const symbol of info.symbols) {
      const key = `${info.table ?? "libc"}:${symbol}`;
      wanted.add(key);
      if (originals.has(key)) continue;
      const table = tableOf(info);
      const fn = table?.[symbol];
      if (typeof fn !== "function") continue; // optional and missing here (accept4 on macOS)
      originals.set(key, { table: table!, fn });
      table![symbol] = wrapper(rule.spec.call, info, fn as NativeFunction);
    }
  }
  for (const [key, { table, fn }] of originals) {
    if (wanted.has(key)) continue;
    table[key.slice(key.indexOf(":") + 1)] = fn;
    originals.delete(key);
  }
  sqeFaults = active.some((r) => CALLS[r.spec.call].ring === true && r.spec.perform !== true) ? sqeFault : null;
}

function sqeFault(call: string, fd: number, hasLength: boolean): SqeFault | null {
  let hit: Rule | null = null;
  for (const rule of active) {
    const spec = rule.spec;
    // A fault that needs the real call first cannot be had from the kernel's io_uring; a short
    // transfer only where the SQE's length bounds the bytes.
    if (spec.call !== call || CALLS[spec.call].ring !== true || spec.perform === true) continue;
    if (spec.short !== undefined && !hasLength) continue;
    if (rule.take(fd) && hit === null) hit = rule;
  }
  if (hit === null) return null;
  return hit.spec.short !== undefined ? { maxLength: hit.spec.short } : { result: -hit.errno };
}

/**
 * Activates a fault plan: until `restore()`, the calls it names fail as it says. Plans may
 * overlap; each call gets the first due fault of the earliest spec. Tests only: the functions
 * are swapped process-wide (for this thread's evloop), so a test scopes its specs with `fd`
 * where other sockets share the thread, and always restores (`try`/`finally`).
 *
 * @throws {TypeError} For an unknown call, a spec with neither or both of errno and short, a
 *   short on a call without a length, or an fd on a call without one.
 *
 * @example
 * ```ts
 * import { injectFaults } from "evloop/internal";
 * const plan = injectFaults([
 *   { call: "read", short: 7, fd: stream.fd },
 *   { call: "write", errno: "EINTR", fd: stream.fd, times: 3 },
 * ]);
 * try {
 *   await stream.writeAll(data); // every byte arrives; EINTR is retried inside evloop
 * } finally {
 *   plan.restore();
 * }
 * ```
 */
export function injectFaults(specs: FaultSpec | readonly FaultSpec[]): FaultPlan {
  const rules = (Array.isArray(specs) ? specs : [specs as FaultSpec]).map((s) => new Rule(s));
  active = [...active, ...rules];
  install();
  let restored = false;
  return {
    rules,
    get fired() {
      return rules.reduce((sum, r) => sum + r.fired, 0);
    },
    restore() {
      if (restored) return;
      restored = true;
      active = active.filter((r) => !rules.includes(r));
      install();
    },
  };
}

/**
 * Whether io_uring SQEs can carry injected errors here: IORING_NOP_INJECT_RESULT needs Linux 6.10.
 * (Short transfers and every C library fault work everywhere.)
 *
 * @example
 * ```ts
 * if (!ringFaultsSupported()) t.skip("the kernel cannot inject CQE results");
 * ```
 */
export function ringFaultsSupported(): boolean {
  let release: string;
  try {
    release = kernelRelease();
  } catch {
    return false; // not Linux
  }
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (m === null) return false;
  const major = Number(m[1]);
  return major > 6 || (major === 6 && Number(m[2]) >= 10);
}
