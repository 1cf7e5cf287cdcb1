/**
 * Joining shard capture files into one, streaming (one copy buffer of memory) and atomically (a
 * temporary file renamed into place). The merged file is byte-identical to an unsharded capture of
 * the same request.
 */
import { randomBytes } from "node:crypto";
import { open, rename, statfs, unlink, type FileHandle } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { CaptureFileError } from "../errors";
import { readFully, syncDir, writeAllAt } from "./fileio";
import { readSafetensorsHeader } from "./safetensors";
import { diffIdentity, encodeCaptureHeader, parseCaptureHeader, type CaptureFinal, type CaptureIdentity } from "./capture-layout";

/** Options of {@link mergeCaptureFiles}. */
export interface MergeOptions {
  /** Write the inputs even when they do not cover all rows [0, N) (they must still be contiguous). */
  allowPartial?: boolean;
  /** Metadata keys that may differ between shards (the first input's value is kept). Default
   * `["model_path", "source"]`: shards captured on other machines see other paths. */
  mayDiffer?: readonly string[];
  /** Bytes per copy (default 8 MiB). */
  chunkBytes?: number;
}

export interface MergeResult {
  out: string;
  /** The inputs in row order. */
  inputs: string[];
  rowStart: number;
  rowEnd: number;
  totalRows: number;
  /** True when the output covers all rows [0, totalRows). */
  complete: boolean;
  bytes: number;
}

interface Input {
  path: string;
  id: CaptureIdentity;
  final: CaptureFinal;
  dataStart: number;
}

interface Piece {
  file: Input;
  position: number;
  length: number;
}

/** The output's data in order (tensor by tensor, each input's rows), in pieces of at most `chunk` bytes. */
function* piecesOf(sorted: Input[], tensors: number, chunk: number): Generator<Piece> {
  for (let t = 0; t < tensors; t++) {
    for (const f of sorted) {
      const size = (f.id.rowEnd - f.id.rowStart) * f.id.width * 4;
      for (let o = 0; o < size; o += chunk) yield { file: f, position: f.dataStart + t * size + o, length: Math.min(chunk, size - o) };
    }
  }
}

/**
 * Joins capture files (shards of one capture) in row order into `out`.
 *
 * Checks that all inputs are finished captures of the same model fingerprint, layers, pool, width,
 * row count, input digest, token-count recording and metadata, and that their row ranges are
 * contiguous, disjoint and cover [0, N) (or, with `allowPartial`, a contiguous part of it).
 *
 * @throws FileFormatError naming the file when an input is not a capture file.
 * @throws CaptureFileError `MERGE_MISMATCH` (naming the file and `field`) when inputs disagree or
 *   one is unfinished; `MERGE_RANGES` for overlaps, gaps or missing rows; `DISK_FULL`.
 *   `out` is left untouched on any error.
 */
export async function mergeCaptureFiles(inputs: readonly string[], out: string, options: MergeOptions = {}): Promise<MergeResult> {
  if (!Array.isArray(inputs) || inputs.length === 0 || !inputs.every((p) => typeof p === "string" && p !== "")) {
    throw new TypeError("inputs must be a non-empty array of file paths");
  }
  if (typeof out !== "string" || out === "") throw new TypeError("out must be a file path");
  if (inputs.some((p) => resolve(p) === resolve(out))) throw new TypeError(`out (${out}) must not be one of the inputs`);
  const chunkBytes = options.chunkBytes ?? 8 << 20;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 4096) throw new RangeError(`chunkBytes must be an integer >= 4096, got ${chunkBytes}`);
  const mayDiffer = options.mayDiffer ?? ["model_path", "source"];

  const files: Input[] = [];
  for (const path of inputs) {
    const header = await readSafetensorsHeader(path);
    const { identity, complete, final } = parseCaptureHeader(path, header);
    if (!complete || !final) {
      throw new CaptureFileError("MERGE_MISMATCH", path, "is an unfinished capture (status incomplete); finish it (--resume) before merging", { field: "status" });
    }
    files.push({ path, id: identity, final, dataStart: header.dataStart });
  }

  const first = files[0];
  for (const f of files.slice(1)) {
    const diff = diffIdentity(first.id, f.id, { ignore: ["row_range", "shard", "row_ids", ...mayDiffer] });
    if (diff) {
      throw new CaptureFileError("MERGE_MISMATCH", f.path,
        `differs from ${first.path}: ${diff.what} (${diff.field} ${diff.here} here, ${diff.there} there)`, { field: diff.field });
    }
    if ((first.id.rowIds === null) !== (f.id.rowIds === null)) {
      throw new CaptureFileError("MERGE_MISMATCH", f.path, `differs from ${first.path}: row_ids ${f.id.rowIds ? "present" : "absent"} here, not there`, { field: "row_ids" });
    }
    const finals = (x: Input) => JSON.stringify(x.final.metadata.filter(([k]) => !mayDiffer.includes(k)));
    if (finals(f) !== finals(first)) {
      const there = new Map(first.final.metadata);
      const here = new Map(f.final.metadata);
      const key = [...new Set([...there.keys(), ...here.keys()])].find((k) => !mayDiffer.includes(k) && there.get(k) !== here.get(k)) ?? "metadata";
      throw new CaptureFileError("MERGE_MISMATCH", f.path,
        `differs from ${first.path}: final metadata "${key}" (${JSON.stringify(here.get(key) ?? null)} here, ${JSON.stringify(there.get(key) ?? null)} there)`, { field: key });
    }
  }

  const sorted = [...files].sort((a, b) => a.id.rowStart - b.id.rowStart || a.id.rowEnd - b.id.rowEnd);
  const describe = (f: Input) => `${f.path} (rows ${f.id.rowStart}-${f.id.rowEnd - 1})`;
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1];
    const b = sorted[i];
    if (b.id.rowStart < a.id.rowEnd) {
      throw new CaptureFileError("MERGE_RANGES", b.path, `overlaps ${describe(a)}: rows ${b.id.rowStart}-${Math.min(a.id.rowEnd, b.id.rowEnd) - 1} are in both`);
    }
    if (b.id.rowStart > a.id.rowEnd) {
      throw new CaptureFileError("MERGE_RANGES", b.path, `rows ${a.id.rowEnd}-${b.id.rowStart - 1} are in no input (a gap between ${describe(a)} and ${describe(b)})`);
    }
  }
  const rowStart = sorted[0].id.rowStart;
  const rowEnd = sorted[sorted.length - 1].id.rowEnd;
  const totalRows = first.id.totalRows;
  const complete = rowStart === 0 && rowEnd === totalRows;
  if (!complete && !options.allowPartial) {
    const missing = [rowStart > 0 ? `0-${rowStart - 1}` : "", rowEnd < totalRows ? `${rowEnd}-${totalRows - 1}` : ""].filter(Boolean).join(" and ");
    throw new CaptureFileError("MERGE_RANGES", sorted[0].path,
      `the inputs cover rows ${rowStart}-${rowEnd - 1} of ${totalRows}; rows ${missing} are missing (allow a partial merge to write them anyway)`);
  }

  const merged: CaptureIdentity = {
    ...first.id,
    rowStart,
    rowEnd,
    shard: null,
    rowIds: first.id.rowIds ? sorted.flatMap((f) => f.id.rowIds!) : null,
  };
  const final: CaptureFinal = {
    skippedRows: sorted.flatMap((f) => f.final.skippedRows),
    tokenCounts: first.id.tokenCounts ? sorted.flatMap((f) => Array.from(f.final.tokenCounts ?? [])) : null,
    metadata: first.final.metadata,
  };
  const header = encodeCaptureHeader(merged, final);
  const tensorBytes = (rowEnd - rowStart) * merged.width * 4;
  const bytes = header.length + merged.layers.length * tensorBytes;

  const fs = await statfs(dirname(resolve(out))).catch(() => null);
  if (fs && fs.bavail * fs.bsize < bytes) {
    throw new CaptureFileError("DISK_FULL", out, `needs ${(bytes / 1e9).toFixed(2)} GB but has ${((fs.bavail * fs.bsize) / 1e9).toFixed(2)} GB free; free some space and run the merge again`);
  }

  const tmp = `${out}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const fh = await open(tmp, "w");
  const sources = new Map<string, FileHandle>();
  try {
    for (const f of sorted) if (!sources.has(f.path)) sources.set(f.path, await open(f.path, "r"));
    await writeAllAt(fh, header, 0);
    // Two buffers: the next piece is read while the current one is written.
    const buffers = [new Uint8Array(chunkBytes), new Uint8Array(chunkBytes)];
    const read = async (p: Piece, buffer: Uint8Array) => {
      const part = buffer.subarray(0, p.length);
      if ((await readFully(sources.get(p.file.path)!, part, p.position)) !== p.length) {
        throw new CaptureFileError("MERGE_MISMATCH", p.file.path, "changed while merging (data cut short)", { field: "size" });
      }
      return part;
    };
    const pieces = piecesOf(sorted, merged.layers.length, chunkBytes);
    let pos = header.length;
    let next = pieces.next();
    let reading = next.done ? null : read(next.value, buffers[0]);
    for (let i = 1; reading; i++) {
      const part = await reading;
      next = pieces.next();
      reading = next.done ? null : read(next.value, buffers[i % 2]);
      await writeAllAt(fh, part, pos);
      pos += part.length;
    }
    await fh.datasync();
    await fh.close();
    await rename(tmp, out);
    await syncDir(dirname(resolve(out)));
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOSPC" || code === "EDQUOT") {
      throw new CaptureFileError("DISK_FULL", out, `disk full (${code}) while merging; nothing was written. Free some space and run the merge again`, { cause: err });
    }
    throw err;
  } finally {
    for (const s of sources.values()) await s.close().catch(() => undefined);
  }
  return { out, inputs: sorted.map((f) => f.path), rowStart, rowEnd, totalRows, complete, bytes };
}
