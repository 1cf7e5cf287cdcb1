/**
 * Probe training methods on hidden-state features (labels: 1 = unsafe, 0 = safe).
 *
 * - Linear probe: L2-regularised logistic regression on standardized features, L-BFGS.
 * - MLP probe: one hidden ReLU layer, Adam, mini-batches, early stopping.
 * - LPM (latent prototype moderation): class means and a shared Ledoit-Wolf-shrunk
 *   covariance on raw features; Mahalanobis rule, which is linear in closed form.
 * - MLPM: per-layer LPMs whose log-odds are combined by an L1-regularised logistic
 *   regression that selects the layers that matter.
 *
 * All optimisation is in double precision; models are stored in Float32.
 */
import type { Features, LinearModel, LpmModel, MlpModel, MlpmModel, Standardizer, TrainSummary } from "./types";
import { axpy, choleskyInPlace, choleskySolve, colMeans, colStds, dot, scatter, type Mat, type Vec } from "./linalg";

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/** Numerically stable logistic function. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** log(1 + exp(t)) without overflow. */
function softplus(t: number): number {
  return t > 0 ? t + Math.log1p(Math.exp(-t)) : Math.log1p(Math.exp(t));
}

/** Binary cross-entropy of a logit z against label yi (0/1). */
function bce(z: number, yi: number): number {
  return yi ? softplus(-z) : softplus(z);
}

function now(): number {
  return performance.now() / 1000;
}

function countPositives(y: Uint8Array, rows?: ArrayLike<number>): number {
  let p = 0;
  if (rows) for (let k = 0; k < rows.length; k++) p += y[rows[k]] ? 1 : 0;
  else for (let i = 0; i < y.length; i++) p += y[i] ? 1 : 0;
  return p;
}

function checkShape(X: Mat, y: Uint8Array, what: string): void {
  if (X.data.length < X.rows * X.cols) throw new RangeError(`${what}: data has ${X.data.length} values, expected ${X.rows} x ${X.cols}`);
  if (y.length !== X.rows) throw new RangeError(`${what}: ${y.length} labels for ${X.rows} rows`);
}

/**
 * Per-row weights. Class-balanced: n / (2 n_c) for a row of class c (so the weights sum
 * to n); when one class is missing, or when not balanced, every weight is 1.
 */
export function classWeights(y: Uint8Array, balanced = true): Float64Array {
  const n = y.length;
  const w = new Float64Array(n).fill(1);
  if (!balanced) return w;
  const n1 = countPositives(y);
  const n0 = n - n1;
  if (n0 === 0 || n1 === 0) return w;
  const w0 = n / (2 * n0);
  const w1 = n / (2 * n1);
  for (let i = 0; i < n; i++) w[i] = y[i] ? w1 : w0;
  return w;
}

/**
 * Small deterministic PRNG (a 32-bit counter passed through an integer hash, in the
 * spirit of splitmix), with Gaussian draws by Box-Muller. Same seed, same stream.
 */
export class Rng {
  private state: number;
  private spare: number | null = null;
  constructor(seed = 1) {
    this.state = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    z = (z ^ (z >>> 15)) >>> 0;
    return z / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Standard normal. */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = this.next();
    while (u <= 1e-300) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  /** In-place Fisher-Yates shuffle. */
  shuffle<T extends { length: number; [i: number]: number }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

/**
 * Stratified split of 0..n-1: from each class (shuffled by the seed) the first
 * round(fraction * n_c) rows go to `second`, the rest to `first`. Both sorted.
 */
export function stratifiedSplit(y: Uint8Array, fraction: number, seed = 1): { first: Uint32Array; second: Uint32Array } {
  const rng = new Rng(seed);
  const first: number[] = [];
  const second: number[] = [];
  for (const c of [0, 1]) {
    const idx: number[] = [];
    for (let i = 0; i < y.length; i++) if ((y[i] ? 1 : 0) === c) idx.push(i);
    rng.shuffle(idx);
    const k = Math.round(fraction * idx.length);
    for (let t = 0; t < idx.length; t++) (t < k ? second : first).push(idx[t]);
  }
  const asc = (a: number, b: number) => a - b;
  return { first: Uint32Array.from(first.sort(asc)), second: Uint32Array.from(second.sort(asc)) };
}

// ---------------------------------------------------------------------------
// Standardizer
// ---------------------------------------------------------------------------

/** Column means and population standard deviations (std < 1e-6 stored as 1), over all rows or a subset. */
export function fitStandardizer(X: Features, rows?: Uint32Array): Standardizer {
  const m = colMeans(X, rows);
  const s = colStds(X, m, rows);
  const std = new Float32Array(X.cols);
  for (let j = 0; j < X.cols; j++) std[j] = s[j] < 1e-6 ? 1 : s[j];
  return { mean: Float32Array.from(m), std };
}

/** (x - mean) / std for every row; a new array. */
export function standardize(X: Features, s: Standardizer): Features {
  const { rows, cols, data } = X;
  if (s.mean.length !== cols) throw new RangeError(`standardize: standardizer has ${s.mean.length} columns, X has ${cols}`);
  const out = new Float32Array(rows * cols);
  const inv = new Float64Array(cols);
  for (let j = 0; j < cols; j++) inv[j] = 1 / s.std[j];
  for (let i = 0; i < rows; i++) {
    const off = i * cols;
    for (let j = 0; j < cols; j++) out[off + j] = (data[off + j] - s.mean[j]) * inv[j];
  }
  return { data: out, rows, cols };
}

/** Standardize one feature vector (x[offset .. offset+d)); a new Float32Array unless `out` is given. */
export function standardizeRow(x: Float32Array, s: Standardizer, offset = 0, out?: Float32Array): Float32Array {
  const d = s.mean.length;
  const o = out ?? new Float32Array(d);
  for (let j = 0; j < d; j++) o[j] = (x[offset + j] - s.mean[j]) / s.std[j];
  return o;
}

// ---------------------------------------------------------------------------
// Logistic regression (linear probe), L-BFGS
// ---------------------------------------------------------------------------

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
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const alpha = new Float64Array(m);

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
    // two-loop recursion: p = -H g
    for (let k = 0; k < D; k++) p[k] = -g[k];
    const h = S.length;
    for (let k = h - 1; k >= 0; k--) {
      const a = rho[k] * dot(S[k], p);
      alpha[k] = a;
      axpy(-a, Y[k], p);
    }
    if (h > 0) {
      const yy = dot(Y[h - 1], Y[h - 1]);
      const gamma = 1 / (rho[h - 1] * yy);
      for (let k = 0; k < D; k++) p[k] *= gamma;
    }
    for (let k = 0; k < h; k++) {
      const bta = rho[k] * dot(Y[k], p);
      axpy(alpha[k] - bta, S[k], p);
    }
    let g0 = dot(g, p);
    if (!(g0 < 0)) {
      // not a descent direction (should not happen): restart from steepest descent
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let k = 0; k < D; k++) p[k] = -g[k];
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
    const sy = dot(s, yv);
    if (sy > 1e-12 * dot(yv, yv)) {
      if (S.length === m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(yv);
      rho.push(1 / sy);
    }
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

// ---------------------------------------------------------------------------
// MLP probe
// ---------------------------------------------------------------------------

/** MlpModel with parameters in either float type (for gradient checks in Float64). */
export interface MlpParams {
  hidden: number;
  w1: Vec;
  b1: Vec;
  w2: Vec;
  b2: number;
}

/** Gradients, shaped like the model. */
export interface MlpGrad {
  hidden: number;
  w1: Float64Array;
  b1: Float64Array;
  w2: Float64Array;
  b2: number;
}

export interface MlpOptions {
  hidden?: number;
  lr?: number;
  epochs?: number;
  batchSize?: number;
  /** Fraction held out (stratified) for early stopping; 0 trains on everything for all epochs. Default 0.15. */
  valFraction?: number;
  /** Epochs without a better validation loss before stopping. Default 10. */
  patience?: number;
  /** L2 penalty l2/2 (||W1||^2 + ||w2||^2) on the mean loss; biases not penalised. Default 1e-4. */
  l2?: number;
  seed?: number;
  classBalanced?: boolean;
}

/**
 * Forward/backward over rows idx[start..end) (or start..end when idx is null).
 * Adds the gradient of sum_i c_i l_i / C into the g* buffers (C = cSum), returns
 * sum_i c_i l_i / C. No penalty here. gb2 is a 1-element buffer.
 */
function mlpAccumulate(
  w1: Vec,
  b1: Vec,
  w2: Vec,
  b2: number,
  H: number,
  data: Vec,
  d: number,
  y: Uint8Array,
  weights: Vec | null,
  idx: Uint32Array | null,
  start: number,
  end: number,
  cSum: number,
  gw1: Float64Array,
  gb1: Float64Array,
  gw2: Float64Array,
  gb2: Float64Array,
  hbuf: Float64Array,
): number {
  let loss = 0;
  for (let k = start; k < end; k++) {
    const i = idx ? idx[k] : k;
    const off = i * d;
    let zout = b2;
    for (let u = 0; u < H; u++) {
      const a = b1[u] + dot(w1, data, d, u * d, off);
      const hu = a > 0 ? a : 0;
      hbuf[u] = hu;
      zout += w2[u] * hu;
    }
    const c = (weights ? weights[i] : 1) / cSum;
    const yi = y[i] ? 1 : 0;
    loss += c * bce(zout, yi);
    const dz = c * (sigmoid(zout) - yi);
    if (dz === 0) continue;
    gb2[0] += dz;
    for (let u = 0; u < H; u++) {
      const hu = hbuf[u];
      if (hu > 0) {
        gw2[u] += dz * hu;
        const dh = dz * w2[u];
        gb1[u] += dh;
        axpy(dh, data, gw1, d, off, u * d);
      }
    }
  }
  return loss;
}

/**
 * Loss and gradient of the MLP probe over all rows of Z: weighted mean cross-entropy
 * sum_i c_i l_i / sum_i c_i + l2/2 (||W1||^2 + ||w2||^2) (weights null: all 1).
 */
export function mlpLossAndGrad(model: MlpParams, Z: Mat, y: Uint8Array, weights: Vec | null, l2: number): { loss: number; grad: MlpGrad } {
  const H = model.hidden;
  const { data, rows: n, cols: d } = Z;
  if (model.w1.length !== H * d) throw new RangeError(`mlpLossAndGrad: w1 has ${model.w1.length} entries, expected ${H} x ${d}`);
  let cSum = 0;
  for (let i = 0; i < n; i++) cSum += weights ? weights[i] : 1;
  const gw1 = new Float64Array(H * d);
  const gb1 = new Float64Array(H);
  const gw2 = new Float64Array(H);
  const gb2 = new Float64Array(1);
  let loss = mlpAccumulate(model.w1, model.b1, model.w2, model.b2, H, data, d, y, weights, null, 0, n, cSum, gw1, gb1, gw2, gb2, new Float64Array(H));
  let pen = 0;
  for (let k = 0; k < gw1.length; k++) {
    pen += model.w1[k] * model.w1[k];
    gw1[k] += l2 * model.w1[k];
  }
  for (let u = 0; u < H; u++) {
    pen += model.w2[u] * model.w2[u];
    gw2[u] += l2 * model.w2[u];
  }
  loss += 0.5 * l2 * pen;
  return { loss, grad: { hidden: H, w1: gw1, b1: gb1, w2: gw2, b2: gb2[0] } };
}

/** Logit of the MLP for one vector z[offset .. offset + d). */
export function scoreMlp(model: MlpParams, z: Vec, offset = 0): number {
  const H = model.hidden;
  const d = model.w1.length / H;
  let out = model.b2;
  for (let u = 0; u < H; u++) {
    const a = model.b1[u] + dot(model.w1, z, d, u * d, offset);
    if (a > 0) out += model.w2[u] * a;
  }
  return out;
}

/** MLP logits for every row of Z. */
export function mlpLogits(model: MlpParams, Z: Mat): Float32Array {
  const out = new Float32Array(Z.rows);
  for (let i = 0; i < Z.rows; i++) out[i] = scoreMlp(model, Z.data, i * Z.cols);
  return out;
}

function mlpValLoss(w1: Vec, b1: Vec, w2: Vec, b2: number, H: number, Z: Mat, y: Uint8Array, weights: Float64Array, rows: Uint32Array): number {
  let loss = 0;
  let cs = 0;
  const d = Z.cols;
  const m: MlpParams = { hidden: H, w1, b1, w2, b2 };
  for (let k = 0; k < rows.length; k++) {
    const i = rows[k];
    const z = scoreMlp(m, Z.data, i * d);
    loss += weights[i] * bce(z, y[i]);
    cs += weights[i];
  }
  return cs > 0 ? loss / cs : 0;
}

/**
 * One-hidden-layer ReLU MLP on standardized features: He-initialised, Adam on
 * mini-batches (coupled L2 in the gradient), class-balanced weights, and early
 * stopping on a stratified validation split that keeps the weights with the best
 * validation loss. Fully deterministic given `seed`.
 */
export function trainMlp(Z: Features, y: Uint8Array, opts: MlpOptions = {}): { model: MlpModel; summary: TrainSummary } {
  const t0 = now();
  checkShape(Z, y, "trainMlp");
  const H = opts.hidden ?? 64;
  const lr = opts.lr ?? 1e-3;
  const epochs = opts.epochs ?? 200;
  const batchSize = Math.max(1, opts.batchSize ?? 64);
  const valFraction = opts.valFraction ?? 0.15;
  const patience = opts.patience ?? 10;
  const l2 = opts.l2 ?? 1e-4;
  const seed = opts.seed ?? 1;
  const { rows: n, cols: d } = Z;
  if (n === 0) throw new RangeError("trainMlp: no rows");
  const weights = classWeights(y, opts.classBalanced ?? true);

  const rng = new Rng(seed);
  let trainRows: Uint32Array;
  let valRows: Uint32Array;
  if (valFraction > 0) {
    const sp = stratifiedSplit(y, valFraction, seed + 7919);
    trainRows = sp.first;
    valRows = sp.second;
    if (valRows.length === 0 || trainRows.length === 0) {
      trainRows = Uint32Array.from({ length: n }, (_, i) => i);
      valRows = new Uint32Array(0);
    }
  } else {
    trainRows = Uint32Array.from({ length: n }, (_, i) => i);
    valRows = new Uint32Array(0);
  }

  // parameters (Float64) and He initialisation
  const w1 = new Float64Array(H * d);
  const b1 = new Float64Array(H);
  const w2 = new Float64Array(H);
  const b2 = new Float64Array(1);
  const s1 = Math.sqrt(2 / Math.max(1, d));
  for (let k = 0; k < w1.length; k++) w1[k] = s1 * rng.normal();
  const s2 = Math.sqrt(1 / Math.max(1, H));
  for (let u = 0; u < H; u++) w2[u] = s2 * rng.normal();
  const params = [w1, b1, w2, b2];
  const grads = params.map((p) => new Float64Array(p.length));
  const m1 = params.map((p) => new Float64Array(p.length));
  const m2 = params.map((p) => new Float64Array(p.length));
  const penalised = [true, false, true, false];
  const hbuf = new Float64Array(H);
  const beta1 = 0.9;
  const beta2 = 0.999;
  const eps = 1e-8;
  let step = 0;

  let best = { loss: Infinity, epoch: 0, w1: w1.slice(), b1: b1.slice(), w2: w2.slice(), b2: b2[0] };
  let bad = 0;
  let epoch = 0;
  let lastTrainLoss = NaN;
  const order = trainRows.slice();
  for (epoch = 1; epoch <= epochs; epoch++) {
    rng.shuffle(order);
    let epochLoss = 0;
    let epochW = 0;
    for (let start = 0; start < order.length; start += batchSize) {
      const end = Math.min(order.length, start + batchSize);
      let cSum = 0;
      for (let k = start; k < end; k++) cSum += weights[order[k]];
      for (const g of grads) g.fill(0);
      const bl = mlpAccumulate(w1, b1, w2, b2[0], H, Z.data, d, y, weights, order, start, end, cSum, grads[0], grads[1], grads[2], grads[3], hbuf);
      epochLoss += bl * cSum;
      epochW += cSum;
      step++;
      const bc1 = 1 - Math.pow(beta1, step);
      const bc2 = 1 - Math.pow(beta2, step);
      const lrt = (lr * Math.sqrt(bc2)) / bc1;
      const epsT = eps * Math.sqrt(bc2);
      for (let b = 0; b < 4; b++) {
        const p = params[b];
        const g = grads[b];
        const ma = m1[b];
        const va = m2[b];
        const pen = penalised[b] ? l2 : 0;
        for (let k = 0; k < p.length; k++) {
          const gk = g[k] + pen * p[k];
          const mk = beta1 * ma[k] + (1 - beta1) * gk;
          const vk = beta2 * va[k] + (1 - beta2) * gk * gk;
          ma[k] = mk;
          va[k] = vk;
          p[k] -= (lrt * mk) / (Math.sqrt(vk) + epsT);
        }
      }
    }
    lastTrainLoss = epochW > 0 ? epochLoss / epochW : NaN;
    if (valRows.length > 0) {
      const vl = mlpValLoss(w1, b1, w2, b2[0], H, Z, y, weights, valRows);
      if (vl < best.loss) {
        best = { loss: vl, epoch, w1: w1.slice(), b1: b1.slice(), w2: w2.slice(), b2: b2[0] };
        bad = 0;
      } else if (++bad >= patience) break;
    }
  }
  const epochsRun = Math.min(epoch, epochs);
  const useBest = valRows.length > 0;
  const model: MlpModel = useBest
    ? { hidden: H, w1: Float32Array.from(best.w1), b1: Float32Array.from(best.b1), w2: Float32Array.from(best.w2), b2: best.b2 }
    : { hidden: H, w1: Float32Array.from(w1), b1: Float32Array.from(b1), w2: Float32Array.from(w2), b2: b2[0] };
  return {
    model,
    summary: {
      method: "mlp",
      rows: n,
      positives: countPositives(y),
      iterations: epochsRun,
      finalLoss: useBest ? best.loss : lastTrainLoss,
      bestEpoch: useBest ? best.epoch : epochsRun,
      trainLoss: lastTrainLoss,
      trainRows: trainRows.length,
      valRows: valRows.length,
      hidden: H,
      seconds: now() - t0,
    },
  };
}

// ---------------------------------------------------------------------------
// LPM: latent prototype moderation
// ---------------------------------------------------------------------------

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
interface GroupStats {
  n: number;
  mean: Float64Array;
  S: Float64Array;
  q4: number;
  v: Float64Array;
}

function groupStats(X: Features, rows: Uint32Array): GroupStats {
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
interface ClassStats {
  n: number;
  mean: Float64Array;
  S: Float64Array;
  q4: number;
}

function mergeGroups(groups: GroupStats[], d: number): ClassStats {
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

interface LpmSolution {
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
function lpmSolve(c0: ClassStats, c1: ClassStats, d: number, shrinkageOpt: number | "ledoit-wolf", keepSigma: boolean): LpmSolution {
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

function classRows(y: Uint8Array, rows?: ArrayLike<number>): [Uint32Array, Uint32Array] {
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

// ---------------------------------------------------------------------------
// MLPM: per-layer LPMs combined by an L1 logistic regression
// ---------------------------------------------------------------------------

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

/** Logit of a linear rule on z[offset .. offset + w.length). */
export function scoreLinear(model: LinearModel, z: Vec, offset = 0): number {
  return model.b + dot(model.w, z, model.w.length, 0, offset);
}

/** LPM logit (log-odds unsafe vs safe) of a raw feature vector. */
export function scoreLpm(model: LpmModel, x: Vec, offset = 0): number {
  return scoreLinear(model, x, offset);
}

/** MLPM logit from one raw feature vector per layer (vectors of layers with zero weight are not read). */
export function scoreMlpm(model: MlpmModel, xs: Vec[]): number {
  const c = model.combiner;
  if (xs.length < model.layers.length) throw new RangeError(`scoreMlpm: ${xs.length} layer vectors for ${model.layers.length} layers`);
  let s = c.b;
  for (let l = 0; l < model.layers.length; l++) if (c.w[l] !== 0) s += c.w[l] * scoreLpm(model.layers[l], xs[l]);
  return s;
}

/** Linear-rule logits for every row. */
export function linearLogits(model: LinearModel, Z: Mat): Float32Array {
  if (Z.cols !== model.w.length) throw new RangeError(`linearLogits: model has ${model.w.length} weights, features have ${Z.cols} columns`);
  const out = new Float32Array(Z.rows);
  for (let i = 0; i < Z.rows; i++) out[i] = scoreLinear(model, Z.data, i * Z.cols);
  return out;
}

/** LPM logits for every row of raw features. */
export function lpmLogits(model: LpmModel, X: Mat): Float32Array {
  return linearLogits(model, X);
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
  const t0 = now();
  const L = perLayer.length;
  if (L === 0) throw new RangeError("trainMlpm: no layers");
  const n = y.length;
  for (let l = 0; l < L; l++) checkShape(perLayer[l], y, `trainMlpm layer ${l}`);
  const shrink = opts.shrinkage ?? "ledoit-wolf";
  const seed = opts.seed ?? 1;

  // fold assignment (stratified, seeded)
  const fold = new Int32Array(n);
  let K: number;
  let scoredFolds: number[];
  if (opts.valFraction !== undefined) {
    const f = opts.valFraction;
    if (!(f > 0 && f < 1)) throw new RangeError(`trainMlpm: valFraction must be in (0, 1), got ${f}`);
    const sp = stratifiedSplit(y, f, seed);
    for (const i of sp.second) fold[i] = 1;
    K = 2;
    scoredFolds = [1];
  } else {
    K = Math.max(2, Math.floor(opts.folds ?? 2));
    const rng = new Rng(seed);
    for (const c of [0, 1]) {
      const idx: number[] = [];
      for (let i = 0; i < n; i++) if ((y[i] ? 1 : 0) === c) idx.push(i);
      rng.shuffle(idx);
      idx.forEach((i, t) => (fold[i] = t % K));
    }
    scoredFolds = Array.from({ length: K }, (_, k) => k);
  }
  const groupRows: Uint32Array[][] = []; // [fold][class]
  for (let k = 0; k < K; k++) {
    const rows: number[] = [];
    for (let i = 0; i < n; i++) if (fold[i] === k) rows.push(i);
    groupRows.push(classRows(y, rows));
    if (groupRows[k][0].length === 0 || groupRows[k][1].length === 0) throw new RangeError(`trainMlpm: fold ${k} lacks one class (too few rows)`);
  }
  const scoredRows: number[] = [];
  for (let i = 0; i < n; i++) if (scoredFolds.includes(fold[i])) scoredRows.push(i);
  const m = scoredRows.length;
  const posInScored = new Int32Array(n).fill(-1);
  scoredRows.forEach((i, t) => (posInScored[i] = t));

  const Fdata = new Float64Array(m * L);
  const layers: LpmModel[] = [];
  const shrinkages: number[] = [];
  for (let l = 0; l < L; l++) {
    const X = perLayer[l];
    const d = X.cols;
    const stats = groupRows.map((g) => [groupStats(X, g[0]), groupStats(X, g[1])]);
    for (const k of scoredFolds) {
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
    layers.push(full.model);
    shrinkages.push(full.model.shrinkage);
  }

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
      shrinkages,
      combinerRows: m,
      crossFit: opts.valFraction !== undefined ? `holdout ${opts.valFraction}` : `${K}-fold`,
      seconds: now() - t0,
    },
  };
}
