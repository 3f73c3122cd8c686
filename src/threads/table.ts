/**
 * The registration table of a reactor whose selector cannot be changed from another thread
 * (`table` mode: poll(2), which has no kernel object, and kqueue, whose selector keeps per-fd
 * state on its own thread). Registrators on any thread write it under a spin lock (`CTL.LOCK`),
 * bump `CTL.VERSION` and wake the reactor thread; the reactor thread copies it when the version
 * changed and applies the difference to its selector (`TableMirror`).
 *
 * Layout: a header of {@link HEADER} Int32s (slots in use, the change counter), then one entry of
 * {@link ENTRY_WORDS} per registration: fd (-1: free), interest, token low and high 32 bits, the
 * change number of its `register` and of its last change. A lookup scans the slots in use:
 * registrations are few next to the events they produce, and a change takes the lock anyway.
 *
 * Changes made between two wake-ups of the reactor coalesce: the last one wins.
 */
import { SystemError } from "../sys/errors.js";
import { ERRNO } from "../sys/target.js";
import { CTL, lock, unlock } from "./shared.js";

const HEADER = 4;
const H_USED = 0;
const H_SEQ = 1;

const ENTRY_WORDS = 6;
const E_FD = 0;
const E_INTEREST = 1;
const E_TOKEN_LO = 2;
const E_TOKEN_HI = 3;
const E_REGISTERED = 4;
const E_CHANGED = 5;

const TWO_32 = 0x1_0000_0000;

/** A registration as the reactor thread reads it. */
export interface TableEntry {
  readonly fd: number;
  readonly interest: number;
  readonly token: number;
  /** The change number of its `register`: a new one means a new registration of the fd. */
  readonly registered: number;
  /** The change number of its last `register` or `reregister`. */
  readonly changed: number;
}

/** A table for `slots` registrations. */
export function createTable(slots: number): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer((HEADER + slots * ENTRY_WORDS) * 4);
  return buffer;
}

/** The Registrator's side: register, reregister, deregister, each under the lock. */
export class TableWriter {
  readonly #ctl: Int32Array;
  readonly #t: Int32Array;
  readonly #slots: number;

  constructor(ctl: Int32Array, table: SharedArrayBuffer) {
    this.#ctl = ctl;
    this.#t = new Int32Array(table);
    this.#slots = (this.#t.length - HEADER) / ENTRY_WORDS;
  }

  register(fd: number, token: number, interest: number): void {
    this.#locked(() => {
      if (this.#find(fd) >= 0) throw new SystemError(ERRNO.EEXIST, "register", `fd ${fd} is already registered`);
      const at = this.#free();
      if (at < 0) throw new SystemError(ERRNO.ENOSPC, "register", `the reactor's registration table is full (${this.#slots} fds; Reactor.start's registrations option)`);
      const seq = this.#nextSeq();
      this.#write(at, fd, token, interest, seq);
      this.#t[at + E_REGISTERED] = seq;
    });
  }

  reregister(fd: number, token: number, interest: number): void {
    this.#locked(() => {
      const at = this.#find(fd);
      if (at < 0) throw new SystemError(ERRNO.ENOENT, "reregister", `fd ${fd} is not registered`);
      this.#write(at, fd, token, interest, this.#nextSeq());
    });
  }

  deregister(fd: number): void {
    this.#locked(() => {
      const at = this.#find(fd);
      if (at < 0) throw new SystemError(ERRNO.ENOENT, "deregister", `fd ${fd} is not registered`);
      this.#t[at + E_FD] = -1;
      this.#nextSeq();
    });
  }

  #locked(change: () => void): void {
    lock(this.#ctl, CTL.LOCK);
    try {
      change();
    } finally {
      unlock(this.#ctl, CTL.LOCK);
    }
  }

  #write(at: number, fd: number, token: number, interest: number, seq: number): void {
    const t = this.#t;
    t[at + E_INTEREST] = interest;
    t[at + E_TOKEN_LO] = token % TWO_32 | 0;
    t[at + E_TOKEN_HI] = Math.floor(token / TWO_32);
    t[at + E_CHANGED] = seq;
    t[at + E_FD] = fd;
  }

  /** A new change number, published as the table's version. */
  #nextSeq(): number {
    const seq = (this.#t[H_SEQ]! + 1) | 0;
    this.#t[H_SEQ] = seq;
    Atomics.store(this.#ctl, CTL.VERSION, seq);
    return seq;
  }

  /** The entry of `fd` (its first word's index), or -1. */
  #find(fd: number): number {
    const end = HEADER + this.#t[H_USED]! * ENTRY_WORDS;
    for (let at = HEADER; at < end; at += ENTRY_WORDS) if (this.#t[at + E_FD] === fd) return at;
    return -1;
  }

  /** A free entry, growing the range in use if none is free in it; -1 when the table is full. */
  #free(): number {
    const used = this.#t[H_USED]!;
    const end = HEADER + used * ENTRY_WORDS;
    for (let at = HEADER; at < end; at += ENTRY_WORDS) if (this.#t[at + E_FD] === -1) return at;
    if (used === this.#slots) return -1;
    this.#t[H_USED] = used + 1;
    return end;
  }
}

/** The reactor thread's side: a copy of the table, taken when its version moved. */
export function readTable(ctl: Int32Array, table: SharedArrayBuffer): TableEntry[] {
  const t = new Int32Array(table);
  const out: TableEntry[] = [];
  lock(ctl, CTL.LOCK);
  try {
    const end = HEADER + t[H_USED]! * ENTRY_WORDS;
    for (let at = HEADER; at < end; at += ENTRY_WORDS) {
      const fd = t[at + E_FD]!;
      if (fd < 0) continue;
      out.push({
        fd,
        interest: t[at + E_INTEREST]!,
        token: (t[at + E_TOKEN_LO]! >>> 0) + t[at + E_TOKEN_HI]! * TWO_32,
        registered: t[at + E_REGISTERED]!,
        changed: t[at + E_CHANGED]!,
      });
    }
  } finally {
    unlock(ctl, CTL.LOCK);
  }
  return out;
}
