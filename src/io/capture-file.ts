/**
 * Corpus-scale capture output: a safetensors file (or one per layer) sized up front, filled chunk by
 * chunk at row offsets, resumable after a crash, shardable and mergeable, in O(chunk) memory.
 *
 * Files while a capture runs (for `out` = `acts.safetensors`):
 * - `acts.safetensors.partial`: the data file, created at full size (sparse) with a valid header
 *   (metadata `status: "incomplete"`); rows land at their offsets as chunks arrive. Split-layers
 *   mode writes `acts.layer-<l>.safetensors.partial`, one per layer, instead.
 * - `acts.safetensors.progress.json`: the progress file (JSON lines, append-only): the request on
 *   the first line, then one line per completed chunk (`{"rows":[first,count],"skipped":[...],
 *   "tokens":[...]}`). Each line is appended and fsynced only after the chunk's data is fsynced,
 *   so a line never claims rows that are not on disk; a torn last line is ignored on resume.
 *
 * finish() rewrites the header in place with the final metadata (skipped rows, token counts, the
 * caller's final metadata), renames the data file(s) to the final name(s) and removes the progress
 * file. A file under the final name is therefore always complete.
 *
 * Metadata only known at the end lives in the progress file during the run and goes into the
 * header at finish(). The header's length is reserved at creation for the worst case (every row
 * skipped, every token count 2^31-1, plus 4 KiB of final metadata: {@link FINAL_METADATA_RESERVE}),
 * padded with spaces, so the data offset never moves and no rewrite of the data is ever needed. The
 * reserved length depends on the request alone, so a resumed run writes the same bytes as an
 * uninterrupted one (nothing time-dependent is stored: keep timings out of finalMetadata).
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { CaptureFileError } from "../errors";
import { syncDir, writeAllAt } from "./fileio";
import { little } from "./safetensors";
import {
  encodeCaptureHeader, layerFilePath, metadataEntries, partialPath, progressPath, reservedHeaderLength,
  type CaptureIdentity, type CaptureLayer,
} from "./capture-layout";
import { checkFreeSpace, createDataFile, exists, requestOf, validateDataFile, type CaptureRequestOptions, type DataFile } from "./capture-data-file";
import { ProgressLog, type ProgressLine, type ProgressRequest } from "./capture-progress";

export {
  CAPTURE_FORMAT, FINAL_METADATA_RESERVE, layerFilePath, parseShard, partialPath, progressPath, shardRange, tensorName,
  type CaptureLayer,
} from "./capture-layout";
export { mergeCaptureFiles, type MergeOptions, type MergeResult } from "./capture-merge";
export { CaptureReader, readCaptureInfo, readCaptureRows, type CaptureInfo } from "./capture-reader";

/** Options of {@link openCaptureFile}. */
export interface CaptureFileOptions extends CaptureRequestOptions {
  /** Continue the capture in progress at `out` (or start one; a finished matching file is reused). */
  resume?: boolean;
  /** Discard an unfinished capture at `out` and start over (never with `resume`). */
  overwrite?: boolean;
  /** fsync data, then progress, after every chunk (default true). Without it a killed process still
   * loses nothing (the page cache survives it), but a power cut may. */
  sync?: boolean;
  /** Refuse to start when the disk has less free space than the file still needs (default true). */
  checkFreeSpace?: boolean;
  /** @internal Test hooks: fault injection before each data write, and named stages. */
  hooks?: CaptureFileHooks;
}

/** @internal */
export interface CaptureFileHooks {
  beforeWrite?: (path: string, position: number, length: number) => void | Promise<void>;
  stage?: (stage: "created" | "data-written" | "progress-written" | "headers-written" | "file-renamed" | "renamed") => void | Promise<void>;
}

/** Where a capture stands. Row numbers are global (input rows). */
export interface CaptureFileProgress {
  rowStart: number;
  rowEnd: number;
  /** rowEnd - rowStart. */
  rows: number;
  captured: number;
  skipped: number;
  /** captured + skipped. */
  done: number;
  /** The first row not yet done, or null when all are. */
  nextRow: number | null;
  complete: boolean;
}

/** What finish() returns. */
export interface CaptureFileSummary {
  files: string[];
  rowStart: number;
  rowEnd: number;
  totalRows: number;
  captured: number;
  skipped: number;
  /** Size of the files together. */
  bytes: number;
  /** True when the files were already finished before this writer was opened. */
  alreadyComplete: boolean;
}

const MISSING = 0;
const CAPTURED = 1;
const SKIPPED = 2;
const MAX_TOKEN_COUNT = 2147483647;
const ZERO_CHUNK = 1 << 20;

function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** sha256 of a file, streamed ("sha256:<hex>"): the `sourceDigest` of a capture's input. */
export async function digestFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

/**
 * Opens a capture output for writing: creates it, or with `resume` continues the capture in
 * progress after validating it against this request. See {@link CaptureFileWriter}.
 *
 * @throws TypeError/RangeError for malformed options.
 * @throws CaptureFileError `CAPTURE_IN_PROGRESS` when an unfinished capture is at `out` and neither
 *   `resume` nor `overwrite` is set; `RESUME_MISMATCH` (with `field`) when the capture in progress
 *   or the finished file was made with another model, layers, pool, input, shard ...;
 *   `RESUME_INVALID` when the files there are not a resumable capture (not safetensors, truncated,
 *   progress file without data); `DISK_FULL` when the disk has less room than the file needs.
 *   Nothing is deleted or overwritten on any of these.
 */
export function openCaptureFile(options: CaptureFileOptions): Promise<CaptureFileWriter> {
  return CaptureFileWriter.open(options);
}

/**
 * Writes a capture chunk by chunk. Memory is O(chunk) plus a byte (and with token counts an int)
 * per row: no row data is kept after writeRows resolves.
 *
 * ```ts
 * const w = await openCaptureFile({ out, layers, width, rows: N, fingerprint, pool, resume: true });
 * for (const [a, b] of w.missingRanges()) for (let r = a; r < b; r += chunk) {
 *   const rows = range(r, Math.min(b, r + chunk));
 *   const skipped = rows.filter((i) => tooLong(i));            // e.g. texts over the context
 *   const acts = await model.capture(rows.filter((i) => !tooLong(i)).map((i) => texts[i]), { layers, pool });
 *   await w.writeRows(r, layers.map((l) => acts.layer(l)), { skipped, tokenCounts: rows.map(tokensOf) });
 * }
 * await w.finish();
 * ```
 *
 * Calls are serialised in call order; keep at most one or two writeRows in flight and do not
 * modify a chunk's arrays before its promise resolves.
 */
export class CaptureFileWriter {
  /** The final file paths (one, or one per layer). */
  readonly files: readonly string[];
  /** The progress (sidecar) file. */
  readonly progressFile: string;
  readonly layers: readonly CaptureLayer[];
  readonly width: number;
  readonly totalRows: number;
  readonly rowStart: number;
  readonly rowEnd: number;
  /** True when this writer continues an earlier run (rows were already done, or the file was finished). */
  get resumed(): boolean {
    return this.alreadyComplete || this.resumedRows;
  }

  private readonly state: Uint8Array;
  private readonly tokens: Int32Array | null;
  private captured = 0;
  private skipped = 0;
  private cursor = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private resumedRows = false;
  private zeros: Uint8Array | null = null;

  private constructor(
    private readonly id: CaptureIdentity,
    private readonly data: DataFile[],
    private readonly log: ProgressLog | null,
    private readonly opts: { sync: boolean; hooks: CaptureFileHooks },
    private readonly alreadyComplete: boolean,
  ) {
    this.files = data.map((f) => f.path);
    this.progressFile = log?.path ?? "";
    this.layers = id.layers;
    this.width = id.width;
    this.totalRows = id.totalRows;
    this.rowStart = id.rowStart;
    this.rowEnd = id.rowEnd;
    this.state = new Uint8Array(id.rowEnd - id.rowStart);
    this.tokens = id.tokenCounts ? new Int32Array(id.rowEnd - id.rowStart) : null;
  }

  /** See {@link openCaptureFile}. */
  static async open(options: CaptureFileOptions): Promise<CaptureFileWriter> {
    const { id, split } = requestOf(options);
    if (options.resume && options.overwrite) throw new TypeError("resume and overwrite cannot both be set");
    const out = options.out;
    const files: DataFile[] = (split ? id.layers.map((l) => [l] as CaptureLayer[]) : [id.layers.slice()]).map((layers) => {
      const fid: CaptureIdentity = { ...id, layers };
      const path = split ? layerFilePath(out, layers[0]) : out;
      const headerLength = reservedHeaderLength(fid);
      const size = 8 + headerLength + layers.length * (id.rowEnd - id.rowStart) * id.width * 4;
      return { path, partial: partialPath(path), at: partialPath(path), identity: fid, headerLength, size, fh: null, slot: id.layers.map((l) => layers.indexOf(l)) };
    });
    const opts = { sync: options.sync ?? true, hooks: options.hooks ?? {} };
    const request: ProgressRequest = { identity: id, splitLayers: split, headerLengths: files.map((f) => f.headerLength) };
    const sidecar = progressPath(out);
    const checkSpace = options.checkFreeSpace ?? true;

    const sidecarExists = await exists(sidecar);
    const partials = (await Promise.all(files.map(async (f) => ((await exists(f.partial)) ? f.partial : null)))).filter((p): p is string => p !== null);
    if (!options.resume) {
      if (sidecarExists || partials.length > 0) {
        if (!options.overwrite) {
          const done = sidecarExists ? await ProgressLog.describe(sidecar) : "";
          throw new CaptureFileError("CAPTURE_IN_PROGRESS", sidecarExists ? sidecar : partials[0],
            `an unfinished capture is here${done}; resume it (--resume) or start over (--overwrite)`);
        }
        for (const p of [...partials, sidecar]) await unlink(p).catch(() => undefined);
      }
      return CaptureFileWriter.create(id, files, request, sidecar, opts, checkSpace);
    }

    if (!sidecarExists) {
      if (partials.length > 0) {
        throw new CaptureFileError("RESUME_INVALID", partials[0],
          `has no progress file (${sidecar}), so which rows it holds is unknown; nothing was changed. Delete it or start over (--overwrite)`);
      }
      const finals = await Promise.all(files.map((f) => exists(f.path)));
      if (finals.every(Boolean)) {
        // A finished capture: reuse it when it is what was asked for.
        const w = new CaptureFileWriter(id, files, null, opts, true);
        for (const f of files) {
          const final = await validateDataFile(f, f.path, { complete: true });
          if (f === files[0]) w.restoreFinished(final);
        }
        w.closed = true;
        return w;
      }
      return CaptureFileWriter.create(id, files, request, sidecar, opts, checkSpace);
    }

    const log = await ProgressLog.open(sidecar, request);
    const w = new CaptureFileWriter(id, files, log, opts, false);
    try {
      for (const line of log.entries) w.apply(line);
      log.entries = [];
      const anyDone = w.captured + w.skipped > 0;
      for (const f of files) {
        if (!anyDone && !log.finishing) {
          await createDataFile(f); // nothing recorded yet (perhaps killed while creating it): start it afresh
        } else if (await exists(f.partial)) {
          await validateDataFile(f, f.partial, {});
          f.at = f.partial;
        } else if (log.finishing && (await exists(f.path))) {
          await validateDataFile(f, f.path, {});
          f.at = f.path;
        } else {
          throw new CaptureFileError("RESUME_INVALID", f.partial,
            `is missing, but ${sidecar} records ${w.captured + w.skipped} rows written to it; nothing was changed. Start over (--overwrite)`);
        }
        f.fh = await open(f.at, "r+");
      }
      if (checkSpace) await checkFreeSpace(files, true);
      await log.dropTornTail(); // only now that the resume is accepted
    } catch (err) {
      await w.close();
      throw err;
    }
    w.resumedRows = w.captured + w.skipped > 0;
    return w;
  }

  private static async create(
    id: CaptureIdentity,
    files: DataFile[],
    request: ProgressRequest,
    sidecar: string,
    opts: { sync: boolean; hooks: CaptureFileHooks },
    checkSpace: boolean,
  ): Promise<CaptureFileWriter> {
    if (checkSpace) await checkFreeSpace(files, false);
    // Progress file first: data without it could not be resumed; it without data can.
    const log = await ProgressLog.create(sidecar, request);
    const w = new CaptureFileWriter(id, files, log, opts, false);
    try {
      for (const f of files) {
        await createDataFile(f);
        f.fh = await open(f.at, "r+");
      }
      await syncDir(dirname(sidecar));
      await opts.hooks.stage?.("created");
    } catch (err) {
      await w.close();
      throw err;
    }
    return w;
  }

  /** Rows done, the next row to capture, whether all are done. */
  get progress(): CaptureFileProgress {
    const rows = this.rowEnd - this.rowStart;
    while (this.cursor < rows && this.state[this.cursor] !== MISSING) this.cursor++;
    return {
      rowStart: this.rowStart,
      rowEnd: this.rowEnd,
      rows,
      captured: this.captured,
      skipped: this.skipped,
      done: this.captured + this.skipped,
      nextRow: this.cursor < rows ? this.rowStart + this.cursor : null,
      complete: this.captured + this.skipped === rows,
    };
  }

  /** Global numbers of the rows marked skipped so far, in order. */
  skippedRows(): number[] {
    const out: number[] = [];
    this.state.forEach((st, r) => {
      if (st === SKIPPED) out.push(this.rowStart + r);
    });
    return out;
  }

  /** The token counts recorded so far, per row of this file (0 where none yet), or null without them. */
  recordedTokenCounts(): Int32Array | null {
    return this.tokens ? this.tokens.slice() : null;
  }

  /** The ranges [a, b) of rows still missing, in order (global row numbers). */
  missingRanges(): [number, number][] {
    const out: [number, number][] = [];
    const rows = this.state.length;
    for (let r = this.progress.nextRow === null ? rows : this.cursor; r < rows; ) {
      if (this.state[r] !== MISSING) {
        r++;
        continue;
      }
      const a = r;
      while (r < rows && this.state[r] === MISSING) r++;
      out.push([this.rowStart + a, this.rowStart + r]);
    }
    return out;
  }

  /**
   * Writes one chunk: rows firstRow.. (global numbers) of every layer. `perLayer[i]` holds the
   * chunk's captured rows of `layers[i]` (n x width floats, row-major). With `skipped` (sorted row
   * numbers inside the chunk, e.g. texts longer than the context), the chunk spans n +
   * skipped.length rows: the captured rows fill the others in order, skipped rows are set to zeros
   * and listed in the header's `skipped_rows`. `tokenCounts` has one count per row of the chunk
   * (skipped ones included). The chunk is recorded as one unit, so a resumed run restarts at a
   * chunk boundary (and, with chunks of fixed size from the same start, captures the same batches).
   * Rows already written are overwritten. When the promise resolves the rows are on disk and
   * recorded (fsynced unless `sync: false`).
   *
   * @throws TypeError/RangeError for a malformed chunk (wrong layer count, width, rows outside the
   *   file's range, skipped rows outside the chunk, missing token counts).
   * @throws CaptureFileError `DISK_FULL` (nothing recorded; the writer stays usable: retry after
   *   freeing space, or resume later), `CAPTURE_CLOSED` after finish()/close().
   */
  async writeRows(
    firstRow: number,
    perLayer: readonly Float32Array[],
    options: { tokenCounts?: ArrayLike<number>; skipped?: readonly number[] } = {},
  ): Promise<void> {
    const captured = this.checkChunk(firstRow, perLayer, options.skipped?.length ?? 0);
    const skipped = options.skipped ?? [];
    const total = captured + skipped.length;
    skipped.forEach((r, k) => {
      if (!Number.isSafeInteger(r) || r < firstRow || r >= firstRow + total || (k > 0 && r <= skipped[k - 1])) {
        throw new RangeError(`writeRows: skipped must be increasing row numbers inside the chunk's rows ${firstRow}-${firstRow + total - 1}, got ${r}`);
      }
    });
    const tokens = this.checkTokens(options.tokenCounts, total, "writeRows");
    const what = `rows ${firstRow}-${firstRow + total - 1}`;
    return this.enqueue(async () => {
      // Runs of captured rows between skipped ones: [chunk row, source row, length, skipped?].
      const runs: [number, number, number, boolean][] = [];
      let src = 0;
      for (let r = 0, k = 0; r < total; ) {
        const isSkipped = k < skipped.length && skipped[k] === firstRow + r;
        let e = r + 1;
        if (isSkipped) {
          for (k++; k < skipped.length && skipped[k] === firstRow + e; k++) e++;
        } else {
          while (e < total && !(k < skipped.length && skipped[k] === firstRow + e)) e++;
        }
        runs.push([r, src, e - r, isSkipped]);
        if (!isSkipped) src += e - r;
        r = e;
      }
      const rowBytes = this.width * 4;
      for (let i = 0; i < perLayer.length; i++) {
        const a = perLayer[i];
        for (const [r, from, n, isSkipped] of runs) {
          const offset = (firstRow - this.rowStart + r) * rowBytes;
          if (isSkipped) {
            await this.writeZeros(i, offset, n * rowBytes, what);
          } else {
            const bytes = new Uint8Array(a.buffer, a.byteOffset + from * rowBytes, n * rowBytes);
            await this.writeTensorBytes(i, offset, little(bytes), what);
          }
        }
      }
      const line: ProgressLine = { rows: [firstRow, total] };
      if (skipped.length > 0) line.skipped = skipped.slice();
      if (tokens) line.tokens = tokens;
      await this.commit(line, what);
    });
  }

  /**
   * Marks rows (global numbers) as skipped (e.g. texts longer than the context): their data is set
   * to zeros and they are listed in the header's `skipped_rows`. With `tokenCounts`, their counts.
   */
  async markSkipped(rows: readonly number[], options: { tokenCounts?: ArrayLike<number> } = {}): Promise<void> {
    this.checkOpen();
    if (!Array.isArray(rows)) throw new TypeError("markSkipped: rows must be an array of row numbers");
    for (const r of rows) this.checkRow(r, "markSkipped");
    const tokens = options.tokenCounts === undefined ? (this.tokens ? rows.map(() => 0) : null) : this.checkTokens(options.tokenCounts, rows.length, "markSkipped");
    if (rows.length === 0) return;
    return this.enqueue(async () => {
      const sorted = [...new Set(rows)].sort((a, b) => a - b);
      for (let k = 0; k < sorted.length; ) {
        let end = k + 1;
        while (end < sorted.length && sorted[end] === sorted[end - 1] + 1) end++;
        const offset = (sorted[k] - this.rowStart) * this.width * 4;
        for (let i = 0; i < this.layers.length; i++) await this.writeZeros(i, offset, (end - k) * this.width * 4, `skipped rows from ${sorted[k]}`);
        k = end;
      }
      await this.commit({ skipped: rows.slice(), ...(tokens ? { tokens } : {}) }, `skipped rows`);
    });
  }

  /**
   * Completes the capture: writes the final header (skipped_rows, token_counts, `finalMetadata`) in
   * place, renames the file(s) to the final name(s) and removes the progress file. Do not put
   * anything time-dependent in `finalMetadata` if a resumed run must equal an uninterrupted one.
   * On a writer opened over an already finished file, only returns the summary.
   *
   * @throws CaptureFileError `CAPTURE_INCOMPLETE` while rows are missing (the writer stays usable).
   * @throws RangeError when `finalMetadata` exceeds its reserved 4 KiB (nothing is written).
   */
  async finish(finalMetadata?: Record<string, string>): Promise<CaptureFileSummary> {
    if (this.alreadyComplete) return this.summary();
    this.checkOpen();
    const finals = metadataEntries(finalMetadata, "finalMetadata");
    return this.enqueue(async () => {
      const p = this.progress;
      if (!p.complete) {
        throw new CaptureFileError("CAPTURE_INCOMPLETE", this.data[0].at,
          `cannot finish: ${p.rows - p.done} of ${p.rows} rows are missing (first missing row ${p.nextRow})`);
      }
      const skippedRows: number[] = [];
      this.state.forEach((s, r) => {
        if (s === SKIPPED) skippedRows.push(this.rowStart + r);
      });
      const headers = this.data.map((f) => {
        try {
          return encodeCaptureHeader(f.identity, { skippedRows, tokenCounts: this.tokens, metadata: finals }, f.headerLength);
        } catch (err) {
          throw new RangeError(`finalMetadata does not fit the header room reserved for it (${(err as Error).message})`);
        }
      });
      if (!this.log!.finishing) await this.log!.append({ finishing: true }, this.opts.sync);
      for (let i = 0; i < this.data.length; i++) {
        const f = this.data[i];
        const fh = f.fh ?? (await open(f.at, "r+")); // a retried finish() may find it closed
        f.fh = fh;
        await this.guardDiskFull(f.at, "the final header", () => writeAllAt(fh, headers[i], 0));
        await fh.datasync();
        await fh.close();
        f.fh = null;
      }
      await this.opts.hooks.stage?.("headers-written");
      for (const f of this.data) {
        if (f.at !== f.path) {
          await rename(f.at, f.path);
          await this.opts.hooks.stage?.("file-renamed");
        }
        f.at = f.path;
      }
      await syncDir(dirname(this.data[0].path));
      await this.opts.hooks.stage?.("renamed");
      await this.log!.remove();
      await syncDir(dirname(this.progressFile));
      this.closed = true;
      return this.summary();
    });
  }

  /** Closes the files and leaves everything for a later resume. Idempotent. */
  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
    this.closed = true;
    for (const f of this.data) {
      await f.fh?.close().catch(() => undefined);
      f.fh = null;
    }
    await this.log?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private summary(): CaptureFileSummary {
    return {
      files: this.files.slice(),
      rowStart: this.rowStart,
      rowEnd: this.rowEnd,
      totalRows: this.totalRows,
      captured: this.captured,
      skipped: this.skipped,
      bytes: this.data.reduce((a, f) => a + f.size, 0),
      alreadyComplete: this.alreadyComplete,
    };
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(() => {
      this.checkOpen();
      return fn();
    });
    this.chain = p.catch(() => undefined);
    return p;
  }

  private checkOpen(): void {
    if (this.closed) {
      throw new CaptureFileError("CAPTURE_CLOSED", this.files[0],
        this.alreadyComplete ? "the capture is already finished" : "the capture writer was finished or closed");
    }
  }

  private checkRow(r: number, what: string): void {
    if (!Number.isSafeInteger(r) || r < this.rowStart || r >= this.rowEnd) {
      throw new RangeError(`${what}: row ${r} is outside this file's rows [${this.rowStart}, ${this.rowEnd})`);
    }
  }

  /** Validates a chunk; returns its captured row count. */
  private checkChunk(firstRow: number, perLayer: readonly Float32Array[], skipped: number): number {
    this.checkOpen();
    this.checkRow(firstRow, "writeRows");
    if (!Array.isArray(perLayer) || perLayer.length !== this.layers.length) {
      throw new TypeError(`writeRows: perLayer must hold one Float32Array per layer (${this.layers.length}), got ${Array.isArray(perLayer) ? perLayer.length : typeof perLayer}`);
    }
    let count = -1;
    perLayer.forEach((a, i) => {
      if (!(a instanceof Float32Array)) throw new TypeError(`writeRows: perLayer[${i}] must be a Float32Array`);
      if ((a.length === 0 && skipped === 0) || a.length % this.width !== 0) {
        throw new RangeError(`writeRows: perLayer[${i}] has ${a.length} floats, not a positive multiple of the width ${this.width}`);
      }
      if (count === -1) count = a.length / this.width;
      if (a.length / this.width !== count) throw new RangeError(`writeRows: perLayer[${i}] has ${a.length / this.width} rows, perLayer[0] ${count}`);
    });
    if (firstRow + count + skipped > this.rowEnd) {
      throw new RangeError(`writeRows: rows ${firstRow}-${firstRow + count + skipped - 1} run past this file's rows [${this.rowStart}, ${this.rowEnd})`);
    }
    return count;
  }

  private checkTokens(t: ArrayLike<number> | undefined, count: number, what: string): number[] | null {
    if (!this.tokens) {
      if (t !== undefined) throw new TypeError(`${what}: tokenCounts given, but the file was opened without tokenCounts: true`);
      return null;
    }
    if (t === undefined || typeof t.length !== "number") throw new TypeError(`${what}: tokenCounts is required (the file records token counts)`);
    if (t.length !== count) throw new RangeError(`${what}: tokenCounts has ${t.length} values for ${count} rows`);
    const out = Array.from(t);
    for (const n of out) {
      if (!Number.isSafeInteger(n) || n < 0 || n > MAX_TOKEN_COUNT) throw new RangeError(`${what}: token counts must be integers in 0-${MAX_TOKEN_COUNT}, got ${n}`);
    }
    return out;
  }

  private async writeZeros(layerIndex: number, offset: number, length: number, what: string): Promise<void> {
    const zeros = this.zeros ??= new Uint8Array(ZERO_CHUNK);
    for (let o = 0; o < length; o += zeros.length) {
      await this.writeTensorBytes(layerIndex, offset + o, zeros.subarray(0, Math.min(zeros.length, length - o)), what);
    }
  }

  private async writeTensorBytes(layerIndex: number, offset: number, bytes: Uint8Array, what: string): Promise<void> {
    const file = this.data.length === 1 ? this.data[0] : this.data[layerIndex];
    const position = 8 + file.headerLength + file.slot[layerIndex] * (this.rowEnd - this.rowStart) * this.width * 4 + offset;
    await this.guardDiskFull(file.at, what, async () => {
      await this.opts.hooks.beforeWrite?.(file.at, position, bytes.length);
      await writeAllAt(file.fh!, bytes, position);
    });
  }

  private async guardDiskFull(file: string, what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      const p = this.progress;
      throw new CaptureFileError("DISK_FULL", file,
        `disk full (${(err as NodeJS.ErrnoException).code}) while writing ${what}; the ${p.done} of ${p.rows} rows completed before are kept. ` +
          `Free some space and resume (--resume) to continue${p.nextRow === null ? "" : ` from row ${p.nextRow}`}`,
        { cause: err });
    }
  }

  /** Data first (fsynced), then the progress line that claims it. */
  private async commit(line: ProgressLine, what: string): Promise<void> {
    if (this.opts.sync) for (const f of this.data) await f.fh!.datasync();
    await this.opts.hooks.stage?.("data-written");
    await this.guardDiskFull(this.progressFile, `the progress of ${what}`, () => this.log!.append(line, this.opts.sync));
    this.apply(line);
    await this.opts.hooks.stage?.("progress-written");
  }

  private apply(line: ProgressLine): void {
    const set = (r: number, s: number, tokens: number | undefined) => {
      const i = r - this.rowStart;
      const old = this.state[i];
      if (old === CAPTURED) this.captured--;
      if (old === SKIPPED) this.skipped--;
      this.state[i] = s;
      if (s === CAPTURED) this.captured++;
      else this.skipped++;
      if (this.tokens && tokens !== undefined) this.tokens[i] = tokens;
    };
    if (line.rows) {
      // A chunk: its rows in order, the listed ones skipped; tokens cover every row of it.
      const skipped = new Set(line.skipped ?? []);
      for (let k = 0; k < line.rows[1]; k++) {
        const r = line.rows[0] + k;
        set(r, skipped.has(r) ? SKIPPED : CAPTURED, line.tokens?.[k]);
      }
    } else if (line.skipped) {
      line.skipped.forEach((r, k) => set(r, SKIPPED, line.tokens?.[k]));
    }
  }

  private restoreFinished(final: { skippedRows: number[]; tokenCounts: ArrayLike<number> | null }): void {
    this.state.fill(CAPTURED);
    this.captured = this.state.length;
    for (const r of final.skippedRows) this.apply({ skipped: [r] });
    if (this.tokens && final.tokenCounts) this.tokens.set(Array.from(final.tokenCounts));
  }
}

