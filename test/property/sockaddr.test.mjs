/**
 * Properties of the sockaddr codec (src/sys/posix/sockaddr.ts), with fast-check: every valid
 * IPv4, IPv6 (flow info, scope id) and Unix address (paths up to the limit, abstract names of
 * any bytes) encodes and decodes back to itself, on this target and with the macOS and FreeBSD
 * tables (length byte first); every invalid one throws a TypeError or RangeError naming the
 * problem instead of encoding something else; and decoding any bytes the kernel could hand back
 * gives a well-formed address or a TypeError, never a crash.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

// Failure reports carry the failing assertion's message, not only the counterexample.
fc.configureGlobal({ includeErrorInReport: true });
import { formatIPv6, parseIPv6, sockaddrCodec, SOCKADDR_MAX, encodeSockaddr, decodeSockaddr } from "../../dist/sys/posix/sockaddr.js";
import * as darwin from "../../dist/sys/bsd/darwin.js";
import * as freebsd from "../../dist/sys/bsd/freebsd.js";
import * as linux from "../../dist/sys/linux/constants.js";

/** Runs per property: enough to cover the shapes, bounded so the file takes well under a second. */
const RUNS = { numRuns: 300 };

const CODECS = {
  "this target": { encode: encodeSockaddr, decode: decodeSockaddr, maxLength: SOCKADDR_MAX, abstract: process.platform === "linux", pathMax: 108 },
  "the Linux table": { ...sockaddrCodec({ C: linux.C, LAYOUT: linux.LAYOUT, abstractUnixSockets: true }), abstract: true, pathMax: 108 },
  "the macOS table": { ...sockaddrCodec({ C: darwin.C, LAYOUT: darwin.LAYOUT, abstractUnixSockets: false }), abstract: false, pathMax: 104 },
  "the FreeBSD table": { ...sockaddrCodec({ C: freebsd.C, LAYOUT: freebsd.LAYOUT, abstractUnixSockets: false }), abstract: false, pathMax: 104 },
};

const utf8Length = (s) => Buffer.byteLength(s, "utf8");
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const port = fc.integer({ min: 0, max: 65535 });

/** An IPv4 address as canonical dotted-quad text. */
const ipv4Text = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join("."));
/** IPv6 text in any form fast-check writes (compressed, mixed with IPv4, upper case hex …). */
const ipv6Text = fc.oneof(fc.ipV6(), fc.uint8Array({ minLength: 16, maxLength: 16 }).map(formatIPv6));

/** The longest prefix of `s` (whole code points) that is at most `max` UTF-8 bytes. */
function cut(s, max) {
  let out = "";
  for (const ch of s) {
    if (utf8Length(out + ch) > max) break;
    out += ch;
  }
  return out;
}

/** Any code point but a surrogate (NUL included). */
const codePoint = fc.oneof(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0x80, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0x10ffff }));
/**
 * Text of any code points but lone surrogates: mostly short, sometimes up to `max` characters.
 * (Built from code points: fc.string's unit "binary" takes seconds to set up.)
 */
const anyText = (max) =>
  fc.oneof(
    fc.array(codePoint, { maxLength: max }).map((cps) => String.fromCodePoint(...cps)),
    fc.array(codePoint, { maxLength: max, size: "max" }).map((cps) => String.fromCodePoint(...cps)),
    fc.string({ maxLength: max, size: "max" }),
  );

/** A filesystem path of `max` UTF-8 bytes at most: no NUL (any other code point, no lone surrogates). */
const fsPath = (max) => anyText(max).map((s) => cut(s.replaceAll("\0", "/"), max) || "p");
/** A Linux abstract name: NUL, then any characters (NULs included), `max` bytes in all. */
const abstractName = (max) => anyText(max).map((s) => cut(`\0${s}`, max));

function roundTrip(codec, addr) {
  const out = new Uint8Array(codec.maxLength);
  const len = codec.encode(addr, out);
  assert.ok(len > 0 && len <= codec.maxLength, `socklen ${len}`);
  return codec.decode(out, len);
}

/** The address decode gives back for `addr` (zero flow info and scope id are left out). */
function canonicalIPv6(addr) {
  const { bytes } = parseIPv6(addr.address);
  const out = { family: "ipv6", address: formatIPv6(bytes), port: addr.port };
  if (addr.flowInfo) out.flowInfo = addr.flowInfo;
  if (addr.scopeId) out.scopeId = addr.scopeId;
  return out;
}

/** The encode error of an address, which must be a TypeError or RangeError with a message. */
function encodeError(codec, addr) {
  try {
    codec.encode(addr, new Uint8Array(codec.maxLength));
  } catch (e) {
    assert.ok(e instanceof TypeError || e instanceof RangeError, `expected TypeError/RangeError, got ${e?.name}: ${e?.message}`);
    assert.ok(e.message.length > 10, `an unclear message: ${e.message}`);
    return e;
  }
  return null;
}

for (const [name, codec] of Object.entries(CODECS)) {
  describe(`sockaddr codec with ${name}`, () => {
    test("IPv4 addresses and ports round-trip exactly", () => {
      fc.assert(
        fc.property(ipv4Text, port, (address, p) => {
          assert.deepEqual(roundTrip(codec, { family: "ipv4", address, port: p }), { family: "ipv4", address, port: p });
        }),
        RUNS,
      );
    });

    test("IPv6 addresses with any flow info and scope id round-trip to their canonical text", () => {
      fc.assert(
        fc.property(ipv6Text, port, fc.option(u32, { nil: undefined }), fc.option(u32, { nil: undefined }), (address, p, flowInfo, scopeId) => {
          const addr = { family: "ipv6", address, port: p, ...(flowInfo === undefined ? {} : { flowInfo }), ...(scopeId === undefined ? {} : { scopeId }) };
          const back = roundTrip(codec, addr);
          assert.deepEqual(back, canonicalIPv6(addr));
          // And the canonical text is a fixed point.
          assert.deepEqual(roundTrip(codec, back), back);
        }),
        RUNS,
      );
    });

    test("Unix paths up to the limit round-trip exactly", () => {
      fc.assert(
        fc.property(fsPath(codec.pathMax - 1), (path) => {
          assert.deepEqual(roundTrip(codec, { family: "unix", path }), { family: "unix", path });
        }),
        RUNS,
      );
    });

    if (codec.abstract) {
      test("abstract names of any bytes up to the limit round-trip exactly", () => {
        fc.assert(
          fc.property(abstractName(codec.pathMax), (path) => {
            assert.deepEqual(roundTrip(codec, { family: "unix", path }), { family: "unix", path });
          }),
          RUNS,
        );
      });
    } else {
      test("abstract names are a TypeError where there are none", () => {
        fc.assert(
          fc.property(abstractName(codec.pathMax), (path) => {
            assert.ok(encodeError(codec, { family: "unix", path }) instanceof TypeError);
          }),
          { numRuns: 50 },
        );
      });
    }

    test("Unix paths past the limit are a RangeError that states the limit", () => {
      const tooLong = fc.tuple(fsPath(300), fc.nat(200)).map(([s, extra]) => s.padEnd(codec.pathMax + extra, "x"));
      fc.assert(
        fc.property(tooLong, (path) => {
          const e = encodeError(codec, { family: "unix", path });
          assert.ok(e instanceof RangeError, `a ${utf8Length(path)}-byte path was accepted`);
          assert.match(e.message, new RegExp(`limit is ${codec.pathMax - 1}`));
        }),
        { numRuns: 100 },
      );
    });

    test("a NUL inside a filesystem path, or a lone surrogate, is a TypeError", () => {
      // Short enough that the length check, which comes first, passes.
      const withNul = fc.tuple(fsPath(40), anyText(60)).map(([a, b]) => `${a}\0${cut(b, 50)}`);
      const loneSurrogate = fc.tuple(fsPath(40), fc.integer({ min: 0xd800, max: 0xdfff })).map(([a, s]) => a + String.fromCharCode(s));
      fc.assert(
        fc.property(fc.oneof(withNul, loneSurrogate), (path) => {
          assert.ok(encodeError(codec, { family: "unix", path }) instanceof TypeError, `${JSON.stringify(path)} was accepted`);
        }),
        { numRuns: 100 },
      );
    });

    test("ports, flow info and scope ids out of range are a RangeError, never wrapped into range", () => {
      const notU16 = fc.oneof(fc.integer({ min: -(2 ** 40), max: -1 }), fc.integer({ min: 65536, max: 2 ** 40 }), fc.double({ noInteger: true }), fc.constantFrom(NaN, Infinity, -Infinity));
      const notU32 = fc.oneof(fc.integer({ min: -(2 ** 40), max: -1 }), fc.integer({ min: 2 ** 32, max: 2 ** 45 }), fc.double({ noInteger: true }), fc.constantFrom(NaN, Infinity, -Infinity));
      fc.assert(
        fc.property(notU16, (p) => {
          assert.ok(encodeError(codec, { family: "ipv4", address: "127.0.0.1", port: p }) instanceof RangeError);
          assert.ok(encodeError(codec, { family: "ipv6", address: "::1", port: p }) instanceof RangeError);
        }),
        { numRuns: 100 },
      );
      fc.assert(
        fc.property(notU32, fc.boolean(), (v, flow) => {
          const addr = { family: "ipv6", address: "fe80::1", port: 1, ...(flow ? { flowInfo: v } : { scopeId: v }) };
          assert.ok(encodeError(codec, addr) instanceof RangeError, `${flow ? "flowInfo" : "scopeId"} ${v} was accepted`);
        }),
        { numRuns: 100 },
      );
      // A numeric %scope in the text is a scope id too.
      fc.assert(
        fc.property(fc.bigInt({ min: 2n ** 32n, max: 10n ** 30n }), (scope) => {
          assert.ok(encodeError(codec, { family: "ipv6", address: `fe80::1%${scope}`, port: 1 }) instanceof RangeError, `%${scope} was accepted`);
        }),
        { numRuns: 50 },
      );
    });

    test("anything that is not an address is a TypeError or RangeError", () => {
      const junk = fc.oneof(
        fc.anything(),
        fc.record({ family: fc.constantFrom("ipv4", "ipv6", "unix", "inet", ""), address: fc.anything(), port: fc.anything(), path: fc.anything() }, { requiredKeys: ["family"] }),
        fc.record({ family: fc.constant("ipv4"), address: fc.string({ maxLength: 20 }), port }),
        fc.record({ family: fc.constant("ipv6"), address: fc.string({ maxLength: 45 }), port }),
      );
      fc.assert(
        fc.property(junk, (addr) => {
          const e = encodeError(codec, addr);
          if (e === null) {
            // Accepted: then it was a valid address, which decodes to an address of its family.
            const back = roundTrip(codec, addr);
            assert.equal(back.family, addr.family);
          }
        }),
        { numRuns: 500 },
      );
    });

    test("decoding any bytes gives a well-formed address or a TypeError", () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: codec.maxLength, maxLength: codec.maxLength }), fc.nat(codec.maxLength), fc.constantFrom(0, 1, 2), (bytes, len, family) => {
          // Make most inputs carry a known family, so each decoder gets exercised.
          if (family > 0) {
            const out = new Uint8Array(codec.maxLength);
            const len0 = codec.encode(family === 1 ? { family: "unix", path: "x" } : { family: "ipv6", address: "::1", port: 1 }, out);
            bytes.set(out.subarray(0, 2));
            len = Math.max(len, len0);
          }
          let addr;
          try {
            addr = codec.decode(bytes, len);
          } catch (e) {
            assert.ok(e instanceof TypeError, `${e?.name}: ${e?.message}`);
            return;
          }
          assert.ok(["ipv4", "ipv6", "unix"].includes(addr.family));
          if (addr.family === "unix") assert.equal(typeof addr.path, "string");
          else {
            assert.ok(Number.isInteger(addr.port) && addr.port >= 0 && addr.port <= 65535);
            assert.equal(typeof addr.address, "string");
          }
        }),
        RUNS,
      );
    });
  });
}
