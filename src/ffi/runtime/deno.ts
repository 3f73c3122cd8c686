/**
 * The FFI adapter for Deno, built on `Deno.dlopen`. This is the only file that touches Deno's FFI.
 *
 * Permissions (see `load.ts`): `--allow-ffi` always; `--allow-env` optional; `--allow-read` and
 * `--allow-write` for Unix socket paths.
 *
 * How the portable conventions of `../types.ts` are kept:
 * - `pointer` is declared to Deno as `usize` (this adapter only runs on 64-bit targets, where the
 *   two have the same size and are passed the same way), so addresses cross as bigints without
 *   Deno's pointer objects; `usize` parameters accept a number or a bigint.
 * - Deno returns every 64-bit integer result (`i64`, `u64`, `isize`, `usize`) as a bigint: the
 *   64-bit integer results are converted to numbers, pointer results kept as bigints.
 * - `buffer` is Deno's `buffer` type: an ArrayBufferView or null, passed by the address of its
 *   first byte, byteOffset included (checked here for Uint8Array, Int32Array and DataView).
 * - `cstring` has no Deno type: a parameter is encoded to a NUL-terminated Uint8Array passed as a
 *   `buffer`; a result is taken as a pointer and read with UnsafePointerView.getCString.
 * - Variadic functions: Deno has no varargs, so the fixed prototype is bound with every argument
 *   typed as listed. That is the same call as the variadic one on x86-64 and arm64 Linux (SysV and
 *   AAPCS64 pass variadic integer arguments in the same registers as fixed ones; on x86-64 a
 *   variadic callee only reads %al to decide whether to spill vector registers, harmless here), and
 *   it is what `fcntl`/`syscall` are used for. It would NOT hold on Apple arm64, where variadic
 *   arguments go on the stack: the adapter refuses variadic functions there.
 * - errno: read and written through the thread's `__errno_location()` (glibc, musl), viewed once as
 *   an Int32Array. Deno's FFI call returns to JavaScript without other libc calls on this thread in
 *   between, so errno read right after a failing call is that call's (checked here: read(-1) then
 *   errno() gives EBADF); a garbage collection or a timer between the call and the read could
 *   still clobber it, so callers read errno immediately after the call, as they do on Node.
 */
import { isMainThread } from "node:worker_threads";
import type { BoundLibrary, FfiRuntime, FunctionSpec, NativeCallback, NativeType, SymbolTable } from "../types.js";

// The subset of Deno's FFI API this adapter uses (the project compiles against Node's types).
type DenoNative = "void" | "i32" | "u32" | "i64" | "u64" | "isize" | "usize" | "buffer" | "pointer";
interface DenoForeignFunction {
  readonly name?: string;
  readonly parameters: readonly DenoNative[];
  readonly result: DenoNative;
  readonly optional?: boolean;
}
type DenoPointer = object;
interface DenoDynamicLibrary {
  readonly symbols: Record<string, ((...args: unknown[]) => unknown) | null>;
  close(): void;
}
interface DenoUnsafeCallback {
  readonly pointer: DenoPointer;
  close(): void;
  unref(): void;
}
interface DenoNamespace {
  readonly version: { readonly deno: string; readonly v8: string };
  readonly build: { readonly os: string; readonly arch: string };
  readonly env: { get(name: string): string | undefined };
  dlopen(path: string, symbols: Record<string, DenoForeignFunction>): DenoDynamicLibrary;
  readonly UnsafePointer: {
    create(value: bigint): DenoPointer | null;
    of(value: ArrayBufferView): DenoPointer | null;
    value(pointer: DenoPointer | null): bigint | number;
  };
  readonly UnsafePointerView: {
    getArrayBuffer(pointer: DenoPointer, byteLength: number, offset?: number): ArrayBuffer;
    getCString(pointer: DenoPointer): string;
  };
  readonly UnsafeFnPointer: new (pointer: DenoPointer, definition: DenoForeignFunction) => { call(...args: unknown[]): unknown };
  readonly UnsafeCallback: {
    new (definition: DenoForeignFunction, fn: (...args: unknown[]) => unknown): DenoUnsafeCallback;
    threadSafe(definition: DenoForeignFunction, fn: (...args: unknown[]) => unknown): DenoUnsafeCallback;
  };
}

/** Deno's namespace, set by `createDenoRuntime` (importing this file touches nothing). */
let Deno: DenoNamespace;

const DENO_TYPES: Record<NativeType, DenoNative> = {
  void: "void",
  i32: "i32",
  u32: "u32",
  i64: "i64",
  u64: "u64",
  isize: "isize",
  usize: "usize",
  pointer: "usize",
  buffer: "buffer",
  cstring: "buffer",
};

/** Node's names for Deno.build's. */
const PLATFORMS: Record<string, string> = { windows: "win32" };
const ARCHS: Record<string, string> = { x86_64: "x64", aarch64: "arm64" };
let platform: string;
let arch: string;

const encoder = new TextEncoder();

function cstring(value: unknown): Uint8Array | null {
  if (value === null || value === undefined) return null;
  return encoder.encode(`${String(value)}\0`);
}

function is64(type: NativeType): boolean {
  return type === "i64" || type === "u64" || type === "isize" || type === "usize";
}

/** The portable calling convention over a Deno function: 64-bit results as numbers, pointers as bigints, strings encoded. */
function adapt(fn: (...args: unknown[]) => unknown, spec: FunctionSpec): (...args: unknown[]) => unknown {
  const strings = spec.params.flatMap((p, i) => (p === "cstring" ? [i] : []));
  let call = fn;
  if (strings.length > 0) {
    const raw = call;
    call = (...args: unknown[]) => {
      for (const i of strings) args[i] = cstring(args[i]);
      return raw(...args);
    };
  }
  if (spec.result === "cstring") {
    // Declared to Deno as a pointer result (see definition()): NULL is null, else the C string.
    const raw = call;
    return (...args: unknown[]) => {
      const at = raw(...args) as DenoPointer | null;
      return at === null ? null : Deno.UnsafePointerView.getCString(at);
    };
  }
  if (spec.result === "pointer") {
    const raw = call;
    return (...args: unknown[]) => BigInt(raw(...args) as bigint | number);
  }
  if (is64(spec.result)) {
    const raw = call;
    return (...args: unknown[]) => Number(raw(...args) as bigint | number);
  }
  return call;
}

function definition(spec: FunctionSpec, name?: string): DenoForeignFunction {
  if (spec.variadic && platform === "darwin" && arch === "arm64") {
    throw new TypeError(`cannot bind variadic ${name ?? "function"} on Deno for Apple arm64 (variadic arguments go on the stack there)`);
  }
  return {
    ...(name === undefined ? {} : { name }),
    parameters: spec.params.map((p) => DENO_TYPES[p]),
    // A `char *` result is read as a pointer object and decoded by adapt().
    result: spec.result === "cstring" ? "pointer" : DENO_TYPES[spec.result],
    ...(spec.optional ? { optional: true } : {}),
  };
}

/** Deno's dlopen takes a path; "" is the running executable (glibc's dlopen treats it as NULL). */
function pathOf(path: string | null): string {
  return path ?? "";
}

/** Libraries stay open for the life of the process, as koffi keeps them while bound. */
const libraries: DenoDynamicLibrary[] = [];

function open<T extends SymbolTable>(path: string | null, table: T): BoundLibrary<T> {
  const symbols: Record<string, DenoForeignFunction> = {};
  for (const [name, spec] of Object.entries(table)) symbols[name] = definition(spec, spec.symbol ?? name);
  let lib: DenoDynamicLibrary;
  try {
    lib = Deno.dlopen(pathOf(path), symbols);
  } catch (cause) {
    // Without --allow-ffi Deno throws NotCapable (Deno 2) or PermissionDenied (before).
    const name = cause instanceof Error ? cause.name : "";
    if (name === "NotCapable" || name === "PermissionDenied") {
      throw new Error(`Deno denies FFI (run with --allow-ffi): cannot load native library ${path ?? "(the running executable)"}`, { cause });
    }
    // A required symbol that is missing fails the whole table: say which library.
    throw new Error(`Cannot load native library ${path ?? "(the running executable)"}`, { cause });
  }
  libraries.push(lib);
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    const fn = lib.symbols[name];
    // Deno gives an optional symbol that is missing as null.
    out[name] = fn === null || fn === undefined ? undefined : adapt(fn, spec);
  }
  return out as BoundLibrary<T>;
}

const DL = {
  dlopen: { result: "pointer", params: ["cstring", "i32"] },
  dlsym: { result: "pointer", params: ["pointer", "cstring"] },
} as const satisfies SymbolTable;
const RTLD_NOW = 2;
let dl: BoundLibrary<typeof DL> | undefined;

function symbol(path: string | null, name: string): bigint {
  if (platform === "win32") throw new Error(`Cannot find native symbol ${name}: not implemented on Deno for Windows`);
  // dlopen/dlsym are exported by the executable's libc (glibc ≥ 2.34, musl) or libdl it links.
  dl ??= open(null, DL);
  const handle = dl.dlopen(path, RTLD_NOW);
  const address = handle === 0n ? 0n : dl.dlsym(handle, name);
  if (address === 0n) throw new Error(`Cannot find native symbol ${name}`);
  return address;
}

function functionAt(pointer: bigint, spec: FunctionSpec): (...args: unknown[]) => unknown {
  if (spec.variadic) throw new TypeError("a function pointer cannot be variadic here");
  const target = Deno.UnsafePointer.create(pointer);
  if (target === null) throw new TypeError("functionAt: NULL function pointer");
  const fn = new Deno.UnsafeFnPointer(target, definition(spec));
  return adapt((...args: unknown[]) => fn.call(...args), spec);
}

let errnoView: Int32Array | undefined;

/** This thread's errno as an Int32Array of one element (each Worker loads this module anew). */
function errnoCell(): Int32Array {
  if (errnoView !== undefined) return errnoView;
  const lib = Deno.dlopen("", {
    __errno_location: { parameters: [], result: "pointer", optional: true },
    __error: { parameters: [], result: "pointer", optional: true },
  });
  libraries.push(lib);
  const locate = lib.symbols.__errno_location ?? lib.symbols.__error;
  if (!locate) throw new Error("errno is not reachable on Deno here (no __errno_location or __error)");
  const at = locate() as DenoPointer | null;
  if (at === null) throw new Error("__errno_location returned NULL");
  // SAFETY: errno lives in this thread's TLS block, which outlives every JavaScript object of the
  // thread; the ArrayBuffer over it is external memory V8 never frees nor moves.
  errnoView = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(at, 4));
  return errnoView;
}

function view(pointer: bigint, length: number): ArrayBuffer {
  if (length === 0) return new ArrayBuffer(0);
  const at = Deno.UnsafePointer.create(pointer);
  if (at === null) throw new TypeError("view: NULL pointer");
  // SAFETY: the caller owns the native memory (mmap'd rings, malloc'd blocks) and keeps it mapped
  // while the ArrayBuffer is used; V8 treats it as external and neither moves nor frees it.
  return Deno.UnsafePointerView.getArrayBuffer(at, length);
}

function address(value: ArrayBufferView): bigint {
  // SAFETY: V8 keeps an ArrayBuffer's backing store at one address for its whole life (the GC
  // moves JS objects, never backing stores); it is freed only when the buffer is unreachable or
  // detached (transfer(), postMessage transfer, resize of a resizable buffer). The one exception
  // is a small TypedArray whose bytes V8 keeps on the JS heap (≤ 64 bytes, created by
  // `new Uint8Array(n)`): reading `.buffer` moves them to an off-heap backing store for good
  // (V8's JSTypedArray::GetBuffer), so the address below stays stable. Callers keep `value`
  // reachable, and its buffer attached, while the kernel holds the address — the same rule as on
  // Node (`koffi.address`).
  void value.buffer;
  // UnsafePointer.of gives the view's first byte, byteOffset included.
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(value)));
}

function callback(result: NativeType, params: readonly NativeType[], fn: (...args: never[]) => unknown): NativeCallback {
  // Native code hands callbacks addresses, never JS buffers: `buffer`/`cstring` arrive as addresses.
  const types = params.map((p): DenoNative => (p === "buffer" || p === "cstring" ? "usize" : DENO_TYPES[p]));
  const big = params.flatMap((p, i) => (p === "pointer" || p === "buffer" || p === "cstring" ? [i] : []));
  const small = params.flatMap((p, i) => (is64(p) ? [i] : []));
  const target = fn as (...args: unknown[]) => unknown;
  const call = (...args: unknown[]): unknown => {
    for (const i of big) args[i] = BigInt(args[i] as bigint | number);
    for (const i of small) args[i] = Number(args[i] as bigint | number);
    const out = target(...args);
    return result === "pointer" || is64(result) ? BigInt(out as bigint | number) : out;
  };
  // A callback runs on the JavaScript thread only when native code calls it during an FFI call
  // made from that thread (Deno aborts otherwise): guest mode's libuv callbacks are Node's only.
  const cb = new Deno.UnsafeCallback({ parameters: types, result: DENO_TYPES[result] === "buffer" ? "usize" : DENO_TYPES[result] }, call);
  return {
    pointer: BigInt(Deno.UnsafePointer.value(cb.pointer)),
    close: () => cb.close(),
  };
}

function threadSafeCallback(fn: () => void): NativeCallback {
  const cb = Deno.UnsafeCallback.threadSafe({ parameters: [], result: "void" }, fn);
  // A thread-safe callback keeps Deno's event loop alive until unref'd.
  cb.unref();
  return { pointer: BigInt(Deno.UnsafePointer.value(cb.pointer)), close: () => cb.close() };
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    // Without --allow-env Deno throws (NotCapable in Deno 2, PermissionDenied before): unset.
    return undefined;
  }
}

/**
 * node:worker_threads' isMainThread is false in a node:worker_threads Worker (where Deno hides
 * `WorkerGlobalScope`) but true in a web Worker (`new Worker(url, { type: "module" })`), whose
 * global is a WorkerGlobalScope: both are checked.
 */
function mainThread(): boolean {
  const scope = (globalThis as { WorkerGlobalScope?: abstract new () => object }).WorkerGlobalScope;
  return isMainThread && !(scope !== undefined && globalThis instanceof scope);
}

/** Deno's adapter. */
export function createDenoRuntime(): FfiRuntime {
  Deno = (globalThis as unknown as { Deno: DenoNamespace }).Deno;
  platform = PLATFORMS[Deno.build.os] ?? Deno.build.os;
  arch = ARCHS[Deno.build.arch] ?? Deno.build.arch;
  return {
    name: "deno",
    description: `Deno.dlopen (Deno ${Deno.version.deno}, V8 ${Deno.version.v8})`,
    platform,
    arch,
    version: Deno.version.deno,
    isMainThread: mainThread(),
    env,
    open,
    symbol,
    functionAt: functionAt as FfiRuntime["functionAt"],
    errno: () => errnoCell()[0] ?? 0,
    setErrno: (value) => {
      errnoCell()[0] = value;
    },
    view,
    address,
    callback,
    threadSafeCallback,
  };
}
