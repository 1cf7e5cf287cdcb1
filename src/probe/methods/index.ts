/**
 * Probe training methods on hidden-state features (labels: 1 = unsafe, 0 = safe),
 * one file each, and the registry that maps a method's name to its spec (training,
 * scoring, probe-file form):
 *
 * - logreg: L2-regularised logistic regression on standardized features, L-BFGS.
 * - mlp: one hidden ReLU layer, Adam, mini-batches, early stopping.
 * - lpm (latent prototype moderation): class means and a shared Ledoit-Wolf-shrunk
 *   covariance on raw features; Mahalanobis rule, which is linear in closed form.
 * - mlpm: per-layer LPMs whose log-odds are combined by an L1-regularised logistic
 *   regression that selects the layers that matter.
 *
 * All optimisation is in double precision; models are stored in Float32.
 */
import { logreg } from "./logreg";
import { lpm } from "./lpm";
import { mlp } from "./mlp";
import { mlpm } from "./mlpm";
import type { ProbeMethodSpec } from "./shared";

export type ProbeMethod = "logreg" | "mlp" | "lpm" | "mlpm";

/** Every method, by name. */
export const METHOD_SPECS: Readonly<Record<ProbeMethod, ProbeMethodSpec<unknown>>> = Object.freeze({
  logreg: logreg as ProbeMethodSpec<unknown>,
  mlp: mlp as ProbeMethodSpec<unknown>,
  lpm: lpm as ProbeMethodSpec<unknown>,
  mlpm: mlpm as ProbeMethodSpec<unknown>,
});

export const PROBE_METHODS: readonly ProbeMethod[] = Object.freeze(Object.keys(METHOD_SPECS) as ProbeMethod[]);

/** The spec of a method name, or undefined (an own-property check: "toString" is not a method). */
export function methodSpec(name: unknown): ProbeMethodSpec<unknown> | undefined {
  return typeof name === "string" && Object.prototype.hasOwnProperty.call(METHOD_SPECS, name) ? METHOD_SPECS[name as ProbeMethod] : undefined;
}

export { classWeights, fitStandardizer, standardize, WeightReader } from "./shared";
export type { ProbeMethodSpec, Scorer } from "./shared";
export { logregLossAndGrad, trainLogreg, scoreLinear, linearLogits } from "./logreg";
export type { LogregOptions, LogregWeights } from "./logreg";
export { mlpLossAndGrad, scoreMlp, mlpLogits, trainMlp } from "./mlp";
export type { MlpParams, MlpGrad, MlpOptions, MlpWeights } from "./mlp";
export { lpmCovariance, trainLpm, scoreLpm, lpmLogits } from "./lpm";
export type { LpmOptions } from "./lpm";
export { trainL1Logreg, trainMlpm, scoreMlpm, mlpmLogits } from "./mlpm";
export type { MlpmOptions } from "./mlpm";
