/**
 * Unix-domain stream sockets: UnixListener and UnixStream, socket pairs, Linux abstract names
 * (a path starting with "\0"), and fd passing (SCM_RIGHTS). UnixDatagram lives in
 * unix-datagram.ts and is re-exported here.
 */
import type { EventLoop, OperationOptions } from "../loop/event-loop.js";
import { checkBuffer, checkOptions } from "../loop/checks.js";
import { clock } from "../loop/timers.js";
import { peerCredentials, type PeerCredentials } from "../sys/posix/socket.js";
import { listen, socket, socketPair } from "../sys/socket.js";
import type { UnixAddress } from "../sys/posix/sockaddr.js";
import { C } from "../sys/target.js";
import { closeAtExit, keepAtExit } from "../driver/cleanup.js";
import { loopOf, type HandleOptions } from "../io/handle.js";
import { NO_UNIX_SOCKETS, requireUnix } from "../io/unsupported.js";
import { formatAddress } from "./address.js";
import { annotate, Listener, openSocket, SocketStream } from "./socket.js";
import {
  bindPath, checkFds, checkMode, checkPath, receiveFds, SocketFile, type ReceivedFds, type UnixBindOptions, type UnixPathOptions,
} from "./unix-common.js";
import { describeValue } from "../sys/args.js";

export type { ReceivedFds, UnixBindOptions, UnixPathOptions } from "./unix-common.js";
export type { PeerCredentials } from "../sys/posix/socket.js";
export { UnixDatagram } from "./unix-datagram.js";

/**
 * Options for {@link UnixListener.bind}.
 *
 * @example
 * ```ts
 * await UnixListener.bind({ path: "/tmp/app.sock", backlog: 128, mode: 0o600 });
 * ```
 */
export interface UnixListenOptions extends UnixBindOptions {
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


let makeStream: (fd: number, loop: EventLoop, local: UnixAddress | null) => UnixStream;

/**
 * A connected Unix stream socket; it can pass file descriptors to its peer.
 *
 * Not on Windows: there `connect` rejects and `pair` throws a SystemError with code EOPNOTSUPP
 * whose message names the alternative (a TcpStream on 127.0.0.1), so no UnixStream (and no
 * `peerCredentials` or fd passing) exists there.
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
  /** The listener's requested path, for a stream it accepted after binding with `mode`. */
  readonly #local: UnixAddress | null;

  static {
    makeStream = (fd, loop, local) => new UnixStream(fd, loop, local);
  }

  private constructor(fd: number, loop: EventLoop, local: UnixAddress | null = null) {
    super(fd, loop);
    this.#local = local;
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
    requireUnix("socket", "UnixStream", "use TcpStream on 127.0.0.1", NO_UNIX_SOCKETS);
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const address: UnixAddress = { family: "unix", path: checkPath(options.path) };
    checkOptions(options);
    const loop = loopOf(options.loop);
    const fd = socket(C.AF_UNIX, C.SOCK_STREAM);
    // A Worker terminated while it connects closes the socket too.
    closeAtExit(fd);
    try {
      await loop.connect(fd, address, { signal: options.signal, timeout: options.timeout });
    } catch (e) {
      // Nobody else has this fd: close it here or it leaks.
      keepAtExit(fd);
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
    requireUnix("socketpair", "UnixStream.pair", "connect a TcpStream to a TcpListener on 127.0.0.1", NO_UNIX_SOCKETS);
    const loop = loopOf(options.loop);
    const [a, b] = socketPair(C.AF_UNIX, C.SOCK_STREAM);
    return [new UnixStream(a, loop), new UnixStream(b, loop)];
  }

  /**
   * This end's address (`""` when unnamed). For a stream accepted by a listener bound with
   * `mode` through a temporary name (not on Linux), the listener's path.
   */
  override get localAddress(): UnixAddress {
    if (this.#local === null) return super.localAddress as UnixAddress;
    this.openFd("getsockname"); // EBADF once closed, as without mode
    return this.#local;
  }

  /**
   * The peer's process id, user id and group id, as the kernel recorded them when the
   * connection was made (SO_PEERCRED): for a server, who connected; for a client, who listens.
   * Throws EBADF once closed. Linux only for now: elsewhere it throws an Error saying it is not
   * supported yet.
   *
   * @example
   * ```ts
   * const conn = await listener.accept();
   * const { pid, uid } = conn.peerCredentials();
   * if (uid !== process.getuid()) await conn.close();
   * ```
   */
  peerCredentials(): PeerCredentials {
    return peerCredentials(this.openFd("getsockopt"));
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
 * Not on Windows: there `bind` rejects with a SystemError with code EOPNOTSUPP whose message
 * names the alternative (a TcpListener on 127.0.0.1).
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
  /** Whether the kernel knows the socket by a temporary name (bound with `mode`, not on Linux). */
  readonly #renamed: boolean;

  private constructor(fd: number, loop: EventLoop, address: UnixAddress, file: SocketFile | null, renamed: boolean) {
    super(fd, loop, address);
    this.#file = file;
    this.#renamed = renamed;
  }

  /**
   * Binds and listens on `path` (or the abstract name "\0name"). Rejects with a SystemError
   * EADDRINUSE when the path exists (stale socket files are not removed for you); the socket is
   * closed on any failure.
   *
   * `mode` sets the socket file's permission bits (connecting takes write permission). The file
   * never exists with wider bits, not even briefly, and no umask is changed. On Linux the socket
   * is given `mode` before bind(2), which creates the file with the socket's mode less the umask;
   * a chmod afterwards only widens it to `mode`. Elsewhere it is bound in a fresh private
   * directory beside `path` (mode 0o700), chmod-ed there and then hard-linked to `path` (which
   * fails with EADDRINUSE if `path` exists); the kernel then keeps the temporary name as the
   * socket's own: `address` and accepted streams' `localAddress` report `path`, but a client's
   * `remoteAddress` shows the (removed) temporary name. An abstract name has no permissions, so
   * `mode` with one throws a TypeError; a bad `mode` a RangeError.
   *
   * @example
   * ```ts
   * const l = await UnixListener.bind({ path: "\0my-service" });
   * const private_ = await UnixListener.bind({ path: "/run/app/app.sock", mode: 0o600 });
   * ```
   */
  // `override`: a class is a function, and this static shadows Function.prototype.bind.
  static override async bind(options: UnixListenOptions): Promise<UnixListener> {
    requireUnix("socket", "UnixListener", "use TcpListener on 127.0.0.1", NO_UNIX_SOCKETS);
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const address: UnixAddress = { family: "unix", path: checkPath(options.path) };
    const mode = checkMode(options.mode, address.path);
    const backlog = options.backlog ?? 511;
    if (typeof backlog !== "number" || !Number.isInteger(backlog) || backlog < 0 || backlog > 0x7fffffff) {
      throw new RangeError(`backlog must be a non-negative integer, got ${describeValue(backlog)}`);
    }
    const loop = loopOf(options.loop);
    let file: SocketFile | null = null;
    let renamed = false;
    const fd = openSocket(C.AF_UNIX, C.SOCK_STREAM, (s) => {
      renamed = bindPath(s, address, mode);
      file = SocketFile.after(address.path);
      try {
        listen(s, backlog);
      } catch (e) {
        file?.remove();
        throw e;
      }
    });
    return new UnixListener(fd, loop, address, file, renamed);
  }

  protected override wrap(fd: number): UnixStream {
    return makeStream(fd, this.loop, this.#renamed ? this.address : null);
  }

  protected override onClose(): void {
    super.onClose();
    this.#file?.remove();
  }
}
