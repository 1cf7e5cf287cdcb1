/**
 * Shared types of the probe module (prompt-safety classifiers on hidden states).
 * Labels: 1 = unsafe, 0 = safe. Features are row-major Float32Arrays.
 */

/** Feature matrices are the captured rows (see core/activations). */
export type { Features } from "../core/activations";

export interface Standardizer {
  mean: Float32Array;
  /** Standard deviations; entries below 1e-6 are stored as 1 (constant features). */
  std: Float32Array;
}

/** logit(x) = w · z + b, z the standardized features. */
export interface LinearModel {
  w: Float32Array;
  b: number;
}

/** One hidden layer, ReLU: logit = w2 · relu(W1 z + b1) + b2; W1 is hidden x d row-major. */
export interface MlpModel {
  hidden: number;
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: number;
}

/** Latent prototypes: class means and a shared, shrunk covariance; in closed form a linear rule on raw features. */
export interface LpmModel extends LinearModel {
  /** logit(x) = w · x + b on the *raw* (not standardized) features, equal to (d_safe - d_unsafe) / 2 with Mahalanobis distances d. */
  mu0: Float32Array;
  mu1: Float32Array;
  shrinkage: number;
}

/** Per-layer LPM probabilities combined by an L1-regularised logistic regression. */
export interface MlpmModel {
  layers: LpmModel[];
  /** one weight per layer, applied to each layer's LPM log-odds; zeros mark unused layers */
  combiner: LinearModel;
}

export interface TrainSummary {
  method: string;
  rows: number;
  positives: number;
  iterations?: number;
  finalLoss?: number;
  seconds: number;
  [k: string]: unknown;
}

export interface Metrics {
  n: number;
  positives: number;
  precision: number;
  recall: number;
  f1: number;
  accuracy: number;
  auroc: number;
  auprc: number;
  /** false-positive rate on safe examples at the threshold */
  fpr: number;
  threshold: number;
  /** Scores that were NaN (each counted as "unsafe"); absent when none. */
  nanScores?: number;
}
