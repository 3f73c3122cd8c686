/**
 * Builds the benchmark's C programs (bench/c: the load generator and the two reference echo
 * servers) with the system C compiler, into a cache directory keyed by a hash of the sources,
 * the flags and the compiler's identity, so a run after the first compiles nothing.
 *
 * Concurrent builds are safe: each binary is written under a temporary name and renamed into
 * place, and rename(2) is atomic.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { access, lstat, mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PACKAGE_ROOT } from "./paths.js";

/** Paths of the compiled programs, and the compiler that built them. */
export interface CBinaries {
  /** `bench/c/loadgen.c`: the load generator. */
  readonly loadgen: string;
  /** `bench/c/echo-epoll.c`: the C epoll echo server. */
  readonly echoEpoll: string;
  /** `bench/c/echo-uring.c`: the C io_uring echo server (exits 3 where io_uring is unavailable). */
  readonly echoUring: string;
  /** The compiler command used: `cc`, `gcc` or `clang`. */
  readonly compiler: string;
}

/** Why the C programs could not be built: no compiler, or a compilation that failed (with its stderr). */
export class BenchBuildError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BenchBuildError";
  }
}

const COMPILERS = ["cc", "gcc", "clang"] as const;
const FLAGS = ["-O2", "-Wall", "-Wextra"] as const;
const SOURCE_DIR = path.join(PACKAGE_ROOT, "bench", "c");
/** The programs CBinaries names, by source file. */
const PROGRAMS = { loadgen: "loadgen.c", echoEpoll: "echo-epoll.c", echoUring: "echo-uring.c" } as const;

interface RunResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly error?: Error;
}

/** Runs a command to completion (never rejects), with a time limit so a wedged compiler cannot hang the bench. */
function run(command: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (error, stdout, stderr) => {
      resolve(error ? { ok: false, stdout, stderr, error } : { ok: true, stdout, stderr });
    });
  });
}

/** The first of cc, gcc, clang that answers `--version`, with that answer (part of the cache key). */
async function findCompiler(): Promise<{ readonly command: string; readonly version: string }> {
  for (const command of COMPILERS) {
    const result = await run(command, ["--version"], 10_000);
    if (result.ok) return { command, version: result.stdout };
  }
  throw new BenchBuildError(
    "no C compiler found (cc, gcc or clang): the benchmark needs one to build its load generator; install gcc (apt-get install gcc)",
  );
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates `dir` (mode 0700) unless it exists, and checks that it belongs to this user and that
 * nobody else can write to it: its binaries are about to be run, and the name is predictable in
 * a shared temporary directory.
 */
async function privateDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stat = await lstat(dir);
  const uid = process.getuid?.();
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o022) !== 0) {
    throw new BenchBuildError(`${dir} is not a directory that only this user can write to; remove it and run again`);
  }
}

/**
 * Compiles every `bench/c/*.c` (each a whole program; headers beside them are shared) with the
 * first C compiler found, unless the cache already holds binaries built from the same sources,
 * flags and compiler.
 *
 * @param options.quiet No "compiling …" lines on stderr.
 * @returns The binaries' paths, in `os.tmpdir()/evloop-bench-<hash>/`.
 * @throws {BenchBuildError} When no compiler answers or a compilation fails.
 *
 * @example
 * ```ts
 * const bin = await buildC();
 * spawn(bin.echoEpoll, ["--port", "0"]);
 * ```
 */
export async function buildC(options: { quiet?: boolean } = {}): Promise<CBinaries> {
  const compiler = await findCompiler();

  let entries: string[];
  try {
    entries = (await readdir(SOURCE_DIR)).filter((name) => name.endsWith(".c") || name.endsWith(".h")).sort();
  } catch (e) {
    throw new BenchBuildError(`cannot read the benchmark's C sources in ${SOURCE_DIR}`, { cause: e });
  }
  const sources = entries.filter((name) => name.endsWith(".c"));
  for (const [key, file] of Object.entries(PROGRAMS)) {
    if (!sources.includes(file)) throw new BenchBuildError(`${path.join(SOURCE_DIR, file)} is missing (needed for ${key})`);
  }

  const hash = createHash("sha256");
  hash.update(`${compiler.command}\0${compiler.version}\0${FLAGS.join(" ")}\0`);
  for (const name of entries) {
    hash.update(`${name}\0`);
    hash.update(await readFile(path.join(SOURCE_DIR, name)));
    hash.update("\0");
  }
  const cacheDir = path.join(os.tmpdir(), `evloop-bench-${hash.digest("hex").slice(0, 16)}`);
  await privateDirectory(cacheDir);

  await Promise.all(
    sources.map(async (file) => {
      const output = path.join(cacheDir, file.slice(0, -2));
      if (await exists(output)) return;
      const source = path.join(SOURCE_DIR, file);
      if (!options.quiet) process.stderr.write(`bench: compiling ${file} with ${compiler.command}\n`);
      const temporary = `${output}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`;
      const args = [...FLAGS, "-o", temporary, source];
      const result = await run(compiler.command, args, 120_000);
      if (!result.ok) {
        await rm(temporary, { force: true });
        const detail = result.stderr.trim() || result.error?.message || "no diagnostics";
        throw new BenchBuildError(`${compiler.command} cannot compile ${source} (${[compiler.command, ...args].join(" ")}):\n${detail}`, { cause: result.error });
      }
      await rename(temporary, output);
    }),
  );

  const binary = (file: string): string => path.join(cacheDir, file.slice(0, -2));
  return {
    loadgen: binary(PROGRAMS.loadgen),
    echoEpoll: binary(PROGRAMS.echoEpoll),
    echoUring: binary(PROGRAMS.echoUring),
    compiler: compiler.command,
  };
}
