/**
 * The progress (sidecar) file of a capture: JSON lines, append-only. The first line holds the
 * request; each further line records a chunk whose data is already on disk:
 *   {"rows":[first,count],"skipped":[...],"tokens":[...]}   a chunk: rows first..first+count-1
 *                                            (global numbers), the listed ones skipped, the others
 *                                            captured; tokens (when recorded) for every row
 *   {"skipped":[r,...],"tokens":[...]}       rows skipped on their own
 *   {"finishing":true}                        finish() began: files may already carry final names
 * A line is appended (and fsynced) only after its data is fsynced. A torn last line (a crash while
 * appending) is ignored and cut off on resume; a failed append is cut off at once.
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rename, unlink, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { CaptureFileError } from "../errors";
import { syncDir, writeAllAt } from "./fileio";
import { diffIdentity, type CaptureIdentity } from "./capture-layout";

export const PROGRESS_FORMAT = "safety-lens.capture-progress/1";

/** What the first line records. */
export interface ProgressRequest {
  identity: CaptureIdentity;
  splitLayers: boolean;
  headerLengths: number[];
}

export interface ProgressLine {
  rows?: [number, number];
  skipped?: number[];
  tokens?: number[];
  finishing?: true;
}

export class ProgressLog {
  /** Lines after the request, as read on open (empty for a new file). */
  entries: ProgressLine[] = [];
  finishing = false;
  /** The file ends in a line whose append did not finish; see dropTornTail. */
  private torn = false;

  private constructor(
    readonly path: string,
    private fh: FileHandle | null,
    private size: number,
  ) {}

  /** Writes a new progress file atomically (temporary name, fsync, rename). */
  static async create(path: string, request: ProgressRequest): Promise<ProgressLog> {
    const first = Buffer.from(`${JSON.stringify({ format: PROGRESS_FORMAT, ...request })}\n`, "utf8");
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    const fh = await open(tmp, "w");
    try {
      await writeAllAt(fh, first, 0);
      await fh.datasync();
    } catch (err) {
      await fh.close();
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fh.close();
    await rename(tmp, path);
    await syncDir(dirname(path));
    return new ProgressLog(path, await open(path, "r+"), first.length);
  }

  /**
   * Opens an existing progress file for `request`.
   *
   * @throws CaptureFileError RESUME_MISMATCH (with `field`) when it records another request,
   *   RESUME_INVALID when it is not a progress file or a line is corrupt.
   */
  static async open(path: string, request: ProgressRequest): Promise<ProgressLog> {
    const text = await readFile(path, "utf8");
    const invalid = (detail: string) => new CaptureFileError("RESUME_INVALID", path, `${detail}; nothing was changed`);
    const lines = text.split("\n");
    // The part after the last newline is a line whose append did not finish.
    const torn = lines.pop() ?? "";
    let head: unknown;
    try {
      head = JSON.parse(lines[0] ?? "");
    } catch {
      throw invalid("is not a capture progress file (its first line is not JSON)");
    }
    const h = head as Partial<ProgressRequest> & { format?: unknown };
    if (h?.format !== PROGRESS_FORMAT || !h.identity || !Array.isArray(h.headerLengths)) {
      throw invalid(`is not a capture progress file (format ${JSON.stringify(h?.format ?? null)}, expected "${PROGRESS_FORMAT}")`);
    }
    const diff = diffIdentity(h.identity, request.identity);
    if (diff) {
      throw new CaptureFileError("RESUME_MISMATCH", path,
        `the capture in progress has ${diff.what} (${diff.field} ${diff.there} there, ${diff.here} requested); nothing was changed. ` +
          `Use another output, or start over (--overwrite)`,
        { field: diff.field });
    }
    if (h.splitLayers !== request.splitLayers) {
      throw new CaptureFileError("RESUME_MISMATCH", path,
        `the capture in progress writes ${h.splitLayers ? "one file per layer" : "one file"}, this request ${request.splitLayers ? "one file per layer" : "one file"}; nothing was changed`,
        { field: "split_layers" });
    }
    if (JSON.stringify(h.headerLengths) !== JSON.stringify(request.headerLengths)) {
      throw invalid("was written by another version of the capture writer (other header layout)");
    }
    const log = new ProgressLog(path, null, Buffer.byteLength(text, "utf8") - Buffer.byteLength(torn, "utf8"));
    const id = request.identity;
    const inRange = (r: unknown) => Number.isSafeInteger(r) && (r as number) >= id.rowStart && (r as number) < id.rowEnd;
    for (let i = 1; i < lines.length; i++) {
      let line: ProgressLine;
      try {
        line = JSON.parse(lines[i]) as ProgressLine;
      } catch {
        throw invalid(`line ${i + 1} is corrupt`);
      }
      const n = line?.rows ? line.rows[1] : line?.skipped?.length;
      const chunk = Array.isArray(line?.rows) && line.rows.length === 2 && inRange(line.rows[0]) && Number.isSafeInteger(line.rows[1]) &&
        line.rows[1] > 0 && line.rows[0] + line.rows[1] <= id.rowEnd;
      const skippedOk = line?.skipped === undefined || (Array.isArray(line.skipped) && line.skipped.every(inRange) &&
        (!chunk || line.skipped.every((r) => r >= line.rows![0] && r < line.rows![0] + line.rows![1])));
      const ok =
        line !== null &&
        typeof line === "object" &&
        (line.finishing === true || ((chunk || line.skipped !== undefined) && skippedOk)) &&
        (line.tokens === undefined ? !id.tokenCounts || line.finishing === true : Array.isArray(line.tokens) && line.tokens.length === n);
      if (!ok) throw invalid(`line ${i + 1} is not a valid progress record`);
      if (line.finishing) log.finishing = true;
      else log.entries.push(line);
    }
    log.fh = await open(path, "r+");
    log.torn = torn !== "";
    return log;
  }

  /** Cuts off a torn last line (call once the resume is accepted; appends would follow it otherwise). */
  async dropTornTail(): Promise<void> {
    if (!this.torn) return;
    await this.fh!.truncate(this.size);
    await this.fh!.datasync();
    this.torn = false;
  }

  /** " (120 of 2000 rows done)", best effort, for messages. */
  static async describe(path: string): Promise<string> {
    try {
      const lines = (await readFile(path, "utf8")).split("\n");
      const head = JSON.parse(lines[0]) as ProgressRequest;
      let done = 0;
      for (const l of lines.slice(1, -1)) {
        const p = JSON.parse(l) as ProgressLine;
        done += p.rows ? p.rows[1] : (p.skipped?.length ?? 0);
      }
      return ` (${done} of ${head.identity.rowEnd - head.identity.rowStart} rows done)`;
    } catch {
      return "";
    }
  }

  /** Appends one line (fsynced with `sync`); on failure the file is cut back to its last whole line. */
  async append(line: ProgressLine, sync: boolean): Promise<void> {
    const bytes = Buffer.from(`${JSON.stringify(line)}\n`, "utf8");
    try {
      await writeAllAt(this.fh!, bytes, this.size);
      if (sync) await this.fh!.datasync();
    } catch (err) {
      await this.fh!.truncate(this.size).catch(() => undefined);
      throw err;
    }
    this.size += bytes.length;
    if (line.finishing) this.finishing = true;
  }

  async remove(): Promise<void> {
    await this.close();
    await unlink(this.path);
  }

  async close(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }
}
