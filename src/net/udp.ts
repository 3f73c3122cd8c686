/**
 * UDP sockets: bind, sendTo/receiveFrom, and send/receive once connected.
 */
import type { EventLoop, OperationOptions } from "../loop/event-loop.js";
import { checkOptions } from "../loop/checks.js";
import { SystemError } from "../sys/errors.js";
import { bind, DEFAULT_V6ONLY, setIntOption } from "../sys/socket.js";
import { familyOf, parseIPv4, type SocketAddress } from "../sys/posix/sockaddr.js";
import { C, ERRNO } from "../sys/target.js";
import { loopOf, type HandleOptions } from "../io/handle.js";
import { checkHost, checkPort, formatAddress, ipLiteral, resolveHost, type InetAddress, type IPFamily } from "./address.js";
import { annotate, DatagramSocket, openSocket } from "./socket.js";

/**
 * Options for {@link UdpSocket.bind}.
 *
 * @example
 * ```ts
 * await UdpSocket.bind({ host: "0.0.0.0", port: 0, broadcast: true });
 * ```
 */
export interface UdpBindOptions extends HandleOptions {
  /** Local address: an IP literal, `localhost` or a host name; default `"0.0.0.0"`. */
  host?: string | undefined;
  /** Local port; default 0 (the kernel picks one, see `socket.address.port`). */
  port?: number | undefined;
  /** Only consider addresses of this family when `host` is a name. */
  family?: IPFamily | undefined;
  /**
   * Set SO_REUSEADDR. What it allows differs by OS: on Linux, sockets that all set it may bind
   * the same UDP port (as multicast receivers do). On Windows it lets the socket bind a port
   * already in use, like SO_REUSEPORT elsewhere; which socket receives a unicast datagram is
   * then undefined.
   */
  reuseAddress?: boolean | undefined;
  /**
   * Set SO_REUSEPORT, so several sockets share the port (on Linux the kernel balances datagrams
   * among them). Windows has no SO_REUSEPORT: there this sets SO_REUSEADDR (see
   * `reuseAddress`), so the sockets may share the port but nothing balances datagrams among them.
   */
  reusePort?: boolean | undefined;
  /**
   * For an IPv6 address: IPv6 only (IPV6_V6ONLY) instead of IPv4 too. Default: IPv4 too where
   * the kernel's default is (Linux, unless net.ipv6.bindv6only is set), and on Windows, where
   * evloop clears Windows' own default (IPv6 only) as Node does; the BSDs keep theirs.
   */
  ipv6Only?: boolean | undefined;
  /** Allow sending to broadcast addresses (SO_BROADCAST). */
  broadcast?: boolean | undefined;
}

/**
 * Options for {@link UdpSocket.connect}.
 *
 * @example
 * ```ts
 * await udp.connect({ host: "127.0.0.1", port: 53, timeout: 1000 });
 * ```
 */
export interface UdpConnectOptions extends OperationOptions {
  /** Peer host: an IP literal, `localhost` or a host name. */
  host: string;
  /** Peer port, 1 to 65535. */
  port: number;
}

/**
 * Where `sendTo` sends: an IP literal and a port (`{ address: "127.0.0.1", port: 53 }`), or a
 * full IPv4/IPv6 socket address as `receiveFrom` returns it. `"localhost"` means the loopback
 * address of the socket's family. Host names must be resolved first ({@link resolveHost}).
 *
 * @example
 * ```ts
 * await udp.sendTo(buf, { address: "::1", port: 53 });
 * ```
 */
export type UdpTarget = { readonly address: string; readonly port: number } | InetAddress;

function checkFlag(value: unknown, name: string): boolean | undefined {
  if (value !== undefined && typeof value !== "boolean") throw new TypeError(`${name} must be a boolean, got ${typeof value}`);
  return value;
}

/** `::ffff:a.b.c.d`: how an IPv6 socket addresses an IPv4 peer. */
function mapped(addr: InetAddress): InetAddress {
  return addr.family === "ipv6" ? addr : { family: "ipv6", address: `::ffff:${addr.address}`, port: addr.port };
}

/**
 * A UDP socket.
 *
 * @example
 * ```ts
 * import { UdpSocket } from "evloop";
 * await using server = await UdpSocket.bind({ host: "127.0.0.1", port: 0 });
 * await using client = await UdpSocket.bind({ host: "127.0.0.1", port: 0 });
 * await client.sendTo(new TextEncoder().encode("ping"), server.address);
 * const buf = new Uint8Array(1500);
 * const { bytes, address } = await server.receiveFrom(buf);
 * await server.sendTo(buf.subarray(0, bytes), address);
 * ```
 */
export class UdpSocket extends DatagramSocket<UdpTarget, InetAddress> {
  /** The socket's family, fixed at creation. */
  readonly family: IPFamily;

  private constructor(fd: number, loop: EventLoop, family: IPFamily) {
    super(fd, loop, false);
    this.family = family;
  }

  /**
   * Creates a UDP socket bound to `host`:`port`. Rejects with a SystemError EADDRINUSE when the
   * port is taken; the socket is closed on any failure.
   *
   * @example
   * ```ts
   * const u = await UdpSocket.bind({ host: "::", port: 5353, reuseAddress: true });
   * ```
   */
  // `override`: a class is a function, and this static shadows Function.prototype.bind.
  static override async bind(options: UdpBindOptions = {}): Promise<UdpSocket> {
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const host = options.host === undefined ? "0.0.0.0" : checkHost(options.host);
    const port = options.port === undefined ? 0 : checkPort(options.port);
    const reuseAddress = checkFlag(options.reuseAddress, "reuseAddress");
    const reusePort = checkFlag(options.reusePort, "reusePort");
    const ipv6Only = checkFlag(options.ipv6Only, "ipv6Only");
    const broadcast = checkFlag(options.broadcast, "broadcast");
    const loop = loopOf(options.loop);
    const [address] = await resolveHost(host, port, { family: options.family });
    const local = address!;
    if (ipv6Only && local.family !== "ipv6") throw new TypeError(`ipv6Only needs an IPv6 host, got ${host}`);
    const v6Only = ipv6Only === undefined ? DEFAULT_V6ONLY : ipv6Only ? 1 : 0;
    const fd = openSocket(familyOf(local), C.SOCK_DGRAM, (s) => {
      if (reuseAddress) setIntOption(s, C.SOL_SOCKET, C.SO_REUSEADDR, 1);
      if (reusePort) setIntOption(s, C.SOL_SOCKET, C.SO_REUSEPORT, 1);
      if (broadcast) setIntOption(s, C.SOL_SOCKET, C.SO_BROADCAST, 1);
      if (v6Only !== null && local.family === "ipv6") setIntOption(s, C.IPPROTO_IPV6, C.IPV6_V6ONLY, v6Only);
      try {
        bind(s, local);
      } catch (e) {
        throw annotate(e, formatAddress(local));
      }
    });
    return new UdpSocket(fd, loop, local.family);
  }

  /**
   * Connects the socket to one peer: `send`/`receive` then talk to it, and datagrams from other
   * sources are dropped by the kernel. On an IPv6 socket an IPv4 peer is reached through its
   * IPv4-mapped address. On Linux a datagram the peer's host refused (no socket on the port)
   * makes a later receive or send fail with ECONNREFUSED; on Windows evloop turns those reports
   * off (SIO_UDP_CONNRESET, which would otherwise fail unconnected sockets too), so nothing fails.
   *
   * @example
   * ```ts
   * await u.connect({ host: "127.0.0.1", port: 53 });
   * await u.send(query);
   * ```
   */
  async connect(options: UdpConnectOptions): Promise<void> {
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const host = checkHost(options.host);
    const port = checkPort(options.port, false);
    checkOptions(options);
    this.openFd("connect");
    const found = await resolveHost(host, port, { signal: options.signal, timeout: options.timeout });
    const peer = found.find((a) => a.family === this.family) ?? (this.family === "ipv6" ? mapped(found[0]!) : undefined);
    if (!peer) throw this.#wrongFamily("connect", found[0]!);
    // Fetched again: the socket may have been closed while the name resolved.
    const fd = this.openFd("connect");
    try {
      await this.loop.connect(fd, peer, options);
    } catch (e) {
      throw annotate(e, formatAddress(peer));
    }
    this.markConnected();
  }

  /**
   * Allows (or forbids) sending to broadcast addresses (SO_BROADCAST).
   *
   * @example
   * ```ts
   * u.setBroadcast();
   * await u.sendTo(buf, { address: "255.255.255.255", port: 9 });
   * ```
   */
  setBroadcast(on = true): this {
    setIntOption(this.openFd("setsockopt"), C.SOL_SOCKET, C.SO_BROADCAST, on ? 1 : 0);
    return this;
  }

  protected override toAddress(target: UdpTarget): SocketAddress {
    if (target === null || typeof target !== "object") throw new TypeError("target must be an object like { address, port }");
    if ((target as { family?: unknown }).family === "unix") throw new TypeError("a UDP socket cannot send to a unix socket address");
    const port = checkPort(target.port, false);
    if (typeof target.address !== "string") throw new TypeError(`target address must be a string, got ${typeof target.address}`);
    let addr: InetAddress | null;
    if ("family" in target && (target.family === "ipv4" || target.family === "ipv6")) {
      addr = target;
    } else if (target.address === "localhost") {
      addr = this.family === "ipv6" ? { family: "ipv6", address: "::1", port } : { family: "ipv4", address: "127.0.0.1", port };
    } else {
      addr = ipLiteral(target.address, port);
      if (!addr) {
        throw new TypeError(`sendTo needs an IP address, got ${JSON.stringify(target.address)}; resolve host names first with resolveHost()`);
      }
    }
    if (addr.family === this.family) return addr;
    if (this.family === "ipv6" && parseIPv4(addr.address)) return mapped(addr);
    throw this.#wrongFamily("sendto", addr);
  }

  #wrongFamily(syscall: string, addr: InetAddress): SystemError {
    const theirs = addr.family === "ipv6" ? "an IPv6" : "an IPv4";
    const ours = this.family === "ipv6" ? "an IPv6" : "an IPv4";
    return new SystemError(ERRNO.EAFNOSUPPORT, syscall, `cannot reach ${theirs} address (${formatAddress(addr)}) from ${ours} socket`);
  }
}
