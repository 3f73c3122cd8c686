/**
 * Checks every constant, error number and struct layout in `src/sys/windows/constants.ts` against
 * the Windows headers of MinGW-w64, the way `layout.test.mjs` checks the Linux table against
 * glibc's. The program would be a Windows .exe, so nothing runs: each value becomes one
 * `_Static_assert` line of a generated C file, compiled with `x86_64-w64-mingw32-gcc
 * -fsyntax-only`, and the compiler's errors name the failing lines, hence the entries (all of
 * them, in one run). Besides each struct's size and its fields' offsets and sizes, each field's
 * kind is checked: a pointer, or an integer of that signedness. Runs wherever the cross compiler
 * is installed; skipped, saying how to get it, where it is not.
 *
 * An entry that stands for another name (SO_REUSEPORT is SO_REUSEADDR, SHUT_RD is SD_RECEIVE,
 * ECONNREFUSED is WSAECONNREFUSED …) is checked against that name, as the comments in
 * constants.ts say; a POSIX-only one (F_GETFD … -1, MSG_DONTWAIT 0) against its absence from the
 * headers. What no header has is listed below and checked against hard-coded numbers with their
 * source: AFD (undocumented) against ../shared/notes/windows.md, and the few names this
 * MinGW-w64 lacks but the Windows SDK has, against the SDK's numbers (the headers win when they
 * have the name).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { BSD_ERRNO } from "../../dist/sys/bsd/common.js";
import { cmsgMacros } from "../../dist/sys/table.js";
import { C, ERRNO, LAYOUT, TABLE, WIN, WIN_LAYOUT } from "../../dist/sys/windows/constants.js";

const COMPILER = "x86_64-w64-mingw32-gcc";
const INSTALL = "apt-get install gcc-mingw-w64-x86-64";

/**
 * The headers, in the usual order for ntstatus.h: WIN32_NO_STATUS keeps winnt.h's few STATUS_*
 * out so ntstatus.h can define them all. afunix.h came late to MinGW-w64: without it,
 * SOCKADDR_UN is skipped.
 */
const PRELUDE = [
  "#define _WIN32_WINNT 0x0A00", // Windows 10: AF_UNIX, WSAPoll, the keep-alive options
  "#define WIN32_NO_STATUS",
  "#include <winsock2.h>",
  "#include <ws2tcpip.h>",
  "#include <mswsock.h>",
  "#include <mstcpip.h>",
  "#include <windows.h>",
  "#undef WIN32_NO_STATUS",
  "#include <ntstatus.h>",
  "#include <winternl.h>",
  "#if __has_include(<afunix.h>)",
  "#include <afunix.h>",
  "#define EVLOOP_HAVE_AFUNIX 1",
  "#endif",
  "#include <errno.h>",
  "#include <fcntl.h>",
  "#include <io.h>",
  "#include <limits.h>",
  "#include <stddef.h>",
];

/** Data sizes the WSA_CMSG_* macros are checked at, as in layout.test.mjs. */
const CMSG_SIZES = [4, 8, 12, 16, 28];

/** Byte width of each scalar field kind on LLP64 (x64 Windows); `bytes` is checked against `length`. */
const KIND_SIZE = { u8: 1, u16: 2, u16be: 2, i16: 2, u32: 4, i32: 4, u64: 8, i64: 8, ptr: 8 };

const NOTES = "../shared/notes/windows.md";

/**
 * Not in the headers: AFD is undocumented and declared by no SDK or MinGW header, so these are
 * checked against the numbers in ../shared/notes/windows.md (verified under Wine; its "Codes"
 * paragraph and "Layouts" table), copied here.
 */
const FROM_NOTES = {
  IOCTL_AFD_POLL: 0x12024,
  AFD_POLL_RECEIVE: 0x1,
  AFD_POLL_RECEIVE_EXPEDITED: 0x2,
  AFD_POLL_SEND: 0x4,
  AFD_POLL_DISCONNECT: 0x8,
  AFD_POLL_ABORT: 0x10,
  AFD_POLL_LOCAL_CLOSE: 0x20,
  AFD_POLL_ACCEPT: 0x80,
  AFD_POLL_CONNECT_FAIL: 0x100,
};

/**
 * AFD_POLL_INFO with one AFD_POLL_HANDLE_INFO, from the notes' "Layouts" table: 16 + 16·n bytes;
 * Timeout 0 (i64), NumberOfHandles 8, Exclusive 12, Handles 16; a handle info is Handle 0,
 * Events 8, Status 12 (16 bytes). Widths are the gaps between offsets. `[offset, width]`.
 */
const AFD_POLL_INFO_FROM_NOTES = {
  size: 16 + 16 * 1,
  fields: {
    Timeout: [0, 8],
    NumberOfHandles: [8, 4],
    Exclusive: [12, 4],
    "Handles[0].Handle": [16 + 0, 8],
    "Handles[0].Events": [16 + 8, 4],
    "Handles[0].Status": [16 + 12, 4],
  },
};

/**
 * In the Windows SDK's headers but not in older MinGW-w64's (Debian 12 ships v10, which lacks
 * them): checked against the headers when they define the name, else against the SDK's number,
 * copied here with its source.
 */
const SDK_ONLY = {
  // ws2ipdef.h: the keep-alive options (Windows 10 1703/1709); later MinGW-w64 has them too.
  TCP_KEEPALIVE: [3, "the Windows SDK's ws2ipdef.h"],
  TCP_KEEPCNT: [16, "the Windows SDK's ws2ipdef.h"],
  TCP_KEEPINTVL: [17, "the Windows SDK's ws2ipdef.h"],
  ERROR_HANDLES_CLOSED: [676, `the Windows SDK's winerror.h and ${NOTES} (STATUS_HANDLES_CLOSED → 676)`],
};

/**
 * C entries that stand for another header name (the comments in constants.ts say which), by
 * entry: the C expressions the value must equal. Unlisted entries are checked against their own name.
 */
const C_STANDS_FOR = {
  // "Windows has no SO_REUSEPORT; … SO_REUSEADDR … is what it maps to."
  SO_REUSEPORT: ["SO_REUSEADDR"],
  // "TCP_KEEPALIVE (the idle time …)"
  TCP_KEEPIDLE: ["TCP_KEEPALIVE"],
  // "SD_RECEIVE, SD_SEND, SD_BOTH."
  SHUT_RD: ["SD_RECEIVE"],
  SHUT_WR: ["SD_SEND"],
  SHUT_RDWR: ["SD_BOTH"],
  // "WSAPoll's values: POLLIN is POLLRDNORM|POLLRDBAND, POLLOUT is POLLWRNORM."
  POLLIN: ["POLLIN", "POLLRDNORM | POLLRDBAND"],
  POLLOUT: ["POLLOUT", "POLLWRNORM"],
};

/**
 * C entries Windows has no such thing for: the value they must have (constants.ts says why) and
 * the names the headers must not define, lest the table miss a real one.
 */
const C_NOT_ON_WINDOWS = {
  // "0 asks for nothing, which is exactly right for both."
  MSG_DONTWAIT: 0,
  MSG_NOSIGNAL: 0,
  // NONE: "Windows passes no handles over sockets"; "Windows has no POSIX fd calls".
  SCM_RIGHTS: -1,
  F_GETFD: -1,
  F_SETFD: -1,
  F_GETFL: -1,
  F_SETFL: -1,
  FD_CLOEXEC: -1,
  O_NONBLOCK: -1,
  O_CLOEXEC: -1,
};

/**
 * Fields whose kind's signedness is not the C type's: the C type's (`undefined`: either), and why.
 */
const KIND_EXCEPTIONS = {
  "IO_STATUS_BLOCK.Status": {
    signed: true,
    why: "an NTSTATUS, read unsigned like WIN's STATUS_* and OVERLAPPED.Internal",
  },
  // The SDK declares the families ADDRESS_FAMILY (USHORT), MinGW-w64 `short`; no family is
  // big enough for the sign to matter.
  "SOCKADDR_STORAGE.ss_family": { signed: undefined, why: "USHORT in the SDK, short in MinGW-w64" },
  "SOCKADDR_IN.sin_family": { signed: undefined, why: "USHORT in the SDK, short in MinGW-w64" },
  "SOCKADDR_IN6.sin6_family": { signed: undefined, why: "USHORT in the SDK, short in MinGW-w64" },
};

/** Winsock's name for an errno name where it is not WSA + the name (POSIX's EWOULDBLOCK is EAGAIN). */
const WSA_NAME = { EAGAIN: "WSAEWOULDBLOCK" };

/** WIN entries that stand for a header expression other than their own name. */
const WIN_STANDS_FOR = {
  INVALID_HANDLE_VALUE: ["(LONG_PTR)INVALID_HANDLE_VALUE"],
  WINSOCK_VERSION_2_2: ["MAKEWORD(2, 2)", "WINSOCK_VERSION"],
};

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const C_TYPE = /^[A-Za-z_][A-Za-z0-9_ ]*(\[[0-9]+\])?$/;
const MEMBER = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*$/;

function findCompiler() {
  const probe = spawnSync(COMPILER, ["--version"], { encoding: "utf8" });
  return probe.error === undefined && probe.status === 0 ? COMPILER : undefined;
}

function identifier(name) {
  assert.match(name, IDENTIFIER, `${name} is not a C identifier: the generated C file would be wrong`);
  return name;
}

/** A C integer literal for a JS number or bigint. */
function literal(js) {
  return `(${String(js)}LL)`;
}

/**
 * `expression` as a long long. Values with bit 31 set (INFINITE, FIONBIO, STATUS_CANCELLED) are
 * `long` or `unsigned long` depending on the header, and LONG is 32-bit on Windows: reading
 * them as unsigned 32-bit compares the bit pattern, which is what Windows sees.
 */
function asLongLong(expression, js) {
  const unsigned = typeof js === "number" && js >= 2 ** 31 && js < 2 ** 32;
  return `${unsigned ? "(long long)(unsigned int)" : "(long long)"}(${expression})`;
}

/**
 * Every check. `entry` names the table entry it covers (e.g. `C.SO_REUSEPORT`), `label` what it
 * compares (in failures). `how` is one of:
 * - `equal`: the compiler asserts C expression `expr` == `js`;
 * - `absent`: the compiler asserts the headers do not define macro `name`;
 * - `sdk`: `equal` when the headers define `name`, else `js` must equal `fallback` (from `source`);
 * - `known`: `js` must equal `expected`, from `source` (no header has it);
 * - `guid`: macro `name` (a GUID initializer) must spell `js`, read through the preprocessor.
 * `only` is a macro the check is compiled under (afunix.h's).
 */
function checks() {
  const list = [];
  const add = (check) => list.push(check);
  const equal = (group, entry, label, js, expr, only) =>
    add({ how: "equal", group, entry, label, js, expr, only });
  const named = (entry, name, expr) => (expr === name ? entry : `${entry} (${expr})`);

  for (const [name, js] of Object.entries(C)) {
    const entry = `C.${name}`;
    if (name in C_NOT_ON_WINDOWS) {
      const label = `${entry} (not on Windows)`;
      const expected = C_NOT_ON_WINDOWS[name];
      add({ how: "known", group: "C", entry, label, js, expected, source: "the comment in constants.ts" });
      add({ how: "absent", group: "C", entry, label, name: identifier(name) });
      continue;
    }
    if (name === "SO_REUSEPORT") add({ how: "absent", group: "C", entry, label: entry, name });
    for (const expr of C_STANDS_FOR[name] ?? [identifier(name)]) {
      const sdk = SDK_ONLY[expr];
      if (sdk !== undefined) {
        const [fallback, source] = sdk;
        const label = named(entry, name, expr);
        add({ how: "sdk", group: "C", entry, label, js, name: expr, expr, fallback, source: `${source} (not in these headers)` });
      } else {
        equal("C", entry, named(entry, name, expr), js, expr);
      }
    }
  }

  for (const [name, js] of Object.entries(ERRNO)) {
    const entry = `ERRNO.${identifier(name)}`;
    const wsa = WSA_NAME[name] ?? `WSA${name}`;
    if (name === "ENOTBLK") {
      // Neither Winsock nor the C runtime has it; the table takes "the BSDs' 15".
      add({ how: "absent", group: "ERRNO", entry, label: `${entry} (not in the C runtime)`, name });
      add({ how: "absent", group: "ERRNO", entry, label: `${entry} (not in Winsock)`, name: wsa });
      const source = "the BSDs' table (BSD_ERRNO)";
      add({ how: "known", group: "ERRNO", entry, label: `${entry} (the BSDs')`, js, expected: BSD_ERRNO.ENOTBLK, source });
    } else if (js >= 10000) {
      // Winsock has the name: Winsock's number.
      equal("ERRNO", entry, `${entry} (${wsa})`, js, wsa);
    } else {
      // The C runtime's number, and only because Winsock has no such name.
      equal("ERRNO", entry, `${entry} (errno.h)`, js, name);
      add({ how: "absent", group: "ERRNO", entry, label: `${entry} (not in Winsock, hence the C runtime's)`, name: wsa });
    }
  }

  // What a field's kind says beyond its size: a pointer, or an integer of that signedness (the
  // Linux check has only sizes; here a WSAPOLLFD.events declared u16 would pass those).
  const kindCheck = (entry, type, field, only) => {
    const member = `((${type} *)0)->${field.c}`;
    const exception = KIND_EXCEPTIONS[`${type}.${field.c}`];
    const signed = exception === undefined ? field.kind.startsWith("i") : exception.signed;
    const integer = `__builtin_classify_type(${member}) == 1`;
    const isSigned = `((__typeof__(${member}))-1 < 0)`;
    const [what, expr] =
      field.kind === "ptr" ? ["a pointer", `__builtin_classify_type(${member}) == 5`]
      : signed === undefined ? ["an integer", integer]
      : signed ? ["a signed integer", `${integer} && ${isSigned}`]
      : ["an unsigned integer", `${integer} && !${isSigned}`];
    const why = exception === undefined ? "" : `: ${exception.why}`;
    const label = `${type}.${field.c} is ${what} (${field.kind}${why})`;
    add({ how: "equal", group: entry, entry, label, js: 1, expr, only, claim: true });
  };
  const layoutChecks = (tableName, layoutKey, layout, only) => {
    const entry = `${tableName}.${layoutKey}`;
    const type = layout.c;
    assert.match(type, C_TYPE, `${entry}: ${type} is not a C type name the generator handles`);
    equal(entry, entry, `${type} size`, layout.size, `sizeof(${type})`, only);
    for (const field of Object.values(layout.fields)) {
      assert.match(field.c, MEMBER, `${entry}: ${field.c} is not a member designator the generator handles`);
      equal(entry, entry, `${type}.${field.c} offset`, field.offset, `offsetof(${type}, ${field.c})`, only);
      const width = field.kind === "bytes" ? field.length : KIND_SIZE[field.kind];
      assert.notEqual(width, undefined, `${type}.${field.c}: kind ${field.kind} has no known size`);
      const size = `sizeof(((${type} *)0)->${field.c})`;
      equal(entry, entry, `${type}.${field.c} size (${field.kind})`, width, size, only);
      if (field.kind !== "bytes") kindCheck(entry, type, field, only);
    }
  };
  for (const [layoutKey, layout] of Object.entries(LAYOUT)) {
    layoutChecks("LAYOUT", layoutKey, layout, layoutKey === "sockaddr_un" ? "EVLOOP_HAVE_AFUNIX" : undefined);
  }

  const notes = `not in the headers: checked against ${NOTES}`;
  for (const [name, js] of Object.entries(WIN)) {
    const entry = `WIN.${identifier(name)}`;
    if (name in FROM_NOTES) {
      add({ how: "known", group: notes, entry, label: entry, js, expected: FROM_NOTES[name], source: NOTES });
    } else if (name.startsWith("WSAID_")) {
      add({ how: "guid", group: "WIN", entry, label: entry, js, name });
    } else if (name in SDK_ONLY) {
      const [fallback, source] = SDK_ONLY[name];
      add({ how: "sdk", group: "WIN", entry, label: entry, js, name, expr: name, fallback, source: `${source} (not in these headers)` });
    } else {
      for (const expr of WIN_STANDS_FOR[name] ?? [name]) equal("WIN", entry, named(entry, name, expr), js, expr);
    }
  }

  for (const [layoutKey, layout] of Object.entries(WIN_LAYOUT)) {
    if (layoutKey !== "AFD_POLL_INFO") {
      layoutChecks("WIN_LAYOUT", layoutKey, layout);
      continue;
    }
    const entry = `WIN_LAYOUT.${layoutKey}`;
    const known = (label, js, expected) =>
      add({ how: "known", group: notes, entry, label, js, expected, source: NOTES });
    known(`${layout.c} size`, layout.size, AFD_POLL_INFO_FROM_NOTES.size);
    for (const field of Object.values(layout.fields)) {
      const [offset, width] = AFD_POLL_INFO_FROM_NOTES.fields[field.c] ?? [];
      known(`${layout.c}.${field.c} offset`, field.offset, offset);
      const js = field.kind === "bytes" ? field.length : KIND_SIZE[field.kind];
      known(`${layout.c}.${field.c} size (${field.kind})`, js, width);
    }
  }

  // The rest of TABLE: the control-message macros (mswsock.h's WSA_CMSG_*), the poll masks, the
  // I/O size limit ("WSABUF lengths are 32-bit; INT_MAX").
  const cmsg = cmsgMacros(LAYOUT.cmsghdr.size, TABLE.CMSG_ALIGN);
  const tableCheck = (key, label, js, expr) => equal("TABLE", `TABLE.${key}`, `${label} (${expr})`, js, expr);
  tableCheck("CMSG_ALIGN", "CMSG_ALIGN", TABLE.CMSG_ALIGN, "WSA_CMSGDATA_ALIGN(1)");
  tableCheck("CMSG_ALIGN", "CMSG_ALIGN", TABLE.CMSG_ALIGN, "WSA_CMSGHDR_ALIGN(1)");
  tableCheck("CMSG_ALIGN", "CMSG data offset", cmsg.dataOffset, "WSA_CMSGDATA_ALIGN(sizeof(WSACMSGHDR))");
  for (const n of CMSG_SIZES) {
    tableCheck("CMSG_ALIGN", `CMSG_SPACE(${n})`, cmsg.space(n), `WSA_CMSG_SPACE(${n})`);
    tableCheck("CMSG_ALIGN", `CMSG_LEN(${n})`, cmsg.len(n), `WSA_CMSG_LEN(${n})`);
  }
  tableCheck("POLL_READABLE", "TABLE.POLL_READABLE", TABLE.POLL_READABLE, "POLLIN");
  tableCheck("POLL_WRITABLE", "TABLE.POLL_WRITABLE", TABLE.POLL_WRITABLE, "POLLOUT");
  tableCheck("POLL_READ_CLOSED", "TABLE.POLL_READ_CLOSED", TABLE.POLL_READ_CLOSED, "POLLHUP");
  tableCheck("MAX_IO_BYTES", "TABLE.MAX_IO_BYTES", TABLE.MAX_IO_BYTES, "INT_MAX");
  return list;
}

/** A number for messages: in hex as well from 0x100 up, where flags and codes are. */
function show(n) {
  if (typeof n === "string" || n === undefined) return String(n);
  const big = BigInt(n);
  return big >= 0x100n ? `${big} (0x${big.toString(16)})` : String(big);
}

/** A C string literal. */
function cString(text) {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * The C file of the compiler's checks: one `_Static_assert` line per check, or a `#warning` line
 * where an `sdk` check's name is missing. Returns the source and, by line number (1-based), the
 * index of the check each assertion or warning line belongs to.
 */
function program(list) {
  const lines = [...PRELUDE, ""];
  const lineOf = new Map();
  const mark = (index) => lineOf.set(lines.length, index);
  const assertEqual = (check) =>
    `_Static_assert(${asLongLong(check.expr, check.js)} == ${literal(check.js)}, ${cString(`${check.label}: JS ${check.js}`)});`;
  list.forEach((check, index) => {
    if (check.only !== undefined) lines.push(`#ifdef ${check.only}`);
    if (check.how === "equal") {
      lines.push(assertEqual(check));
      mark(index);
    } else if (check.how === "absent") {
      lines.push(`#ifdef ${identifier(check.name)}`);
      lines.push(`_Static_assert(0, ${cString(`${check.label}: ${check.name} is defined by the headers`)});`);
      mark(index);
      lines.push("#endif");
    } else if (check.how === "sdk") {
      lines.push(`#ifdef ${identifier(check.name)}`);
      lines.push(assertEqual(check));
      mark(index);
      lines.push("#else");
      lines.push(`#warning ${cString(`evloop: ${check.name} missing`)}`);
      mark(index);
      lines.push("#endif");
    }
    if (check.only !== undefined) lines.push("#endif");
  });
  lines.push("#ifndef EVLOOP_HAVE_AFUNIX", "#warning \"evloop: afunix.h missing\"");
  const afunixLine = lines.length;
  lines.push("#endif", "");
  return { source: lines.join("\n"), lineOf, afunixLine };
}

function compile(compiler, source, args) {
  const dir = mkdtempSync(join(tmpdir(), "evloop-windows-layout-"));
  try {
    const file = join(dir, "windows-layout.c");
    const out = join(dir, "out");
    writeFileSync(file, source);
    // LC_ALL=C: plain quotes in messages; no carets: one line per diagnostic.
    const flags = ["-fno-diagnostics-show-caret", "-fdiagnostics-color=never", ...args(out)];
    const run = spawnSync(compiler, [...flags, file], { encoding: "utf8", env: { ...process.env, LC_ALL: "C" } });
    assert.equal(run.error, undefined, `${compiler} did not run: ${run.error}`);
    let output;
    try {
      output = readFileSync(out, "utf8");
    } catch {
      output = undefined;
    }
    return { file, status: run.status, stderr: run.stderr, output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The compiler's diagnostics for the generated file, as `{ line, severity, message }`. */
function diagnostics(file, stderr) {
  const out = [];
  for (const text of stderr.split("\n")) {
    if (!text.startsWith(`${file}:`)) continue;
    const m = /^:(\d+):(?:\d+:)? (error|warning|fatal error|note): (.*)$/.exec(text.slice(file.length));
    if (m !== null) out.push({ line: Number(m[1]), severity: m[2], message: m[3] });
  }
  return out;
}

/**
 * The headers' values of the `equal`/`sdk` checks at `indexes`, for the failure messages: each as
 * a `const long long`, compiled to assembly and read back. Best effort: an empty Map if it does
 * not compile.
 */
function headerValues(compiler, list, indexes) {
  const lines = [...PRELUDE, ""];
  for (const i of indexes) {
    const check = list[i];
    if (check.only !== undefined) lines.push(`#ifdef ${check.only}`);
    lines.push(`const long long evloop_value_${i} = ${asLongLong(check.expr, check.js)};`);
    if (check.only !== undefined) lines.push("#endif");
  }
  const run = compile(compiler, `${lines.join("\n")}\n`, (out) => ["-S", "-o", out]);
  const values = new Map();
  if (run.status !== 0 || run.output === undefined) return values;
  for (const m of run.output.matchAll(/^evloop_value_(\d+):\s*\n\s*\.(quad\s+(-?\d+)|space\s+8)/gm)) {
    values.set(Number(m[1]), m[3] ?? "0");
  }
  return values;
}

/**
 * The GUID initializer macros (`{Data1, Data2, Data3, {Data4[0..7]}}`), expanded by the
 * preprocessor and spelled as GUID strings; a name the headers lack comes back unexpanded.
 */
function guids(compiler, names) {
  const lines = [...PRELUDE, "", ...names.map((name) => `evloop_guid_${identifier(name)} = ${name}`), ""];
  const run = compile(compiler, lines.join("\n"), (out) => ["-E", "-P", "-o", out]);
  assert.equal(run.status, 0, `${compiler} -E failed on the GUID macros:\n${run.stderr}`);
  const spelled = new Map();
  for (const m of run.output.matchAll(/^evloop_guid_(\w+) = (.*)$/gm)) {
    const numbers = m[2].match(/0x[0-9a-fA-F]+|\b[0-9]+\b/g) ?? [];
    if (numbers.length !== 11) {
      spelled.set(m[1], `not a GUID initializer: ${m[2].trim()}`);
      continue;
    }
    const hex = (n, width) => Number(n).toString(16).padStart(width, "0");
    const bytes = (list) => list.map((b) => hex(b, 2)).join("");
    const [d1, d2, d3, ...d4] = numbers;
    spelled.set(m[1], `${hex(d1, 8)}-${hex(d2, 4)}-${hex(d3, 4)}-${bytes(d4.slice(0, 2))}-${bytes(d4.slice(2))}`);
  }
  return spelled;
}

test("windows/constants.ts C, ERRNO, LAYOUT, WIN, WIN_LAYOUT match MinGW-w64's headers", async (t) => {
  const compiler = findCompiler();
  if (compiler === undefined) {
    t.skip(`${COMPILER} not found: the Windows table is not checked (Debian/Ubuntu: ${INSTALL})`);
    return;
  }
  const list = checks();
  const { source, lineOf, afunixLine } = program(list);
  const run = compile(compiler, source, () => ["-fsyntax-only"]);
  const found = diagnostics(run.file, run.stderr);

  // What each check's line said; anything on a line that is no check's is the generator's fault.
  const said = new Map();
  const stray = [];
  for (const d of found) {
    const index = lineOf.get(d.line);
    if (d.severity === "note" || (d.line === afunixLine && d.severity === "warning")) continue;
    if (index === undefined) {
      stray.push(`${d.line}: ${d.severity}: ${d.message}`);
      continue;
    }
    said.set(index, [...(said.get(index) ?? []), d]);
  }
  const afunix = !found.some((d) => d.line === afunixLine);
  assert.deepEqual(stray, [], `the generated file has errors outside the checks:\n${run.stderr}`);
  if (run.status !== 0) {
    const errors = [...said.values()].flat().filter((d) => d.severity !== "warning");
    assert.ok(errors.length > 0, `${compiler} failed without an error on a check:\n${run.stderr}`);
  }

  // The headers' values, for the messages, where an assertion failed (its expression compiles).
  const assertionFailed = (ds) => ds.some((d) => d.message.startsWith("static assertion failed"));
  const failed = [...said].filter(([, ds]) => assertionFailed(ds)).map(([i]) => i);
  const values = failed.length > 0 ? headerValues(compiler, list, failed) : new Map();
  const spelled = guids(compiler, list.filter((c) => c.how === "guid").map((c) => c.name));

  const missing = [];
  /** Why a check failed, or undefined. */
  function mismatch(check, index) {
    const ds = said.get(index) ?? [];
    const versus = (expected, source) => `${check.label}: JS ${show(check.js)}, ${source}: ${show(expected)}`;
    if (check.how === "known") return check.js === check.expected ? undefined : versus(check.expected, check.source);
    if (check.how === "guid") {
      const guid = spelled.get(check.name);
      if (guid === check.js) return undefined;
      return `${check.label}: JS ${check.js}, headers ${guid ?? "(not defined)"}`;
    }
    if (check.how === "sdk" && ds.length > 0 && ds.every((d) => d.severity === "warning")) {
      missing.push(`${check.name} ${check.fallback}`);
      return check.js === check.fallback ? undefined : versus(check.fallback, check.source);
    }
    const errors = ds.filter((d) => d.severity !== "warning");
    if (errors.length === 0) return undefined;
    if (check.how === "absent") return `${check.label}: the headers define ${check.name}`;
    if (assertionFailed(errors)) {
      if (check.claim) return `${check.label}: not in the headers`;
      const value = values.get(index);
      return versus(value === undefined ? "another value" : BigInt(value), "the headers");
    }
    if (errors.some((d) => / undeclared /.test(d.message))) {
      return `${check.label}: the headers do not define ${check.expr}`;
    }
    return `${check.label}: ${errors.map((d) => d.message).join("; ")}`;
  }

  const groups = new Map();
  list.forEach((check, index) => {
    groups.set(check.group, [...(groups.get(check.group) ?? []), [check, index]]);
  });
  for (const [group, members] of groups) {
    await t.test(group, (st) => {
      if (!afunix && members.some(([c]) => c.only === "EVLOOP_HAVE_AFUNIX")) {
        st.skip("afunix.h is not in this MinGW-w64 (later releases have it): SOCKADDR_UN not checked");
        return;
      }
      const wrong = members.map(([c, i]) => mismatch(c, i)).filter((m) => m !== undefined);
      const message = `${group}: ${wrong.length} of ${members.length} checks fail:\n  ${wrong.join("\n  ")}`;
      assert.deepEqual(wrong, [], message);
    });
  }
  if (missing.length > 0) {
    t.diagnostic(`not in these headers, checked against the Windows SDK's numbers: ${[...new Set(missing)].join(", ")}`);
  }

  await t.test("every table entry was checked", () => {
    const entries = new Set(list.map((c) => c.entry));
    const count = (entry) => list.filter((c) => c.entry === entry).length;
    for (const [table, name] of [[C, "C"], [ERRNO, "ERRNO"], [WIN, "WIN"]]) {
      for (const key of Object.keys(table)) {
        assert.ok(entries.has(`${name}.${key}`), `${name}.${key} is not checked`);
      }
    }
    for (const [table, name] of [[LAYOUT, "LAYOUT"], [WIN_LAYOUT, "WIN_LAYOUT"]]) {
      for (const [key, layout] of Object.entries(table)) {
        // sizeof, then offsetof, member size and (from the headers) kind per field
        const fields = Object.values(layout.fields);
        const kinds = key === "AFD_POLL_INFO" ? 0 : fields.filter((f) => f.kind !== "bytes").length;
        assert.equal(count(`${name}.${key}`), 1 + 2 * fields.length + kinds, `${name}.${key}`);
      }
    }
    const sizes = [C, ERRNO, WIN].map((table) => Object.keys(table).length);
    assert.ok(sizes.every((n) => n > 40), "tables are not empty");
  });

  await t.test("ERRNO: no two names share a number", () => {
    const byNumber = new Map();
    for (const [name, n] of Object.entries(ERRNO)) byNumber.set(n, [...(byNumber.get(n) ?? []), name]);
    const shared = [...byNumber.values()].filter((names) => names.length > 1);
    assert.deepEqual(shared, []);
  });
});
