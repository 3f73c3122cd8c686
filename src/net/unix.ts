/**
 * Unix-domain sockets: UnixListener and UnixStream (SOCK_STREAM), UnixDatagram (SOCK_DGRAM),
 * socket pairs, Linux abstract names (a path starting with "\0"), and fd passing (SCM_RIGHTS).
 */
import { statSync, unlinkSync } from "node:fs";
import type { EventLoop, OperationOptions } from "../loop/event-loop.js";
import { checkBuffer, checkOptions, clock } from "../loop/common.js";
import { SystemError } from "../sys/errors.js";
import { bind, listen, socket, socketPair } from "../sys/posix/socket.js";
import type { SocketAddress, UnixAddress } from "../sys/posix/sockaddr.js";
import { C } from "../sys/target.js";
import { loopOf, type HandleOptions } from "../io/handle.js";
import { formatAddress } from "./address.js";
import { annotate, DatagramSocket, Listener, openSocket, SocketStream } from "./socket.js";

/**
 * Options naming a socket path (a filesystem path, or "\0name" for an abstract name).
 *
 * @example
 * ```ts
 * await UnixDatagram.bind({ path: "\0my-abstract-name" });
 * ```
 */
export interface UnixPathOptions extends HandleOptions {
  path: string;
}

/**
 * Options for {@link UnixListener.bind}.
 *
 * @example
 * ```ts
 * await UnixListener.bind({ path: "/tmp/app.sock", backlog: 128 });
 * ```
 */
export interface UnixListenOptions extends UnixPathOptions {
  /** listen(2) backlog; default 511. */
  backlog?: number | undefined;
}

/**
 * Options for {@link UnixStream.connect}.
 *
 * @example
 * ```ts
 * await UnixStream.connect({ path: "/tmp/app.sock", timeout: 500 });
 * ```
 */
export interface UnixConnectOptions extends UnixPathOptions, OperationOptions {}

/**
 * What {@link UnixStream.receiveFds} resolves with. The caller owns (and must close) `fds`.
 *
 * @example
 * ```ts
 * const { bytes, fds, truncated }: ReceivedFds = await conn.receiveFds(buf, 4);
 * ```
 */
export interface ReceivedFds {
  /** Bytes of data received (0 at end of stream, for a stream socket). */
  bytes: number;
  /** Descriptors received, close-on-exec. */
  fds: number[];
  /** True when more descriptors (or datagram bytes) arrived than fit: the kernel closed the rest. */
  truncated: boolean;
}

/** SCM_MAX_FD: the most descriptors one message may carry on Linux. */
const MAX_FDS = 253;

function checkPath(path: unknown): string {
  if (typeof path !== "string") throw new TypeError(`path must be a string, got ${typeof path}`);
  if (path === "" || path === "\0") throw new TypeError("path must not be empty");
  return path;
}

function checkFds(fds: unknown): readonly number[] {
  if (!Array.isArray(fds)) throw new TypeError("fds must be an array of file descriptors");
  if (fds.length > MAX_FDS) throw new RangeError(`at most ${MAX_FDS} fds can be sent at once, got ${fds.length}`);
  for (const fd of fds) {
    if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
      throw new TypeError(`fds must be non-negative integer file descriptors, got ${String(fd)}`);
    }
  }
  return fds as number[];
}

function bindPath(fd: number, address: UnixAddress): void {
  try {
    bind(fd, address);
  } catch (e) {
    const abstract = address.path.startsWith("\0");
    const hint = abstract
      ? `the abstract name ${formatAddress(address)} is taken`
      : `${address.path} already exists; if no server uses it, it is a stale socket file to remove`;
    throw annotate(e, e instanceof SystemError && e.code === "EADDRINUSE" ? hint : formatAddress(address));
  }
}

/**
 * Remembers the socket file a bind created, and removes it later, only if it is still the same
 * file: another process may have replaced it (after removing ours) to start its own server.
 */
class SocketFile {
  readonly #path: string;
  readonly #id: string;

  private constructor(path: string, id: string) {
    this.#path = path;
    this.#id = id;
  }

  /** Records `path` just after bind; null for an abstract name (there is no file). */
  static after(path: string): SocketFile | null {
    if (path.startsWith("\0")) return null;
    try {
      const st = statSync(path);
      return new SocketFile(path, `${st.dev}:${st.ino}`);
    } catch {
      return null;
    }
  }

  remove(): void {
    try {
      const st = statSync(this.#path);
      if (`${st.dev}:${st.ino}` === this.#id) unlinkSync(this.#path);
    } catch {
      // Already gone, or no longer ours to remove.
    }
  }
}

async function receiveFds(loop: EventLoop, fd: number, buf: Uint8Array, maxFds: number, options?: OperationOptions): Promise<ReceivedFds> {
  const m = await loop.receiveMessage(fd, buf, maxFds, options);
  return { bytes: m.bytes, fds: m.fds, truncated: m.truncated };
}

let makeStream: (fd: number, loop: EventLoop) => UnixStream;

/**
 * A connected Unix stream socket; it can pass file descriptors to its peer.
 *
 * @example
 * ```ts
 * import { UnixStream } from "evloop";
 * const [a, b] = UnixStream.pair();
 * await a.sendFds([someFd], new Uint8Array([1]));
 * const { bytes, fds } = await b.receiveFds(new Uint8Array(16), 4);
 * ```
 */
export class UnixStream extends SocketStream {
  static {
    makeStream = (fd, loop) => new UnixStream(fd, loop);
  }

  private constructor(fd: number, loop: EventLoop) {
    super(fd, loop);
  }

  /**
   * Connects to the listener at `path`. Rejects with ENOENT when nothing is there, ECONNREFUSED
   * for a stale socket file; the socket is closed on failure.
   *
   * @example
   * ```ts
   * const s = await UnixStream.connect({ path: "/run/app.sock", timeout: 1000 });
   * ```
   */
  static async connect(options: UnixConnectOptions): Promise<UnixStream> {
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const address: UnixAddress = { family: "unix", path: checkPath(options.path) };
    checkOptions(options);
    const loop = loopOf(options.loop);
    const fd = socket(C.AF_UNIX, C.SOCK_STREAM);
    try {
      await loop.connect(fd, address, { signal: options.signal, timeout: options.timeout });
    } catch (e) {
      // Nobody else has this fd: close it here or it leaks.
      await loop.close(fd).catch(() => {});
      throw annotate(e, formatAddress(address));
    }
    return new UnixStream(fd, loop);
  }

  /**
   * Two connected streams (socketpair(2)), e.g. to hand one end to a child process or Worker.
   *
   * @example
   * ```ts
   * const [parent, child] = UnixStream.pair();
   * ```
   */
  static pair(options: HandleOptions = {}): [UnixStream, UnixStream] {
    const loop = loopOf(options.loop);
    const [a, b] = socketPair(C.AF_UNIX, C.SOCK_STREAM);
    return [new UnixStream(a, loop), new UnixStream(b, loop)];
  }

  /** This end's address (`""` when unnamed). */
  override get localAddress(): UnixAddress {
    return super.localAddress as UnixAddress;
  }

  /** The peer's address (`""` when unnamed). */
  override get remoteAddress(): UnixAddress {
    return super.remoteAddress as UnixAddress;
  }

  /**
   * Sends `fds` (SCM_RIGHTS) with `data`, which must not be empty: on a stream socket the
   * descriptors travel with the first byte. All of `data` is written (as with `writeAll`);
   * resolves with its length. The caller keeps its own copies of `fds` and may close them once
   * this resolves.
   *
   * @example
   * ```ts
   * await a.sendFds([fileFd], new TextEncoder().encode("here you go"));
   * ```
   */
  async sendFds(fds: readonly number[], data: Uint8Array, options?: OperationOptions): Promise<number> {
    checkFds(fds);
    checkBuffer(data, "sendFds");
    checkOptions(options);
    const start = clock();
    const sent = await this.loop.sendMessage(this.openFd("sendmsg"), [data], fds, options);
    if (sent < data.byteLength) {
      const timeout = options?.timeout === undefined ? undefined : Math.max(0, options.timeout - (clock() - start));
      await this.writeAll(data.subarray(sent), { signal: options?.signal, timeout });
    }
    return data.byteLength;
  }

  /**
   * Reads data into `buf` (which must not be empty), taking up to `maxFds` passed descriptors.
   * `bytes` is 0 at end of stream. The received fds are the caller's to close.
   *
   * @example
   * ```ts
   * const { bytes, fds } = await b.receiveFds(new Uint8Array(64), 4);
   * ```
   */
  receiveFds(buf: Uint8Array, maxFds: number, options?: OperationOptions): Promise<ReceivedFds> {
    if (this.closed) return this.rejectClosed("recvmsg");
    try {
      return receiveFds(this.loop, this.fd, checkBuffer(buf, "receiveFds"), maxFds, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

/**
 * A listening Unix stream socket. Closing it removes the socket file it created (abstract names
 * leave no file). It keeps the process alive until closed (see `unref()`).
 *
 * @example
 * ```ts
 * import { UnixListener } from "evloop";
 * await using l = await UnixListener.bind({ path: "/tmp/app.sock" });
 * for await (const conn of l) void serve(conn);
 * ```
 */
export class UnixListener extends Listener<UnixStream, UnixAddress> {
  readonly #file: SocketFile | null;

  private constructor(fd: number, loop: EventLoop, address: UnixAddress, file: SocketFile | null) {
    super(fd, loop, address);
    this.#file = file;
  }

  /**
   * Binds and listens on `path` (or the abstract name "\0name"). Rejects with a SystemError
   * EADDRINUSE when the path exists (stale socket files are not removed for you); the socket is
   * closed on any failure.
   *
   * @example
   * ```ts
   * const l = await UnixListener.bind({ path: "\0my-service" });
   * ```
   */
  // `override`: a class is a function, and this static shadows Function.prototype.bind.
  static override async bind(options: UnixListenOptions): Promise<UnixListener> {
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const address: UnixAddress = { family: "unix", path: checkPath(options.path) };
    const backlog = options.backlog ?? 511;
    if (typeof backlog !== "number" || !Number.isInteger(backlog) || backlog < 0 || backlog > 0x7fffffff) {
      throw new RangeError(`backlog must be a non-negative integer, got ${String(backlog)}`);
    }
    const loop = loopOf(options.loop);
    let file: SocketFile | null = null;
    const fd = openSocket(C.AF_UNIX, C.SOCK_STREAM, (s) => {
      bindPath(s, address);
      file = SocketFile.after(address.path);
      try {
        listen(s, backlog);
      } catch (e) {
        file?.remove();
        throw e;
      }
    });
    return new UnixListener(fd, loop, address, file);
  }

  protected override wrap(fd: number): UnixStream {
    return makeStream(fd, this.loop);
  }

  protected override onClose(): void {
    super.onClose();
    this.#file?.remove();
  }
}

/**
 * A Unix datagram socket: bound to a path, unbound, or one end of a pair.
 *
 * @example
 * ```ts
 * import { UnixDatagram } from "evloop";
 * const [x, y] = UnixDatagram.pair();
 * await x.send(new TextEncoder().encode("hi"));
 * const n = await y.receive(new Uint8Array(64)); // 2
 * ```
 */
export class UnixDatagram extends DatagramSocket<string | UnixAddress, UnixAddress> {
  readonly #file: SocketFile | null;

  private constructor(fd: number, loop: EventLoop, connected: boolean, file: SocketFile | null) {
    super(fd, loop, connected);
    this.#file = file;
  }

  /**
   * A datagram socket bound to `path` (or "\0name"), which others can `sendTo`. Closing it
   * removes the socket file it created.
   *
   * @example
   * ```ts
   * const server = await UnixDatagram.bind({ path: "/tmp/app.dgram" });
   * ```
   */
  // `override`: a class is a function, and this static shadows Function.prototype.bind.
  static override async bind(options: UnixPathOptions): Promise<UnixDatagram> {
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const address: UnixAddress = { family: "unix", path: checkPath(options.path) };
    const loop = loopOf(options.loop);
    let file: SocketFile | null = null;
    const fd = openSocket(C.AF_UNIX, C.SOCK_DGRAM, (s) => {
      bindPath(s, address);
      file = SocketFile.after(address.path);
    });
    return new UnixDatagram(fd, loop, false, file);
  }

  /**
   * An unbound datagram socket: it can send, but nobody can reply, since it has no address.
   *
   * @example
   * ```ts
   * const client = UnixDatagram.unbound();
   * await client.sendTo(buf, "/tmp/app.dgram");
   * ```
   */
  static unbound(options: HandleOptions = {}): UnixDatagram {
    const loop = loopOf(options.loop);
    return new UnixDatagram(socket(C.AF_UNIX, C.SOCK_DGRAM), loop, false, null);
  }

  /**
   * Two connected datagram sockets (socketpair(2)); message boundaries are kept.
   *
   * @example
   * ```ts
   * const [x, y] = UnixDatagram.pair();
   * ```
   */
  static pair(options: HandleOptions = {}): [UnixDatagram, UnixDatagram] {
    const loop = loopOf(options.loop);
    const [a, b] = socketPair(C.AF_UNIX, C.SOCK_DGRAM);
    return [new UnixDatagram(a, loop, true, null), new UnixDatagram(b, loop, true, null)];
  }

  /**
   * Connects to the socket at `path`, so `send`/`receive` talk to it.
   *
   * @example
   * ```ts
   * await client.connect("/tmp/app.dgram");
   * ```
   */
  async connect(target: string | UnixAddress, options?: OperationOptions): Promise<void> {
    const address = this.toAddress(target);
    try {
      await this.loop.connect(this.openFd("connect"), address, options);
    } catch (e) {
      throw annotate(e, formatAddress(address));
    }
    this.markConnected();
  }

  /**
   * Sends one datagram carrying `fds` (SCM_RIGHTS) to the connected peer; `data` may be empty.
   *
   * @example
   * ```ts
   * await x.sendFds([fd], new Uint8Array(0));
   * ```
   */
  sendFds(fds: readonly number[], data: Uint8Array, options?: OperationOptions): Promise<number> {
    if (this.closed) return this.rejectClosed("sendmsg");
    try {
      return this.loop.sendMessage(this.fd, [checkBuffer(data, "sendFds", true)], checkFds(fds), options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Receives one datagram into `buf` with up to `maxFds` passed descriptors, which the caller
   * must close.
   *
   * @example
   * ```ts
   * const { bytes, fds } = await y.receiveFds(new Uint8Array(64), 1);
   * ```
   */
  receiveFds(buf: Uint8Array, maxFds: number, options?: OperationOptions): Promise<ReceivedFds> {
    if (this.closed) return this.rejectClosed("recvmsg");
    try {
      return receiveFds(this.loop, this.fd, buf, maxFds, options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  protected override toAddress(target: string | UnixAddress): SocketAddress {
    if (typeof target === "string") return { family: "unix", path: checkPath(target) };
    if (target === null || typeof target !== "object" || target.family !== "unix") {
      throw new TypeError("target must be a socket path or a unix address { family: \"unix\", path }");
    }
    checkPath(target.path);
    return target;
  }

  protected override onClose(): void {
    this.#file?.remove();
  }
}
