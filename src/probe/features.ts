/**
 * Hidden states of prompt records for the probe pipelines: all requested layers at once
 * (`featuresFor`), or one layer at a time (`openLayerSource`: the cache is filled once for every
 * layer, then each layer is read on its own, so a sweep holds rows x nEmbd floats, not rows x
 * layers x nEmbd).
 */
import { randomBytes } from "node:crypto";
import { mkdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Features, LayerSpec } from "../core/activations";
import { chatOptionOf } from "../core/chat";
import { fitInputs } from "../core/corpus";
import type { Model } from "../core/model";
import { partialPath, progressPath, readCaptureRows } from "../io/capture-file";
import { ActivationCache } from "./cache";
import { labelsOf, type PromptRecord, sourcesOf } from "./data";
import { DEFAULT_PROBE_INPUT, type ProbeInput } from "./probe";

export interface FeatureSet {
  records: PromptRecord[];
  labels: Uint8Array;
  sources: string[];
  features: Map<LayerSpec, Features>;
}

export interface FeatureOptions {
  input?: ProbeInput;
  /** Activation cache folder; null: no cache. Default: ActivationCache.defaultDir(). */
  cacheDir?: string | null;
  onLog?: (m: string) => void;
  signal?: AbortSignal;
}

/**
 * Hidden states of the records' prompts at the given layers (cached when a cache folder is
 * given). Prompts longer than the context are cut to their last tokens (the probe reads the
 * assistant prefix there); those are captured directly, not cached under their full text.
 */
export async function featuresFor(model: Model, records: PromptRecord[], layers: LayerSpec[], opts: FeatureOptions = {}): Promise<FeatureSet> {
  const input = opts.input ?? DEFAULT_PROBE_INPUT;
  const chat = chatOptionOf(input);
  const long = fitInputs(model, records.map((r) => r.text), { chat, onLong: "truncate" }).truncated;
  if (long.length > 0) {
    const cut = new Set(long);
    const whole = records.filter((_, i) => !cut.has(i));
    const rest = whole.length ? await featuresFor(model, whole, layers, opts) : null;
    const fit = fitInputs(model, long.map((i) => records[i].text), { chat, onLong: "truncate" });
    const acts = await model.capture(fit.prepared!, { layers, pool: "last", signal: opts.signal });
    const d = model.info.nEmbd;
    const features = new Map<LayerSpec, Features>();
    for (const l of layers) features.set(l, inRecordOrder(records.length, cut, acts.layer(l), rest?.features.get(l)!.data ?? new Float32Array(0), d));
    return { records, labels: labelsOf(records), sources: sourcesOf(records), features };
  }
  const texts = records.map((r) => r.text);
  let features: Map<LayerSpec, Features>;
  if (opts.cacheDir === null) {
    const acts = await model.capture(texts, { layers, pool: "last", chat, signal: opts.signal });
    features = new Map(layers.map((l) => [l, acts.features(l)]));
  } else {
    const cache = new ActivationCache(opts.cacheDir ?? ActivationCache.defaultDir());
    const r = await cache.features(model, texts, { layers, chat, signal: opts.signal });
    opts.onLog?.(`activations: ${r.hits} cached, ${r.misses} captured`);
    for (const w of r.warnings) opts.onLog?.(`activation cache: ${w}`);
    features = r.layers;
  }
  return { records, labels: labelsOf(records), sources: sourcesOf(records), features };
}

/** Rows of a feature set (copies). */
export function subset(f: Features, rows: readonly number[]): Features {
  const out = new Float32Array(rows.length * f.cols);
  rows.forEach((r, i) => out.set(f.data.subarray(r * f.cols, (r + 1) * f.cols), i * f.cols));
  return { data: out, rows: rows.length, cols: f.cols };
}

/** Rows [a, b) of a feature set (a view, not a copy). */
export function rowRange(f: Features, a: number, b: number): Features {
  return { data: f.data.subarray(a * f.cols, b * f.cols), rows: b - a, cols: f.cols };
}

/** The records' features, one layer at a time. */
export interface LayerSource {
  readonly records: PromptRecord[];
  readonly labels: Uint8Array;
  readonly sources: string[];
  readonly layers: readonly LayerSpec[];
  /** One layer's features, rows in the order of the records. */
  load(layer: LayerSpec): Promise<Features>;
  /** Removes what the source wrote for itself (the long prompts' capture file). */
  close(): Promise<void>;
}

/**
 * Features of `records` at `layers`, one layer at a time. With a cache, the cache is filled for
 * every layer first (chunk by chunk: one forward pass per text), then `load` reads one layer from
 * it: memory is about records x nEmbd floats plus a chunk, whatever the number of layers.
 * Prompts longer than the context (cut to their last tokens) go through a capture file of their
 * own in the cache folder (model.captureToFile), removed by close(). Without a cache (cacheDir
 * null) every layer is captured into memory at once, as featuresFor does.
 */
export async function openLayerSource(model: Model, records: PromptRecord[], layers: LayerSpec[], opts: FeatureOptions = {}): Promise<LayerSource> {
  const base = { records, labels: labelsOf(records), sources: sourcesOf(records), layers: layers.slice() };
  if (opts.cacheDir === null) {
    const fs = await featuresFor(model, records, layers, opts);
    return { ...base, load: async (l) => fs.features.get(l) ?? missingLayer(l, layers), close: async () => undefined };
  }
  const chat = chatOptionOf(opts.input ?? DEFAULT_PROBE_INPUT);
  const dir = opts.cacheDir ?? ActivationCache.defaultDir();
  const cache = new ActivationCache(dir);
  const cut = new Set(fitInputs(model, records.map((r) => r.text), { chat, onLong: "truncate" }).truncated);
  const texts = records.filter((_, i) => !cut.has(i)).map((r) => r.text);
  const log = (warnings: string[]) => warnings.forEach((w) => opts.onLog?.(`activation cache: ${w}`));
  const r = await cache.ensure(model, texts, { layers, chat, signal: opts.signal });
  opts.onLog?.(`activations: ${r.hits} cached, ${r.misses} captured`);
  log(r.warnings);
  let longFile: string | null = null;
  if (cut.size > 0) {
    // "+tmp" is no fingerprint folder's name (those use letters, digits, "_", "." and "-")
    const tmp = join(dir, "+tmp");
    await mkdir(tmp, { recursive: true });
    longFile = join(tmp, `long-${process.pid}-${randomBytes(6).toString("hex")}.safetensors`);
    const longTexts = records.filter((_, i) => cut.has(i)).map((x) => x.text);
    try {
      await model.captureToFile(longTexts, { out: longFile, layers, chat, onLong: "truncate", signal: opts.signal });
    } catch (e) {
      await removeCapture(longFile);
      throw e;
    }
  }
  const d = model.info.nEmbd;
  return {
    ...base,
    async load(layer) {
      if (!layers.includes(layer)) missingLayer(layer, layers);
      const got = await cache.layer(model, texts, layer, { chat, signal: opts.signal });
      log(got.warnings);
      if (!longFile) return got.features;
      return inRecordOrder(records.length, cut, await readCaptureRows(longFile, layer), got.features.data, d);
    },
    async close() {
      if (longFile) await removeCapture(longFile);
    },
  };
}

/** The rows of the cut prompts and of the others (each in record order) put back together in record order. */
function inRecordOrder(n: number, cut: ReadonlySet<number>, cutRows: Float32Array, wholeRows: Float32Array, d: number): Features {
  const data = new Float32Array(n * d);
  let w = 0;
  let c = 0;
  for (let i = 0; i < n; i++) data.set(cut.has(i) ? cutRows.subarray(c++ * d, c * d) : wholeRows.subarray(w++ * d, w * d), i * d);
  return { data, rows: n, cols: d };
}

async function removeCapture(file: string): Promise<void> {
  for (const f of [file, partialPath(file), progressPath(file)]) await unlink(f).catch(() => undefined);
}

function missingLayer(layer: LayerSpec, layers: readonly LayerSpec[]): never {
  throw new RangeError(`layer ${JSON.stringify(layer)} is not in this source (layers: ${layers.map((l) => JSON.stringify(l)).join(", ")})`);
}
