/**
 * `Reactor`: a readiness selector on a thread of its own (the reactor pattern of "Epoll, Kqueue
 * and IOCP Explained", mio's shape). The reactor thread (`reactor-worker.ts`) blocks in the
 * kernel; Registrators on any thread register fds with it (`registrator.ts`); the ready events
 * reach the thread that started the reactor through a SharedArrayBuffer ring (`ring.ts`),
 * consumed as an async iterable, with no message per event.
 *
 * The owner never blocks: when the ring is empty it waits with `Atomics.waitAsync` on the ring's
 * tail (a MessagePort message where the runtime has no waitAsync), armed only while someone
 * awaits an event, and the reactor thread wakes it once per batch, only when it said it waits.
 * When the ring is full the reactor thread waits for the owner to take events (backpressure):
 * no event is lost, and readiness that arises meanwhile stays in the kernel.
 *
 * Edge semantics are the selectors' (mio's): one event per readiness edge; after an event, do
 * I/O until it would block, or `reregister` to be told again (which reports at once an fd that
 * is still ready). On poll(2) a direction that fired stays disarmed until `reregister`, so
 * portable code re-registers after every event it handles.
 *
 * Keep-alive: the reactor keeps the process alive only while an event is awaited (like a
 * pending read); the process's exit stops the reactor thread, which cannot be terminated while
 * it is blocked in the kernel.
 */
import { fileURLToPath } from "node:url";
import { MessageChannel, Worker } from "node:worker_threads";
import { ffi } from "../ffi/runtime/load.js";
import { Event } from "../selector/event.js";
import type { SelectorName } from "../selector/registry.js";
import { SystemError } from "../sys/errors.js";
import { TARGET } from "../sys/target.js";
import { wakeFromHandle } from "../sys/wakeup.js";
import { Registrator } from "./registrator.js";
import { RingConsumer, ringBytes } from "./ring.js";
import { CTL, CTL_WORDS, STATE, type OwnerWake, type ReactorData, type ReactorHello, type RegistratorHandle } from "./shared.js";
import { createTable } from "./table.js";
import { describeValue } from "../sys/args.js";

/** ES2024's Atomics.waitAsync (the project's lib is ES2022; Node ≥ 16 and Deno have it). */
interface AtomicsWaitAsync {
  waitAsync?(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}
const waitAsync = (Atomics as unknown as AtomicsWaitAsync).waitAsync?.bind(Atomics);

/**
 * Options of {@link Reactor.start}.
 *
 * @example
 * ```ts
 * const reactor = await Reactor.start({ capacity: 4096, selector: "poll" });
 * ```
 */
export interface ReactorOptions {
  /** Events the ring between the threads holds (default 1024, at most 2^20). */
  capacity?: number;
  /** The selector: epoll, kqueue, poll (or afd on Windows); by default the platform's best. */
  selector?: SelectorName;
  /** Selectors other than epoll: how many fds may be registered at once (default 4096). */
  registrations?: number;
}

/**
 * How the reactor thread wakes this one: `EVLOOP_REACTOR_WAKE` (`atomics` or `message`, for
 * benchmarks and tests), else `atomics` where the runtime has `Atomics.waitAsync`.
 */
function ownerWake(): OwnerWake {
  const asked = ffi.env("EVLOOP_REACTOR_WAKE");
  if (asked === "message" || (asked === "atomics" && waitAsync !== undefined)) return asked;
  if (asked !== undefined && asked !== "") {
    throw new Error(`EVLOOP_REACTOR_WAKE=${asked} is not a wake-up here (expected ${waitAsync !== undefined ? "atomics or message" : "message"})`);
  }
  return waitAsync !== undefined ? "atomics" : "message";
}

/** The platform's selector, as `new Poll()` picks it. */
function defaultSelector(): SelectorName {
  if (TARGET.has.iocp) return "afd";
  return TARGET.has.epoll ? "epoll" : TARGET.has.kqueue ? "kqueue" : "poll";
}

function checkCount(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 1 << 20) {
    throw new RangeError(`${name} must be an integer from 1 to ${1 << 20}, got ${describeValue(value)}`);
  }
  return value;
}

interface Waiter {
  resolve(result: IteratorResult<Event>): void;
  reject(error: unknown): void;
}

/** Reactors whose threads the process's exit must stop. */
const running = new Set<Reactor>();
let exitHooked = false;

/**
 * A selector blocked in the kernel on a thread of its own, delivering ready events to the thread
 * that started it as an async iterable. Register fds with its {@link Registrator}, here or in any
 * Worker.
 *
 * @example
 * ```ts
 * const reactor = await Reactor.start({ capacity: 1024 });
 * const reg = reactor.registrator();
 * reg.register(fd, 7, Interest.READABLE);
 * worker.postMessage(reactor.registratorHandle);   // there: Registrator.fromHandle(h)
 * for await (const event of reactor) {
 *   if (event.token === 7 && event.isReadable) { drain(fd); reg.reregister(fd, 7, Interest.READABLE); }
 * }
 * await reactor.close();
 * ```
 */
export class Reactor implements AsyncIterable<Event> {
  /** The selector the reactor thread runs. */
  readonly selector: SelectorName;
  /** The ring's size in events. */
  readonly capacity: number;
  readonly #ctl: Int32Array;
  readonly #ring: RingConsumer;
  readonly #worker: Worker;
  readonly #port: MessageChannel["port1"] | null;
  readonly #handle: RegistratorHandle;
  readonly #exited: Promise<void>;
  #registrator: Registrator | null = null;
  /** Events taken from the ring and not yet handed out. */
  #buffer: Event[] = [];
  #next = 0;
  readonly #waiters: Waiter[] = [];
  #armed = false;
  #closing = false;
  /** The thread has exited. */
  #gone = false;
  /** The reactor thread's failure, until a `next()` has rejected with it. */
  #failure: { error: unknown } | null = null;

  private constructor(selector: SelectorName, capacity: number, ctl: Int32Array, ring: SharedArrayBuffer, worker: Worker, port: MessageChannel["port1"] | null, handle: RegistratorHandle, exited: Promise<void>) {
    this.selector = selector;
    this.capacity = capacity;
    this.#ctl = ctl;
    this.#ring = new RingConsumer(ctl, ring, capacity);
    this.#worker = worker;
    this.#port = port;
    this.#handle = handle;
    this.#exited = exited;
    port?.on("message", () => this.#onWake());
    worker.on("error", (error) => this.#fail(error));
  }

  /**
   * Starts a reactor thread and resolves once its selector is open. Rejects (a SystemError where
   * the selector failed) when it cannot start, e.g. `selector: "kqueue"` with no kqueue here.
   *
   * @example
   * ```ts
   * const reactor = await Reactor.start({ capacity: 1024, selector: "epoll" });
   * ```
   */
  static async start(options: ReactorOptions = {}): Promise<Reactor> {
    if (options === null || typeof options !== "object") throw new TypeError("Reactor.start options must be an object");
    const capacity = checkCount(options.capacity, "capacity", 1024);
    const registrations = checkCount(options.registrations, "registrations", 4096);
    const selector = options.selector ?? defaultSelector();
    if (!["afd", "epoll", "kqueue", "poll"].includes(selector)) {
      throw new TypeError(`unknown selector ${JSON.stringify(selector)} (expected "afd", "epoll", "kqueue" or "poll")`);
    }
    const mode = selector === "epoll" ? "direct" : "table";
    const wake = ownerWake();
    const ctlBuffer = new SharedArrayBuffer(CTL_WORDS * 4);
    const ring = new SharedArrayBuffer(ringBytes(capacity));
    const table = mode === "table" ? createTable(registrations) : null;
    const channel = wake === "message" ? new MessageChannel() : null;
    const data: ReactorData = { selector, mode, ctl: ctlBuffer, ring, capacity, table, wake, port: channel?.port2 ?? null };
    const url = new URL("./reactor-worker.js", import.meta.url);
    let worker: Worker;
    try {
      // execArgv: [] — the thread needs none of the process's flags, and some refuse a Worker.
      worker = new Worker(url, { workerData: data, transferList: channel ? [channel.port2] : [], execArgv: [] });
    } catch (e) {
      channel?.port1.close();
      const name = e instanceof Error ? e.name : "";
      if (name !== "NotCapable" && name !== "PermissionDenied") throw e;
      const dir = fileURLToPath(new URL(".", new URL("..", url)));
      throw new Error(`the reactor starts a thread from ${fileURLToPath(url)}: run Deno with --allow-read=${dir}`, { cause: e });
    }
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    const hello = await new Promise<ReactorHello>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
      worker.once("exit", () => reject(new Error("the reactor thread exited before its selector opened")));
    });
    if (!hello.ok) {
      channel?.port1.close();
      await exited;
      throw hello.errno !== 0 ? new SystemError(hello.errno, hello.syscall, hello.message.replace(/^\S+ \S+: /, "")) : new Error(hello.message);
    }
    worker.unref();
    channel?.port1.unref();
    const handle: RegistratorHandle = { kind: "evloop.registrator", selector, mode, ctl: ctlBuffer, table, selectorFd: hello.selectorFd, waker: hello.waker };
    const reactor = new Reactor(selector, capacity, new Int32Array(ctlBuffer), ring, worker, channel?.port1 ?? null, handle, exited);
    worker.on("exit", () => reactor.#onExit());
    running.add(reactor);
    if (!exitHooked) {
      exitHooked = true;
      process.on("exit", () => {
        for (const r of running) r.#stop();
      });
    }
    return reactor;
  }

  /**
   * This thread's Registrator (the same one on every call).
   *
   * @example
   * ```ts
   * reactor.registrator().register(fd, 1, Interest.WRITABLE);
   * ```
   */
  registrator(): Registrator {
    return (this.#registrator ??= Registrator.fromHandle(this.#handle));
  }

  /**
   * What to send to another thread (with `postMessage`) so it can register fds with this reactor
   * ({@link Registrator.fromHandle}).
   *
   * @example
   * ```ts
   * new Worker(url, { workerData: reactor.registratorHandle });
   * ```
   */
  get registratorHandle(): RegistratorHandle {
    return this.#handle;
  }

  /**
   * Whether `close()` was called.
   *
   * @example
   * ```ts
   * if (!reactor.closed) await reactor.close();
   * ```
   */
  get closed(): boolean {
    return this.#closing;
  }

  /**
   * How many times the reactor thread found the ring full and waited for this thread to take
   * events (backpressure).
   *
   * @example
   * ```ts
   * if (reactor.fullWaits > 0) console.log("the ring is too small for the load");
   * ```
   */
  get fullWaits(): number {
    return Atomics.load(this.#ctl, CTL.FULL_WAITS);
  }

  /**
   * The next ready event; `{ done: true }` once the reactor is closed. Rejects once if the
   * reactor thread failed, with its error.
   *
   * @example
   * ```ts
   * const { value: event, done } = await reactor.next();
   * ```
   */
  next(): Promise<IteratorResult<Event>> {
    if (this.#waiters.length === 0) {
      const ready = this.#take();
      if (ready !== null) return Promise.resolve(ready);
    }
    return new Promise<IteratorResult<Event>>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#serve();
    });
  }

  /**
   * Iterates over ready events until the reactor is closed. Leaving a `for await` early (break)
   * does not close the reactor: a later loop continues with the next event.
   *
   * @example
   * ```ts
   * for await (const event of reactor) console.log(event.token, event.isReadable, event.isWritable);
   * ```
   */
  [Symbol.asyncIterator](): AsyncIterator<Event> {
    return {
      next: () => this.next(),
      return: (): Promise<IteratorResult<Event>> => Promise.resolve({ done: true, value: undefined }),
    };
  }

  /**
   * Stops the reactor thread and waits for it to exit. A pending `next()` resolves done;
   * events still in the ring are dropped; Registrators on every thread throw from then on.
   * Idempotent.
   *
   * @example
   * ```ts
   * await reactor.close();
   * ```
   */
  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#stop();
      this.#buffer = [];
      this.#next = 0;
      this.#finishWaiters();
    }
    await this.#exited;
    this.#port?.close();
  }

  /** Asks the reactor thread to stop: the state word, then wake it wherever it waits. */
  #stop(): void {
    running.delete(this);
    const ctl = this.#ctl;
    // Counted in like a Registrator call: the thread may see the state change before the wake-up
    // (it was awake anyway) and must not close the waker under it.
    Atomics.add(ctl, CTL.USERS, 1);
    try {
      if (Atomics.compareExchange(ctl, CTL.STATE, STATE.OPEN, STATE.CLOSING) !== STATE.OPEN) return;
      Atomics.notify(ctl, CTL.HEAD); // waiting for room in the ring
      Atomics.notify(ctl, CTL.TAIL); // this thread's own waitAsync, so nothing is left pending
      wakeFromHandle(this.#handle.waker); // blocked in the selector
    } finally {
      if (Atomics.sub(ctl, CTL.USERS, 1) === 1) Atomics.notify(ctl, CTL.USERS);
    }
  }

  /** The next buffered event, refilling the buffer from the ring; a done result when closed. */
  #take(): IteratorResult<Event> | null {
    if (this.#next === this.#buffer.length) {
      this.#buffer = [];
      this.#next = 0;
      if (!this.#closing) {
        this.#ring.take((token, readiness) => {
          const event = new Event();
          event.token = token;
          event.readiness = readiness;
          this.#buffer.push(event);
        });
      }
    }
    if (this.#next < this.#buffer.length) return { done: false, value: this.#buffer[this.#next++]! };
    if (this.#closing) return { done: true, value: undefined };
    return null;
  }

  /** Hands events to waiters in order; arms a wait-up when some are left without one. */
  #serve(): void {
    while (this.#waiters.length > 0) {
      if (this.#failure !== null) {
        const { error } = this.#failure;
        this.#failure = null;
        this.#closing = true;
        this.#waiters.shift()!.reject(error);
        continue;
      }
      const ready = this.#take();
      if (ready === null) break;
      this.#waiters.shift()!.resolve(ready);
    }
    if (this.#waiters.length > 0) this.#arm();
    this.#keepAlive();
  }

  /** The thread keeps the process alive while an event is awaited, or until it exits after close. */
  #keepAlive(): void {
    if (!this.#gone && (this.#waiters.length > 0 || this.#closing)) this.#worker.ref();
    else this.#worker.unref();
  }

  /** Waits (without blocking) for the reactor thread to publish events. */
  #arm(): void {
    if (this.#armed) return;
    const tail = this.#ring.tail;
    Atomics.store(this.#ctl, CTL.CONSUMER_WAITING, 1);
    // Check after announcing the wait: events published before the flag was seen are here now.
    if (!this.#ring.isEmpty) {
      Atomics.store(this.#ctl, CTL.CONSUMER_WAITING, 0);
      queueMicrotask(() => this.#serve());
      return;
    }
    this.#armed = true;
    if (this.#port !== null) return; // the reactor thread will post a message
    const result = waitAsync!(this.#ctl, CTL.TAIL, tail);
    if (result.async) void result.value.then(() => this.#onWake());
    else queueMicrotask(() => this.#onWake());
  }

  #onWake(): void {
    this.#armed = false;
    this.#serve();
  }

  #fail(error: unknown): void {
    this.#failure = { error };
    this.#serve();
  }

  /** The thread is gone: whoever still waits is told, by its failure or by done. */
  #onExit(): void {
    this.#gone = true;
    running.delete(this);
    if (this.#failure === null && !this.#closing) this.#failure = { error: new Error("the reactor thread exited unexpectedly") };
    this.#serve();
    this.#finishWaiters();
  }

  #finishWaiters(): void {
    for (const waiter of this.#waiters.splice(0)) waiter.resolve({ done: true, value: undefined });
    this.#keepAlive();
  }
}
