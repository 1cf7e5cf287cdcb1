/**
 * Reading capture files by row range, without loading whole tensors: for the probe pipeline's
 * activation cache and other consumers of corpus-scale captures. Row numbers are global (the
 * input's rows): a shard file holds rows [rowStart, rowEnd); for an unsharded or merged file they
 * are the file's rows. Also reads plain F32 safetensors files whose tensors are named
 * `layer.<l>` with shape [rows, width] (e.g. captures written before the capture-file format).
 */
import { open, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import { FileFormatError } from "../errors";
import { readFully } from "./fileio";
import { readSafetensorsHeader } from "./safetensors";
import { CAPTURE_FORMAT, parseCaptureHeader, tensorName, type CaptureLayer } from "./capture-layout";

const LITTLE_ENDIAN_HOST = endianness() === "LE";

/** A capture file's header, interpreted. */
export interface CaptureInfo {
  path: string;
  layers: CaptureLayer[];
  width: number;
  totalRows: number;
  rowStart: number;
  rowEnd: number;
  /** rowEnd - rowStart. */
  rows: number;
  /** Null for files that do not record it. */
  fingerprint: string | null;
  pool: string | null;
  shard: string | null;
  sourceDigest: string | null;
  rowIds: string[] | null;
  tokenCounts: number[] | null;
  skippedRows: number[];
  /** False for a file still being written (`.partial`). */
  complete: boolean;
  /** The raw header metadata. */
  metadata: Record<string, string>;
  /** File offset of each layer's tensor data. */
  offsets: Map<CaptureLayer, number>;
}

function parseLayerName(name: string): CaptureLayer | null {
  const m = /^layer\.(final|\d+)$/.exec(name);
  if (!m) return null;
  return m[1] === "final" ? "final" : Number(m[1]);
}

function optionalJson<T>(text: string | undefined, check: (v: unknown) => v is T): T | null {
  if (text === undefined) return null;
  try {
    const v: unknown = JSON.parse(text);
    return check(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Reads a capture file's header.
 *
 * @throws FileFormatError naming the file when it is not safetensors, or not a capture (tensors
 *   not named `layer.<l>`, not 2-D, of different row counts or widths).
 */
export async function readCaptureInfo(path: string): Promise<CaptureInfo> {
  const header = await readSafetensorsHeader(path);
  const m = header.metadata;
  const offsets = new Map<CaptureLayer, number>();
  if (m.format === CAPTURE_FORMAT) {
    const { identity: id, complete, final } = parseCaptureHeader(path, header);
    header.entries.forEach((e, i) => offsets.set(id.layers[i], header.dataStart + e.begin));
    return {
      path,
      layers: id.layers,
      width: id.width,
      totalRows: id.totalRows,
      rowStart: id.rowStart,
      rowEnd: id.rowEnd,
      rows: id.rowEnd - id.rowStart,
      fingerprint: id.fingerprint,
      pool: id.pool,
      shard: id.shard,
      sourceDigest: id.sourceDigest,
      rowIds: id.rowIds,
      tokenCounts: final?.tokenCounts ? Array.from(final.tokenCounts) : null,
      skippedRows: final?.skippedRows ?? [],
      complete,
      metadata: m,
      offsets,
    };
  }
  // A plain safetensors file of layer.<l> tensors.
  const layers: CaptureLayer[] = [];
  let rows = -1;
  let width = -1;
  for (const e of header.entries) {
    const layer = parseLayerName(e.name);
    if (layer === null) throw new FileFormatError(path, `tensor "${e.name}" is not a captured layer (expected names like layer.12, layer.final)`);
    if (e.shape.length !== 2) throw new FileFormatError(path, `tensor "${e.name}" has shape [${e.shape.join(", ")}], expected [rows, width]`);
    if (rows === -1) [rows, width] = e.shape;
    if (e.shape[0] !== rows || e.shape[1] !== width) {
      throw new FileFormatError(path, `tensor "${e.name}" has shape [${e.shape.join(", ")}], the first tensor [${rows}, ${width}]`);
    }
    layers.push(layer);
    offsets.set(layer, header.dataStart + e.begin);
  }
  if (layers.length === 0) throw new FileFormatError(path, "holds no layer.<l> tensors");
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.length === rows && v.every((x) => typeof x === "string");
  const isCounts = (v: unknown): v is number[] => Array.isArray(v) && v.length === rows && v.every((x) => Number.isSafeInteger(x));
  return {
    path,
    layers,
    width,
    totalRows: rows,
    rowStart: 0,
    rowEnd: rows,
    rows,
    fingerprint: m.model_fingerprint ?? null,
    pool: m.pool ?? null,
    shard: null,
    sourceDigest: null,
    rowIds: optionalJson(m.row_ids, isStrings),
    tokenCounts: optionalJson(m.token_counts, isCounts),
    skippedRows: [],
    complete: true,
    metadata: m,
    offsets,
  };
}

/** An open capture file, read by row range. Close it when done (or `await using`). */
export class CaptureReader {
  private constructor(
    readonly info: CaptureInfo,
    private fh: FileHandle | null,
  ) {}

  /** @throws FileFormatError as {@link readCaptureInfo}. */
  static async open(path: string): Promise<CaptureReader> {
    const info = await readCaptureInfo(path);
    return new CaptureReader(info, await open(path, "r"));
  }

  /**
   * Rows [start, end) (global numbers) of `layer`: (end - start) x width floats, row-major. Into
   * `into` when given (it must hold exactly that many floats).
   *
   * @throws RangeError for a layer the file lacks or rows outside [rowStart, rowEnd).
   */
  async readRows(layer: CaptureLayer, start = this.info.rowStart, end = this.info.rowEnd, into?: Float32Array): Promise<Float32Array> {
    const { info } = this;
    const base = info.offsets.get(layer);
    if (base === undefined) throw new RangeError(`${info.path} has no ${tensorName(layer)} (layers: ${info.layers.join(", ")})`);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < info.rowStart || end > info.rowEnd || start > end) {
      throw new RangeError(`rows [${start}, ${end}) are outside ${info.path}'s rows [${info.rowStart}, ${info.rowEnd})`);
    }
    if (!this.fh) throw new RangeError(`${info.path}: the reader is closed`);
    const n = (end - start) * info.width;
    if (into !== undefined && (!(into instanceof Float32Array) || into.length !== n)) {
      throw new RangeError(`into must be a Float32Array of ${n} floats`);
    }
    const out = into ?? new Float32Array(n);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    const got = await readFully(this.fh, bytes, base + (start - info.rowStart) * info.width * 4);
    if (got !== bytes.length) throw new FileFormatError(info.path, `rows ${start}-${end - 1} of ${tensorName(layer)} are cut short (file changed while reading?)`);
    if (!LITTLE_ENDIAN_HOST) Buffer.from(out.buffer, out.byteOffset, out.byteLength).swap32();
    return out;
  }

  /**
   * Streams `layer` in chunks of `chunkRows` rows (default 1024), from `start` to `end`: memory is
   * one chunk. Each chunk's array is fresh (callers may keep it).
   */
  async *chunks(layer: CaptureLayer, options: { chunkRows?: number; start?: number; end?: number } = {}): AsyncGenerator<{ firstRow: number; rows: number; data: Float32Array }> {
    const chunkRows = options.chunkRows ?? 1024;
    if (!Number.isSafeInteger(chunkRows) || chunkRows < 1) throw new RangeError(`chunkRows must be a positive integer, got ${chunkRows}`);
    const start = options.start ?? this.info.rowStart;
    const end = options.end ?? this.info.rowEnd;
    for (let r = start; r < end; r += chunkRows) {
      const e = Math.min(end, r + chunkRows);
      yield { firstRow: r, rows: e - r, data: await this.readRows(layer, r, e) };
    }
  }

  async close(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Reads rows [range[0], range[1]) (global numbers; default all) of one layer of a capture file.
 *
 * @throws FileFormatError for a file that is not a capture; RangeError for a missing layer or rows
 *   out of range.
 */
export async function readCaptureRows(path: string, layer: CaptureLayer, range?: readonly [number, number]): Promise<Float32Array> {
  const reader = await CaptureReader.open(path);
  try {
    return await reader.readRows(layer, range?.[0], range?.[1]);
  } finally {
    await reader.close();
  }
}
