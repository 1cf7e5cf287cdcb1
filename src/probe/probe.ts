/**
 * A prompt-safety probe: a small classifier on the last prompt token's hidden
 * state (chat template applied, assistant prefix appended) at one or more
 * layers (arXiv 2502.16174; latent prototype moderation).
 *
 * A probe file is JSON data, never code: format and version, method, layers,
 * how prompts were rendered, standardisation, weights, threshold, a training
 * summary and the fingerprint of the model it was trained on.
 */

import { type Features, type LayerSpec } from "../core/activations";
import { chatOptionOf, type ChatOptions, DEFAULT_INPUT_FORMAT, type InputFormat, readInputFormat } from "../core/chat";
import { fitInputs, type OnLong } from "../core/corpus";
import type { Model } from "../core/model";
import "../core/native-math";
import { checkModelIdentity, identityOf, type ModelIdentity, readEnvelope, readJsonFile, writeJsonFile } from "../io/model-file";
import { sigmoid } from "../math/linalg";
import { methodSpec, PROBE_METHODS, type ProbeMethod, type Scorer, WeightReader } from "./methods";
import { bestF1Threshold, metricsAt, thresholdForFpr } from "./metrics";
import type { Metrics, TrainSummary } from "./types";

export { PROBE_METHODS };
export type { ProbeMethod };

export const PROBE_FORMAT = "safety-lens/probe";
export const PROBE_VERSION = 1;

/** 0.5 (or any number), the best F1 on validation data, or the threshold that gives a target false-positive rate on it. */
export type ThresholdRule = number | "best-f1" | { fpr: number };

/** How prompts are rendered before their hidden state is read; a probe scores only prompts rendered the same way. */
export type ProbeInput = InputFormat;

export const DEFAULT_PROBE_INPUT: ProbeInput = DEFAULT_INPUT_FORMAT;

export interface ProbeTrainOptions {
  method: ProbeMethod;
  /** Layers whose features are given (one for logreg/mlp/lpm, several for mlpm), in the order of the feature arrays. */
  layers: LayerSpec[];
  train: { features: Features[]; labels: Uint8Array };
  /** Validation data chooses the threshold (and early-stops the MLP through its own split). */
  val?: { features: Features[]; labels: Uint8Array };
  threshold?: ThresholdRule;
  input?: ProbeInput;
  /** Method options passed through (l2, hidden, l1, shrinkage, ...). */
  methodOptions?: Record<string, unknown>;
  model: Pick<Model, "info">;
  data?: Record<string, unknown>;
}

function describeThreshold(rule: ThresholdRule): string {
  return typeof rule === "number" ? String(rule) : rule === "best-f1" ? "best-f1" : `fpr:${rule.fpr}`;
}

export class Probe {
  private scorer: Scorer | null = null;

  private constructor(
    readonly method: ProbeMethod,
    readonly layers: readonly LayerSpec[],
    readonly input: ProbeInput,
    private readonly weights: unknown,
    readonly threshold: number,
    readonly thresholdRule: string,
    readonly modelInfo: ModelIdentity,
    readonly training: Record<string, unknown>,
  ) {}

  /** Trains a probe on precomputed features; see `trainProbe` for the whole pipeline. */
  static train(o: ProbeTrainOptions): Probe {
    const { method, layers } = o;
    const spec = methodSpec(method);
    if (!spec) throw new TypeError(`method must be one of ${PROBE_METHODS.join(", ")}, got ${JSON.stringify(method)}`);
    if (!Array.isArray(layers) || layers.length === 0) throw new TypeError("layers must be a non-empty array");
    if (!spec.multiLayer && layers.length !== 1) throw new RangeError(`method ${method} reads one layer; got ${layers.length} (use mlpm to combine layers)`);
    if (o.train.features.length !== layers.length) throw new RangeError("one feature matrix per layer is needed");
    const y = o.train.labels;
    const pos = y.reduce((a, b) => a + b, 0);
    if (pos === 0 || pos === y.length) throw new RangeError("training data needs both safe and unsafe examples");
    const trained = spec.train(o.train.features, y, o.methodOptions ?? {});
    const val = o.val;
    return Probe.fromTrained({ ...o, trained, width: o.train.features[0].cols, val: val && { labels: val.labels, scores: (draft) => draft.scoreFeatures(val.features) } });
  }

  /**
   * @internal A probe from weights trained outside `train` (MLPM fitted one layer at a time by
   * trainGuard), checked and rounded exactly as `train` does. `val.scores` gives the
   * draft probe's P(unsafe) on the validation rows (labels `val.labels`), for the threshold.
   */
  static fromTrained(
    o: Omit<ProbeTrainOptions, "train" | "val"> & {
      trained: { weights: unknown; summary: TrainSummary };
      /** Features per layer (nEmbd). */
      width: number;
      val?: { labels: Uint8Array; scores: (draft: Probe) => Float32Array };
    },
  ): Probe {
    const { method, layers, trained } = o;
    const spec = methodSpec(method);
    if (!spec) throw new TypeError(`method must be one of ${PROBE_METHODS.join(", ")}, got ${JSON.stringify(method)}`);
    if (!Array.isArray(layers) || layers.length === 0) throw new TypeError("layers must be a non-empty array");
    if (!spec.multiLayer && layers.length !== 1) throw new RangeError(`method ${method} reads one layer; got ${layers.length} (use mlpm to combine layers)`);
    const summary = trained.summary;
    // what is returned is exactly what its file will hold: finite float32 weights of the right shapes
    const n = o.width;
    const weights = spec.fromJSON(
      new WeightReader(JSON.parse(JSON.stringify(spec.toJSON(trained.weights))), (detail) => {
        throw new RangeError(`training produced an unusable ${method} probe (${detail}); do the features hold NaN or infinite values?`);
      }),
      n,
      layers.length,
    );
    const modelInfo = identityOf(o.model.info);
    if (n !== modelInfo.nEmbd) throw new RangeError(`features have ${n} columns but the model is ${modelInfo.nEmbd} wide`);
    const rule = o.threshold ?? 0.5;
    const input = o.input ?? DEFAULT_PROBE_INPUT;
    const draft = new Probe(method, layers.slice(), input, weights, 0.5, "0.5", modelInfo, {});
    let threshold = 0.5;
    let validation: Metrics | null = null;
    const valScores = o.val ? o.val.scores(draft) : null;
    if (typeof rule === "number") {
      if (!(rule > 0 && rule < 1)) throw new RangeError(`threshold must be between 0 and 1, got ${rule}`);
      threshold = rule;
    } else {
      if (!o.val || !valScores) throw new RangeError(`threshold rule ${describeThreshold(rule)} needs validation data`);
      if (rule === "best-f1") threshold = bestF1Threshold(valScores, o.val.labels);
      else if (rule && typeof rule === "object" && typeof rule.fpr === "number" && rule.fpr >= 0 && rule.fpr <= 1) threshold = thresholdForFpr(valScores, o.val.labels, rule.fpr);
      else throw new TypeError('threshold must be a number, "best-f1" or { fpr }');
    }
    if (o.val && valScores) validation = metricsAt(valScores, o.val.labels, threshold);
    const training: Record<string, unknown> = { summary: summary as TrainSummary, validation, ...(o.data ? { data: o.data } : {}), created: new Date().toISOString() };
    return new Probe(method, layers.slice(), input, weights, threshold, describeThreshold(rule), modelInfo, training);
  }

  /** P(unsafe) for one prompt, given its hidden state at each of the probe's layers (in order). */
  scoreVectors(vectors: readonly Float32Array[]): number {
    if (vectors.length !== this.layers.length) throw new RangeError(`the probe reads ${this.layers.length} layer(s); got ${vectors.length} vectors`);
    const n = this.modelInfo.nEmbd;
    for (const v of vectors) if (v.length !== n) throw new RangeError(`expected vectors of ${n} values, got ${v.length}`);
    const score = (this.scorer ??= methodSpec(this.method)!.scorer(this.weights, n));
    return sigmoid(score(vectors));
  }

  /**
   * For a one-layer linear probe (logreg, lpm): the rule logit = w . x + b on the raw
   * hidden state, standardisation folded in; null for mlp and mlpm.
   */
  linearRule(): { w: Float32Array; b: number } | null {
    const spec = methodSpec(this.method)!;
    return spec.linear && !spec.multiLayer ? spec.linear(this.weights, this.modelInfo.nEmbd) : null;
  }

  /** P(unsafe) for every row of per-layer feature matrices. */
  scoreFeatures(perLayer: readonly Features[]): Float32Array {
    if (perLayer.length !== this.layers.length) throw new RangeError(`the probe reads ${this.layers.length} layer(s); got ${perLayer.length} matrices`);
    const rows = perLayer[0].rows;
    const n = this.modelInfo.nEmbd;
    const out = new Float32Array(rows);
    const views: Float32Array[] = perLayer.map(() => new Float32Array(0));
    for (let r = 0; r < rows; r++) {
      for (let l = 0; l < perLayer.length; l++) views[l] = perLayer[l].data.subarray(r * n, (r + 1) * n);
      out[r] = this.scoreVectors(views);
    }
    return out;
  }

  /**
   * Scores prompts on a model: captures the probe's layers the way it was trained, then
   * scores. A prompt longer than the context follows `onLong`: "error" (default: TEXT_TOO_LONG),
   * "truncate" (its last tokens are read), or "skip" (its score is NaN, which every check
   * counts as unsafe: a prompt that cannot be read is not passed).
   */
  async score(
    model: Model,
    prompts: readonly (string | { role: string; content: string }[])[],
    options: { signal?: AbortSignal; onLong?: OnLong } = {},
  ): Promise<Float32Array> {
    this.checkModel(model);
    const fit = fitInputs(model, prompts, { chat: this.chatOption(), onLong: options.onLong ?? "error", name: (i) => `prompts[${i}]` });
    const out = new Float32Array(prompts.length).fill(NaN);
    if (!fit.prepared) return out;
    const acts = await model.capture(fit.prepared, { layers: [...this.layers], pool: "last", signal: options.signal });
    const scores = this.scoreFeatures(this.layers.map((l) => acts.features(l)));
    fit.rows.forEach((r, k) => (out[r] = scores[k]));
    return out;
  }

  /** The `chat` option that renders prompts as this probe expects. */
  chatOption(): boolean | ChatOptions {
    return chatOptionOf(this.input);
  }

  /** Throws unless the model is the one this probe was trained on. */
  checkModel(model: Pick<Model, "info">, file: string | null = null): void {
    checkModelIdentity("probe", this.modelInfo, model.info, file);
  }

  toJSON(): Record<string, unknown> {
    return {
      format: PROBE_FORMAT,
      version: PROBE_VERSION,
      method: this.method,
      layers: this.layers,
      input: this.input,
      model: this.modelInfo,
      threshold: this.threshold,
      thresholdRule: this.thresholdRule,
      weights: methodSpec(this.method)!.toJSON(this.weights),
      training: this.training,
    };
  }

  async save(file: string): Promise<void> {
    await writeJsonFile(file, this.toJSON());
  }

  /** Reads and validates a probe file; with a model, also checks it was trained on that model. */
  static async load(file: string, model?: Pick<Model, "info">): Promise<Probe> {
    const probe = Probe.fromJSON(await readJsonFile(file, "probe"), file);
    if (model) probe.checkModel(model, file);
    return probe;
  }

  /** Validates a parsed probe file (a probe file is data: every field is checked, nothing is evaluated). */
  static fromJSON(json: unknown, file: string | null = null): Probe {
    const { json: o, model, training, bad } = readEnvelope(json, file, "probe", PROBE_FORMAT, PROBE_VERSION);
    const spec = methodSpec(o.method);
    if (!spec) bad(`unknown method ${JSON.stringify(o.method)}`);
    const method = o.method as ProbeMethod;
    const layers = o.layers as LayerSpec[];
    if (!Array.isArray(layers) || layers.length === 0) bad("layers must be a non-empty array");
    for (const l of layers) if (!(l === "final" || (Number.isInteger(l) && (l as number) >= 0 && (l as number) < model.nLayer))) bad(`invalid layer ${JSON.stringify(l)}`);
    if (new Set(layers).size !== layers.length) bad("layers must not repeat");
    if (!spec!.multiLayer && layers.length !== 1) bad(`method ${method} reads exactly one layer`);
    const input = readInputFormat(o.input, bad);
    const threshold = o.threshold as number;
    if (typeof threshold !== "number" || !(threshold >= 0 && threshold <= 1)) bad("threshold must be a number between 0 and 1");
    const w = o.weights;
    if (!w || typeof w !== "object" || Array.isArray(w)) bad("weights missing");
    const weights = spec!.fromJSON(new WeightReader(w as Record<string, unknown>, bad), model.nEmbd, layers.length);
    const probe = new Probe(method, layers, input, weights, threshold, String(o.thresholdRule ?? threshold), model, training);
    try {
      probe.scorer = spec!.scorer(weights, model.nEmbd);
    } catch (e) {
      bad((e as Error).message);
    }
    return probe;
  }
}
