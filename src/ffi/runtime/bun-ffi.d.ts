/**
 * The part of Bun's `bun:ffi` module that `bun.ts` uses, typed here so the project needs no
 * `bun-types` (whose globals would clash with @types/node). Only `bun.ts` imports it.
 */
declare module "bun:ffi" {
  /** Bun's type names for arguments and results (the subset evloop uses). */
  export type FFITypeName = "void" | "i32" | "u32" | "i64" | "u64" | "i64_fast" | "u64_fast" | "ptr";

  export interface FFIFunctionSpec {
    readonly args?: readonly FFITypeName[];
    readonly returns?: FFITypeName;
    /** The function's address (linkSymbols, CFunction); a number or a bigint. */
    readonly ptr?: number | bigint;
  }

  export type FFIFunctionCallable = (...args: unknown[]) => unknown;

  export interface Library<K extends string> {
    readonly symbols: Readonly<Record<K, FFIFunctionCallable>>;
    close(): void;
  }

  export function dlopen<K extends string>(path: string, symbols: Readonly<Record<K, FFIFunctionSpec>>): Library<K>;
  export function linkSymbols<K extends string>(symbols: Readonly<Record<K, FFIFunctionSpec>>): Library<K>;
  export function CFunction(spec: FFIFunctionSpec & { readonly ptr: number | bigint }): FFIFunctionCallable;

  /** The address of a view's first byte (byteOffset included), as a number. */
  export function ptr(view: ArrayBufferView | ArrayBufferLike, byteOffset?: number): number;
  /** An ArrayBuffer over `byteLength` bytes of native memory at `address + byteOffset` (not owned). */
  export function toArrayBuffer(address: number, byteOffset: number, byteLength: number): ArrayBuffer;

  export class CString extends String {
    constructor(address: number, byteOffset?: number, byteLength?: number);
  }

  export class JSCallback {
    constructor(fn: (...args: never[]) => unknown, definition: FFIFunctionSpec & { readonly threadsafe?: boolean });
    /** The C function pointer (null once closed). */
    readonly ptr: number | null;
    close(): void;
  }
}
