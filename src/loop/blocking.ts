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
 */
import { SystemError, TimeoutError } from "../sys/errors.js";
import { C, ERRNO } from "../sys/target.js";
import { pollOne } from "../sys/posix/poll.js";
import { openWakeup, type WakeupFd } from "../sys/wakeup.js";
import type { BackendName } from "./event-loop.js";
import { attempt, pollEvents, WOULD_BLOCK_RESULT } from "./attempt.js";
import { CompletionLoop, FAST_PATH_BUDGET } from "./completion.js";
import { BufferPool } from "./lending.js";
import { FdState, Operation, Phase, SYSCALL } from "./operation.js";
import { clock } from "./timers.js";

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

  /** Runs the syscall until it does not would-block, waiting in poll(2) within the timeout. */
  #complete(op: Operation): unknown {
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
      const revents = pollOne(op.fd, events, left === Infinity ? -1 : Math.ceil(left));
      if (revents & C.POLLNVAL) throw new SystemError(ERRNO.EBADF, SYSCALL[op.kind], `fd ${op.fd} is not open`);
      if (revents !== 0) return;
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
    // Sleep in poll(2) on the wake-up fd, so interrupt() can cut the sleep short.
    if (timeout !== 0 && pollOne(this.#wakeup.fd, C.POLLIN, timeout) !== 0) this.#wakeup.drain();
  }
}
