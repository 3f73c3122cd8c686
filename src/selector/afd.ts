/**
 * AFD selector (Windows): the readiness API (`Poll`, `Registry`, `Waker`) on a completion port,
 * the way mio and wepoll build readiness on completion.
 *
 * Windows has no readiness call for sockets that keeps state in the kernel (WSAPoll is poll(2),
 * O(sockets) per call). What it has is the AFD driver under Winsock: IOCTL_AFD_POLL, sent to a
 * handle of `\Device\Afd` for a socket's base handle (SIO_BASE_HANDLE), asks "tell me when this
 * socket reports one of these events", and the answer is a completion packet on the port that AFD
 * handle is associated with. A poll completes at once when one of its events holds already, so it
 * is level-triggered when submitted. The selector makes edges of it, as mio does: each registered
 * socket has at most one poll in flight, asking for the directions still *armed*; a direction that
 * was reported is disarmed and not polled again until `reregister` (or `rearm`) arms it, when a
 * still-ready socket is reported again at once. So portable code re-registers after an operation
 * would block, exactly as on the poll(2) selector; mio does the same inside its I/O wrappers.
 *
 * Polls are submitted lazily, at the start of `select`: `register`/`reregister` only mark the
 * socket. A change of interest while a poll is in flight cancels it (NtCancelIoFileEx); its packet
 * (whatever it says: a poll we cancelled reports nothing) submits the new one. A socket closed
 * while registered ends its poll with AFD_POLL_LOCAL_CLOSE, and is forgotten, as epoll forgets a
 * closed fd. There is no fd a host loop could poll (`fd` is -1): use `Poll` in a Worker or with
 * timeout 0. `waker(token)` posts a packet to the port (PostQueuedCompletionStatus, any thread):
 * the `iocp` WakerHandle; the wake-ups dequeued by one `select` make one event.
 *
 * Memory: each registration owns a native poll record (IO_STATUS_BLOCK and AFD_POLL_INFO, from
 * the process heap) that the kernel writes when the poll ends. Thread safety: one thread
 * registers and selects; only `wake` may be called from other threads.
 */
import { SystemError } from "../sys/errors.js";
import { ERRNO } from "../sys/target.js";
import { WIN } from "../sys/windows/constants.js";
import { AFD_POLL_RECORD_SIZE, afdPollEvents, closeAfd, openAfd, startAfdPoll } from "../sys/windows/afd.js";
import { heapFree, nativeBlock, type NativeBlock } from "../sys/windows/memory.js";
import { afdCancel, PENDING } from "../sys/windows/overlapped.js";
import { CompletionPort, postTo, type Completion } from "../sys/windows/port.js";
import { baseHandle, socketType } from "../sys/windows/socket.js";
import { Interest, Ready, readinessFrom, type Events, type ReadinessBits } from "./event.js";
import { registrationOf, type Selector, type SelectorWaker } from "./selector.js";

/** The key of the AFD handle's packets (the polls); wakers get keys above it. */
const KEY_AFD = 1;

/** How long `close` waits for the packets of the polls it cancelled. */
const CLOSE_WAIT_MS = 2000;

/** The readiness bits that are directions (the same values as {@link Interest}'s). */
const DIRECTIONS = Ready.READABLE | Ready.WRITABLE | Ready.PRIORITY;

/** Ended every poll of a socket, whatever it asked for: the connection failed, was reset, or closed. */
const ALWAYS = WIN.AFD_POLL_ABORT | WIN.AFD_POLL_CONNECT_FAIL | WIN.AFD_POLL_LOCAL_CLOSE;

/** What AFD's events mean. A reset connection (ABORT) is a hang-up both ways. */
const AFD_BITS: ReadinessBits = {
  readable: WIN.AFD_POLL_RECEIVE | WIN.AFD_POLL_ACCEPT,
  writable: WIN.AFD_POLL_SEND,
  priority: WIN.AFD_POLL_RECEIVE_EXPEDITED,
  error: WIN.AFD_POLL_CONNECT_FAIL,
  hangup: WIN.AFD_POLL_ABORT,
  readClosed: WIN.AFD_POLL_DISCONNECT,
};

/** The AFD events a poll asks for while `armed` directions are armed (0: none, no poll). */
function afdEvents(armed: number): number {
  if (armed === 0) return 0;
  let events = ALWAYS;
  if (armed & Interest.READABLE) events |= WIN.AFD_POLL_RECEIVE | WIN.AFD_POLL_ACCEPT | WIN.AFD_POLL_DISCONNECT;
  if (armed & Interest.WRITABLE) events |= WIN.AFD_POLL_SEND;
  if (armed & Interest.PRIORITY) events |= WIN.AFD_POLL_RECEIVE_EXPEDITED;
  return events;
}

interface Registration {
  readonly fd: number;
  /** The base provider's socket handle, which AFD polls. */
  readonly base: bigint;
  token: number;
  /** What the user asked for. */
  interest: number;
  /** Directions of `interest` not reported since they were last armed. */
  armed: number;
  /** The poll record; its address is the poll's context (the packet's lpOverlapped). */
  readonly record: NativeBlock;
  /** The AFD events the poll in flight asks for; 0 when none is in flight. */
  polling: number;
  /** The poll in flight was cancelled: its packet reports nothing, and submits the next. */
  cancelled: boolean;
  /** Deregistered: the record is freed when the poll's packet comes (at once if none is due). */
  gone: boolean;
}

/** Poll records whose packets never came before `close` gave up: never freed (the kernel may write them). */
const leaked: NativeBlock[] = [];

/** The AFD backend of the readiness API (Windows). */
export class AfdSelector implements Selector {
  readonly name = "afd";
  /** A completion port is not an fd: no host loop can poll it. */
  readonly fd = -1;
  readonly #port: CompletionPort;
  readonly #afd: bigint;
  /** NtCancelIoFileEx's own IO_STATUS_BLOCK, written within the call. */
  readonly #scratch: NativeBlock;
  readonly #fds = new Map<number, Registration>();
  /** Registrations with a poll in flight, by their record's address. */
  readonly #inflight = new Map<bigint, Registration>();
  /** Registrations whose next poll waits for `select` to submit it. */
  readonly #dirty = new Set<Registration>();
  /** Wakers' tokens by packet key. */
  readonly #wakers = new Map<number, number>();
  #nextKey = KEY_AFD + 1;
  readonly #got: Completion[] = [];
  /** Wakers reported by the current `select`: the wake-ups of one select make one event. */
  readonly #woken = new Set<number>();
  #closed = false;

  constructor() {
    this.#port = new CompletionPort();
    let afd = 0n;
    try {
      afd = openAfd();
      // Polls post a packet however they end: no skip-on-success for the AFD handle.
      this.#port.associate(afd, KEY_AFD, false);
      this.#scratch = nativeBlock(16);
    } catch (e) {
      if (afd !== 0n) closeAfd(afd);
      this.#port.close();
      throw e;
    }
    this.#afd = afd;
  }

  register(fd: number, token: number, interest: number): void {
    if (this.#fds.has(fd)) throw new SystemError(ERRNO.EEXIST, "register", `fd ${fd} is already registered`);
    let base: bigint;
    try {
      // getsockopt first: Wine's SIO_BASE_HANDLE answers for any number, socket or not.
      socketType(fd);
      base = baseHandle(fd);
    } catch (e) {
      if (!(e instanceof SystemError)) throw e;
      throw new SystemError(e.errno, "register", `fd ${fd} is not a socket the AFD driver can poll (${e.syscall}: ${e.code}); the afd selector polls sockets only`);
    }
    const reg: Registration = {
      fd, base, token, interest, armed: interest,
      // SAFETY: native memory; the kernel writes it only while a poll is in flight, and it is
      // freed only when no poll is (deregister, LOCAL_CLOSE, close), or never.
      record: nativeBlock(AFD_POLL_RECORD_SIZE),
      polling: 0, cancelled: false, gone: false,
    };
    this.#fds.set(fd, reg);
    this.#dirty.add(reg);
  }

  reregister(fd: number, token: number, interest: number): void {
    const reg = registrationOf(this.#fds, fd, "reregister");
    reg.token = token;
    reg.interest = interest;
    this.#arm(reg, interest);
  }

  deregister(fd: number): void {
    const reg = registrationOf(this.#fds, fd, "deregister");
    this.#forget(reg);
  }

  /** Re-arms directions of `interest` that fired; what `reregister` does, without changing the token. */
  rearm(fd: number, interest: number): void {
    const reg = this.#fds.get(fd);
    if (reg && (reg.armed & interest & reg.interest) !== (interest & reg.interest)) this.#arm(reg, reg.armed | (interest & reg.interest));
  }

  waker(token: number): SelectorWaker {
    const key = this.#nextKey++;
    this.#wakers.set(key, token);
    const handle = { kind: "iocp", port: Number(this.#port.handle), key } as const;
    return {
      handle,
      wake: () => postTo(handle.port, key),
      // Packets already posted with the key are dropped by select: the key is never reused.
      close: () => void this.#wakers.delete(key),
    };
  }

  select(events: Events, timeout: number): void {
    events.clear();
    this.#woken.clear();
    const deadline = timeout > 0 ? performance.now() + timeout : 0;
    for (;;) {
      this.#submit(events);
      const room = events.capacity - events.length;
      if (room === 0) return;
      // Round up: a sub-millisecond rest must not turn into a busy wait.
      let wait = timeout <= 0 ? timeout : Math.max(0, Math.ceil(deadline - performance.now()));
      if (events.length > 0) wait = 0;
      const got = this.#got;
      got.length = 0;
      // Each packet makes at most one event, so `room` packets cannot overflow `events`.
      this.#port.dequeue(wait, got, room);
      for (let i = 0; i < got.length; i++) this.#complete(got[i]!, events);
      got.length = 0;
      // Packets that made no event (a cancelled poll) do not end a wait that has time left.
      if (events.length > 0 || wait === 0) return;
    }
  }

  /** Cancels every poll, waits (bounded) for their packets, and closes the port and the AFD handle. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const reg of this.#fds.values()) this.#forget(reg);
    this.#wakers.clear();
    const until = performance.now() + CLOSE_WAIT_MS;
    const got = this.#got;
    while (this.#inflight.size > 0 && performance.now() < until) {
      got.length = 0;
      this.#port.dequeue(50, got);
      for (const c of got) if (c.key === KEY_AFD) this.#collect(c.overlapped);
    }
    got.length = 0;
    // SAFETY: a record whose packet did not come may still be written by the kernel: keep it.
    for (const reg of this.#inflight.values()) leaked.push(reg.record);
    this.#inflight.clear();
    closeAfd(this.#afd);
    this.#port.close();
    heapFree(this.#scratch.address);
  }

  /** Arms `armed`: submits a poll for it, or cancels the poll in flight if it asks for other events. */
  #arm(reg: Registration, armed: number): void {
    reg.armed = armed;
    if (reg.polling === 0) {
      this.#dirty.add(reg);
      return;
    }
    if (!reg.cancelled && reg.polling !== afdEvents(armed)) this.#cancel(reg);
  }

  /** Removes a registration; its record goes now, or when the packet of its cancelled poll comes. */
  #forget(reg: Registration): void {
    this.#fds.delete(reg.fd);
    this.#dirty.delete(reg);
    reg.gone = true;
    if (reg.polling !== 0) this.#cancel(reg);
    else heapFree(reg.record.address);
  }

  #cancel(reg: Registration): void {
    if (reg.cancelled) return;
    reg.cancelled = true;
    // The poll may have ended already (its packet is queued): then there is nothing to cancel,
    // and the packet, which reports it anyway, is handled like a cancelled poll's.
    afdCancel(this.#afd, reg.record.address, this.#scratch.address);
  }

  /** Starts the polls `select` owes, reporting those that fail at once (as errors, no packet). */
  #submit(events: Events): void {
    for (const reg of this.#dirty) {
      if (events.length === events.capacity) return;
      this.#dirty.delete(reg);
      const mask = afdEvents(reg.armed);
      if (reg.polling !== 0 || mask === 0) continue;
      const rc = startAfdPoll(this.#afd, reg.record.address, reg.record.view, 0, reg.base, mask);
      if (rc === PENDING) {
        reg.polling = mask;
        reg.cancelled = false;
        this.#inflight.set(reg.record.address, reg);
        continue;
      }
      // Refused (the socket's handle is no longer valid): the next I/O call says why.
      events.push(reg.token, Ready.ERROR | reg.armed);
      reg.armed = 0;
    }
  }

  /** Takes the packet of the poll whose record is at `address`; the registration, if it is still one. */
  #collect(address: bigint): Registration | null {
    const reg = this.#inflight.get(address);
    if (reg === undefined) return null;
    this.#inflight.delete(address);
    reg.polling = 0;
    if (!reg.gone) return reg;
    // SAFETY: the packet came, so the kernel is done with the record.
    heapFree(reg.record.address);
    return null;
  }

  #complete(c: Completion, events: Events): void {
    if (c.key !== KEY_AFD) {
      const token = this.#wakers.get(c.key);
      if (token !== undefined && !this.#woken.has(token)) {
        this.#woken.add(token);
        events.push(token, Ready.READABLE);
      }
      return;
    }
    const reg = this.#collect(c.overlapped);
    if (reg === null) return;
    if (reg.cancelled) {
      // Its events, if any, may be for directions no longer armed: poll again for what is.
      reg.cancelled = false;
      this.#dirty.add(reg);
      return;
    }
    if (c.status !== WIN.STATUS_SUCCESS) {
      // The poll itself failed (not cancelled by us): report an error on what was armed.
      events.push(reg.token, Ready.ERROR | reg.armed);
      reg.armed = 0;
      return;
    }
    const afd = afdPollEvents(reg.record.view, 0);
    if (afd & WIN.AFD_POLL_LOCAL_CLOSE) {
      // The socket was closed without being deregistered: forget it, as epoll does.
      this.#forget(reg);
      return;
    }
    const readiness = readinessFrom(afd, AFD_BITS);
    const broken = (readiness & (Ready.ERROR | Ready.WRITE_CLOSED)) !== 0;
    const fired = readiness & reg.armed & DIRECTIONS;
    if (fired !== 0 || broken) {
      events.push(reg.token, (readiness & ~DIRECTIONS) | fired);
      // A failed or reset connection stays so: report it once, whatever else is armed.
      reg.armed = broken ? 0 : reg.armed & ~fired;
    }
    if (reg.armed !== 0) this.#dirty.add(reg);
  }
}
