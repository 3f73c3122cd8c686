/**
 * kqueue selector: macOS, FreeBSD, OpenBSD and NetBSD, and libkqueue on Linux (`EVLOOP_KQUEUE_LIB`).
 *
 * Each registered fd has one knote per direction (EVFILT_READ, EVFILT_WRITE), added with EV_CLEAR
 * so it is edge-triggered like epoll's EPOLLET: an event says the fd became ready, and the
 * polling loop retries until the kernel says it would block. Changes go in a `kevent()` call of
 * their own with EV_RECEIPT (`sys/bsd/kqueue.ts` says why); errors come from the receipts. A
 * change of interest deletes the knote and adds it again (libkqueue fails to re-add an existing
 * one: notes, point 2), which also makes a still-ready fd report again, the `reregister` contract.
 *
 * Two kqueues, two ways for a host loop to watch:
 * - On macOS and the BSDs the kqueue fd is readable while events are pending: `fd` is it, and a
 *   host loop polls it like the epoll fd.
 * - libkqueue's fd cannot be polled (notes, point 5): `fd` is -1, and `watch` names each
 *   registered fd and the directions armed for it, as the poll(2) selector does. The host's
 *   poller is level-triggered, so a direction that fired is disarmed for the host until `rearm`
 *   (after an operation would block) arms it again; the kqueue's own knotes are not touched.
 *
 * `waker()` is an EVFILT_USER event that any thread triggers with `kevent()`; where the table has
 * no EVFILT_USER there is none, and a wake-up fd serves instead. kqueue has no priority filter
 * shared by every implementation, so the PRIORITY interest is refused.
 *
 * Thread safety: one thread selects and registers; any thread may trigger a waker.
 */
import { dataView } from "../ffi/layout.js";
import { errnoText, SystemError } from "../sys/errors.js";
import { getKevent, isLibkqueue, kevent, keventChanges, KQ, kqueueClose, kqueueCreate, keventSize, MAX_CHANGES, setKevent, triggerUser, type KeventRecord, type KqueueTable } from "../sys/bsd/kqueue.js";
import { ERRNO } from "../sys/target.js";
import { Interest, Ready, type Events } from "./event.js";
import { registrationOf, type Selector, type SelectorWaker } from "./selector.js";

interface Registration {
  readonly fd: number;
  token: number;
  interest: number;
  /** What the host loop watches (libkqueue only): `interest` minus directions that fired. */
  armed: number;
  /** libkqueue only: the batch (`select` call) that last reported the fd (see `#recoverDropped`). */
  reported: number;
}

/** Changes one call applies at most: enough for any one operation here, and under libkqueue's 512. */
const CHANGE_SLOTS = 8;

function table(): KqueueTable {
  if (KQ === null) throw new Error("there is no kqueue on this system");
  return KQ;
}

const record = (): KeventRecord => ({ ident: 0, filter: 0, flags: 0, fflags: 0, data: 0, udata: 0 });

/** The kqueue(2) backend of the readiness API. */
export class KqueueSelector implements Selector {
  readonly name = "kqueue";
  readonly fd: number;
  readonly ownFd: number;
  readonly #kq: number;
  readonly #K = table().K;
  readonly #regs = new Map<number, Registration>();
  readonly #changes: Uint8Array;
  readonly #changeView: DataView;
  readonly #results: Uint8Array;
  readonly #resultView: DataView;
  #count = 0;
  #events: Uint8Array;
  #eventView: DataView;
  /** Events a change call returned besides its receipts (libkqueue), reported by the next select. */
  #stash: KeventRecord[] = [];
  readonly #record = record();
  #listener: ((fd: number, interest: number) => void) | null = null;
  #nextUserIdent = 1;
  /**
   * The token of each EVFILT_USER event, by ident. Not its udata: a trigger from another thread
   * (which knows no token) rewrites the udata on FreeBSD, macOS and libkqueue alike.
   */
  readonly #userTokens = new Map<number, number>();
  /**
   * libkqueue only: the socket error an event reported, by fd. libkqueue learns it with
   * getsockopt(SO_ERROR), which clears it, so a failed connect would otherwise look connected
   * and a reset connection like a clean EOF. A real kqueue reports `so_error` without clearing it.
   */
  readonly #errors: Map<number, number> | null = isLibkqueue() ? new Map() : null;
  /** libkqueue only: the directions the current batch reported, by fd (see `#recoverDropped`). */
  readonly #seen: Map<number, number> | null = isLibkqueue() ? new Map() : null;
  #batch = 0;
  /** libkqueue only: how many fds the current batch reported both directions of. */
  #pairs = 0;
  #closed = false;

  constructor(capacity = 256) {
    const size = keventSize();
    this.#kq = kqueueCreate();
    this.fd = isLibkqueue() ? -1 : this.#kq;
    this.ownFd = this.#kq;
    this.#changes = new Uint8Array(CHANGE_SLOTS * size);
    this.#changeView = dataView(this.#changes);
    this.#results = new Uint8Array(CHANGE_SLOTS * size);
    this.#resultView = dataView(this.#results);
    this.#events = new Uint8Array(Math.min(capacity, MAX_CHANGES) * size);
    this.#eventView = dataView(this.#events);
  }

  register(fd: number, token: number, interest: number): void {
    if (this.#regs.has(fd)) throw new SystemError(ERRNO.EEXIST, "register", `fd ${fd} is already registered`);
    refusePriority(interest);
    const reg: Registration = { fd, token, interest, armed: interest, reported: 0 };
    try {
      this.#add(reg);
    } catch (e) {
      // One direction may have been added before the other failed: take it back.
      this.#delete(fd, interest);
      throw e;
    }
    this.#regs.set(fd, reg);
    try {
      this.#listener?.(fd, interest);
    } catch (e) {
      // The host loop refused the fd (uv_poll_init: EBADF): the registration failed as a whole.
      this.#regs.delete(fd);
      this.#delete(fd, interest);
      throw e;
    }
  }

  reregister(fd: number, token: number, interest: number): void {
    const reg = registrationOf(this.#regs, fd, "reregister");
    refusePriority(interest);
    this.#delete(fd, reg.interest);
    reg.token = token;
    reg.interest = interest;
    try {
      this.#add(reg);
    } catch (e) {
      this.#regs.delete(fd);
      this.#delete(fd, interest);
      this.#listener?.(fd, 0);
      throw e;
    }
    this.#setArmed(reg, interest);
  }

  deregister(fd: number): void {
    const reg = registrationOf(this.#regs, fd, "deregister");
    this.#regs.delete(fd);
    this.#errors?.delete(fd);
    this.#delete(fd, reg.interest);
    this.#listener?.(fd, 0);
  }

  takeError(fd: number): number {
    const error = this.#errors?.get(fd);
    if (error === undefined) return 0;
    this.#errors!.delete(fd);
    return error;
  }

  /** Re-arms, for the host loop, directions of `interest` that fired (libkqueue's `watch`). */
  rearm(fd: number, interest: number): void {
    if (this.#listener === null) return;
    const reg = this.#regs.get(fd);
    if (reg && (reg.armed & interest) !== interest) this.#setArmed(reg, reg.armed | (interest & reg.interest));
  }

  watch(listener: (fd: number, interest: number) => void): void {
    this.#listener = listener;
    for (const [fd, reg] of this.#regs) if (reg.armed) listener(fd, reg.armed);
  }

  waker(token: number): SelectorWaker | null {
    const K = this.#K;
    if (K.EVFILT_USER === undefined || K.NOTE_TRIGGER === undefined) return null;
    const kq = this.#kq;
    const ident = this.#nextUserIdent++;
    this.#push(ident, K.EVFILT_USER, K.EV_ADD | K.EV_CLEAR, 0, 0);
    try {
      this.#apply("kevent");
    } catch {
      // A kernel older than its headers' EVFILT_USER (OpenBSD before 7.8): no waker of its own.
      return null;
    }
    this.#userTokens.set(ident, token);
    let open = true;
    return {
      handle: { kind: "kqueue", fd: kq, ident },
      wake: () => triggerUser(kq, ident),
      close: () => {
        if (!open || this.#closed) return;
        open = false;
        this.#userTokens.delete(ident);
        this.#push(ident, K.EVFILT_USER!, K.EV_DELETE, 0, 0);
        this.#apply("kevent", true);
      },
    };
  }

  select(events: Events, timeout: number): void {
    events.clear();
    const stashed = this.#stash;
    if (stashed.length > 0) {
      this.#stash = [];
      for (let i = 0; i < stashed.length; i++) {
        if (events.length === events.capacity) {
          this.#stash = stashed.slice(i);
          return;
        }
        this.#report(stashed[i]!, events);
      }
      timeout = 0;
    }
    const room = Math.min(events.capacity - events.length, MAX_CHANGES);
    if (room === 0) return;
    const size = keventSize();
    if (this.#events.byteLength < room * size) {
      this.#events = new Uint8Array(room * size);
      this.#eventView = dataView(this.#events);
    }
    const n = kevent(this.#kq, null, 0, this.#events, room, timeout);
    const seen = this.#seen;
    seen?.clear();
    this.#batch++;
    this.#pairs = 0;
    for (let i = 0; i < n; i++) this.#report(getKevent(this.#eventView, i, this.#record), events);
    if (seen !== null && n === room && this.#pairs > 0) this.#recoverDropped(seen);
  }

  /**
   * libkqueue asks epoll for as many events as the list has room for, then turns each into one
   * kevent per direction, and when the list fills it drops the rest of what epoll returned: an
   * edge-triggered fd's edge is then lost for good. That can only have happened when the list
   * came back full and some epoll event in it became two kevents (an fd both readable and
   * writable): with one kevent each, everything epoll returned fits. Then every registration with
   * a direction this batch did not report is added again, which has epoll report it again if it is ready (one still queued is reported once, as
   * before). Re-adding puts an fd at the end of epoll's ready list, so the fds reported longest
   * ago go first: otherwise fds reported a batch ago, still ready, would come back ahead of those
   * never reported and starve them. A real kqueue keeps what does not fit for the next call.
   */
  #recoverDropped(seen: Map<number, number>): void {
    const both = Interest.READABLE | Interest.WRITABLE;
    const again = [...this.#regs.values()].filter((reg) => (reg.interest & ~(seen.get(reg.fd) ?? 0) & both) !== 0);
    again.sort((a, b) => a.reported - b.reported);
    for (const reg of again) {
      this.#delete(reg.fd, reg.interest);
      this.#add(reg);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#regs.keys()) this.#listener?.(fd, 0);
    this.#regs.clear();
    kqueueClose(this.#kq);
  }

  /** Turns one kevent into an event for its token; disarms its direction for the host. */
  #report(ev: KeventRecord, events: Events): void {
    const K = this.#K;
    if (ev.flags & K.EV_ERROR) return;
    if (ev.filter === K.EVFILT_USER) {
      const token = this.#userTokens.get(ev.ident);
      if (token !== undefined) events.push(token, Ready.READABLE);
      return;
    }
    const eof = (ev.flags & K.EV_EOF) !== 0;
    // With EV_EOF, fflags holds the socket's error (ECONNRESET …), if there is one.
    let readiness = eof && ev.fflags !== 0 ? Ready.ERROR : 0;
    let fired: number;
    if (ev.filter === K.EVFILT_READ) {
      readiness |= Ready.READABLE | (eof ? Ready.READ_CLOSED : 0);
      fired = Interest.READABLE;
    } else if (ev.filter === K.EVFILT_WRITE) {
      readiness |= Ready.WRITABLE | (eof ? Ready.WRITE_CLOSED : 0);
      fired = Interest.WRITABLE;
    } else {
      return;
    }
    events.push(ev.udata, readiness);
    if (this.#seen !== null) {
      const before = this.#seen.get(ev.ident) ?? 0;
      if (before !== 0 && (before & fired) === 0) this.#pairs++;
      this.#seen.set(ev.ident, before | fired);
      const reported = this.#regs.get(ev.ident);
      if (reported) reported.reported = this.#batch;
    }
    if (readiness & Ready.ERROR && this.#errors !== null && this.#regs.has(ev.ident)) this.#errors.set(ev.ident, ev.fflags);
    const reg = this.#listener === null ? undefined : this.#regs.get(ev.ident);
    if (reg && reg.armed & fired) this.#setArmed(reg, reg.armed & ~fired);
  }

  #setArmed(reg: Registration, armed: number): void {
    if (reg.armed === armed) return;
    reg.armed = armed;
    this.#listener?.(reg.fd, armed);
  }

  /**
   * Adds the knotes of `reg`'s interest (edge-triggered). WRITE goes first: libkqueue keeps one
   * epoll registration per fd, and adding the second knote rewrites its events from the first's
   * direction plus the second's flags, so READ added after WRITE keeps EPOLLRDHUP while WRITE
   * added after READ drops it, and then a peer's FIN that arrives with data still unread is
   * reported without EV_EOF, its edge spent on that data (the other order was seen to hang a
   * transfer at its end). A real kqueue does not care about the order.
   */
  #add(reg: Registration): void {
    const K = this.#K;
    if (reg.interest & Interest.WRITABLE) this.#push(reg.fd, K.EVFILT_WRITE, K.EV_ADD | K.EV_CLEAR, 0, reg.token);
    if (reg.interest & Interest.READABLE) this.#push(reg.fd, K.EVFILT_READ, K.EV_ADD | K.EV_CLEAR, 0, reg.token);
    this.#apply("register");
  }

  /** Deletes the knotes of `interest`; one already gone (its fd closed) is no error. */
  #delete(fd: number, interest: number): void {
    const K = this.#K;
    if (interest & Interest.READABLE) this.#push(fd, K.EVFILT_READ, K.EV_DELETE, 0, 0);
    if (interest & Interest.WRITABLE) this.#push(fd, K.EVFILT_WRITE, K.EV_DELETE, 0, 0);
    this.#apply("deregister", true);
  }

  #push(ident: number, filter: number, flags: number, fflags: number, udata: number): void {
    if (this.#count === CHANGE_SLOTS) this.#apply("kevent");
    setKevent(this.#changeView, this.#count++, ident, filter, flags | this.#K.EV_RECEIPT, fflags, 0, udata);
  }

  /**
   * Applies the queued changes in a call of their own, one result slot per change, and throws the
   * first error a receipt reports (ENOENT and EBADF too unless `deleting`: a knote whose fd was
   * closed is gone already). Anything else in the results is an event libkqueue drained early,
   * kept for the next select.
   */
  #apply(syscall: string, deleting = false): void {
    const n = this.#count;
    if (n === 0) return;
    this.#count = 0;
    const K = this.#K;
    const got = keventChanges(this.#kq, this.#changes, n, this.#results);
    let error: SystemError | null = null;
    for (let i = 0; i < got; i++) {
      const r = getKevent(this.#resultView, i, record());
      if (!(r.flags & K.EV_ERROR)) {
        r.flags &= ~K.EV_RECEIPT;
        this.#stash.push(r);
        continue;
      }
      // EV_ERROR with data 0 is a receipt: the change succeeded.
      if (r.data === 0) continue;
      if (deleting && (r.data === ERRNO.ENOENT || r.data === ERRNO.EBADF)) continue;
      error ??= new SystemError(r.data, syscall, `${errnoText(r.data)} (fd ${r.ident})`);
    }
    if (error) throw error;
  }
}

function refusePriority(interest: number): void {
  if (interest & Interest.PRIORITY) {
    throw new SystemError(ERRNO.EINVAL, "register", "kqueue has no PRIORITY interest (no filter for out-of-band data on every kqueue); register READABLE instead");
  }
}
