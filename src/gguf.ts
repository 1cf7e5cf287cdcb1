// Our own GGUF reader/writer: @huggingface/gguf is read-only, and we also need a writer for synthetic benchmark models.
/**
 * GGUF v2/v3 (little-endian) reading and writing.
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
import { ModelLoadError } from "./errors";
import { readFully, writeAll, writeFileAtomically } from "./fileio";

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

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;
const MAX_KEY_BYTES = 65535;
/** Largest single metadata string we accept (chat templates and HF tokenizer JSON are far below). */
const MAX_STRING_BYTES = 256 * 1024 * 1024;
/** Largest metadata array we accept (real vocabularies have a few hundred thousand entries). */
const MAX_ARRAY_ITEMS = 1 << 26;
const MAX_DIMS = 4;
const LITTLE_ENDIAN_HOST = endianness() === "LE";
/**
 * Bound once: under a vm context (e.g. jest) global lookups like `Buffer.x` in per-string loops
 * are slow.
 */
const utf8Length = Buffer.byteLength;

const SCALAR_SIZE: Readonly<Record<number, number>> = {
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

const NUMERIC_ARRAY_CTOR: Readonly<Record<number, NumericArrayCtor>> = {
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
const INT_RANGE: Readonly<Record<number, readonly [bigint, bigint]>> = {
  [GgufValueType.UINT8]: [0n, 0xffn],
  [GgufValueType.INT8]: [-0x80n, 0x7fn],
  [GgufValueType.UINT16]: [0n, 0xffffn],
  [GgufValueType.INT16]: [-0x8000n, 0x7fffn],
  [GgufValueType.UINT32]: [0n, 0xffffffffn],
  [GgufValueType.INT32]: [-0x80000000n, 0x7fffffffn],
  [GgufValueType.UINT64]: [0n, 0xffffffffffffffffn],
  [GgufValueType.INT64]: [-0x8000000000000000n, 0x7fffffffffffffffn],
};

function isValueType(t: number): t is GgufValueType {
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

/** Bytes of data for a tensor of this type and shape, or undefined for an unknown type. */
export function ggmlTensorBytes(type: number, shape: readonly number[]): number | undefined {
  const block = GGML_BLOCK.get(type);
  if (!block) return undefined;
  const n = shape.reduce((a, b) => a * b, 1);
  return (n / block[0]) * block[1];
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/** In-place byte swap so typed-array bytes read from (or written to) a little-endian file are right on a big-endian host. */
function swapToHost(bytes: Uint8Array, elemSize: number): void {
  if (LITTLE_ENDIAN_HOST || elemSize === 1) return;
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (elemSize === 2) b.swap16();
  else if (elemSize === 4) b.swap32();
  else b.swap64();
}

function truncatedError(path: string, detail: string): ModelLoadError {
  return new ModelLoadError("MODEL_INVALID", `${path} is truncated: ${detail}`);
}

function corruptError(path: string, detail: string): ModelLoadError {
  return new ModelLoadError("MODEL_INVALID", `${path} is corrupt: ${detail}`);
}

/** Stat + open a model file for reading, mapping fs errors to MODEL_NOT_FOUND. */
async function openModelFile(path: string): Promise<{ fh: FileHandle; size: number }> {
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
