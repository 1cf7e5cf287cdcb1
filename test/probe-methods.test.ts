import { inverse, Matrix } from "ml-matrix";

import { colMeans, getScatterKernel, scatter, scatterJs, setScatterKernel, sigmoid } from "../src/math/linalg";
import { Rng } from "../src/math/rng";
import {
  classWeights,
  fitStandardizer,
  linearLogits,
  logregLossAndGrad,
  lpmCovariance,
  lpmLogits,
  mlpLogits,
  mlpLossAndGrad,
  mlpmLogits,
  MlpParams,
  scoreLinear,
  scoreLpm,
  scoreMlp,
  scoreMlpm,
  standardize,
  trainLogreg,
  trainLpm,
  trainMlp,
  trainMlpm,
} from "../src/probe/methods";
import type { Features } from "../src/probe/types";
import { scatterNaive } from "./helpers";

/**
 * n rows of d features: isotropic noise with per-column scales and offsets, plus a
 * few correlated noise directions, plus (for unsafe rows) delta along a random unit
 * vector u. delta = 0 gives a pure-noise "layer".
 */
function planted(n: number, d: number, delta: number, y: Uint8Array, seed: number): Features {
  const rng = new Rng(seed);
  const u = new Float64Array(d);
  let nn = 0;
  for (let j = 0; j < d; j++) {
    u[j] = rng.normal();
    nn += u[j] * u[j];
  }
  for (let j = 0; j < d; j++) u[j] /= Math.sqrt(nn);
  const dirs = Array.from({ length: 3 }, () => Float64Array.from({ length: d }, () => rng.normal() * 0.6));
  const scale = Float64Array.from({ length: d }, (_, j) => 0.5 + (j % 3) * 0.5);
  const offset = Float64Array.from({ length: d }, (_, j) => (j % 5) - 2);
  const X = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const off = i * d;
    for (let j = 0; j < d; j++) X[off + j] = offset[j] + rng.normal();
    for (const a of dirs) {
      const c = rng.normal();
      for (let j = 0; j < d; j++) X[off + j] += c * a[j];
    }
    if (y[i]) for (let j = 0; j < d; j++) X[off + j] += delta * u[j];
    for (let j = 0; j < d; j++) X[off + j] *= scale[j];
  }
  return { data: X, rows: n, cols: d };
}

function labels(n: number, seed: number, p = 0.4): Uint8Array {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: n }, () => (rng.next() < p ? 1 : 0));
}

function rowsOf(X: Features, from: number, to: number): Features {
  return { data: X.data.slice(from * X.cols, to * X.cols), rows: to - from, cols: X.cols };
}

function accuracy(logits: Float32Array, y: Uint8Array): number {
  let ok = 0;
  for (let i = 0; i < y.length; i++) if ((logits[i] >= 0 ? 1 : 0) === y[i]) ok++;
  return ok / y.length;
}

const N = 2000;
const NTRAIN = 1500;
const D = 64;
const y = labels(N, 11);
const X = planted(N, D, 5, y, 12);
const Xtr = rowsOf(X, 0, NTRAIN);
const Xte = rowsOf(X, NTRAIN, N);
const ytr = y.slice(0, NTRAIN);
const yte = y.slice(NTRAIN);

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let k = 0; k < a.length; k++) {
    num += (a[k] - b[k]) ** 2;
    den = Math.max(den, a[k] ** 2, b[k] ** 2);
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den) * Math.sqrt(a.length), 1e-12);
}

describe("linalg", () => {
  test("JS scatter equals a naive triple loop (odd sizes, row subset, full symmetric)", () => {
    const rng = new Rng(3);
    const n = 137;
    const d = 37;
    const Xs: Features = { data: Float32Array.from({ length: n * d }, () => rng.normal() * 3 + 1), rows: n, cols: d };
    const center = Float64Array.from({ length: d }, () => rng.normal());
    const subset = Uint32Array.from([5, 0, 136, 17, 17, 99, 42]);
    for (const rows of [null, subset]) {
      const ref = scatterNaive(Xs, rows, center);
      const got = scatterJs(Xs.data, n, d, center, rows);
      expect(got.length).toBe(d * d);
      let maxDiff = 0;
      let maxAbs = 0;
      for (let k = 0; k < ref.length; k++) {
        maxDiff = Math.max(maxDiff, Math.abs(ref[k] - got[k]));
        maxAbs = Math.max(maxAbs, Math.abs(ref[k]));
      }
      expect(maxDiff).toBeLessThan(1e-10 * maxAbs);
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) expect(got[i * d + j]).toBe(got[j * d + i]);
    }
    // d a multiple of 4, more than one panel
    const X2: Features = { data: Float32Array.from({ length: 200 * 16 }, () => rng.normal()), rows: 200, cols: 16 };
    const c2 = colMeans(X2);
    const r2 = scatterNaive(X2, null, c2);
    const g2 = scatter(X2, undefined, c2);
    for (let k = 0; k < r2.length; k++) expect(Math.abs(g2[k] - r2[k])).toBeLessThan(1e-9);
  });

  test("a plugged scatter kernel is used, and null restores the JS one", () => {
    const Xs: Features = { data: Float32Array.from({ length: 30 }, (_, i) => i), rows: 10, cols: 3 };
    const center = new Float64Array(3);
    const calls: Array<[number, number, Uint32Array | null]> = [];
    const before = getScatterKernel();
    try {
      setScatterKernel((data, rows, cols, c, idx) => {
        calls.push([rows, cols, idx]);
        return scatterJs(data, rows, cols, c, idx);
      });
      const rows = Uint32Array.from([1, 3]);
      const S = scatter(Xs, rows, center);
      expect(calls).toEqual([[10, 3, rows]]);
      expect(Array.from(S)).toEqual(Array.from(scatterNaive(Xs, rows, center)));
      setScatterKernel(null);
      scatter(Xs, rows, center);
      expect(calls.length).toBe(1);
    } finally {
      setScatterKernel(before);
    }
  });
});

describe("standardizer", () => {
  test("round trip, zero mean / unit std, constant columns get std 1", () => {
    const rng = new Rng(5);
    const n = 300;
    const d = 7;
    const data = new Float32Array(n * d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) data[i * d + j] = j === 3 ? 42 : 10 * j + (j + 1) * rng.normal();
    const Xs: Features = { data, rows: n, cols: d };
    const s = fitStandardizer(Xs);
    expect(s.std[3]).toBe(1);
    expect(s.mean[3]).toBeCloseTo(42, 5);
    const Z = standardize(Xs, s);
    expect(Z.data).not.toBe(Xs.data);
    const zs = fitStandardizer(Z);
    for (let j = 0; j < d; j++) {
      expect(Math.abs(zs.mean[j])).toBeLessThan(1e-5);
      if (j !== 3) expect(zs.std[j]).toBeCloseTo(1, 5);
    }
    for (let k = 0; k < data.length; k++) {
      const j = k % d;
      expect(Math.abs(Z.data[k] * s.std[j] + s.mean[j] - data[k])).toBeLessThan(1e-4 * (1 + Math.abs(data[k])));
    }
  });
});

describe("logistic regression", () => {
  test("gradient matches central differences", () => {
    const rng = new Rng(8);
    const n = 40;
    const d = 6;
    const Z = { data: Float64Array.from({ length: n * d }, () => rng.normal()), rows: n, cols: d };
    const yy = Uint8Array.from({ length: n }, () => (rng.next() < 0.5 ? 1 : 0));
    const wts = Float64Array.from({ length: n }, () => 0.5 + rng.next());
    const w = Float64Array.from({ length: d }, () => rng.normal());
    const b = 0.3;
    const l2 = 0.05;
    const { gradW, gradB } = logregLossAndGrad(w, b, Z, yy, wts, l2);
    const eps = 1e-6;
    const num = new Float64Array(d);
    for (let j = 0; j < d; j++) {
      const wp = w.slice();
      const wm = w.slice();
      wp[j] += eps;
      wm[j] -= eps;
      num[j] = (logregLossAndGrad(wp, b, Z, yy, wts, l2).loss - logregLossAndGrad(wm, b, Z, yy, wts, l2).loss) / (2 * eps);
    }
    expect(relErr(num, gradW)).toBeLessThan(1e-6);
    const numB = (logregLossAndGrad(w, b + eps, Z, yy, wts, l2).loss - logregLossAndGrad(w, b - eps, Z, yy, wts, l2).loss) / (2 * eps);
    expect(Math.abs(numB - gradB)).toBeLessThan(1e-6 * Math.max(1, Math.abs(gradB)));
  });

  test("reaches the optimum and >= 0.97 held-out accuracy", () => {
    const s = fitStandardizer(Xtr);
    const Ztr = standardize(Xtr, s);
    const { model, summary } = trainLogreg(Ztr, ytr);
    expect(summary.method).toBe("logreg");
    expect(summary.converged).toBe(true);
    expect(summary.rows).toBe(NTRAIN);
    // gradient at the returned (Float32) weights is ~0
    const g = logregLossAndGrad(model.w, model.b, Ztr, ytr, classWeights(ytr), 1e-2);
    let gmax = Math.abs(g.gradB);
    for (const v of g.gradW) gmax = Math.max(gmax, Math.abs(v));
    expect(gmax).toBeLessThan(1e-4);
    const Zte = standardize(Xte, s);
    const lg = linearLogits(model, Zte);
    expect(accuracy(lg, yte)).toBeGreaterThanOrEqual(0.97);
    expect(lg[3]).toBeCloseTo(scoreLinear(model, Zte.data, 3 * D), 4);
  });
});

describe("MLP", () => {
  test("gradient of every parameter block matches central differences (Float64)", () => {
    const rng = new Rng(9);
    const n = 30;
    const d = 6;
    const H = 5;
    const Z = { data: Float64Array.from({ length: n * d }, () => rng.normal()), rows: n, cols: d };
    const yy = Uint8Array.from({ length: n }, () => (rng.next() < 0.5 ? 1 : 0));
    const wts = Float64Array.from({ length: n }, () => 0.5 + rng.next());
    const model: MlpParams = {
      hidden: H,
      w1: Float64Array.from({ length: H * d }, () => rng.normal() * 0.7),
      b1: Float64Array.from({ length: H }, () => rng.normal() * 0.3),
      w2: Float64Array.from({ length: H }, () => rng.normal()),
      b2: -0.2,
    };
    const l2 = 0.03;
    const { grad } = mlpLossAndGrad(model, Z, yy, wts, l2);
    const eps = 1e-6;
    const lossWith = (m: MlpParams) => mlpLossAndGrad(m, Z, yy, wts, l2).loss;
    for (const block of ["w1", "b1", "w2"] as const) {
      const p = model[block] as Float64Array;
      const num = new Float64Array(p.length);
      for (let k = 0; k < p.length; k++) {
        const plus = p.slice();
        const minus = p.slice();
        plus[k] += eps;
        minus[k] -= eps;
        num[k] = (lossWith({ ...model, [block]: plus }) - lossWith({ ...model, [block]: minus })) / (2 * eps);
      }
      expect(relErr(num, grad[block])).toBeLessThan(1e-3);
    }
    const numB2 = (lossWith({ ...model, b2: model.b2 + eps }) - lossWith({ ...model, b2: model.b2 - eps })) / (2 * eps);
    expect(Math.abs(numB2 - grad.b2) / Math.max(1e-8, Math.abs(numB2))).toBeLessThan(1e-3);
  });

  test("trains to >= 0.97 held-out accuracy with early stopping", () => {
    const s = fitStandardizer(Xtr);
    const { model, summary } = trainMlp(standardize(Xtr, s), ytr, { hidden: 16 });
    expect(summary.method).toBe("mlp");
    expect(summary.valRows).toBe(Math.round(0.15 * (NTRAIN - summary.positives)) + Math.round(0.15 * summary.positives));
    expect(summary.iterations).toBeGreaterThanOrEqual(summary.bestEpoch as number);
    const Zte = standardize(Xte, s);
    const lg = mlpLogits(model, Zte);
    expect(accuracy(lg, yte)).toBeGreaterThanOrEqual(0.97);
    expect(lg[7]).toBeCloseTo(scoreMlp(model, Zte.data, 7 * D), 4);
  });

  test("is deterministic for a seed", () => {
    const Z = standardize(rowsOf(Xtr, 0, 400), fitStandardizer(rowsOf(Xtr, 0, 400)));
    const yy = ytr.slice(0, 400);
    const o = { hidden: 8, epochs: 5 };
    const a = trainMlp(Z, yy, { ...o, seed: 5 }).model;
    const b = trainMlp(Z, yy, { ...o, seed: 5 }).model;
    const c = trainMlp(Z, yy, { ...o, seed: 6 }).model;
    expect(Array.from(a.w1)).toEqual(Array.from(b.w1));
    expect(Array.from(a.w2)).toEqual(Array.from(b.w2));
    expect(a.b2).toBe(b.b2);
    expect(Array.from(a.w1)).not.toEqual(Array.from(c.w1));
  });
});

describe("LPM", () => {
  test("closed form equals softmax over -Mahalanobis/2 with an explicitly inverted Sigma", () => {
    const fit = lpmCovariance(Xtr, ytr);
    const { model, sigma } = fit;
    expect(model.shrinkage).toBeGreaterThan(0);
    expect(model.shrinkage).toBeLessThan(1);
    // class means
    const r1 = Uint32Array.from(Array.from(ytr.keys()).filter((i) => ytr[i] === 1));
    const m1 = colMeans(Xtr, r1);
    for (let j = 0; j < D; j++) expect(fit.mu1[j]).toBeCloseTo(m1[j], 10);
    const inv = inverse(new Matrix(Array.from({ length: D }, (_, i) => Array.from(sigma.subarray(i * D, (i + 1) * D)))));
    const maha = (x: Float32Array, mu: Float64Array): number => {
      let s = 0;
      for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) s += (x[i] - mu[i]) * inv.get(i, j) * (x[j] - mu[j]);
      return s;
    };
    for (const row of [0, 1, 2, 3, 4, 250, 499]) {
      const x = Xte.data.subarray(row * D, (row + 1) * D);
      const d0 = maha(x, fit.mu0);
      const d1 = maha(x, fit.mu1);
      const pSoftmax = Math.exp(-d1 / 2) / (Math.exp(-d0 / 2) + Math.exp(-d1 / 2));
      expect(Math.abs(sigmoid(scoreLpm(model, x)) - pSoftmax)).toBeLessThan(1e-6);
      // Float64 weights: logit = (d0 - d1) / 2
      let lg = fit.b;
      for (let j = 0; j < D; j++) lg += fit.w[j] * x[j];
      expect(Math.abs(lg - (d0 - d1) / 2)).toBeLessThan(1e-8 * Math.max(1, Math.abs(d0)));
    }
  });

  test("Ledoit-Wolf shrinkage equals the textbook formula on the pooled residuals", () => {
    const n = 300;
    const d = 10;
    const yy = labels(n, 21);
    const Xs = planted(n, d, 2, yy, 22);
    const means = [0, 1].map((c) => colMeans(Xs, Uint32Array.from(Array.from(yy.keys()).filter((i) => yy[i] === c))));
    const R = Array.from({ length: n }, (_, i) => Array.from({ length: d }, (_, j) => Xs.data[i * d + j] - means[yy[i]][j]));
    const Sn = Array.from({ length: d }, (_, a) => Array.from({ length: d }, (_, b) => R.reduce((s, r) => s + r[a] * r[b], 0) / n));
    const mu = Sn.reduce((s, r, i) => s + r[i], 0) / d;
    let delta = 0;
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) delta += (Sn[a][b] - (a === b ? mu : 0)) ** 2;
    delta /= d;
    let beta = 0;
    for (const r of R) for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) beta += (r[a] * r[b] - Sn[a][b]) ** 2;
    beta /= n * n * d;
    const expected = Math.min(beta, delta) / delta;
    const { model } = trainLpm(Xs, yy);
    expect(model.shrinkage).toBeCloseTo(expected, 10);
    // fixed shrinkage is taken as given
    expect(trainLpm(Xs, yy, { shrinkage: 0.3 }).model.shrinkage).toBe(0.3);
  });

  test(">= 0.97 held-out accuracy", () => {
    const { model, summary } = trainLpm(Xtr, ytr);
    expect(summary.method).toBe("lpm");
    const lg = lpmLogits(model, Xte);
    expect(accuracy(lg, yte)).toBeGreaterThanOrEqual(0.97);
  });
});

describe("MLPM", () => {
  const L = 5;
  const SIGNAL = 2;
  const d = 24;
  const layers = Array.from({ length: L }, (_, l) => planted(N, d, l === SIGNAL ? 5 : 0, y, 100 + l));
  const tr = layers.map((X) => rowsOf(X, 0, NTRAIN));
  const te = layers.map((X) => rowsOf(X, NTRAIN, N));

  test("L1 combiner keeps the signal layer, zeroes most noise layers, >= 0.97 held-out accuracy", () => {
    const { model, summary } = trainMlpm(tr, ytr);
    expect(summary.method).toBe("mlpm");
    const sel = summary.selectedLayers as number[];
    expect(sel).toContain(SIGNAL);
    expect(sel.filter((l) => l !== SIGNAL).length).toBeLessThanOrEqual(1);
    expect(model.combiner.w[SIGNAL]).toBeGreaterThan(0);
    const lg = mlpmLogits(model, te);
    expect(accuracy(lg, yte)).toBeGreaterThanOrEqual(0.97);
    const xs = te.map((X) => X.data.subarray(9 * d, 10 * d));
    expect(lg[9]).toBeCloseTo(scoreMlpm(model, xs), 4);
  });

  test("refit layers (merged fold statistics) equal a direct LPM fit; hold-out mode works; deterministic", () => {
    const a = trainMlpm(tr, ytr, { folds: 3 });
    const direct = trainLpm(tr[SIGNAL], ytr).model;
    const got = a.model.layers[SIGNAL];
    expect(got.shrinkage).toBeCloseTo(direct.shrinkage, 9);
    expect(relErr(got.w, direct.w)).toBeLessThan(1e-5);
    expect(got.b).toBeCloseTo(direct.b, 4);
    const b = trainMlpm(tr, ytr, { folds: 3 });
    expect(Array.from(b.model.combiner.w)).toEqual(Array.from(a.model.combiner.w));
    const h = trainMlpm(tr, ytr, { valFraction: 0.3 });
    expect(h.summary.combinerRows).toBeGreaterThan(400);
    expect(h.summary.combinerRows).toBeLessThan(500);
    expect(h.summary.selectedLayers).toContain(SIGNAL);
    expect(accuracy(mlpmLogits(h.model, te), yte)).toBeGreaterThanOrEqual(0.97);
  });
});
