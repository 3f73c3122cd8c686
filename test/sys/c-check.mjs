/**
 * What the tests that check a table against C headers share (`layout.test.mjs` for Linux's,
 * `kqueue-layout.test.mjs` for libkqueue's): finding a compiler, compiling and running a
 * generated program that prints `key value` lines, and comparing what it printed with the table,
 * one subtest per group of values.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The first C compiler on PATH (cc, gcc, clang), or undefined. */
export function findCompiler() {
  for (const name of ["cc", "gcc", "clang"]) {
    const probe = spawnSync(name, ["--version"], { encoding: "utf8" });
    if (probe.error === undefined && probe.status === 0) return name;
  }
  return undefined;
}

/** `name`, asserted to be a C identifier (so the generated file cannot be wrong). */
export function identifier(name) {
  assert.match(name, IDENTIFIER, `${name} is not a C identifier: the generated C file would be wrong`);
  return name;
}

/**
 * Compiles `source` (with `includes` as -I directories and `libs` to link), runs it, and returns
 * its output as a Map from key to value.
 */
export function runInC(compiler, source, { includes = [], libs = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "evloop-c-check-"));
  try {
    const file = join(dir, "check.c");
    const exe = join(dir, "check");
    writeFileSync(file, source);
    const build = spawnSync(compiler, [...includes.flatMap((d) => ["-I", d]), file, "-o", exe, ...libs], { encoding: "utf8" });
    assert.equal(build.status, 0, `${compiler} failed to compile the generated check:\n${build.stderr}`);
    const run = spawnSync(exe, [], { encoding: "utf8" });
    assert.equal(run.status, 0, `the compiled check failed:\n${run.stderr}`);
    const values = new Map();
    for (const line of run.stdout.split("\n")) {
      if (line === "") continue;
      const space = line.lastIndexOf(" ");
      values.set(line.slice(0, space), line.slice(space + 1));
    }
    return values;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Checks every `{ key, label, js, group }` of `list` against `values`, one subtest per group;
 * `headers` names what a "missing" value was missing from. Returns the groups.
 */
export async function compareGroups(t, list, values, headers) {
  assert.equal(values.size, list.length, "the C program printed one line per checked value");
  const groups = new Map();
  for (const c of list) groups.set(c.group, [...(groups.get(c.group) ?? []), c]);
  for (const [group, members] of groups) {
    await t.test(group, () => {
      const wrong = members.map((c) => mismatch(c, values.get(c.key), headers)).filter((m) => m !== undefined);
      assert.deepEqual(wrong, [], `${group}: ${wrong.length} of ${members.length} values differ`);
    });
  }
  return groups;
}

function mismatch(check, printed, headers) {
  if (printed === undefined) return `${check.label}: not printed by the C program`;
  if (printed === "missing") return `${check.label}: not defined by ${headers}`;
  if (String(check.js) !== printed) return `${check.label}: JS ${check.js}, C ${printed}`;
  return undefined;
}
