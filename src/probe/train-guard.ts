/**
 * A prompt guard for your own model in one call: the shipped starter data (plus any
 * files of yours), every layer captured once (through the activation cache), a layer
 * sweep, MLPM on all layers and LPM / logreg at the best layer, the method and its
 * threshold chosen on validation data only (the threshold for a target false-positive
 * rate on safe prompts), an evaluation on the held-out split, per source, with the
 * confusion table and the hardest mistakes. The result's probe is ready for Guard.load.
 */
import * as path from "node:path";

import type { LayerSpec } from "../core/activations";
import type { Model } from "../core/model";
import { confusionAt, flagged, metricsAt, type Confusion } from "./metrics";
import type { ProbeMethod } from "./methods";
import { type DataOptions, evaluateScores, type Evaluation, featuresFor, loadAndSplit, renderingOf, subset, type SweepRow } from "./pipeline";
import { DEFAULT_PROBE_INPUT, Probe } from "./probe";
import type { Metrics } from "./types";

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
  const files = [...(o.starter === false ? [] : [STARTER_DATA]), ...(o.files ?? [])];
  if (files.length === 0) throw new TypeError("no data: give files, or leave the starter data on");
  const methods = o.methods ?? ["mlpm", "lpm", "logreg"];
  const input = o.input ?? DEFAULT_PROBE_INPUT;
  const { splits, long } = await loadAndSplit({ ...o, files, input }, model);
  const all = [...splits.train, ...splits.val, ...splits.test];
  const nTrain = splits.train.length;
  const nVal = splits.val.length;
  const layers: LayerSpec[] = [...Array.from({ length: model.info.nLayer }, (_, i) => i), "final"];
  // every layer once (the activation cache makes a second run free)
  const fs = await featuresFor(model, all, layers, { input, cacheDir: o.cacheDir, onLog: o.onLog, signal: o.signal });
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const rows = { train: range(0, nTrain), val: range(nTrain, nTrain + nVal), test: range(nTrain + nVal, all.length) };
  const labelsAt = (r: number[]) => Uint8Array.from(r.map((i) => fs.labels[i]));
  const part = (which: keyof typeof rows, ls: LayerSpec[]) => ({ features: ls.map((l) => subset(fs.features.get(l)!, rows[which])), labels: labelsAt(rows[which]) });
  const threshold = { fpr: targetFpr };

  // 1. sweep: an LPM per layer, for the chart and the single-layer methods' layer
  const sweep: SweepRow[] = [];
  for (const layer of layers) {
    const t1 = performance.now();
    const p = Probe.train({ method: "lpm", layers: [layer], train: part("train", [layer]), val: part("val", [layer]), threshold: "best-f1", input, model });
    const trainSeconds = (performance.now() - t1) / 1000;
    const v = metricsAt(p.scoreFeatures(part("val", [layer]).features), labelsAt(rows.val), p.threshold);
    const t = metricsAt(p.scoreFeatures(part("test", [layer]).features), labelsAt(rows.test), p.threshold);
    sweep.push({ layer, val: v, test: t, trainSeconds });
    o.onLog?.(`layer ${String(layer).padStart(5)}: val F1 ${v.f1.toFixed(3)} AUROC ${v.auroc.toFixed(3)}`);
  }
  const best = sweep.reduce((a, b) => (b.val.f1 > a.val.f1 || (b.val.f1 === a.val.f1 && b.val.auroc > a.val.auroc) ? b : a));

  // 2. the methods, each with its threshold for the target FPR on validation
  const candidates: (GuardCandidate & { probe: Probe })[] = [];
  for (const method of methods) {
    const ls = method === "mlpm" ? layers.filter((l) => l !== "final") : [best.layer];
    const probe = Probe.train({
      method,
      layers: ls,
      train: part("train", ls),
      val: part("val", ls),
      threshold,
      input,
      model,
      data: { files, ...renderingOf(model, input), seed: o.seed ?? 1, train: nTrain, val: nVal, test: rows.test.length, targetFpr },
    });
    const val = metricsAt(probe.scoreFeatures(part("val", ls).features), labelsAt(rows.val), probe.threshold);
    const test = metricsAt(probe.scoreFeatures(part("test", ls).features), labelsAt(rows.test), probe.threshold);
    candidates.push({ method, layers: ls, val, test, probe });
    o.onLog?.(`${method.padEnd(6)} on ${ls.length === 1 ? `layer ${ls[0]}` : `${ls.length} layers`}: val F1 ${val.f1.toFixed(3)} FPR ${val.fpr.toFixed(3)} AUROC ${val.auroc.toFixed(3)}`);
  }
  // 3. the method with the best validation F1 at its threshold (then AUROC)
  const chosen = candidates.reduce((a, b) => (b.val.f1 > a.val.f1 || (b.val.f1 === a.val.f1 && b.val.auroc > a.val.auroc) ? b : a));
  const probe = chosen.probe;
  const testScores = probe.scoreFeatures(part("test", chosen.layers).features);
  const yTest = labelsAt(rows.test);
  const sources = rows.test.map((i) => fs.sources[i]);
  const test = evaluateScores(testScores, yTest, sources, probe.threshold);
  (probe.training as Record<string, unknown>).test = test.overall;
  (probe.training as Record<string, unknown>).candidates = candidates.map(({ probe: _p, ...c }) => c);

  const k = o.hardest ?? 8;
  const mistakes = (label: 0 | 1) =>
    rows.test
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
    candidates: candidates.map(({ probe: _p, ...c }) => c),
    sweep,
    bestLayer: best.layer,
    test,
    validation: chosen.val,
    confusion: confusionAt(testScores, yTest, probe.threshold),
    hardest: { missed: mistakes(1), falseAlarms: mistakes(0) },
    data: { files, train: nTrain, val: nVal, test: rows.test.length, perSource, ...long },
    targetFpr,
    seconds: (performance.now() - t0) / 1000,
  };
}
