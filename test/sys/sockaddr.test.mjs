/**
 * Unit tests of the sockaddr codec: IP text parsing and formatting, and encode/decode round
 * trips of struct sockaddr_in, sockaddr_in6 (scope ids, v4-mapped) and sockaddr_un (paths,
 * abstract names, the unnamed address, the length limit) — for this (Linux) target, and with
 * the macOS and FreeBSD tables, whose addresses start with a length byte (`sin_len`).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeSockaddr, encodeSockaddr, formatIPv6, parseIPv4, parseIPv6, sockaddrCodec, SOCKADDR_MAX,
} from "../../dist/sys/posix/sockaddr.js";
import * as darwin from "../../dist/sys/bsd/darwin.js";
import * as freebsd from "../../dist/sys/bsd/freebsd.js";
import * as linux from "../../dist/sys/linux/constants.js";

const hex = (b) => Buffer.from(b).toString("hex");

function roundTrip(addr) {
  const out = new Uint8Array(SOCKADDR_MAX);
  const len = encodeSockaddr(addr, out);
  return { len, decoded: decodeSockaddr(out, len), bytes: out };
}

describe("parseIPv4()", () => {
  test("parses dotted quads", () => {
    assert.deepEqual([...parseIPv4("127.0.0.1")], [127, 0, 0, 1]);
    assert.deepEqual([...parseIPv4("0.0.0.0")], [0, 0, 0, 0]);
    assert.deepEqual([...parseIPv4("255.255.255.255")], [255, 255, 255, 255]);
  });

  test("rejects anything else with null", () => {
    for (const bad of ["999.1.1.1", "256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.-4", "a.b.c.d", "", " 1.2.3.4", "1.2.3.4 ", "1..3.4", "::1"]) {
      assert.equal(parseIPv4(bad), null, JSON.stringify(bad));
    }
  });
});

describe("parseIPv6()", () => {
  test("parses :: and ::1", () => {
    assert.equal(hex(parseIPv6("::").bytes), "00".repeat(16));
    assert.equal(hex(parseIPv6("::1").bytes), "00".repeat(15) + "01");
  });

  test("parses full, compressed and mixed-case forms", () => {
    assert.equal(hex(parseIPv6("2001:db8:0:0:0:0:2:1").bytes), "20010db8000000000000000000020001");
    assert.equal(hex(parseIPv6("2001:DB8::2:1").bytes), "20010db8000000000000000000020001");
    assert.equal(hex(parseIPv6("fe80::").bytes), "fe80" + "00".repeat(14));
  });

  test("parses an embedded IPv4 (v4-mapped)", () => {
    assert.equal(hex(parseIPv6("::ffff:127.0.0.1").bytes), "00000000000000000000ffff7f000001");
  });

  test("keeps a %scope", () => {
    const r = parseIPv6("fe80::1%1");
    assert.equal(r.scope, "1");
    assert.equal(hex(r.bytes), "fe80" + "00".repeat(13) + "01");
    assert.equal(parseIPv6("fe80::1%lo").scope, "lo");
    assert.equal(parseIPv6("::1").scope, undefined);
  });

  test("rejects malformed text with null", () => {
    for (const bad of ["", ":", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "::g", "12345::", "fe80::1%", "::ffff:999.0.0.1", "1.2.3.4", "[::1]"]) {
      assert.equal(parseIPv6(bad), null, JSON.stringify(bad));
    }
  });
});

describe("formatIPv6()", () => {
  test("formats canonically (RFC 5952)", () => {
    const f = (text) => formatIPv6(parseIPv6(text).bytes);
    assert.equal(f("::"), "::");
    assert.equal(f("::1"), "::1");
    assert.equal(f("2001:0DB8:0000:0000:0000:0000:0002:0001"), "2001:db8::2:1");
    assert.equal(f("1:0:0:2:0:0:0:3"), "1:0:0:2::3", "the longest zero run is compressed");
    assert.equal(f("1:0:2:3:4:5:6:7"), "1:0:2:3:4:5:6:7", "a single zero group is not compressed");
    assert.equal(f("fe80::1"), "fe80::1");
    assert.equal(f("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
  });

  test("formats v4-mapped addresses with a dotted quad", () => {
    assert.equal(formatIPv6(parseIPv6("::ffff:7f00:1").bytes), "::ffff:127.0.0.1");
  });

  test("parse and format round-trip canonical text", () => {
    for (const text of ["::", "::1", "fe80::1", "2001:db8::1:0:0:1", "::ffff:10.0.0.1", "1::", "1:2:3:4:5:6:7:8"]) {
      assert.equal(formatIPv6(parseIPv6(text).bytes), text);
    }
  });
});

describe("encodeSockaddr()/decodeSockaddr()", () => {
  test("IPv4 round trip, with the port in network byte order", () => {
    const { len, decoded, bytes } = roundTrip({ family: "ipv4", address: "127.0.0.1", port: 8080 });
    assert.equal(len, 16);
    assert.deepEqual(decoded, { family: "ipv4", address: "127.0.0.1", port: 8080 });
    assert.equal(hex(bytes.subarray(2, 4)), "1f90", "port 8080 big-endian");
    assert.equal(hex(bytes.subarray(4, 8)), "7f000001");
  });

  test("IPv6 round trips: ::, ::1, v4-mapped", () => {
    for (const address of ["::", "::1", "::ffff:127.0.0.1", "2001:db8::2:1"]) {
      const { len, decoded } = roundTrip({ family: "ipv6", address, port: 443 });
      assert.equal(len, 28);
      assert.deepEqual(decoded, { family: "ipv6", address, port: 443 });
    }
  });

  test("IPv6 scope ids: from %index, from scopeId, and flowInfo", () => {
    assert.deepEqual(roundTrip({ family: "ipv6", address: "fe80::1%1", port: 1 }).decoded, { family: "ipv6", address: "fe80::1", port: 1, scopeId: 1 });
    assert.deepEqual(roundTrip({ family: "ipv6", address: "fe80::1", port: 1, scopeId: 7 }).decoded, { family: "ipv6", address: "fe80::1", port: 1, scopeId: 7 });
    assert.deepEqual(roundTrip({ family: "ipv6", address: "fe80::1%lo", port: 1 }).decoded.scopeId, 1, "lo is interface 1 on Linux");
    assert.deepEqual(roundTrip({ family: "ipv6", address: "::1", port: 1, flowInfo: 5 }).decoded, { family: "ipv6", address: "::1", port: 1, flowInfo: 5 });
  });

  test("unix path round trip; length counts the terminating NUL", () => {
    const path = "/tmp/evloop.sock";
    const { len, decoded } = roundTrip({ family: "unix", path });
    assert.equal(len, 2 + path.length + 1);
    assert.deepEqual(decoded, { family: "unix", path });
  });

  test("unix abstract name round trip; no terminating NUL", () => {
    const path = "\0evloop-abstract\0with-nul";
    const { len, decoded } = roundTrip({ family: "unix", path });
    assert.equal(len, 2 + path.length);
    assert.deepEqual(decoded, { family: "unix", path });
  });

  test("unix unnamed address: encodes as the family only, decodes as path ''", () => {
    const { len, decoded } = roundTrip({ family: "unix", path: "" });
    assert.equal(len, 2);
    assert.deepEqual(decoded, { family: "unix", path: "" });
  });

  test("unix paths: 107 bytes fit, 108 do not (RangeError); abstract names may use all 108", () => {
    assert.equal(roundTrip({ family: "unix", path: "/" + "x".repeat(106) }).decoded.path.length, 107);
    assert.throws(() => encodeSockaddr({ family: "unix", path: "/" + "x".repeat(107) }, new Uint8Array(SOCKADDR_MAX)), RangeError);
    assert.throws(() => encodeSockaddr({ family: "unix", path: "/" + "é".repeat(60) }, new Uint8Array(SOCKADDR_MAX)), RangeError, "the limit is in bytes, not characters");
    const abstract = "\0" + "a".repeat(107);
    assert.deepEqual(roundTrip({ family: "unix", path: abstract }).decoded, { family: "unix", path: abstract });
    assert.throws(() => encodeSockaddr({ family: "unix", path: "\0" + "a".repeat(108) }, new Uint8Array(SOCKADDR_MAX)), RangeError);
  });

  test("bad addresses throw TypeError/RangeError", () => {
    const out = new Uint8Array(SOCKADDR_MAX);
    assert.throws(() => encodeSockaddr({ family: "ipv4", address: "999.1.1.1", port: 1 }, out), TypeError);
    assert.throws(() => encodeSockaddr({ family: "ipv4", address: "::1", port: 1 }, out), TypeError);
    assert.throws(() => encodeSockaddr({ family: "ipv6", address: "127.0.0.1", port: 1 }, out), TypeError);
    assert.throws(() => encodeSockaddr({ family: "ipv4", address: "1.2.3.4", port: 70000 }, out), RangeError);
    assert.throws(() => encodeSockaddr({ family: "ipv4", address: "1.2.3.4", port: -1 }, out), RangeError);
    assert.throws(() => encodeSockaddr({ family: "ipv4", address: "1.2.3.4", port: 1.5 }, out), RangeError);
    assert.throws(() => encodeSockaddr({ family: "ipv6", address: "fe80::1%no-such-interface0", port: 1 }, out), TypeError);
    assert.throws(() => encodeSockaddr({ family: "unix", path: "/tmp/a\0b" }, out), TypeError);
    assert.throws(() => encodeSockaddr({ family: "unix", path: 5 }, out), TypeError);
    assert.throws(() => encodeSockaddr({ family: "x" }, out), TypeError);
    assert.throws(() => encodeSockaddr(null, out), TypeError);
  });

  // Found by test/property/sockaddr.test.mjs: these were wrapped or truncated into range (a
  // DataView stores -1 as 4294967295), encoding another address than the one asked for.
  test("flowInfo and scopeId out of the u32 range, or not integers, are RangeErrors", () => {
    const out = new Uint8Array(SOCKADDR_MAX);
    for (const v of [-1, 2 ** 32, 1.5, NaN, Infinity, "1"]) {
      assert.throws(() => encodeSockaddr({ family: "ipv6", address: "fe80::1", port: 1, scopeId: v }, out), RangeError, `scopeId ${v}`);
      assert.throws(() => encodeSockaddr({ family: "ipv6", address: "fe80::1", port: 1, flowInfo: v }, out), RangeError, `flowInfo ${v}`);
    }
    assert.throws(() => encodeSockaddr({ family: "ipv6", address: "fe80::1%4294967296", port: 1 }, out), RangeError);
    assert.deepEqual(roundTrip({ family: "ipv6", address: "fe80::1", port: 1, scopeId: 2 ** 32 - 1, flowInfo: 2 ** 32 - 1 }).decoded, {
      family: "ipv6", address: "fe80::1", port: 1, scopeId: 2 ** 32 - 1, flowInfo: 2 ** 32 - 1,
    });
  });

  // Found by test/property/sockaddr.test.mjs: TextEncoder turned the lone surrogate into U+FFFD,
  // so the socket was bound to (or connected to) another path.
  test("a unix path with a lone surrogate is a TypeError, not another path", () => {
    const out = new Uint8Array(SOCKADDR_MAX);
    assert.throws(() => encodeSockaddr({ family: "unix", path: "/tmp/a\ud800" }, out), /well-formed/);
    assert.throws(() => encodeSockaddr({ family: "unix", path: "\0\udc00x" }, out), TypeError);
    assert.equal(roundTrip({ family: "unix", path: "/tmp/\u{1f600}" }).decoded.path, "/tmp/\u{1f600}");
  });

  test("decoding an unknown family throws TypeError", () => {
    const bytes = new Uint8Array(SOCKADDR_MAX);
    bytes[0] = 99;
    assert.throws(() => decodeSockaddr(bytes, 16), TypeError);
  });
});

describe("sockaddrCodec() with the BSD tables (sin_len)", () => {
  const codecs = {
    darwin: sockaddrCodec({ C: darwin.C, LAYOUT: darwin.LAYOUT, abstractUnixSockets: false }),
    freebsd: sockaddrCodec({ C: freebsd.C, LAYOUT: freebsd.LAYOUT, abstractUnixSockets: false }),
  };
  const encode = (codec, addr) => {
    const out = new Uint8Array(codec.maxLength).fill(0xee);
    const len = codec.encode(addr, out);
    return { len, bytes: out.subarray(0, len), decoded: codec.decode(out, len) };
  };

  for (const [os, codec] of Object.entries(codecs)) {
    const { AF_INET, AF_INET6, AF_UNIX } = os === "darwin" ? darwin.C : freebsd.C;

    test(`${os}: IPv4 starts with sin_len 16 and a one-byte family`, () => {
      const { len, bytes, decoded } = encode(codec, { family: "ipv4", address: "127.0.0.1", port: 8080 });
      assert.equal(len, 16);
      assert.equal(hex(bytes), `10${AF_INET.toString(16).padStart(2, "0")}1f907f000001` + "00".repeat(8));
      assert.deepEqual(decoded, { family: "ipv4", address: "127.0.0.1", port: 8080 });
    });

    test(`${os}: IPv6 starts with sin6_len 28 and AF_INET6 ${AF_INET6}`, () => {
      const { len, bytes, decoded } = encode(codec, { family: "ipv6", address: "::1", port: 443, scopeId: 3, flowInfo: 9 });
      assert.equal(len, 28);
      assert.deepEqual([bytes[0], bytes[1]], [28, AF_INET6]);
      assert.equal(hex(bytes.subarray(2, 4)), "01bb");
      assert.deepEqual(decoded, { family: "ipv6", address: "::1", port: 443, scopeId: 3, flowInfo: 9 });
    });

    test(`${os}: a unix path's sun_len counts the header, the path and its NUL; 103 bytes fit, 104 do not`, () => {
      const path = "/tmp/evloop.sock";
      const { len, bytes, decoded } = encode(codec, { family: "unix", path });
      assert.equal(len, 2 + path.length + 1);
      assert.deepEqual([bytes[0], bytes[1]], [len, AF_UNIX]);
      assert.deepEqual(decoded, { family: "unix", path });
      assert.equal(encode(codec, { family: "unix", path: "/" + "x".repeat(102) }).decoded.path.length, 103);
      assert.throws(() => codec.encode({ family: "unix", path: "/" + "x".repeat(103) }, new Uint8Array(codec.maxLength)), /the limit is 103/);
    });

    test(`${os}: abstract names are Linux-only; a leading NUL decodes as the unnamed address`, () => {
      assert.throws(() => codec.encode({ family: "unix", path: "\0name" }, new Uint8Array(codec.maxLength)), /Linux-only/);
      // What getsockname reports for an unbound socket: sun_len 16, AF_UNIX, an empty path.
      const unnamed = new Uint8Array(codec.maxLength);
      unnamed.set([16, AF_UNIX]);
      assert.deepEqual(codec.decode(unnamed, 16), { family: "unix", path: "" });
    });
  }

  test("the Linux codec writes no length byte: the family is a 16-bit field at offset 0", () => {
    const codec = sockaddrCodec({ C: linux.C, LAYOUT: linux.LAYOUT, abstractUnixSockets: true });
    const { bytes } = encode(codec, { family: "ipv4", address: "10.0.0.1", port: 1 });
    assert.equal(hex(bytes.subarray(0, 4)), "02000001");
  });
});
