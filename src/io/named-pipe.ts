/**
 * Windows named pipes: NamedPipeServer (instances of one name, accept, `for await`) and
 * NamedPipe (either end of a connected instance: the stream interface of TcpStream, plus whole
 * messages in message mode).
 *
 * Built on the IOCP loop: a pipe HANDLE is the handle's "fd" (its value as a number), which the
 * loop associates with its port and reads and writes with overlapped ReadFile/WriteFile, so
 * `read`, `readBorrowed`, `write`, `writeAll` and `close` are {@link Stream}'s. What the stream
 * operations do not cover runs through `loop.overlapped`: ConnectNamedPipe (accept), and
 * ReadFile/WriteFile of whole messages from native memory (`readMessage`, `writeMessage`).
 *
 * Why the server keeps one instance listening between accepts: a client that finds no instance
 * at all fails with ENOENT, not "busy", so a server must never be without one while it is open.
 * It creates the first with FILE_FLAG_FIRST_PIPE_INSTANCE (a name another server has is
 * EADDRINUSE) and, after each accept, the next one at once.
 *
 * Off Windows both classes import fine and their factories throw a SystemError EOPNOTSUPP that
 * names the alternative (`io/unsupported.ts`).
 */
import type { EventLoop, OperationOptions, OverlappedResult } from "../loop/event-loop.js";
import { checkBuffer, checkOptions } from "../loop/checks.js";
import { clock } from "../loop/timers.js";
import { SystemError, TimeoutError } from "../sys/errors.js";
import { ERRNO, WIN } from "../sys/windows/constants.js";
import { winError } from "../sys/windows/errors.js";
import { heapFree, nativeBlock } from "../sys/windows/memory.js";
import {
  checkPipeName,
  closePipe,
  connectNamedPipe,
  createNamedPipe,
  disconnectNamedPipe,
  openPipe,
  peekPipe,
  pipeInfo,
  readFile,
  setMessageReadMode,
  writeFile,
  type PipeInstanceOptions,
} from "../sys/windows/pipe.js";
import { closedError, loopOf, type HandleOptions } from "./handle.js";
import { Stream } from "./stream.js";
import { requireWindows } from "./unsupported.js";
import { describeValue } from "../sys/args.js";

/** What the classes say off Windows. */
const INSTEAD = "use a UnixListener and UnixStream on a socket path";

/** The most bytes a message read asks for while no message is waiting. */
const MESSAGE_CHUNK = 64 * 1024;

/** Busy-wait bounds of `connect` (all instances in use): first and longest sleep, in ms. */
const BUSY_FIRST_MS = 1;
const BUSY_MAX_MS = 50;

/** Named pipes need overlapped calls on handles: the iocp backend's. EOPNOTSUPP for another loop. */
function checkIocp(loop: EventLoop, syscall: string): EventLoop {
  if (loop.backend !== "iocp") throw new SystemError(ERRNO.EOPNOTSUPP, syscall, `named pipes need the iocp backend (this loop's is ${loop.backend})`);
  return loop;
}

function checkObject(options: unknown): void {
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
}

function checkFlag(value: unknown, name: string): boolean {
  if (value !== undefined && typeof value !== "boolean") throw new TypeError(`${name} must be a boolean, got ${typeof value}`);
  return value === true;
}

function checkCount(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${describeValue(value)}`);
  }
  return value;
}

/** Whether `e` says the other end is gone (ERROR_BROKEN_PIPE, ERROR_NO_DATA, … → EPIPE). */
function isBrokenPipe(e: unknown): boolean {
  return e instanceof SystemError && e.code === "EPIPE";
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * Options for {@link NamedPipeServer.create}.
 *
 * @example
 * ```ts
 * NamedPipeServer.create({ name: "\\\\.\\pipe\\my-app", maxInstances: 8, messageMode: true });
 * ```
 */
export interface NamedPipeServerOptions extends HandleOptions {
  /** `\\.\pipe\` and a name, at most 256 characters in all. */
  name: string;
  /** Instances (connected clients plus the one listening) at most, 1 to 255; default 255 (unlimited). */
  maxInstances?: number | undefined;
  /** The input buffer the kernel reserves per instance, in bytes (advisory); default 65,536. */
  inBufferSize?: number | undefined;
  /** The output buffer the kernel reserves per instance, in bytes (advisory); default 65,536. */
  outBufferSize?: number | undefined;
  /**
   * Message mode (PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE): each write is one message and
   * {@link NamedPipe.readMessage} returns whole messages. Default false: a byte stream.
   */
  messageMode?: boolean | undefined;
}

/**
 * Options for {@link NamedPipe.connect}. `timeout` and `signal` cover the wait for a free
 * instance.
 *
 * @example
 * ```ts
 * await NamedPipe.connect({ name: "\\\\.\\pipe\\my-app", timeout: 2000 });
 * ```
 */
export interface NamedPipeConnectOptions extends HandleOptions, OperationOptions {
  /** `\\.\pipe\` and a name, at most 256 characters in all. */
  name: string;
}

/**
 * Options for {@link NamedPipe.readMessage}.
 *
 * @example
 * ```ts
 * const message = await pipe.readMessage({ timeout: 5000 });
 * ```
 */
export type MessageReadOptions = OperationOptions;

let makePipe: (fd: number, loop: EventLoop, messageMode: boolean) => NamedPipe;

/**
 * One end of a connected named pipe: what {@link NamedPipeServer.accept} returns on the server
 * and {@link NamedPipe.connect} on the client. Reads, writes, `writeAll`, borrowed reads, async
 * iteration and `await using` are {@link Stream}'s; a read returns 0 (end of stream) once the
 * other end closed. A write after the other end closed rejects with EPIPE.
 *
 * In message mode (the server's `messageMode`; a client follows its server) use
 * {@link writeMessage} and {@link readMessage}: `write` sends at most what one call of the loop
 * takes as one message, and `read` reads bytes without telling where a message ends.
 *
 * Windows only: off Windows `connect` rejects with a SystemError EOPNOTSUPP.
 *
 * @example
 * ```ts
 * import { NamedPipe } from "evloop";
 * await using pipe = await NamedPipe.connect({ name: "\\\\.\\pipe\\my-app", timeout: 2000 });
 * await pipe.writeAll(new TextEncoder().encode("ping"));
 * const buf = new Uint8Array(4);
 * const n = await pipe.read(buf); // 0 once the server closed its end
 * ```
 */
export class NamedPipe extends Stream {
  static {
    makePipe = (fd, loop, messageMode) => new NamedPipe(fd, loop, messageMode);
  }

  /** Whether the pipe carries messages (see {@link readMessage}). */
  readonly messageMode: boolean;

  private constructor(fd: number, loop: EventLoop, messageMode: boolean) {
    // Owned: a Worker that goes away closes its pipes (the exit hook calls CloseHandle for them).
    super(fd, loop, "pipe", true);
    this.messageMode = messageMode;
  }

  /**
   * Connects to the server named `name` (CreateFileW, overlapped). When every instance is in use
   * (ERROR_PIPE_BUSY) it waits as WaitNamedPipe would, without blocking the thread: it tries
   * again after short sleeps on the loop (1 ms, doubling to 50 ms) until one is free or
   * `timeout` passes (TimeoutError, code ETIMEDOUT; without a timeout it waits until `signal`
   * aborts). While it waits, a moment with no instance at all counts as busy too (a full server
   * creates its next instance only when it accepts again). Rejects with a SystemError ENOENT
   * when no server has the name at the first try; a name
   * that is not `\\.\pipe\…` is a TypeError, one over 256 characters a RangeError, both thrown
   * before anything starts. A message-mode server's client reads in message mode too.
   *
   * @example
   * ```ts
   * const pipe = await NamedPipe.connect({ name: "\\\\.\\pipe\\my-app", timeout: 1000 });
   * ```
   */
  static async connect(options: NamedPipeConnectOptions): Promise<NamedPipe> {
    requireWindows("CreateFileW", "NamedPipe", INSTEAD);
    checkObject(options);
    const name = checkPipeName(options.name);
    checkOptions(options);
    const loop = checkIocp(loopOf(options.loop), "CreateFileW");
    const { signal, timeout } = options;
    const deadline = timeout === undefined ? Infinity : clock() + timeout;
    let busy = false;
    for (let delay = BUSY_FIRST_MS; ; delay = Math.min(2 * delay, BUSY_MAX_MS)) {
      if (signal?.aborted) throw signal.reason;
      let fd: number;
      try {
        fd = openPipe(name);
      } catch (e) {
        // Once the server was seen busy, no instance at all (ENOENT) is a server between
        // instances (a full one whose next instance is not created yet): still waiting.
        if (!(e instanceof SystemError) || !(e.code === "EBUSY" || (busy && e.code === "ENOENT"))) throw e;
        busy = true;
        const left = deadline - clock();
        if (left <= 0) throw new TimeoutError("connect", timeout!);
        await loop.sleep(Math.min(delay, left), { signal });
        continue;
      }
      try {
        const { message } = pipeInfo(fd);
        if (message) setMessageReadMode(fd);
        return makePipe(fd, loop, message);
      } catch (e) {
        closePipe(fd);
        throw e;
      }
    }
  }

  /**
   * Reads one whole message (message mode): resolves with its bytes (empty for an empty
   * message), or `null` at end of stream (the other end closed and every message was read).
   * A message longer than a read's buffer arrives in parts (ERROR_MORE_DATA), which this joins:
   * no message is ever split or merged. `timeout` and `signal` apply to each ReadFile; on
   * rejection the message being read is lost only if a part of it was read already. On a byte
   * pipe it rejects with EINVAL (use `read`).
   *
   * @example
   * ```ts
   * for (let m = await pipe.readMessage(); m !== null; m = await pipe.readMessage()) handle(m);
   * ```
   */
  async readMessage(options?: MessageReadOptions): Promise<Uint8Array | null> {
    this.openFd("ReadFile");
    checkOptions(options);
    if (!this.messageMode) throw new SystemError(ERRNO.EINVAL, "ReadFile", "readMessage needs a message-mode pipe; use read()");
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      // Size the read to the message waiting, when one is: then ReadFile never meets a message
      // longer than its buffer within its own call (see the ERROR_MORE_DATA case below).
      let size = MESSAGE_CHUNK;
      try {
        const waiting = peekPipe(this.openFd("ReadFile"));
        if (waiting.available > 0) size = Math.max(1, waiting.leftThisMessage);
      } catch (e) {
        if (isBrokenPipe(e) && parts.length === 0) return null;
        throw e;
      }
      const part = await this.#readPart(this.openFd("ReadFile"), size, options);
      if (part === null) {
        if (parts.length === 0) return null;
        throw new SystemError(ERRNO.EPIPE, "ReadFile", "the pipe broke in the middle of a message");
      }
      parts.push(part.bytes);
      total += part.bytes.byteLength;
      if (!part.more) return concat(parts, total);
    }
  }

  /** One ReadFile of up to `size` bytes; null at end of stream. */
  async #readPart(fd: number, size: number, options: OperationOptions | undefined): Promise<{ bytes: Uint8Array; more: boolean } | null> {
    // SAFETY: the kernel writes `block` until the operation's packet; loop.overlapped settles
    // only after the kernel gave the operation back (also on abort, timeout and close), and the
    // block is freed only then.
    const block = nativeBlock(size);
    let started = -1;
    try {
      let result: OverlappedResult;
      try {
        result = await this.loop.overlapped(fd, (ov) => (started = readFile(fd, block.address, size, ov)), options);
      } catch (e) {
        // A message longer than `size` arrived between the peek and the call: ReadFile filled
        // the buffer and said ERROR_MORE_DATA within the call, which the loop reports as a
        // failure. The bytes are in the block.
        if (started === WIN.ERROR_MORE_DATA) return { bytes: block.bytes.slice(0, size), more: true };
        if (isBrokenPipe(e)) return null;
        throw e;
      }
      if (result.status === WIN.ERROR_BROKEN_PIPE) return null;
      if (result.status !== 0 && result.status !== WIN.ERROR_MORE_DATA) throw winError(result.status, "ReadFile");
      return { bytes: block.bytes.slice(0, result.bytes), more: result.status === WIN.ERROR_MORE_DATA };
    } finally {
      heapFree(block.address);
    }
  }

  /**
   * Writes all of `buf` in one WriteFile: in message mode one message (an empty `buf` is an
   * empty message), in byte mode the same bytes `writeAll` would write. Resolves once the kernel
   * took all of it; rejects with EPIPE when the other end is gone. Concurrent calls are
   * separate messages, in the order the kernel starts them.
   *
   * @example
   * ```ts
   * await pipe.writeMessage(new TextEncoder().encode(JSON.stringify({ op: "ping" })));
   * ```
   */
  async writeMessage(buf: Uint8Array, options?: OperationOptions): Promise<void> {
    const fd = this.openFd("WriteFile");
    checkBuffer(buf, "writeMessage", true);
    checkOptions(options);
    // SAFETY: the kernel reads `block` until the operation's packet; it is freed only after
    // loop.overlapped settled, which is after the kernel gave the operation back.
    const block = nativeBlock(Math.max(1, buf.byteLength));
    try {
      block.bytes.set(buf);
      const n = buf.byteLength;
      const result = await this.loop.overlapped(fd, (ov) => writeFile(fd, block.address, n, ov), options);
      if (result.status !== 0) throw winError(result.status, "WriteFile");
      if (result.bytes !== n) throw new SystemError(ERRNO.EIO, "WriteFile", `wrote ${result.bytes} of ${n} bytes`);
    } finally {
      heapFree(block.address);
    }
  }

  /**
   * A pipe has no half-close: this closes the handle, after which the other end reads end of
   * stream (and nothing more can be read here either).
   *
   * @example
   * ```ts
   * await pipe.writeAll(request);
   * await pipe.shutdown(); // the server's next read returns 0
   * ```
   */
  override async shutdown(): Promise<void> {
    this.openFd("shutdown");
    return this.close();
  }
}

/**
 * A named-pipe server: instances of one name, each serving one client, accepted one by one or
 * through `for await`. It keeps the process alive until closed (see {@link unref}).
 *
 * Windows only: off Windows `create` throws a SystemError EOPNOTSUPP naming the alternative.
 *
 * @example
 * ```ts
 * import { NamedPipeServer } from "evloop";
 * await using server = NamedPipeServer.create({ name: "\\\\.\\pipe\\echo" });
 * for await (const conn of server) {
 *   void (async () => {
 *     await using c = conn;
 *     for await (const chunk of c) await c.writeAll(chunk); // echo
 *   })();
 * }
 * ```
 */
export class NamedPipeServer implements AsyncIterable<NamedPipe>, AsyncDisposable {
  /** The pipe's name (`\\.\pipe\…`). */
  readonly name: string;
  /** The loop the server's pipes run on. */
  readonly loop: EventLoop;
  /** Whether its pipes carry messages. */
  readonly messageMode: boolean;
  readonly #name: Uint16Array;
  readonly #shape: PipeInstanceOptions;
  /** Instances listening and not in an accept (one, usually). */
  readonly #idle: number[] = [];
  /** Instances in an accept (a ConnectNamedPipe in flight). */
  readonly #accepting = new Set<number>();
  #closing: Promise<void> | null = null;
  #release: (() => void) | null;
  #refed = true;

  private constructor(name: string, name16: Uint16Array, loop: EventLoop, shape: PipeInstanceOptions) {
    this.name = name;
    this.#name = name16;
    this.loop = loop;
    this.messageMode = shape.message;
    this.#shape = shape;
    this.#idle.push(createNamedPipe(name16, shape));
    this.#release = loop.hold();
  }

  /**
   * Creates the pipe's first instance (CreateNamedPipeW, overlapped, remote clients refused), so
   * clients can connect before the first `accept`. Throws a SystemError EADDRINUSE when another
   * server has the name; a name that is not `\\.\pipe\…` is a TypeError, one over 256
   * characters or a bad size a RangeError.
   *
   * @example
   * ```ts
   * const server = NamedPipeServer.create({ name: "\\\\.\\pipe\\my-app", maxInstances: 16 });
   * ```
   */
  static create(options: NamedPipeServerOptions): NamedPipeServer {
    requireWindows("CreateNamedPipeW", "NamedPipeServer", INSTEAD);
    checkObject(options);
    const name16 = checkPipeName(options.name);
    const shape = {
      maxInstances: checkCount(options.maxInstances, "maxInstances", 1, WIN.PIPE_UNLIMITED_INSTANCES, WIN.PIPE_UNLIMITED_INSTANCES),
      inBufferSize: checkCount(options.inBufferSize, "inBufferSize", 0, 0x7fffffff, 65536),
      outBufferSize: checkCount(options.outBufferSize, "outBufferSize", 0, 0x7fffffff, 65536),
      message: checkFlag(options.messageMode, "messageMode"),
    };
    const loop = checkIocp(loopOf(options.loop), "CreateNamedPipeW");
    return new NamedPipeServer(options.name, name16, loop, { ...shape, first: true });
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closing !== null;
  }

  /**
   * Waits for a client on an instance of its own (ConnectNamedPipe, overlapped) and resolves
   * with the server's end of the connection. A client that connected before (to the instance
   * kept listening) is accepted at once; one that connected and closed before it was accepted
   * is skipped. Rejects with the signal's reason or a TimeoutError (the instance is kept for the
   * next accept), and with a ClosedError (code EBADF) when the server is closed meanwhile.
   * Several accepts may wait at once, each on its own instance.
   *
   * @example
   * ```ts
   * const conn = await server.accept({ timeout: 5000 });
   * ```
   */
  async accept(options?: OperationOptions): Promise<NamedPipe> {
    if (this.closed) throw closedError("accept", "pipe server");
    checkOptions(options);
    const fd = this.#idle.pop() ?? createNamedPipe(this.#name, { ...this.#shape, first: false });
    this.#accepting.add(fd);
    if (!this.#refed) this.loop.setRef(fd, false);
    try {
      await this.#connect(fd, options);
    } catch (e) {
      this.#accepting.delete(fd);
      if (this.closed) throw e instanceof SystemError && e.code === "EBADF" ? e : closedError("accept", "pipe server");
      this.#idle.push(fd);
      throw e;
    }
    this.#accepting.delete(fd);
    this.loop.setRef(fd, true);
    if (this.closed) {
      await this.loop.close(fd).catch(() => {});
      throw closedError("accept", "pipe server");
    }
    this.#listen();
    return makePipe(fd, this.loop, this.messageMode);
  }

  /** ConnectNamedPipe until a client is connected to `fd`. */
  async #connect(fd: number, options: OperationOptions | undefined): Promise<void> {
    for (;;) {
      let started = -1;
      try {
        await this.loop.overlapped(fd, (ov) => (started = connectNamedPipe(fd, ov)), options);
        return;
      } catch (e) {
        // Both are answers within the call, with no packet to come: a client is connected
        // already (the one listening instance took it before this accept), or one came and
        // closed its end, which leaves the instance to be disconnected and reused.
        if (started === WIN.ERROR_PIPE_CONNECTED) return;
        if (started !== WIN.ERROR_NO_DATA) throw e;
        disconnectNamedPipe(fd);
      }
    }
  }

  /** Keeps an instance listening, so clients find one between accepts (unless at the limit). */
  #listen(): void {
    if (this.#idle.length > 0 || this.closed) return;
    try {
      this.#idle.push(createNamedPipe(this.#name, { ...this.#shape, first: false }));
    } catch (e) {
      // EBUSY: maxInstances are in use; the next accept creates one once a client went away.
      if (!(e instanceof SystemError) || e.code !== "EBUSY") throw e;
    }
  }

  /**
   * Yields connections until the server is closed; closing it ends the iteration without an
   * error. Breaking out of the loop leaves the server open.
   *
   * @example
   * ```ts
   * for await (const conn of server) serve(conn);
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<NamedPipe, void, undefined> {
    while (!this.closed) {
      let conn: NamedPipe;
      try {
        conn = await this.accept();
      } catch (e) {
        if (this.closed) return;
        throw e;
      }
      yield conn;
    }
  }

  /**
   * Lets the process exit while the server is open, even with an `accept` waiting.
   *
   * @example
   * ```ts
   * server.unref();
   * ```
   */
  unref(): this {
    this.#refed = false;
    this.#release?.();
    this.#release = null;
    for (const fd of this.#accepting) this.loop.setRef(fd, false);
    return this;
  }

  /**
   * Keeps the process alive while the server is open again (the default).
   *
   * @example
   * ```ts
   * server.unref().ref();
   * ```
   */
  ref(): this {
    if (this.closed) return this;
    this.#refed = true;
    this.#release ??= this.loop.hold();
    for (const fd of this.#accepting) this.loop.setRef(fd, true);
    return this;
  }

  /**
   * Closes every instance not handed out: waiting accepts reject with a ClosedError (code
   * EBADF) and clients can no longer connect. Pipes already accepted stay open. Calling it again
   * returns the first call's promise.
   *
   * @example
   * ```ts
   * await server.close();
   * ```
   */
  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#release?.();
    this.#release = null;
    const fds = [...this.#idle, ...this.#accepting];
    this.#idle.length = 0;
    this.#closing = Promise.all(
      fds.map((fd) => {
        this.loop.setRef(fd, true);
        // Closes a handle the loop never saw too (CloseHandle, once Winsock says it is no socket).
        return this.loop.close(fd);
      }),
    ).then(() => undefined);
    return this.#closing;
  }

  /** `await using` support: closes the server. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
