/**
 * Training and evaluating streaming response monitors on response lists (an
 * instruction and candidates labelled safe/unsafe): a token-level linear probe (every
 * token of a response carries its label) at a layer chosen by a sweep on validation
 * data, and a threshold on the streaming rule's aggregate for a target false-positive
 * rate on safe validation responses. Evaluation replays every response token by token
 * through the rule (exactly what generation would decide) beside two baselines: the same
 * probe read once at the response's end, and a prompt-only guard.
 */
import type { LayerSpec } from "../core/activations";
import { checkLayers } from "../core/activations";
import { DEFAULT_INPUT_FORMAT, type InputFormat } from "../core/chat";
import type { StreamRule } from "../core/generate";
import { checkOnLong } from "../core/corpus";
import type { Model } from "../core/model";
import { checkFiles, checkFractionOpt, checkFunctionOpt, checkOneOf, checkPositiveIntOpt, checkSignalOpt } from "../core/validate";
import { auroc, bestOnValidation, flagged, thresholdForFpr } from "../probe/metrics";
import { Probe } from "../probe/probe";
import { loadRankerData, type RankerDataOptions } from "../srr/pipeline";
import { type MonitoredResponse, responsesOf, type TokenFeatures, tokenFeatures, tokenLabels, tokenRows } from "./data";
import { DEFAULT_STREAM_RULE, Monitor } from "./monitor";
import { replay, ruleDefaults, scoreRows } from "./rule";

export interface MonitorMetrics {
  /** Responses evaluated (unsafe among them). */
  n: number;
  unsafe: number;
  /** Flagged unsafe responses / unsafe responses. */
  recall: number;
  /** Flagged safe responses / safe responses. */
  fpr: number;
  precision: number;
  f1: number;
  /** For flagged unsafe responses: the mean fraction of the response read before the flag (lower is better). */
  meanFractionRead: number;
  /** AUROC of the responses' peak aggregates (threshold-free). */
  auroc: number;
  threshold: number;
}

export interface MonitorEvaluation extends MonitorMetrics {
  baselines: {
    /** The same token probe read once, on the response's last token (threshold for the same target FPR on validation). */
    endOfResponse: Omit<MonitorMetrics, "meanFractionRead">;
    /** A logistic probe on the instruction alone, predicting the response's label (same target FPR). */
    promptOnly: Omit<MonitorMetrics, "meanFractionRead">;
  };
}

export interface TrainMonitorOptions extends RankerDataOptions {
  method?: "logreg" | "lpm";
  /** The layer; when not given, a sweep over `sweepLayers` chooses it on validation data. */
  layer?: LayerSpec;
  /** Candidate layers of the sweep (default: every layer up to 8 layers, else 8 evenly spaced). */
  sweepLayers?: LayerSpec[];
  rule?: StreamRule;
  /** False-positive rate on safe validation responses the threshold aims at (default 0.05). */
  targetFpr?: number;
  /** Response tokens read at most (default 64). */
  maxResponseTokens?: number;
  input?: InputFormat;
  signal?: AbortSignal;
}

export interface MonitorSweepRow {
  layer: LayerSpec;
  val: MonitorMetrics;
}

/** The options trainMonitor and evaluateMonitor share, checked before any file is read. */
function checkMonitorDataOptions(o: RankerDataOptions & { targetFpr?: number; maxResponseTokens?: number; signal?: AbortSignal }): void {
  if (o === null || typeof o !== "object") throw new TypeError("options must be an object with a files array");
  checkFiles(o.files);
  checkFractionOpt("targetFpr", o.targetFpr);
  checkPositiveIntOpt("maxResponseTokens", o.maxResponseTokens);
  checkOnLong(o.onLong);
  checkSignalOpt(o.signal);
  checkFunctionOpt("onLog", o.onLog);
}

/** Metrics of per-response decisions. */
function decisionMetrics(flags: boolean[], labels: readonly number[], peaks: readonly number[], threshold: number, fractions: number[]): MonitorMetrics {
  let tp = 0;
  let fp = 0;
  let pos = 0;
  for (let i = 0; i < flags.length; i++) {
    if (labels[i]) pos++;
    if (flags[i] && labels[i]) tp++;
    else if (flags[i]) fp++;
  }
  const neg = flags.length - pos;
  const recall = pos ? tp / pos : 0;
  const precision = tp + fp ? tp / (tp + fp) : 0;
  return {
    n: flags.length,
    unsafe: pos,
    recall,
    fpr: neg ? fp / neg : 0,
    precision,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
    meanFractionRead: fractions.length ? fractions.reduce((a, b) => a + b, 0) / fractions.length : NaN,
    auroc: auroc(peaks.map((p) => (p === Number.POSITIVE_INFINITY ? Number.NaN : p)), labels),
    threshold,
  };
}

/** The threshold for a target false-positive rate on safe items, kept within [0, 1]. */
function fprThreshold(scores: readonly number[], labels: readonly number[], targetFpr: number): number {
  const t = thresholdForFpr(
    scores.map((s) => (s === Number.POSITIVE_INFINITY ? Number.NaN : s)),
    labels,
    targetFpr,
  );
  return Math.min(1, Math.max(0, Number.isFinite(t) ? t : 1));
}

interface Scored {
  /** Per response: token scores. */
  scores: Float64Array[];
  peaks: number[];
}

function scoreResponses(w: Float32Array, b: number, f: TokenFeatures, layer: LayerSpec, which: readonly number[], rule: StreamRule): Scored {
  const X = f.tokens.get(layer)!;
  const scores = which.map((i) => scoreRows(w, b, X, f.nEmbd, f.offsets[i], f.offsets[i + 1]));
  return { scores, peaks: scores.map((s) => replay(s, rule, Number.POSITIVE_INFINITY).peak) };
}

/** A streaming monitor's decisions on some responses: flags, fractions read. */
function streamMetrics(monitor: Monitor, f: TokenFeatures, which: readonly number[]): MonitorMetrics {
  const s = scoreResponses(monitor.w, monitor.b, f, monitor.layer, which, monitor.rule);
  const flags: boolean[] = [];
  const fractions: number[] = [];
  which.forEach((i, k) => {
    const r = monitor.replay(s.scores[k]);
    flags.push(r.flaggedAt >= 0);
    if (r.flaggedAt >= 0 && f.responses[i].label) fractions.push((r.flaggedAt + 1) / s.scores[k].length);
  });
  return decisionMetrics(
    flags,
    which.map((i) => f.responses[i].label),
    s.peaks,
    monitor.threshold,
    fractions,
  );
}

/** Trains the token probe at a layer and calibrates the streaming threshold on validation responses. */
function fitAt(model: Model, f: TokenFeatures, layer: LayerSpec, train: number[], val: number[], o: TrainMonitorOptions, rule: Required<StreamRule>): Monitor {
  const y = tokenLabels(f, train);
  const probe = Probe.train({
    method: o.method ?? "logreg",
    layers: [layer],
    train: { features: [{ data: tokenRows(f, layer, train), rows: y.length, cols: f.nEmbd }], labels: y },
    input: o.input ?? DEFAULT_INPUT_FORMAT,
    model,
  });
  const lin = probe.linearRule()!;
  const s = scoreResponses(lin.w, lin.b, f, layer, val, rule);
  const threshold = fprThreshold(
    s.peaks,
    val.map((i) => f.responses[i].label),
    o.targetFpr ?? 0.05,
  );
  return Monitor.fromProbe(probe, { rule, threshold });
}

/** Baselines on test responses, thresholds for the target FPR on validation ones. */
function baselines(model: Model, monitor: Monitor, f: TokenFeatures, train: number[], val: number[], test: number[], targetFpr: number): MonitorEvaluation["baselines"] {
  const layer = monitor.layer;
  const d = f.nEmbd;
  const labelsOf = (which: number[]) => which.map((i) => f.responses[i].label);
  // the same probe once, at the end of the response
  const X = f.tokens.get(layer)!;
  const endScore = (i: number) => scoreRows(monitor.w, monitor.b, X, d, f.offsets[i + 1] - 1, f.offsets[i + 1])[0];
  const endVal = val.map(endScore);
  const endTest = test.map(endScore);
  const tEnd = fprThreshold(endVal, labelsOf(val), targetFpr);
  const { meanFractionRead: _a, ...endOfResponse } = decisionMetrics(
    endTest.map((s) => flagged(s, tEnd)),
    labelsOf(test),
    endTest,
    tEnd,
    [],
  );
  // a prompt-only guard: a logistic probe on the instruction's last token
  const P = f.prompts.get(layer)!;
  const rowsOf = (which: number[]) => {
    const out = new Float32Array(which.length * d);
    which.forEach((i, k) => out.set(P.subarray(i * d, (i + 1) * d), k * d));
    return { data: out, rows: which.length, cols: d };
  };
  const yTrain = Uint8Array.from(labelsOf(train));
  let promptOnly: Omit<MonitorMetrics, "meanFractionRead">;
  const pos = yTrain.reduce((a, b) => a + b, 0);
  if (pos === 0 || pos === yTrain.length) {
    promptOnly = { n: test.length, unsafe: labelsOf(test).reduce((a: number, b) => a + b, 0), recall: NaN, fpr: NaN, precision: NaN, f1: NaN, auroc: NaN, threshold: NaN };
  } else {
    const guard = Probe.train({ method: "logreg", layers: [layer], train: { features: [rowsOf(train)], labels: yTrain }, model });
    const pv = Array.from(guard.scoreFeatures([rowsOf(val)]));
    const pt = Array.from(guard.scoreFeatures([rowsOf(test)]));
    const tp = fprThreshold(pv, labelsOf(val), targetFpr);
    const { meanFractionRead: _b, ...m } = decisionMetrics(
      pt.map((s) => flagged(s, tp)),
      labelsOf(test),
      pt,
      tp,
      [],
    );
    promptOnly = m;
  }
  return { endOfResponse, promptOnly };
}

function indexRange(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}

/** Default sweep: every layer up to 8, else 8 evenly spaced ones (the last included). */
export function defaultMonitorLayers(nLayer: number): LayerSpec[] {
  if (nLayer <= 8) return Array.from({ length: nLayer }, (_, i) => i);
  return Array.from({ length: 8 }, (_, k) => Math.round(((k + 1) * (nLayer - 1)) / 8));
}

/**
 * The whole job: load and split the response lists by instruction, read token features,
 * sweep layers (when no layer is given), train, calibrate on validation, evaluate on test.
 */
export async function trainMonitor(
  model: Model,
  o: TrainMonitorOptions,
): Promise<{ monitor: Monitor; validation: MonitorMetrics; test: MonitorEvaluation; sweep: MonitorSweepRow[]; skipped: string[]; truncatedPrompts: string[]; truncated: number; seconds: number }> {
  const t0 = performance.now();
  checkMonitorDataOptions(o);
  if (o.method !== undefined) checkOneOf("method", o.method, ["logreg", "lpm"]);
  const rule = ruleDefaults(o.rule ?? DEFAULT_STREAM_RULE);
  const layers = o.layer !== undefined ? [o.layer] : (o.sweepLayers ?? defaultMonitorLayers(model.info.nLayer));
  checkLayers(layers, model.info.nLayer);
  const { train, val, test } = await loadRankerData({ ...o, shuffle: false });
  const responses: MonitoredResponse[] = [...responsesOf(train), ...responsesOf(val), ...responsesOf(test)];
  const nTrain = responsesOf(train).length;
  const nVal = responsesOf(val).length;
  const f = await tokenFeatures(model, responses, layers, {
    input: o.input,
    maxResponseTokens: o.maxResponseTokens,
    onLong: o.onLong,
    signal: o.signal,
  });
  // indices into the kept responses, by split
  const split = (r: MonitoredResponse) => {
    const k = responses.indexOf(r);
    return k < nTrain ? 0 : k < nTrain + nVal ? 1 : 2;
  };
  const idx: number[][] = [[], [], []];
  f.responses.forEach((r, i) => idx[split(r)].push(i));
  const [tr, va, te] = idx;
  if (tr.length === 0 || va.length === 0 || te.length === 0) throw new RangeError(`too few responses for train/validation/test (${tr.length}/${va.length}/${te.length})`);
  o.onLog?.(
    `responses: ${tr.length} train, ${va.length} validation, ${te.length} test; ${f.skipped.length} skipped (instruction fills the context, or empty), ` +
      `${f.truncatedPrompts.length} with the instruction cut, ${f.truncated} cut to ${o.maxResponseTokens ?? 64} tokens`,
  );
  const sweep: MonitorSweepRow[] = [];
  const fitted: { monitor: Monitor; val: MonitorMetrics }[] = [];
  for (const layer of layers) {
    const monitor = fitAt(model, f, layer, tr, va, o, rule);
    const m = streamMetrics(monitor, f, va);
    sweep.push({ layer, val: m });
    o.onLog?.(`layer ${String(layer).padStart(5)}: val F1 ${m.f1.toFixed(3)} recall ${m.recall.toFixed(3)} FPR ${m.fpr.toFixed(3)} AUROC ${m.auroc.toFixed(3)}`);
    fitted.push({ monitor, val: m });
  }
  const best = bestOnValidation(fitted);
  const monitor = best.monitor;
  const testMetrics = { ...streamMetrics(monitor, f, te), baselines: baselines(model, monitor, f, tr, va, te, o.targetFpr ?? 0.05) };
  const seconds = (performance.now() - t0) / 1000;
  const trained = Monitor.fromProbe(monitor.probe, {
    rule,
    threshold: monitor.threshold,
    training: {
      data: { files: o.files, seed: o.seed ?? 1, train: tr.length, val: va.length, test: te.length, skipped: f.skipped.length, truncated: f.truncated, onLong: checkOnLong(o.onLong), truncatedPrompts: f.truncatedPrompts.length },
      targetFpr: o.targetFpr ?? 0.05,
      maxResponseTokens: o.maxResponseTokens ?? 64,
      validation: best.val,
      test: testMetrics,
      sweep: sweep.length > 1 ? sweep : undefined,
      created: new Date().toISOString(),
    },
  });
  return { monitor: trained, validation: best.val, test: testMetrics, sweep, skipped: f.skipped, truncatedPrompts: f.truncatedPrompts, truncated: f.truncated, seconds };
}

/**
 * Evaluates a monitor on response lists: the test split of the same split (same seed as
 * its training), or every response (split "all"; the baselines then train on the train
 * split of the same data).
 */
export async function evaluateMonitor(
  model: Model,
  monitor: Monitor,
  o: RankerDataOptions & { split?: "test" | "all"; maxResponseTokens?: number; targetFpr?: number; signal?: AbortSignal },
): Promise<MonitorEvaluation> {
  checkMonitorDataOptions(o);
  if (o.split !== undefined) checkOneOf("split", o.split, ["test", "all"]);
  monitor.checkModel(model);
  const { train, val, test } = await loadRankerData({ ...o, shuffle: false });
  const parts = [responsesOf(train), responsesOf(val), responsesOf(test)];
  const responses = [...parts[0], ...parts[1], ...parts[2]];
  const f = await tokenFeatures(model, responses, [monitor.layer], {
    input: monitor.input,
    maxResponseTokens: o.maxResponseTokens ?? (monitor.training.maxResponseTokens as number | undefined) ?? 64,
    onLong: o.onLong,
    signal: o.signal,
  });
  const where = new Map(responses.map((r, i) => [r, i < parts[0].length ? 0 : i < parts[0].length + parts[1].length ? 1 : 2]));
  const idx: number[][] = [[], [], []];
  f.responses.forEach((r, i) => idx[where.get(r)!].push(i));
  const evalOn = o.split === "all" ? indexRange(0, f.responses.length) : idx[2];
  if (evalOn.length === 0) throw new RangeError("no responses to evaluate");
  const targetFpr = o.targetFpr ?? (monitor.training.targetFpr as number | undefined) ?? 0.05;
  return { ...streamMetrics(monitor, f, evalOn), baselines: baselines(model, monitor, f, idx[0], idx[1], evalOn, targetFpr) };
}
