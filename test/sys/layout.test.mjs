/**
 * Checks every constant, io_uring enum value, errno value and struct layout in `src/sys/linux/constants.ts` against
 * the system's C headers: a C file is generated from the tables, compiled, run, and each value it
 * prints is compared with the JavaScript one. Skipped, with the reason, when not on Linux or when
 * no C compiler is installed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { compareGroups, findCompiler, identifier, runInC } from "./c-check.mjs";

import { C, CMSG_ALIGN, ERRNO, IORING, LAYOUT, cmsgLen, cmsgSpace } from "../../dist/sys/linux/constants.js";

const HEADERS = [
  "sys/socket.h", "netinet/in.h", "netinet/tcp.h", "sys/un.h", "sys/epoll.h", "poll.h", "fcntl.h",
  "sys/eventfd.h", "dlfcn.h", "sys/uio.h", "sys/mman.h", "sys/syscall.h", "sys/utsname.h", "linux/io_uring.h", "linux/time_types.h",
  "errno.h", "stddef.h", "stdio.h", "stdint.h", "unistd.h",
];

/** Data sizes the CMSG_* macros are checked at: an fd, two fds, three, four, seven. */
const CMSG_SIZES = [4, 8, 12, 16, 28];

/** Byte width of each scalar field kind on LP64; `bytes` is checked against `length` instead. */
const KIND_SIZE = { u8: 1, u16: 2, u16be: 2, i16: 2, u32: 4, i32: 4, u64: 8, i64: 8, ptr: 8 };

const C_TYPE = /^[A-Za-z_][A-Za-z0-9_ ]*(\[[0-9]+\])?$/;

/**
 * Lines printing `expression` (by default the macro itself) under `key`, or `key missing` when
 * the headers do not define macro `name`.
 */
function printMacro(key, name, value, expression = name) {
  // Flags with bit 31 set (EPOLLET is `1u << 31`) may be int or unsigned int depending on the libc;
  // reading them as unsigned 32-bit compares the bit pattern, which is what the kernel sees.
  const cast = value >= 2 ** 31 && value < 2 ** 32 ? "(long long)(unsigned int)" : "(long long)";
  return [
    `#ifdef ${identifier(name)}`,
    `  printf("${key} %lld\\n", ${cast}(${expression}));`,
    "#else",
    `  puts("${key} missing");`,
    "#endif",
  ].join("\n");
}

function printValue(key, expression) {
  return `  printf("${key} %lld\\n", (long long)(${expression}));`;
}

/** Every value to check: `key` (printed by C), `label` (names it in failures), `js`, `group`. */
function checks() {
  const list = [];
  for (const [name, js] of Object.entries(C)) {
    list.push({ group: "C", key: `const.${name}`, label: name, js, line: printMacro(`const.${name}`, name, js) });
  }
  for (const [name, js] of Object.entries(ERRNO)) {
    list.push({ group: "ERRNO", key: `errno.${name}`, label: name, js, line: printMacro(`errno.${name}`, name, js) });
  }
  for (const [name, js] of Object.entries(IORING)) {
    // Enum members, not macros: printed unconditionally, so a header without one fails to compile.
    list.push({ group: "IORING", key: `enum.${identifier(name)}`, label: name, js, line: printValue(`enum.${name}`, name) });
  }
  for (const [layoutKey, layout] of Object.entries(LAYOUT)) {
    const group = `LAYOUT.${layoutKey}`;
    const type = layout.c;
    assert.match(type, C_TYPE, `${group}: ${type} is not a C type name the generator handles`);
    list.push({
      group, key: `size.${layoutKey}`, label: `${type} size`, js: layout.size,
      line: printValue(`size.${layoutKey}`, `sizeof(${type})`),
    });
    for (const [fieldKey, field] of Object.entries(layout.fields)) {
      const member = identifier(field.c);
      const at = `${layoutKey}.${fieldKey}`;
      list.push({
        group, key: `offset.${at}`, label: `${type}.${member} offset`, js: field.offset,
        line: printValue(`offset.${at}`, `offsetof(${type}, ${member})`),
      });
      const width = field.kind === "bytes" ? field.length : KIND_SIZE[field.kind];
      assert.notEqual(width, undefined, `${type}.${member}: kind ${field.kind} has no known size`);
      list.push({
        group, key: `sizeof.${at}`, label: `${type}.${member} size (${field.kind})`, js: width,
        line: printValue(`sizeof.${at}`, `sizeof(((${type} *)0)->${member})`),
      });
    }
  }
  list.push({
    group: "CMSG", key: "cmsg.align", label: "CMSG_ALIGN(1)", js: CMSG_ALIGN,
    line: printMacro("cmsg.align", "CMSG_ALIGN", CMSG_ALIGN, "CMSG_ALIGN(1)"),
  });
  for (const n of CMSG_SIZES) {
    list.push({
      group: "CMSG", key: `cmsg.space.${n}`, label: `CMSG_SPACE(${n})`, js: cmsgSpace(n),
      line: printValue(`cmsg.space.${n}`, `CMSG_SPACE(${n})`),
    });
    list.push({
      group: "CMSG", key: `cmsg.len.${n}`, label: `CMSG_LEN(${n})`, js: cmsgLen(n),
      line: printValue(`cmsg.len.${n}`, `CMSG_LEN(${n})`),
    });
  }
  return list;
}

function program(list) {
  return [
    "#define _GNU_SOURCE",
    ...HEADERS.map((h) => `#include <${h}>`),
    "",
    "int main(void) {",
    ...list.map((c) => c.line),
    "  return 0;",
    "}",
    "",
  ].join("\n");
}

test("constants.ts C, ERRNO, LAYOUT and CMSG_* match the C headers", async (t) => {
  if (process.platform !== "linux") {
    t.skip(`Linux constants are checked only on Linux (this is ${process.platform})`);
    return;
  }
  const compiler = findCompiler();
  if (compiler === undefined) {
    t.skip("no C compiler found (cc/gcc/clang): struct layouts and constants not checked");
    return;
  }
  const list = checks();
  const values = runInC(compiler, program(list));
  const groups = await compareGroups(t, list, values, "the C headers");

  await t.test("every table entry was checked", () => {
    const counted = (group) => groups.get(group)?.length ?? 0;
    assert.equal(counted("C"), Object.keys(C).length);
    assert.equal(counted("IORING"), Object.keys(IORING).length);
    assert.equal(counted("ERRNO"), Object.keys(ERRNO).length);
    for (const [layoutKey, layout] of Object.entries(LAYOUT)) {
      // sizeof, then offsetof and member size per field
      assert.equal(counted(`LAYOUT.${layoutKey}`), 1 + 2 * Object.keys(layout.fields).length, layoutKey);
    }
    assert.equal(counted("CMSG"), 1 + 2 * CMSG_SIZES.length);
    assert.ok(Object.keys(C).length > 50 && Object.keys(ERRNO).length > 50, "tables are not empty");
  });
});
