/**
 * Writing GGUF files (for synthetic benchmark models and test fixtures), float16
 * conversion, and reading small float tensors back. Not part of the library: the
 * library only reads headers (src/io/gguf.ts).
 */
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";

import { readFully, writeAll, writeFileAtomically } from "../io/fileio";
import {
  alignUp,
  DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgmlType,
  ggmlBlockInfo,
  ggmlTypeName,
  type GgufInfo,
  type GgufTypedArray,
  type GgufValue,
  GgufValueType,
  INT_RANGE,
  isValueType,
  LITTLE_ENDIAN_HOST,
  MAX_DIMS,
  NUMERIC_ARRAY_CTOR,
  SCALAR_SIZE,
  swapToHost,
  truncatedError,
  utf8Length,
} from "../io/gguf";

// ---------------------------------------------------------------------------------------------
// float16 conversion
// ---------------------------------------------------------------------------------------------

/**
 * Convert float32 values to IEEE float16 bit patterns with round-to-nearest-even (the same result
 * as F16C / numpy). Overflow becomes ±Inf, NaN stays NaN, tiny values become subnormals or ±0.
 *
 * @param dst output array of at least src.length elements (allocated if omitted)
 */
export function f32ToF16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (dst.length < src.length) throw new RangeError(`f32ToF16: dst has ${dst.length} elements, need ${src.length}`);
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = u[i];
    const sign = (x >>> 16) & 0x8000;
    const abs = x & 0x7fffffff;
    let h: number;
    if (abs >= 0x38800000) {
      if (abs >= 0x477ff000) {
        // >= 65520 rounds to Inf; Inf and NaN keep their class.
        h = abs > 0x7f800000 ? 0x7e00 : 0x7c00;
      } else {
        // Normal half: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits.
        h = (abs - 0x38000000) >>> 13;
        const rest = abs & 0x1fff;
        if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++;
      }
    } else if (abs >= 0x33000000) {
      // Subnormal half (or rounds up to the smallest normal): value / 2^-24 with rounding.
      const e = abs >>> 23;
      const mant = (abs & 0x7fffff) | 0x800000;
      const shift = 126 - e;
      h = mant >>> shift;
      const rest = mant & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rest > halfway || (rest === halfway && (h & 1) !== 0)) h++;
    } else {
      h = 0;
    }
    dst[i] = sign | h;
  }
  return dst;
}

let F16_TABLE: Float32Array | undefined;

/** Lookup table of all 65536 float16 values as float32. */
function f16Table(): Float32Array {
  if (F16_TABLE) return F16_TABLE;
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      table[h] = (mant * 2 ** -24) * (sign ? -1 : 1); // zero / subnormal
    } else if (exp === 31) {
      bits[h] = sign | 0x7f800000 | (mant << 13); // Inf / NaN
    } else {
      bits[h] = sign | ((exp + 112) << 23) | (mant << 13);
    }
  }
  F16_TABLE = table;
  return table;
}

/** Convert float16 bit patterns to float32 values (exact). */
export function f16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dst.length < src.length) throw new RangeError(`f16ToF32: dst has ${dst.length} elements, need ${src.length}`);
  const table = f16Table();
  const n = src.length;
  for (let i = 0; i < n; i++) dst[i] = table[src[i]];
  return dst;
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/** A value for the writer: anything the reader returns, or a plain number/bigint array for a numeric ARRAY. */
export type GgufValueInput = GgufValue | readonly (number | bigint)[];

/** A metadata entry for the writer (GgufMetadataEntry from the reader qualifies). */
export interface GgufMetadataEntryInput {
  key: string;
  type: GgufValueType;
  value: GgufValueInput;
  /** Item type, for type === ARRAY. */
  itemType?: GgufValueType;
}

/** Metadata for the writer: ordered entries, or an ordered map key -> typed value. */
export type GgufMetadataInput =
  | readonly GgufMetadataEntryInput[]
  | ReadonlyMap<string, Omit<GgufMetadataEntryInput, "key">>;

/** A chunk of tensor data: float32 values, or (F16 tensors only) raw float16 bit patterns. */
export type GgufTensorChunk = Float32Array | Uint16Array;

export interface GgufTensorInput {
  name: string;
  /** ne0 first, as GGUF stores it. */
  shape: readonly number[];
  type: GgmlType.F32 | GgmlType.F16;
  /**
   * All values (float32, converted to the tensor type; or float16 bits for F16), or a function
   * returning an (async) iterable of chunks in order. A chunk may be reused by the producer once
   * the next one is requested: the writer has finished with it by then.
   */
  data: Float32Array | Uint16Array | (() => Iterable<GgufTensorChunk> | AsyncIterable<GgufTensorChunk>);
}

export interface WriteGgufOptions {
  metadata: GgufMetadataInput;
  tensors: readonly GgufTensorInput[];
  /** Tensor data alignment (power of two, default 32); written as general.alignment if not 32. */
  alignment?: number;
  /** GGUF version to write (default 3). */
  version?: 2 | 3;
}

export interface WriteGgufResult {
  fileSize: number;
  dataOffset: number;
}

/** Growable little-endian byte buffer for the header. */
class ByteWriter {
  buf = Buffer.allocUnsafe(1 << 16);
  len = 0;

  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.len + n, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.len);
    this.buf = grown;
  }
  u32(v: number): void {
    this.ensure(4);
    this.len = this.buf.writeUInt32LE(v, this.len);
  }
  /** Write a u64 (numbers must be safe non-negative integers; no BigInt on the hot path). */
  u64(v: number | bigint): void {
    this.ensure(8);
    if (typeof v === "bigint") {
      this.len = this.buf.writeBigUInt64LE(v, this.len);
    } else {
      const hi = (v / 4294967296) >>> 0;
      this.buf.writeUInt32LE(v - hi * 4294967296, this.len);
      this.len = this.buf.writeUInt32LE(hi, this.len + 4);
    }
  }
  string(s: string): void {
    const n = utf8Length(s, "utf8");
    this.u64(n);
    this.ensure(n);
    this.len += this.buf.write(s, this.len, n, "utf8");
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  pad(alignment: number): void {
    const n = alignUp(this.len, alignment) - this.len;
    this.ensure(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
  }
}

function checkInteger(type: GgufValueType, v: unknown, key: string): bigint {
  const [lo, hi] = INT_RANGE[type];
  let b: bigint;
  if (typeof v === "bigint") b = v;
  else if (typeof v === "number" && Number.isInteger(v)) b = BigInt(v);
  else throw new TypeError(`GGUF metadata "${key}": expected an integer for ${GgufValueType[type]}, got ${typeof v}`);
  if (b < lo || b > hi) throw new RangeError(`GGUF metadata "${key}": ${b} is out of range for ${GgufValueType[type]}`);
  return b;
}

function writeScalar(w: ByteWriter, type: GgufValueType, v: unknown, key: string): void {
  const size = SCALAR_SIZE[type];
  if (type === GgufValueType.FLOAT32 || type === GgufValueType.FLOAT64) {
    if (typeof v !== "number") throw new TypeError(`GGUF metadata "${key}": expected a number for ${GgufValueType[type]}`);
    w.ensure(size);
    w.len = type === GgufValueType.FLOAT32 ? w.buf.writeFloatLE(v, w.len) : w.buf.writeDoubleLE(v, w.len);
    return;
  }
  if (type === GgufValueType.BOOL) {
    if (typeof v !== "boolean") throw new TypeError(`GGUF metadata "${key}": expected a boolean for BOOL`);
    w.ensure(1);
    w.buf[w.len++] = v ? 1 : 0;
    return;
  }
  const b = checkInteger(type, v, key);
  w.ensure(size);
  const buf = w.buf;
  const p = w.len;
  switch (type) {
    case GgufValueType.UINT8:
      buf.writeUInt8(Number(b), p);
      break;
    case GgufValueType.INT8:
      buf.writeInt8(Number(b), p);
      break;
    case GgufValueType.UINT16:
      buf.writeUInt16LE(Number(b), p);
      break;
    case GgufValueType.INT16:
      buf.writeInt16LE(Number(b), p);
      break;
    case GgufValueType.UINT32:
      buf.writeUInt32LE(Number(b), p);
      break;
    case GgufValueType.INT32:
      buf.writeInt32LE(Number(b), p);
      break;
    case GgufValueType.UINT64:
      buf.writeBigUInt64LE(b, p);
      break;
    case GgufValueType.INT64:
      buf.writeBigInt64LE(b, p);
      break;
    default:
      throw new TypeError(`GGUF metadata "${key}": ${type} is not a scalar type`);
  }
  w.len += size;
}

function writeArray(w: ByteWriter, itemType: GgufValueType | undefined, value: unknown, key: string): void {
  if (itemType === undefined || !isValueType(itemType)) {
    throw new TypeError(`GGUF metadata "${key}": an ARRAY needs a valid itemType`);
  }
  if (!ArrayBuffer.isView(value) && !Array.isArray(value)) {
    throw new TypeError(`GGUF metadata "${key}": expected an array value`);
  }
  const items = value as ArrayLike<unknown>;
  w.u32(itemType);
  w.u64(items.length);
  if (itemType === GgufValueType.STRING) {
    for (let i = 0; i < items.length; i++) {
      const s = items[i];
      if (typeof s !== "string") throw new TypeError(`GGUF metadata "${key}"[${i}]: expected a string`);
      w.string(s);
    }
    return;
  }
  if (itemType === GgufValueType.ARRAY) {
    for (let i = 0; i < items.length; i++) {
      const inner = items[i] as GgufTypedArray;
      if (inner === null || typeof inner !== "object" || !("itemType" in inner)) {
        throw new TypeError(`GGUF metadata "${key}"[${i}]: nested arrays must be { itemType, value } objects`);
      }
      writeArray(w, inner.itemType, inner.value, `${key}[${i}]`);
    }
    return;
  }
  if (itemType === GgufValueType.BOOL) {
    w.ensure(items.length);
    for (let i = 0; i < items.length; i++) {
      const b = items[i];
      if (typeof b !== "boolean") throw new TypeError(`GGUF metadata "${key}"[${i}]: expected a boolean`);
      w.buf[w.len++] = b ? 1 : 0;
    }
    return;
  }
  const Ctor = NUMERIC_ARRAY_CTOR[itemType];
  let arr: ArrayBufferView;
  if (value instanceof Ctor) {
    arr = value;
  } else if (itemType === GgufValueType.FLOAT32 || itemType === GgufValueType.FLOAT64) {
    for (let i = 0; i < items.length; i++) {
      if (typeof items[i] !== "number") throw new TypeError(`GGUF metadata "${key}"[${i}]: expected a number`);
    }
    arr = (Ctor as Float32ArrayConstructor).from(items as ArrayLike<number>);
  } else if (itemType === GgufValueType.UINT64 || itemType === GgufValueType.INT64) {
    const big = new (Ctor as BigInt64ArrayConstructor)(items.length);
    for (let i = 0; i < items.length; i++) big[i] = checkInteger(itemType, items[i], `${key}[${i}]`);
    arr = big;
  } else {
    const out = new (Ctor as Int32ArrayConstructor)(items.length);
    for (let i = 0; i < items.length; i++) out[i] = Number(checkInteger(itemType, items[i], `${key}[${i}]`));
    arr = out;
  }
  const bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
  if (LITTLE_ENDIAN_HOST) {
    w.bytes(bytes);
  } else {
    const copy = Uint8Array.from(bytes);
    const b = Buffer.from(copy.buffer);
    if (Ctor.BYTES_PER_ELEMENT === 2) b.swap16();
    else if (Ctor.BYTES_PER_ELEMENT === 4) b.swap32();
    else if (Ctor.BYTES_PER_ELEMENT === 8) b.swap64();
    w.bytes(copy);
  }
}

function writeValue(w: ByteWriter, e: GgufMetadataEntryInput): void {
  if (!isValueType(e.type)) throw new TypeError(`GGUF metadata "${e.key}": unknown value type ${String(e.type)}`);
  if (e.type === GgufValueType.STRING) {
    if (typeof e.value !== "string") throw new TypeError(`GGUF metadata "${e.key}": expected a string`);
    w.string(e.value);
  } else if (e.type === GgufValueType.ARRAY) {
    writeArray(w, e.itemType, e.value, e.key);
  } else {
    writeScalar(w, e.type, e.value, e.key);
  }
}

function metadataEntries(input: GgufMetadataInput): GgufMetadataEntryInput[] {
  if (input instanceof Map) {
    return [...input].map(([key, v]) => ({ key, type: v.type, value: v.value, itemType: v.itemType }));
  }
  return [...(input as readonly GgufMetadataEntryInput[])];
}

/** Little-endian bytes of a typed array: a view on little-endian hosts, a swapped copy otherwise. */
function leBytes(a: Float32Array | Uint16Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN_HOST) return view;
  const copy = Uint8Array.from(view);
  if (a.BYTES_PER_ELEMENT === 2) Buffer.from(copy.buffer).swap16();
  else Buffer.from(copy.buffer).swap32();
  return copy;
}


/** Elements per write for float32 -> float16 conversion and for slicing large arrays. */
const WRITE_CHUNK = 1 << 20;

/** Stream one tensor's data, converting it to the tensor type, and check the element count. */
async function writeTensorData(fh: FileHandle, t: GgufTensorInput, nElements: number, scratch: Uint16Array): Promise<void> {
  let written = 0;
  const writeChunk = async (chunk: GgufTensorChunk): Promise<void> => {
    if (written + chunk.length > nElements) {
      throw new RangeError(`GGUF tensor "${t.name}": data has more than the ${nElements} elements its shape needs`);
    }
    if (chunk instanceof Uint16Array) {
      if (t.type !== GgmlType.F16) {
        throw new TypeError(`GGUF tensor "${t.name}": Uint16Array (float16 bits) data needs type F16`);
      }
      for (let i = 0; i < chunk.length; i += WRITE_CHUNK) await writeAll(fh, leBytes(chunk.subarray(i, i + WRITE_CHUNK)));
    } else if (chunk instanceof Float32Array) {
      for (let i = 0; i < chunk.length; i += WRITE_CHUNK) {
        const part = chunk.subarray(i, i + WRITE_CHUNK);
        if (t.type === GgmlType.F32) await writeAll(fh, leBytes(part));
        else await writeAll(fh, leBytes(f32ToF16(part, scratch).subarray(0, part.length)));
      }
    } else {
      throw new TypeError(`GGUF tensor "${t.name}": data chunks must be Float32Array or Uint16Array`);
    }
    written += chunk.length;
  };
  if (typeof t.data === "function") {
    for await (const chunk of t.data()) await writeChunk(chunk);
  } else {
    await writeChunk(t.data);
  }
  if (written !== nElements) {
    throw new RangeError(`GGUF tensor "${t.name}": got ${written} elements, its shape [${t.shape.join(", ")}] needs ${nElements}`);
  }
}

/**
 * Write a GGUF file (F32/F16 tensors), streaming tensor data so multi-GB files never sit in memory.
 * The file is written under a temporary name and renamed into place when complete.
 */
export async function writeGguf(path: string, model: WriteGgufOptions): Promise<WriteGgufResult> {
  const version = model.version ?? 3;
  const entries = metadataEntries(model.metadata);
  const keys = new Set<string>();
  for (const e of entries) {
    if (typeof e.key !== "string" || e.key.length === 0) throw new TypeError("GGUF metadata keys must be non-empty strings");
    if (keys.has(e.key)) throw new TypeError(`GGUF metadata key "${e.key}" appears twice`);
    keys.add(e.key);
  }
  let alignment = model.alignment ?? DEFAULT_ALIGNMENT;
  const alignEntry = entries.find((e) => e.key === "general.alignment");
  if (alignEntry) {
    if (alignEntry.type !== GgufValueType.UINT32 || typeof alignEntry.value !== "number") {
      throw new TypeError("general.alignment must be a UINT32");
    }
    if (model.alignment !== undefined && model.alignment !== alignEntry.value) {
      throw new TypeError(`alignment ${model.alignment} disagrees with general.alignment ${alignEntry.value}`);
    }
    alignment = alignEntry.value;
  } else if (alignment !== DEFAULT_ALIGNMENT) {
    entries.push({ key: "general.alignment", type: GgufValueType.UINT32, value: alignment });
  }
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new RangeError(`GGUF alignment must be a power of two, got ${alignment}`);
  }

  // Tensor infos and data layout.
  const names = new Set<string>();
  const layout: { nElements: number; offset: number; nbytes: number }[] = [];
  let dataSize = 0;
  for (const t of model.tensors) {
    if (!t.name || Buffer.byteLength(t.name) > 63) throw new TypeError(`GGUF tensor name must be 1-63 bytes: "${t.name}"`);
    if (names.has(t.name)) throw new TypeError(`GGUF tensor "${t.name}" appears twice`);
    names.add(t.name);
    if (t.shape.length < 1 || t.shape.length > MAX_DIMS || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 1)) {
      throw new RangeError(`GGUF tensor "${t.name}": shape must be 1-4 positive integers, got [${t.shape.join(", ")}]`);
    }
    if (t.type !== GgmlType.F32 && t.type !== GgmlType.F16) {
      throw new TypeError(`GGUF tensor "${t.name}": the writer supports F32 and F16, got ${ggmlTypeName(t.type)}`);
    }
    const nElements = t.shape.reduce((a, b) => a * b, 1);
    const nbytes = nElements * (t.type === GgmlType.F32 ? 4 : 2);
    layout.push({ nElements, offset: dataSize, nbytes });
    dataSize = alignUp(dataSize + nbytes, alignment);
  }

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(version);
  w.u64(model.tensors.length);
  w.u64(entries.length);
  for (const e of entries) {
    w.string(e.key);
    w.u32(e.type);
    writeValue(w, e);
  }
  model.tensors.forEach((t, i) => {
    w.string(t.name);
    w.u32(t.shape.length);
    for (const d of t.shape) w.u64(d);
    w.u32(t.type);
    w.u64(layout[i].offset);
  });
  // A file without tensors ends right after the header (as llama.cpp's vocab-only files do).
  if (model.tensors.length > 0) w.pad(alignment);
  const dataOffset = w.len;

  await writeFileAtomically(path, async (fh) => {
    await writeAll(fh, w.buf.subarray(0, w.len));
    const scratch = new Uint16Array(WRITE_CHUNK);
    const zeros = new Uint8Array(alignment);
    for (let i = 0; i < model.tensors.length; i++) {
      await writeTensorData(fh, model.tensors[i], layout[i].nElements, scratch);
      const pad = alignUp(layout[i].nbytes, alignment) - layout[i].nbytes;
      if (pad > 0) await writeAll(fh, zeros.subarray(0, pad));
    }
  });
  return { fileSize: dataOffset + dataSize, dataOffset };
}

/**
 * Read one F32, F16 or BF16 tensor's data as a Float32Array (meant for small tensors and tests;
 * the data is read in one go).
 */
export async function readGgufTensorF32(path: string, info: GgufInfo, name: string): Promise<Float32Array> {
  const t = info.tensors.find((x) => x.name === name);
  if (!t) throw new RangeError(`tensor "${name}" not found in ${path}`);
  if (t.type !== GgmlType.F32 && t.type !== GgmlType.F16 && t.type !== GgmlType.BF16) {
    throw new RangeError(`tensor "${name}" has type ${ggmlTypeName(t.type)}; only F32, F16 and BF16 can be read as floats`);
  }
  const n = t.shape.reduce((a, b) => a * b, 1);
  const fh = await open(path, "r");
  try {
    const position = info.dataOffset + t.offset;
    if (t.type === GgmlType.F32) {
      const out = new Float32Array(n);
      if ((await readFully(fh, new Uint8Array(out.buffer), position)) !== out.byteLength) {
        throw truncatedError(path, `tensor "${name}" data is cut short`);
      }
      swapToHost(new Uint8Array(out.buffer), 4);
      return out;
    }
    const half = new Uint16Array(n);
    if ((await readFully(fh, new Uint8Array(half.buffer), position)) !== half.byteLength) {
      throw truncatedError(path, `tensor "${name}" data is cut short`);
    }
    swapToHost(new Uint8Array(half.buffer), 2);
    if (t.type === GgmlType.F16) return f16ToF32(half);
    const out = new Float32Array(n);
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = half[i] << 16;
    return out;
  } finally {
    await fh.close();
  }
}

