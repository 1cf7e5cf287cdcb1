/**
 * One layer's folder of the activation cache (see cache.ts): `index.json` (key -> [shard, row]),
 * `index.log` (JSON lines, one per shard written since the index was last rewritten:
 * `{"shard": name, "keys": [...]}`) and the shards (`shard-*.safetensors`: one F32 tensor "x" of
 * rows x nEmbd; its metadata lists the key of each row and a SHA-256 of the data).
 *
 * A shard is written whole under a temporary name and renamed into place, then its line is
 * appended to the log, so a process killed between chunks keeps every chunk whose line made it:
 * the next reader sees index.json plus the log. `compact` folds the log into index.json (written
 * atomically) at the end of a fill. Libraries that predate the log read index.json alone; folders
 * they wrote have no log and are read as before.
 */
import { createHash, randomBytes } from "node:crypto";
import { appendFile, mkdir, readdir, readFile, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { LayerSpec } from "../core/activations";
import { writeTextAtomically } from "../io/fileio";
import { readSafetensors, writeSafetensors } from "../io/safetensors";

export const FORMAT = "safety-lens-activation-cache";
export const VERSION = 1;
export const POOL = "last";
const SHARD_RE = /^shard-[A-Za-z0-9_-]+\.safetensors$/;
const INDEX = "index.json";
const LOG = "index.log";

type Entry = [string, number];

interface IndexFile {
  format: string;
  version: number;
  fingerprint: string;
  layer: string;
  nEmbd: number;
  entries: Record<string, Entry>;
}

export function sha256(s: string): string {
  return createHash("sha256").update(s, "utf8").digest("hex");
}

function dataDigest(data: Float32Array): string {
  return createHash("sha256").update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest("hex");
}

export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A directory name for a fingerprint: itself when already safe, else a sanitized prefix plus a hash. */
export function fingerprintDir(fp: string): string {
  if (/^[A-Za-z0-9_.-]{1,100}$/.test(fp) && fp !== "." && fp !== "..") return fp;
  return `${fp.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 60)}-${sha256(fp).slice(0, 16)}`;
}

/** The index of one layer folder as read: index.json plus the log, and which shard files exist. */
export interface LayerIndex {
  entries: Map<string, Entry>;
  /** Shard files present in the folder. */
  present: Set<string>;
}

export class LayerStore {
  /** Shards found bad in this call: their entries are dropped when the index is rewritten. */
  readonly bad = new Set<string>();
  /** Set once a write failed: later chunks of the call are not stored. */
  failed = false;
  /** Whether this call appended to the log (compact() then rewrites the index). */
  private wrote = false;

  constructor(
    readonly dir: string,
    private readonly fp: string,
    readonly layer: LayerSpec,
    private readonly nEmbd: number,
    private readonly warnings: string[],
  ) {}

  /** index.json, then the log on top; a corrupt index.json takes its shards and log with it. */
  async read(): Promise<LayerIndex> {
    let present = new Set<string>();
    const got = await this.readIndexFile();
    if (got.problem === "corrupt") {
      // Its shards cannot be reached any more: remove them with it.
      this.warnings.push(`activation cache: ${join(this.dir, INDEX)} is unreadable (not a valid index); rebuilding layer ${String(this.layer)}`);
      await this.removeAll();
      return { entries: new Map(), present };
    }
    if (got.problem === "unreadable") this.warnings.push(`activation cache: cannot read ${join(this.dir, INDEX)} (${got.detail})`);
    const entries = got.entries ?? new Map<string, Entry>();
    for (const line of await this.readLog()) line.keys.forEach((k, row) => entries.set(k, [line.shard, row]));
    try {
      present = new Set((await readdir(this.dir)).filter((n) => SHARD_RE.test(n)));
    } catch {
      // no folder yet
    }
    return { entries, present };
  }

  /**
   * Fills dst rows from the shards (`wanted`: shard -> [position, row in shard, key]); returns the
   * positions filled. A shard that is unreadable, altered or not of this model and layer is
   * removed and listed in `warnings`; rows whose key does not match are left out.
   */
  async readRows(wanted: Map<string, [number, number, string][]>, dst: Float32Array): Promise<number[]> {
    const d = this.nEmbd;
    const filled: number[] = [];
    for (const [shard, list] of wanted) {
      const rows = await this.readShard(shard);
      if (!rows) {
        this.warnings.push(`activation cache: ${join(this.dir, shard)} is unreadable; its rows are captured again`);
        this.bad.add(shard);
        await unlink(join(this.dir, shard)).catch(() => undefined);
        continue;
      }
      for (const [i, row, key] of list) {
        if (row >= rows.keys.length || rows.keys[row] !== key) continue; // index and shard disagree: recapture
        dst.set(rows.data.subarray(row * d, (row + 1) * d), i * d);
        filled.push(i);
      }
    }
    return filled;
  }

  /** A shard's keys and data, or null when it is missing, corrupt or not from this model and layer. */
  private async readShard(name: string): Promise<{ keys: string[]; data: Float32Array } | null> {
    try {
      const { metadata, tensors } = await readSafetensors(join(this.dir, name));
      const x = tensors.get("x");
      if (!x || tensors.size !== 1) return null;
      if (metadata.format !== FORMAT || metadata.version !== String(VERSION) || metadata.fingerprint !== this.fp || metadata.layer !== String(this.layer)) return null;
      const keys: unknown = JSON.parse(metadata.keys ?? "null");
      if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) return null;
      if (x.shape.length !== 2 || x.shape[0] !== keys.length || x.shape[1] !== this.nEmbd) return null;
      if (metadata.sha256 !== dataDigest(x.data)) return null;
      return { keys: keys as string[], data: x.data };
    } catch {
      return null;
    }
  }

  /**
   * Stores rows (`data`: keys.length x nEmbd) as one shard and appends it to the log. A failure
   * is listed in `warnings` (once per call) and stops further writes of this layer in the call.
   */
  async write(keys: string[], data: Float32Array): Promise<void> {
    if (this.failed || keys.length === 0) return;
    try {
      await mkdir(this.dir, { recursive: true });
      const shard = `shard-${Date.now().toString(36)}-${randomBytes(6).toString("hex")}.safetensors`;
      await writeSafetensors(join(this.dir, shard), [{ name: "x", shape: [keys.length, this.nEmbd], data }], {
        format: FORMAT,
        version: String(VERSION),
        fingerprint: this.fp,
        layer: String(this.layer),
        pool: POOL,
        keys: JSON.stringify(keys),
        sha256: dataDigest(data),
      });
      // one write of one line: a kill leaves at most a torn last line, which readers skip
      await appendFile(join(this.dir, LOG), `${JSON.stringify({ shard, keys })}\n`);
      this.wrote = true;
    } catch (e) {
      this.failed = true;
      this.warnings.push(`activation cache: could not store layer ${String(this.layer)} in ${this.dir}: ${message(e)}`);
    }
  }

  /**
   * Folds the log into index.json (re-read just before, to keep what another process added),
   * dropping entries of bad shards, then removes the log unless it grew meanwhile.
   */
  async compact(): Promise<void> {
    if (!this.wrote && this.bad.size === 0) return;
    try {
      const logPath = join(this.dir, LOG);
      const logSize = await stat(logPath).then((s) => s.size, () => -1);
      const got = await this.readIndexFile();
      const entries: Record<string, Entry> = Object.create(null);
      if (got.entries) for (const [k, e] of got.entries) if (!this.bad.has(e[0])) entries[k] = e;
      for (const line of await this.readLog()) if (!this.bad.has(line.shard)) line.keys.forEach((k, row) => (entries[k] = [line.shard, row]));
      const next: IndexFile = { format: FORMAT, version: VERSION, fingerprint: this.fp, layer: String(this.layer), nEmbd: this.nEmbd, entries };
      await mkdir(this.dir, { recursive: true });
      await writeTextAtomically(join(this.dir, INDEX), JSON.stringify(next));
      if (logSize >= 0 && (await stat(logPath).then((s) => s.size, () => -1)) === logSize) await unlink(logPath).catch(() => undefined);
    } catch (e) {
      if (!this.failed) this.warnings.push(`activation cache: could not store layer ${String(this.layer)} in ${this.dir}: ${message(e)}`);
      this.failed = true;
    }
  }

  /**
   * The entries of a valid index.json, or null with the reason: no index yet ("missing"), a file
   * that cannot be read ("unreadable", e.g. no permission), or one that is not a valid index ("corrupt").
   */
  private async readIndexFile(): Promise<{ entries: Map<string, Entry>; problem?: undefined } | { entries: null; problem: "missing" | "unreadable" | "corrupt"; detail?: string }> {
    let text: string;
    try {
      text = await readFile(join(this.dir, INDEX), "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return { entries: null, problem: "missing" };
      return { entries: null, problem: "unreadable", detail: message(e) };
    }
    try {
      const v = JSON.parse(text) as IndexFile;
      if (
        v === null ||
        typeof v !== "object" ||
        v.format !== FORMAT ||
        v.version !== VERSION ||
        v.fingerprint !== this.fp ||
        v.layer !== String(this.layer) ||
        v.nEmbd !== this.nEmbd ||
        v.entries === null ||
        typeof v.entries !== "object" ||
        Array.isArray(v.entries)
      ) {
        return { entries: null, problem: "corrupt" };
      }
      const entries = new Map<string, Entry>();
      for (const k in v.entries) {
        const e = v.entries[k];
        if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== "string" || !SHARD_RE.test(e[0]) || !Number.isSafeInteger(e[1]) || e[1] < 0) {
          return { entries: null, problem: "corrupt" };
        }
        entries.set(k, e);
      }
      return { entries };
    } catch {
      return { entries: null, problem: "corrupt" };
    }
  }

  /** The log's valid lines; a torn or foreign line is skipped (its shard is then captured again). */
  private async readLog(): Promise<{ shard: string; keys: string[] }[]> {
    let text: string;
    try {
      text = await readFile(join(this.dir, LOG), "utf8");
    } catch {
      return [];
    }
    const out: { shard: string; keys: string[] }[] = [];
    for (const line of text.split("\n")) {
      if (line.length === 0) continue;
      try {
        const v = JSON.parse(line) as { shard?: unknown; keys?: unknown };
        if (typeof v?.shard === "string" && SHARD_RE.test(v.shard) && Array.isArray(v.keys) && v.keys.every((k) => typeof k === "string")) {
          out.push({ shard: v.shard, keys: v.keys as string[] });
        }
      } catch {
        // a line cut by a kill
      }
    }
    return out;
  }

  private async removeAll(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const name of names) if (SHARD_RE.test(name) || name === LOG || name === INDEX) await unlink(join(this.dir, name)).catch(() => undefined);
  }
}
