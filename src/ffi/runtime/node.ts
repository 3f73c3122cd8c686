/**
 * The FFI adapter for Node.js, built on koffi. This is the only file that imports koffi.
 *
 * koffi passes a TypedArray/DataView argument by the address of its first byte (byteOffset
 * included) and keeps it alive for the call; `void *` results arrive as bigints. Neither matters
 * above this file: the portable conventions are in `../types.ts`.
 */
import type koffiModule from "koffi";
import type { LibraryHandle } from "koffi";
import { createRequire } from "node:module";
import { isMainThread } from "node:worker_threads";

type KoffiFunction = ReturnType<LibraryHandle["func"]>;
import type { BoundLibrary, FfiRuntime, FunctionSpec, NativeCallback, NativeType, SymbolTable } from "../types.js";

/**
 * koffi, loaded by `createNodeRuntime` (a `require`, so that importing this file loads nothing:
 * `load.ts` imports every adapter and builds only the one for the runtime it finds).
 */
let koffi: typeof koffiModule;

const C_TYPES: Record<NativeType, string> = {
  void: "void",
  i32: "int32_t",
  u32: "uint32_t",
  i64: "int64_t",
  u64: "uint64_t",
  isize: "intptr_t",
  usize: "size_t",
  pointer: "intptr_t",
  buffer: "void *",
  cstring: "const char *",
};

function bind(lib: LibraryHandle, name: string, spec: FunctionSpec): ((...args: unknown[]) => unknown) | undefined {
  const fixed = spec.params.length - (spec.variadic ?? 0);
  const params = spec.params.slice(0, fixed).map((p) => C_TYPES[p]);
  if (spec.variadic) params.push("...");
  let fn: KoffiFunction;
  try {
    fn = lib.func(spec.symbol ?? name, C_TYPES[spec.result], params);
  } catch (cause) {
    if (spec.optional) return undefined;
    throw new Error(`Cannot bind native function ${name}`, { cause });
  }
  return adapt(fn, spec, fixed);
}

/** The portable calling convention over a koffi function: pointer results as bigints, variadics typed. */
function adapt(fn: KoffiFunction, spec: FunctionSpec, fixed: number): (...args: unknown[]) => unknown {
  // koffi returns intptr_t as a number when it fits; the portable convention is a bigint.
  if (spec.result === "pointer") {
    const raw = fn;
    return (...args: unknown[]) => BigInt(raw(...args) as number | bigint);
  }
  if (spec.variadic) {
    const extra = spec.params.slice(fixed).map((p) => C_TYPES[p]);
    return (...args: unknown[]) => {
      const call: unknown[] = args.slice(0, fixed);
      for (let i = 0; i < extra.length; i++) call.push(extra[i], args[fixed + i]);
      return fn(...call);
    };
  }
  return fn as (...args: unknown[]) => unknown;
}

let protos = 0;

/** A C function at a native address (one Winsock hands out through WSAIoctl, say). */
function functionAt(pointer: bigint, spec: FunctionSpec): (...args: unknown[]) => unknown {
  if (spec.variadic) throw new TypeError("a function pointer cannot be variadic here");
  const proto = koffi.proto(`evloop_fn_${protos++}`, C_TYPES[spec.result], spec.params.map((p) => C_TYPES[p]));
  return adapt(koffi.decode(pointer, proto) as KoffiFunction, spec, spec.params.length);
}

function open<T extends SymbolTable>(path: string | null, table: T): BoundLibrary<T> {
  let lib: LibraryHandle;
  try {
    lib = koffi.load(path);
  } catch (cause) {
    throw new Error(`Cannot load native library ${path ?? "(the running executable)"}`, { cause });
  }
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) out[name] = bind(lib, name, spec);
  return out as BoundLibrary<T>;
}

function symbol(path: string | null, name: string): bigint {
  let address: unknown;
  try {
    address = koffi.load(path).symbol(name);
  } catch (cause) {
    throw new Error(`Cannot find native symbol ${name}`, { cause });
  }
  // koffi 3 gives a symbol's address as a bigint.
  return BigInt(address as bigint | number);
}

/** Node's adapter; loads koffi. */
export function createNodeRuntime(): FfiRuntime {
  koffi = createRequire(import.meta.url)("koffi") as typeof koffiModule;
  return nodeRuntime();
}

const nodeRuntime = (): FfiRuntime => ({
  name: "node",
  description: `koffi ${koffi.version}`,
  platform: process.platform,
  arch: process.arch,
  version: process.version,
  isMainThread,
  env: (name) => process.env[name],
  open,
  symbol,
  functionAt: functionAt as FfiRuntime["functionAt"],
  errno: () => koffi.errno(),
  setErrno: (value) => void koffi.errno(value),
  view: (pointer, length) => koffi.view(pointer, length),
  address: (view) => koffi.address(view),
  callback(result, params, fn): NativeCallback {
    const proto = koffi.proto(C_TYPES[result], params.map((p) => C_TYPES[p]));
    const pointers = params.flatMap((p, i) => (p === "pointer" ? [i] : []));
    const call =
      pointers.length === 0
        ? fn
        : (...args: unknown[]) => {
            for (const i of pointers) args[i] = BigInt(args[i] as number | bigint);
            return (fn as (...a: unknown[]) => unknown)(...args);
          };
    const handle = koffi.register(call, koffi.pointer(proto));
    return {
      pointer: BigInt(koffi.address(handle)),
      close: () => koffi.unregister(handle),
    };
  },
});
