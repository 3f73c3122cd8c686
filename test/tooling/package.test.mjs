/**
 * The package's shape: what `npm pack` publishes, and the line between the library (src/) and
 * the tools built on it (cli/, bench/src/). Reads files and asks npm for the pack list; runs
 * nothing of evloop, so it needs the build only for the list to be complete.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, normalize, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const root = fileURLToPath(new URL("../..", import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

/** `npm …` in the package root: through the npm running this test when there is one. */
function npm(args) {
  const viaNpm = process.env.npm_execpath?.endsWith(".js");
  const [command, argv] = viaNpm ? [process.execPath, [process.env.npm_execpath, ...args]] : ["npm", args];
  return spawnSync(command, argv, { cwd: root, encoding: "utf8", timeout: 60_000, maxBuffer: 16 << 20 });
}

let packed;
/** The paths `npm pack` would publish, or undefined when npm cannot be run. */
function packList() {
  if (packed === undefined) {
    const run = npm(["pack", "--dry-run", "--json", "--ignore-scripts"]);
    if (run.error !== undefined) return undefined;
    assert.equal(run.status, 0, `npm pack --dry-run failed:\n${run.stderr}`);
    packed = JSON.parse(run.stdout)[0].files.map((f) => f.path).sort();
  }
  return packed;
}

/** Relative ES module specifiers in `source`: static and dynamic imports, `new URL(…, import.meta.url)`. */
function specifiers(source) {
  const found = [];
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?\sfrom\s+["']([^"']+)["']/gm,
    /^\s*import\s+["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
    /new URL\(\s*["']([^"']+)["']\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) found.push(match[1]);
  return found;
}

function filesUnder(dir, suffix) {
  const out = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...filesUnder(path, suffix));
    else if (entry.name.endsWith(suffix)) out.push(path);
  }
  return out;
}

/** `path` relative to the package root, with forward slashes. */
const fromRoot = (path) => relative(root, path).split(sep).join("/");

test("npm pack publishes the library, its types, the evloop command and the load generator's sources", (t) => {
  const files = packList();
  if (files === undefined) return t.skip("npm is not on PATH");
  const must = [
    "package.json",
    "README.md",
    "dist/index.js",
    "dist/index.d.ts",
    "dist/internal.js",
    "dist/internal.d.ts",
    normalize(pkg.bin.evloop).split(sep).join("/"),
    "bench/c/loadgen.c",
    "bench/c/common.h",
    "bench/c/echo-epoll.c",
    "bench/c/echo-uring.c",
    "bench/servers/evloop.mjs",
    "bench/servers/node.mjs",
  ];
  for (const file of must) assert.ok(files.includes(file), `${file} is published`);
  for (const target of Object.values(pkg.exports).flatMap((e) => (typeof e === "string" ? [e] : Object.values(e)))) {
    assert.ok(files.includes(normalize(target).split(sep).join("/")), `the exports target ${target} is published`);
  }
});

test("npm pack publishes no TypeScript sources, tests, scripts or benchmark results", (t) => {
  const files = packList();
  if (files === undefined) return t.skip("npm is not on PATH");
  const unwanted = files.filter(
    (f) =>
      (f.endsWith(".ts") && !f.endsWith(".d.ts")) ||
      f.endsWith(".map") ||
      /^(src|cli|test|scripts|bench\/src)\//.test(f) ||
      /^bench\/(RESULTS\.md|results\.)/.test(f) ||
      f.startsWith("tsconfig"),
  );
  assert.deepEqual(unwanted, []);
});

test("every module the published JavaScript loads is published too", (t) => {
  const files = packList();
  if (files === undefined) return t.skip("npm is not on PATH");
  const exported = new Set(Object.keys(pkg.exports).map((k) => (k === "." ? pkg.name : `${pkg.name}/${k.slice(2)}`)));
  const builtins = new Set(builtinModules);
  const dependencies = new Set(Object.keys(pkg.dependencies ?? {}));
  for (const file of files.filter((f) => f.endsWith(".js") || f.endsWith(".mjs"))) {
    for (const spec of specifiers(readFileSync(join(root, file), "utf8"))) {
      if (spec.startsWith(".")) {
        const target = fromRoot(join(root, dirname(file), spec));
        assert.ok(files.includes(target), `${file} loads ${spec}, which is not published`);
      } else {
        // bun:ffi is Bun's builtin, imported only by the Bun adapter (loaded only on Bun).
        const ok = spec.startsWith("node:") || spec === "bun:ffi" || builtins.has(spec) || exported.has(spec) || dependencies.has(spec);
        assert.ok(ok, `${file} imports ${spec}: neither a builtin, a dependency nor one of the package's exports`);
      }
    }
  }
});

test("the tools reach the library only through evloop and evloop/internal, and src/ never reaches the tools", () => {
  const toolDirs = ["cli", "bench/src"];
  const tools = toolDirs.flatMap((d) => filesUnder(d, ".ts"));
  assert.ok(tools.includes("cli/main.ts") && tools.includes("bench/src/run.ts"), "the tools are where this test looks");
  for (const file of tools) {
    for (const spec of specifiers(readFileSync(join(root, file), "utf8"))) {
      if (spec.startsWith(".")) {
        const target = fromRoot(join(root, dirname(file), spec));
        assert.ok(toolDirs.some((d) => target.startsWith(`${d}/`)), `${file} imports ${spec}, outside cli/ and bench/src/`);
      } else {
        assert.ok(spec.startsWith("node:") || spec === "evloop" || spec === "evloop/internal", `${file} imports ${spec}`);
      }
    }
  }
  for (const file of filesUnder("src", ".ts")) {
    for (const spec of specifiers(readFileSync(join(root, file), "utf8"))) {
      const target = spec.startsWith(".") ? fromRoot(join(root, dirname(file), spec)) : spec;
      assert.ok(!/^(cli|bench)\//.test(target) && !target.startsWith("evloop"), `the library file ${file} imports ${spec}`);
    }
  }
  // The internal entry point stays out of the public one.
  assert.doesNotMatch(readFileSync(join(root, "src/index.ts"), "utf8"), /from "\.\/internal\.js"/);
});
