/**
 * Struct layouts as offset tables.
 *
 * A layout names its C type and, for every field the project touches, the C field name, byte
 * offset and scalar kind. Code reads and writes fields through a DataView with {@link getField} /
 * {@link setField}; the C-compiler check (`test/sys/layout.test.mjs`) compares every size and
 * offset here with `sizeof`/`offsetof`.
 */

/** Scalar kinds a field can have; `bytes` is an inline array of `length` bytes. */
export type FieldKind = "u8" | "u16" | "u16be" | "i16" | "u32" | "i32" | "u64" | "i64" | "ptr" | "bytes";

/** One field of a struct. */
export interface Field {
  /** The C member name (for the compiler check). */
  readonly c: string;
  readonly offset: number;
  readonly kind: FieldKind;
  /** For `bytes`: the length of the inline array. */
  readonly length?: number;
}

/** A C struct's size and the fields evloop uses. */
export interface StructLayout<F extends string = string> {
  /** The C type, e.g. `struct sockaddr_in6`. */
  readonly c: string;
  readonly size: number;
  readonly fields: Readonly<Record<F, Field>>;
}

/** Declares a layout; fields are `[cName, offset, kind, length?]`. */
export function struct<F extends string>(
  c: string,
  size: number,
  fields: Record<F, readonly [c: string, offset: number, kind: FieldKind, length?: number]>,
): StructLayout<F> {
  const out = {} as Record<F, Field>;
  for (const key of Object.keys(fields) as F[]) {
    const [name, offset, kind, length] = fields[key];
    out[key] = length === undefined ? { c: name, offset, kind } : { c: name, offset, kind, length };
  }
  return { c, size, fields: out };
}

/** Reads a scalar field at `base` within `view` (native byte order unless `u16be`). */
export function getField(view: DataView, base: number, field: Field): number | bigint {
  const at = base + field.offset;
  switch (field.kind) {
    case "u8":
      return view.getUint8(at);
    case "u16":
      return view.getUint16(at, true);
    case "u16be":
      return view.getUint16(at, false);
    case "i16":
      return view.getInt16(at, true);
    case "u32":
      return view.getUint32(at, true);
    case "i32":
      return view.getInt32(at, true);
    case "u64":
    case "ptr":
      return view.getBigUint64(at, true);
    case "i64":
      return view.getBigInt64(at, true);
    case "bytes":
      throw new TypeError(`field ${field.c} is an array: slice it instead`);
  }
}

/** Writes a scalar field at `base` within `view`. */
export function setField(view: DataView, base: number, field: Field, value: number | bigint): void {
  const at = base + field.offset;
  switch (field.kind) {
    case "u8":
      return view.setUint8(at, Number(value));
    case "u16":
      return view.setUint16(at, Number(value), true);
    case "u16be":
      return view.setUint16(at, Number(value), false);
    case "i16":
      return view.setInt16(at, Number(value), true);
    case "u32":
      return view.setUint32(at, Number(value), true);
    case "i32":
      return view.setInt32(at, Number(value), true);
    case "u64":
    case "ptr":
      return view.setBigUint64(at, BigInt(value), true);
    case "i64":
      return view.setBigInt64(at, BigInt(value), true);
    case "bytes":
      throw new TypeError(`field ${field.c} is an array: copy into it instead`);
  }
}

/** A DataView over the whole of `bytes`. */
export function dataView(bytes: ArrayBufferView): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
