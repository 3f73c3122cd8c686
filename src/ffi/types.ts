/**
 * Portable FFI vocabulary.
 *
 * Everything above `src/ffi/` describes native functions with these tags and never sees koffi,
 * Bun's FFI module or Deno's dlopen. A runtime adapter in `src/ffi/runtime/` turns a {@link SymbolTable}
 * into callable functions.
 *
 * Conventions shared by every adapter:
 * - native pointers cross the boundary as `bigint` addresses (`0n` is NULL);
 * - a `buffer` parameter takes any ArrayBufferView (its byteOffset is honoured) or `null`;
 * - 64-bit results (`i64`, `isize`, …) come back as `number`: every value the project reads from
 *   them (byte counts, offsets, -1) fits in 53 bits.
 */

/** Type tags for parameters and results. */
export type NativeType =
  | "void"
  | "i32"
  | "u32"
  | "i64"
  | "u64"
  | "isize"
  | "usize"
  /** A native address passed or returned as a bigint. */
  | "pointer"
  /** An ArrayBufferView (or null) whose memory is passed by address for the duration of the call. */
  | "buffer"
  /** A NUL-terminated string converted from a JS string. */
  | "cstring";

/** One native function: its C name, result and parameters. */
export interface FunctionSpec {
  readonly result: NativeType;
  readonly params: readonly NativeType[];
  /** Variadic functions (`syscall`) take their extra arguments typed as listed in `params`. */
  readonly variadic?: number;
  /** The C symbol, when the table binds one symbol more than once (each `syscall` shape). */
  readonly symbol?: string;
  /** Missing symbols resolve to `undefined` instead of failing the whole library. */
  readonly optional?: boolean;
}

/** A native library's functions, declared once `as const`. */
export type SymbolTable = Readonly<Record<string, FunctionSpec>>;

type JsOf<T extends NativeType> = T extends "void"
  ? void
  : T extends "pointer"
    ? bigint
    : T extends "buffer"
      ? ArrayBufferView | null
      : T extends "cstring"
        ? string | null
        : number;

type ParamsOf<P extends readonly NativeType[]> = { [K in keyof P]: P[K] extends NativeType ? JsParam<P[K]> : never };
type JsParam<T extends NativeType> = T extends "pointer" ? bigint | number : JsOf<T>;

/** The callable for one {@link FunctionSpec}. */
export type NativeFunction<S extends FunctionSpec> = (...args: ParamsOf<S["params"]>) => JsOf<S["result"]>;

/** A library bound from a {@link SymbolTable}. */
export type BoundLibrary<T extends SymbolTable> = {
  readonly [K in keyof T]: T[K]["optional"] extends true ? NativeFunction<T[K]> | undefined : NativeFunction<T[K]>;
};

/** A JS function made callable from native code; `close()` releases the trampoline. */
export interface NativeCallback {
  readonly pointer: bigint;
  close(): void;
}

/** What each JavaScript runtime provides. */
export interface FfiRuntime {
  /** `node`, `bun` or `deno`. */
  readonly name: string;
  /** The FFI mechanism, for `evloop info` (e.g. `koffi 3.3.4`). */
  readonly description: string;
  /** Operating system, normalised to Node's names: `linux`, `darwin`, `freebsd`, `win32`, … */
  readonly platform: string;
  /** CPU architecture, normalised to Node's names: `x64`, `arm64`, … */
  readonly arch: string;
  /** The runtime's own version string, for `evloop info`. */
  readonly version: string;
  /** Whether this is the runtime's main thread (guest mode needs the host's main loop). */
  readonly isMainThread: boolean;
  /** An environment variable, or undefined. */
  env(name: string): string | undefined;
  /**
   * Binds `table` from the shared library at `path` (`null` = the running executable, whose
   * exported symbols include libuv on Node).
   */
  open<T extends SymbolTable>(path: string | null, table: T): BoundLibrary<T>;
  /**
   * The address of the exported symbol `name` in the library at `path` (`null` = the running
   * executable and what it links, libc included): a C function to hand to native code as a
   * function pointer. Throws when there is no such symbol.
   */
  symbol(path: string | null, name: string): bigint;
  /**
   * The C function at `pointer` (a function pointer a library handed out, such as Winsock's
   * AcceptEx from WSAIoctl), callable with `spec`'s types.
   */
  functionAt<S extends FunctionSpec>(pointer: bigint, spec: S): NativeFunction<S>;
  /** errno as left by the last native call on this thread. */
  errno(): number;
  /** Sets this thread's errno (the fault-injection seam, `sys/faults.ts`, reports through it). */
  setErrno(value: number): void;
  /** An ArrayBuffer over `length` bytes of native memory at `pointer`; the memory is not owned. */
  view(pointer: bigint, length: number): ArrayBuffer;
  /** The address of the first byte of a view's memory (stable while the view is alive). */
  address(view: ArrayBufferView): bigint;
  /**
   * A `void (void)` C function that any thread may call: each call from another thread queues
   * `fn` on this thread's event loop (Bun's JSCallback with `threadsafe`, Deno's
   * UnsafeCallback.threadSafe, unref'd so it does not keep the process alive). Absent on Node.
   */
  threadSafeCallback?(fn: () => void): NativeCallback;
  /** Registers `fn` as a C function with the given signature. */
  callback(result: NativeType, params: readonly NativeType[], fn: (...args: never[]) => unknown): NativeCallback;
}
