/**
 * MLPM: per-layer LPMs whose log-odds are combined by an L1-regularised logistic
 * regression (FISTA) that selects the layers that matter.
 */
import type { Features } from "../../core/activations";
import { axpy, bce, colMeans, colStds, dot, sigmoid, type Mat, type Vec } from "../../math/linalg";
import { Rng, stratifiedSplit } from "../../math/rng";
import type { LinearModel, LpmModel, MlpmModel, TrainSummary } from "../types";
import { scoreLinear } from "./logreg";
import { classRows, groupStats, lpmJSON, lpmFromJSON, lpmSolve, mergeGroups, scoreLpm } from "./lpm";
import { arr, checkShape, classWeights, countPositives, now, type ProbeMethodSpec } from "./shared";

export interface MlpmOptions {
  /** L1 penalty on the combiner weights (on standardized layer log-odds, mean loss). Default 1e-2. */
  l1?: number;
  shrinkage?: number | "ledoit-wolf";
  /** FISTA iterations for the combiner. Default 500. */
  maxIter?: number;
  /**
   * When set (0 < f < 1): hold-out mode, the per-layer LPMs are fit on a stratified
   * (1 - f) of the rows and the combiner on the out-of-sample log-odds of the other f.
   * Default: cross-fitting with `folds` folds (every row gets an out-of-fold score).
   */
  valFraction?: number;
  /** Folds for cross-fitting (default 2: each half scored by the LPM fit on the other half). */
  folds?: number;
  classBalanced?: boolean;
  seed?: number;
}

/** MLPM logit from one raw feature vector per layer (vectors of layers with zero weight are not read). */
export function scoreMlpm(model: MlpmModel, xs: Vec[]): number {
  const c = model.combiner;
  if (xs.length < model.layers.length) throw new RangeError(`scoreMlpm: ${xs.length} layer vectors for ${model.layers.length} layers`);
  let s = c.b;
  for (let l = 0; l < model.layers.length; l++) if (c.w[l] !== 0) s += c.w[l] * scoreLpm(model.layers[l], xs[l]);
  return s;
}

/** MLPM logits; perLayer[l] holds layer l's raw features for the same rows. */
export function mlpmLogits(model: MlpmModel, perLayer: Mat[]): Float32Array {
  const L = model.layers.length;
  if (perLayer.length < L) throw new RangeError(`mlpmLogits: ${perLayer.length} layers of features for ${L} layers`);
  const rows = perLayer[0].rows;
  const acc = new Float64Array(rows).fill(model.combiner.b);
  for (let l = 0; l < L; l++) {
    const c = model.combiner.w[l];
    if (c === 0) continue;
    const X = perLayer[l];
    if (X.rows !== rows) throw new RangeError(`mlpmLogits: layer ${l} has ${X.rows} rows, expected ${rows}`);
    const lm = model.layers[l];
    for (let i = 0; i < rows; i++) acc[i] += c * scoreLinear(lm, X.data, i * X.cols);
  }
  return Float32Array.from(acc);
}

/**
 * L1-regularised logistic regression by FISTA with backtracking and adaptive restart:
 * minimise sum_i c_i l_i / C + l1 ||w||_1 (bias unpenalised) on a small dense F (m x p).
 */
export function trainL1Logreg(
  F: Mat,
  y: Uint8Array,
  opts: { l1?: number; maxIter?: number; tol?: number; classBalanced?: boolean } = {},
): { model: LinearModel; iterations: number; loss: number } {
  const l1 = opts.l1 ?? 1e-2;
  const maxIter = opts.maxIter ?? 500;
  const tol = opts.tol ?? 1e-8;
  const { data, rows: m, cols: p } = F;
  const cw = classWeights(y, opts.classBalanced ?? true);
  let cs = 0;
  for (let i = 0; i < m; i++) cs += cw[i];
  for (let i = 0; i < m; i++) cw[i] /= cs;
  const P = p + 1; // last entry: bias
  const smooth = (th: Float64Array, grad: Float64Array | null): number => {
    let f = 0;
    if (grad) grad.fill(0);
    for (let i = 0; i < m; i++) {
      const z = th[p] + dot(data, th, p, i * p, 0);
      f += cw[i] * bce(z, y[i]);
      if (grad) {
        const r = cw[i] * (sigmoid(z) - (y[i] ? 1 : 0));
        axpy(r, data, grad, p, i * p, 0);
        grad[p] += r;
      }
    }
    return f;
  };
  const l1norm = (th: Float64Array): number => {
    let s = 0;
    for (let j = 0; j < p; j++) s += Math.abs(th[j]);
    return s;
  };
  let x = new Float64Array(P);
  let xNew = new Float64Array(P);
  const yv = new Float64Array(P);
  const g = new Float64Array(P);
  let t = 1;
  let Lc = 1;
  let Fx = smooth(x, null) + l1 * l1norm(x);
  let it = 0;
  for (; it < maxIter; it++) {
    const fy = smooth(yv, g);
    let fNew = 0;
    for (let bt = 0; bt < 60; bt++) {
      for (let j = 0; j < P; j++) {
        const v = yv[j] - g[j] / Lc;
        if (j === p) xNew[j] = v;
        else {
          const th = l1 / Lc;
          xNew[j] = v > th ? v - th : v < -th ? v + th : 0;
        }
      }
      fNew = smooth(xNew, null);
      let lin = 0;
      let sq = 0;
      for (let j = 0; j < P; j++) {
        const dlt = xNew[j] - yv[j];
        lin += g[j] * dlt;
        sq += dlt * dlt;
      }
      if (fNew <= fy + lin + 0.5 * Lc * sq + 1e-15) break;
      Lc *= 2;
    }
    const FNew = fNew + l1 * l1norm(xNew);
    let change = 0;
    for (let j = 0; j < P; j++) change = Math.max(change, Math.abs(xNew[j] - x[j]));
    if (FNew > Fx) {
      // adaptive restart: momentum made things worse
      t = 1;
      yv.set(x);
      if (change <= tol) break;
      continue;
    }
    const tNew = (1 + Math.sqrt(1 + 4 * t * t)) / 2;
    const mom = (t - 1) / tNew;
    for (let j = 0; j < P; j++) yv[j] = xNew[j] + mom * (xNew[j] - x[j]);
    const tmp = x;
    x = xNew;
    xNew = tmp;
    t = tNew;
    Fx = FNew;
    if (change <= tol) {
      it++;
      break;
    }
  }
  return { model: { w: Float32Array.from(x.subarray(0, p)), b: x[p] }, iterations: it, loss: Fx };
}

/**
 * Multi-layer latent prototype moderation. Per layer an LPM; the per-layer LPM
 * log-odds (one feature per layer) are combined by an L1-regularised logistic
 * regression (FISTA) that zeroes the layers that do not help.
 *
 * Out-of-sample combiner inputs: by default K-fold cross-fitting (K = `folds`, default
 * 2): the rows are split into K stratified folds; each fold's log-odds come from LPMs
 * fit on the other folds, so the combiner sees every row scored out of sample. With
 * `valFraction` instead, LPMs are fit on (1 - f) of the rows and the combiner on the
 * held-out f. Finally the LPMs are refit on all rows (these are the model's layers).
 * The per-fold/per-class scatter statistics are computed once per layer and merged
 * exactly, so cross-fitting costs about one scatter pass per layer plus K + 1
 * Cholesky solves. The combiner is fit on standardized log-odds (so that one L1
 * penalty suits all layers) and its weights are mapped back to raw log-odds.
 */
export function trainMlpm(perLayer: Features[], y: Uint8Array, opts: MlpmOptions = {}): { model: MlpmModel; summary: TrainSummary } {
  const L = perLayer.length;
  if (L === 0) throw new RangeError("trainMlpm: no layers");
  for (let l = 0; l < L; l++) checkShape(perLayer[l], y, `trainMlpm layer ${l}`);
  const trainer = new MlpmTrainer(y, L, opts);
  for (const X of perLayer) trainer.addLayer(X);
  return trainer.finish();
}

/**
 * trainMlpm one layer at a time, so that only one layer's features need be in memory: give the
 * layers in order to addLayer (each returns that layer's LPM, fit on all rows), then finish().
 * What it keeps between layers is rows x layers doubles (the out-of-sample log-odds). The result
 * equals trainMlpm's on the same layers.
 */
export class MlpmTrainer {
  private readonly fold: Int32Array;
  private readonly scoredFolds: number[];
  private readonly groupRows: Uint32Array[][] = []; // [fold][class]
  private readonly scoredRows: number[] = [];
  private readonly posInScored: Int32Array;
  private readonly Fdata: Float64Array;
  private readonly layers: LpmModel[] = [];
  private readonly shrinkages: number[] = [];
  private readonly K: number;
  private readonly shrink: number | "ledoit-wolf";
  private seconds = 0;

  constructor(
    private readonly y: Uint8Array,
    private readonly L: number,
    private readonly opts: MlpmOptions = {},
  ) {
    const t0 = now();
    if (!Number.isSafeInteger(L) || L < 1) throw new RangeError("trainMlpm: no layers");
    const n = y.length;
    this.shrink = opts.shrinkage ?? "ledoit-wolf";
    const seed = opts.seed ?? 1;
    // fold assignment (stratified, seeded)
    const fold = (this.fold = new Int32Array(n));
    if (opts.valFraction !== undefined) {
      const f = opts.valFraction;
      if (!(f > 0 && f < 1)) throw new RangeError(`trainMlpm: valFraction must be in (0, 1), got ${f}`);
      const sp = stratifiedSplit(y, f, seed);
      for (const i of sp.second) fold[i] = 1;
      this.K = 2;
      this.scoredFolds = [1];
    } else {
      this.K = Math.max(2, Math.floor(opts.folds ?? 2));
      const rng = new Rng(seed);
      for (const c of [0, 1]) {
        const idx: number[] = [];
        for (let i = 0; i < n; i++) if ((y[i] ? 1 : 0) === c) idx.push(i);
        rng.shuffle(idx);
        idx.forEach((i, t) => (fold[i] = t % this.K));
      }
      this.scoredFolds = Array.from({ length: this.K }, (_, k) => k);
    }
    for (let k = 0; k < this.K; k++) {
      const rows: number[] = [];
      for (let i = 0; i < n; i++) if (fold[i] === k) rows.push(i);
      this.groupRows.push(classRows(y, rows));
      if (this.groupRows[k][0].length === 0 || this.groupRows[k][1].length === 0) throw new RangeError(`trainMlpm: fold ${k} lacks one class (too few rows)`);
    }
    for (let i = 0; i < n; i++) if (this.scoredFolds.includes(fold[i])) this.scoredRows.push(i);
    this.posInScored = new Int32Array(n).fill(-1);
    this.scoredRows.forEach((i, t) => (this.posInScored[i] = t));
    this.Fdata = new Float64Array(this.scoredRows.length * L);
    this.seconds += now() - t0;
  }

  /** Layer number layers-so-far: its out-of-fold log-odds, and its LPM on all rows (returned). */
  addLayer(X: Features): LpmModel {
    const t0 = now();
    const l = this.layers.length;
    if (l >= this.L) throw new RangeError(`trainMlpm: more than the ${this.L} layers announced`);
    checkShape(X, this.y, `trainMlpm layer ${l}`);
    const { L, Fdata, posInScored, groupRows, shrink } = this;
    const d = X.cols;
    const stats = groupRows.map((g) => [groupStats(X, g[0]), groupStats(X, g[1])]);
    for (const k of this.scoredFolds) {
      const other = stats.filter((_, kk) => kk !== k);
      const sol = lpmSolve(
        mergeGroups(other.map((s) => s[0]), d),
        mergeGroups(other.map((s) => s[1]), d),
        d,
        shrink,
        false,
      );
      for (const rows of groupRows[k])
        for (const i of rows) Fdata[posInScored[i] * L + l] = sol.b + dot(sol.w, X.data, d, 0, i * d);
    }
    const full = lpmSolve(
      mergeGroups(stats.map((s) => s[0]), d),
      mergeGroups(stats.map((s) => s[1]), d),
      d,
      shrink,
      false,
    );
    this.layers.push(full.model);
    this.shrinkages.push(full.model.shrinkage);
    this.seconds += now() - t0;
    return full.model;
  }

  /** Fits the combiner once every layer was added. */
  finish(): { model: MlpmModel; summary: TrainSummary } {
    const t0 = now();
    const { L, Fdata, y, opts, scoredRows, layers } = this;
    if (layers.length !== L) throw new RangeError(`trainMlpm: ${layers.length} of ${L} layers were added`);
    const n = y.length;
    const m = scoredRows.length;
    // standardize the out-of-sample log-odds, fit the L1 combiner, map back
    const F: Mat = { data: Fdata, rows: m, cols: L };
    const fMean = colMeans(F);
    const fStd = colStds(F, fMean);
    const Fs = new Float64Array(m * L);
    for (let i = 0; i < m; i++)
      for (let l = 0; l < L; l++) Fs[i * L + l] = (Fdata[i * L + l] - fMean[l]) / (fStd[l] > 1e-12 ? fStd[l] : 1);
    const yS = new Uint8Array(m);
    scoredRows.forEach((i, t) => (yS[t] = y[i]));
    const comb = trainL1Logreg({ data: Fs, rows: m, cols: L }, yS, {
      l1: opts.l1 ?? 1e-2,
      maxIter: opts.maxIter ?? 500,
      classBalanced: opts.classBalanced ?? true,
    });
    const cw = new Float32Array(L);
    let cb = comb.model.b;
    for (let l = 0; l < L; l++) {
      const s = fStd[l] > 1e-12 ? fStd[l] : 1;
      const wl = comb.model.w[l] / s;
      cw[l] = wl;
      cb -= wl * fMean[l];
    }
    const selected: number[] = [];
    for (let l = 0; l < L; l++) if (cw[l] !== 0) selected.push(l);
    this.seconds += now() - t0;
    return {
      model: { layers, combiner: { w: cw, b: cb } },
      summary: {
        method: "mlpm",
        rows: n,
        positives: countPositives(y),
        iterations: comb.iterations,
        finalLoss: comb.loss,
        selectedLayers: selected,
        layerWeights: Array.from(cw),
        shrinkages: this.shrinkages,
        combinerRows: m,
        crossFit: opts.valFraction !== undefined ? `holdout ${opts.valFraction}` : `${this.K}-fold`,
        seconds: this.seconds,
      },
    };
  }
}

export const mlpm: ProbeMethodSpec<MlpmModel> = {
  name: "mlpm",
  multiLayer: true,
  train(features, y, options) {
    const r = trainMlpm(features, y, options);
    return { weights: r.model, summary: r.summary };
  },
  scorer: (m) => (v) => scoreMlpm(m, v as Float32Array[]),
  toJSON: (m) => ({ layers: m.layers.map(lpmJSON), combiner: { w: arr(m.combiner.w), b: m.combiner.b } }),
  fromJSON(r, n, layers) {
    const perLayer = r.list("layers", layers, `one LPM per layer (${layers})`).map((x) => lpmFromJSON(x, n));
    const c = r.obj("combiner");
    return { layers: perLayer, combiner: { w: c.vec("w", layers), b: c.num("b") } };
  },
};
