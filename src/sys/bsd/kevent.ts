/**
 * The kqueue ABI, per implementation: `struct kevent`, `struct timespec`, the symbols to bind
 * and the constants. One {@link KqueueTable} per kqueue evloop can drive: macOS (`darwin.ts`),
 * FreeBSD, OpenBSD and NetBSD (their own files), and libkqueue on Linux (`libkqueue.ts`).
 * `kqueue.ts` picks the running one. What they share is here.
 *
 * The first six fields of `struct kevent` sit at the same offsets on macOS, FreeBSD, OpenBSD and
 * libkqueue (ident 0, filter 8, flags 10, fflags 12, data 16, udata 24); the struct's size (the
 * stride of a change or event list) differs: 32 bytes on macOS, OpenBSD and libkqueue, 64 on
 * FreeBSD ≥ 12 (four `ext` words). NetBSD widens filter and flags to 32 bits, so its offsets
 * differ too (and it numbers its filters from 0 up); each table states its own layout.
 */
import { struct, type StructLayout } from "../../ffi/layout.js";

/** The kqueue implementations evloop has a table for. */
export type KqueueFlavour = "libkqueue" | "darwin" | "freebsd" | "openbsd" | "netbsd";

/** The constants evloop uses, by their C names. */
export interface KqueueConstants {
  readonly EVFILT_READ: number;
  readonly EVFILT_WRITE: number;
  readonly EVFILT_VNODE: number;
  readonly EVFILT_PROC: number;
  readonly EVFILT_SIGNAL: number;
  readonly EVFILT_TIMER: number;
  /** User-triggered events: −10 on macOS and OpenBSD ≥ 7.8, −11 on FreeBSD and libkqueue, 8 on NetBSD ≥ 10; absent where the OS has none. */
  readonly EVFILT_USER?: number;
  readonly EV_ADD: number;
  readonly EV_DELETE: number;
  readonly EV_ENABLE: number;
  readonly EV_DISABLE: number;
  readonly EV_ONESHOT: number;
  readonly EV_CLEAR: number;
  readonly EV_RECEIPT: number;
  readonly EV_DISPATCH: number;
  readonly EV_ERROR: number;
  readonly EV_EOF: number;
  /** EVFILT_USER's fflags: trigger the event; keep, AND, OR or copy the user flags. */
  readonly NOTE_TRIGGER?: number;
  readonly NOTE_FFNOP?: number;
  readonly NOTE_FFAND?: number;
  readonly NOTE_FFOR?: number;
  readonly NOTE_FFCOPY?: number;
  readonly NOTE_FFLAGSMASK?: number;
  readonly NOTE_LOWAT: number;
  readonly NOTE_EXIT: number;
}

/** One kqueue implementation's ABI. */
export interface KqueueTable {
  readonly flavour: KqueueFlavour;
  /** `struct kevent`: its size is the stride of a change or event list. */
  readonly kevent: StructLayout<"ident" | "filter" | "flags" | "fflags" | "data" | "udata">;
  /** `struct timespec`, the wait's timeout. */
  readonly timespec: StructLayout<"sec" | "nsec">;
  /** The C symbols of kqueue(2) and kevent(2) (NetBSD versions kevent's: `__kevent50`, `__kevent100`). */
  readonly symbols: { readonly kqueue: string; readonly kevent: string };
  readonly K: KqueueConstants;
}

/** `struct timespec` on every LP64 system evloop has a kqueue table for: two 64-bit words. */
export const TIMESPEC = struct("struct timespec", 16, {
  sec: ["tv_sec", 0, "i64"],
  nsec: ["tv_nsec", 8, "i64"],
});

/**
 * The constants whose values 4.4BSD's kqueue fixed and that macOS, FreeBSD, OpenBSD and
 * libkqueue all keep (each table's header is cited where it is used). NetBSD keeps the EV_ and
 * NOTE_ values but not the filters' (EVFILT_READ is 0 there): its table overrides them.
 */
export const KQUEUE_COMMON = {
  EVFILT_READ: -1,
  EVFILT_WRITE: -2,
  EVFILT_VNODE: -4,
  EVFILT_PROC: -5,
  EVFILT_SIGNAL: -6,
  EVFILT_TIMER: -7,
  EV_ADD: 0x0001,
  EV_DELETE: 0x0002,
  EV_ENABLE: 0x0004,
  EV_DISABLE: 0x0008,
  EV_ONESHOT: 0x0010,
  EV_CLEAR: 0x0020,
  EV_RECEIPT: 0x0040,
  EV_DISPATCH: 0x0080,
  EV_ERROR: 0x4000,
  EV_EOF: 0x8000,
  NOTE_LOWAT: 0x0001,
  NOTE_EXIT: 0x80000000,
} as const;

/** EVFILT_USER's fflags, the same wherever the filter exists. */
export const NOTE_USER = {
  NOTE_FFNOP: 0x00000000,
  NOTE_FFAND: 0x40000000,
  NOTE_FFOR: 0x80000000,
  NOTE_FFCOPY: 0xc0000000,
  NOTE_FFLAGSMASK: 0x00ffffff,
  NOTE_TRIGGER: 0x01000000,
} as const;

/**
 * The 4.4BSD layout of `struct kevent` on LP64, with `size` bytes in all (32, or 64 with
 * FreeBSD's `ext[4]`): ident uintptr_t, filter short, flags u_short, fflags u_int, data
 * (intptr_t or int64_t), udata void *.
 */
export function bsdKevent(size: number): KqueueTable["kevent"] {
  return struct("struct kevent", size, {
    ident: ["ident", 0, "u64"],
    filter: ["filter", 8, "i16"],
    flags: ["flags", 10, "u16"],
    fflags: ["fflags", 12, "u32"],
    data: ["data", 16, "i64"],
    udata: ["udata", 24, "ptr"],
  });
}
