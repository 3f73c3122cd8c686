/**
 * `Registrator`: registers fds with a reactor's selector from any thread, many at once.
 *
 * On epoll (`direct` mode) it calls epoll_ctl itself on the reactor's epoll fd: the kernel
 * serialises changes to an epoll set and a thread blocked in epoll_wait sees them at once, so
 * nothing needs waking. Elsewhere (`table` mode: poll(2), kqueue) it writes the shared
 * registration table (`table.ts`) and wakes the reactor thread, which applies the change before
 * it selects again; the checks the selector would make at once (a bad fd, kqueue's refusal of
 * PRIORITY, a double register, an unknown fd) are made here, so they throw on the calling thread.
 * There a change takes effect when the reactor thread applies it, a moment after the call
 * returns: an edge its selector reported before that still arrives, under the old token.
 *
 * Every call counts itself in `ctl[USERS]` before checking that the reactor is open, and out
 * after: the reactor thread closes its selector only once the count is 0, so a call never
 * reaches a closed (or reused) fd number.
 */
import { epollMask } from "../selector/epoll.js";
import { Interest } from "../selector/event.js";
import { checkFd, checkInterest, checkToken } from "../selector/selector.js";
import { SystemError } from "../sys/errors.js";
import { C } from "../sys/linux/constants.js";
import { epollCtl } from "../sys/linux/epoll.js";
import { isOpen } from "../sys/posix/fd.js";
import { ERRNO, TARGET } from "../sys/target.js";
import { isWakerHandle, wakeFromHandle } from "../sys/wakeup.js";
import { CTL, STATE, type RegistratorHandle } from "./shared.js";
import { TableWriter } from "./table.js";

const SELECTORS: readonly string[] = ["afd", "epoll", "kqueue", "poll"];

function isHandle(value: unknown): value is RegistratorHandle {
  if (value === null || typeof value !== "object") return false;
  const h = value as Partial<Record<keyof RegistratorHandle, unknown>>;
  return (
    h.kind === "evloop.registrator" &&
    typeof h.selector === "string" &&
    SELECTORS.includes(h.selector) &&
    (h.mode === "direct" || h.mode === "table") &&
    h.ctl instanceof SharedArrayBuffer &&
    (h.mode === "direct" ? h.table === null : h.table instanceof SharedArrayBuffer) &&
    typeof h.selectorFd === "number" &&
    isWakerHandle(h.waker)
  );
}

/**
 * Registers interest in fds with a {@link Reactor}, from any thread. Get this thread's from
 * `reactor.registrator()`; send `reactor.registratorHandle` to a Worker and build one there with
 * {@link Registrator.fromHandle}. Events are edge-triggered: one event per readiness edge;
 * `reregister` re-arms (and reports again at once if the fd is still ready).
 *
 * @example
 * ```ts
 * const reg = reactor.registrator();
 * reg.register(fd, 7, Interest.READABLE);
 * reg.reregister(fd, 7, Interest.READABLE | Interest.WRITABLE);
 * reg.deregister(fd);
 * ```
 */
export class Registrator {
  readonly #handle: RegistratorHandle;
  readonly #ctl: Int32Array;
  readonly #table: TableWriter | null;

  private constructor(handle: RegistratorHandle) {
    this.#handle = handle;
    this.#ctl = new Int32Array(handle.ctl);
    this.#table = handle.table === null ? null : new TableWriter(this.#ctl, handle.table);
  }

  /**
   * A Registrator for a handle received from another thread (`reactor.registratorHandle`).
   *
   * @example
   * ```ts
   * // in a Worker
   * parentPort.once("message", (h) => Registrator.fromHandle(h).register(fd, 1, Interest.READABLE));
   * ```
   */
  static fromHandle(handle: RegistratorHandle): Registrator {
    if (!isHandle(handle)) throw new TypeError("not a RegistratorHandle (send reactor.registratorHandle)");
    return new Registrator(handle);
  }

  /**
   * What to send to another thread (with `postMessage`) so it can register with the same reactor.
   *
   * @example
   * ```ts
   * worker.postMessage(reg.handle);
   * ```
   */
  get handle(): RegistratorHandle {
    return this.#handle;
  }

  /**
   * Whether the reactor is closed (or closing): every call then throws.
   *
   * @example
   * ```ts
   * if (!reg.closed) reg.register(fd, 1, Interest.READABLE);
   * ```
   */
  get closed(): boolean {
    return Atomics.load(this.#ctl, CTL.STATE) !== STATE.OPEN;
  }

  /**
   * Starts reporting `interest` events for `fd` under `token` (an integer from 0 to 2^48 − 1).
   * Throws a SystemError EEXIST if `fd` is registered already, EBADF if it is not open.
   *
   * @example
   * ```ts
   * reg.register(socketFd, 42, Interest.READABLE | Interest.WRITABLE);
   * ```
   */
  register(fd: number, token: number, interest: Interest): void {
    this.#change("register", checkFd(fd), checkToken(token), checkInterest(interest));
  }

  /**
   * Changes the token or interest of a registered fd and re-arms it: an fd still ready for
   * `interest` is reported again. Throws a SystemError ENOENT if `fd` is not registered.
   *
   * @example
   * ```ts
   * reg.reregister(socketFd, 42, Interest.READABLE); // after reading until EAGAIN
   * ```
   */
  reregister(fd: number, token: number, interest: Interest): void {
    this.#change("reregister", checkFd(fd), checkToken(token), checkInterest(interest));
  }

  /**
   * Stops reporting events for `fd`; do it before closing the fd. Events already on their way
   * to the owning thread may still arrive (on poll and kqueue also one the reactor thread saw
   * before it applied the change). Throws a SystemError ENOENT if `fd` is not registered.
   *
   * @example
   * ```ts
   * reg.deregister(socketFd);
   * ```
   */
  deregister(fd: number): void {
    this.#change("deregister", checkFd(fd), 0, 0);
  }

  #change(op: "register" | "reregister" | "deregister", fd: number, token: number, interest: number): void {
    const ctl = this.#ctl;
    Atomics.add(ctl, CTL.USERS, 1);
    try {
      if (Atomics.load(ctl, CTL.STATE) !== STATE.OPEN) throw new SystemError(ERRNO.EBADF, op, "the reactor is closed");
      if (this.#table === null) this.#direct(op, fd, token, interest);
      else this.#viaTable(this.#table, op, fd, token, interest);
    } finally {
      if (Atomics.sub(ctl, CTL.USERS, 1) === 1) Atomics.notify(ctl, CTL.USERS);
    }
  }

  /** epoll: the change itself, on this thread. */
  #direct(op: "register" | "reregister" | "deregister", fd: number, token: number, interest: number): void {
    const epfd = this.#handle.selectorFd;
    if (op === "deregister") epollCtl(epfd, C.EPOLL_CTL_DEL, fd, 0, 0);
    else epollCtl(epfd, op === "register" ? C.EPOLL_CTL_ADD : C.EPOLL_CTL_MOD, fd, epollMask(interest), token);
  }

  /** poll(2), kqueue: the change into the table, and a wake-up for the reactor thread. */
  #viaTable(table: TableWriter, op: "register" | "reregister" | "deregister", fd: number, token: number, interest: number): void {
    if (op === "deregister") {
      table.deregister(fd);
    } else {
      // Windows has no fcntl; there a bad socket is reported by the reactor as an error event.
      if (TARGET.os !== "win32" && !isOpen(fd)) throw new SystemError(ERRNO.EBADF, op, `fd ${fd} is not open`);
      if (this.#handle.selector === "kqueue" && interest & Interest.PRIORITY) {
        throw new SystemError(ERRNO.EINVAL, op, "kqueue has no PRIORITY interest (no filter for out-of-band data on every kqueue); register READABLE instead");
      }
      if (op === "register") table.register(fd, token, interest);
      else table.reregister(fd, token, interest);
    }
    wakeFromHandle(this.#handle.waker);
  }
}
