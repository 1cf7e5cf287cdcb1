/**
 * LPM (latent prototype moderation, training-free): class means and a shared
 * Ledoit-Wolf-shrunk covariance on raw features; the Mahalanobis rule is linear in
 * closed form. The per-fold statistics merge exactly (used by MLPM's cross-fitting).
 */
import type { Features } from "../../core/activations";
import { axpy, choleskyInPlace, choleskySolve, colMeans, dot, dotF32, scatter, type Mat, type Vec } from "../../math/linalg";
import type { LpmModel, TrainSummary } from "../types";
import { scoreLinear, linearLogits } from "./logreg";
import { arr, checkShape, now, type ProbeMethodSpec, type WeightReader } from "./shared";

export interface LpmOptions {
  /** Shrinkage weight a in [0, 1] towards (tr(S)/d) I, or "ledoit-wolf" (default). */
  shrinkage?: number | "ledoit-wolf";
}

/**
 * Sufficient statistics of one group of rows (one class within one fold), enough to
 * merge groups exactly: count, mean, scatter around the group mean, and the two
 * fourth-moment terms the Ledoit-Wolf estimate needs (sum ||u||^4 and sum ||u||^2 u
 * with u = x - mean).
 */
export interface GroupStats {
  n: number;
  mean: Float64Array;
  S: Float64Array;
  q4: number;
  v: Float64Array;
}

export function groupStats(X: Features, rows: Uint32Array): GroupStats {
  const d = X.cols;
  const mean = colMeans(X, rows);
  const S = rows.length > 0 ? scatter(X, rows, mean) : new Float64Array(d * d);
  const v = new Float64Array(d);
  let q4 = 0;
  const u = new Float64Array(d);
  for (let k = 0; k < rows.length; k++) {
    const off = rows[k] * d;
    let a = 0;
    for (let j = 0; j < d; j++) {
      const t = X.data[off + j] - mean[j];
      u[j] = t;
      a += t * t;
    }
    q4 += a * a;
    axpy(a, u, v);
  }
  return { n: rows.length, mean, S, q4, v };
}

/** Pooled statistics of one class from several groups: mean, scatter about it, sum ||x - mean||^4. */
export interface ClassStats {
  n: number;
  mean: Float64Array;
  S: Float64Array;
  q4: number;
}

export function mergeGroups(groups: GroupStats[], d: number): ClassStats {
  const live = groups.filter((g) => g.n > 0);
  if (live.length === 1) return { n: live[0].n, mean: live[0].mean, S: live[0].S, q4: live[0].q4 };
  let n = 0;
  const mean = new Float64Array(d);
  for (const g of live) {
    n += g.n;
    axpy(g.n, g.mean, mean);
  }
  if (n > 0) for (let j = 0; j < d; j++) mean[j] /= n;
  const S = new Float64Array(d * d);
  let q4 = 0;
  const delta = new Float64Array(d);
  for (const g of live) {
    for (let j = 0; j < d; j++) delta[j] = g.mean[j] - mean[j];
    // S += S_g + n_g delta delta^T
    for (let i = 0; i < d; i++) {
      const ri = i * d;
      const a = g.n * delta[i];
      for (let j = 0; j < d; j++) S[ri + j] += g.S[ri + j] + a * delta[j];
    }
    // sum ||u + delta||^4 = q4 + 4 delta^T S_g delta + n ||delta||^4 + 4 delta . v + 2 ||delta||^2 tr(S_g)
    let dSd = 0;
    let tr = 0;
    for (let i = 0; i < d; i++) {
      dSd += delta[i] * dot(g.S, delta, d, i * d, 0);
      tr += g.S[i * d + i];
    }
    const dd = dot(delta, delta);
    q4 += g.q4 + 4 * dSd + g.n * dd * dd + 4 * dot(delta, g.v) + 2 * dd * tr;
  }
  return { n, mean, S, q4 };
}

export interface LpmSolution {
  model: LpmModel;
  sigma: Float64Array;
  w: Float64Array;
  b: number;
  jitter: number;
}

/**
 * Shared covariance from the two classes' statistics, shrinkage, Cholesky solve.
 * S = (scatter_0 + scatter_1) / (n - 2); Sigma = (1 - a) S + a (tr(S)/d) I; Ledoit-Wolf
 * a from the pooled within-class residuals (formula of Ledoit & Wolf 2004 with the
 * scaled-identity target, as in scikit-learn).
 */
export function lpmSolve(c0: ClassStats, c1: ClassStats, d: number, shrinkageOpt: number | "ledoit-wolf", keepSigma: boolean): LpmSolution {
  const N = c0.n + c1.n;
  const Ssum = new Float64Array(d * d);
  for (let k = 0; k < Ssum.length; k++) Ssum[k] = c0.S[k] + c1.S[k];
  let trSum = 0;
  let fro = 0;
  for (let i = 0; i < d; i++) trSum += Ssum[i * d + i];
  for (let k = 0; k < Ssum.length; k++) fro += Ssum[k] * Ssum[k];
  let a: number;
  if (shrinkageOpt === "ledoit-wolf") {
    // S_n = Ssum / N (maximum-likelihood scale; a is scale-free)
    const trSn = trSum / N;
    const muT = trSn / d;
    const fro2 = fro / (N * N);
    const delta = (fro2 - d * muT * muT) / d;
    let beta = ((c0.q4 + c1.q4) / N - fro2) / (N * d);
    beta = Math.min(Math.max(beta, 0), delta);
    a = delta > 0 ? beta / delta : 1;
  } else {
    a = shrinkageOpt;
  }
  if (!(a >= 0 && a <= 1)) throw new RangeError(`LPM shrinkage must be in [0, 1], got ${a}`);
  const denom = N > 2 ? N - 2 : Math.max(N, 1);
  const target = trSum / denom / d;
  const sigma = new Float64Array(d * d);
  for (let k = 0; k < sigma.length; k++) sigma[k] = ((1 - a) * Ssum[k]) / denom;
  for (let i = 0; i < d; i++) sigma[i * d + i] += a * target;

  const diff = new Float64Array(d);
  for (let j = 0; j < d; j++) diff[j] = c1.mean[j] - c0.mean[j];
  // Cholesky; if Sigma is numerically singular (a = 0 with n <= d, constant features), add a growing ridge
  let jitter = 0;
  let L = sigma.slice();
  const scale = target > 0 ? target : 1;
  for (let attempt = 0; !choleskyInPlace(L, d); attempt++) {
    if (attempt >= 10) throw new Error("LPM: covariance is not positive definite even with a ridge");
    jitter = scale * Math.pow(10, attempt - 10);
    L = sigma.slice();
    for (let i = 0; i < d; i++) L[i * d + i] += jitter;
  }
  if (jitter > 0 && keepSigma) for (let i = 0; i < d; i++) sigma[i * d + i] += jitter;
  const w = choleskySolve(L, d, diff);
  let b = 0;
  for (let j = 0; j < d; j++) b -= 0.5 * w[j] * (c1.mean[j] + c0.mean[j]);
  const model: LpmModel = {
    w: Float32Array.from(w),
    b,
    mu0: Float32Array.from(c0.mean),
    mu1: Float32Array.from(c1.mean),
    shrinkage: a,
  };
  return { model, sigma, w, b, jitter };
}

export function classRows(y: Uint8Array, rows?: ArrayLike<number>): [Uint32Array, Uint32Array] {
  const r0: number[] = [];
  const r1: number[] = [];
  const n = rows ? rows.length : y.length;
  for (let k = 0; k < n; k++) {
    const i = rows ? rows[k] : k;
    (y[i] ? r1 : r0).push(i);
  }
  return [Uint32Array.from(r0), Uint32Array.from(r1)];
}

/**
 * LPM fit that also returns the shrunk covariance Sigma (d x d row-major Float64), the
 * class means and the Float64 weights — for checking the closed form against explicit
 * Mahalanobis distances.
 */
export function lpmCovariance(
  X: Features,
  y: Uint8Array,
  opts: LpmOptions = {},
): { model: LpmModel; sigma: Float64Array; mu0: Float64Array; mu1: Float64Array; w: Float64Array; b: number; shrinkage: number; jitter: number } {
  checkShape(X, y, "lpm");
  const [r0, r1] = classRows(y);
  if (r0.length === 0 || r1.length === 0) throw new RangeError("LPM needs rows of both classes");
  const d = X.cols;
  const c0 = mergeGroups([groupStats(X, r0)], d);
  const c1 = mergeGroups([groupStats(X, r1)], d);
  const sol = lpmSolve(c0, c1, d, opts.shrinkage ?? "ledoit-wolf", true);
  return { model: sol.model, sigma: sol.sigma, mu0: c0.mean, mu1: c1.mean, w: sol.w, b: sol.b, shrinkage: sol.model.shrinkage, jitter: sol.jitter };
}

/**
 * Latent prototype moderation (training-free): class means mu0 (safe), mu1 (unsafe)
 * and the pooled within-class covariance, shrunk (Ledoit-Wolf by default). Scores are
 * P(unsafe | x) = softmax over -d_c(x)/2 of the Mahalanobis distances, i.e. the linear
 * rule logit = w·x + b with w = Sigma^-1 (mu1 - mu0), b = -1/2 (mu1 + mu0)·w, on raw
 * (not standardized) features.
 */
export function trainLpm(X: Features, y: Uint8Array, opts: LpmOptions = {}): { model: LpmModel; summary: TrainSummary } {
  const t0 = now();
  checkShape(X, y, "trainLpm");
  const [r0, r1] = classRows(y);
  if (r0.length === 0 || r1.length === 0) throw new RangeError("trainLpm needs rows of both classes");
  const d = X.cols;
  const c0 = mergeGroups([groupStats(X, r0)], d);
  const c1 = mergeGroups([groupStats(X, r1)], d);
  const sol = lpmSolve(c0, c1, d, opts.shrinkage ?? "ledoit-wolf", false);
  return {
    model: sol.model,
    summary: {
      method: "lpm",
      rows: X.rows,
      positives: r1.length,
      shrinkage: sol.model.shrinkage,
      jitter: sol.jitter,
      seconds: now() - t0,
    },
  };
}

/** LPM logit (log-odds unsafe vs safe) of a raw feature vector. */
export function scoreLpm(model: LpmModel, x: Vec, offset = 0): number {
  return scoreLinear(model, x, offset);
}

/** LPM logits for every row of raw features. */
export function lpmLogits(model: LpmModel, X: Mat): Float32Array {
  return linearLogits(model, X);
}

/** An LPM as a probe file stores it. */
export function lpmJSON(m: LpmModel): Record<string, unknown> {
  return { w: arr(m.w), b: m.b, mu0: arr(m.mu0), mu1: arr(m.mu1), shrinkage: m.shrinkage };
}

/** Reads an LPM of width n. */
export function lpmFromJSON(r: WeightReader, n: number): LpmModel {
  return { w: r.vec("w", n), b: r.num("b"), mu0: r.vec("mu0", n), mu1: r.vec("mu1", n), shrinkage: r.num("shrinkage") };
}

export const lpm: ProbeMethodSpec<LpmModel> = {
  name: "lpm",
  multiLayer: false,
  train(features, y, options) {
    const r = trainLpm(features[0], y, options);
    return { weights: r.model, summary: r.summary };
  },
  linear: (m) => ({ w: Float32Array.from(m.w), b: m.b }),
  scorer(m, n) {
    const { w, b } = lpm.linear!(m, n);
    return (v) => dotF32(w, 0, v[0], n) + b;
  },
  toJSON: lpmJSON,
  fromJSON: lpmFromJSON,
};
