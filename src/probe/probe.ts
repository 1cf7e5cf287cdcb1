/**
 * A prompt-safety probe: a small classifier on the last prompt token's hidden
 * state (chat template applied, assistant prefix appended) at one or more
 * layers (arXiv 2502.16174; latent prototype moderation).
 *
 * A probe file is JSON data, never code: format and version, method, layers,
 * how prompts were rendered, standardisation, weights, threshold, a training
 * summary and the fingerprint of the model it was trained on.
 */

import { ProbeFileError } from "../errors";
import { readJsonFile, writeJsonFile } from "../jsonfile";
import type { LayerSpec, Model } from "../model";
import "./kernels";
import {
  fitStandardizer,
  scoreMlpm,
  standardize,
  trainLogreg,
  trainLpm,
  trainMlp,
  trainMlpm,
} from "./methods";
import { bestF1Threshold, metricsAt, thresholdForFpr } from "./metrics";
import type { Features, LinearModel, LpmModel, Metrics, MlpmModel, MlpModel, Standardizer, TrainSummary } from "./types";

export const PROBE_FORMAT = "safety-lens/probe";
export const PROBE_VERSION = 1;

export type ProbeMethod = "logreg" | "mlp" | "lpm" | "mlpm";
export const PROBE_METHODS: readonly ProbeMethod[] = ["logreg", "mlp", "lpm", "mlpm"];

/** 0.5 (or any number), the best F1 on validation data, or the threshold that gives a target false-positive rate on it. */
export type ThresholdRule = number | "best-f1" | { fpr: number };

/** How prompts are rendered before their hidden state is read; a probe scores only prompts rendered the same way. */
export interface ProbeInput {
  chat: boolean;
  addAssistantPrefix: boolean;
  systemPrompt: string | null;
}

export const DEFAULT_PROBE_INPUT: ProbeInput = { chat: true, addAssistantPrefix: true, systemPrompt: null };

type Weights =
  | { kind: "logreg"; standardizer: Standardizer; linear: LinearModel }
  | { kind: "mlp"; standardizer: Standardizer; mlp: MlpModel }
  | { kind: "lpm"; lpm: LpmModel }
  | { kind: "mlpm"; mlpm: MlpmModel };

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

/** The scoring rule with standardisation folded in, on raw features: logit = w · x + b, or the MLP on x. */
type Fused =
  | { kind: "linear"; w: Float32Array; b: number }
  | { kind: "mlp"; hidden: number; w1: Float32Array; b1: Float32Array; w2: Float32Array; b2: number }
  | { kind: "mlpm" };

function fuse(w: Weights): Fused {
  if (w.kind === "lpm") return { kind: "linear", w: Float32Array.from(w.lpm.w), b: w.lpm.b };
  if (w.kind === "mlpm") return { kind: "mlpm" };
  const { mean, std } = w.standardizer;
  const d = mean.length;
  if (w.kind === "logreg") {
    // w · ((x - mean) / std) + b = (w / std) · x + (b - Σ w mean / std)
    const fw = new Float32Array(d);
    let b = w.linear.b;
    for (let j = 0; j < d; j++) {
      fw[j] = w.linear.w[j] / std[j];
      b -= (w.linear.w[j] * mean[j]) / std[j];
    }
    return { kind: "linear", w: fw, b };
  }
  const H = w.mlp.hidden;
  const w1 = new Float32Array(H * d);
  const b1 = new Float32Array(H);
  for (let u = 0; u < H; u++) {
    let bu = w.mlp.b1[u];
    for (let j = 0; j < d; j++) {
      const a = w.mlp.w1[u * d + j] / std[j];
      w1[u * d + j] = a;
      bu -= a * mean[j];
    }
    b1[u] = bu;
  }
  return { kind: "mlp", hidden: H, w1, b1, w2: Float32Array.from(w.mlp.w2), b2: w.mlp.b2 };
}

/** Σ a[aOff + k] x[k] over Float32Arrays only (one shape, so V8 keeps it fast). */
function dot32(a: Float32Array, aOff: number, x: Float32Array, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < n; k += 4) {
    s0 += a[aOff + k] * x[k];
    s1 += a[aOff + k + 1] * x[k + 1];
    s2 += a[aOff + k + 2] * x[k + 2];
    s3 += a[aOff + k + 3] * x[k + 3];
  }
  for (; k < n; k++) s0 += a[aOff + k] * x[k];
  return s0 + s1 + s2 + s3;
}

export class Probe {
  private fusedRule: Fused | null = null;

  private constructor(
    readonly method: ProbeMethod,
    readonly layers: readonly LayerSpec[],
    readonly input: ProbeInput,
    private readonly weights: Weights,
    readonly threshold: number,
    readonly thresholdRule: string,
    readonly modelInfo: { fingerprint: string; name: string; arch: string; nLayer: number; nEmbd: number },
    readonly training: Record<string, unknown>,
  ) {}

  /** Trains a probe on precomputed features; see `trainProbeOnData` for the whole pipeline. */
  static train(o: ProbeTrainOptions): Probe {
    const { method, layers } = o;
    if (!PROBE_METHODS.includes(method)) throw new TypeError(`method must be one of ${PROBE_METHODS.join(", ")}, got ${JSON.stringify(method)}`);
    if (!Array.isArray(layers) || layers.length === 0) throw new TypeError("layers must be a non-empty array");
    if (method !== "mlpm" && layers.length !== 1) throw new RangeError(`method ${method} reads one layer; got ${layers.length} (use mlpm to combine layers)`);
    if (o.train.features.length !== layers.length) throw new RangeError("one feature matrix per layer is needed");
    const y = o.train.labels;
    const pos = y.reduce((a, b) => a + b, 0);
    if (pos === 0 || pos === y.length) throw new RangeError("training data needs both safe and unsafe examples");
    const mo = o.methodOptions ?? {};
    let weights: Weights;
    let summary: TrainSummary;
    if (method === "logreg" || method === "mlp") {
      const X = o.train.features[0];
      const standardizer = fitStandardizer(X);
      const Z = standardize(X, standardizer);
      if (method === "logreg") {
        const r = trainLogreg(Z, y, mo);
        weights = { kind: "logreg", standardizer, linear: r.model };
        summary = r.summary;
      } else {
        const r = trainMlp(Z, y, mo);
        weights = { kind: "mlp", standardizer, mlp: r.model };
        summary = r.summary;
      }
    } else if (method === "lpm") {
      const r = trainLpm(o.train.features[0], y, mo);
      weights = { kind: "lpm", lpm: r.model };
      summary = r.summary;
    } else {
      const r = trainMlpm(o.train.features, y, mo);
      weights = { kind: "mlpm", mlpm: r.model };
      summary = r.summary;
    }
    const info = o.model.info;
    const modelInfo = { fingerprint: info.fingerprint, name: info.name, arch: info.arch, nLayer: info.nLayer, nEmbd: info.nEmbd };
    const rule = o.threshold ?? 0.5;
    const draft = new Probe(method, layers.slice(), o.input ?? DEFAULT_PROBE_INPUT, weights, 0.5, "0.5", modelInfo, {});
    let threshold = 0.5;
    let validation: Metrics | null = null;
    if (typeof rule === "number") {
      if (!(rule > 0 && rule < 1)) throw new RangeError(`threshold must be between 0 and 1, got ${rule}`);
      threshold = rule;
    } else {
      if (!o.val) throw new RangeError(`threshold rule ${describeThreshold(rule)} needs validation data`);
      const s = draft.scoreFeatures(o.val.features);
      if (rule === "best-f1") threshold = bestF1Threshold(s, o.val.labels);
      else if (rule && typeof rule === "object" && typeof rule.fpr === "number" && rule.fpr >= 0 && rule.fpr <= 1) threshold = thresholdForFpr(s, o.val.labels, rule.fpr);
      else throw new TypeError('threshold must be a number, "best-f1" or { fpr }');
    }
    if (o.val) validation = metricsAt(draft.scoreFeatures(o.val.features), o.val.labels, threshold);
    return new Probe(method, layers.slice(), o.input ?? DEFAULT_PROBE_INPUT, weights, threshold, describeThreshold(rule), modelInfo, {
      summary,
      validation,
      ...(o.data ? { data: o.data } : {}),
      created: new Date().toISOString(),
    });
  }

  /** P(unsafe) for one prompt, given its hidden state at each of the probe's layers (in order). */
  scoreVectors(vectors: readonly Float32Array[]): number {
    if (vectors.length !== this.layers.length) throw new RangeError(`the probe reads ${this.layers.length} layer(s); got ${vectors.length} vectors`);
    const n = this.modelInfo.nEmbd;
    for (const v of vectors) if (v.length !== n) throw new RangeError(`expected vectors of ${n} values, got ${v.length}`);
    const f = (this.fusedRule ??= fuse(this.weights));
    let logit: number;
    if (f.kind === "linear") logit = dot32(f.w, 0, vectors[0], n) + f.b;
    else if (f.kind === "mlp") {
      logit = f.b2;
      for (let u = 0; u < f.hidden; u++) {
        const a = f.b1[u] + dot32(f.w1, u * n, vectors[0], n);
        if (a > 0) logit += f.w2[u] * a;
      }
    } else logit = scoreMlpm((this.weights as { kind: "mlpm"; mlpm: MlpmModel }).mlpm, vectors as Float32Array[]);
    return sigmoid(logit);
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

  /** Scores prompts on a model: captures the probe's layers the way it was trained, then scores. */
  async score(model: Model, prompts: readonly (string | { role: string; content: string }[])[], options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    this.checkModel(model);
    const acts = await model.capture(prompts, { layers: [...this.layers], pool: "last", chat: this.chatOption(), signal: options.signal });
    const n = model.info.nEmbd;
    return this.scoreFeatures(this.layers.map((l) => ({ data: acts.layer(l), rows: acts.rows, cols: n })));
  }

  /** The `chat` option that renders prompts as this probe expects. */
  chatOption(): boolean | { addAssistantPrefix: boolean; systemPrompt?: string } {
    if (!this.input.chat) return false;
    return { addAssistantPrefix: this.input.addAssistantPrefix, ...(this.input.systemPrompt ? { systemPrompt: this.input.systemPrompt } : {}) };
  }

  /** Throws unless the model is the one this probe was trained on. */
  checkModel(model: Pick<Model, "info">, file: string | null = null): void {
    if (model.info.fingerprint !== this.modelInfo.fingerprint) {
      throw new ProbeFileError(
        "PROBE_MODEL_MISMATCH",
        file,
        `this probe was trained on model ${this.modelInfo.name} (${this.modelInfo.fingerprint}), not on ${model.info.name} (${model.info.fingerprint}); ` +
          "hidden states of different models are not comparable: train a probe for this model",
      );
    }
  }

  toJSON(): Record<string, unknown> {
    const arr = (a: Float32Array) => Array.from(a);
    const std = (s: Standardizer) => ({ mean: arr(s.mean), std: arr(s.std) });
    const lpm = (m: LpmModel) => ({ w: arr(m.w), b: m.b, mu0: arr(m.mu0), mu1: arr(m.mu1), shrinkage: m.shrinkage });
    const w = this.weights;
    const weights =
      w.kind === "logreg"
        ? { standardizer: std(w.standardizer), w: arr(w.linear.w), b: w.linear.b }
        : w.kind === "mlp"
          ? { standardizer: std(w.standardizer), hidden: w.mlp.hidden, w1: arr(w.mlp.w1), b1: arr(w.mlp.b1), w2: arr(w.mlp.w2), b2: w.mlp.b2 }
          : w.kind === "lpm"
            ? lpm(w.lpm)
            : { layers: w.mlpm.layers.map(lpm), combiner: { w: arr(w.mlpm.combiner.w), b: w.mlpm.combiner.b } };
    return {
      format: PROBE_FORMAT,
      version: PROBE_VERSION,
      method: this.method,
      layers: this.layers,
      input: this.input,
      model: this.modelInfo,
      threshold: this.threshold,
      thresholdRule: this.thresholdRule,
      weights,
      training: this.training,
    };
  }

  async save(file: string): Promise<void> {
    await writeJsonFile(file, this.toJSON());
  }

  /** Reads and validates a probe file; with a model, also checks it was trained on that model. */
  static async load(file: string, model?: Pick<Model, "info">): Promise<Probe> {
    const json = await readJsonFile(file, "probe");
    const probe = Probe.fromJSON(json, file);
    if (model) probe.checkModel(model, file);
    return probe;
  }

  /** Validates a parsed probe file (a probe file is data: every field is checked, nothing is evaluated). */
  static fromJSON(json: unknown, file: string | null = null): Probe {
    const bad = (detail: string): never => {
      throw new ProbeFileError("PROBE_INVALID", file, detail);
    };
    if (json === null || typeof json !== "object" || Array.isArray(json)) bad("a probe file is a JSON object");
    const o = json as Record<string, unknown>;
    if (o.format !== PROBE_FORMAT) bad(`not a safety-lens probe (format ${JSON.stringify(o.format)}, expected "${PROBE_FORMAT}")`);
    if (o.version !== PROBE_VERSION) bad(`unsupported probe version ${JSON.stringify(o.version)} (this safety-lens reads version ${PROBE_VERSION})`);
    const method = o.method as ProbeMethod;
    if (!PROBE_METHODS.includes(method)) bad(`unknown method ${JSON.stringify(o.method)}`);
    const m = o.model as Record<string, unknown>;
    if (!m || typeof m !== "object" || typeof m.fingerprint !== "string" || !Number.isInteger(m.nEmbd) || !Number.isInteger(m.nLayer)) {
      bad("model must give fingerprint, nEmbd and nLayer");
    }
    const nEmbd = m.nEmbd as number;
    const nLayer = m.nLayer as number;
    const layers = o.layers as LayerSpec[];
    if (!Array.isArray(layers) || layers.length === 0) bad("layers must be a non-empty array");
    for (const l of layers) if (!(l === "final" || (Number.isInteger(l) && (l as number) >= 0 && (l as number) < nLayer))) bad(`invalid layer ${JSON.stringify(l)}`);
    if (method !== "mlpm" && layers.length !== 1) bad(`method ${method} reads exactly one layer`);
    const input = o.input as ProbeInput;
    if (!input || typeof input.chat !== "boolean" || typeof input.addAssistantPrefix !== "boolean" || !(input.systemPrompt === null || typeof input.systemPrompt === "string")) {
      bad("input must give chat, addAssistantPrefix and systemPrompt");
    }
    const threshold = o.threshold as number;
    if (typeof threshold !== "number" || !(threshold >= 0 && threshold <= 1)) bad("threshold must be a number between 0 and 1");
    const w = o.weights as Record<string, unknown>;
    if (!w || typeof w !== "object") bad("weights missing");
    const vec = (v: unknown, n: number, name: string): Float32Array => {
      if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
        bad(`weights.${name} must be ${n} finite numbers`);
      }
      return Float32Array.from(v as number[]);
    };
    const num = (v: unknown, name: string): number => {
      if (typeof v !== "number" || !Number.isFinite(v)) bad(`weights.${name} must be a finite number`);
      return v as number;
    };
    const std = (s: unknown): Standardizer => {
      const r = s as Record<string, unknown>;
      if (!r || typeof r !== "object") bad("weights.standardizer missing");
      const st = vec(r.std, nEmbd, "standardizer.std");
      if (!st.every((x) => x > 0)) bad("weights.standardizer.std must be positive");
      return { mean: vec(r.mean, nEmbd, "standardizer.mean"), std: st };
    };
    const lpm = (v: unknown, name: string): LpmModel => {
      const r = v as Record<string, unknown>;
      if (!r || typeof r !== "object") bad(`weights.${name} missing`);
      return { w: vec(r.w, nEmbd, `${name}.w`), b: num(r.b, `${name}.b`), mu0: vec(r.mu0, nEmbd, `${name}.mu0`), mu1: vec(r.mu1, nEmbd, `${name}.mu1`), shrinkage: num(r.shrinkage, `${name}.shrinkage`) };
    };
    let weights: Weights;
    if (method === "logreg") weights = { kind: "logreg", standardizer: std(w.standardizer), linear: { w: vec(w.w, nEmbd, "w"), b: num(w.b, "b") } };
    else if (method === "mlp") {
      const hidden = w.hidden as number;
      if (!Number.isInteger(hidden) || hidden < 1 || hidden > 65536) bad("weights.hidden must be a positive integer");
      weights = {
        kind: "mlp",
        standardizer: std(w.standardizer),
        mlp: { hidden, w1: vec(w.w1, hidden * nEmbd, "w1"), b1: vec(w.b1, hidden, "b1"), w2: vec(w.w2, hidden, "w2"), b2: num(w.b2, "b2") },
      };
    } else if (method === "lpm") weights = { kind: "lpm", lpm: lpm(w, "lpm") };
    else {
      if (!Array.isArray(w.layers) || w.layers.length !== layers.length) bad(`weights.layers must hold one LPM per layer (${layers.length})`);
      const c = w.combiner as Record<string, unknown>;
      if (!c || typeof c !== "object") bad("weights.combiner missing");
      weights = {
        kind: "mlpm",
        mlpm: { layers: (w.layers as unknown[]).map((x, i) => lpm(x, `layers[${i}]`)), combiner: { w: vec(c.w, layers.length, "combiner.w"), b: num(c.b, "combiner.b") } },
      };
    }
    const modelInfo = { fingerprint: m.fingerprint as string, name: String(m.name ?? ""), arch: String(m.arch ?? ""), nLayer, nEmbd };
    const training = o.training && typeof o.training === "object" ? (o.training as Record<string, unknown>) : {};
    return new Probe(method, layers, { ...input }, weights, threshold, String(o.thresholdRule ?? threshold), modelInfo, training);
  }
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}
