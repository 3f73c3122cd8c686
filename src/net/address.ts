/**
 * Host and port handling for the IP sockets: validation with friendly errors, IP literals,
 * `localhost`, and host names.
 *
 * Host names resolve through the host's resolver (node:dns, which Node, Bun and Deno all
 * provide) for now. IP literals and `localhost` never touch it, so they work in every driver
 * mode and on a host whose resolver is broken.
 */
import { lookup } from "node:dns/promises";
import { checkOptions } from "../loop/checks.js";
import { TimeoutError } from "../sys/errors.js";
import { parseIPv4, parseIPv6, type IPv4Address, type IPv6Address, type SocketAddress } from "../sys/posix/sockaddr.js";
import { describeValue } from "../sys/args.js";

/**
 * An IPv4 or IPv6 endpoint.
 *
 * @example
 * ```ts
 * const a: InetAddress = { family: "ipv4", address: "127.0.0.1", port: 80 };
 * ```
 */
export type InetAddress = IPv4Address | IPv6Address;

/**
 * The IP families.
 *
 * @example
 * ```ts
 * await TcpStream.connect({ host: "example.com", port: 80, family: "ipv6" });
 * ```
 */
export type IPFamily = "ipv4" | "ipv6";

/**
 * Options for {@link resolveHost}.
 *
 * @example
 * ```ts
 * await resolveHost("example.com", 80, { family: "ipv4", timeout: 1000 });
 * ```
 */
export interface ResolveOptions {
  /** Only return addresses of this family. */
  family?: IPFamily | undefined;
  /** Stops waiting for the resolver (the lookup itself cannot be cancelled). */
  signal?: AbortSignal | undefined;
  /** Milliseconds to wait for the resolver before rejecting with a TimeoutError. */
  timeout?: number | undefined;
}

/**
 * Checks a port number: an integer from 0 to 65535 (from 1 when `allowZero` is false).
 * Throws TypeError for a non-number and RangeError for a number out of range.
 *
 * @example
 * ```ts
 * checkPort(8080); // 8080
 * checkPort("80"); // throws TypeError
 * ```
 */
export function checkPort(port: unknown, allowZero = true): number {
  if (typeof port !== "number") throw new TypeError(`port must be a number, got ${describe(port)}`);
  const min = allowZero ? 0 : 1;
  if (!Number.isInteger(port) || port < min || port > 65535) {
    throw new RangeError(`port must be an integer from ${min} to 65535, got ${describeValue(port)}`);
  }
  return port;
}

/**
 * Checks a host: a non-empty string (a name, an IPv4 literal, or an IPv6 literal, with or
 * without brackets).
 *
 * @example
 * ```ts
 * checkHost("::1"); // "::1"
 * checkHost(127001); // throws TypeError
 * ```
 */
export function checkHost(host: unknown): string {
  if (typeof host !== "string") throw new TypeError(`host must be a string, got ${describe(host)}`);
  if (host.length === 0) throw new TypeError("host must not be empty");
  return host;
}

/**
 * The IP address `host` spells, or null when it is not an IP literal. Brackets around an IPv6
 * literal (`[::1]`) are accepted; a zone (`fe80::1%eth0`) is kept and resolved when used.
 *
 * @example
 * ```ts
 * ipLiteral("[::1]", 80); // { family: "ipv6", address: "::1", port: 80 }
 * ipLiteral("example.com", 80); // null
 * ```
 */
export function ipLiteral(host: string, port: number): InetAddress | null {
  if (parseIPv4(host)) return { family: "ipv4", address: host, port };
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (parseIPv6(bare)) return { family: "ipv6", address: bare, port };
  return null;
}

/** Whether `host` is `localhost` or a name under `.localhost` (RFC 6761: always loopback). */
function isLocalhost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  return h === "localhost" || h.endsWith(".localhost");
}

/**
 * Resolves `host` to the addresses to try, in the resolver's order. IP literals resolve to
 * themselves; `localhost` to 127.0.0.1 then ::1 without asking the resolver (some resolvers
 * list only one of them, and a server may listen on either); other names through node:dns.
 * Rejects with the resolver's error (code ENOTFOUND, …) when nothing is found.
 *
 * @example
 * ```ts
 * const [first] = await resolveHost("example.com", 443, { family: "ipv4", timeout: 2000 });
 * ```
 */
export async function resolveHost(host: string, port: number, options: ResolveOptions = {}): Promise<InetAddress[]> {
  checkHost(host);
  checkPort(port);
  checkOptions(options);
  const family = options.family;
  if (family !== undefined && family !== "ipv4" && family !== "ipv6") {
    throw new TypeError(`family must be "ipv4" or "ipv6", got ${JSON.stringify(family)}`);
  }
  let found: InetAddress[];
  const literal = ipLiteral(host, port);
  if (literal) {
    found = [literal];
  } else if (isLocalhost(host)) {
    found = [
      { family: "ipv4", address: "127.0.0.1", port },
      { family: "ipv6", address: "::1", port },
    ];
  } else {
    found = (await withDeadline(lookup(host, { all: true }), options)).map(
      (r): InetAddress => (r.family === 6 ? { family: "ipv6", address: r.address, port } : { family: "ipv4", address: r.address, port }),
    );
  }
  const wanted = family === undefined ? found : found.filter((a) => a.family === family);
  if (wanted.length === 0) {
    throw Object.assign(new Error(`${host} has no ${family === "ipv6" ? "IPv6" : "IPv4"} address`), { code: "ENOTFOUND" });
  }
  return wanted;
}

/**
 * Waits for the resolver, bounded by `signal` and `timeout`. The timer is the host's setTimeout,
 * not the evloop loop's: the lookup completes on the host's event loop, and in owner mode an
 * evloop timer would keep evloop blocked in the kernel while the host's callback waits.
 */
function withDeadline<T>(work: Promise<T>, { signal, timeout }: ResolveOptions): Promise<T> {
  if (signal === undefined && timeout === undefined) return work;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = (): void => finish(() => reject(signal!.reason));
    const finish = (settle: () => void): void => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      settle();
    };
    if (timeout !== undefined) timer = setTimeout(() => finish(() => reject(new TimeoutError("getaddrinfo", timeout))), timeout);
    signal?.addEventListener("abort", onAbort, { once: true });
    work.then(
      (v) => finish(() => resolve(v)),
      (e: unknown) => finish(() => reject(e)),
    );
  });
}

/**
 * Formats an address for messages: `127.0.0.1:80`, `[::1]:80`, a unix path, `@name` for an
 * abstract name, `(unnamed)` for an unbound unix socket.
 *
 * @example
 * ```ts
 * formatAddress({ family: "ipv6", address: "::1", port: 80 }); // "[::1]:80"
 * ```
 */
export function formatAddress(addr: SocketAddress): string {
  switch (addr.family) {
    case "ipv4":
      return `${addr.address}:${addr.port}`;
    case "ipv6":
      return `[${addr.address}]:${addr.port}`;
    case "unix":
      if (addr.path === "") return "(unnamed)";
      return addr.path.startsWith("\0") ? `@${addr.path.slice(1)}` : addr.path;
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  return typeof v;
}
