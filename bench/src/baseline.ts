/**
 * `evloop bench --baseline DIR`: another checkout of evloop, already built, whose evloop echo
 * servers run beside this package's in the same rounds, labelled `<label>@base`, so that a change
 * is measured against the commit before it in one run.
 *
 * The server is DIR/bench/servers/evloop.mjs, which imports the library by the package's own name
 * (`import … from "evloop"`). Node resolves that self-reference through the package.json nearest
 * to the importing file, DIR's, and its `exports` map: so the server runs DIR/dist and not this
 * package's dist. {@link checkBaseline} checks exactly that before anything runs, and that DIR's
 * library loads (a checkout without node_modules has no koffi), so a bad DIR is one clear error
 * instead of a failed run per server and round.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

/** Appended to the label of a server run from the baseline: `evloop-epoll-guest@base`. */
export const BASELINE_SUFFIX = "@base";

/** A checked baseline checkout. */
export interface Baseline {
  /** The checkout's directory, symbolic links resolved. */
  readonly dir: string;
  /** Its echo server, `bench/servers/evloop.mjs`. */
  readonly server: string;
  /** The version in its package.json. */
  readonly version: string;
  /** Its git commit (12 hex digits, `-dirty` with uncommitted changes), or null outside git. */
  readonly commit: string | null;
}

/** Why DIR cannot serve as the baseline; the message says what to do about it. */
export class BaselineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BaselineError";
  }
}

/** How long loading the baseline's library may take in the check. */
const LOAD_TIMEOUT_MS = 30_000;

function tail(text: string, max: number): string {
  const t = text.trim();
  return t.length > max ? `…${t.slice(t.length - max)}` : t;
}

/** `git` in `dir`; null when git is missing or `dir` is not in a work tree. */
function git(dir: string, args: readonly string[]): string | null {
  const run = spawnSync("git", ["-C", dir, ...args], { encoding: "utf8", timeout: 10_000, stdio: ["ignore", "pipe", "ignore"] });
  return run.status === 0 ? run.stdout.trim() : null;
}

function commitOf(dir: string): string | null {
  const head = git(dir, ["rev-parse", "--short=12", "HEAD"]);
  if (head === null) return null;
  const changes = git(dir, ["status", "--porcelain", "--untracked-files=no"]);
  return changes === null || changes === "" ? head : `${head}-dirty`;
}

/**
 * Checks that `dir` is a built evloop checkout whose echo server will run its own library.
 *
 * @param dir The baseline checkout, as given on the command line.
 * @throws {BaselineError} When it is not a directory, not evloop, not built, has no echo server,
 *   resolves `evloop` to another copy, or its library fails to load.
 *
 * @example
 * ```ts
 * const base = checkBaseline("../evloop-before");
 * console.log(`${base.dir} at ${base.commit ?? "an unknown commit"}`);
 * ```
 */
export function checkBaseline(dir: string): Baseline {
  const fail = (why: string): never => {
    throw new BaselineError(`--baseline ${dir}: ${why}`);
  };
  let real = "";
  try {
    real = realpathSync(dir);
  } catch {
    fail("no such directory");
  }
  if (!statSync(real).isDirectory()) fail("not a directory");

  let pkg: { name?: unknown; version?: unknown } = {};
  try {
    pkg = JSON.parse(readFileSync(path.join(real, "package.json"), "utf8")) as typeof pkg;
  } catch {
    fail("no readable package.json: give the root of an evloop checkout");
  }
  if (pkg.name !== "evloop") fail(`its package.json names ${JSON.stringify(pkg.name)}, not evloop`);

  const server = path.join(real, "bench", "servers", "evloop.mjs");
  if (!existsSync(server)) fail("has no bench/servers/evloop.mjs, the echo server to run");
  const library = path.join(real, "dist", "index.js");
  if (!existsSync(library)) fail("has no dist/index.js: build it first (npm run build there)");

  // Resolved from the server's own location, as Node will when the server imports "evloop".
  let resolved = "";
  try {
    resolved = createRequire(server).resolve("evloop");
  } catch (e) {
    fail(`its server cannot resolve "evloop" (${e instanceof Error ? e.message.split("\n")[0] : String(e)}); its package.json needs an "exports" map`);
  }
  if (realpathSync(resolved) !== realpathSync(library)) fail(`its server would import ${resolved}, not ${library}`);

  // In a child process: loading a second copy of evloop here would share this process's koffi.
  const load = spawnSync(process.execPath, ["--input-type=module", "-e", "await import(process.argv[1]);", pathToFileURL(library).href], {
    cwd: real,
    encoding: "utf8",
    timeout: LOAD_TIMEOUT_MS,
    stdio: ["ignore", "ignore", "pipe"],
  });
  if (load.status !== 0) {
    const why = load.error?.message ?? (load.signal !== null ? `killed by ${load.signal}` : tail(load.stderr, 600));
    fail(`its library does not load (is koffi installed there? npm install): ${why}`);
  }

  return { dir: real, server, version: typeof pkg.version === "string" ? pkg.version : "unknown", commit: commitOf(real) };
}
