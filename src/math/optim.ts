/**
 * Optimiser pieces shared by the probes and the ranker: one Adam/AdamW step, the
 * L-BFGS two-loop recursion with its curvature history, and early stopping.
 */
import { axpy, dot } from "./linalg";

const { sqrt, pow } = Math;

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Coupled L2: l2 * p is added to the gradient (Adam with weight decay in the loss). */
  l2?: number;
  /** Decoupled weight decay (AdamW): p *= 1 - lr * weightDecay before the step. */
  weightDecay?: number;
}

/**
 * One Adam step on one parameter block, in place: m and v are the block's first and
 * second moment estimates, `step` the 1-based step count (for bias correction).
 * p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps), with g + l2 p as the gradient.
 */
export function adamStep(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, step: number, o: AdamOptions): void {
  const beta1 = o.beta1 ?? 0.9;
  const beta2 = o.beta2 ?? 0.999;
  const eps = o.eps ?? 1e-8;
  const l2 = o.l2 ?? 0;
  const lr = o.lr;
  const decay = 1 - lr * (o.weightDecay ?? 0);
  const bc1 = 1 - pow(beta1, step);
  const bc2 = 1 - pow(beta2, step);
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] + l2 * p[i];
    const mi = (m[i] = beta1 * m[i] + (1 - beta1) * gi);
    const vi = (v[i] = beta2 * v[i] + (1 - beta2) * gi * gi);
    p[i] = p[i] * decay - (lr * (mi / bc1)) / (sqrt(vi / bc2) + eps);
  }
}

/**
 * L-BFGS curvature history: the last `size` pairs (s, y) of parameter and gradient
 * changes, and the two-loop recursion that turns a gradient into a quasi-Newton
 * descent direction.
 */
export class LbfgsHistory {
  private readonly S: Float64Array[] = [];
  private readonly Y: Float64Array[] = [];
  private readonly rho: number[] = [];
  private readonly alpha: Float64Array;

  constructor(private readonly size: number) {
    this.alpha = new Float64Array(size);
  }

  get length(): number {
    return this.S.length;
  }

  /** p = -H g (H the inverse-Hessian estimate; steepest descent when the history is empty). */
  direction(g: Float64Array, p: Float64Array): void {
    for (let k = 0; k < g.length; k++) p[k] = -g[k];
    const h = this.S.length;
    for (let k = h - 1; k >= 0; k--) {
      const a = this.rho[k] * dot(this.S[k], p);
      this.alpha[k] = a;
      axpy(-a, this.Y[k], p);
    }
    if (h > 0) {
      const gamma = 1 / (this.rho[h - 1] * dot(this.Y[h - 1], this.Y[h - 1]));
      for (let k = 0; k < p.length; k++) p[k] *= gamma;
    }
    for (let k = 0; k < h; k++) {
      const b = this.rho[k] * dot(this.Y[k], p);
      axpy(this.alpha[k] - b, this.S[k], p);
    }
  }

  /** Adds a pair unless its curvature s.y is not positive (keeps H positive definite). */
  push(s: Float64Array, y: Float64Array): void {
    const sy = dot(s, y);
    if (!(sy > 1e-12 * dot(y, y))) return;
    if (this.S.length === this.size) {
      this.S.shift();
      this.Y.shift();
      this.rho.shift();
    }
    this.S.push(s);
    this.Y.push(y);
    this.rho.push(1 / sy);
  }

  reset(): void {
    this.S.length = 0;
    this.Y.length = 0;
    this.rho.length = 0;
  }
}

/**
 * Early stopping on a validation loss: keeps the best snapshot and says when
 * `patience` epochs in a row brought no improvement.
 */
export class EarlyStopping<T> {
  bestLoss = Infinity;
  bestEpoch = 0;
  private since = 0;

  constructor(
    private readonly patience: number,
    public best: T,
  ) {}

  /** Records an epoch's validation loss; returns true when training should stop. */
  observe(loss: number, epoch: number, snapshot: () => T): boolean {
    if (loss < this.bestLoss) {
      this.bestLoss = loss;
      this.bestEpoch = epoch;
      this.best = snapshot();
      this.since = 0;
      return false;
    }
    return ++this.since >= this.patience;
  }
}
