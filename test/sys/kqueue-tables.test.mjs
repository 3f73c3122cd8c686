/**
 * The kqueue tables (src/sys/bsd/{darwin,freebsd,openbsd,netbsd,libkqueue}.ts), checked against
 * values transcribed a second time from each system's sys/event.h (cited per table), and by byte
 * fixtures: a kevent encoded through the table's layout must equal the bytes the header's struct
 * gives (little-endian LP64), and a fixture must decode to the values it was written from. No
 * compiler for these systems is at hand; libkqueue's table is also checked against its installed
 * header with the C compiler, in kqueue-layout.test.mjs. (The BSD sockaddrs, with their length
 * byte, have byte fixtures in sockaddr.test.mjs.)
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { getField, setField } from "../../dist/ffi/layout.js";
import * as darwin from "../../dist/sys/bsd/darwin.js";
import * as freebsd from "../../dist/sys/bsd/freebsd.js";
import * as openbsd from "../../dist/sys/bsd/openbsd.js";
import * as netbsd from "../../dist/sys/bsd/netbsd.js";
import * as libkqueue from "../../dist/sys/bsd/libkqueue.js";

const TABLES = {
  darwin: darwin.KQUEUE,
  freebsd: freebsd.KQUEUE,
  openbsd: openbsd.KQUEUE,
  netbsd: netbsd.KQUEUE,
  libkqueue: libkqueue.KQUEUE,
};

/** EV_* flags: the same numbers in every header below. */
const EV = {
  EV_ADD: 0x1, EV_DELETE: 0x2, EV_ENABLE: 0x4, EV_DISABLE: 0x8, EV_ONESHOT: 0x10, EV_CLEAR: 0x20,
  EV_RECEIPT: 0x40, EV_DISPATCH: 0x80, EV_ERROR: 0x4000, EV_EOF: 0x8000,
};
/** EVFILT_USER's fflags, NOTE_LOWAT and NOTE_EXIT: the same numbers in every header below. */
const NOTES = {
  NOTE_TRIGGER: 0x01000000, NOTE_FFNOP: 0, NOTE_FFAND: 0x40000000, NOTE_FFOR: 0x80000000,
  NOTE_FFCOPY: 0xc0000000, NOTE_FFLAGSMASK: 0x00ffffff, NOTE_LOWAT: 0x1, NOTE_EXIT: 0x80000000,
};
/** The 4.4BSD filter numbers. */
const FILTERS_44BSD = {
  EVFILT_READ: -1, EVFILT_WRITE: -2, EVFILT_VNODE: -4, EVFILT_PROC: -5, EVFILT_SIGNAL: -6, EVFILT_TIMER: -7,
};

/**
 * Per system: the header, `struct kevent` as `[size, { field: [offset, bytes, signed] }]`, the
 * symbols, and the constants.
 */
const HEADERS = {
  // apple-oss-distributions/xnu bsd/sys/event.h: struct kevent { uintptr_t ident; int16_t filter;
  // uint16_t flags; uint32_t fflags; intptr_t data; void *udata; } under #pragma pack(4);
  // EVFILT_USER (-10).
  darwin: {
    kevent: [32, { ident: [0, 8, false], filter: [8, 2, true], flags: [10, 2, false], fflags: [12, 4, false], data: [16, 8, true], udata: [24, 8, false] }],
    symbols: { kqueue: "kqueue", kevent: "kevent" },
    K: { ...FILTERS_44BSD, EVFILT_USER: -10, ...EV, ...NOTES },
  },
  // freebsd/freebsd-src sys/sys/event.h (FreeBSD 12 and later): { __uintptr_t ident; short filter;
  // unsigned short flags; unsigned int fflags; __int64_t data; void *udata; __uint64_t ext[4]; };
  // EVFILT_USER (-11). lib/libc/include/compat.h: kevent@FBSD_1.0 is freebsd11_kevent, so the
  // default `kevent` is the 64-byte one.
  freebsd: {
    kevent: [64, { ident: [0, 8, false], filter: [8, 2, true], flags: [10, 2, false], fflags: [12, 4, false], data: [16, 8, true], udata: [24, 8, false] }],
    symbols: { kqueue: "kqueue", kevent: "kevent" },
    K: { ...FILTERS_44BSD, EVFILT_USER: -11, ...EV, ...NOTES },
  },
  // openbsd/src sys/sys/event.h,v 1.74 (2025-05-10): { __uintptr_t ident; short filter;
  // unsigned short flags; unsigned int fflags; __int64_t data; void *udata; }; EVFILT_USER (-10).
  openbsd: {
    kevent: [32, { ident: [0, 8, false], filter: [8, 2, true], flags: [10, 2, false], fflags: [12, 4, false], data: [16, 8, true], udata: [24, 8, false] }],
    symbols: { kqueue: "kqueue", kevent: "kevent" },
    K: { ...FILTERS_44BSD, EVFILT_USER: -10, ...EV, ...NOTES },
  },
  // NetBSD/src sys/sys/event.h,v 1.45: { uintptr_t ident; uint32_t filter; uint32_t flags;
  // uint32_t fflags; int64_t data; void *udata; }, kevent() __RENAME(__kevent50); EVFILT_READ 0U,
  // EVFILT_WRITE 1U, EVFILT_VNODE 3U, EVFILT_PROC 4U, EVFILT_SIGNAL 5U, EVFILT_TIMER 6U,
  // EVFILT_USER 8U. sys/compat/sys/event.h (2023) keeps this layout as `struct kevent100` for
  // `__kevent50`.
  netbsd: {
    kevent: [40, { ident: [0, 8, false], filter: [8, 4, false], flags: [12, 4, false], fflags: [16, 4, false], data: [24, 8, true], udata: [32, 8, false] }],
    symbols: { kqueue: "kqueue", kevent: "__kevent50" },
    K: {
      EVFILT_READ: 0, EVFILT_WRITE: 1, EVFILT_VNODE: 3, EVFILT_PROC: 4, EVFILT_SIGNAL: 5, EVFILT_TIMER: 6,
      EVFILT_USER: 8, ...EV, ...NOTES,
    },
  },
  // mheily/libkqueue include/sys/event.h.in (f966089): { uintptr_t ident; short filter;
  // unsigned short flags; unsigned int fflags; intptr_t data; void *udata; }; EVFILT_USER (-11).
  libkqueue: {
    kevent: [32, { ident: [0, 8, false], filter: [8, 2, true], flags: [10, 2, false], fflags: [12, 4, false], data: [16, 8, true], udata: [24, 8, false] }],
    symbols: { kqueue: "kqueue", kevent: "kevent" },
    K: { ...FILTERS_44BSD, EVFILT_USER: -11, ...EV, ...NOTES },
  },
};

const WIDTH = { u8: 1, u16: 2, i16: 2, u32: 4, i32: 4, u64: 8, i64: 8, ptr: 8 };
const SIGNED = new Set(["i16", "i32", "i64"]);

/** Bytes from a list of little-endian fields: `[offset, bytes, value]`, the rest zero. */
function bytesOf(size, fields) {
  const out = new Uint8Array(size);
  for (const [offset, bytes, value] of fields) {
    let v = BigInt.asUintN(bytes * 8, BigInt(value));
    for (let i = 0; i < bytes; i++, v >>= 8n) out[offset + i] = Number(v & 0xffn);
  }
  return out;
}

function hex(bytes) {
  return Buffer.from(bytes).toString("hex");
}

/** Writes one kevent through the table's layout at `base`. */
function encode(view, base, layout, event) {
  for (const key of ["ident", "filter", "flags", "fflags", "data", "udata"]) setField(view, base, layout.fields[key], event[key]);
}

function decode(view, base, layout) {
  const out = {};
  for (const key of ["ident", "filter", "flags", "fflags", "data", "udata"]) out[key] = getField(view, base, layout.fields[key]);
  return out;
}

describe("the kqueue tables match their headers", () => {
  for (const [os, table] of Object.entries(TABLES)) {
    const header = HEADERS[os];

    test(`${os}: flavour, symbols and constants`, () => {
      assert.equal(table.flavour, os);
      assert.deepEqual({ ...table.symbols }, header.symbols);
      assert.deepEqual({ ...table.K }, header.K);
    });

    test(`${os}: struct kevent is ${header.kevent[0]} bytes, each field at the header's offset, width and signedness`, () => {
      const [size, fields] = header.kevent;
      assert.equal(table.kevent.size, size);
      const got = Object.fromEntries(
        Object.entries(table.kevent.fields).map(([k, f]) => [k, [f.offset, WIDTH[f.kind], SIGNED.has(f.kind)]]),
      );
      assert.deepEqual(got, fields);
    });

    test(`${os}: struct timespec is two 64-bit words`, () => {
      assert.equal(table.timespec.size, 16);
      assert.deepEqual(
        Object.values(table.timespec.fields).map((f) => [f.c, f.offset, f.kind]),
        [["tv_sec", 0, "i64"], ["tv_nsec", 8, "i64"]],
      );
    });
  }

  test("EVFILT_USER: -10 on macOS and OpenBSD, -11 on FreeBSD and libkqueue, 8 on NetBSD", () => {
    const user = Object.fromEntries(Object.entries(TABLES).map(([os, t]) => [os, t.K.EVFILT_USER]));
    assert.deepEqual(user, { darwin: -10, freebsd: -11, openbsd: -10, netbsd: 8, libkqueue: -11 });
  });

  test("sizes: 32 on macOS, OpenBSD and libkqueue, 64 on FreeBSD, 40 on NetBSD", () => {
    const sizes = Object.fromEntries(Object.entries(TABLES).map(([os, t]) => [os, t.kevent.size]));
    assert.deepEqual(sizes, { darwin: 32, freebsd: 64, openbsd: 32, netbsd: 40, libkqueue: 32 });
  });
});

/**
 * The change every backend writes first: ident 7, EVFILT_READ, EV_ADD|EV_CLEAR|EV_RECEIPT, no
 * fflags or data, udata 0x123456789 (wider than 32 bits, so a truncated pointer shows).
 */
const CHANGE = (K) => ({ ident: 7n, filter: K.EVFILT_READ, flags: K.EV_ADD | K.EV_CLEAR | K.EV_RECEIPT, fflags: 0, data: 0n, udata: 0x123456789n });

/** The bytes of CHANGE, from the header layouts above, written out by hand. */
const CHANGE_BYTES = {
  // ident | filter ffff (-1) | flags 0061 | fflags | data | udata
  bsd32: "0700000000000000" + "ffff" + "6100" + "00000000" + "0000000000000000" + "8967452301000000",
  // the same, then ext[4]
  freebsd: "0700000000000000" + "ffff" + "6100" + "00000000" + "0000000000000000" + "8967452301000000" + "00".repeat(32),
  // ident | filter 0 (EVFILT_READ) | flags 61 as u32 | fflags | 4 bytes padding | data | udata
  netbsd: "0700000000000000" + "00000000" + "61000000" + "00000000" + "00000000" + "0000000000000000" + "8967452301000000",
};

/**
 * An event as the kernel hands it back, with every field's high bits set where it has them:
 * ident 0x1_0000_0009 (beyond 32 bits), EVFILT_USER, EV_EOF|EV_ERROR (bit 15 of a u16),
 * fflags NOTE_FFCOPY|0x123456 (bit 31), data -2 (a signed 64-bit value), udata 0xfedcba9876543210.
 */
const EVENT = (K) => ({ ident: 0x100000009n, filter: K.EVFILT_USER, flags: K.EV_EOF | K.EV_ERROR, fflags: 0xc0123456, data: -2n, udata: 0xfedcba9876543210n });

function eventBytes(os) {
  const [size, f] = HEADERS[os].kevent;
  const K = HEADERS[os].K;
  const e = EVENT(K);
  return bytesOf(size, [
    [f.ident[0], 8, e.ident], [f.filter[0], f.filter[1], e.filter], [f.flags[0], f.flags[1], e.flags],
    [f.fflags[0], 4, e.fflags], [f.data[0], 8, e.data], [f.udata[0], 8, e.udata],
  ]);
}

describe("struct kevent byte fixtures", () => {
  const fixtures = { darwin: "bsd32", freebsd: "freebsd", openbsd: "bsd32", netbsd: "netbsd", libkqueue: "bsd32" };

  for (const [os, table] of Object.entries(TABLES)) {
    test(`${os}: a change (EV_ADD|EV_CLEAR|EV_RECEIPT on fd 7) encodes to the header's bytes`, () => {
      const size = table.kevent.size;
      // Two entries, so the second starts one stride in; the bytes around them are left alone.
      const buffer = new Uint8Array(8 + 2 * size + 8).fill(0xee);
      buffer.fill(0, 8, 8 + 2 * size);
      const view = new DataView(buffer.buffer);
      encode(view, 8, table.kevent, CHANGE(table.K));
      encode(view, 8 + size, table.kevent, CHANGE(table.K));
      const expected = CHANGE_BYTES[fixtures[os]];
      assert.equal(expected.length, 2 * size);
      assert.equal(hex(buffer.subarray(8, 8 + size)), expected);
      assert.equal(hex(buffer.subarray(8 + size, 8 + 2 * size)), expected);
      assert.equal(hex(buffer.subarray(0, 8)) + hex(buffer.subarray(8 + 2 * size)), "ee".repeat(16));
    });

    test(`${os}: a returned event decodes from the header's bytes, high bits and sign intact`, () => {
      const bytes = eventBytes(os);
      const view = new DataView(bytes.buffer);
      const e = EVENT(table.K);
      const got = decode(view, 0, table.kevent);
      assert.deepEqual(
        { ...got, filter: Number(got.filter), flags: Number(got.flags), fflags: Number(got.fflags) },
        e,
      );
      // and writes back to the same bytes
      const again = new Uint8Array(table.kevent.size);
      encode(new DataView(again.buffer), 0, table.kevent, e);
      assert.equal(hex(again), hex(bytes));
    });
  }

  test("the NetBSD event fixture, by hand: filter 8 and flags 0xc000 as 32-bit words, data after 4 bytes of padding", () => {
    assert.equal(
      hex(eventBytes("netbsd")),
      "0900000001000000" + "08000000" + "00c00000" + "563412c0" + "00000000" + "feffffffffffffff" + "1032547698badcfe",
    );
  });

  test("the 4.4BSD event fixture, by hand: filter -10 as an int16, flags 0xc000 as a uint16", () => {
    assert.equal(
      hex(eventBytes("darwin")),
      "0900000001000000" + "f6ff" + "00c0" + "563412c0" + "feffffffffffffff" + "1032547698badcfe",
    );
  });
});
