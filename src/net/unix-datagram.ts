/**
 * Unix datagram sockets: bound to a path or an abstract name, unbound, or socket pairs; message
 * boundaries are kept, and fds can be passed (SCM_RIGHTS).
 */
import type { EventLoop, OperationOptions } from "../loop/event-loop.js";
import { checkBuffer } from "../loop/checks.js";
import { socket, socketPair } from "../sys/socket.js";
import type { SocketAddress, UnixAddress } from "../sys/posix/sockaddr.js";
import { C } from "../sys/target.js";
import { loopOf, type HandleOptions } from "../io/handle.js";
import { NO_UNIX_SOCKETS, requireUnix } from "../io/unsupported.js";
import { formatAddress } from "./address.js";
import { annotate, DatagramSocket, openSocket } from "./socket.js";
import {
  bindPath, checkFds, checkMode, checkPath, receiveFds, SocketFile, type ReceivedFds, type UnixBindOptions,
} from "./unix-common.js";

/**
 * A Unix datagram socket: bound to a path, unbound, or one end of a pair.
 *
 * Not on Windows: there `bind` rejects, and `unbound` and `pair` throw, a SystemError with code
 * EOPNOTSUPP whose message names the alternative (a UdpSocket on 127.0.0.1).
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
  /** The requested address of a socket bound with `mode` through a temporary name (not on Linux). */
  readonly #bound: UnixAddress | null;

  private constructor(fd: number, loop: EventLoop, connected: boolean, file: SocketFile | null, bound: UnixAddress | null = null) {
    super(fd, loop, connected);
    this.#file = file;
    this.#bound = bound;
  }

  /**
   * A datagram socket bound to `path` (or "\0name"), which others can `sendTo`. Closing it
   * removes the socket file it created.
   *
   * `mode` sets the socket file's permission bits (sending to it takes write permission), and
   * the file never exists with wider ones. On Linux the socket is given `mode` before bind(2),
   * which creates the file with the socket's mode less the umask (a chmod afterwards only widens
   * it to `mode`). Elsewhere it is bound in a fresh private directory beside `path` (mode
   * 0o700), chmod-ed there and hard-linked to `path` (EADDRINUSE if `path` exists); the kernel
   * then keeps the temporary name as the socket's own: `address` reports `path`, but the source
   * address peers receive from it is the (removed) temporary name, so a peer cannot reply to it
   * by that address. An abstract name has no permissions: `mode` with one throws a TypeError; a
   * bad `mode` a RangeError.
   *
   * @example
   * ```ts
   * const server = await UnixDatagram.bind({ path: "/tmp/app.dgram" });
   * const mine = await UnixDatagram.bind({ path: "/run/app/app.dgram", mode: 0o600 });
   * ```
   */
  // `override`: a class is a function, and this static shadows Function.prototype.bind.
  static override async bind(options: UnixBindOptions): Promise<UnixDatagram> {
    requireUnix("socket", "UnixDatagram", "use UdpSocket on 127.0.0.1", NO_UNIX_SOCKETS);
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const address: UnixAddress = { family: "unix", path: checkPath(options.path) };
    const mode = checkMode(options.mode, address.path);
    const loop = loopOf(options.loop);
    let file: SocketFile | null = null;
    let renamed = false;
    const fd = openSocket(C.AF_UNIX, C.SOCK_DGRAM, (s) => {
      renamed = bindPath(s, address, mode);
      file = SocketFile.after(address.path);
    });
    return new UnixDatagram(fd, loop, false, file, renamed ? address : null);
  }

  /** The local address (getsockname; the requested path if bound with `mode`); throws EBADF once closed. */
  override get address(): UnixAddress {
    const kernel = super.address;
    return this.#bound ?? kernel;
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
    requireUnix("socket", "UnixDatagram", "use UdpSocket on 127.0.0.1", NO_UNIX_SOCKETS);
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
    requireUnix("socketpair", "UnixDatagram.pair", "use two UdpSockets on 127.0.0.1", NO_UNIX_SOCKETS);
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
