/**
 * Socket addresses: the JS shapes users see, and their encoding as struct sockaddr_in,
 * sockaddr_in6 (with scope ids) and sockaddr_un (paths and Linux abstract names).
 *
 * The layouts come from the target's table. On macOS and the BSDs an address starts with its
 * length (`sin_len`, one byte) and a one-byte family; the encoder fills the length with the
 * socklen it returns, and the decoder reads the family from wherever the layout puts it.
 */
import { C, LAYOUT, TARGET, type PosixConstants, type PosixLayout } from "../target.js";
import { libc } from "../libc.js";
import { dataView, getField, setField } from "../../ffi/layout.js";
import { describeValue } from "../args.js";

/**
 * An IPv4 endpoint.
 *
 * @example
 * ```ts
 * const a: IPv4Address = { family: "ipv4", address: "127.0.0.1", port: 8080 };
 * ```
 */
export interface IPv4Address {
  readonly family: "ipv4";
  readonly address: string;
  readonly port: number;
}

/**
 * An IPv6 endpoint; `scopeId` selects the interface of a link-local address.
 *
 * @example
 * ```ts
 * const a: IPv6Address = { family: "ipv6", address: "::1", port: 8080 };
 * ```
 */
export interface IPv6Address {
  readonly family: "ipv6";
  readonly address: string;
  readonly port: number;
  readonly flowInfo?: number;
  readonly scopeId?: number;
}

/**
 * A Unix-domain endpoint. `path` is a filesystem path; a path starting with `"\0"` is a Linux
 * abstract name (Linux only); `""` is an unnamed socket (an unbound or socketpair end).
 *
 * @example
 * ```ts
 * const file: UnixAddress = { family: "unix", path: "/tmp/app.sock" };
 * const abstract: UnixAddress = { family: "unix", path: "\0app" };
 * ```
 */
export interface UnixAddress {
  readonly family: "unix";
  readonly path: string;
}

/**
 * Any socket address evloop understands.
 *
 * @example
 * ```ts
 * const where: SocketAddress = listener.address; // { family: "ipv4", address: "127.0.0.1", port }
 * ```
 */
export type SocketAddress = IPv4Address | IPv6Address | UnixAddress;

const encoder = new TextEncoder();

/** `String.prototype.isWellFormed` (ES2024), for runtimes and type libraries that lack it. */
function isWellFormed(s: string): boolean {
  return !/\p{Surrogate}/u.test(s);
}
const decoder = new TextDecoder();

/** Parses dotted-quad IPv4 text; null if `text` is not one. */
export function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

/** Parses IPv6 text (with `::`, embedded IPv4 and an optional `%scope`); null if invalid. */
export function parseIPv6(text: string): { bytes: Uint8Array; scope?: string } | null {
  let scope: string | undefined;
  const pct = text.indexOf("%");
  if (pct >= 0) {
    scope = text.slice(pct + 1);
    text = text.slice(0, pct);
    if (scope === "") return null;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIPv4(p);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return scope === undefined ? { bytes } : { bytes, scope };
}

/** Formats 16 bytes as canonical IPv6 text (RFC 5952: lower case, longest zero run as `::`). */
export function formatIPv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[i * 2]! << 8) | b[i * 2 + 1]!);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

function checkPort(port: unknown): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be an integer from 0 to 65535, got ${describeValue(port)}`);
  }
  return port;
}

/**
 * Throws a RangeError unless `value` is undefined or fits a u32 field (flow info, scope id): a
 * DataView would wrap -1 to 4294967295 and truncate 1.5 to 1, encoding another address.
 */
function checkU32(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`${what} must be an integer from 0 to 4294967295, got ${describeValue(value)}`);
  }
  return value;
}

function scopeIndex(scope: string): number {
  if (/^\d+$/.test(scope)) return checkU32(Number(scope), "IPv6 scope id")!;
  const index = libc.if_nametoindex(scope);
  if (index === 0) throw new TypeError(`unknown IPv6 scope (network interface) ${JSON.stringify(scope)}`);
  return index;
}

/** What the codec needs from a target's table. */
export interface SockaddrTable {
  readonly C: Pick<PosixConstants, "AF_INET" | "AF_INET6" | "AF_UNIX">;
  readonly LAYOUT: Pick<PosixLayout, "sockaddr_storage" | "sockaddr_in" | "sockaddr_in6" | "sockaddr_un">;
  /** Whether a Unix path starting with NUL names the abstract namespace (Linux). */
  readonly abstractUnixSockets: boolean;
}

/** Socket addresses encoded for one target. */
export interface SockaddrCodec {
  /** Bytes of a struct sockaddr_storage: large enough for every family. */
  readonly maxLength: number;
  /** The AF_* constant for an address. */
  familyOf(addr: SocketAddress): number;
  /**
   * Encodes `addr` into `out` (at least `maxLength` bytes) and returns the socklen. Throws
   * TypeError/RangeError for an address that cannot be encoded.
   */
  encode(addr: SocketAddress, out: Uint8Array): number;
  /** Decodes a struct sockaddr of `length` bytes. */
  decode(bytes: Uint8Array, length: number): SocketAddress;
}

/**
 * The sockaddr codec for a target's table: the running target's is exported below; tests build
 * the others' to check their encodings on any OS.
 */
export function sockaddrCodec(table: SockaddrTable): SockaddrCodec {
  const { C: K, LAYOUT: L, abstractUnixSockets } = table;
  const maxLength = L.sockaddr_storage.size;
  const pathMax = L.sockaddr_un.fields.path.length!;
  const pathAt = L.sockaddr_un.fields.path.offset;
  const lenField = L.sockaddr_storage.fields.len;

  function familyOf(addr: SocketAddress): number {
    switch (addr.family) {
      case "ipv4":
        return K.AF_INET;
      case "ipv6":
        return K.AF_INET6;
      case "unix":
        return K.AF_UNIX;
    }
  }

  function encode(addr: SocketAddress, out: Uint8Array): number {
    const len = encodeFields(addr, out);
    // BSD's length byte: the kernel goes by the socklen argument, but the byte is part of the
    // address, so it carries the same length.
    if (lenField !== undefined) setField(dataView(out), 0, lenField, len);
    return len;
  }

  function encodeFields(addr: SocketAddress, out: Uint8Array): number {
    if (addr === null || typeof addr !== "object") throw new TypeError("address must be an object");
    const view = dataView(out);
    out.fill(0, 0, maxLength);
    switch (addr.family) {
      case "ipv4": {
        const ip = typeof addr.address === "string" ? parseIPv4(addr.address) : null;
        if (!ip) throw new TypeError(`invalid IPv4 address ${JSON.stringify(addr.address)}`);
        const f = L.sockaddr_in.fields;
        setField(view, 0, f.family, K.AF_INET);
        setField(view, 0, f.port, checkPort(addr.port));
        out.set(ip, f.addr.offset);
        return L.sockaddr_in.size;
      }
      case "ipv6": {
        const ip = typeof addr.address === "string" ? parseIPv6(addr.address) : null;
        if (!ip) throw new TypeError(`invalid IPv6 address ${JSON.stringify(addr.address)}`);
        const f = L.sockaddr_in6.fields;
        setField(view, 0, f.family, K.AF_INET6);
        setField(view, 0, f.port, checkPort(addr.port));
        setField(view, 0, f.flowinfo, checkU32(addr.flowInfo, "flowInfo") ?? 0);
        out.set(ip.bytes, f.addr.offset);
        setField(view, 0, f.scopeId, checkU32(addr.scopeId, "scopeId") ?? (ip.scope === undefined ? 0 : scopeIndex(ip.scope)));
        return L.sockaddr_in6.size;
      }
      case "unix": {
        if (typeof addr.path !== "string") throw new TypeError("unix address path must be a string");
        // UTF-8 has no encoding for a lone surrogate: TextEncoder would put U+FFFD in its place
        // and name another file.
        if (!isWellFormed(addr.path)) throw new TypeError("unix socket path must be well-formed Unicode (it has a lone surrogate)");
        const path = encoder.encode(addr.path);
        const abstract = path.length > 0 && path[0] === 0;
        if (abstract && !abstractUnixSockets) {
          throw new TypeError(`abstract unix socket names (a path starting with "\\0") are Linux-only; this is ${TARGET.os}`);
        }
        // A filesystem path needs room for its terminating NUL; an abstract name does not.
        if (path.length > pathMax - (abstract ? 0 : 1)) {
          throw new RangeError(`unix socket path is ${path.length} bytes; the limit is ${pathMax - 1}`);
        }
        if (!abstract && path.includes(0)) throw new TypeError("unix socket path must not contain NUL bytes");
        setField(view, 0, L.sockaddr_un.fields.family, K.AF_UNIX);
        out.set(path, pathAt);
        return pathAt + path.length + (abstract || path.length === 0 ? 0 : 1);
      }
      default:
        throw new TypeError(`unknown address family ${JSON.stringify((addr as { family: unknown }).family)}`);
    }
  }

  function decode(bytes: Uint8Array, length: number): SocketAddress {
    const view = dataView(bytes);
    const family = length >= 2 ? Number(getField(view, 0, L.sockaddr_storage.fields.family)) : K.AF_UNIX;
    switch (family) {
      case K.AF_INET: {
        const f = L.sockaddr_in.fields;
        const a = bytes.subarray(f.addr.offset, f.addr.offset + 4);
        return { family: "ipv4", address: a.join("."), port: Number(getField(view, 0, f.port)) };
      }
      case K.AF_INET6: {
        const f = L.sockaddr_in6.fields;
        const scopeId = Number(getField(view, 0, f.scopeId));
        const flowInfo = Number(getField(view, 0, f.flowinfo));
        const address = formatIPv6(bytes.subarray(f.addr.offset, f.addr.offset + 16));
        const port = Number(getField(view, 0, f.port));
        return { family: "ipv6", address, port, ...(flowInfo ? { flowInfo } : {}), ...(scopeId ? { scopeId } : {}) };
      }
      case K.AF_UNIX: {
        let end = Math.min(length, pathAt + pathMax);
        // A leading NUL is an abstract name on Linux; elsewhere it ends an empty (unnamed) path.
        const abstract = abstractUnixSockets && end > pathAt && bytes[pathAt] === 0;
        if (!abstract) {
          const nul = bytes.indexOf(0, pathAt);
          if (nul >= 0 && nul < end) end = nul;
        }
        return { family: "unix", path: end > pathAt ? decoder.decode(bytes.subarray(pathAt, end)) : "" };
      }
      default:
        throw new TypeError(`unsupported address family ${family}`);
    }
  }

  return { maxLength, familyOf, encode, decode };
}

const codec = sockaddrCodec({ C, LAYOUT, abstractUnixSockets: TARGET.has.abstractUnixSockets });

/** Bytes of a struct sockaddr_storage: large enough for every family. */
export const SOCKADDR_MAX = codec.maxLength;
/** The AF_* constant for an address. */
export const familyOf = codec.familyOf;
/**
 * Encodes `addr` into `out` (at least {@link SOCKADDR_MAX} bytes) and returns the socklen.
 * Throws TypeError/RangeError for an address that cannot be encoded.
 */
export const encodeSockaddr = codec.encode;
/** Decodes a struct sockaddr of `length` bytes. */
export const decodeSockaddr = codec.decode;
