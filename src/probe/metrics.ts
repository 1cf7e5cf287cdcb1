/**
 * Evaluation metrics for binary probes (labels: 1 = unsafe = positive, 0 = safe).
 *
 * Scores are probabilities of "unsafe" (any monotone score works for the ranking
 * metrics); an example is predicted unsafe when score >= threshold.
 *
 * Conventions for undefined ratios:
 * - precision = 0 when nothing is predicted positive;
 * - recall = 0 when there are no positives;
 * - f1 = 0 when precision + recall = 0;
 * - fpr = 0 when there are no negatives;
 * - accuracy = 0 on an empty set;
 * - auroc = NaN when either class is missing; auprc = NaN when there are no positives.
 *
 * Fail closed: a NaN score (a damaged probe, or NaN in the model's own hidden states)
 * counts as a certain "unsafe" everywhere: it passes every threshold and ranks above
 * every number, all NaN scores tied. A probe that scores everything NaN therefore flags
 * everything (recall 1, false-positive rate 1, AUROC 0.5), never a perfect score.
 */
import type { Metrics } from "./types";

export type Scores = ArrayLike<number>;
export type Labels = ArrayLike<number>;

export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

function check(scores: Scores, y: Labels, what: string): void {
  if (scores.length !== y.length) throw new RangeError(`${what}: ${scores.length} scores for ${y.length} labels`);
}

/** A score as the metrics order it: NaN is above every number (fail closed). */
function rankKey(s: number): number {
  return Number.isNaN(s) ? Infinity : s;
}

/** Whether a score is flagged unsafe at a threshold: score >= threshold, and always for NaN. */
export function flagged(score: number, threshold: number): boolean {
  return !(score < threshold);
}

/** Indices sorted by score, descending (NaN scores first). */
function orderDesc(scores: Scores): Uint32Array {
  const idx = new Uint32Array(scores.length);
  for (let i = 0; i < idx.length; i++) idx[i] = i;
  const key = (i: number) => rankKey(scores[i]);
  return idx.sort((a, b) => key(b) - key(a) || a - b);
}

/** How many scores are NaN. */
export function countNaN(scores: Scores): number {
  let k = 0;
  for (let i = 0; i < scores.length; i++) if (Number.isNaN(scores[i])) k++;
  return k;
}

/** The smallest double greater than x. */
export function nextUp(x: number): number {
  if (Number.isNaN(x) || x === Infinity) return x;
  if (x === 0) return Number.MIN_VALUE;
  const f = new Float64Array([x]);
  const b = new BigInt64Array(f.buffer);
  b[0] += x > 0 ? 1n : -1n;
  return f[0];
}

/**
 * Area under the ROC curve from ranks: (sum of positive ranks - n1 (n1 + 1) / 2) / (n0 n1),
 * tied scores getting their average rank (a tie between a positive and a negative
 * counts 1/2). NaN when either class is missing.
 */
export function auroc(scores: Scores, y: Labels): number {
  check(scores, y, "auroc");
  const n = scores.length;
  const idx = orderDesc(scores);
  let n1 = 0;
  for (let i = 0; i < n; i++) if (y[i]) n1++;
  const n0 = n - n1;
  if (n0 === 0 || n1 === 0) return NaN;
  // ascending ranks 1..n: position p in the descending order has rank n - p
  let rankSum = 0;
  let p = 0;
  while (p < n) {
    let q = p + 1;
    const s = rankKey(scores[idx[p]]);
    while (q < n && rankKey(scores[idx[q]]) === s) q++;
    // positions p..q-1 tie: ranks n-p down to n-q+1, average (2n - p - q + 1) / 2
    const avg = (2 * n - p - q + 1) / 2;
    for (let k = p; k < q; k++) if (y[idx[k]]) rankSum += avg;
    p = q;
  }
  return (rankSum - (n1 * (n1 + 1)) / 2) / (n0 * n1);
}

/**
 * Average precision: sum over distinct thresholds (descending) of
 * (R_k - R_{k-1}) P_k, tied scores entering together (as scikit-learn's
 * average_precision_score). NaN when there are no positives.
 */
export function auprc(scores: Scores, y: Labels): number {
  check(scores, y, "auprc");
  const n = scores.length;
  let P = 0;
  for (let i = 0; i < n; i++) if (y[i]) P++;
  if (P === 0) return NaN;
  const idx = orderDesc(scores);
  let tp = 0;
  let fp = 0;
  let ap = 0;
  let prevRecall = 0;
  let p = 0;
  while (p < n) {
    const s = rankKey(scores[idx[p]]);
    let q = p;
    while (q < n && (rankKey(scores[idx[q]]) === s || q === p)) {
      if (y[idx[q]]) tp++;
      else fp++;
      q++;
    }
    const recall = tp / P;
    ap += (recall - prevRecall) * (tp / (tp + fp));
    prevRecall = recall;
    p = q;
  }
  return ap;
}

/** Confusion counts when predicting unsafe for score >= threshold. */
export function confusionAt(scores: Scores, y: Labels, threshold: number): Confusion {
  check(scores, y, "confusionAt");
  let tp = 0,
    fp = 0,
    tn = 0,
    fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const pos = flagged(scores[i], threshold);
    if (y[i]) {
      if (pos) tp++;
      else fn++;
    } else if (pos) fp++;
    else tn++;
  }
  return { tp, fp, tn, fn };
}

/** Threshold metrics plus AUROC / AUPRC (conventions for empty denominators in the module comment). */
export function metricsAt(scores: Scores, y: Labels, threshold: number): Metrics {
  const { tp, fp, tn, fn } = confusionAt(scores, y, threshold);
  const n = tp + fp + tn + fn;
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return {
    n,
    positives: tp + fn,
    precision,
    recall,
    f1,
    accuracy: n > 0 ? (tp + tn) / n : 0,
    auroc: auroc(scores, y),
    auprc: auprc(scores, y),
    fpr: fp + tn > 0 ? fp / (fp + tn) : 0,
    threshold,
    ...(countNaN(scores) > 0 ? { nanScores: countNaN(scores) } : {}),
  };
}

/**
 * The threshold maximising F1 on (scores, y): one of the scores (predicting unsafe for
 * score >= it reproduces that F1); among equal F1 the highest such threshold. With no
 * positives (F1 = 0 everywhere) the threshold just above the largest score (nothing
 * predicted unsafe); with no rows 0.5.
 */
export function bestF1Threshold(scores: Scores, y: Labels): number {
  check(scores, y, "bestF1Threshold");
  const n = scores.length;
  if (n === 0) return 0.5;
  let P = 0;
  for (let i = 0; i < n; i++) if (y[i]) P++;
  const idx = orderDesc(scores);
  if (P === 0) return nextUp(scores[idx[0]]);
  let tp = 0;
  let predicted = 0;
  let bestF1 = -1;
  let best = scores[idx[0]];
  let p = 0;
  while (p < n) {
    const s = scores[idx[p]];
    let q = p;
    while (q < n && (scores[idx[q]] === s || q === p)) {
      if (y[idx[q]]) tp++;
      predicted++;
      q++;
    }
    const f1 = (2 * tp) / (predicted + P);
    if (f1 > bestF1) {
      bestF1 = f1;
      best = s;
    }
    p = q;
  }
  return best;
}

/**
 * The lowest threshold whose false-positive rate on the negatives of (scores, y) is
 * <= targetFpr: with k = floor(targetFpr * n0) negatives allowed above it and v the
 * (k+1)-th highest negative score, every threshold > v qualifies and none <= v does,
 * so the answer is the smallest double above v. On this data its FPR is the largest
 * attainable rate <= targetFpr (ties among negatives can make it lower than the target).
 * With targetFpr >= 1 (or no negatives) the lowest score (everything predicted unsafe).
 */
export function thresholdForFpr(scores: Scores, y: Labels, targetFpr: number): number {
  check(scores, y, "thresholdForFpr");
  if (!(targetFpr >= 0)) throw new RangeError(`thresholdForFpr: target must be >= 0, got ${targetFpr}`);
  const neg: number[] = [];
  let min = Infinity;
  for (let i = 0; i < scores.length; i++) {
    if (!y[i]) neg.push(scores[i]);
    if (scores[i] < min) min = scores[i];
  }
  if (scores.length === 0) return 0.5;
  const n0 = neg.length;
  const k = Math.floor(targetFpr * n0 + 1e-9);
  if (n0 === 0 || k >= n0) return min;
  neg.sort((a, b) => b - a);
  return nextUp(neg[k]);
}

/** metricsAt for each source separately (keys sorted). */
export function perSource(scores: Scores, y: Labels, sources: ArrayLike<string>, threshold: number): Record<string, Metrics> {
  check(scores, y, "perSource");
  if (sources.length !== scores.length) throw new RangeError(`perSource: ${sources.length} sources for ${scores.length} scores`);
  const groups = new Map<string, number[]>();
  for (let i = 0; i < sources.length; i++) {
    const g = groups.get(sources[i]);
    if (g) g.push(i);
    else groups.set(sources[i], [i]);
  }
  const out: Record<string, Metrics> = {};
  for (const key of [...groups.keys()].sort()) {
    const rows = groups.get(key)!;
    const s = new Float64Array(rows.length);
    const l = new Uint8Array(rows.length);
    rows.forEach((i, t) => {
      s[t] = scores[i];
      l[t] = y[i] ? 1 : 0;
    });
    out[key] = metricsAt(s, l, threshold);
  }
  return out;
}

/** The row with the best validation F1, then AUROC; the first of equals (how sweeps and method comparisons choose). */
export function bestOnValidation<T extends { val: { f1: number; auroc: number } }>(rows: readonly T[]): T {
  if (rows.length === 0) throw new RangeError("nothing to choose from");
  return rows.reduce((a, b) => (b.val.f1 > a.val.f1 || (b.val.f1 === a.val.f1 && b.val.auroc > a.val.auroc) ? b : a));
}
