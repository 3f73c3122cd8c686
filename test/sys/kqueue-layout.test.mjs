/**
 * Checks libkqueue's table (src/sys/bsd/libkqueue.ts) against the header installed with the
 * library, with the C compiler: a C file printing sizeof/offsetof/member size and signedness of
 * `struct kevent` and `struct timespec`, every constant in `K` (under #ifdef), and whether the
 * library exports the table's symbols is generated, compiled, run, and compared with the table.
 *
 * Where: EVLOOP_KQUEUE_LIB names the .so (e.g. /tmp/libkqueue/lib/libkqueue.so, as
 * ../shared/tools/build-libkqueue.sh installs it); the header is then
 * <dirname(dirname(lib))>/include/kqueue/sys/event.h. Skipped, with the reason, when the variable
 * is unset, the header is not there, or no C compiler is found.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";

import { compareGroups, findCompiler, identifier, runInC } from "./c-check.mjs";

import { KQUEUE } from "../../dist/sys/bsd/libkqueue.js";

const KIND_SIZE = { u16: 2, i16: 2, u32: 4, i32: 4, u64: 8, i64: 8, ptr: 8 };
const SIGNED = new Set(["i16", "i32", "i64"]);

/** Where the library and its header are, or why the check cannot run. */
function locate() {
  const lib = process.env.EVLOOP_KQUEUE_LIB;
  if (lib === undefined || lib === "") return { skip: "EVLOOP_KQUEUE_LIB is not set: libkqueue's header not checked" };
  const include = join(dirname(dirname(lib)), "include", "kqueue");
  const header = join(include, "sys", "event.h");
  if (!existsSync(header)) return { skip: `no libkqueue header at ${header} (EVLOOP_KQUEUE_LIB=${lib})` };
  const compiler = findCompiler();
  if (compiler === undefined) return { skip: "no C compiler found (cc/gcc/clang): libkqueue's table not checked" };
  return { lib, include, compiler };
}

function printValue(key, expression) {
  return `  printf("${key} %lld\\n", (long long)(${expression}));`;
}

/** Every value to check: `key` (printed by C), `label` (names it in failures), `js`, `group`, `line`. */
function checks(lib) {
  const list = [];
  for (const [name, js] of Object.entries(KQUEUE.K)) {
    // Flags with bit 31 set (NOTE_EXIT, NOTE_FFOR, NOTE_FFCOPY) are unsigned in the header: read
    // as unsigned 32-bit so the bit pattern is compared.
    const cast = js >= 2 ** 31 && js < 2 ** 32 ? "(long long)(unsigned int)" : "(long long)";
    list.push({
      group: "K", key: `const.${name}`, label: name, js,
      line: [
        `#ifdef ${identifier(name)}`,
        `  printf("const.${name} %lld\\n", ${cast}(${name}));`,
        "#else",
        `  puts("const.${name} missing");`,
        "#endif",
      ].join("\n"),
    });
  }
  for (const [layoutKey, layout] of [["kevent", KQUEUE.kevent], ["timespec", KQUEUE.timespec]]) {
    const group = `layout.${layoutKey}`;
    const type = layout.c;
    list.push({ group, key: `size.${layoutKey}`, label: `${type} size`, js: layout.size, line: printValue(`size.${layoutKey}`, `sizeof(${type})`) });
    for (const [fieldKey, field] of Object.entries(layout.fields)) {
      const member = identifier(field.c);
      const at = `${layoutKey}.${fieldKey}`;
      const width = KIND_SIZE[field.kind];
      assert.notEqual(width, undefined, `${type}.${member}: kind ${field.kind} has no known size`);
      list.push({
        group, key: `offset.${at}`, label: `${type}.${member} offset`, js: field.offset,
        line: printValue(`offset.${at}`, `offsetof(${type}, ${member})`),
      });
      list.push({
        group, key: `sizeof.${at}`, label: `${type}.${member} size (${field.kind})`, js: width,
        line: printValue(`sizeof.${at}`, `sizeof(((${type} *)0)->${member})`),
      });
      if (field.kind !== "ptr") {
        // An integer member is signed when -1 converted to its type is negative.
        list.push({
          group, key: `signed.${at}`, label: `${type}.${member} signedness (${field.kind})`, js: SIGNED.has(field.kind) ? 1 : 0,
          line: printValue(`signed.${at}`, `(__typeof__(((${type} *)0)->${member}))-1 < 0`),
        });
      }
    }
  }
  for (const [role, symbol] of Object.entries(KQUEUE.symbols)) {
    list.push({
      group: "symbols", key: `symbol.${role}`, label: `${identifier(symbol)} exported by ${lib}`, js: 1,
      line: printValue(`symbol.${role}`, `lib != NULL && dlsym(lib, "${symbol}") != NULL`),
    });
  }
  return list;
}

function program(lib, list) {
  return [
    "#include <dlfcn.h>",
    "#include <stddef.h>",
    "#include <stdint.h>",
    "#include <stdio.h>",
    "#include <time.h>",
    "#include <sys/types.h>",
    "#include <sys/event.h>",
    "",
    "int main(void) {",
    `  void *lib = dlopen(${JSON.stringify(lib)}, RTLD_NOW | RTLD_LOCAL);`,
    ...list.map((c) => c.line),
    "  return 0;",
    "}",
    "",
  ].join("\n");
}

const where = locate();

test("libkqueue.ts KQUEUE matches libkqueue's installed header", { skip: where.skip ?? false }, async (t) => {
  const list = checks(where.lib);
  const values = runInC(where.compiler, program(where.lib, list), { includes: [where.include], libs: ["-ldl"] });
  const groups = await compareGroups(t, list, values, "libkqueue's header");

  await t.test("every table entry was checked", () => {
    const counted = (group) => groups.get(group)?.length ?? 0;
    assert.equal(counted("K"), Object.keys(KQUEUE.K).length);
    // sizeof, then offsetof, member size and (for integers) signedness per field
    const expected = (layout) =>
      1 + Object.values(layout.fields).reduce((n, f) => n + (f.kind === "ptr" ? 2 : 3), 0);
    assert.equal(counted("layout.kevent"), expected(KQUEUE.kevent));
    assert.equal(counted("layout.timespec"), expected(KQUEUE.timespec));
    assert.equal(counted("symbols"), 2);
    assert.ok(Object.keys(KQUEUE.K).length > 20, "the table is not empty");
  });
});
