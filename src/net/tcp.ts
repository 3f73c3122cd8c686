/**
 * TCP: TcpListener (bind, accept, `for await`) and TcpStream (connect, read/write, options).
 */
import type { EventLoop, OperationOptions } from "../loop/event-loop.js";
import { checkOptions } from "../loop/checks.js";
import { clock } from "../loop/timers.js";
import { SystemError, TimeoutError } from "../sys/errors.js";
import { bind, DEFAULT_V6ONLY, LISTENER_REUSE_ADDRESS, listen, localAddress, setIntOption, setKeepAlive, socketDomain, socketType } from "../sys/socket.js";
import { setNonBlocking } from "../sys/posix/fd.js";
import { isOpenSocket } from "../sys/windows/socket.js";
import { familyOf } from "../sys/posix/sockaddr.js";
import { C, ERRNO, TARGET } from "../sys/target.js";
import { closeAtExit, keepAtExit } from "../driver/cleanup.js";
import { loopOf, type HandleOptions } from "../io/handle.js";
import { checkHost, checkPort, formatAddress, resolveHost, type InetAddress, type IPFamily } from "./address.js";
import { annotate, Listener, openSocket, SocketStream } from "./socket.js";
import { describeValue } from "../sys/args.js";

/**
 * Options for {@link TcpListener.bind}.
 *
 * @example
 * ```ts
 * await TcpListener.bind({ host: "::", port: 8080, backlog: 1024, reusePort: true });
 * ```
 */
export interface TcpListenOptions extends HandleOptions {
  /** Address to listen on: an IP literal, `localhost` or a host name; default `"0.0.0.0"`. */
  host?: string | undefined;
  /** Port; default 0 (the kernel picks a free one, see `listener.address.port`). */
  port?: number | undefined;
  /** Only consider addresses of this family when `host` is a name. */
  family?: IPFamily | undefined;
  /** listen(2) backlog; default 511 (the kernel caps it at net.core.somaxconn). */
  backlog?: number | undefined;
  /**
   * Set SO_REUSEPORT, so several listeners (processes, threads) may bind the port. On Linux the
   * kernel balances connections among them; on macOS and most BSDs the last one bound gets
   * them. Windows has no SO_REUSEPORT, and this sets its SO_REUSEADDR instead, which lets other
   * sockets bind the port while it is in use: Windows does not balance connections among such
   * listeners (which one accepts is undefined), so it shares no load there, and Wine refuses a
   * second TCP listener on the port (EACCES).
   */
  reusePort?: boolean | undefined;
  /**
   * For an IPv6 address: accept IPv6 only (IPV6_V6ONLY) instead of IPv4 too. Default: IPv4
   * too where the kernel's default is (Linux, unless net.ipv6.bindv6only is set), and on
   * Windows, where evloop clears Windows' own default (IPv6 only) as Node does; the BSDs keep
   * theirs (IPv6 only).
   */
  ipv6Only?: boolean | undefined;
}

/**
 * Options for {@link TcpStream.connect}. `timeout` and `signal` cover resolution and connecting.
 *
 * @example
 * ```ts
 * await TcpStream.connect({ host: "db.internal", port: 5432, timeout: 3000, noDelay: true });
 * ```
 */
export interface TcpConnectOptions extends HandleOptions, OperationOptions {
  /** Host to connect to: an IP literal, `localhost` or a host name; default `"localhost"`. */
  host?: string | undefined;
  /** Port, 1 to 65535. */
  port: number;
  /** Only consider addresses of this family. */
  family?: IPFamily | undefined;
  /**
   * Disable Nagle's algorithm (TCP_NODELAY) before connecting. Default false, the kernel's
   * default: small writes may then wait up to a round trip to be coalesced. Set it for
   * request/response protocols that write small messages.
   */
  noDelay?: boolean | undefined;
}

/** `undefined`, or a boolean; anything else is a TypeError naming `name`. */
function checkFlag(value: unknown, name: string): boolean | undefined {
  if (value !== undefined && typeof value !== "boolean") throw new TypeError(`${name} must be a boolean, got ${typeof value}`);
  return value;
}

function checkObject(options: unknown): void {
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
}

const IS_WINDOWS = TARGET.os === "win32";

let makeStream: (fd: number, loop: EventLoop) => TcpStream;

/**
 * A connected TCP socket.
 *
 * @example
 * ```ts
 * import { TcpStream } from "evloop";
 * await using s = await TcpStream.connect({ host: "127.0.0.1", port: 8080, timeout: 1000, noDelay: true });
 * await s.writeAll(new TextEncoder().encode("hello"));
 * const buf = new Uint8Array(1024);
 * const n = await s.read(buf); // 0 at EOF
 * ```
 */
export class TcpStream extends SocketStream {
  static {
    makeStream = (fd, loop) => new TcpStream(fd, loop);
  }

  private constructor(fd: number, loop: EventLoop) {
    super(fd, loop);
  }

  /**
   * Resolves `host`, then connects to each of its addresses in turn until one accepts (so
   * `localhost` works whether the server listens on 127.0.0.1 or ::1). Rejects with the first
   * address's SystemError (ECONNREFUSED, …) when none accepts, or with a TimeoutError (code
   * ETIMEDOUT) when `timeout` ms pass. No socket is left open on failure.
   *
   * @example
   * ```ts
   * const s = await TcpStream.connect({ host: "localhost", port: 5432, timeout: 2000 });
   * ```
   */
  static async connect(options: TcpConnectOptions): Promise<TcpStream> {
    checkObject(options);
    const host = options.host === undefined ? "localhost" : checkHost(options.host);
    const port = checkPort(options.port, false);
    const noDelay = checkFlag(options.noDelay, "noDelay");
    checkOptions(options);
    const loop = loopOf(options.loop);
    const { signal, timeout } = options;
    const deadline = timeout === undefined ? undefined : clock() + timeout;
    const targets = await resolveHost(host, port, { family: options.family, signal, timeout });
    let first: unknown;
    for (const target of targets) {
      const left = deadline === undefined ? undefined : deadline - clock();
      if (left !== undefined && left <= 0) throw new TimeoutError("connect", timeout!);
      let fd: number;
      try {
        fd = openSocket(familyOf(target), C.SOCK_STREAM, (s) => {
          if (noDelay) setIntOption(s, C.IPPROTO_TCP, C.TCP_NODELAY, 1);
        });
      } catch (e) {
        // EAFNOSUPPORT on a host without IPv6, say: the next address may still work.
        first ??= annotate(e, formatAddress(target));
        continue;
      }
      // A Worker terminated while it connects closes the socket too.
      closeAtExit(fd);
      try {
        await loop.connect(fd, target, { signal, timeout: left });
        return makeStream(fd, loop);
      } catch (e) {
        // The socket is ours alone until it is returned: close it (through the loop, which
        // also forgets its registration) or it leaks.
        keepAtExit(fd);
        await loop.close(fd).catch(() => {});
        if (e instanceof TimeoutError) throw new TimeoutError("connect", timeout!);
        if (signal?.aborted || !(e instanceof SystemError) || e.code === "EBADF") throw e;
        first ??= annotate(e, formatAddress(target));
      }
    }
    throw first;
  }

  /**
   * Adopts `fd`, a connected TCP socket (one another loop's stream `release()`d, in this thread
   * or another: fd numbers are the process's), on `options.loop` (default: this thread's
   * loop), and returns the stream, which owns it from then on. Sets O_NONBLOCK. Throws a
   * SystemError EBADF when `fd` is not open (on Windows: not a socket), ENOTSOCK when it is not
   * a socket, and a TypeError when it is not a TCP stream socket.
   *
   * @example
   * ```ts
   * // thread A: worker.postMessage(conn.release());
   * parentPort.on("message", (fd) => serve(TcpStream.from(fd, { loop })));
   * ```
   */
  static from(fd: number, options: HandleOptions = {}): TcpStream {
    if (typeof fd !== "number" || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
      throw new TypeError(`fd must be a non-negative integer file descriptor, got ${describeValue(fd)}`);
    }
    checkObject(options);
    const loop = loopOf(options.loop);
    if (IS_WINDOWS) {
      if (!isOpenSocket(fd)) throw new SystemError(ERRNO.EBADF, "getsockopt", `${fd} is not an open socket`);
    } else {
      const type = socketType(fd);
      const domain = socketDomain(fd);
      if (type !== C.SOCK_STREAM || (domain !== C.AF_INET && domain !== C.AF_INET6)) {
        throw new TypeError(`fd ${fd} is not a TCP socket (domain ${domain}, type ${type})`);
      }
      setNonBlocking(fd, true);
    }
    return makeStream(fd, loop);
  }

  /** This end's address. */
  override get localAddress(): InetAddress {
    return super.localAddress as InetAddress;
  }

  /** The peer's address. */
  override get remoteAddress(): InetAddress {
    return super.remoteAddress as InetAddress;
  }

  /**
   * Sets TCP_NODELAY: `true` sends small writes at once instead of coalescing them.
   *
   * @example
   * ```ts
   * stream.setNoDelay();
   * ```
   */
  setNoDelay(on = true): this {
    setIntOption(this.openFd("setsockopt"), C.IPPROTO_TCP, C.TCP_NODELAY, on ? 1 : 0);
    return this;
  }

  /**
   * Enables or disables TCP keep-alive probes (SO_KEEPALIVE). `initialDelayMs` sets how long the
   * connection must be idle before the first probe (TCP_KEEPIDLE, in whole seconds, rounded up);
   * OpenBSD has no such per-socket option, and there it throws ENOPROTOOPT. On Windows it is
   * TCP_KEEPALIVE, or where that is missing (before Windows 10 1709, and under Wine)
   * SIO_KEEPALIVE_VALS, which also sets the interval between probes to Windows' default, 1 s.
   *
   * @example
   * ```ts
   * stream.setKeepAlive(true, 60_000);
   * ```
   */
  setKeepAlive(on = true, initialDelayMs?: number): this {
    const fd = this.openFd("setsockopt");
    if (initialDelayMs !== undefined) {
      if (typeof initialDelayMs !== "number" || !(initialDelayMs >= 0) || initialDelayMs > 32767 * 1000) {
        throw new RangeError(`initialDelayMs must be from 0 to ${32767 * 1000}, got ${describeValue(initialDelayMs)}`);
      }
    }
    setKeepAlive(fd, on, initialDelayMs === undefined ? undefined : Math.max(1, Math.ceil(initialDelayMs / 1000)));
    return this;
  }
}

/**
 * A listening TCP socket. It keeps the process alive until closed (see `unref()`).
 *
 * @example
 * ```ts
 * import { TcpListener } from "evloop";
 * await using listener = await TcpListener.bind({ host: "127.0.0.1", port: 0 });
 * console.log("listening on", listener.address.port);
 * for await (const conn of listener) {
 *   void (async () => {
 *     await using c = conn;
 *     for await (const chunk of c) await c.writeAll(chunk); // echo
 *   })();
 * }
 * ```
 */
export class TcpListener extends Listener<TcpStream, InetAddress> {
  private constructor(fd: number, loop: EventLoop, address: InetAddress) {
    super(fd, loop, address);
  }

  /**
   * Creates a TCP socket with SO_REUSEADDR (so a restarted server can bind while old
   * connections linger in TIME_WAIT), binds it and listens. Rejects with a SystemError
   * EADDRINUSE when the port is taken; the socket is closed on any failure. On Windows the
   * socket gets no SO_REUSEADDR: there it would let other sockets bind the port in use, and
   * Windows binds over TIME_WAIT without it.
   *
   * @example
   * ```ts
   * const l = await TcpListener.bind({ host: "::", port: 8080, ipv6Only: false, reusePort: true });
   * ```
   */
  // `override`: a class is a function, and this static shadows Function.prototype.bind.
  static override async bind(options: TcpListenOptions = {}): Promise<TcpListener> {
    checkObject(options);
    const host = options.host === undefined ? "0.0.0.0" : checkHost(options.host);
    const port = options.port === undefined ? 0 : checkPort(options.port);
    const backlog = options.backlog ?? 511;
    if (typeof backlog !== "number" || !Number.isInteger(backlog) || backlog < 0 || backlog > 0x7fffffff) {
      throw new RangeError(`backlog must be a non-negative integer, got ${describeValue(backlog)}`);
    }
    const reusePort = checkFlag(options.reusePort, "reusePort");
    const ipv6Only = checkFlag(options.ipv6Only, "ipv6Only");
    const loop = loopOf(options.loop);
    const [target] = await resolveHost(host, port, { family: options.family });
    const address = target!;
    if (ipv6Only && address.family !== "ipv6") {
      throw new TypeError(`ipv6Only needs an IPv6 host, got ${host} (${address.address})`);
    }
    let bound!: InetAddress;
    const v6Only = ipv6Only === undefined ? DEFAULT_V6ONLY : ipv6Only ? 1 : 0;
    const fd = openSocket(familyOf(address), C.SOCK_STREAM, (s) => {
      if (LISTENER_REUSE_ADDRESS) setIntOption(s, C.SOL_SOCKET, C.SO_REUSEADDR, 1);
      if (reusePort) setIntOption(s, C.SOL_SOCKET, C.SO_REUSEPORT, 1);
      if (v6Only !== null && address.family === "ipv6") setIntOption(s, C.IPPROTO_IPV6, C.IPV6_V6ONLY, v6Only);
      try {
        bind(s, address);
      } catch (e) {
        throw annotate(e, formatAddress(address));
      }
      listen(s, backlog);
      bound = localAddress(s) as InetAddress;
    });
    return new TcpListener(fd, loop, bound);
  }

  protected override wrap(fd: number): TcpStream {
    return makeStream(fd, this.loop);
  }
}
