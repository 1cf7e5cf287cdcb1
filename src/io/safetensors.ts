/**
 * Minimal safetensors (F32 only) reader and writer.
 *
 * Format: u64 little-endian header length N | N bytes of JSON header | byte buffer. The header maps
 * each tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets relative to the byte
 * buffer) plus an optional "__metadata__" string -> string map. We pad the header with spaces to a
 * multiple of 8 and lay the tensors out contiguously in the order given, as the reference
 * implementation requires.
 */
import { open, stat, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import { FileFormatError } from "../errors";
import { readFully, writeAll, writeFileAtomically } from "./fileio";

export interface SafetensorsTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

const LITTLE_ENDIAN_HOST = endianness() === "LE";
/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100_000_000;
/** Bytes per write/read call for large tensors. */
const IO_CHUNK = 64 * 1024 * 1024;

/** `bytes` of F32 values in little-endian order (copied and swapped on big-endian hosts only). */
export function little(bytes: Uint8Array): Uint8Array {
  if (LITTLE_ENDIAN_HOST) return bytes;
  const copy = Uint8Array.from(bytes);
  Buffer.from(copy.buffer).swap32();
  return copy;
}


/**
 * Encodes a safetensors header (u64 length + JSON, padded with spaces) for F32 tensors laid out
 * contiguously in the order given. With `length`, the JSON is padded to exactly that many bytes
 * (a multiple of 8), so that a header written later in place can grow without moving the data; a
 * header that does not fit is a RangeError.
 */
export function encodeSafetensorsHeader(
  tensors: readonly { name: string; shape: readonly number[] }[],
  metadata: Record<string, string> = {},
  length?: number,
): Buffer {
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") throw new TypeError(`safetensors metadata "${k}" must be a string, got ${typeof v}`);
  }
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (!t.name || t.name === "__metadata__") throw new TypeError(`invalid safetensors tensor name "${t.name}"`);
    if (Object.prototype.hasOwnProperty.call(header, t.name)) throw new TypeError(`tensor "${t.name}" appears twice`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new RangeError(`tensor "${t.name}": shape must be non-negative integers, got [${t.shape.join(", ")}]`);
    }
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 4;
    header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, "utf8");
  const headerLen = length ?? Math.ceil(jsonBytes / 8) * 8;
  if (length !== undefined && (!Number.isSafeInteger(length) || length % 8 !== 0)) {
    throw new RangeError(`safetensors header length must be a multiple of 8, got ${length}`);
  }
  if (jsonBytes > headerLen) {
    throw new RangeError(`safetensors header needs ${jsonBytes} bytes but only ${headerLen} are reserved`);
  }
  const head = Buffer.alloc(8 + headerLen, 0x20);
  head.writeBigUInt64LE(BigInt(headerLen), 0);
  head.write(json, 8, "utf8");
  return head;
}

/**
 * Write F32 tensors to a safetensors file. Tensor bytes are written straight from each
 * Float32Array's buffer (in 64 MiB slices), never copied element by element. The file is written
 * under a temporary name and renamed into place.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly SafetensorsTensor[],
  metadata: Record<string, string> = {},
): Promise<void> {
  for (const t of tensors) {
    if (!(t.data instanceof Float32Array)) throw new TypeError(`tensor "${t.name}": data must be a Float32Array`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new RangeError(`tensor "${t.name}": shape must be non-negative integers, got [${t.shape.join(", ")}]`);
    }
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) {
      throw new RangeError(`tensor "${t.name}": shape [${t.shape.join(", ")}] needs ${n} values, data has ${t.data.length}`);
    }
  }
  const head = encodeSafetensorsHeader(tensors, metadata);

  await writeFileAtomically(path, async (fh) => {
    await writeAll(fh, head);
    for (const t of tensors) {
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      for (let i = 0; i < bytes.length; i += IO_CHUNK) await writeAll(fh, little(bytes.subarray(i, i + IO_CHUNK)));
    }
  });
}

/** One tensor of a parsed header; `begin`/`end` are byte offsets relative to the data start. */
export interface SafetensorsHeaderEntry {
  name: string;
  shape: number[];
  begin: number;
  end: number;
}

function parseHeader(path: string, json: string, bufferBytes: number): { metadata: Record<string, string>; entries: SafetensorsHeaderEntry[] } {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (err) {
    throw new FileFormatError(path, `safetensors header is not valid JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new FileFormatError(path, "safetensors header must be a JSON object");
  }
  const metadata: Record<string, string> = {};
  const entries: SafetensorsHeaderEntry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
        throw new FileFormatError(path, "__metadata__ must be an object of strings");
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") throw new FileFormatError(path, `__metadata__["${k}"] must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== "object") throw new FileFormatError(path, `tensor "${name}" header entry must be an object`);
    const { dtype, shape, data_offsets: offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (dtype !== "F32") {
      throw new FileFormatError(path, `tensor "${name}" has dtype ${JSON.stringify(dtype)}; only F32 is supported`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FileFormatError(path, `tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      throw new FileFormatError(path, `tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > bufferBytes) {
      throw new FileFormatError(path, `tensor "${name}" data ends at ${end} but the file holds only ${bufferBytes} bytes of tensor data (truncated?)`);
    }
    const n = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== n * 4) {
      throw new FileFormatError(path, `tensor "${name}" has shape [${shape.join(", ")}] (${n * 4} bytes of F32) but data_offsets span ${end - begin} bytes`);
    }
    entries.push({ name, shape: shape as number[], begin, end });
  }
  // The byte buffer must be covered exactly, without holes or overlaps.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.begin !== pos) {
      throw new FileFormatError(path, `tensor "${e.name}" data starts at ${e.begin}, expected ${pos} (tensor data must be contiguous, without holes or overlaps)`);
    }
    pos = e.end;
  }
  if (pos !== bufferBytes) {
    throw new FileFormatError(path, `tensor data covers ${pos} bytes but the file holds ${bufferBytes} bytes after the header`);
  }
  return { metadata, entries };
}

/** A safetensors header as read from a file, without the tensor data. */
export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** In header order. */
  entries: SafetensorsHeaderEntry[];
  /** Byte length of the JSON header (without the 8-byte length prefix). */
  headerLength: number;
  /** File offset of the tensor data (8 + headerLength). */
  dataStart: number;
  fileSize: number;
}

async function readHeaderFrom(path: string, fh: FileHandle, size: number): Promise<SafetensorsHeader> {
  if (size < 8) throw new FileFormatError(path, `too small to be a safetensors file (${size} bytes)`);
  const lenBuf = Buffer.alloc(8);
  await readFully(fh, lenBuf, 0);
  const headerLen64 = lenBuf.readBigUInt64LE(0);
  if (headerLen64 > BigInt(size - 8)) {
    throw new FileFormatError(path, `header length ${headerLen64} is larger than the rest of the file (${size - 8} bytes)`);
  }
  const headerLen = Number(headerLen64);
  if (headerLen < 2 || headerLen > MAX_HEADER_BYTES) {
    throw new FileFormatError(path, `invalid safetensors header length ${headerLen}`);
  }
  const headerBuf = Buffer.alloc(headerLen);
  await readFully(fh, headerBuf, 8);
  const { metadata, entries } = parseHeader(path, headerBuf.toString("utf8"), size - 8 - headerLen);
  return { metadata, entries, headerLength: headerLen, dataStart: 8 + headerLen, fileSize: size };
}

async function statFile(path: string): Promise<number> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new FileFormatError(path, "not a regular file");
    return st.size;
  } catch (err) {
    if (err instanceof FileFormatError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new FileFormatError(path, code === "ENOENT" ? "file not found" : `cannot access file (${code ?? String(err)})`);
  }
}

/**
 * Read and validate only the header of an F32 safetensors file (the tensor data is not read), so
 * that callers can read row ranges of large files.
 *
 * @throws FileFormatError as {@link readSafetensors}.
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const size = await statFile(path);
  const fh = await open(path, "r");
  try {
    return await readHeaderFrom(path, fh, size);
  } finally {
    await fh.close();
  }
}

/**
 * Read an F32 safetensors file. Each tensor is read straight into its own Float32Array.
 *
 * @throws FileFormatError for a missing file, bad header length, bad JSON, a non-F32 dtype, or
 *   shapes/offsets that do not match the data.
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const size = await statFile(path);
  const fh = await open(path, "r");
  try {
    const { metadata, entries, dataStart: base } = await readHeaderFrom(path, fh, size);
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const e of entries) {
      const data = new Float32Array((e.end - e.begin) / 4);
      const bytes = new Uint8Array(data.buffer);
      if ((await readFully(fh, bytes, base + e.begin)) !== bytes.length) {
        throw new FileFormatError(path, `tensor "${e.name}" data is cut short (file changed while reading?)`);
      }
      if (!LITTLE_ENDIAN_HOST) Buffer.from(data.buffer).swap32();
      tensors.set(e.name, { shape: e.shape, data });
    }
    return { metadata, tensors };
  } finally {
    await fh.close();
  }
}
