/**
 * Linear probe: L2-regularised logistic regression on standardized features,
 * minimised with L-BFGS (the paper's linear probe). Optimisation in double
 * precision; the model is stored in Float32.
 */
import type { Features } from "../../core/activations";
import { axpy, bce, dot, dotF32, sigmoid, type Mat, type Vec } from "../../math/linalg";
import { LbfgsHistory } from "../../math/optim";
import type { LinearModel, Standardizer, TrainSummary } from "../types";
import { arr, checkFolded, checkShape, classWeights, countPositives, fitStandardizer, now, type ProbeMethodSpec, standardize, standardizerJSON } from "./shared";

export interface LogregOptions {
  /** L2 penalty l2/2 ||w||^2 added to the (weighted) mean loss; the bias is not penalised. Default 1e-2. */
  l2?: number;
  /** Class-balanced row weights n / (2 n_c). Default true. */
  classBalanced?: boolean;
  /** Maximum L-BFGS iterations. Default 300. */
  maxIter?: number;
  /** Stop when the largest gradient entry is below tol. Default 1e-5. */
  tol?: number;
  /** L-BFGS history length. Default 10. */
  history?: number;
}

/**
 * Objective of the linear probe and its gradient: weighted mean cross-entropy
 * sum_i c_i l_i / sum_i c_i + l2/2 ||w||^2 (weights null: all 1).
 */
export function logregLossAndGrad(
  w: Vec,
  b: number,
  Z: Mat,
  y: Uint8Array,
  weights: Vec | null,
  l2: number,
): { loss: number; gradW: Float64Array; gradB: number } {
  const { data, rows: n, cols: d } = Z;
  let sw = 0;
  for (let i = 0; i < n; i++) sw += weights ? weights[i] : 1;
  const gradW = new Float64Array(d);
  let loss = 0;
  let gradB = 0;
  for (let i = 0; i < n; i++) {
    const ci = (weights ? weights[i] : 1) / sw;
    const z = b + dot(data, w, d, i * d, 0);
    loss += ci * bce(z, y[i]);
    const r = ci * (sigmoid(z) - (y[i] ? 1 : 0));
    gradB += r;
    if (r !== 0) axpy(r, data, gradW, d, i * d, 0);
  }
  let ww = 0;
  for (let j = 0; j < d; j++) {
    ww += w[j] * w[j];
    gradW[j] += l2 * w[j];
  }
  return { loss: loss + 0.5 * l2 * ww, gradW, gradB };
}

/**
 * L2-regularised logistic regression (the linear probe) on standardized features,
 * minimised with L-BFGS. Each iteration costs two passes over Z (X·p for the search
 * direction, X^T r for the gradient): along a direction the logits move linearly,
 * z(t) = z + t X p, so the line search (safeguarded Newton on the convex 1-D
 * objective, to |phi'(t)| <= 0.1 |phi'(0)| plus Armijo) costs only O(n) per trial.
 */
export function trainLogreg(Z: Features, y: Uint8Array, opts: LogregOptions = {}): { model: LinearModel; summary: TrainSummary } {
  const t0 = now();
  checkShape(Z, y, "trainLogreg");
  const l2 = opts.l2 ?? 1e-2;
  const maxIter = opts.maxIter ?? 300;
  const tol = opts.tol ?? 1e-5;
  const m = opts.history ?? 10;
  const { data, rows: n, cols: d } = Z;
  if (n === 0) throw new RangeError("trainLogreg: no rows");

  const cw = classWeights(y, opts.classBalanced ?? true);
  let sw = 0;
  for (let i = 0; i < n; i++) sw += cw[i];
  for (let i = 0; i < n; i++) cw[i] /= sw;
  const yf = new Float64Array(n);
  for (let i = 0; i < n; i++) yf[i] = y[i] ? 1 : 0;

  const D = d + 1; // parameters: w (d) then b
  const theta = new Float64Array(D);
  const z = new Float64Array(n); // current logits
  const q = new Float64Array(n); // X p
  const r = new Float64Array(n);
  let g = new Float64Array(D);
  let gNew = new Float64Array(D);
  const p = new Float64Array(D);
  const history = new LbfgsHistory(m);

  // loss and gradient from the current logits z
  const evalAt = (out: Float64Array): number => {
    let f = 0;
    let gb = 0;
    for (let i = 0; i < n; i++) {
      const zi = z[i];
      f += cw[i] * bce(zi, yf[i]);
      const ri = cw[i] * (sigmoid(zi) - yf[i]);
      r[i] = ri;
      gb += ri;
    }
    out.fill(0);
    for (let i = 0; i < n; i++) if (r[i] !== 0) axpy(r[i], data, out, d, i * d, 0);
    let ww = 0;
    for (let j = 0; j < d; j++) {
      ww += theta[j] * theta[j];
      out[j] += l2 * theta[j];
    }
    out[d] = gb;
    return f + 0.5 * l2 * ww;
  };

  const maxAbs = (v: Float64Array): number => {
    let s = 0;
    for (let k = 0; k < v.length; k++) s = Math.max(s, Math.abs(v[k]));
    return s;
  };

  let f = evalAt(g);
  let iter = 0;
  let lineEvals = 0;
  let converged = maxAbs(g) <= tol;
  while (!converged && iter < maxIter) {
    history.direction(g, p); // p = -H g
    const h = history.length;
    let g0 = dot(g, p);
    if (!(g0 < 0)) {
      // not a descent direction (should not happen): restart from steepest descent
      history.reset();
      history.direction(g, p);
      g0 = dot(g, p);
    }
    // q = X pw + pb
    const pb = p[d];
    for (let i = 0; i < n; i++) q[i] = pb + dot(data, p, d, i * d, 0);
    const wp = dot(theta, p, d);
    const pp = dot(p, p, d);
    const ww = dot(theta, theta, d);
    // phi(t) = sum cw bce(z + t q) + l2/2 ||w + t pw||^2
    const phi = (t: number): { f: number; g: number; h: number } => {
      let fv = 0.5 * l2 * (ww + 2 * t * wp + t * t * pp);
      let gv = l2 * (wp + t * pp);
      let hv = l2 * pp;
      for (let i = 0; i < n; i++) {
        const zi = z[i] + t * q[i];
        fv += cw[i] * bce(zi, yf[i]);
        const s = sigmoid(zi);
        gv += cw[i] * (s - yf[i]) * q[i];
        hv += cw[i] * s * (1 - s) * q[i] * q[i];
      }
      return { f: fv, g: gv, h: hv };
    };
    let t = h === 0 ? Math.min(1, 1 / Math.sqrt(dot(g, g))) : 1;
    let lo = 0;
    let hi = Infinity;
    let best = { t: 0, f };
    for (let ls = 0; ls < 30; ls++) {
      const v = phi(t);
      lineEvals++;
      if (v.f < best.f) best = { t, f: v.f };
      if (v.f <= f + 1e-4 * t * g0 && Math.abs(v.g) <= 0.1 * Math.abs(g0)) break;
      if (v.g < 0) lo = t;
      else hi = t;
      let tn = v.h > 0 ? t - v.g / v.h : NaN;
      if (!(tn > lo && tn < hi)) tn = hi === Infinity ? 2 * t : 0.5 * (lo + hi);
      t = tn;
    }
    t = best.t;
    if (t === 0) break; // no decrease possible along p: at numerical precision
    for (let k = 0; k < D; k++) theta[k] += t * p[k];
    for (let i = 0; i < n; i++) z[i] += t * q[i];
    const fNew = evalAt(gNew);
    iter++;
    // history update
    const s = new Float64Array(D);
    const yv = new Float64Array(D);
    for (let k = 0; k < D; k++) {
      s[k] = t * p[k];
      yv[k] = gNew[k] - g[k];
    }
    history.push(s, yv);
    const fOld = f;
    f = fNew;
    const tmp = g;
    g = gNew;
    gNew = tmp;
    if (maxAbs(g) <= tol) converged = true;
    else if (Math.abs(fOld - f) <= 1e-14 * Math.max(1, Math.abs(f))) break;
  }

  const model: LinearModel = { w: Float32Array.from(theta.subarray(0, d)), b: theta[d] };
  return {
    model,
    summary: {
      method: "logreg",
      rows: n,
      positives: countPositives(y),
      iterations: iter,
      finalLoss: f,
      converged,
      gradMaxAbs: maxAbs(g),
      lineSearchEvals: lineEvals,
      l2,
      seconds: now() - t0,
    },
  };
}

/** Logit of a linear rule on z[offset .. offset + w.length). */
export function scoreLinear(model: LinearModel, z: Vec, offset = 0): number {
  return model.b + dot(model.w, z, model.w.length, 0, offset);
}

/** Linear-rule logits for every row. */
export function linearLogits(model: LinearModel, Z: Mat): Float32Array {
  if (Z.cols !== model.w.length) throw new RangeError(`linearLogits: model has ${model.w.length} weights, features have ${Z.cols} columns`);
  const out = new Float32Array(Z.rows);
  for (let i = 0; i < Z.rows; i++) out[i] = scoreLinear(model, Z.data, i * Z.cols);
  return out;
}

/** Logreg weights as a probe file stores them. */
export interface LogregWeights {
  standardizer: Standardizer;
  linear: LinearModel;
}

export const logreg: ProbeMethodSpec<LogregWeights> = {
  name: "logreg",
  multiLayer: false,
  train(features, y, options) {
    const X = features[0];
    const standardizer = fitStandardizer(X);
    const r = trainLogreg(standardize(X, standardizer), y, options);
    return { weights: { standardizer, linear: r.model }, summary: r.summary };
  },
  linear(w, n) {
    // w · ((x - mean) / std) + b = (w / std) · x + (b - Σ w mean / std)
    const { mean, std } = w.standardizer;
    const fw = new Float32Array(n);
    let b = w.linear.b;
    for (let j = 0; j < n; j++) {
      fw[j] = w.linear.w[j] / std[j];
      b -= (w.linear.w[j] * mean[j]) / std[j];
    }
    checkFolded(fw, b);
    return { w: fw, b };
  },
  scorer(w, n) {
    const f = logreg.linear!(w, n);
    return (v) => dotF32(f.w, 0, v[0], n) + f.b;
  },
  toJSON: (w) => ({ standardizer: standardizerJSON(w.standardizer), w: arr(w.linear.w), b: w.linear.b }),
  fromJSON: (r, n) => ({ standardizer: r.standardizer(n), linear: { w: r.vec("w", n), b: r.num("b") } }),
};
