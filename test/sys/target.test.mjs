/**
 * The platform layer: `describeTarget` for every OS evloop knows (and some it does not), the
 * order in which C libraries are tried per platform, the running target, and what importing
 * evloop does on another OS — simulated in a child process whose `process.platform` is changed
 * before evloop loads: the import must not throw, and what cannot work must fail when used, with
 * a message that says why.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

import { describeTarget, libcCandidates, TARGET, TABLE, C, ERRNO, LAYOUT, POLL_READABLE, POLL_WRITABLE, POLL_READ_CLOSED } from "../../dist/sys/target.js";
import { libcResolution } from "../../dist/sys/libc.js";

const distUrl = (path) => new URL(`../../dist/${path}`, import.meta.url).href;

describe("describeTarget()", () => {
  test("Linux with glibc or musl: epoll, io_uring, eventfd, poll, abstract Unix names; the Linux table", () => {
    for (const libc of ["glibc", "musl"]) {
      const t = describeTarget({ platform: "linux", arch: "x64", libc });
      assert.equal(t.os, "linux");
      assert.equal(t.libc, libc);
      assert.equal(t.table, "linux");
      assert.deepEqual(t.has, {
        epoll: true, ioUring: true, eventfd: true, kqueue: false, poll: true, iocp: false, abstractUnixSockets: true,
      });
      assert.equal(t.unsupported, null);
    }
    assert.equal(describeTarget({ platform: "linux", arch: "arm64" }).libc, null, "an unknown C library stays unknown");
  });

  test("macOS and the BSDs: kqueue and poll, their own table and C library, no Linux interfaces", () => {
    for (const os of ["darwin", "freebsd", "openbsd", "netbsd"]) {
      const t = describeTarget({ platform: os, arch: "x64" });
      assert.equal(t.table, os);
      assert.equal(t.libc, os);
      assert.deepEqual(t.has, {
        epoll: false, ioUring: false, eventfd: false, kqueue: true, poll: true, iocp: false, abstractUnixSockets: false,
      }, os);
      assert.equal(t.unsupported, null, os);
    }
    assert.equal(describeTarget({ platform: "darwin", arch: "arm64" }).unsupported, null);
    assert.equal(describeTarget({ platform: "freebsd", arch: "arm64" }).unsupported, null);
  });

  test("Windows: IOCP only, its own table, no C library; x64 only", () => {
    const t = describeTarget({ platform: "win32", arch: "x64" });
    assert.equal(t.table, "win32");
    assert.equal(t.libc, null);
    assert.deepEqual(t.has, {
      epoll: false, ioUring: false, eventfd: false, kqueue: false, poll: false, iocp: true, abstractUnixSockets: false,
    });
    assert.equal(t.unsupported, null);
    assert.deepEqual(libcCandidates(t), []);
    assert.match(describeTarget({ platform: "win32", arch: "arm64" }).unsupported, /Windows layouts are for x64, not arm64/);
  });

  test("an unknown OS is described, not rejected", () => {
    const t = describeTarget({ platform: "aix", arch: "ppc64" });
    assert.equal(t.os, "aix");
    assert.equal(t.table, null);
    assert.ok(Object.values(t.has).every((v) => v === false));
    assert.match(t.unsupported, /no constants or struct layouts for aix/);
  });

  test("32-bit and big-endian CPUs are unsupported, saying why", () => {
    for (const [platform, arch] of [["linux", "ia32"], ["linux", "arm"], ["linux", "s390x"], ["freebsd", "ia32"]]) {
      const t = describeTarget({ platform, arch });
      assert.match(t.unsupported, new RegExp(`64-bit little-endian CPUs, and ${arch} is not one`), `${platform}/${arch}`);
    }
    assert.match(describeTarget({ platform: "netbsd", arch: "arm64" }).unsupported, /NetBSD table is for x64 only/);
  });

  test("is pure: the same input gives the same description", () => {
    const input = { platform: "freebsd", arch: "arm64" };
    assert.deepEqual(describeTarget(input), describeTarget({ ...input }));
  });
});

describe("libcCandidates()", () => {
  const names = (platform, arch, libc) => libcCandidates(describeTarget({ platform, arch, libc }));

  test("glibc: libc.so.6 only", () => {
    assert.deepEqual(names("linux", "x64", "glibc"), ["libc.so.6"]);
  });

  test("musl: the Alpine soname for the CPU, then libc.so", () => {
    assert.deepEqual(names("linux", "x64", "musl"), ["libc.musl-x86_64.so.1", "libc.so"]);
    assert.deepEqual(names("linux", "arm64", "musl"), ["libc.musl-aarch64.so.1", "libc.so"]);
    assert.deepEqual(names("linux", "mips", "musl"), ["libc.so"], "no Alpine name for an unknown CPU");
  });

  test("Linux with an unknown C library: glibc's name first, then musl's", () => {
    assert.deepEqual(names("linux", "x64", null), ["libc.so.6", "libc.musl-x86_64.so.1", "libc.so"]);
  });

  test("macOS, FreeBSD, OpenBSD, NetBSD", () => {
    assert.deepEqual(names("darwin", "arm64"), ["/usr/lib/libSystem.B.dylib"]);
    assert.deepEqual(names("freebsd", "x64"), ["libc.so.7"]);
    assert.deepEqual(names("openbsd", "x64"), ["libc.so"]);
    assert.deepEqual(names("netbsd", "x64"), ["libc.so.12"]);
  });

  test("none on Windows or an unknown OS", () => {
    assert.deepEqual(names("win32", "x64"), []);
    assert.deepEqual(names("sunos", "x64"), []);
  });
});

describe("TARGET (this process)", () => {
  test("describes the running platform, and the library that loaded is its first candidate that exists", () => {
    assert.equal(TARGET.os, process.platform);
    assert.equal(TARGET.arch, process.arch);
    assert.deepEqual(TARGET, describeTarget({ platform: process.platform, arch: process.arch, libc: TARGET.libc }));
    if (process.platform === "linux") {
      const glibc = typeof process.report?.getReport().header.glibcVersionRuntime === "string";
      assert.equal(TARGET.libc, glibc ? "glibc" : "musl", "the flavour agrees with process.report");
      assert.equal(libcResolution.ok, true);
      assert.ok(libcCandidates(TARGET).includes(libcResolution.path), libcResolution.path);
    }
  });

  test("exports the chosen table under the names src/loop imports", () => {
    assert.equal(ERRNO, TABLE.ERRNO);
    assert.equal(LAYOUT, TABLE.LAYOUT);
    for (const [name, value] of Object.entries(TABLE.C)) assert.equal(C[name], value, name);
    assert.equal(POLL_READABLE, TABLE.POLL_READABLE);
    assert.equal(POLL_WRITABLE, C.POLLOUT);
    assert.equal(POLL_READ_CLOSED, TABLE.POLL_READ_CLOSED);
    if (process.platform === "linux") assert.equal(POLL_READABLE, C.POLLIN | C.POLLPRI | 0x2000, "POLLRDHUP on Linux");
  });
});

/**
 * Runs `body` (an async function's source, receiving evloop, `sys/target.js` and the libc
 * resolution) in a child whose process.platform reads `platform` before evloop is imported.
 * Returns what `body` returns, through JSON.
 */
function simulate(platform, body) {
  // koffi finds its native module by process.platform, so it loads first, for real, as Node's
  // adapter loads it: required from dist/ (its CommonJS build; import() would load its ES module
  // build, another instance, and the adapter's require would then load koffi under the fake OS).
  const source = `
    (await import("node:module")).createRequire(${JSON.stringify(distUrl("index.js"))})("koffi");
    Object.defineProperty(process, "platform", { value: ${JSON.stringify(platform)} });
    const evloop = await import(${JSON.stringify(distUrl("index.js"))});
    const target = await import(${JSON.stringify(distUrl("sys/target.js"))});
    const libc = await import(${JSON.stringify(distUrl("sys/libc.js"))});
    const out = await (${body})(evloop, target, libc.libcResolution);
    process.stdout.write(JSON.stringify(out));
  `;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", source], { encoding: "utf8", timeout: 30_000 });
  assert.equal(child.status, 0, `the child for ${platform} failed:\n${child.stderr}`);
  return JSON.parse(child.stdout);
}

/** Calls `fn` and returns the message of what it throws (null if it does not throw). */
const FAILS = `(fn) => { try { fn(); return null; } catch (e) { return String(e.message); } }`;

describe("importing evloop on another OS", () => {
  test("darwin: the import works, the macOS table is chosen, and using the missing libc names it", () => {
    const out = simulate("darwin", `async (evloop, target, resolution) => {
      const fails = ${FAILS};
      return {
        table: target.TARGET.table,
        eagain: target.ERRNO.EAGAIN,
        solSocket: target.C.SOL_SOCKET,
        readable: target.POLL_READABLE,
        resolution: resolution.ok ? "loaded" : resolution.error.message,
        loop: fails(() => evloop.createLoop()),
        socket: fails(() => evloop.UdpSocket),
        probes: evloop.probeBackends(),
      };
    }`);
    assert.equal(out.table, "darwin");
    assert.equal(out.eagain, 35);
    assert.equal(out.solSocket, 0xffff);
    assert.equal(out.readable, 0x1 | 0x2, "POLLIN|POLLPRI: macOS has no POLLRDHUP");
    assert.match(out.resolution, /cannot load the C library on darwin \(tried \/usr\/lib\/libSystem\.B\.dylib\)/);
    assert.match(out.loop, /not available|cannot|no backend/i, `createLoop failed with: ${out.loop}`);
    assert.equal(out.socket, null);
    assert.deepEqual(out.probes.map((p) => p.name), ["kqueue", "poll", "blocking"], "darwin's candidates, best first");
    for (const p of out.probes) {
      assert.equal(p.available, false, `${p.name} reported available without a C library`);
      assert.match(p.reason, /cannot load the C library on darwin/);
    }
  });

  test("freebsd, openbsd, netbsd: the import works and names the libc it tried", () => {
    for (const [os, tried] of [["freebsd", "libc.so.7"], ["openbsd", "libc.so"], ["netbsd", "libc.so.12"]]) {
      const out = simulate(os, `async (evloop, target, resolution) => ({
        table: target.TARGET.table,
        resolution: resolution.ok ? "loaded" : resolution.error.message,
      })`);
      assert.equal(out.table, os);
      // openbsd's "libc.so" is a name this Linux machine may resolve (to its own libc); the
      // others must fail, naming what was tried.
      if (out.resolution !== "loaded") assert.ok(out.resolution.includes(`(tried ${tried})`), out.resolution);
      else assert.equal(os, "openbsd", `${os}: ${tried} loaded on Linux`);
    }
  });

  test("win32: the import works; a libc call fails saying Windows has no POSIX C library", () => {
    const out = simulate("win32", `async (evloop, target, resolution) => {
      const { libc } = await import(${JSON.stringify(distUrl("sys/libc.js"))});
      const fails = ${FAILS};
      return { has: target.TARGET.has, call: fails(() => libc.socket(2, 1, 0)), resolution: resolution.error.message };
    }`);
    assert.equal(out.has.iocp, true);
    assert.match(out.call, /^socket\(\) is not available: Windows has no POSIX C library: evloop uses Winsock/);
    assert.match(out.resolution, /Windows has no POSIX C library/);
  });

  test("Linux-only calls fail on another OS naming it, not at import", () => {
    const out = simulate("freebsd", `async () => {
      const { eventfd } = await import(${JSON.stringify(distUrl("sys/linux/eventfd.js"))});
      const { epollCreate } = await import(${JSON.stringify(distUrl("sys/linux/epoll.js"))});
      const fails = ${FAILS};
      return { eventfd: fails(() => eventfd()), epoll: fails(() => epollCreate()) };
    }`);
    assert.match(out.eventfd, /^eventfd\(\) is not available: epoll, eventfd and io_uring are Linux system calls, and this is freebsd/);
    assert.match(out.epoll, /^epoll_create1\(\) is not available: .* this is freebsd/);
  });
});
