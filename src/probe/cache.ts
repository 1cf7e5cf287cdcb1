/**
 * On-disk cache of pooled ("last" token) hidden states, so a second run over the same data never
 * touches the model.
 *
 * Layout: `<dir>/<model fingerprint>/layer-<layer>/` holds shards (`shard-*.safetensors`, one F32
 * tensor "x" of rows x nEmbd; its metadata lists the key of each row and a SHA-256 of the data),
 * `index.json` (key -> [shard, row]) and, while a fill runs, `index.log` (the shards written since;
 * see cache-store.ts). A key is the SHA-256 of the model fingerprint, the exact text the model sees
 * (`model.formatText`: chat template, assistant prefix and system prompt applied), whether it was
 * rendered as chat (that changes tokenization), the pooling and the layer.
 *
 * Texts that miss are captured in chunks (`chunkRows`, default 256, per `model.capture` call, every
 * layer that misses any of the chunk's texts) and each chunk is stored before the next is captured,
 * so capture memory is chunkRows x layers x nEmbd floats and a process killed mid-fill keeps its
 * finished chunks: the next call captures only the rest. `ensure` fills without returning features
 * and `layer` reads one layer, so a sweep over many layers holds one layer at a time.
 *
 * Every file is written under a temporary name and renamed into place. Anything unreadable -- a
 * corrupt index, a truncated or altered shard, a row whose key does not match -- is ignored (and
 * removed), its texts are captured again, and the result is stored anew. Write failures do not fail
 * the call either: the features are returned and the problem is listed in `warnings`.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { type CaptureProgressInfo, checkLayers, type LayerSpec } from "../core/activations";
import type { ChatOptions } from "../core/chat";
import type { Model } from "../core/model";
import { AbortError } from "../errors";
import { fingerprintDir, FORMAT, LayerStore, POOL, sha256, VERSION } from "./cache-store";
import type { Features } from "./types";

/** Texts per capture call and per stored shard, unless chunkRows says otherwise. */
export const CACHE_CHUNK_ROWS = 256;

export interface CacheFillOptions {
  layers: LayerSpec[];
  chat: boolean | ChatOptions;
  /** Texts captured per `model.capture` call and stored per shard (default 256). */
  chunkRows?: number;
  /** Progress of the capture of the texts that missed (texts counts those only). */
  onProgress?: (progress: CaptureProgressInfo) => void;
  signal?: AbortSignal;
}

export type CacheFeaturesOptions = CacheFillOptions;

export interface CacheFillResult {
  /** Texts (by position) read from the cache for every requested layer. */
  hits: number;
  /** Texts (by position) that had to be captured for at least one layer. */
  misses: number;
  /** Cache problems that were worked around (corrupt files dropped, writes that failed). */
  warnings: string[];
}

export interface CacheFeaturesResult extends CacheFillResult {
  /** One n x nEmbd matrix per requested layer, rows in the order of the texts. */
  layers: Map<LayerSpec, Features>;
}

export interface CacheLayerResult extends CacheFillResult {
  /** n x nEmbd, rows in the order of the texts. */
  features: Features;
}

type CacheModel = Pick<Model, "info" | "formatText" | "capture" | "tokenize">;

export class ActivationCache {
  readonly dir: string;
  /** Serializes calls on this instance (each one reads and rewrites the indexes). */
  private queue: Promise<unknown> = Promise.resolve();
  /** The texts of the last call, rendered: `ensure` then `layer` per layer render them once. */
  private memo: { fp: string; chat: string; texts: string[]; rendered: { text: string; chat: boolean }[] } | null = null;

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
   * captured chunk by chunk and stored. Holds texts x layers x nEmbd floats (the result); for many
   * layers over many texts use `ensure` and `layer`.
   */
  features(model: Model, texts: readonly string[], opts: CacheFeaturesOptions): Promise<CacheFeaturesResult> {
    return this.serial(async () => {
      const r = await this.fill(model, texts, opts, true);
      return { layers: r.sink!, hits: r.hits, misses: r.misses, warnings: r.warnings };
    });
  }

  /**
   * Makes sure every text is cached at every layer, capturing what is missing chunk by chunk;
   * returns no features. Memory: chunkRows x layers x nEmbd floats, plus a few bytes per text.
   * The stored rows are verified when read (`layer`, `features`), not here.
   */
  ensure(model: Model, texts: readonly string[], opts: CacheFillOptions): Promise<CacheFillResult> {
    return this.serial(async () => {
      const { hits, misses, warnings } = await this.fill(model, texts, opts, false);
      return { hits, misses, warnings };
    });
  }

  /**
   * One layer's features of `texts`, from the cache; what is missing or found corrupt is captured
   * (that layer only) and stored. Memory: texts x nEmbd floats plus one shard.
   */
  layer(model: Model, texts: readonly string[], layer: LayerSpec, opts: Omit<CacheFillOptions, "layers">): Promise<CacheLayerResult> {
    return this.serial(async () => {
      if (opts === null || typeof opts !== "object") throw new TypeError("options must be an object with chat");
      const r = await this.fill(model, texts, { ...opts, layers: [layer] }, true);
      return { features: [...r.sink!.values()][0], hits: r.hits, misses: r.misses, warnings: r.warnings };
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private layerDir(fingerprint: string, layer: LayerSpec): string {
    return join(this.dir, fingerprintDir(fingerprint), `layer-${String(layer)}`);
  }

  /** The texts as the model sees them (template applied), reused while the same texts come again. */
  private render(model: CacheModel, texts: readonly string[], chat: boolean | ChatOptions): { text: string; chat: boolean }[] {
    const fp = model.info.fingerprint;
    const c = JSON.stringify(chat ?? null);
    const m = this.memo;
    if (m && m.fp === fp && m.chat === c && m.texts.length === texts.length && m.texts.every((t, i) => t === texts[i])) return m.rendered;
    const rendered = texts.map((t) => {
      const r = model.formatText(t, { chat });
      return { text: r.text, chat: r.chat };
    });
    this.memo = { fp, chat: c, texts: texts.slice(), rendered };
    return rendered;
  }

  private async fill(
    model: CacheModel,
    texts: readonly string[],
    opts: CacheFillOptions,
    withFeatures: boolean,
  ): Promise<CacheFillResult & { sink: Map<LayerSpec, Features> | null }> {
    if (!Array.isArray(texts) || !texts.every((t) => typeof t === "string")) throw new TypeError("texts must be an array of strings");
    if (opts === null || typeof opts !== "object") throw new TypeError("options must be an object with layers and chat");
    const { specs } = checkLayers(opts.layers, model.info.nLayer);
    const chunkRows = opts.chunkRows ?? CACHE_CHUNK_ROWS;
    if (!Number.isSafeInteger(chunkRows) || chunkRows < 1) throw new RangeError(`chunkRows must be a positive integer, got ${String(chunkRows)}`);
    if (opts.signal?.aborted) throw new AbortError();
    const fp = model.info.fingerprint;
    const d = model.info.nEmbd;
    const n = texts.length;
    const warnings: string[] = [];
    const sink = withFeatures ? new Map<LayerSpec, Features>(specs.map((l) => [l, { data: new Float32Array(n * d), rows: n, cols: d }])) : null;
    if (n === 0) return { sink, hits: 0, misses: 0, warnings };

    const rendered = this.render(model, texts, opts.chat);
    const key = (i: number, layer: LayerSpec) => ActivationCache.key(fp, rendered[i], layer);
    const stores = specs.map((l) => new LayerStore(this.layerDir(fp, l), fp, l, d, warnings));

    // What the cache has: missing[l][i] = 1 when text i is not cached at specs[l].
    const missing: Uint8Array[] = [];
    for (const store of stores) {
      const { entries, present } = await store.read();
      const miss = new Uint8Array(n).fill(1);
      if (sink) {
        const wanted = new Map<string, [number, number, string][]>();
        for (let i = 0; i < n; i++) {
          const k = key(i, store.layer);
          const e = entries.get(k);
          if (!e) continue;
          let list = wanted.get(e[0]);
          if (!list) wanted.set(e[0], (list = []));
          list.push([i, e[1], k]);
        }
        for (const i of await store.readRows(wanted, sink.get(store.layer)!.data)) miss[i] = 0;
      } else {
        for (let i = 0; i < n; i++) {
          const e = entries.get(key(i, store.layer));
          if (e && present.has(e[0])) miss[i] = 0;
        }
      }
      missing.push(miss);
    }

    // The texts that missed at any layer, once each; head[u], next[i] chain the positions of text u.
    const uniq = new Map<string, number>();
    const capture: string[] = [];
    const first: number[] = [];
    const next = new Int32Array(n).fill(-1);
    const head: number[] = [];
    let misses = 0;
    for (let i = n - 1; i >= 0; i--) {
      if (!missing.some((m) => m[i])) continue;
      misses++;
      let u = uniq.get(texts[i]);
      if (u === undefined) {
        uniq.set(texts[i], (u = capture.length));
        capture.push(texts[i]);
        head.push(-1);
        first.push(i);
      }
      next[i] = head[u];
      head[u] = i;
      first[u] = i;
    }
    // first-appearance order, as a single capture of the misses would see them
    const order = Array.from({ length: capture.length }, (_, u) => u).sort((a, b) => first[a] - first[b]);
    const missAt = specs.map((_, l) => Uint8Array.from(order, (u) => missing[l][first[u]]));

    try {
      const totalTokens = opts.onProgress ? order.reduce((a, u) => a + model.tokenize(capture[u], { chat: opts.chat }).length, 0) : 0;
      let textsDone = 0;
      let tokensDone = 0;
      for (let c = 0; c < order.length; c += chunkRows) {
        if (opts.signal?.aborted) throw new AbortError();
        const e = Math.min(order.length, c + chunkRows);
        const ls = specs.map((_, l) => l).filter((l) => missAt[l].subarray(c, e).some(Boolean) && (sink || !stores[l].failed));
        if (ls.length === 0) continue; // nothing can be stored and nothing is returned
        const acts = await model.capture(
          order.slice(c, e).map((u) => capture[u]),
          {
            layers: ls.map((l) => specs[l]),
            pool: POOL,
            chat: opts.chat,
            signal: opts.signal,
            onProgress: opts.onProgress
              ? (p) => opts.onProgress!({ textsDone: textsDone + p.textsDone, texts: order.length, tokensDone: tokensDone + p.tokensDone, tokens: totalTokens })
              : undefined,
          },
        );
        textsDone += e - c;
        tokensDone += acts.tokenCounts.reduce((a, b) => a + b, 0);
        for (const l of ls) {
          const src = acts.layer(specs[l]);
          const rows: number[] = [];
          for (let j = c; j < e; j++) if (missAt[l][j]) rows.push(j - c);
          let data = src;
          if (rows.length < e - c) {
            data = new Float32Array(rows.length * d);
            rows.forEach((r, k) => data.set(src.subarray(r * d, (r + 1) * d), k * d));
          }
          const dst = sink ? sink.get(specs[l])!.data : null;
          if (dst) {
            for (const r of rows) for (let i = head[order[c + r]]; i >= 0; i = next[i]) dst.set(src.subarray(r * d, (r + 1) * d), i * d);
          }
          await stores[l].write(rows.map((r) => key(first[order[c + r]], specs[l])), data);
        }
      }
    } finally {
      for (const s of stores) await s.compact();
    }
    return { sink, hits: n - misses, misses, warnings };
  }
}
