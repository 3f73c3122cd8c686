/**
 * What the socket classes share: creating a socket without leaking it on failure, error
 * messages that name the address, and the three handle shapes (connected stream, listener,
 * datagram socket) that tcp.ts, udp.ts and unix.ts fill in.
 */
import type { EventLoop, OperationOptions } from "../loop/event-loop.js";
import { ClosedError, SystemError, TimeoutError } from "../sys/errors.js";
import { ERRNO } from "../sys/target.js";
import { closeSocket, localAddress, remoteAddress, socket } from "../sys/socket.js";
import type { SocketAddress } from "../sys/posix/sockaddr.js";
import { keepAtExit } from "../driver/cleanup.js";
import { Handle } from "../io/handle.js";
import { Stream } from "../io/stream.js";

/**
 * Creates a socket ready for the loop (`sys/socket.ts`: non-blocking and close-on-exec on POSIX,
 * overlapped and not inheritable on Windows) and runs `setup` on it (options, bind, listen).
 * If `setup` throws, the socket is closed before the error propagates: the caller never saw the
 * fd, so nobody else could close it and it would leak for the life of the process.
 *
 * @example
 * ```ts
 * const fd = openSocket(C.AF_INET, C.SOCK_STREAM, (s) => bind(s, address));
 * ```
 */
export function openSocket(domain: number, type: number, setup: (fd: number) => void): number {
  const fd = socket(domain, type);
  try {
    setup(fd);
  } catch (e) {
    closeSocket(fd);
    throw e;
  }
  return fd;
}

/**
 * Adds `context` (usually the address) to a SystemError's message, keeping code, errno and
 * syscall. Timeouts, close errors and anything else pass through unchanged.
 *
 * @example
 * ```ts
 * throw annotate(e, "127.0.0.1:80"); // "connect ECONNREFUSED: connection refused (127.0.0.1:80)"
 * ```
 */
export function annotate(e: unknown, context: string): unknown {
  if (!(e instanceof SystemError) || e instanceof TimeoutError || e instanceof ClosedError) return e;
  const prefix = `${e.syscall} ${e.code}: `;
  const text = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
  return new SystemError(e.errno, e.syscall, `${text} (${context})`);
}

/**
 * A connected stream socket (TCP or Unix).
 *
 * @example
 * ```ts
 * const s = await TcpStream.connect({ host: "127.0.0.1", port: 8080 });
 * console.log(s.localAddress, s.remoteAddress);
 * ```
 */
export abstract class SocketStream extends Stream {
  protected constructor(fd: number, loop: EventLoop) {
    super(fd, loop, "socket");
  }

  /** This end's address (getsockname); throws EBADF once closed. */
  get localAddress(): SocketAddress {
    return localAddress(this.openFd("getsockname"));
  }

  /** The peer's address (getpeername); throws ENOTCONN after the peer is gone, EBADF once closed. */
  get remoteAddress(): SocketAddress {
    return remoteAddress(this.openFd("getpeername"));
  }

  /**
   * Hands the socket over without closing it: the loop forgets the fd, the handle becomes
   * closed, and the fd number is returned, now the caller's (to adopt on another loop, in this
   * thread or another, with `TcpStream.from` or `FileDescriptor.from`, or to close). It stays in non-blocking mode.
   *
   * A hand-off happens between reads, and no byte is lost: data not yet read stays in the
   * kernel's socket buffer for the next owner. So it throws a SystemError EBUSY, and changes
   * nothing, while an operation is pending on the socket (a read waiting, a `write` or
   * `writeAll` not finished) or while the loop holds data it received for it and no read took
   * (io_uring with multishot receive, which receives ahead of the reads: there no socket can be
   * handed over). Throws EBADF once closed.
   *
   * @example
   * ```ts
   * const conn = await listener.accept();
   * const n = await conn.read(header);       // nothing pending once it resolves
   * worker.postMessage({ fd: conn.release(), header: header.subarray(0, n) });
   * // in the Worker: const conn = TcpStream.from(fd, { loop });
   * ```
   */
  release(): number {
    const fd = this.openFd("release");
    if (this.writing || this.loop.busy(fd)) {
      throw new SystemError(ERRNO.EBUSY, "release", `socket ${fd} has an operation pending or data received and not yet read: hand it over between reads`);
    }
    return this.detach("release");
  }
}

/**
 * A listening socket: accepts connections one by one or through `for await`, and keeps the
 * process alive while open (see {@link unref}).
 *
 * @example
 * ```ts
 * await using listener = await TcpListener.bind({ host: "127.0.0.1", port: 0 });
 * for await (const conn of listener) serve(conn);
 * ```
 */
export abstract class Listener<Conn, Addr extends SocketAddress> extends Handle implements AsyncIterable<Conn> {
  readonly #address: Addr;
  #release: (() => void) | null;

  protected constructor(fd: number, loop: EventLoop, address: Addr) {
    super(fd, loop, "listener");
    this.#address = address;
    this.#release = loop.hold();
  }

  /** The address the listener is bound to (with the port the kernel chose for port 0). */
  get address(): Addr {
    return this.#address;
  }

  /** Wraps an accepted fd in the connection class. */
  protected abstract wrap(fd: number): Conn;

  /**
   * Accepts one connection. Rejects with a ClosedError (code EBADF) if the listener is closed
   * while waiting.
   *
   * @example
   * ```ts
   * const conn = await listener.accept({ timeout: 5000 });
   * ```
   */
  async accept(options?: OperationOptions): Promise<Conn> {
    const fd = await this.loop.accept(this.openFd("accept"), options);
    try {
      return this.wrap(fd);
    } catch (e) {
      keepAtExit(fd);
      closeSocket(fd);
      throw e;
    }
  }

  /**
   * Yields connections until the listener is closed; closing it ends the iteration without an
   * error. A connection the peer aborted before it was accepted (ECONNABORTED) is skipped.
   * Breaking out of the loop leaves the listener open.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Conn, void, undefined> {
    while (!this.closed) {
      let conn: Conn;
      try {
        conn = await this.accept();
      } catch (e) {
        if (this.closed) return;
        if (e instanceof SystemError && (e.code === "ECONNABORTED" || e.code === "EPROTO")) continue;
        throw e;
      }
      yield conn;
    }
  }

  /**
   * Lets the process exit while the listener is open, even with an `accept` waiting (as Node's
   * `server.unref()`).
   *
   * @example
   * ```ts
   * listener.unref(); // the process exits when nothing else keeps it alive
   * ```
   */
  unref(): this {
    this.#release?.();
    this.#release = null;
    if (!this.closed) this.loop.setRef(this.fd, false);
    return this;
  }

  /**
   * Keeps the process alive while the listener is open again (the default).
   *
   * @example
   * ```ts
   * listener.unref().ref();
   * ```
   */
  ref(): this {
    if (this.closed) return this;
    if (!this.#release) this.#release = this.loop.hold();
    this.loop.setRef(this.fd, true);
    return this;
  }

  protected override onClose(): void {
    this.#release?.();
    this.#release = null;
  }
}

/**
 * What `receiveFrom` resolves with.
 *
 * @example
 * ```ts
 * const { bytes, address }: Datagram<InetAddress> = await udp.receiveFrom(buf);
 * ```
 */
export interface Datagram<Addr extends SocketAddress> {
  /** The datagram's size (the part that fit into the buffer). */
  bytes: number;
  /** Where it came from. */
  address: Addr;
}

/**
 * A datagram socket (UDP or Unix): sendTo/receiveFrom, and send/receive once connected.
 *
 * @example
 * ```ts
 * const u = await UdpSocket.bind({ host: "127.0.0.1", port: 0 });
 * const { bytes, address } = await u.receiveFrom(new Uint8Array(1500));
 * ```
 */
export abstract class DatagramSocket<Target, Addr extends SocketAddress> extends Handle {
  #connected: boolean;

  protected constructor(fd: number, loop: EventLoop, connected: boolean) {
    super(fd, loop, "socket");
    this.#connected = connected;
  }

  /** Converts a caller's target to a socket address this socket can send to (or throws). */
  protected abstract toAddress(target: Target): SocketAddress;

  /** Records that connect(2) succeeded, so `send` may be used. */
  protected markConnected(): void {
    this.#connected = true;
  }

  /** Whether the socket has a fixed peer (connected, or one end of a pair). */
  get connected(): boolean {
    return this.#connected;
  }

  /** The local address (getsockname); throws EBADF once closed. */
  get address(): Addr {
    return localAddress(this.openFd("getsockname")) as Addr;
  }

  /** The connected peer's address (getpeername); throws ENOTCONN when not connected. */
  get remoteAddress(): Addr {
    return remoteAddress(this.openFd("getpeername")) as Addr;
  }

  /**
   * Sends one datagram to `target` and resolves with the bytes sent. An empty datagram is
   * allowed.
   *
   * @example
   * ```ts
   * await sock.sendTo(new TextEncoder().encode("ping"), target);
   * ```
   */
  sendTo(buf: Uint8Array, target: Target, options?: OperationOptions): Promise<number> {
    if (this.closed) return this.rejectClosed("sendto");
    try {
      return this.loop.sendTo(this.fd, buf, this.toAddress(target), options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Receives one datagram into `buf`. A datagram longer than `buf` is cut to fit (the rest is
   * discarded by the kernel) and `bytes` is what fit.
   *
   * @example
   * ```ts
   * const { bytes, address } = await sock.receiveFrom(new Uint8Array(65536), { timeout: 1000 });
   * ```
   */
  async receiveFrom(buf: Uint8Array, options?: OperationOptions): Promise<Datagram<Addr>> {
    const [bytes, address] = await this.loop.receiveFrom(this.openFd("recvfrom"), buf, options);
    return { bytes, address: address as Addr };
  }

  /**
   * Sends one datagram to the connected peer; resolves with the bytes sent.
   *
   * @example
   * ```ts
   * await sock.send(new Uint8Array([1, 2, 3]));
   * ```
   */
  send(buf: Uint8Array, options?: OperationOptions): Promise<number> {
    if (this.closed) return this.rejectClosed("send");
    if (!this.#connected) {
      return Promise.reject(new SystemError(ERRNO.EDESTADDRREQ, "send", "the socket is not connected; use sendTo() or connect() first"));
    }
    try {
      return this.loop.sendMessage(this.fd, [buf], [], options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Receives one datagram into `buf` and resolves with its size (cut to fit `buf`).
   *
   * @example
   * ```ts
   * const n = await sock.receive(buf);
   * ```
   */
  async receive(buf: Uint8Array, options?: OperationOptions): Promise<number> {
    const [bytes] = await this.loop.receiveFrom(this.openFd("recv"), buf, options);
    return bytes;
  }
}
