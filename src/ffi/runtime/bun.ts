/**
 * The FFI adapter for Bun, built on `bun:ffi`. This is the only file that loads it, in
 * `createBunRuntime`, which `load.ts` calls only when running on Bun (so koffi never loads there).
 *
 * How bun:ffi differs from the portable conventions (`../types.ts`), and what this file does:
 * - 64-bit integer results (`i64`, `u64`) arrive as bigints: bound as `i64_fast`/`u64_fast`
 *   (a number when it fits) and passed through `Number()`, so they come back as numbers.
 * - Pointers are numbers in bun:ffi, and a NULL `ptr` result is `null`. A `pointer` is bound
 *   as `i64` instead, which takes a bigint or a number and returns a bigint, exactly what the
 *   portable convention asks (MAP_FAILED comes back as -1n, as on Node, where it is intptr_t);
 *   a callback's `pointer` parameters are converted to bigints.
 * - A `buffer` parameter is bound as `ptr`, which takes any TypedArray or DataView (the address
 *   of its first byte, byteOffset included: Bun reads the view's vector) or `null`.
 * - A `cstring` parameter is encoded to a NUL-terminated UTF-8 copy for the call.
 * - bun:ffi has no variadic calls: a variadic function is bound with its full prototype, the
 *   variadic arguments typed as declared. That is what the C ABI does anyway on x86-64 (System V:
 *   variadic integer arguments travel in the same registers as fixed ones; %al, the count of
 *   vector registers, is only read by a callee that saves them, and `syscall`/`fcntl` take
 *   integers and pointers only) and on arm64 Linux and the BSDs (AAPCS64 passes variadic
 *   arguments like fixed ones). It is NOT so on Apple's arm64, where variadic arguments go on
 *   the stack: there a variadic binding is refused.
 * - bun:ffi's `dlopen` fails a whole table when one symbol is missing and cannot open the running
 *   executable; and `symbol()` needs an address. So every library is opened with the C
 *   library's own dlopen(3) (never closed: a library stays mapped for the life of the process,
 *   as `sys/linux/dl.ts` wants anyway) and every symbol looked up with dlsym(3), then bound with
 *   `linkSymbols`. `null` (the running executable) is dlsym's RTLD_DEFAULT: the executable and
 *   everything it links, libc included.
 * - errno is read and written through `__errno_location()` (glibc, musl), `__error()` (macOS,
 *   FreeBSD) or `__errno()` (OpenBSD, NetBSD): this thread's errno, over an Int32Array.
 *
 * SAFETY (JavaScriptCore): the garbage collector does not move objects, but a small TypedArray
 * created by `new Uint8Array(n)` keeps its bytes inline in a GC cell ("fast" typed array) until
 * its `.buffer` is first read; that read copies the bytes into a new ArrayBuffer and the view's
 * address changes (seen here: `ptr(a)` differs before and after `a.buffer`). An ArrayBuffer's
 * backing store itself never moves while the buffer is alive and not transferred or resized.
 * So:
 * - a `buffer` argument is read by Bun at call time and used only for the call: sound, whatever
 *   the view's mode;
 * - `address(view)` first reads `view.buffer`, so the address it returns is the ArrayBuffer's
 *   backing store, which stays put while the buffer is referenced: the guarantee `types.ts`
 *   gives ("stable while the view is alive"). `sys/linux/io_uring.ts`'s `addressOf` reads
 *   `view.buffer` before asking too.
 * - evloop's own kernel-held memory is native (rings, provided buffers, per-slot scratch, from
 *   mmap/calloc through this adapter), never JS memory. Where io_uring hands the kernel the
 *   caller's buffer for a send with MSG_DONTWAIT/RWF_NOWAIT, the address comes from
 *   `addressOf` (materialised as above) and the kernel uses it during `io_uring_enter`, while the
 *   operation record keeps the view alive: sound on JavaScriptCore too. The io-wq exception (a
 *   regular file without RWF_NOWAIT, done later by a kernel worker) relies on the same two facts:
 *   the record keeps the buffer alive, and its backing store does not move.
 */
import type * as BunFfi from "bun:ffi";
import type { FFIFunctionSpec, FFITypeName } from "bun:ffi";
import { createRequire } from "node:module";
import type { BoundLibrary, FfiRuntime, FunctionSpec, NativeCallback, NativeType, SymbolTable } from "../types.js";

interface BunGlobal {
  readonly version: string;
  readonly isMainThread: boolean;
}

/** bun:ffi, loaded by `createBunRuntime` (so that importing this file loads nothing, on any runtime). */
let bun: typeof BunFfi;

/** How each portable type is passed to a Bun function. */
const ARG: Record<NativeType, FFITypeName> = {
  void: "void",
  i32: "i32",
  u32: "u32",
  i64: "i64",
  u64: "u64",
  isize: "i64",
  usize: "u64",
  pointer: "i64",
  buffer: "ptr",
  cstring: "ptr",
};

/** How each portable type comes back from a Bun function (before the conversions below). */
const RESULT: Record<NativeType, FFITypeName> = {
  void: "void",
  i32: "i32",
  u32: "u32",
  i64: "i64_fast",
  u64: "u64_fast",
  isize: "i64_fast",
  usize: "u64_fast",
  pointer: "i64",
  buffer: "ptr",
  cstring: "ptr",
};

/** Types of a JS callback's parameters (what native code passes in). */
const CALLBACK_ARG: Record<NativeType, FFITypeName> = { ...RESULT, pointer: "ptr", i64: "i64_fast", u64: "u64_fast" };

type Raw = (...args: unknown[]) => unknown;

const encoder = new TextEncoder();

function cstringArg(value: unknown): Uint8Array | null {
  if (value === null || value === undefined) return null;
  return encoder.encode(`${String(value)}\0`);
}

function toBigInt(value: unknown): bigint {
  if (value === null || value === undefined) return 0n;
  return BigInt(value as number | bigint);
}

/** The portable calling convention over a Bun function. */
function adapt(raw: Raw, spec: FunctionSpec): Raw {
  const strings = spec.params.flatMap((p, i) => (p === "cstring" ? [i] : []));
  let call: Raw = raw;
  if (strings.length > 0) {
    const inner = call;
    call = (...args: unknown[]) => {
      for (const i of strings) args[i] = cstringArg(args[i]);
      return inner(...args);
    };
  }
  switch (spec.result) {
    case "i64":
    case "u64":
    case "isize":
    case "usize": {
      const inner = call;
      return (...args: unknown[]) => Number(inner(...args) as number | bigint);
    }
    case "cstring": {
      const inner = call;
      return (...args: unknown[]) => {
        const p = inner(...args) as number | null;
        return p === null || p === 0 ? null : String(new bun.CString(p));
      };
    }
    case "buffer":
      throw new TypeError("a native function cannot return a buffer; declare it as pointer");
    default:
      return call;
  }
}

function checkVariadic(spec: FunctionSpec, name: string): void {
  if (!spec.variadic) return;
  if (process.platform === "darwin" && process.arch === "arm64") {
    throw new Error(`${name} is variadic: Apple's arm64 ABI passes variadic arguments on the stack, which bun:ffi cannot do`);
  }
}

function ffiSpec(spec: FunctionSpec, address: number | bigint): FFIFunctionSpec & { readonly ptr: number | bigint } {
  return { args: spec.params.map((p) => ARG[p]), returns: RESULT[spec.result], ptr: address };
}

// --- dlopen(3)/dlsym(3) through the C library ------------------------------------------------

const RTLD_NOW = 2;
/** dlsym's pseudo-handle for "the executable and everything it links". */
const RTLD_DEFAULT = process.platform === "darwin" || process.platform.endsWith("bsd") ? -2 : 0;

/** Where dlopen/dlsym and errno's accessor live, tried in order. */
function libcCandidates(): string[] {
  switch (process.platform) {
    case "linux": {
      const musl = process.arch === "arm64" ? "libc.musl-aarch64.so.1" : "libc.musl-x86_64.so.1";
      // libdl.so.2: glibc before 2.34 kept dlopen/dlsym there.
      return ["libc.so.6", musl, "libc.so", "libdl.so.2"];
    }
    case "darwin":
      return ["/usr/lib/libSystem.B.dylib"];
    case "freebsd":
      return ["libc.so.7"];
    case "netbsd":
      return ["libc.so.12"];
    default:
      return ["libc.so"];
  }
}

interface Dl {
  readonly dlopen: Raw;
  readonly dlsym: Raw;
  readonly dlerror: Raw;
}

let dl: Dl | undefined;

function loadDl(): Dl {
  if (dl) return dl;
  const tried: string[] = [];
  for (const path of libcCandidates()) {
    try {
      const lib = bun.dlopen(path, {
        dlopen: { args: ["ptr", "i32"], returns: "i64" },
        dlsym: { args: ["i64", "ptr"], returns: "i64" },
        dlerror: { args: [], returns: "ptr" },
      });
      dl = lib.symbols;
      return dl;
    } catch (e) {
      tried.push(`${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new Error(`bun:ffi: no C library with dlopen/dlsym found (${tried.join("; ")})`);
}

function dlerror(): string {
  const p = loadDl().dlerror() as number | null;
  return p === null || p === 0 ? "unknown error" : String(new bun.CString(p));
}

/** Handles of the libraries opened so far, by path; never closed. */
const handles = new Map<string | null, bigint>();

function handleOf(path: string | null): bigint {
  const known = handles.get(path);
  if (known !== undefined) return known;
  let handle: bigint;
  if (path === null) handle = BigInt(RTLD_DEFAULT);
  else {
    handle = loadDl().dlopen(cstringArg(path), RTLD_NOW) as bigint;
    if (handle === 0n) throw new Error(`Cannot load native library ${path}: ${dlerror()}`);
  }
  handles.set(path, handle);
  return handle;
}

/** The address of `name` in the library at `path`, or 0n. */
function lookup(path: string | null, name: string): bigint {
  return loadDl().dlsym(handleOf(path), cstringArg(name)) as bigint;
}

function open<T extends SymbolTable>(path: string | null, table: T): BoundLibrary<T> {
  const specs: Record<string, FFIFunctionSpec> = {};
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    const cName = spec.symbol ?? name;
    const address = lookup(path, cName);
    if (address === 0n) {
      if (spec.optional) {
        out[name] = undefined;
        continue;
      }
      throw new Error(`Cannot bind native function ${name}: symbol ${cName} not found in ${path ?? "(the running executable)"}`);
    }
    checkVariadic(spec, name);
    specs[name] = ffiSpec(spec, address);
  }
  if (Object.keys(specs).length > 0) {
    const lib = bun.linkSymbols(specs);
    for (const name of Object.keys(specs)) out[name] = adapt(lib.symbols[name]!, table[name]!);
  }
  return out as BoundLibrary<T>;
}

function symbol(path: string | null, name: string): bigint {
  const address = lookup(path, name);
  if (address === 0n) throw new Error(`Cannot find native symbol ${name}`);
  return address;
}

function functionAt(pointer: bigint, spec: FunctionSpec): Raw {
  if (spec.variadic) throw new TypeError("a function pointer cannot be variadic here");
  return adapt(bun.CFunction(ffiSpec(spec, pointer)), spec);
}

// --- errno ---------------------------------------------------------------------------------

let errnoCell: Int32Array | undefined;

/** This thread's errno as an Int32Array of one element (each Worker has its own module instance). */
function errnoView(): Int32Array {
  if (errnoCell) return errnoCell;
  for (const name of ["__errno_location", "__error", "__errno"]) {
    const address = lookup(null, name);
    if (address === 0n) continue;
    const location = bun.CFunction({ args: [], returns: "ptr", ptr: address })() as number;
    // SAFETY: errno lives in this thread's TLS block for the life of the thread.
    errnoCell = new Int32Array(bun.toArrayBuffer(location, 0, 4));
    return errnoCell;
  }
  throw new Error("bun:ffi: the C library exports no errno accessor (__errno_location, __error, __errno)");
}

// --- memory ---------------------------------------------------------------------------------

function view(pointer: bigint, length: number): ArrayBuffer {
  // bun:ffi refuses a zero-length view; nothing can be read through one anyway.
  if (length === 0) return new ArrayBuffer(0);
  return bun.toArrayBuffer(Number(pointer), 0, length);
}

function address(v: ArrayBufferView): bigint {
  // bun:ffi has no address for empty memory; nothing can be read or written through it.
  if (v.byteLength === 0) return 0n;
  // SAFETY: reading `.buffer` moves a "fast" typed array's bytes into an ArrayBuffer once, and
  // from then on its address is that backing store's, which does not move (see the header).
  void v.buffer;
  return BigInt(bun.ptr(v));
}

function callback(result: NativeType, params: readonly NativeType[], fn: (...args: never[]) => unknown): NativeCallback {
  const pointers = params.flatMap((p, i) => (p === "pointer" ? [i] : []));
  const numbers = params.flatMap((p, i) => (p === "i64" || p === "u64" || p === "isize" || p === "usize" ? [i] : []));
  const target = fn as (...a: unknown[]) => unknown;
  const call =
    pointers.length === 0 && numbers.length === 0
      ? target
      : (...args: unknown[]) => {
          for (const i of pointers) args[i] = toBigInt(args[i]);
          for (const i of numbers) args[i] = Number(args[i] as number | bigint);
          return target(...args);
        };
  const cb = new bun.JSCallback(call as (...args: never[]) => unknown, {
    args: params.map((p) => CALLBACK_ARG[p]),
    returns: result === "pointer" ? "i64" : ARG[result],
  });
  if (cb.ptr === null) throw new Error("bun:ffi: JSCallback has no address");
  return { pointer: BigInt(cb.ptr), close: () => cb.close() };
}

/** Bun's adapter; loads bun:ffi. */
function threadSafeCallback(fn: () => void): NativeCallback {
  const cb = new bun.JSCallback(fn, { args: [], returns: "void", threadsafe: true });
  if (cb.ptr === null) throw new Error("bun:ffi: JSCallback has no address");
  return { pointer: BigInt(cb.ptr), close: () => cb.close() };
}

export function createBunRuntime(): FfiRuntime {
  bun = createRequire(import.meta.url)("bun:ffi") as typeof BunFfi;
  const bunGlobal = (globalThis as unknown as { Bun: BunGlobal }).Bun;
  return {
    name: "bun",
    description: `bun:ffi (Bun ${bunGlobal.version})`,
    platform: process.platform,
    arch: process.arch,
    version: bunGlobal.version,
    isMainThread: bunGlobal.isMainThread,
    env: (name) => process.env[name],
    open,
    symbol,
    functionAt: functionAt as FfiRuntime["functionAt"],
    errno: () => errnoView()[0]!,
    setErrno: (value) => {
      errnoView()[0] = value;
    },
    view,
    address,
    callback,
    threadSafeCallback,
  };
}
