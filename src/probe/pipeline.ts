/**
 * Probe pipelines on labelled prompt files: load and split the data, read the
 * hidden states (through the activation cache), train, choose a threshold on
 * validation data, evaluate on held-out data; and the layer sweep.
 */
import { checkLayers, type LayerSpec } from "../core/activations";
import { chatOptionOf } from "../core/chat";
import { fitInputs, type OnLong } from "../core/corpus";
import type { Model } from "../core/model";
import { featuresFor, openLayerSource, rowRange, subset } from "./features";
import { loadPromptFiles, PromptRecord, splitRecords } from "./data";
import { bestOnValidation, metricsAt, perSource } from "./metrics";
import { DEFAULT_PROBE_INPUT, Probe, ProbeInput, ProbeMethod, ThresholdRule } from "./probe";
import type { Metrics } from "./types";

export { featuresFor, openLayerSource, rowRange, subset, type FeatureSet, type LayerSource } from "./features";

export interface DataOptions {
  files: string[];
  seed?: number;
  /** train / validation / test fractions; default 0.7 / 0.15 / 0.15 */
  fractions?: [number, number, number];
  limitPerFile?: number;
  /** Replace bytes that are not valid UTF-8 instead of failing. */
  lossyUtf8?: boolean;
  /** Prompts longer than the context: "skip" (default; counted and listed), "truncate" (their last tokens), "error". */
  onLong?: OnLong;
  /** Activation cache folder; null disables the cache. Default: ActivationCache.defaultDir(). */
  cacheDir?: string | null;
  input?: ProbeInput;
  onLog?: (message: string) => void;
  signal?: AbortSignal;
}

/**
 * How a model renders inputs in this format: the date its template reads, and whether the
 * template refused a system role so that the system prompt was merged into the user turn
 * (recorded in probe, ranker and monitor files).
 */
export function renderingOf(model: Model, input: ProbeInput): { date: string; systemMerged: boolean } {
  if (!input.chat) return { date: input.date, systemMerged: false };
  const r = model.formatText("x", { chat: chatOptionOf(input) });
  return { date: r.date ?? input.date, systemMerged: r.systemMerged };
}

/** What the long-record policy did: ids of prompts left out and of prompts cut to the context. */
export interface LongRecords {
  skippedIds: string[];
  truncatedIds: string[];
}

/**
 * Applies the long-record policy to prompts rendered as the model reads them: "skip"
 * drops those longer than the context, "truncate" keeps them (their features are read
 * from their last tokens), "error" throws TEXT_TOO_LONG before anything is captured.
 * Reported, never silent.
 */
export function fitContext(model: Model, records: PromptRecord[], input: ProbeInput, onLong: OnLong = "skip", onLog?: (m: string) => void): { records: PromptRecord[]; long: LongRecords } {
  const fit = fitInputs(
    model,
    records.map((r) => r.text),
    { chat: chatOptionOf(input), onLong, name: (i) => `prompt ${JSON.stringify(records[i].id)} (${records[i].file}:${records[i].line})` },
  );
  const skipped = new Set(fit.skipped);
  const long: LongRecords = { skippedIds: fit.skipped.map((i) => records[i].id), truncatedIds: fit.truncated.map((i) => records[i].id) };
  const limit = model.info.contextSize;
  if (long.skippedIds.length) onLog?.(`skipped ${long.skippedIds.length} prompt(s) longer than the context (${limit} tokens)`);
  if (long.truncatedIds.length) onLog?.(`cut ${long.truncatedIds.length} prompt(s) longer than the context (${limit} tokens) to their last tokens`);
  return { records: records.filter((_, i) => !skipped.has(i)), long };
}

export async function loadAndSplit(opts: DataOptions, model?: Model) {
  const loaded = await loadPromptFiles(opts.files, { limitPerFile: opts.limitPerFile, lossyUtf8: opts.lossyUtf8 });
  const stats = loaded.stats;
  const fitted = model ? fitContext(model, loaded.records, opts.input ?? DEFAULT_PROBE_INPUT, opts.onLong ?? "skip", opts.onLog) : null;
  const records = fitted ? fitted.records : loaded.records;
  const long: LongRecords = fitted ? fitted.long : { skippedIds: [], truncatedIds: [] };
  const splits = splitRecords(records, { seed: opts.seed ?? 1, fractions: opts.fractions ?? [0.7, 0.15, 0.15] });
  opts.onLog?.(
    `data: ${records.length} prompts (${records.filter((r) => r.label === 1).length} unsafe) from ${opts.files.length} file(s); ` +
      `${stats.duplicates} duplicates and ${stats.conflicts} conflicting texts dropped; split ${splits.train.length}/${splits.val.length}/${splits.test.length}`,
  );
  return { records, stats, splits, long };
}

export interface Evaluation {
  overall: Metrics;
  perSource: Record<string, Metrics>;
}

export function evaluateScores(scores: Float32Array, labels: Uint8Array, sources: string[], threshold: number): Evaluation {
  return { overall: metricsAt(scores, labels, threshold), perSource: perSource(scores, labels, sources, threshold) };
}

export interface TrainProbeOptions extends DataOptions {
  method: ProbeMethod;
  /** One layer (logreg/mlp/lpm) or several (mlpm). Default: the middle layer; mlpm: every layer. */
  layers?: LayerSpec[];
  threshold?: ThresholdRule;
  methodOptions?: Record<string, unknown>;
}

/** The whole training job: data, features, training, threshold on validation, evaluation on the test split. */
export async function trainProbe(model: Model, o: TrainProbeOptions): Promise<{ probe: Probe; test: Evaluation; seconds: number; long: LongRecords }> {
  const t0 = performance.now();
  const input = o.input ?? DEFAULT_PROBE_INPUT;
  const layers = o.layers ?? (o.method === "mlpm" ? Array.from({ length: model.info.nLayer }, (_, i) => i) : [Math.floor(model.info.nLayer / 2)]);
  checkLayers(layers, model.info.nLayer);
  const { splits, long } = await loadAndSplit(o, model);
  const all = [...splits.train, ...splits.val, ...splits.test];
  const fs = await featuresFor(model, all, layers, { input, cacheDir: o.cacheDir, onLog: o.onLog, signal: o.signal });
  const nTrain = splits.train.length;
  const nVal = splits.val.length;
  const idx = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const trainRows = idx(0, nTrain);
  const valRows = idx(nTrain, nTrain + nVal);
  const testRows = idx(nTrain + nVal, all.length);
  const labelsAt = (rows: number[]) => Uint8Array.from(rows.map((r) => fs.labels[r]));
  const train = { features: layers.map((l) => subset(fs.features.get(l)!, trainRows)), labels: labelsAt(trainRows) };
  const val = { features: layers.map((l) => subset(fs.features.get(l)!, valRows)), labels: labelsAt(valRows) };
  const trainStart = performance.now();
  const probe = Probe.train({
    method: o.method,
    layers,
    train,
    val,
    threshold: o.threshold ?? "best-f1",
    input,
    methodOptions: o.methodOptions,
    model,
    data: {
      files: o.files,
      ...renderingOf(model, input),
      onLong: o.onLong ?? "skip",
      skippedIds: long.skippedIds,
      truncatedIds: long.truncatedIds,
      seed: o.seed ?? 1,
      fractions: o.fractions ?? [0.7, 0.15, 0.15],
      train: nTrain,
      val: nVal,
      test: testRows.length,
      trainSeconds: (performance.now() - trainStart) / 1000,
    },
  });
  const testFeatures = layers.map((l) => subset(fs.features.get(l)!, testRows));
  const testScores = probe.scoreFeatures(testFeatures);
  const test = evaluateScores(testScores, labelsAt(testRows), testRows.map((r) => fs.sources[r]), probe.threshold);
  (probe.training as Record<string, unknown>).test = test.overall;
  return { probe, test, seconds: (performance.now() - t0) / 1000, long };
}

/** Scores a probe on labelled files: the test split of the same split, or every record (split "all"). */
export async function evaluateProbe(model: Model, probe: Probe, o: DataOptions & { split?: "test" | "all" }): Promise<Evaluation & { n: number; long: LongRecords }> {
  probe.checkModel(model);
  const { records, splits, long } = await loadAndSplit({ ...o, input: probe.input }, model);
  const use = o.split === "all" ? records : splits.test;
  if (use.length === 0) throw new RangeError("no records to evaluate");
  const fs = await featuresFor(model, use, [...probe.layers], { input: probe.input, cacheDir: o.cacheDir, onLog: o.onLog, signal: o.signal });
  const scores = probe.scoreFeatures(probe.layers.map((l) => fs.features.get(l)!));
  return { n: use.length, ...evaluateScores(scores, fs.labels, fs.sources, probe.threshold), long };
}

export interface SweepRow {
  layer: LayerSpec;
  val: Metrics;
  test: Metrics;
  trainSeconds: number;
}

/**
 * A probe per layer (and "final"); the best layer chosen on validation F1 (then AUROC) only. With
 * a cache, the cache is filled once for every layer (one forward pass per prompt, chunk by chunk),
 * then each layer is read, trained, evaluated and dropped in turn: memory is about prompts x nEmbd
 * floats, not prompts x layers x nEmbd. Without one (cacheDir null) every layer is held at once.
 */
export async function sweepLayers(
  model: Model,
  o: DataOptions & { method?: Exclude<ProbeMethod, "mlpm">; methodOptions?: Record<string, unknown> },
): Promise<{ rows: SweepRow[]; best: SweepRow; method: string; long: LongRecords }> {
  const method = o.method ?? "lpm";
  const input = o.input ?? DEFAULT_PROBE_INPUT;
  const layers: LayerSpec[] = [...Array.from({ length: model.info.nLayer }, (_, i) => i), "final"];
  const { splits, long } = await loadAndSplit(o, model);
  const all = [...splits.train, ...splits.val, ...splits.test];
  const src = await openLayerSource(model, all, layers, { input, cacheDir: o.cacheDir, onLog: o.onLog, signal: o.signal });
  try {
    const nTrain = splits.train.length;
    const nVal = splits.val.length;
    const yTrain = src.labels.slice(0, nTrain);
    const yVal = src.labels.slice(nTrain, nTrain + nVal);
    const yTest = src.labels.slice(nTrain + nVal);
    const rows: SweepRow[] = [];
    for (const layer of layers) {
      const f = await src.load(layer);
      const [train, val, test] = [rowRange(f, 0, nTrain), rowRange(f, nTrain, nTrain + nVal), rowRange(f, nTrain + nVal, all.length)];
      const t0 = performance.now();
      const probe = Probe.train({
        method,
        layers: [layer],
        train: { features: [train], labels: yTrain },
        val: { features: [val], labels: yVal },
        threshold: "best-f1",
        input,
        methodOptions: o.methodOptions,
        model,
      });
      const trainSeconds = (performance.now() - t0) / 1000;
      const row: SweepRow = { layer, val: metricsAt(probe.scoreFeatures([val]), yVal, probe.threshold), test: metricsAt(probe.scoreFeatures([test]), yTest, probe.threshold), trainSeconds };
      rows.push(row);
      o.onLog?.(`layer ${String(layer).padStart(5)}: val F1 ${row.val.f1.toFixed(3)} AUROC ${row.val.auroc.toFixed(3)}`);
    }
    const best = bestOnValidation(rows);
    return { rows, best, method, long };
  } finally {
    await src.close();
  }
}
