/**
 * On-disk cache of pooled ("last" token) hidden states, so a second run over the same data never
 * touches the model.
 *
 * Layout: `<dir>/<model fingerprint>/layer-<layer>/` holds shards (`shard-*.safetensors`, one F32
 * tensor "x" of rows x nEmbd; its metadata lists the key of each row and a SHA-256 of the data) and
 * `index.json` (key -> [shard, row]). A key is the SHA-256 of the model fingerprint, the exact text
 * the model sees (`model.formatText`: chat template, assistant prefix and system prompt applied),
 * whether it was rendered as chat (that changes tokenization), the pooling and the layer.
 *
 * Every file is written under a temporary name and renamed into place. Anything unreadable -- a
 * corrupt index, a truncated or altered shard, a row whose key does not match -- is ignored (and
 * removed), its texts are captured again, and the result is stored anew. Write failures do not fail
 * the call either: the features are returned and the problem is listed in `warnings`.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, unlink } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { type CaptureProgressInfo, checkLayers, type LayerSpec } from "../core/activations";
import type { ChatOptions } from "../core/chat";
import type { Model } from "../core/model";
import { AbortError } from "../errors";
import { writeTextAtomically } from "../io/fileio";
import { readSafetensors, writeSafetensors } from "../io/safetensors";
import type { Features } from "./types";

const FORMAT = "safety-lens-activation-cache";
const VERSION = 1;
const POOL = "last";
const SHARD_RE = /^shard-[A-Za-z0-9_-]+\.safetensors$/;

export interface CacheFeaturesOptions {
  layers: LayerSpec[];
  chat: boolean | ChatOptions;
  /** Progress of the capture of the texts that missed (texts counts those only). */
  onProgress?: (progress: CaptureProgressInfo) => void;
  signal?: AbortSignal;
}

export interface CacheFeaturesResult {
  /** One n x nEmbd matrix per requested layer, rows in the order of the texts. */
  layers: Map<LayerSpec, Features>;
  /** Texts (by position) read from the cache for every requested layer. */
  hits: number;
  /** Texts (by position) that had to be captured for at least one layer. */
  misses: number;
  /** Cache problems that were worked around (corrupt files dropped, writes that failed). */
  warnings: string[];
}

interface IndexFile {
  format: string;
  version: number;
  fingerprint: string;
  layer: string;
  nEmbd: number;
  entries: Record<string, [string, number]>;
}

function sha256(s: string): string {
  return createHash("sha256").update(s, "utf8").digest("hex");
}

function dataDigest(data: Float32Array): string {
  return createHash("sha256").update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest("hex");
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A directory name for a fingerprint: itself when already safe, else a sanitized prefix plus a hash. */
function fingerprintDir(fp: string): string {
  if (/^[A-Za-z0-9_.-]{1,100}$/.test(fp) && fp !== "." && fp !== "..") return fp;
  return `${fp.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 60)}-${sha256(fp).slice(0, 16)}`;
}


export class ActivationCache {
  readonly dir: string;
  /** Serializes calls on this instance (each one reads and rewrites the indexes). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    if (typeof dir !== "string" || dir.length === 0) throw new TypeError("cache dir must be a non-empty string");
    this.dir = dir;
  }

  /** `$SAFETY_LENS_CACHE`, else `~/.cache/safety-lens`. */
  static defaultDir(): string {
    const env = process.env.SAFETY_LENS_CACHE;
    return env && env.length > 0 ? env : join(homedir(), ".cache", "safety-lens");
  }

  /** The cache key of one rendered text at one layer (exposed for tests and tools). */
  static key(fingerprint: string, rendered: { text: string; chat: boolean }, layer: LayerSpec): string {
    return sha256(JSON.stringify([FORMAT, VERSION, fingerprint, POOL, rendered.chat, String(layer), rendered.text]));
  }

  /**
   * Last-token hidden states of `texts` at `layers`, from the cache where present; the rest are
   * captured in one batched `model.capture` call (all missing texts, every layer that misses any)
   * and stored.
   */
  features(model: Model, texts: readonly string[], opts: CacheFeaturesOptions): Promise<CacheFeaturesResult> {
    const run = this.queue.then(() => this.featuresNow(model, texts, opts));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private layerDir(fingerprint: string, layer: LayerSpec): string {
    return join(this.dir, fingerprintDir(fingerprint), `layer-${String(layer)}`);
  }

  private async featuresNow(model: Model, texts: readonly string[], opts: CacheFeaturesOptions): Promise<CacheFeaturesResult> {
    if (!Array.isArray(texts) || !texts.every((t) => typeof t === "string")) throw new TypeError("texts must be an array of strings");
    if (opts === null || typeof opts !== "object") throw new TypeError("options must be an object with layers and chat");
    const { specs } = checkLayers(opts.layers, model.info.nLayer);
    if (opts.signal?.aborted) throw new AbortError();
    const fp = model.info.fingerprint;
    const nEmbd = model.info.nEmbd;
    const n = texts.length;
    const warnings: string[] = [];

    const rendered = texts.map((t) => model.formatText(t, { chat: opts.chat }));
    const out = new Map<LayerSpec, Features>();
    for (const l of specs) out.set(l, { data: new Float32Array(n * nEmbd), rows: n, cols: nEmbd });
    if (n === 0) return { layers: out, hits: 0, misses: 0, warnings };

    // Read what the cache has.
    const keys = new Map<LayerSpec, string[]>();
    const missing = new Map<LayerSpec, boolean[]>();
    const badShards = new Map<LayerSpec, Set<string>>();
    for (const layer of specs) {
      const ks = rendered.map((r) => ActivationCache.key(fp, r, layer));
      const bad = new Set<string>();
      keys.set(layer, ks);
      badShards.set(layer, bad);
      missing.set(layer, await this.readLayer(fp, layer, nEmbd, ks, out.get(layer)!.data, bad, warnings));
    }

    // Capture the texts that missed at any layer, once each, at every layer that missed.
    const missedAt = (i: number) => specs.some((l) => missing.get(l)![i]);
    const uniq = new Map<string, number>(); // text -> row in the capture
    const captureTexts: string[] = [];
    let misses = 0;
    for (let i = 0; i < n; i++) {
      if (!missedAt(i)) continue;
      misses++;
      if (!uniq.has(texts[i])) {
        uniq.set(texts[i], captureTexts.length);
        captureTexts.push(texts[i]);
      }
    }
    if (captureTexts.length > 0) {
      const layersToCapture = specs.filter((l) => missing.get(l)!.some(Boolean));
      const acts = await model.capture(captureTexts, {
        layers: layersToCapture,
        pool: POOL,
        chat: opts.chat,
        onProgress: opts.onProgress,
        signal: opts.signal,
      });
      for (const layer of layersToCapture) {
        const src = acts.layer(layer);
        const dst = out.get(layer)!.data;
        const miss = missing.get(layer)!;
        const ks = keys.get(layer)!;
        const newRows = new Map<string, number>(); // key -> row in src, for the shard
        for (let i = 0; i < n; i++) {
          if (!miss[i]) continue;
          const row = uniq.get(texts[i])!;
          dst.set(src.subarray(row * nEmbd, (row + 1) * nEmbd), i * nEmbd);
          if (!newRows.has(ks[i])) newRows.set(ks[i], row);
        }
        await this.writeLayer(fp, layer, nEmbd, src, newRows, badShards.get(layer)!, warnings);
      }
    }
    return { layers: out, hits: n - misses, misses, warnings };
  }

  /**
   * The valid index of a layer directory, or null with the reason: no index yet ("missing"), a file
   * that cannot be read ("unreadable", e.g. no permission), or one that is not a valid index ("corrupt").
   */
  private async readIndex(
    dir: string,
    fp: string,
    layer: LayerSpec,
    nEmbd: number,
  ): Promise<{ index: IndexFile; problem?: undefined } | { index: null; problem: "missing" | "unreadable" | "corrupt"; detail?: string }> {
    let text: string;
    try {
      text = await readFile(join(dir, "index.json"), "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return { index: null, problem: "missing" };
      return { index: null, problem: "unreadable", detail: message(e) };
    }
    try {
      const v = JSON.parse(text) as IndexFile;
      if (
        v === null ||
        typeof v !== "object" ||
        v.format !== FORMAT ||
        v.version !== VERSION ||
        v.fingerprint !== fp ||
        v.layer !== String(layer) ||
        v.nEmbd !== nEmbd ||
        v.entries === null ||
        typeof v.entries !== "object" ||
        Array.isArray(v.entries)
      ) {
        return { index: null, problem: "corrupt" };
      }
      const entries: Record<string, [string, number]> = Object.create(null);
      for (const [k, e] of Object.entries(v.entries)) {
        if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== "string" || !SHARD_RE.test(e[0]) || !Number.isSafeInteger(e[1]) || e[1] < 0) {
          return { index: null, problem: "corrupt" };
        }
        entries[k] = [e[0], e[1]];
      }
      return { index: { ...v, entries } };
    } catch {
      return { index: null, problem: "corrupt" };
    }
  }

  /** Fills the rows found in the cache; returns which rows missed. */
  private async readLayer(
    fp: string,
    layer: LayerSpec,
    nEmbd: number,
    keys: string[],
    dst: Float32Array,
    badShards: Set<string>,
    warnings: string[],
  ): Promise<boolean[]> {
    const miss = keys.map(() => true);
    const dir = this.layerDir(fp, layer);
    const got = await this.readIndex(dir, fp, layer, nEmbd);
    if (got.problem === "corrupt") {
      // Its shards cannot be reached any more: remove them with it.
      warnings.push(`activation cache: ${join(dir, "index.json")} is unreadable (not a valid index); rebuilding layer ${String(layer)}`);
      await this.removeShards(dir);
      await unlink(join(dir, "index.json")).catch(() => undefined);
    } else if (got.problem === "unreadable") {
      warnings.push(`activation cache: cannot read ${join(dir, "index.json")} (${got.detail})`);
    }
    const index = got.index;
    if (!index) return miss;

    // Which rows each shard must provide.
    const wanted = new Map<string, { i: number; row: number }[]>();
    keys.forEach((k, i) => {
      const e = index.entries[k];
      if (!e) return;
      let list = wanted.get(e[0]);
      if (!list) wanted.set(e[0], (list = []));
      list.push({ i, row: e[1] });
    });
    for (const [shard, list] of wanted) {
      const rows = await this.readShard(join(dir, shard), fp, layer, nEmbd);
      if (!rows) {
        warnings.push(`activation cache: ${join(dir, shard)} is unreadable; its rows are captured again`);
        badShards.add(shard);
        await unlink(join(dir, shard)).catch(() => undefined);
        continue;
      }
      for (const { i, row } of list) {
        if (row >= rows.keys.length || rows.keys[row] !== keys[i]) continue; // index and shard disagree: recapture
        dst.set(rows.data.subarray(row * nEmbd, (row + 1) * nEmbd), i * nEmbd);
        miss[i] = false;
      }
    }
    return miss;
  }

  /** A shard's keys and data, or null when it is missing, corrupt or not from this model and layer. */
  private async readShard(path: string, fp: string, layer: LayerSpec, nEmbd: number): Promise<{ keys: string[]; data: Float32Array } | null> {
    try {
      const { metadata, tensors } = await readSafetensors(path);
      const x = tensors.get("x");
      if (!x || tensors.size !== 1) return null;
      if (metadata.format !== FORMAT || metadata.version !== String(VERSION) || metadata.fingerprint !== fp || metadata.layer !== String(layer)) return null;
      const keys: unknown = JSON.parse(metadata.keys ?? "null");
      if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) return null;
      if (x.shape.length !== 2 || x.shape[0] !== keys.length || x.shape[1] !== nEmbd) return null;
      if (metadata.sha256 !== dataDigest(x.data)) return null;
      return { keys: keys as string[], data: x.data };
    } catch {
      return null;
    }
  }

  private async removeShards(dir: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) if (SHARD_RE.test(name)) await unlink(join(dir, name)).catch(() => undefined);
  }

  /** Stores new rows (key -> row of `src`) as one shard and adds them to the index, dropping entries of bad shards. */
  private async writeLayer(
    fp: string,
    layer: LayerSpec,
    nEmbd: number,
    src: Float32Array,
    newRows: Map<string, number>,
    badShards: Set<string>,
    warnings: string[],
  ): Promise<void> {
    if (newRows.size === 0) return;
    const dir = this.layerDir(fp, layer);
    try {
      await mkdir(dir, { recursive: true });
      const keys = [...newRows.keys()];
      const data = new Float32Array(keys.length * nEmbd);
      keys.forEach((k, j) => {
        const row = newRows.get(k)!;
        data.set(src.subarray(row * nEmbd, (row + 1) * nEmbd), j * nEmbd);
      });
      const shard = `shard-${Date.now().toString(36)}-${randomBytes(6).toString("hex")}.safetensors`;
      await writeSafetensors(join(dir, shard), [{ name: "x", shape: [keys.length, nEmbd], data }], {
        format: FORMAT,
        version: String(VERSION),
        fingerprint: fp,
        layer: String(layer),
        pool: POOL,
        keys: JSON.stringify(keys),
        sha256: dataDigest(data),
      });
      // Re-read the index just before writing it, to keep what another process added meanwhile.
      const { index } = await this.readIndex(dir, fp, layer, nEmbd);
      const entries: Record<string, [string, number]> = Object.create(null);
      if (index) for (const [k, e] of Object.entries(index.entries)) if (!badShards.has(e[0])) entries[k] = e;
      keys.forEach((k, j) => (entries[k] = [shard, j]));
      const next: IndexFile = { format: FORMAT, version: VERSION, fingerprint: fp, layer: String(layer), nEmbd, entries };
      await writeTextAtomically(join(dir, "index.json"), JSON.stringify(next));
    } catch (e) {
      warnings.push(`activation cache: could not store layer ${String(layer)} in ${dir}: ${message(e)}`);
    }
  }
}
