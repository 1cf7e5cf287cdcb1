/**
 * GGUF v2/v3 (little-endian) reading: header, metadata, tensor infos, and the fingerprint.
 * Our own reader because it must bound every count by the file's size before llama.cpp sees a
 * file (@huggingface/gguf reads remote files and trusts counts); the writer that benchmarks and
 * tests use is in src/tools/gguf-writer.ts.
 *
 * Layout of a GGUF file:
 *
 *   magic "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
 *   metadata_kv_count x (string key | u32 value_type | value)
 *   tensor_count x (string name | u32 n_dims | n_dims x u64 ne | u32 ggml_type | u64 offset)
 *   zero padding up to general.alignment (default 32)
 *   tensor data; each tensor at data_start + offset, offsets aligned to general.alignment
 *
 * where a string is u64 byte length + UTF-8 bytes and an array is u32 item_type | u64 count | items.
 *
 * The reader only ever reads the header, metadata and tensor infos (through a small growing
 * buffer), never the tensor data, and it bounds every count and length by what the file can hold,
 * so a corrupt file cannot make it allocate more than the file's own size.
 */
import { createHash } from "node:crypto";
import { open, stat, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import { ModelLoadError } from "../errors";
import { readFully } from "./fileio";

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/** GGUF metadata value types (gguf_type). */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** ggml tensor types that can appear in a GGUF file (ggml_type; removed ids are absent). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
  Q2_0 = 42,
}

/**
 * [elements per block, bytes per block] of each ggml type, as in ggml's type_traits
 * (checked against sizeof(block_*) in ggml-common.h).
 */
const GGML_BLOCK: ReadonlyMap<number, readonly [number, number]> = new Map<number, readonly [number, number]>([
  [GgmlType.F32, [1, 4]],
  [GgmlType.F16, [1, 2]],
  [GgmlType.Q4_0, [32, 18]],
  [GgmlType.Q4_1, [32, 20]],
  [GgmlType.Q5_0, [32, 22]],
  [GgmlType.Q5_1, [32, 24]],
  [GgmlType.Q8_0, [32, 34]],
  [GgmlType.Q8_1, [32, 36]],
  [GgmlType.Q2_K, [256, 84]],
  [GgmlType.Q3_K, [256, 110]],
  [GgmlType.Q4_K, [256, 144]],
  [GgmlType.Q5_K, [256, 176]],
  [GgmlType.Q6_K, [256, 210]],
  [GgmlType.Q8_K, [256, 292]],
  [GgmlType.IQ2_XXS, [256, 66]],
  [GgmlType.IQ2_XS, [256, 74]],
  [GgmlType.IQ3_XXS, [256, 98]],
  [GgmlType.IQ1_S, [256, 50]],
  [GgmlType.IQ4_NL, [32, 18]],
  [GgmlType.IQ3_S, [256, 110]],
  [GgmlType.IQ2_S, [256, 82]],
  [GgmlType.IQ4_XS, [256, 136]],
  [GgmlType.I8, [1, 1]],
  [GgmlType.I16, [1, 2]],
  [GgmlType.I32, [1, 4]],
  [GgmlType.I64, [1, 8]],
  [GgmlType.F64, [1, 8]],
  [GgmlType.IQ1_M, [256, 56]],
  [GgmlType.BF16, [1, 2]],
  [GgmlType.TQ1_0, [256, 54]],
  [GgmlType.TQ2_0, [256, 66]],
  [GgmlType.MXFP4, [32, 17]],
  [GgmlType.NVFP4, [64, 36]],
  [GgmlType.Q1_0, [128, 18]],
  [GgmlType.Q2_0, [64, 18]],
]);

/** Numeric GGUF arrays are returned as typed arrays; strings and bools as plain arrays. */
export type GgufArrayValue =
  | string[]
  | boolean[]
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | GgufTypedArray[];

/** An array nested inside another array keeps its own item type. */
export interface GgufTypedArray {
  itemType: GgufValueType;
  value: GgufArrayValue;
}

/**
 * A metadata value. 64-bit integer scalars are numbers when they are safe integers and bigints
 * otherwise.
 */
export type GgufValue = string | number | bigint | boolean | GgufArrayValue;

/** One metadata key/value with its GGUF type, in file order (enough to copy it verbatim). */
export interface GgufMetadataEntry {
  key: string;
  type: GgufValueType;
  value: GgufValue;
  /** Item type, for type === ARRAY. */
  itemType?: GgufValueType;
}

export interface GgufTensorInfo {
  name: string;
  /** Dimensions ne0 first, as GGUF stores them (ne0 is the contiguous one). */
  shape: number[];
  /** ggml type id (see GgmlType). */
  type: number;
  /** Offset of the tensor's data relative to the start of the data section. */
  offset: number;
  /** Size of the tensor's data in bytes, or undefined for a ggml type we do not know. */
  nbytes: number | undefined;
}

export interface GgufInfo {
  version: number;
  metadata: Record<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** general.alignment, default 32. */
  alignment: number;
  /** Absolute file offset of the tensor data section (aligned). */
  dataOffset: number;
  fileSize: number;
  /** Absolute end of the last tensor's data; undefined if some tensor has an unknown type. */
  expectedSize: number | undefined;
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const DEFAULT_ALIGNMENT = 32;
const MAX_KEY_BYTES = 65535;
/** Largest single metadata string we accept (chat templates and HF tokenizer JSON are far below). */
const MAX_STRING_BYTES = 256 * 1024 * 1024;
/** Largest metadata array we accept (real vocabularies have a few hundred thousand entries). */
const MAX_ARRAY_ITEMS = 1 << 26;
export const MAX_DIMS = 4;
export const LITTLE_ENDIAN_HOST = endianness() === "LE";
/**
 * Bound once: under a vm context (e.g. jest) global lookups like `Buffer.x` in per-string loops
 * are slow.
 */
export const utf8Length = Buffer.byteLength;

export const SCALAR_SIZE: Readonly<Record<number, number>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

type NumericArrayCtor =
  | Uint8ArrayConstructor
  | Int8ArrayConstructor
  | Uint16ArrayConstructor
  | Int16ArrayConstructor
  | Uint32ArrayConstructor
  | Int32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | BigUint64ArrayConstructor
  | BigInt64ArrayConstructor;

export const NUMERIC_ARRAY_CTOR: Readonly<Record<number, NumericArrayCtor>> = {
  [GgufValueType.UINT8]: Uint8Array,
  [GgufValueType.INT8]: Int8Array,
  [GgufValueType.UINT16]: Uint16Array,
  [GgufValueType.INT16]: Int16Array,
  [GgufValueType.UINT32]: Uint32Array,
  [GgufValueType.INT32]: Int32Array,
  [GgufValueType.FLOAT32]: Float32Array,
  [GgufValueType.FLOAT64]: Float64Array,
  [GgufValueType.UINT64]: BigUint64Array,
  [GgufValueType.INT64]: BigInt64Array,
};

/** Integer ranges for validating values handed to the writer. */
export const INT_RANGE: Readonly<Record<number, readonly [bigint, bigint]>> = {
  [GgufValueType.UINT8]: [0n, 0xffn],
  [GgufValueType.INT8]: [-0x80n, 0x7fn],
  [GgufValueType.UINT16]: [0n, 0xffffn],
  [GgufValueType.INT16]: [-0x8000n, 0x7fffn],
  [GgufValueType.UINT32]: [0n, 0xffffffffn],
  [GgufValueType.INT32]: [-0x80000000n, 0x7fffffffn],
  [GgufValueType.UINT64]: [0n, 0xffffffffffffffffn],
  [GgufValueType.INT64]: [-0x8000000000000000n, 0x7fffffffffffffffn],
};

export function isValueType(t: number): t is GgufValueType {
  return Number.isInteger(t) && t >= 0 && t <= GgufValueType.FLOAT64;
}

/** Human-readable name of a ggml type id ("F16", "Q4_K", or "type 99"). */
export function ggmlTypeName(type: number): string {
  return GgmlType[type] ?? `type ${type}`;
}

/** [elements per block, bytes per block] for a ggml type, or undefined if unknown. */
export function ggmlBlockInfo(type: number): readonly [number, number] | undefined {
  return GGML_BLOCK.get(type);
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** In-place byte swap so typed-array bytes read from (or written to) a little-endian file are right on a big-endian host. */
export function swapToHost(bytes: Uint8Array, elemSize: number): void {
  if (LITTLE_ENDIAN_HOST || elemSize === 1) return;
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (elemSize === 2) b.swap16();
  else if (elemSize === 4) b.swap32();
  else b.swap64();
}

export function truncatedError(path: string, detail: string): ModelLoadError {
  return new ModelLoadError("MODEL_INVALID", `${path} is truncated: ${detail}`);
}

function corruptError(path: string, detail: string): ModelLoadError {
  return new ModelLoadError("MODEL_INVALID", `${path} is corrupt: ${detail}`);
}

/** Stat + open a model file for reading, mapping fs errors to MODEL_NOT_FOUND. */
export async function openModelFile(path: string): Promise<{ fh: FileHandle; size: number }> {
  let size: number;
  try {
    const st = await stat(path);
    if (st.isDirectory()) {
      throw new ModelLoadError("MODEL_NOT_FOUND", `Model path is a directory, not a GGUF file: ${path}`);
    }
    if (!st.isFile()) {
      throw new ModelLoadError("MODEL_NOT_FOUND", `Model path is not a regular file: ${path}`);
    }
    size = st.size;
  } catch (err) {
    if (err instanceof ModelLoadError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new ModelLoadError("MODEL_NOT_FOUND", `Model file not found: ${path}`, { cause: err });
    }
    throw new ModelLoadError("MODEL_NOT_FOUND", `Model file cannot be accessed: ${path} (${code ?? String(err)})`, {
      cause: err,
    });
  }
  try {
    return { fh: await open(path, "r"), size };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelLoadError("MODEL_NOT_FOUND", `Model file is not readable: ${path} (${code ?? String(err)})`, {
      cause: err,
    });
  }
}

/** Read exactly dst.length bytes at position, looping over short reads. */

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/**
 * Sequential little-endian reader over a file with a growing window buffer. Callers `await need(n)`
 * before synchronous reads of n bytes; `need` refuses anything past the end of the file, so the
 * buffer never grows beyond the file size.
 */
class HeaderReader {
  private buf: Buffer;
  private start = 0;
  private end = 0;
  /** File position of buf[end]. */
  private filePos = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly fileSize: number,
  ) {
    this.buf = Buffer.allocUnsafe(Math.max(64, Math.min(1 << 20, fileSize)));
  }

  /** Absolute file position of the next byte to be consumed. */
  get position(): number {
    return this.filePos - (this.end - this.start);
  }

  get remaining(): number {
    return this.fileSize - this.position;
  }

  async need(n: number, what: string): Promise<void> {
    if (this.end - this.start >= n) return;
    if (n > this.remaining) {
      throw truncatedError(
        this.path,
        `${what} at byte ${this.position} needs ${n} bytes but the file ends after ${this.remaining} more`,
      );
    }
    if (this.start > 0) {
      this.buf.copy(this.buf, 0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    if (this.buf.length < n) {
      const grown = Buffer.allocUnsafe(Math.max(n, Math.min(this.buf.length * 2, this.remaining)));
      this.buf.copy(grown, 0, 0, this.end);
      this.buf = grown;
    }
    while (this.end < n) {
      const want = Math.min(this.buf.length - this.end, this.fileSize - this.filePos);
      const { bytesRead } = await this.fh.read(this.buf, this.end, want, this.filePos);
      if (bytesRead === 0) {
        throw truncatedError(this.path, `file ended at byte ${this.filePos} while reading ${what} (was it modified?)`);
      }
      this.end += bytesRead;
      this.filePos += bytesRead;
    }
  }

  u8(): number {
    return this.buf[this.start++];
  }
  u32(): number {
    const v = this.buf.readUInt32LE(this.start);
    this.start += 4;
    return v;
  }
  u64(): bigint {
    const v = this.buf.readBigUInt64LE(this.start);
    this.start += 8;
    return v;
  }
  /** A u64 as a number (exact below 2^53, approximate above: fine for bounds checks); no BigInt on hot paths. */
  u64n(): number {
    const lo = this.buf.readUInt32LE(this.start);
    const hi = this.buf.readUInt32LE(this.start + 4);
    this.start += 8;
    return hi * 4294967296 + lo;
  }

  /** Read a scalar of the given (non-string, non-array) type; need() must have been called. */
  scalar(type: GgufValueType): number | bigint | boolean {
    const b = this.buf;
    const p = this.start;
    this.start += SCALAR_SIZE[type];
    switch (type) {
      case GgufValueType.UINT8:
        return b.readUInt8(p);
      case GgufValueType.INT8:
        return b.readInt8(p);
      case GgufValueType.UINT16:
        return b.readUInt16LE(p);
      case GgufValueType.INT16:
        return b.readInt16LE(p);
      case GgufValueType.UINT32:
        return b.readUInt32LE(p);
      case GgufValueType.INT32:
        return b.readInt32LE(p);
      case GgufValueType.FLOAT32:
        return b.readFloatLE(p);
      case GgufValueType.FLOAT64:
        return b.readDoubleLE(p);
      case GgufValueType.BOOL:
        return b[p] !== 0;
      case GgufValueType.UINT64:
        return safeNumber(b.readBigUInt64LE(p));
      case GgufValueType.INT64:
        return safeNumber(b.readBigInt64LE(p));
      default:
        throw new Error(`not a scalar GGUF type: ${type}`);
    }
  }

  /** Read a GGUF string (u64 length + UTF-8). */
  async string(what: string, maxBytes: number): Promise<string> {
    await this.need(8, what);
    const n = this.u64n();
    if (n > this.remaining) {
      throw truncatedError(this.path, `${what} at byte ${this.position - 8} has length ${n} but only ${this.remaining} bytes remain`);
    }
    if (n > maxBytes) throw corruptError(this.path, `${what} at byte ${this.position - 8} is ${n} bytes long (limit ${maxBytes})`);
    await this.need(n, what);
    const s = this.buf.toString("utf8", this.start, this.start + n);
    this.start += n;
    return s;
  }

  /** Copy the next dst.length bytes into dst, through the window buffer in pieces. */
  async into(dst: Uint8Array, what: string): Promise<void> {
    if (dst.length > this.remaining) {
      throw truncatedError(this.path, `${what} at byte ${this.position} needs ${dst.length} bytes but only ${this.remaining} remain`);
    }
    let done = 0;
    while (done < dst.length) {
      if (this.end === this.start) await this.need(Math.min(dst.length - done, this.buf.length), what);
      const n = Math.min(this.end - this.start, dst.length - done);
      dst.set(this.buf.subarray(this.start, this.start + n), done);
      this.start += n;
      done += n;
    }
  }
}

function safeNumber(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

async function readArray(r: HeaderReader, what: string, depth: number): Promise<GgufTypedArray> {
  await r.need(12, what);
  const itemType = r.u32();
  const count64 = r.u64();
  if (!isValueType(itemType)) throw corruptError(r.path, `${what} has unknown array item type ${itemType}`);
  const minItem = itemType === GgufValueType.STRING ? 8 : itemType === GgufValueType.ARRAY ? 12 : SCALAR_SIZE[itemType];
  if (count64 * BigInt(minItem) > BigInt(r.remaining)) {
    throw truncatedError(r.path, `${what} declares ${count64} items but only ${r.remaining} bytes remain`);
  }
  const count = Number(count64);
  if (count > MAX_ARRAY_ITEMS) throw corruptError(r.path, `${what} declares ${count} items (limit ${MAX_ARRAY_ITEMS})`);

  if (itemType === GgufValueType.STRING) {
    const out = new Array<string>(count);
    for (let i = 0; i < count; i++) out[i] = await r.string(what, MAX_STRING_BYTES);
    return { itemType, value: out };
  }
  if (itemType === GgufValueType.ARRAY) {
    if (depth >= 8) throw corruptError(r.path, `${what} nests arrays more than 8 deep`);
    const out = new Array<GgufTypedArray>(count);
    for (let i = 0; i < count; i++) out[i] = await readArray(r, what, depth + 1);
    return { itemType, value: out };
  }
  if (itemType === GgufValueType.BOOL) {
    const bytes = new Uint8Array(count);
    await r.into(bytes, what);
    const out = new Array<boolean>(count);
    for (let i = 0; i < count; i++) out[i] = bytes[i] !== 0;
    return { itemType, value: out };
  }
  const Ctor = NUMERIC_ARRAY_CTOR[itemType];
  const arr = new Ctor(count);
  const bytes = new Uint8Array(arr.buffer);
  await r.into(bytes, what);
  swapToHost(bytes, Ctor.BYTES_PER_ELEMENT);
  return { itemType, value: arr };
}

interface ParsedGguf {
  version: number;
  entries: GgufMetadataEntry[];
  tensors: GgufTensorInfo[];
  alignment: number;
  dataOffset: number;
  fileSize: number;
  expectedSize: number | undefined;
}

/** Parse header, metadata and tensor infos. `metadataOnly` stops before the tensor infos. */
async function parseGguf(path: string, fh: FileHandle, fileSize: number, metadataOnly: boolean): Promise<ParsedGguf> {
  if (fileSize < 4) {
    const head = new Uint8Array(fileSize);
    await readFully(fh, head, 0);
    const isPrefix = Buffer.from("GGUF").subarray(0, fileSize).equals(head);
    if (isPrefix) throw truncatedError(path, `the file has only ${fileSize} bytes`);
    throw new ModelLoadError("MODEL_INVALID", `${path} is not a GGUF file (bad magic bytes)`);
  }
  const r = new HeaderReader(fh, path, fileSize);
  await r.need(4, "magic");
  if (r.u32() !== GGUF_MAGIC) {
    throw new ModelLoadError("MODEL_INVALID", `${path} is not a GGUF file (bad magic bytes)`);
  }
  await r.need(4, "version");
  const version = r.u32();
  if (version === 0x02000000 || version === 0x03000000) {
    throw new ModelLoadError("MODEL_INVALID", `${path} is a big-endian GGUF file, which is not supported`);
  }
  if (version !== 2 && version !== 3) {
    throw new ModelLoadError(
      "MODEL_INVALID",
      `${path} has unsupported GGUF version ${version} (supported: 2 and 3; re-convert the model with a current llama.cpp)`,
    );
  }
  await r.need(16, "tensor and metadata counts");
  const tensorCount64 = r.u64();
  const kvCount64 = r.u64();
  // Each KV needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 24.
  if (kvCount64 * 13n > BigInt(r.remaining)) {
    throw truncatedError(path, `header declares ${kvCount64} metadata entries but only ${r.remaining} bytes follow`);
  }
  if (tensorCount64 * 24n > BigInt(r.remaining)) {
    throw truncatedError(path, `header declares ${tensorCount64} tensors but only ${r.remaining} bytes follow`);
  }
  const kvCount = Number(kvCount64);
  const tensorCount = Number(tensorCount64);

  const entries: GgufMetadataEntry[] = [];
  const seenKeys = new Set<string>();
  for (let i = 0; i < kvCount; i++) {
    const key = await r.string(`metadata key #${i}`, MAX_KEY_BYTES);
    if (seenKeys.has(key)) throw corruptError(path, `duplicate metadata key "${key}"`);
    seenKeys.add(key);
    const what = `metadata value "${key}"`;
    await r.need(4, what);
    const type = r.u32();
    if (!isValueType(type)) throw corruptError(path, `metadata key "${key}" has unknown value type ${type}`);
    if (type === GgufValueType.STRING) {
      entries.push({ key, type, value: await r.string(what, MAX_STRING_BYTES) });
    } else if (type === GgufValueType.ARRAY) {
      const arr = await readArray(r, what, 0);
      entries.push({ key, type, value: arr.value, itemType: arr.itemType });
    } else {
      await r.need(SCALAR_SIZE[type], what);
      entries.push({ key, type, value: r.scalar(type) });
    }
  }

  let alignment = DEFAULT_ALIGNMENT;
  const alignEntry = entries.find((e) => e.key === "general.alignment");
  if (alignEntry) {
    const a = alignEntry.value;
    if (alignEntry.type !== GgufValueType.UINT32 || typeof a !== "number" || a === 0 || (a & (a - 1)) !== 0) {
      throw corruptError(path, `general.alignment must be a power-of-two uint32, got ${String(a)}`);
    }
    alignment = a;
  }

  const tensors: GgufTensorInfo[] = [];
  let expectedEnd: number | undefined = 0;
  if (!metadataOnly) {
    const seenNames = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const name = await r.string(`tensor name #${i}`, MAX_KEY_BYTES);
      if (seenNames.has(name)) throw corruptError(path, `duplicate tensor name "${name}"`);
      seenNames.add(name);
      const what = `tensor info "${name}"`;
      await r.need(4, what);
      const nDims = r.u32();
      if (nDims > MAX_DIMS) throw corruptError(path, `tensor "${name}" has ${nDims} dimensions (at most ${MAX_DIMS})`);
      await r.need(nDims * 8 + 12, what);
      const shape: number[] = [];
      let nElements = 1n;
      for (let d = 0; d < nDims; d++) {
        const ne = r.u64();
        nElements *= ne;
        if (nElements > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw corruptError(path, `tensor "${name}" has an absurd number of elements`);
        }
        shape.push(Number(ne));
      }
      const type = r.u32();
      const offset64 = r.u64();
      if (offset64 > BigInt(fileSize)) {
        throw truncatedError(path, `tensor "${name}" starts at data offset ${offset64}, beyond the end of the file (${fileSize} bytes)`);
      }
      const offset = Number(offset64);
      if (offset % alignment !== 0) {
        throw corruptError(path, `tensor "${name}" data offset ${offset} is not a multiple of the alignment ${alignment}`);
      }
      const block = GGML_BLOCK.get(type);
      let nbytes: number | undefined;
      if (block) {
        if ((shape[0] ?? 1) % block[0] !== 0) {
          throw corruptError(path, `tensor "${name}" of type ${ggmlTypeName(type)} has ne0=${shape[0]}, not a multiple of its block size ${block[0]}`);
        }
        nbytes = (Number(nElements) / block[0]) * block[1];
        if (expectedEnd !== undefined) expectedEnd = Math.max(expectedEnd, offset + nbytes);
      } else {
        expectedEnd = undefined;
      }
      tensors.push({ name, shape, type, offset, nbytes });
    }
  }

  // With no tensors the data section is empty and the file may end right after the tensor infos
  // (llama.cpp's vocab-only files do).
  const headerEnd = r.position;
  const dataOffset = alignUp(headerEnd, alignment);
  if (tensors.length === 0 && expectedEnd !== undefined) expectedEnd = headerEnd - dataOffset;
  return {
    version,
    entries,
    tensors,
    alignment,
    dataOffset,
    fileSize,
    expectedSize: metadataOnly || expectedEnd === undefined ? undefined : dataOffset + expectedEnd,
  };
}

/**
 * Read a GGUF file's header, metadata and tensor infos (never the tensor data) and check the file
 * is long enough to hold all tensor data.
 *
 * @throws ModelLoadError MODEL_NOT_FOUND (missing, a directory, unreadable) or MODEL_INVALID
 *   (bad magic, unsupported version, truncated or corrupt).
 */
export async function readGgufInfo(path: string): Promise<GgufInfo> {
  const { fh, size } = await openModelFile(path);
  let parsed: ParsedGguf;
  try {
    parsed = await parseGguf(path, fh, size, false);
  } finally {
    await fh.close();
  }
  const { expectedSize, dataOffset } = parsed;
  if (expectedSize !== undefined && size < expectedSize) {
    throw truncatedError(
      path,
      `expected at least ${expectedSize - dataOffset} bytes of tensor data, file has ${Math.max(0, size - dataOffset)}` +
        ` (a complete file is at least ${expectedSize} bytes, this one is ${size})`,
    );
  }
  return {
    version: parsed.version,
    metadata: Object.fromEntries(parsed.entries.map((e) => [e.key, e.value])),
    tensors: parsed.tensors,
    alignment: parsed.alignment,
    dataOffset,
    fileSize: size,
    expectedSize,
  };
}

/**
 * Read a GGUF file's metadata entries with their GGUF value types, in file order, so they can be
 * written verbatim into another file (e.g. copying a tokenizer). Stops before the tensor infos.
 *
 * @param filter keep only the keys for which this returns true (e.g. `k => k.startsWith("tokenizer.")`).
 */
export async function readGgufMetadataEntries(
  path: string,
  filter?: (key: string) => boolean,
): Promise<GgufMetadataEntry[]> {
  const { fh, size } = await openModelFile(path);
  try {
    const parsed = await parseGguf(path, fh, size, true);
    return filter ? parsed.entries.filter((e) => filter(e.key)) : parsed.entries;
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Fingerprint
// ---------------------------------------------------------------------------------------------

const FP_SAMPLES = 32;
const FP_SAMPLE_BYTES = 64 * 1024;

/**
 * A stable id for a model's weights: SHA-256 over the header/metadata/tensor-info bytes, the file
 * size and 32 evenly spread 64 KiB samples of the tensor data (all of it when the data section is
 * smaller than 2 MiB). Reads at most dataOffset + 2 MiB, so it is fast on multi-GB files; a change
 * that falls entirely between samples of a large file is not detected.
 *
 * @returns "gguf-" + the first 16 hex digits of the digest.
 */
export async function ggufFingerprint(path: string, info: Pick<GgufInfo, "dataOffset">): Promise<string> {
  const { fh, size } = await openModelFile(path);
  try {
    const hash = createHash("sha256");
    const chunk = Buffer.allocUnsafe(1 << 20);
    const hashRange = async (start: number, end: number): Promise<void> => {
      for (let pos = start; pos < end; ) {
        const n = Math.min(chunk.length, end - pos);
        const got = await readFully(fh, chunk.subarray(0, n), pos);
        if (got !== n) throw truncatedError(path, `file ended at byte ${pos + got} while fingerprinting`);
        hash.update(chunk.subarray(0, n));
        pos += n;
      }
    };
    const dataOffset = Math.min(info.dataOffset, size);
    await hashRange(0, dataOffset);
    const sizeBytes = Buffer.alloc(8);
    sizeBytes.writeBigUInt64LE(BigInt(size));
    hash.update(sizeBytes);
    const dataLen = size - dataOffset;
    if (dataLen <= FP_SAMPLES * FP_SAMPLE_BYTES) {
      await hashRange(dataOffset, size);
    } else {
      const span = dataLen - FP_SAMPLE_BYTES;
      for (let i = 0; i < FP_SAMPLES; i++) {
        const start = dataOffset + Math.floor((span * i) / (FP_SAMPLES - 1));
        await hashRange(start, start + FP_SAMPLE_BYTES);
      }
    }
    return "gguf-" + hash.digest("hex").slice(0, 16);
  } finally {
    await fh.close();
  }
}
