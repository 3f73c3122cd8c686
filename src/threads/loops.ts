/**
 * One loop per thread, the parent's side: `spawnLoops(n, moduleUrl)` starts n Workers, each
 * running the same module with its own evloop loop in owner mode (`runMain`), and stops them
 * all with `close()`. The Worker's side is loop-thread.ts (`loopThread()`).
 *
 * Why Workers and not processes: fds are numbers shared by every thread of a process, so a
 * connection one thread's loop accepted can be handed to another's (`loopThread().handOff`)
 * with nothing but its number crossing. Listeners bound with `reusePort: true` let the kernel
 * share incoming connections among the threads (Linux balances them by a hash of the
 * connection's addresses).
 *
 * The stop request is a message on a port of evloop's own (not `parentPort`, which stays the
 * program's): owner mode's wait ends when the Worker's libuv loop has I/O, a message included,
 * so a thread blocked in the kernel gets it at once. The thread's module then closes what it
 * opened and returns; the Worker exits when nothing is left. One that does not exit within
 * `stopTimeout` is terminated (Node stops it; evloop's native cleanup hooks close its fds) and
 * `close()` says so.
 */
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import { ENVELOPE, isMessage, type LoopEnvelope } from "./loops-shared.js";
import { describeValue } from "../sys/args.js";

/**
 * Options for {@link spawnLoops}.
 *
 * @example
 * ```ts
 * const options: SpawnLoopsOptions = { workerData: { port: 8080 }, stopTimeout: 5000 };
 * ```
 */
export interface SpawnLoopsOptions {
  /** Given to every thread as `loopThread().workerData` (structured-cloned per thread). */
  workerData?: unknown;
  /**
   * How long `close()` waits for a thread to exit after asking it to stop, in ms, before it
   * terminates it (and rejects, naming it); default 10 000.
   */
  stopTimeout?: number | undefined;
  /**
   * Called with each thread's failure once all threads are ready: an uncaught exception in
   * it, or an exit with a non-zero code. Without it such a failure is thrown on this thread as
   * an uncaught exception, as Node does for a Worker with no `error` listener. `close()` also
   * rejects with every failure either way.
   */
  onError?: ((error: LoopThreadError) => void) | undefined;
}

/**
 * A loop thread's failure: which thread, and why (`cause`: what it threw, when it threw).
 *
 * @example
 * ```ts
 * try { await spawnLoops(2, url); } catch (e) { if (e instanceof LoopThreadError) console.log(e.index, e.cause); }
 * ```
 */
export class LoopThreadError extends Error {
  /** The thread's index, from 0. */
  readonly index: number;

  constructor(index: number, message: string, cause?: unknown) {
    super(`loop thread ${index}: ${message}`, cause === undefined ? undefined : { cause });
    this.name = "LoopThreadError";
    this.index = index;
  }
}

/**
 * The threads {@link spawnLoops} started.
 *
 * @example
 * ```ts
 * const threads = await spawnLoops(2, "/srv/app/echo-thread.mjs");
 * console.log(threads.workers.map((w) => w.threadId));
 * await threads.close();
 * ```
 */
export interface LoopThreads {
  /** The Workers, by thread index. */
  readonly workers: readonly Worker[];
  /**
   * Asks every thread to stop (its `loopThread().signal` aborts) and resolves once all have
   * exited. Rejects with the threads' failures (a {@link LoopThreadError}, or an
   * AggregateError of them): what they threw, non-zero exit codes, and threads that did not
   * exit within `stopTimeout` and were terminated. Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

const DEFAULT_STOP_TIMEOUT = 10_000;

/** One Worker of the group and what the parent knows of it. */
interface Member {
  readonly index: number;
  readonly worker: Worker;
  readonly control: MessagePort;
  readonly exited: Promise<void>;
  ready: boolean;
  alive: boolean;
  /** Ended by `terminate()`, whose exit code (1) is no failure of its own. */
  terminated: boolean;
}

/** A Worker's entry: a URL object, a `file:` URL string made one, else a path as given. */
function entryOf(moduleUrl: string | URL): string | URL {
  if (moduleUrl instanceof URL) return moduleUrl;
  if (typeof moduleUrl !== "string" || moduleUrl === "") throw new TypeError("moduleUrl must be a URL or a path");
  return moduleUrl.startsWith("file:") ? new URL(moduleUrl) : moduleUrl;
}

/** The message of what a thread threw. */
function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Starts `n` Workers running `moduleUrl`, each a loop thread: the module calls `loopThread()`
 * for its index, the stop signal and `ready()`, and runs its evloop loop in owner mode with
 * `runMain`. Resolves once every thread has called `ready()` (its listeners are bound, say).
 * Rejects with a {@link LoopThreadError} naming the thread when one fails or exits before it
 * is ready, once the others have been stopped (asked, then terminated after `stopTimeout`).
 *
 * @example
 * ```ts
 * // main.mjs
 * import { spawnLoops } from "evloop";
 * const threads = await spawnLoops(2, "/srv/app/echo-thread.mjs", { workerData: { port: 8080 } });
 * process.on("SIGINT", () => void threads.close());
 *
 * // echo-thread.mjs
 * import { loopThread, runMain, TcpListener } from "evloop";
 * const thread = loopThread();
 * await runMain(async () => {
 *   const listener = await TcpListener.bind({ port: thread.workerData.port, reusePort: true });
 *   thread.signal.addEventListener("abort", () => void listener.close());
 *   thread.ready();
 *   for await (const conn of listener) void echo(conn, thread.signal);
 * });
 * ```
 */
export async function spawnLoops(n: number, moduleUrl: string | URL, options: SpawnLoopsOptions = {}): Promise<LoopThreads> {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 1024) throw new RangeError(`n must be an integer from 1 to 1024, got ${describeValue(n)}`);
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
  const stopTimeout = options.stopTimeout ?? DEFAULT_STOP_TIMEOUT;
  if (typeof stopTimeout !== "number" || !(stopTimeout >= 0)) throw new RangeError(`stopTimeout must be a non-negative number of ms, got ${describeValue(stopTimeout)}`);
  if (options.onError !== undefined && typeof options.onError !== "function") throw new TypeError("onError must be a function");
  const entry = entryOf(moduleUrl);

  // A port between every two threads, for hand-offs: peers[i][j] is i's end towards j.
  const peers: (MessagePort | null)[][] = Array.from({ length: n }, () => new Array<MessagePort | null>(n).fill(null));
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const { port1, port2 } = new MessageChannel();
      peers[i]![j] = port1;
      peers[j]![i] = port2;
    }
  }

  const failures: LoopThreadError[] = [];
  let started = false;
  let closing: Promise<void> | null = null;
  let failStart: (error: LoopThreadError) => void = () => {};
  let readyCount = 0;
  let allReady: () => void = () => {};
  const startup = new Promise<void>((resolve, reject) => {
    allReady = resolve;
    failStart = reject;
  });

  const fail = (error: LoopThreadError): void => {
    failures.push(error);
    if (!started) return failStart(error);
    if (closing) return;
    if (options.onError) options.onError(error);
    else
      queueMicrotask(() => {
        throw error;
      });
  };

  const members: Member[] = [];
  for (let index = 0; index < n; index++) {
    const { port1: control, port2: remote } = new MessageChannel();
    const mine = peers[index]!;
    const envelope: LoopEnvelope = { [ENVELOPE]: 1, index, count: n, control: remote, peers: mine, data: options.workerData };
    const transfer = [remote, ...mine.filter((p): p is MessagePort => p !== null)];
    let worker: Worker;
    try {
      worker = new Worker(entry, { workerData: envelope, transferList: transfer });
    } catch (e) {
      // The module's URL or the workerData was refused: end the threads already started.
      for (const m of members) void m.worker.terminate();
      for (const p of peers.flat()) p?.close();
      throw new LoopThreadError(index, `could not start: ${describe(e)}`, e);
    }
    let threw = false;
    const member: Member = {
      index,
      worker,
      control,
      ready: false,
      alive: true,
      exited: new Promise<void>((resolve) => {
        worker.on("error", (e) => {
          threw = true;
          fail(new LoopThreadError(index, member.ready ? `failed: ${describe(e)}` : `failed before it was ready: ${describe(e)}`, e));
        });
        worker.on("exit", (code) => {
          member.alive = false;
          control.close();
          if (!threw && code !== 0 && !member.terminated) fail(new LoopThreadError(index, `exited with code ${code}${member.ready ? "" : " before it was ready"}`));
          else if (!threw && !member.ready && !member.terminated) fail(new LoopThreadError(index, "exited before it was ready (the module must call loopThread().ready())"));
          resolve();
        });
      }),
      terminated: false,
    };
    control.on("message", (message: unknown) => {
      if (!isMessage(message, "ready") || member.ready) return;
      member.ready = true;
      if (++readyCount === n) allReady();
    });
    members.push(member);
  }

  const terminate = async (member: Member): Promise<void> => {
    member.terminated = true;
    await member.worker.terminate();
    await member.exited;
  };

  try {
    await startup;
  } catch (e) {
    // The others are asked to stop, as close() does, and terminated only if still running after
    // stopTimeout: a Worker terminated while it is still loading its modules leaves the fds of
    // the module files it was reading open for good (Node 20; seen in CI as 14–21 fds of
    // dist/*.js left by a failed start). Their exits are no failures of their own.
    await Promise.all(
      members.map(async (m) => {
        if (!m.alive) return m.exited;
        m.control.postMessage({ type: "stop" });
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), stopTimeout);
        });
        const tooLate = await Promise.race([m.exited.then(() => false), late]);
        clearTimeout(timer);
        if (tooLate && m.alive) await terminate(m);
        return undefined;
      }),
    );
    throw e;
  }
  started = true;

  const stopAll = async (): Promise<void> => {
    for (const m of members) if (m.alive) m.control.postMessage({ type: "stop" });
    await Promise.all(
      members.map(async (m) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), stopTimeout);
        });
        const tooLate = await Promise.race([m.exited.then(() => false), late]);
        clearTimeout(timer);
        if (tooLate && m.alive) {
          failures.push(new LoopThreadError(m.index, `did not exit within ${stopTimeout} ms of the stop request; terminated`));
          await terminate(m);
        }
      }),
    );
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, `${failures.length} loop threads failed`);
  };

  return {
    workers: members.map((m) => m.worker),
    close(): Promise<void> {
      closing ??= stopAll();
      return closing;
    },
  };
}
