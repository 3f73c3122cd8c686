/**
 * One loop per thread, a Worker's side: `loopThread()` tells a module started by `spawnLoops`
 * which thread it is, when to stop, and hands connections to the group's other threads.
 *
 * A hand-off is the fd's number on a port between the two threads: `handOff` releases the
 * stream from this thread's loop (`TcpStream.release`, refused while an operation is
 * pending, so it happens between reads and the bytes not yet read wait in the kernel) and
 * posts the number; the receiver adopts it on its own loop (`TcpStream.from`). Whatever the
 * sender read before handing off is its to pass along, in `info`.
 *
 * evloop's ports keep a Worker alive only while `handOffs()` waits for a hand-off (the port
 * the stop request comes on, which stays open until then): otherwise the thread lives as long
 * as its module has work. On stop, hand-offs received and not taken are closed, as are those still
 * arriving when the ports close, so no fd is left open behind a stopped thread.
 */
import { receiveMessageOnPort, workerData, type MessagePort } from "node:worker_threads";
import type { EventLoop } from "../loop/event-loop.js";
import { closeSocket } from "../sys/socket.js";
import { TcpStream } from "../net/tcp.js";
import { isEnvelope, isMessage, type LoopEnvelope, type LoopMessage } from "./loops-shared.js";
import { describeValue } from "../sys/args.js";

/**
 * A connection another thread handed to this one (see {@link LoopThread.handOffs}).
 *
 * @example
 * ```ts
 * for await (const { stream, info, from } of thread.handOffs()) serve(stream, info);
 * ```
 */
export interface HandOff {
  /** The connection, adopted on this thread's loop. */
  readonly stream: TcpStream;
  /** What the sender passed along with it (structured-cloned): what it already read, say. */
  readonly info: unknown;
  /** The sender's thread index. */
  readonly from: number;
}

/**
 * This thread's place in a group {@link spawnLoops} started, from {@link loopThread}.
 *
 * @example
 * ```ts
 * const { index, count, signal } = loopThread();
 * ```
 */
export interface LoopThread {
  /** This thread's index, from 0 to `count - 1`. */
  readonly index: number;
  /** How many threads the group has. */
  readonly count: number;
  /** The `workerData` given to spawnLoops. */
  readonly workerData: unknown;
  /**
   * Aborts when the parent asks the group to stop (`close()`): close the listeners and
   * connections the thread opened and let its `runMain` function return.
   */
  readonly signal: AbortSignal;
  /** Tells the parent this thread is ready (spawnLoops resolves once every thread is). */
  ready(): void;
  /**
   * Hands `stream` to thread `to`: releases it from this thread's loop (throws EBUSY, changing
   * nothing, while an operation on it is pending) and posts its fd with `info`. Throws once
   * the thread is stopping or `to` has stopped, before releasing anything.
   */
  handOff(stream: TcpStream, to: number, info?: unknown): void;
  /**
   * The connections other threads hand to this one, each adopted on `options.loop` (default:
   * this thread's loop) as it is taken, until the thread stops. One iteration at a time.
   */
  handOffs(options?: { loop?: EventLoop | undefined }): AsyncIterableIterator<HandOff>;
}

/** A hand-off received and not yet taken. */
interface Pending {
  readonly fd: number;
  readonly info: unknown;
  readonly from: number;
}

class Thread implements LoopThread {
  readonly index: number;
  readonly count: number;
  readonly workerData: unknown;
  readonly #controller = new AbortController();
  readonly #control: MessagePort;
  readonly #peers: readonly (MessagePort | null)[];
  readonly #closedPeers = new Set<number>();
  readonly #received: Pending[] = [];
  #wake: (() => void) | null = null;
  #iterating = false;

  constructor(envelope: LoopEnvelope) {
    this.index = envelope.index;
    this.count = envelope.count;
    this.workerData = envelope.data;
    this.#control = envelope.control;
    this.#peers = envelope.peers;
    this.#control.on("message", (message: unknown) => {
      if (isMessage(message, "stop")) this.#stop();
    });
    this.#control.unref();
    this.#peers.forEach((port, from) => {
      if (!port) return;
      port.on("message", (message: unknown) => this.#receive(message, from));
      port.on("close", () => this.#closedPeers.add(from));
      port.unref();
    });
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  ready(): void {
    this.#control.postMessage({ type: "ready" } satisfies LoopMessage);
  }

  handOff(stream: TcpStream, to: number, info?: unknown): void {
    if (!Number.isInteger(to) || to < 0 || to >= this.count || to === this.index) {
      throw new RangeError(`to must be another thread's index, from 0 to ${this.count - 1} but not ${this.index}, got ${describeValue(to)}`);
    }
    if (this.signal.aborted) throw new Error(`loop thread ${this.index} is stopping: it hands nothing off`);
    if (this.#closedPeers.has(to)) throw new Error(`loop thread ${to} has stopped: it takes no hand-off`);
    const fd = stream.release();
    try {
      this.#peers[to]!.postMessage({ type: "hand-off", fd, info } satisfies LoopMessage);
    } catch (e) {
      // `info` could not be cloned: the fd is ours again, and closed rather than leaked.
      closeSocket(fd);
      throw e;
    }
  }

  async *handOffs(options: { loop?: EventLoop | undefined } = {}): AsyncIterableIterator<HandOff> {
    if (this.#iterating) throw new Error("handOffs() is already being iterated on this thread");
    this.#iterating = true;
    try {
      for (;;) {
        const next = this.#received.shift();
        if (next) {
          let stream: TcpStream;
          try {
            stream = TcpStream.from(next.fd, { loop: options.loop });
          } catch (e) {
            closeSocket(next.fd);
            throw e;
          }
          yield { stream, info: next.info, from: next.from };
          continue;
        }
        if (this.signal.aborted) return;
        // Waiting for a hand-off keeps the thread alive (a thread that only serves what others
        // hand it has nothing else to), until one arrives or the thread stops.
        this.#keepAlive(true);
        try {
          await new Promise<void>((resolve) => (this.#wake = resolve));
        } finally {
          this.#keepAlive(false);
        }
      }
    } finally {
      this.#iterating = false;
    }
  }

  /**
   * Keeps the thread alive while `handOffs()` waits. The control port does it, not the peers':
   * a peer that stops first closes its port to this thread, which then holds nothing, and the
   * thread would end before its own stop request arrived.
   */
  #keepAlive(on: boolean): void {
    if (this.signal.aborted) return;
    if (on) this.#control.ref();
    else this.#control.unref();
  }

  #receive(message: unknown, from: number): void {
    if (!isMessage(message, "hand-off")) return;
    if (this.signal.aborted) {
      closeSocket(message.fd);
      return;
    }
    this.#received.push({ fd: message.fd, info: message.info, from });
    this.#wakeIterator();
  }

  #wakeIterator(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #stop(): void {
    if (this.signal.aborted) return;
    this.#controller.abort();
    // What arrived and was not taken, and what is still queued on the ports, is closed: once
    // the ports close nobody could take it.
    for (const pending of this.#received.splice(0)) closeSocket(pending.fd);
    this.#peers.forEach((port, from) => {
      if (!port) return;
      drainPort(port, (message) => this.#receive(message, from));
      port.close();
    });
    this.#control.close();
    this.#wakeIterator();
  }
}

let current: Thread | null = null;

/**
 * This thread's place in the group {@link spawnLoops} started: its index and the group's size,
 * the stop signal, `ready()`, and connection hand-offs between the threads. The same object
 * on every call. Throws on a thread spawnLoops did not start.
 *
 * @example
 * ```ts
 * import { loopThread, runMain, TcpListener } from "evloop";
 * const thread = loopThread();
 * await runMain(async () => {
 *   const listener = await TcpListener.bind({ port: 8080, reusePort: true });
 *   thread.signal.addEventListener("abort", () => void listener.close());
 *   thread.ready();
 *   for await (const conn of listener) {
 *     if (thread.index === 0) thread.handOff(conn, 1); // thread 1 serves it
 *     else void serve(conn);
 *   }
 * });
 * ```
 */
export function loopThread(): LoopThread {
  if (current) return current;
  if (!isEnvelope(workerData)) throw new Error("loopThread() works only in a Worker that spawnLoops() started");
  current = new Thread(workerData);
  return current;
}

/**
 * Takes what is queued on `port`. Deno (2.9.5) throws from receiveMessageOnPort ("expected i32")
 * on a port whose other end has closed: nothing can be taken from it then, and a hand-off still
 * queued there is lost with it (its fd stays open until the process exits: the window the
 * README's hand-off section describes).
 */
function drainPort(port: MessagePort, take: (message: unknown) => void): void {
  for (;;) {
    let m: { message: unknown } | undefined;
    try {
      m = receiveMessageOnPort(port);
    } catch {
      return;
    }
    if (m === undefined) return;
    take(m.message);
  }
}
