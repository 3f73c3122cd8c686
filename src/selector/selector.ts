/**
 * The contract every selector backend meets (one file each: `epoll.ts`, `poll.ts`, `kqueue.ts`,
 * `afd.ts`).
 *
 * Semantics are edge-triggered, as in mio: an event says the fd *became* ready; after it, do I/O
 * until the call reports it would block. epoll gives that natively (EPOLLET). poll(2) is
 * level-triggered, so its backend emulates edges: a direction that fired is disarmed until
 * `reregister` arms it again; so does AFD's (Windows), whose polls are level-triggered when
 * submitted. Portable code therefore calls `reregister` after a would-block
 * when it may run on the poll backend; on epoll that call is harmless.
 */
import { SystemError } from "../sys/errors.js";
import { ERRNO } from "../sys/target.js";
import type { WakerHandle } from "../sys/wakeup.js";
import type { Events } from "./event.js";
import { describeValue } from "../sys/args.js";

/** Tokens are integers from 0 to 2^48; this one is reserved for the loop's own waker. */
export const MAX_TOKEN = 2 ** 48;

/**
 * A waker a selector provides itself, with no fd of its own (kqueue's EVFILT_USER, a packet to
 * AFD's completion port): `wake()` from
 * any thread makes the next `select` report an event with the token it was made for, once per
 * batch of wakes; nothing needs draining.
 */
export interface SelectorWaker {
  /** What another thread needs to wake the selector (`wakeFromHandle`). */
  readonly handle: WakerHandle;
  wake(): void;
  /** Removes the event; handles held elsewhere stop working. Idempotent. */
  close(): void;
}

/** A selector backend. */
export interface Selector {
  /** `epoll`, `poll`, `kqueue` or `afd`. */
  readonly name: string;
  /**
   * An fd that is readable whenever `select` would report events (the epoll fd), for a host
   * event loop to poll; -1 when the backend has none (poll(2)).
   */
  readonly fd: number;
  /**
   * The fd the selector opened, when `fd` does not name it (libkqueue's kqueue, which no host can
   * poll): the loop closes it with its own fds if its thread goes away.
   */
  readonly ownFd?: number;
  register(fd: number, token: number, interest: number): void;
  reregister(fd: number, token: number, interest: number): void;
  deregister(fd: number): void;
  /** Waits up to `timeout` ms (-1: no limit, 0: do not block) and fills `events`. */
  select(events: Events, timeout: number): void;
  /**
   * For backends without an `fd`: the fds and interests a host loop must watch to know when
   * `select` would report events. `listener` is called whenever one changes (interest 0: stop).
   */
  watch?(listener: (fd: number, interest: number) => void): void;
  /**
   * For level-triggered selectors that emulate edges (poll(2)): re-arms the directions of
   * `interest` that fired, after an operation found `fd` not ready. Edge-triggered selectors
   * have none.
   */
  rearm?(fd: number, interest: number): void;
  /**
   * For selectors that can be woken without an fd (kqueue's EVFILT_USER): a waker whose events
   * carry `token`. Null (or no method) where the selector has none; then a wake-up fd registered
   * like any other fd serves.
   */
  waker?(token: number): SelectorWaker | null;
  /**
   * For selectors that consume a socket's pending error to report it (libkqueue reads SO_ERROR,
   * which clears it): the error the last event for `fd` carried, once; 0 when there is none. The
   * loop hands it to the operation that would otherwise never see it.
   */
  takeError?(fd: number): number;
  close(): void;
}

export { checkFd } from "../sys/args.js";

/** The registration of `fd`; a SystemError ENOENT naming `syscall` when `fd` has none. */
export function registrationOf<R>(registrations: ReadonlyMap<number, R>, fd: number, syscall: string): R {
  const reg = registrations.get(fd);
  if (reg === undefined) throw new SystemError(ERRNO.ENOENT, syscall, `fd ${fd} is not registered`);
  return reg;
}

/** Throws unless `token` is a valid token. */
export function checkToken(token: unknown): number {
  if (typeof token !== "number" || !Number.isInteger(token) || token < 0 || token >= MAX_TOKEN) {
    throw new TypeError(`token must be an integer from 0 to 2^48 - 1, got ${describeValue(token)}`);
  }
  return token;
}

/** Throws unless `interest` is a non-empty combination of Interest flags. */
export function checkInterest(interest: unknown): number {
  if (typeof interest !== "number" || !Number.isInteger(interest) || interest <= 0 || interest > 7) {
    throw new TypeError(`interest must be a non-empty combination of Interest flags, got ${describeValue(interest)}`);
  }
  return interest;
}
