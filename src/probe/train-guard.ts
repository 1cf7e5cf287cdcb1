/**
 * A prompt guard for your own model in one call: the shipped starter data (plus any
 * files of yours), every layer captured once (through the activation cache), a layer
 * sweep, MLPM on all layers and LPM / logreg at the best layer, the method and its
 * threshold chosen on validation data only (the threshold for a target false-positive
 * rate on safe prompts), an evaluation on the held-out split, per source, with the
 * confusion table and the hardest mistakes. The result's probe is ready for Guard.load.
 */
import * as path from "node:path";

import type { Features, LayerSpec } from "../core/activations";
import { checkOnLong } from "../core/corpus";
import type { Model } from "../core/model";
import { checkFiles, checkFunctionOpt, checkOneOf, checkPositiveIntOpt, checkSignalOpt } from "../core/validate";
import { sigmoid } from "../math/linalg";
import { openLayerSource, rowRange } from "./features";
import { bestOnValidation, confusionAt, flagged, metricsAt, type Confusion } from "./metrics";
import { PROBE_METHODS, type ProbeMethod, scoreLinear, WeightReader } from "./methods";
import { lpmFromJSON, lpmJSON } from "./methods/lpm";
import { MlpmTrainer } from "./methods/mlpm";
import { type DataOptions, evaluateScores, type Evaluation, loadAndSplit, renderingOf, type SweepRow } from "./pipeline";
import { DEFAULT_PROBE_INPUT, Probe } from "./probe";
import type { LpmModel, Metrics, MlpmModel } from "./types";

/** The prompts shipped in the package (data/starter: MIT, Apache-2.0 and CC-BY-4.0 sources; see its README). */
export const STARTER_DATA = path.join(__dirname, "..", "..", "data", "starter", "prompts.jsonl");

export interface TrainGuardOptions extends Omit<DataOptions, "files"> {
  /** Your own labelled prompt files, added to the starter data. */
  files?: string[];
  /** Include the shipped starter data (default true). */
  starter?: boolean;
  /** The false-positive rate on safe validation prompts the threshold aims at (default 0.05). */
  targetFpr?: number;
  /** Methods compared on validation (default mlpm, lpm, logreg). */
  methods?: ProbeMethod[];
  /** Mistakes listed in the result (per kind; default 8). */
  hardest?: number;
}

export interface GuardCandidate {
  method: ProbeMethod;
  layers: LayerSpec[];
  val: Metrics;
  test: Metrics;
}

export interface Mistake {
  text: string;
  source: string;
  score: number;
}

export interface GuardTraining {
  probe: Probe;
  /** Every method compared, with its validation and test figures at its own threshold. */
  candidates: GuardCandidate[];
  /** The layer sweep (LPM per layer) and the layer chosen on validation. */
  sweep: SweepRow[];
  bestLayer: LayerSpec;
  /** The chosen probe's held-out evaluation (overall and per source). */
  test: Evaluation;
  /** Its validation figures (the threshold's false-positive rate among them). */
  validation: Metrics;
  confusion: Confusion;
  /** Unsafe prompts scored lowest (missed) and safe prompts scored highest (false alarms), on the test split. */
  hardest: { missed: Mistake[]; falseAlarms: Mistake[] };
  data: { files: string[]; train: number; val: number; test: number; perSource: Record<string, { safe: number; unsafe: number }>; skippedIds: string[]; truncatedIds: string[] };
  targetFpr: number;
  seconds: number;
}

/** The whole job on a model; see the module comment. */
export async function trainGuard(model: Model, o: TrainGuardOptions = {}): Promise<GuardTraining> {
  const t0 = performance.now();
  const targetFpr = o.targetFpr ?? 0.05;
  if (!(typeof targetFpr === "number" && targetFpr >= 0 && targetFpr < 1)) throw new RangeError(`targetFpr must be in [0, 1), got ${String(targetFpr)}`);
  if (o.files !== undefined) checkFiles(o.files, "files", true); // the starter data may be all
  const files = [...(o.starter === false ? [] : [STARTER_DATA]), ...(o.files ?? [])];
  if (files.length === 0) throw new TypeError("no data: give files, or leave the starter data on");
  const methods = checkMethods(o.methods);
  checkPositiveIntOpt("hardest", o.hardest);
  const onLong = checkOnLong(o.onLong);
  checkSignalOpt(o.signal);
  checkFunctionOpt("onLog", o.onLog);
  const input = o.input ?? DEFAULT_PROBE_INPUT;
  const { splits, long } = await loadAndSplit({ ...o, files, input }, model);
  const all = [...splits.train, ...splits.val, ...splits.test];
  const nTrain = splits.train.length;
  const nVal = splits.val.length;
  const nTest = all.length - nTrain - nVal;
  const d = model.info.nEmbd;
  const layers: LayerSpec[] = [...Array.from({ length: model.info.nLayer }, (_, i) => i), "final"];
  const mlpmLayers = layers.filter((l) => l !== "final");
  // every layer captured once (the activation cache makes a second run free), then read one at a time
  const src = await openLayerSource(model, all, layers, { input, cacheDir: o.cacheDir, onLog: o.onLog, signal: o.signal });
  const bounds = { train: [0, nTrain], val: [nTrain, nTrain + nVal], test: [nTrain + nVal, all.length] } as const;
  const part = (f: Features, which: keyof typeof bounds) => rowRange(f, bounds[which][0], bounds[which][1]);
  const y = { train: src.labels.slice(0, nTrain), val: src.labels.slice(nTrain, nTrain + nVal), test: src.labels.slice(nTrain + nVal) };
  const threshold = { fpr: targetFpr };
  const data = {
    files,
    ...renderingOf(model, input),
    seed: o.seed ?? 1,
    train: nTrain,
    val: nVal,
    test: nTest,
    targetFpr,
    // prompts longer than the context, as the probe file records them
    onLong,
    ...long,
  };

  const sweep: SweepRow[] = [];
  let best: SweepRow | undefined;
  const candidates: (GuardCandidate & { probe: Probe; testScores: Float32Array })[] = [];
  try {
    // 1. sweep: an LPM per layer, for the chart and the single-layer methods' layer; meanwhile
    //    MLPM's per-layer LPMs and their log-odds on the validation and test rows
    let mlpm: MlpmTrainer | null = null; // made after layer 0's LPM checked the labels
    const logOdds = { val: new Float64Array(nVal * mlpmLayers.length), test: new Float64Array(nTest * mlpmLayers.length) };
    for (const layer of layers) {
      const f = await src.load(layer);
      const t1 = performance.now();
      const p = Probe.train({ method: "lpm", layers: [layer], train: { features: [part(f, "train")], labels: y.train }, val: { features: [part(f, "val")], labels: y.val }, threshold: "best-f1", input, model });
      const trainSeconds = (performance.now() - t1) / 1000;
      const v = metricsAt(p.scoreFeatures([part(f, "val")]), y.val, p.threshold);
      const t = metricsAt(p.scoreFeatures([part(f, "test")]), y.test, p.threshold);
      sweep.push({ layer, val: v, test: t, trainSeconds });
      o.onLog?.(`layer ${String(layer).padStart(5)}: val F1 ${v.f1.toFixed(3)} AUROC ${v.auroc.toFixed(3)}`);
      if (methods.includes("mlpm") && layer !== "final") {
        mlpm ??= new MlpmTrainer(y.train, mlpmLayers.length);
        // the LPM as the probe file will hold it (float32), so these log-odds are the probe's own
        const lm = roundTrip(mlpm.addLayer(part(f, "train")), d);
        const l = mlpmLayers.indexOf(layer);
        for (const which of ["val", "test"] as const) {
          const out = logOdds[which];
          for (let i = 0, r = bounds[which][0]; r < bounds[which][1]; i++, r++) out[i * mlpmLayers.length + l] = scoreLinear(lm, f.data, r * d);
        }
      }
    }
    best = bestOnValidation(sweep);

    // 2. the methods, each with its threshold for the target FPR on validation
    let bestFeatures: Features | null = null;
    for (const method of methods) {
      let probe: Probe;
      let ls: LayerSpec[];
      let valScores: Float32Array;
      let testScores: Float32Array;
      if (method === "mlpm") {
        ls = mlpmLayers;
        const trained = mlpm!.finish();
        valScores = mlpmScores(trained.model, logOdds.val, nVal);
        testScores = mlpmScores(trained.model, logOdds.test, nTest);
        probe = Probe.fromTrained({ method, layers: ls, trained: { weights: trained.model, summary: trained.summary }, width: d, val: { labels: y.val, scores: () => valScores }, threshold, input, model, data });
      } else {
        ls = [best.layer];
        const f = (bestFeatures ??= await src.load(best.layer));
        probe = Probe.train({ method, layers: ls, train: { features: [part(f, "train")], labels: y.train }, val: { features: [part(f, "val")], labels: y.val }, threshold, input, model, data });
        valScores = probe.scoreFeatures([part(f, "val")]);
        testScores = probe.scoreFeatures([part(f, "test")]);
      }
      const val = metricsAt(valScores, y.val, probe.threshold);
      const test = metricsAt(testScores, y.test, probe.threshold);
      candidates.push({ method, layers: ls, val, test, probe, testScores });
      o.onLog?.(`${method.padEnd(6)} on ${ls.length === 1 ? `layer ${ls[0]}` : `${ls.length} layers`}: val F1 ${val.f1.toFixed(3)} FPR ${val.fpr.toFixed(3)} AUROC ${val.auroc.toFixed(3)}`);
    }
  } finally {
    await src.close();
  }
  // 3. the method with the best validation F1 at its threshold (then AUROC)
  const chosen = bestOnValidation(candidates);
  const probe = chosen.probe;
  const testScores = chosen.testScores;
  const yTest = y.test;
  const rowsTest = Array.from({ length: nTest }, (_, i) => nTrain + nVal + i);
  const sources = rowsTest.map((i) => src.sources[i]);
  const test = evaluateScores(testScores, yTest, sources, probe.threshold);
  (probe.training as Record<string, unknown>).test = test.overall;
  (probe.training as Record<string, unknown>).candidates = candidates.map(({ probe: _p, testScores: _s, ...c }) => c);

  const k = o.hardest ?? 8;
  const mistakes = (label: 0 | 1) =>
    rowsTest
      .map((i, j) => ({ i, score: testScores[j], label: yTest[j] }))
      .filter((m) => m.label === label && flagged(m.score, probe.threshold) !== (label === 1))
      .sort((a, b) => (label ? a.score - b.score : b.score - a.score))
      .slice(0, k)
      .map((m) => ({ text: all[m.i].text, source: all[m.i].source, score: m.score }));
  const perSource: Record<string, { safe: number; unsafe: number }> = {};
  for (const r of all) {
    const s = (perSource[r.source] ??= { safe: 0, unsafe: 0 });
    if (r.label) s.unsafe++;
    else s.safe++;
  }
  return {
    probe,
    candidates: candidates.map(({ probe: _p, testScores: _s, ...c }) => c),
    sweep,
    bestLayer: best!.layer,
    test,
    validation: chosen.val,
    confusion: confusionAt(testScores, yTest, probe.threshold),
    hardest: { missed: mistakes(1), falseAlarms: mistakes(0) },
    data: { files, train: nTrain, val: nVal, test: nTest, perSource, ...long },
    targetFpr,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The methods to compare: a non-empty list of known methods, each once (checked before any capture). */
function checkMethods(v: unknown): ProbeMethod[] {
  if (v === undefined) return ["mlpm", "lpm", "logreg"];
  if (!Array.isArray(v) || v.length === 0) throw new TypeError(`methods must be a non-empty array of ${PROBE_METHODS.join(", ")}`);
  v.forEach((m, i) => checkOneOf(`methods[${i}]`, m, PROBE_METHODS));
  const dup = v.find((m, i) => v.indexOf(m) !== i);
  if (dup !== undefined) throw new RangeError(`methods lists ${JSON.stringify(dup)} twice`);
  return v as ProbeMethod[];
}

/** An LPM through its probe-file form (float32 weights), as a trained probe holds it. */
function roundTrip(m: LpmModel, d: number): LpmModel {
  return lpmFromJSON(
    new WeightReader(JSON.parse(JSON.stringify(lpmJSON(m))), (detail) => {
      throw new RangeError(`training produced an unusable mlpm probe (${detail}); do the features hold NaN or infinite values?`);
    }),
    d,
  );
}

/** P(unsafe) of an MLPM from its layers' log-odds (rows x layers), summed as scoreMlpm does. */
function mlpmScores(m: MlpmModel, logOdds: Float64Array, rows: number): Float32Array {
  const L = m.layers.length;
  const c = m.combiner;
  const w = Float32Array.from(c.w); // the probe file's float32 combiner weights (already float32)
  const out = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = c.b;
    for (let l = 0; l < L; l++) if (w[l] !== 0) s += w[l] * logOdds[i * L + l];
    out[i] = sigmoid(s);
  }
  return out;
}
