/**
 * kqueue(2) and kevent(2): the running system's kqueue, its table, and the `struct kevent` codec.
 *
 * Where they come from: the C library on macOS and the BSDs; on Linux, libkqueue (a userspace
 * kqueue over epoll) from the path in `EVLOOP_KQUEUE_LIB`, so the kqueue backend can be tested
 * there. Nothing loads at import: the first call binds the library, and where there is none every
 * call throws the reason (`kqueueUnavailable()` says it without throwing, for a backend's probe).
 *
 * Changes are applied in a `kevent()` call of their own, with EV_RECEIPT on every change and one
 * result slot per change, at most {@link MAX_CHANGES} at a time. That is the one way that behaves
 * the same on macOS, the BSDs and libkqueue: with EV_RECEIPT a real kqueue returns only receipts,
 * while libkqueue also drains pending events into spare slots and, with spare room and nothing
 * pending, drops the receipts it wrote (../shared/notes/kqueue.md, point 1); libkqueue refuses
 * more than 512 changes or events per call, after applying part of them (point 3).
 *
 * Thread safety: each thread has its own scratch buffers (its own module instance); a kqueue fd
 * may be handed to another thread, which may trigger an EVFILT_USER event on it
 * ({@link triggerUser}).
 */
import { ffi } from "../../ffi/runtime/load.js";
import { dataView, getField, setField } from "../../ffi/layout.js";
import type { BoundLibrary } from "../../ffi/types.js";
import { call, waited } from "../errors.js";
import { libcResolution } from "../libc.js";
import { keepLoaded } from "../linux/dl.js";
import { close, setCloseOnExec } from "../posix/fd.js";
import { TARGET } from "../target.js";
import type { KqueueTable } from "./kevent.js";
import { KQUEUE as LIBKQUEUE } from "./libkqueue.js";
import { KQUEUE as DARWIN } from "./darwin.js";
import { KQUEUE as FREEBSD } from "./freebsd.js";
import { KQUEUE as OPENBSD } from "./openbsd.js";
import { KQUEUE as NETBSD } from "./netbsd.js";

export type { KqueueConstants, KqueueFlavour, KqueueTable } from "./kevent.js";

/** The environment variable naming libkqueue's shared library on Linux. */
export const KQUEUE_LIB_ENV = "EVLOOP_KQUEUE_LIB";

/** The most changes (or events) one kevent() call is given: libkqueue's limit (point 3 of the notes). */
export const MAX_CHANGES = 512;

const TABLES: Readonly<Record<string, KqueueTable>> = {
  linux: LIBKQUEUE,
  darwin: DARWIN,
  freebsd: FREEBSD,
  openbsd: OPENBSD,
  netbsd: NETBSD,
};

/** The running system's kqueue table (libkqueue's on Linux); null where there is no kqueue. */
export const KQ: KqueueTable | null = TABLES[TARGET.os] ?? null;

/** The table in use; throws where there is none (only reached after the library loaded). */
function table(): KqueueTable {
  if (KQ === null) throw new Error(`there is no kqueue on ${TARGET.os}`);
  return KQ;
}

function symbols(t: KqueueTable) {
  return {
    // int kqueue(void)
    kqueue: { result: "i32", params: [], symbol: t.symbols.kqueue },
    // int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
    //            int nevents, const struct timespec *timeout)
    kevent: { result: "i32", params: ["i32", "buffer", "i32", "buffer", "i32", "buffer"], symbol: t.symbols.kevent },
    // void libkqueue_drain_pending_close(void) — libkqueue only: frees, before it returns, every
    // kqueue whose fd was closed (its monitoring thread would do it a moment later).
    drainPendingClose: { result: "void", params: [], symbol: "libkqueue_drain_pending_close", optional: true },
  } as const;
}

type KqueueLibrary = BoundLibrary<ReturnType<typeof symbols>>;

let library: KqueueLibrary | null = null;
let failure: Error | null = null;

/** Where kqueue comes from here: a path, or the reason there is none. */
function source(): { path: string } | { error: string } {
  if (KQ === null) return { error: `${TARGET.os} has no kqueue` };
  if (TARGET.unsupported !== null) return { error: TARGET.unsupported };
  if (TARGET.os !== "linux") {
    // kqueue and kevent are the C library's there.
    return libcResolution.ok ? { path: libcResolution.path } : { error: libcResolution.error.message };
  }
  const path = ffi.env(KQUEUE_LIB_ENV);
  if (path === undefined || path === "") {
    return {
      error: `Linux has no kqueue; set ${KQUEUE_LIB_ENV} to the path of libkqueue.so (a userspace kqueue; ../shared/tools/build-libkqueue.sh builds one) to test the kqueue backend`,
    };
  }
  return { path };
}

/** The bound library (its functions are looked up at call time: the fault seam may wrap them). */
export function kqueueLibrary(): KqueueLibrary {
  return load();
}

function load(): KqueueLibrary {
  if (library !== null) return library;
  if (failure !== null) throw failure;
  const where = source();
  if ("error" in where) {
    failure = new Error(where.error);
    throw failure;
  }
  try {
    // libkqueue runs a thread of its own: it must stay mapped until the process is gone.
    if (TARGET.os === "linux") keepLoaded(where.path);
    library = ffi.open(where.path, symbols(table()));
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    failure = new Error(`kqueue could not be loaded from ${where.path}: ${why}`, { cause: e });
    throw failure;
  }
  return library;
}

/** Why kqueue cannot be used here, or null when its library loads. Never throws. */
export function kqueueUnavailable(): string | null {
  try {
    load();
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Whether the kqueue in use is libkqueue (Linux), whose fd no other poller can watch (point 5). */
export function isLibkqueue(): boolean {
  return KQ?.flavour === "libkqueue";
}

/** kqueue(2), close-on-exec. */
export function kqueueCreate(): number {
  const kq = call("kqueue", false, load().kqueue);
  try {
    setCloseOnExec(kq);
  } catch (e) {
    close(kq);
    throw e;
  }
  return kq;
}

/**
 * Closes a kqueue. libkqueue notices the close on its monitoring thread and frees what it holds
 * for the kqueue (an epoll fd, a pipe, eventfds) some time later; it is asked to do that now, so
 * a closed kqueue leaves no fd behind when this returns.
 */
export function kqueueClose(kq: number): void {
  close(kq);
  load().drainPendingClose?.();
}

/** Bytes per `struct kevent` here (the stride of change and event lists). */
export function keventSize(): number {
  return table().kevent.size;
}

/** A zero `struct timespec` (all zero bytes on every table). */
const ZERO_TIMESPEC = new Uint8Array(16);
const timespecBuf = new Uint8Array(16);
const timespecView = dataView(timespecBuf);

/**
 * kevent(2) for changes alone, with EV_RECEIPT and one result slot per change: it does not wait,
 * so an EINTR means the call did nothing, and it is made again. Returns the results' count.
 */
export function keventChanges(kq: number, changes: Uint8Array, nchanges: number, results: Uint8Array): number {
  // SAFETY: as in kevent() below; the lists live only during the call.
  return call("kevent", false, load().kevent, kq, changes, nchanges, results, nchanges, ZERO_TIMESPEC);
}

/**
 * kevent(2): applies `nchanges` changes from `changes` and returns up to `nevents` events in
 * `events`, waiting up to `timeoutMs` ms (-1: no limit). Returns the count; 0 when interrupted.
 */
export function kevent(
  kq: number,
  changes: Uint8Array | null,
  nchanges: number,
  events: Uint8Array | null,
  nevents: number,
  timeoutMs: number,
): number {
  let timeout: Uint8Array | null = null;
  if (timeoutMs >= 0) {
    const ts = table().timespec.fields;
    setField(timespecView, 0, ts.sec, BigInt(Math.floor(timeoutMs / 1000)));
    setField(timespecView, 0, ts.nsec, BigInt((timeoutMs % 1000) * 1_000_000));
    timeout = timespecBuf;
  }
  // SAFETY: every buffer is read or written only during the call; the kernel (or libkqueue) keeps
  // no pointer into them. A kevent's udata is a number evloop chose (a token), never an address.
  return waited(load().kevent(kq, changes, nchanges, events, nevents, timeout), "kevent");
}

/** One `struct kevent`, decoded (udata as the token number it carries). */
export interface KeventRecord {
  ident: number;
  filter: number;
  flags: number;
  fflags: number;
  data: number;
  udata: number;
}

/** Writes entry `i` of a kevent list. */
export function setKevent(view: DataView, i: number, ident: number, filter: number, flags: number, fflags: number, data: number, udata: number): void {
  const layout = table().kevent;
  const base = i * layout.size;
  const f = layout.fields;
  // The list is reused: clear the entry first, so FreeBSD's ext words and padding are zero.
  for (let at = base; at < base + layout.size; at += 8) view.setBigUint64(at, 0n, true);
  setField(view, base, f.ident, BigInt(ident));
  setField(view, base, f.filter, filter);
  setField(view, base, f.flags, flags);
  setField(view, base, f.fflags, fflags >>> 0);
  setField(view, base, f.data, BigInt(data));
  setField(view, base, f.udata, BigInt(udata));
}

/** Reads entry `i` of a kevent list into `out`. */
export function getKevent(view: DataView, i: number, out: KeventRecord): KeventRecord {
  const layout = table().kevent;
  const base = i * layout.size;
  const f = layout.fields;
  out.ident = Number(getField(view, base, f.ident));
  out.filter = Number(getField(view, base, f.filter));
  out.flags = Number(getField(view, base, f.flags));
  out.fflags = Number(getField(view, base, f.fflags));
  out.data = Number(getField(view, base, f.data));
  out.udata = Number(getField(view, base, f.udata));
  return out;
}

const userBuf = new Uint8Array(64);
const userView = dataView(userBuf);

/**
 * Triggers the EVFILT_USER event `ident` of kqueue `kq`, from any thread (the waker's `wake()`).
 * A kqueue that is gone, or an event no longer registered, is ignored: the waker it belonged to
 * was closed, and a wake-up for nobody is not an error.
 */
export function triggerUser(kq: number, ident: number): void {
  const K = table().K;
  if (K.EVFILT_USER === undefined || K.NOTE_TRIGGER === undefined) throw new Error(`${table().flavour} has no EVFILT_USER`);
  setKevent(userView, 0, ident, K.EVFILT_USER, 0, K.NOTE_TRIGGER, 0, 0);
  load().kevent(kq, userBuf, 1, null, 0, null);
}
