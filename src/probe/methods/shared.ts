/** Helpers the probe training methods share: row weights, shape checks, standardisation. */
import type { Features } from "../../core/activations";
import { colMeans, colStds, type Mat } from "../../math/linalg";
import type { Standardizer, TrainSummary } from "../types";

export function now(): number {
  return performance.now() / 1000;
}

export function countPositives(y: Uint8Array, rows?: ArrayLike<number>): number {
  let p = 0;
  if (rows) for (let k = 0; k < rows.length; k++) p += y[rows[k]] ? 1 : 0;
  else for (let i = 0; i < y.length; i++) p += y[i] ? 1 : 0;
  return p;
}

export function checkShape(X: Mat, y: Uint8Array, what: string): void {
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

/** The scoring rule on raw feature vectors (one per layer, in order): returns the logit. */
export type Scorer = (vectors: readonly Float32Array[]) => number;

/**
 * One probe method: how it trains, how it scores (standardisation folded into the
 * weights), and how its weights are written to and read from a probe file. The
 * registry in ./index.ts maps method names to these.
 */
export interface ProbeMethodSpec<W> {
  readonly name: "logreg" | "mlp" | "lpm" | "mlpm";
  /** Whether the method combines several layers (else it reads exactly one). */
  readonly multiLayer: boolean;
  train(features: Features[], y: Uint8Array, options: Record<string, unknown>): { weights: W; summary: TrainSummary };
  /** The rule on raw vectors of width n. */
  scorer(weights: W, n: number): Scorer;
  /** For a linear method: logit = w . x + b on the raw vector (standardisation folded in). */
  linear?(weights: W, n: number): { w: Float32Array; b: number };
  toJSON(weights: W): Record<string, unknown>;
  /** Reads and validates the weights of a probe over `layers` layers of width n. */
  fromJSON(reader: WeightReader, n: number, layers: number): W;
}

/**
 * Reads one probe file's `weights` object: every array must have the expected length
 * and every value must be finite as a float32 (a 1e308 is finite JSON but Infinity in
 * float32, which would turn every score into NaN).
 */
export class WeightReader {
  constructor(
    private readonly w: Record<string, unknown>,
    readonly bad: (detail: string) => never,
    private readonly prefix = "weights",
  ) {}

  /** The nested object `name`. */
  obj(name: string): WeightReader {
    const v = this.w[name];
    if (v === null || typeof v !== "object" || Array.isArray(v)) this.bad(`${this.prefix}.${name} missing`);
    return new WeightReader(v as Record<string, unknown>, this.bad, `${this.prefix}.${name}`);
  }

  /** The array `name` of exactly `count` objects, each as a reader; `what` names the items in the error. */
  list(name: string, count: number, what: string): WeightReader[] {
    const v = this.w[name];
    if (!Array.isArray(v) || v.length !== count) this.bad(`${this.prefix}.${name} must hold ${what}`);
    return (v as unknown[]).map((x, i) => {
      if (x === null || typeof x !== "object" || Array.isArray(x)) this.bad(`${this.prefix}.${name}[${i}] missing`);
      return new WeightReader(x as Record<string, unknown>, this.bad, `${this.prefix}.${name}[${i}]`);
    });
  }

  /** `n` finite float32 values. */
  vec(name: string, n: number): Float32Array {
    const v = this.w[name];
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === "number")) this.bad(`${this.prefix}.${name} must be ${n} finite numbers`);
    const out = Float32Array.from(v as number[]);
    for (let i = 0; i < out.length; i++) if (!Number.isFinite(out[i])) this.bad(`${this.prefix}.${name} must be ${n} finite numbers`);
    return out;
  }

  /** A number finite as a float32. */
  num(name: string): number {
    const v = this.w[name];
    if (typeof v !== "number" || !Number.isFinite(Math.fround(v))) this.bad(`${this.prefix}.${name} must be a finite number`);
    return v as number;
  }

  /** An integer in [min, max]. */
  int(name: string, min: number, max: number): number {
    const v = this.w[name];
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) this.bad(`${this.prefix}.${name} must be an integer between ${min} and ${max}`);
    return v as number;
  }

  /** The standardizer {mean, std} of width n (std > 0). */
  standardizer(n: number): Standardizer {
    const s = this.obj("standardizer");
    const std = s.vec("std", n);
    if (!std.every((x) => x > 0)) this.bad(`${this.prefix}.standardizer.std must be positive`);
    return { mean: s.vec("mean", n), std };
  }
}

/** JSON form of a Float32Array. */
export const arr = (a: Float32Array): number[] => Array.from(a);

/** A standardizer as JSON. */
export const standardizerJSON = (s: Standardizer) => ({ mean: arr(s.mean), std: arr(s.std) });

/**
 * Throws unless the weights with standardisation folded in are finite in float32 (finite
 * weights divided by a tiny standard deviation can overflow, which would make every
 * score NaN).
 */
export function checkFolded(w: Float32Array, b: number): void {
  for (let i = 0; i < w.length; i++) if (!Number.isFinite(w[i])) throw new RangeError("the weights overflow float32 once the standardisation is folded in");
  if (!Number.isFinite(Math.fround(b))) throw new RangeError("the bias overflows float32 once the standardisation is folded in");
}
