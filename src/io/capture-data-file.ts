/**
 * The data files of a capture (see capture-file.ts): the request they are made for, creating them
 * sized up front, checking that existing ones belong to the request, and the free-space check.
 */
import { open, stat, statfs, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { CaptureFileError, FileFormatError } from "../errors";
import { writeAllAt } from "./fileio";
import { readSafetensorsHeader } from "./safetensors";
import {
  diffIdentity, encodeCaptureHeader, metadataEntries, parseCaptureHeader, partialPath, shardRange, validateLayers,
  type CaptureIdentity, type CaptureLayer,
} from "./capture-layout";

/** The request fields of openCaptureFile's options: what a resume must match. */
export interface CaptureRequestOptions {
  /** Output file, e.g. `acts.safetensors` (in split-layers mode the stem of the per-layer files). */
  out: string;
  /** Layers in tensor order; tensors are named `layer.<l>`. */
  layers: readonly CaptureLayer[];
  /** Floats per row (the model's nEmbd). */
  width: number;
  /** Rows of the whole input (N); a shard holds part of them. */
  rows: number;
  /** Capture shard `index` (0-based) of `count`: rows {@link shardRange}(index, count, rows). */
  shard?: { index: number; count: number };
  /** The model's fingerprint: a resume with another model is refused. */
  fingerprint: string;
  /** "last", "mean", ...: a resume with another pool is refused. */
  pool: string;
  /** Digest of the input file (see {@link digestFile}): a resume over another input is refused. */
  sourceDigest?: string;
  /** Ids of all N input rows; the file stores its own range's ids as `row_ids`. */
  rowIds?: readonly string[];
  /** Extra header metadata known at the start (model_path, chat, ...); part of the request. */
  metadata?: Record<string, string>;
  /** Record a token count per row (writeRows' `tokenCounts`); stored as `token_counts`. */
  tokenCounts?: boolean;
  /** One file per layer: `<stem>.layer-<l>.safetensors`. */
  splitLayers?: boolean;
}

/** One data file of a capture. */
export interface DataFile {
  path: string;
  partial: string;
  /** Where the data is now: partial until renamed at finish. */
  at: string;
  identity: CaptureIdentity;
  headerLength: number;
  size: number;
  fh: FileHandle | null;
  /** Tensor index in this file for each run layer (-1: not here). */
  slot: number[];
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return false;
      throw err;
    },
  );
}

function humanBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.ceil(bytes / 1e3)} kB`;
}

/** Normalises and validates the options into the request's identity. */
export function requestOf(o: CaptureRequestOptions): { id: CaptureIdentity; split: boolean } {
  if (o === null || typeof o !== "object") throw new TypeError("capture file options must be an object");
  if (typeof o.out !== "string" || o.out === "") throw new TypeError("out must be a file path");
  const layers = validateLayers(o.layers);
  if (!Number.isSafeInteger(o.width) || o.width < 1) throw new RangeError(`width must be a positive integer, got ${o.width}`);
  if (!Number.isSafeInteger(o.rows) || o.rows < 0) throw new RangeError(`rows must be a non-negative integer, got ${o.rows}`);
  if (typeof o.fingerprint !== "string" || o.fingerprint === "") throw new TypeError("fingerprint must be a non-empty string");
  if (typeof o.pool !== "string" || o.pool === "") throw new TypeError("pool must be a non-empty string");
  if (o.sourceDigest !== undefined && typeof o.sourceDigest !== "string") throw new TypeError("sourceDigest must be a string");
  const [rowStart, rowEnd] = o.shard ? shardRange(o.shard.index, o.shard.count, o.rows) : [0, o.rows];
  if (o.rowIds !== undefined) {
    if (!Array.isArray(o.rowIds) || o.rowIds.length !== o.rows || !o.rowIds.every((s) => typeof s === "string")) {
      throw new TypeError(`rowIds must be an array of ${o.rows} strings (the ids of all input rows)`);
    }
  }
  return {
    split: o.splitLayers ?? false,
    id: {
      fingerprint: o.fingerprint,
      layers: layers.slice(),
      pool: o.pool,
      width: o.width,
      totalRows: o.rows,
      rowStart,
      rowEnd,
      shard: o.shard && o.shard.count > 1 ? `${o.shard.index}/${o.shard.count}` : null,
      sourceDigest: o.sourceDigest ?? null,
      tokenCounts: o.tokenCounts ?? false,
      rowIds: o.rowIds ? o.rowIds.slice(rowStart, rowEnd) : null,
      metadata: metadataEntries(o.metadata, "metadata"),
    },
  };
}

export async function createDataFile(f: DataFile): Promise<void> {
  const fh = await open(f.partial, "w+");
  try {
    await writeAllAt(fh, encodeCaptureHeader(f.identity, null, f.headerLength), 0);
    await fh.truncate(f.size); // sparse: blocks are allocated as rows land
    await fh.datasync();
  } finally {
    await fh.close();
  }
  f.at = f.partial;
}

/** Checks that `path` holds `f`'s capture (same request, intact size); returns its final part if complete. */
export async function validateDataFile(f: DataFile, path: string, opts: { complete?: boolean }): Promise<{ skippedRows: number[]; tokenCounts: ArrayLike<number> | null }> {
  let parsed;
  let headerLength;
  try {
    const header = await readSafetensorsHeader(path);
    parsed = parseCaptureHeader(path, header);
    headerLength = header.headerLength;
  } catch (err) {
    if (!(err instanceof FileFormatError)) throw err;
    const size = (await stat(path)).size;
    const why = err.message.slice(path.length + 2);
    throw new CaptureFileError("RESUME_INVALID", path,
      `${size < f.size ? `is truncated (${size} of ${f.size} bytes: ${why})` : `is not a safetensors capture file (${why})`}; nothing was changed`,
      { cause: err });
  }
  const diff = diffIdentity(parsed.identity, f.identity, { ignore: parsed.complete ? [] : ["token_counts"] });
  if (diff) {
    throw new CaptureFileError("RESUME_MISMATCH", path,
      `holds a capture with ${diff.what} (${diff.field} ${diff.there} there, ${diff.here} requested); nothing was changed. Use another output or delete it`,
      { field: diff.field });
  }
  if (opts.complete && !parsed.complete) {
    throw new CaptureFileError("RESUME_INVALID", path, "is marked incomplete but has no progress file; nothing was changed");
  }
  if (headerLength !== f.headerLength) {
    throw new CaptureFileError("RESUME_INVALID", path, `has a ${headerLength}-byte header, this request reserves ${f.headerLength}; nothing was changed`);
  }
  return parsed.final ?? { skippedRows: [], tokenCounts: null };
}

/** DISK_FULL when the folder has less free space than the files still need. */
export async function checkFreeSpace(files: DataFile[], existing: boolean): Promise<void> {
  let needed = 0;
  for (const f of files) {
    let allocated = 0;
    if (existing) {
      const st = await stat(f.at).catch(() => null);
      allocated = st ? st.blocks * 512 : 0;
    }
    needed += Math.max(0, f.size - allocated);
  }
  const dir = dirname(files[0].path);
  const fs = await statfs(dir).catch(() => null);
  if (!fs) return;
  const free = fs.bavail * fs.bsize;
  if (free < needed) {
    throw new CaptureFileError("DISK_FULL", files[0].path,
      `needs ${humanBytes(needed)} more but ${dir} has ${humanBytes(free)} free; free some space (or capture in shards elsewhere) and run again${existing ? " with --resume" : ""}`);
  }
}
