/**
 * PollingEventLoop: the completion contract on a readiness selector (epoll, kqueue, poll).
 *
 * Design (Crystal's `Polling` base is the model): every operation first tries its syscall on the
 * non-blocking fd. Only when the kernel says it would block is the operation parked on the fd's
 * reader or writer queue; the fd is registered with the selector once, for both directions, on
 * its first park and stays registered until `close`/`remove`. When the selector reports a
 * direction ready, the queue's operations retry in FIFO order until one would block again. An
 * event is therefore only a hint: a spurious one costs a syscall that reports EAGAIN, never a
 * wrong result, which is also why a stale event for a reused fd number is harmless.
 *
 * Cancellation is exact: a parked operation is not in the kernel, so abort, timeout and close
 * just unlink it and reject (the core's default `cancel`); its buffer is never written afterwards.
 *
 * Selectors differ only in the selector and in {@link Selector.rearm}: epoll is edge-triggered
 * and needs nothing, the poll(2) selector re-arms a direction after would-block.
 */
import { SystemError } from "../sys/errors.js";
import { C, ERRNO } from "../sys/target.js";
import { socketDomain, socketType } from "../sys/posix/socket.js";
import { openWakeup, wakeupFds, type WakerHandle, type WakeupFd } from "../sys/wakeup.js";
import { Events, Interest, Ready } from "../selector/event.js";
import { MAX_TOKEN, type Selector, type SelectorWaker } from "../selector/selector.js";
import type { BackendName } from "./event-loop.js";
import { attempt, WOULD_BLOCK_RESULT } from "./attempt.js";
import { CompletionLoop, FAST_PATH_BUDGET, type LoopWaker } from "./completion.js";
import { BufferPool, type Loan } from "./lending.js";
import { FdState, isReader, Kind, Operation, type Queue, SYSCALL } from "./operation.js";

const WAKER_TOKEN = MAX_TOKEN - 1;
/** The host loop's fd (`wakeOn`). */
const HOST_TOKEN = MAX_TOKEN - 2;

/** Per-fd state: the queues, whether the selector knows the fd, what a short transfer taught. */
class PolledFd extends FdState {
  registered = false;
  /**
   * For stream sockets only: whether the fd may still have data to read / room to write. A short
   * read or write of a stream socket means it is drained / full, so the next operation parks
   * at once and waits for the selector's next edge instead of spending a syscall on EAGAIN
   * (tokio does the same). Packet fds (tun, datagrams, SEQPACKET) are excluded: a short read
   * there says nothing about the next packet. Once the selector has reported the peer's FIN or
   * an error, reads are always tried: a short read can leave the EOF itself pending, and its
   * edge has already been seen.
   */
  readonly stream: boolean;
  /**
   * Whether a short read means drained: true of TCP, not of Unix streams, where Linux ends a
   * read at a message that carried fds (SCM_RIGHTS) with more data queued behind it, whose edge
   * was already spent.
   */
  readonly shortReadDrains: boolean;
  readable = true;
  writable = true;
  readClosed = false;
  /**
   * A socket error the selector consumed while reporting it (libkqueue: `Selector.takeError`),
   * for the connect it ends or the read that would otherwise see a clean EOF; 0 when none.
   */
  error = 0;

  constructor(fd: number) {
    super(fd);
    let stream = false;
    let unix = false;
    try {
      stream = socketType(fd) === C.SOCK_STREAM;
      unix = stream && socketDomain(fd) === C.AF_UNIX;
    } catch {
      // Not a socket (pipe, char device, eventfd): always try the syscall first.
    }
    this.stream = stream;
    this.shortReadDrains = stream && !unix;
  }
}

/**
 * The loop's waker: the selector's own where it has one (kqueue's EVFILT_USER), else a wake-up fd
 * registered with the selector like any other fd. A guest loop whose selector has no fd a host
 * can poll (libkqueue: the host watches each registered fd instead) can only be woken through an
 * fd the host watches, so `useFd` trades the selector's waker for a wake-up fd there.
 */
class PollingWaker implements LoopWaker {
  readonly #selector: Selector;
  #own: SelectorWaker | null;
  #fd: WakeupFd | null = null;

  constructor(selector: Selector) {
    this.#selector = selector;
    this.#own = selector.waker?.(WAKER_TOKEN) ?? null;
    if (this.#own === null) this.useFd();
  }

  /** The wake-up fd, or null while the selector's own waker serves. */
  get wakeup(): WakeupFd | null {
    return this.#fd;
  }

  get handle(): WakerHandle {
    return (this.#own ?? this.#fd!).handle;
  }

  /** Switches to a wake-up fd registered with the selector (idempotent). */
  useFd(): void {
    if (this.#fd !== null) return;
    const wakeup = openWakeup();
    try {
      this.#selector.register(wakeup.fd, WAKER_TOKEN, Interest.READABLE);
    } catch (e) {
      wakeup.close();
      throw e;
    }
    this.#fd = wakeup;
    this.#own?.close();
    this.#own = null;
  }

  wake(): void {
    if (this.#own !== null) this.#own.wake();
    else this.#fd!.wake();
  }

  /** Consumes a wake-up: drains the fd and re-arms it (poll(2)); the selector's own needs nothing. */
  drain(): void {
    if (this.#fd === null) return;
    this.#fd.drain();
    this.#selector.rearm?.(this.#fd.fd, Interest.READABLE);
  }

  close(): void {
    this.#own?.close();
    this.#fd?.close();
  }
}

/**
 * The completion-style loop over a readiness selector (epoll, kqueue or poll). Create it with
 * `createLoop({ backend: "epoll" })`, which also attaches the driver.
 *
 * @example
 * ```ts
 * const loop = createLoop({ backend: "poll" });
 * const [r, w] = Pipe.create({ loop });
 * await loop.write(w.fd, new Uint8Array([1]));
 * await loop.waitReadable(r.fd);
 * ```
 */
export class PollingEventLoop extends CompletionLoop<Operation, PolledFd> {
  readonly backend: BackendName;
  readonly #selector: Selector;
  readonly #waker: PollingWaker;
  readonly #events = new Events(1024);
  /** Buffers for borrowed reads. */
  readonly #pool = new BufferPool();
  #budget = FAST_PATH_BUDGET;
  /** Queues holding an operation deferred by the budget: retried by the next `run`. */
  #deferred: Queue<Operation>[] = [];
  /** The host loop's fd that also ends a wait (`wakeOn`), or -1. */
  #hostFd = -1;

  /** @internal Use `createLoop({ backend })`. */
  constructor(backend: BackendName, selector: Selector) {
    let waker: PollingWaker;
    try {
      waker = new PollingWaker(selector);
    } catch (e) {
      selector.close();
      throw e;
    }
    super(waker, { operation: Operation, fdState: PolledFd });
    this.backend = backend;
    this.#selector = selector;
    this.#waker = waker;
  }

  watch(listener: (fd: number, interest: number) => void): void {
    if (this.#selector.fd >= 0) {
      listener(this.#selector.fd, Interest.READABLE);
      return;
    }
    // The host watches the registered fds themselves: only a wake-up fd can wake it.
    this.#waker.useFd();
    this.#selector.watch?.(listener);
  }

  override get hasDeferred(): boolean {
    return this.#deferred.length > 0;
  }

  wakeOn(fd: number): void {
    if (fd === this.#hostFd) return;
    this.#selector.register(fd, HOST_TOKEN, Interest.READABLE);
    if (this.#hostFd >= 0) this.#selector.deregister(this.#hostFd);
    this.#hostFd = fd;
  }

  ownFds(): number[] {
    const wakeup = this.#waker.wakeup;
    const fds = wakeup === null ? [] : wakeupFds(wakeup);
    const own = this.#selector.ownFd ?? this.#selector.fd;
    if (own >= 0) fds.push(own);
    return fds;
  }



  /** Tries the syscall once; parks the operation if it would block. */
  protected begin<T>(op: Operation): Promise<T> {
    const state = this.fds.get(op.fd);
    const queue = state?.queueOf(op.kind);
    // Operations queued before this one keep their turn: do not jump the queue. connect(2)
    // itself must always be issued now; only its completion waits.
    const known = state !== undefined && state.stream && (op.kind === Kind.Read ? !state.readable : op.kind === Kind.Write && !state.writable);
    if (op.kind === Kind.Connect || (!queue?.head && !known && this.#budget > 0)) {
      this.#budget--;
      let result: unknown;
      try {
        result = this.#attempt(op, state);
      } catch (e) {
        return Promise.reject(e);
      }
      if (result !== WOULD_BLOCK_RESULT) return Promise.resolve(result as T);
    } else if (!queue?.head && !known) {
      // Over the budget: wait for the next iteration, which retries it first.
      const promise = this.#park<T>(op);
      if (op.queue) this.#deferred.push(op.queue);
      this.changed();
      return promise;
    }
    return this.#park<T>(op);
  }

  protected wait(timeout: number): void {
    this.#budget = FAST_PATH_BUDGET;
    const deferred = this.#deferred;
    if (deferred.length > 0) {
      timeout = 0;
      this.#deferred = [];
      for (const q of deferred) {
        const head = q.head;
        if (head) this.#drain(q, isReader(head.kind) ? Interest.READABLE : Interest.WRITABLE, this.fds.get(head.fd));
      }
    }
    this.#selector.select(this.#events, timeout);
    for (const event of this.#events) {
      if (event.token === WAKER_TOKEN) {
        this.#waker.drain();
        continue;
      }
      if (event.token === HOST_TOKEN) {
        // Only the host may drain its fd, and it runs before the next wait (owner mode yields
        // to it). Re-arming now makes the registration level-triggered: epoll re-polls a queued
        // item before reporting it, so the next wait returns at once only if the host left
        // work behind, instead of never again (an edge the host's partial turn never renews).
        this.#selector.reregister(this.#hostFd, HOST_TOKEN, Interest.READABLE);
        continue;
      }
      const state = this.fds.get(event.token);
      if (!state) continue;
      if (event.readiness & (Ready.READ_CLOSED | Ready.ERROR)) state.readClosed = true;
      if (event.readiness & Ready.ERROR && this.#selector.takeError) state.error ||= this.#selector.takeError(state.fd);
      if (event.readiness & (Ready.READABLE | Ready.PRIORITY)) {
        state.readable = true;
        this.#drain(state.readers, Interest.READABLE, state);
      }
      if (event.readiness & Ready.WRITABLE) {
        state.writable = true;
        this.#drain(state.writers, Interest.WRITABLE, state);
      }
    }
  }

  protected override detach(state: PolledFd): void {
    if (!state.registered) return;
    try {
      this.#selector.deregister(state.fd);
    } catch {
      // Already closed elsewhere, or never accepted by the kernel: nothing left to forget.
    }
  }

  protected override release(): void {
    this.#selector.close();
  }

  /** Registers the fd on its first park, queues the operation and arms its timer. */
  #park<T>(op: Operation): Promise<T> {
    const state = this.stateOf(op.fd);
    if (!state.registered) {
      try {
        this.#selector.register(op.fd, op.fd, Interest.READABLE | Interest.WRITABLE);
      } catch (e) {
        if (!state.readers.head && !state.writers.head) this.fds.delete(op.fd);
        if (e instanceof SystemError && e.code === "EPERM") {
          return Promise.reject(new SystemError(ERRNO.EPERM, SYSCALL[op.kind], `fd ${op.fd} cannot be polled (a regular file?)`));
        }
        return Promise.reject(e);
      }
      state.registered = true;
    }
    const promise = this.park<T>(op, state.queueOf(op.kind));
    this.#selector.rearm?.(op.fd, isReader(op.kind) ? Interest.READABLE : Interest.WRITABLE);
    this.armTimer(op);
    this.changed();
    return promise;
  }

  /** Retries queued operations in order until one would block. */
  #drain(queue: Queue<Operation>, interest: number, state: PolledFd | undefined): void {
    for (let op = queue.head; op; op = queue.head) {
      let result: unknown;
      try {
        result = this.#attempt(op, state);
      } catch (e) {
        this.settle(op, false, e);
        continue;
      }
      if (result === WOULD_BLOCK_RESULT) {
        this.#selector.rearm?.(op.fd, interest);
        return;
      }
      this.settle(op, true, result);
    }
  }

  #takeError(state: PolledFd, op: Operation): SystemError {
    const error = new SystemError(state.error, SYSCALL[op.kind]);
    state.error = 0;
    return error;
  }

  /** One try of the syscall, noting what a short transfer on a stream says about the fd. */
  #attempt(op: Operation, state: PolledFd | undefined): unknown {
    const wanted = op.borrow > 0 ? op.borrow : op.buf?.byteLength ?? 0;
    if (state !== undefined && state.error !== 0 && op.kind === Kind.Connect && op.attempted) throw this.#takeError(state, op);
    const result = attempt(op, this.#pool);
    if (state !== undefined && state.error !== 0 && op.kind === Kind.Read && result === 0) throw this.#takeError(state, op);
    if (state?.stream) {
      if (op.kind === Kind.Read && state.shortReadDrains && !state.readClosed) {
        const n = result === WOULD_BLOCK_RESULT ? -1 : op.borrow > 0 ? (result as Loan).bytes.byteLength : (result as number);
        if (n < wanted && n !== 0) state.readable = false;
      } else if (op.kind === Kind.Write && result === WOULD_BLOCK_RESULT) {
        state.writable = false;
      }
    }
    return result;
  }
}
