/**
 * poll(2) selector: the portable fallback where no better selector exists, or when forced with
 * EVLOOP_BACKEND=poll.
 *
 * poll(2) keeps no kernel state, so registrations live in a JS table beside a pollfd array with
 * one slot per registered fd, updated in place: arming or disarming a direction rewrites one
 * slot, and a disarmed fd's slot holds -1, which poll(2) skips. Each select still costs
 * O(registered fds) in the kernel: the benchmark of cost per ready event shows it. poll is level-triggered; edges are emulated (see
 * `selector.ts`): a direction that fired is disarmed until `reregister` arms it again, so a
 * ready-but-idle socket never spins the loop. Thread safety: one thread selects.
 */
import { C, ERRNO } from "../sys/target.js";
import { poll, pollRevents, setPollFd, POLLFD_SIZE, POLL_READABLE, POLL_READ_CLOSED, POLL_WRITABLE } from "../sys/posix/poll.js";
import { SystemError } from "../sys/errors.js";
import { dataView } from "../ffi/layout.js";
import { Interest, Ready, readinessFrom, type Events, type ReadinessBits } from "./event.js";
import { registrationOf, type Selector } from "./selector.js";

interface Registration {
  fd: number;
  /** Index of this fd's entry in the pollfd array. */
  slot: number;
  token: number;
  /** What the user asked for. */
  interest: number;
  /** What is currently armed: `interest` minus directions that fired since the last arm. */
  armed: number;
}

// POLLPRI is the PRIORITY interest here, so READABLE asks for the rest of POLL_READABLE.
const READ_EVENTS = POLL_READABLE & ~C.POLLPRI;

function pollMask(interest: number): number {
  let mask = 0;
  if (interest & Interest.READABLE) mask |= READ_EVENTS;
  if (interest & Interest.WRITABLE) mask |= POLL_WRITABLE;
  if (interest & Interest.PRIORITY) mask |= C.POLLPRI;
  return mask;
}

/** What poll(2)'s revents bits mean. */
const POLL_BITS: ReadinessBits = {
  readable: READ_EVENTS,
  writable: POLL_WRITABLE,
  priority: C.POLLPRI,
  error: C.POLLERR,
  hangup: C.POLLHUP,
  readClosed: POLL_READ_CLOSED,
};

/** The poll(2) backend of the readiness API. */
export class PollSelector implements Selector {
  readonly name = "poll";
  readonly fd = -1;
  #fds = new Map<number, Registration>();
  /** Registrations by pollfd slot: slot i of the array belongs to #slots[i]. */
  #slots: Registration[] = [];
  #buf = new Uint8Array(64 * POLLFD_SIZE);
  #view = dataView(this.#buf);
  #listener: ((fd: number, interest: number) => void) | null = null;

  register(fd: number, token: number, interest: number): void {
    if (this.#fds.has(fd)) throw new SystemError(ERRNO.EEXIST, "register", `fd ${fd} is already registered`);
    const reg: Registration = { fd, slot: this.#slots.length, token, interest, armed: interest };
    if (this.#buf.byteLength < (reg.slot + 1) * POLLFD_SIZE) {
      const grown = new Uint8Array(this.#buf.byteLength * 2);
      grown.set(this.#buf);
      this.#buf = grown;
      this.#view = dataView(grown);
    }
    this.#fds.set(fd, reg);
    this.#slots.push(reg);
    this.#write(reg);
    try {
      this.#listener?.(fd, interest);
    } catch (e) {
      // The host loop refused the fd (uv_poll_init: EBADF): the registration failed as a whole.
      this.#forget(reg);
      throw e;
    }
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
    this.#listener?.(fd, 0);
  }

  /** Re-arms directions of `interest` that fired; cheaper than reregister for the event loop. */
  rearm(fd: number, interest: number): void {
    const reg = this.#fds.get(fd);
    if (reg && (reg.armed & interest) !== interest) this.#arm(reg, reg.armed | (interest & reg.interest));
  }

  #arm(reg: Registration, armed: number): void {
    if (reg.armed === armed) return;
    reg.armed = armed;
    this.#write(reg);
    this.#listener?.(reg.fd, armed);
  }

  /** Writes a registration's pollfd slot; a negative fd makes poll(2) skip a disarmed entry. */
  #write(reg: Registration): void {
    setPollFd(this.#view, reg.slot, reg.armed === 0 ? -1 : reg.fd, pollMask(reg.armed));
  }

  /** Removes a registration, moving the last slot into its place. */
  #forget(reg: Registration): void {
    this.#fds.delete(reg.fd);
    const last = this.#slots.pop()!;
    if (last !== reg) {
      last.slot = reg.slot;
      this.#slots[reg.slot] = last;
      this.#write(last);
    }
  }

  watch(listener: (fd: number, interest: number) => void): void {
    this.#listener = listener;
    for (const [fd, reg] of this.#fds) if (reg.armed) listener(fd, reg.armed);
  }

  select(events: Events, timeout: number): void {
    events.clear();
    const count = this.#slots.length;
    let ready = poll(this.#buf, count, timeout);
    // Walk backwards: forgetting a POLLNVAL entry moves the last slot, which was already seen.
    for (let i = count - 1; i >= 0 && ready > 0; i--) {
      const revents = pollRevents(this.#view, i);
      if (revents === 0) continue;
      ready--;
      const reg = this.#slots[i]!;
      if (revents & C.POLLNVAL) {
        // The fd was closed without being deregistered: forget it, as epoll does.
        this.#forget(reg);
        this.#listener?.(reg.fd, 0);
        continue;
      }
      const readiness = readinessFrom(revents, POLL_BITS);
      if (!events.push(reg.token, readiness)) break;
      let fired = 0;
      if (readiness & Ready.READABLE) fired |= Interest.READABLE;
      if (readiness & Ready.WRITABLE) fired |= Interest.WRITABLE;
      if (readiness & Ready.PRIORITY) fired |= Interest.PRIORITY;
      this.#arm(reg, reg.armed & ~fired);
    }
  }

  close(): void {
    for (const fd of this.#fds.keys()) this.#listener?.(fd, 0);
    this.#fds.clear();
    this.#slots = [];
  }
}
