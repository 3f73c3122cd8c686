/**
 * BlockingEventLoop: for targets with no selector (Crystal's WASI case), every operation blocks
 * the thread until it completes.
 *
 * An operation tries its syscall; if the fd would block, it waits in poll(2) on that one fd for
 * at most the operation's timeout, then retries. Nothing is ever parked, so `run` only fires
 * timers (sleeping until the next one when `blocking`, in poll(2) on the wake-up fd so that
 * `interrupt()` cuts the sleep short). Consequences users must know: while one operation waits,
 * nothing else on the thread runs — a client and a server in the same thread deadlock, and an
 * AbortSignal can only cancel an operation before it starts. It is the last resort in
 * `availableBackends()` and never chosen while another backend works.
 *
 * Like the readiness backends it keeps the fast-path budget: past FAST_PATH_BUDGET operations in
 * one iteration, an operation is parked until the next, so a transfer whose calls all succeed
 * at once still lets timers (the loop's and the host's) run.
 *
 * The host's fd (`wakeOn`, owner mode) joins every poll(2), so a Worker blocked here can still
 * be terminated: Node wakes the Worker's loop to stop it, the poll returns, and the termination
 * takes effect as soon as JavaScript runs again. Inside an operation the host cannot run until
 * the operation is done, so a host fd that stays readable (a message waiting for the Worker)
 * is left out of the poll for slices of {@link HOST_RECHECK_MS}, after each of which the thread
 * passes through JavaScript (where a termination takes effect) and looks again: no spinning.
 *
 * On Windows (`sys/nonblocking.ts`: Winsock's calls, WSAPoll, a loopback UDP socket pair as the
 * wake-up fd) a socket is blocking until told otherwise, and nothing says whether it was: the
 * loop puts each socket into non-blocking mode (FIONBIO) before its first operation and
 * remembers it until the fd is closed through the loop or `remove`d, the same contract under
 * which the readiness backends keep an fd registered. A socket closed behind the loop's back
 * and its handle number reused by a new socket would be taken for non-blocking: close what the
 * loop has used with `loop.close`, or `remove` it first. Only sockets can be waited on there;
 * any other handle is EBADF.
 */
import { SystemError, TimeoutError } from "../sys/errors.js";
import { C, ERRNO } from "../sys/target.js";
import { makeNonBlocking, poll, POLLFD_SIZE, pollRevents, setPollFd, SOCKETS_START_BLOCKING } from "../sys/nonblocking.js";
import { openWakeup, wakeupFds, type WakeupFd } from "../sys/wakeup.js";
import { dataView } from "../ffi/layout.js";
import type { BackendName } from "./event-loop.js";
import { attempt, pollEvents, WOULD_BLOCK_RESULT } from "./attempt.js";
import { CompletionLoop, FAST_PATH_BUDGET } from "./completion.js";
import { BufferPool } from "./lending.js";
import { FdState, Operation, Phase, SYSCALL } from "./operation.js";
import { clock } from "./timers.js";

/** How long an operation's wait leaves out a host fd that stayed readable (ms). */
const HOST_RECHECK_MS = 20;

/**
 * The event loop of last resort: blocking syscalls, one operation at a time.
 *
 * @example
 * ```ts
 * const loop = createLoop({ backend: "blocking", guest: false });
 * const [r, w] = Pipe.create({ loop });
 * await w.write(new Uint8Array([7]));
 * await r.read(new Uint8Array(1)); // would block the thread if the pipe were empty
 * ```
 */
export class BlockingEventLoop extends CompletionLoop {
  readonly backend: BackendName = "blocking";
  readonly #wakeup: WakeupFd;
  readonly #pool = new BufferPool();
  #budget = FAST_PATH_BUDGET;
  /** Operations held back by the budget, in the order they came: run by the next iteration. */
  #deferred: Operation[] = [];
  /** pollfd entries: the operation's fd (or the waker), then the host's fd. */
  readonly #pollfds = new Uint8Array(2 * POLLFD_SIZE);
  readonly #pollView = dataView(this.#pollfds);
  /** The host loop's fd (`wakeOn`), or -1. */
  #hostFd = -1;
  /** Until when (clock ms) an operation's wait leaves out the host fd it found readable. */
  #hostQuietUntil = 0;
  /** Sockets this loop put into non-blocking mode (where they start blocking: Windows). */
  readonly #nonBlocking = new Set<number>();

  /** @internal Use `createLoop({ backend: "blocking" })`. */
  constructor() {
    const wakeup = openWakeup();
    super(wakeup, { operation: Operation, fdState: FdState });
    this.#wakeup = wakeup;
  }

  watch(): void {
    // Nothing to watch: operations finish inside their call; timers are the driver's.
  }

  override get hasDeferred(): boolean {
    return this.#deferred.length > 0;
  }

  wakeOn(fd: number): void {
    this.#hostFd = fd;
  }

  ownFds(): number[] {
    return wakeupFds(this.#wakeup);
  }

  /** Runs the operation now, or parks it for the next iteration once the budget is spent. */
  protected begin<T>(op: Operation): Promise<T> {
    if (this.#budget > 0) {
      this.#budget--;
      try {
        return Promise.resolve(this.#complete(op) as T);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const promise = this.park<T>(op, null);
    this.armTimer(op);
    this.#deferred.push(op);
    this.changed();
    return promise;
  }

  override remove(fd: number): void {
    super.remove(fd);
    this.#nonBlocking.delete(fd);
  }

  protected override closeFd(fd: number): Promise<void> {
    this.#nonBlocking.delete(fd);
    return super.closeFd(fd);
  }

  protected override release(): void {
    this.#nonBlocking.clear();
  }

  /** Runs the syscall until it does not would-block, waiting in poll(2) within the timeout. */
  #complete(op: Operation): unknown {
    if (SOCKETS_START_BLOCKING && !this.#nonBlocking.has(op.fd)) {
      makeNonBlocking(op.fd, SYSCALL[op.kind]);
      this.#nonBlocking.add(op.fd);
    }
    for (;;) {
      const result = attempt(op, this.#pool);
      if (result !== WOULD_BLOCK_RESULT) return result;
      this.#waitReady(op);
    }
  }

  /**
   * Waits in poll(2) until `op`'s fd is ready; throws a TimeoutError once the deadline passes.
   * Only readiness leads to another try: a connect in progress must not be asked for SO_ERROR
   * (0 while still connecting) before its socket turns writable.
   */
  #waitReady(op: Operation): void {
    const events = pollEvents(op.kind);
    for (;;) {
      const left = op.deadline - clock();
      if (left <= 0) throw new TimeoutError(SYSCALL[op.kind], op.timeoutMs);
      let timeout = left === Infinity ? -1 : Math.ceil(left);
      const host = this.#hostFd >= 0 && clock() >= this.#hostQuietUntil;
      if (this.#hostFd >= 0 && !host) timeout = timeout < 0 ? HOST_RECHECK_MS : Math.min(timeout, HOST_RECHECK_MS);
      const revents = this.#poll(op.fd, events, timeout, host);
      if (revents & C.POLLNVAL) throw new SystemError(ERRNO.EBADF, SYSCALL[op.kind], `fd ${op.fd} is not open`);
      if (revents !== 0) return;
      if (host && pollRevents(this.#pollView, 1) !== 0) this.#hostQuietUntil = clock() + HOST_RECHECK_MS;
    }
  }

  protected wait(timeout: number): void {
    this.#budget = FAST_PATH_BUDGET;
    const deferred = this.#deferred;
    if (deferred.length > 0) {
      // Their turn came: run them in order (one aborted or timed out meanwhile is done already).
      this.#deferred = [];
      for (const op of deferred) {
        if (op.phase === Phase.Done) continue;
        try {
          this.settle(op, true, this.#complete(op));
        } catch (e) {
          this.settle(op, false, e);
        }
      }
      return;
    }
    // Sleep in poll(2) on the wake-up fd, so interrupt() can cut the sleep short, and on the
    // host's fd, whose turn comes when run() returns.
    if (timeout !== 0 && this.#poll(this.#wakeup.fd, C.POLLIN, timeout, this.#hostFd >= 0) !== 0) this.#wakeup.drain();
  }

  /** poll(2) on `fd` (and the host's fd when `host`): `fd`'s returned events, 0 if none. */
  #poll(fd: number, events: number, timeout: number, host: boolean): number {
    const view = this.#pollView;
    setPollFd(view, 0, fd, events);
    if (host) setPollFd(view, 1, this.#hostFd, C.POLLIN);
    return poll(this.#pollfds, host ? 2 : 1, timeout) === 0 ? 0 : pollRevents(view, 0);
  }
}
