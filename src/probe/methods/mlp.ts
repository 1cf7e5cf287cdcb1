/**
 * MLP probe: one hidden ReLU layer on standardized features, Adam on mini-batches,
 * class-balanced weights, early stopping on a stratified validation split.
 */
import type { Features } from "../../core/activations";
import { axpy, bce, dot, dotF32, sigmoid, type Mat, type Vec } from "../../math/linalg";
import { adamStep, EarlyStopping } from "../../math/optim";
import { Rng, stratifiedSplit } from "../../math/rng";
import type { MlpModel, Standardizer, TrainSummary } from "../types";
import { arr, checkFolded, checkShape, classWeights, countPositives, fitStandardizer, now, type ProbeMethodSpec, standardize, standardizerJSON } from "./shared";

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
  // coupled L2 on the weight matrices, none on the biases
  const adam = [{ lr, l2 }, { lr }, { lr, l2 }, { lr }];
  const hbuf = new Float64Array(H);
  let step = 0;

  const snapshot = () => ({ w1: w1.slice(), b1: b1.slice(), w2: w2.slice(), b2: b2[0] });
  const stopper = new EarlyStopping(patience, snapshot());
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
      for (let b = 0; b < 4; b++) adamStep(params[b], grads[b], m1[b], m2[b], step, adam[b]);
    }
    lastTrainLoss = epochW > 0 ? epochLoss / epochW : NaN;
    if (valRows.length > 0 && stopper.observe(mlpValLoss(w1, b1, w2, b2[0], H, Z, y, weights, valRows), epoch, snapshot)) break;
  }
  const best = stopper.best;
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
      finalLoss: useBest ? stopper.bestLoss : lastTrainLoss,
      bestEpoch: useBest ? stopper.bestEpoch : epochsRun,
      trainLoss: lastTrainLoss,
      trainRows: trainRows.length,
      valRows: valRows.length,
      hidden: H,
      seconds: now() - t0,
    },
  };
}

/** MLP weights as a probe file stores them. */
export interface MlpWeights {
  standardizer: Standardizer;
  mlp: MlpModel;
}

export const mlp: ProbeMethodSpec<MlpWeights> = {
  name: "mlp",
  multiLayer: false,
  train(features, y, options) {
    const X = features[0];
    const standardizer = fitStandardizer(X);
    const r = trainMlp(standardize(X, standardizer), y, options);
    return { weights: { standardizer, mlp: r.model }, summary: r.summary };
  },
  scorer(w, n) {
    // the first layer on (x - mean) / std is W1' x + b1' with W1' = W1 / std, b1' = b1 - W1' mean
    const { mean, std } = w.standardizer;
    const H = w.mlp.hidden;
    const w1 = new Float32Array(H * n);
    const b1 = new Float32Array(H);
    for (let u = 0; u < H; u++) {
      let bu = w.mlp.b1[u];
      for (let j = 0; j < n; j++) {
        const a = w.mlp.w1[u * n + j] / std[j];
        w1[u * n + j] = a;
        bu -= a * mean[j];
      }
      b1[u] = bu;
    }
    checkFolded(w1, 0);
    checkFolded(b1, 0);
    const w2 = Float32Array.from(w.mlp.w2);
    const b2 = w.mlp.b2;
    return (v) => {
      let logit = b2;
      for (let u = 0; u < H; u++) {
        const a = b1[u] + dotF32(w1, u * n, v[0], n);
        if (a > 0) logit += w2[u] * a;
      }
      return logit;
    };
  },
  toJSON: (w) => ({ standardizer: standardizerJSON(w.standardizer), hidden: w.mlp.hidden, w1: arr(w.mlp.w1), b1: arr(w.mlp.b1), w2: arr(w.mlp.w2), b2: w.mlp.b2 }),
  fromJSON(r, n) {
    const hidden = r.int("hidden", 1, 65536);
    return {
      standardizer: r.standardizer(n),
      mlp: { hidden, w1: r.vec("w1", hidden * n), b1: r.vec("b1", hidden), w2: r.vec("w2", hidden), b2: r.num("b2") },
    };
  },
};
