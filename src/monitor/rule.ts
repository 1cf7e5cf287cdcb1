/**
 * The streaming rule of a response monitor, replayed in TypeScript exactly as
 * native/StreamingMonitor.cpp runs it during generation: per token s_t =
 * sigmoid(w . h_t + b) (a sequential double-precision sum of exact float products, as
 * CapturePlan computes it), an aggregate a_t (ema: a_1 = s_1, a_t = alpha s_t +
 * (1 - alpha) a_{t-1}; mean: the mean of the last `window` scores), flagged the first
 * time a_t >= threshold at a token t >= minTokens. A NaN score flags at once. Used to
 * calibrate the threshold and to evaluate a monitor on recorded responses.
 */
import type { StreamRule } from "../core/generate";
import { sigmoid } from "../math/linalg";

/** Defaults of a rule's optional fields. */
export function ruleDefaults(rule: StreamRule): Required<StreamRule> {
  return { kind: rule.kind, alpha: rule.alpha ?? 0.3, window: rule.window ?? 8, minTokens: rule.minTokens ?? 1 };
}

/** s_t for rows [from, to) of a row-major matrix of hidden states (width n). */
export function scoreRows(w: Float32Array, b: number, rows: Float32Array, n: number, from: number, to: number): Float64Array {
  const out = new Float64Array(to - from);
  for (let r = from; r < to; r++) {
    let z = b;
    const off = r * n;
    for (let e = 0; e < n; e++) z += w[e] * rows[off + e];
    out[r - from] = sigmoid(z);
  }
  return out;
}

export interface Replay {
  /** Index of the token where the rule flagged, or -1. */
  flaggedAt: number;
  /** a_t for every token. */
  aggregates: Float64Array;
  /**
   * The largest aggregate from token minTokens on (Infinity when a score is NaN): the
   * response is flagged at any threshold up to this value.
   */
  peak: number;
}

/** Runs the rule over one response's token scores. */
export function replay(scores: ArrayLike<number>, rule: StreamRule, threshold: number): Replay {
  const r = ruleDefaults(rule);
  const aggregates = new Float64Array(scores.length);
  let a = 0;
  let sum = 0;
  let flaggedAt = -1;
  let peak = Number.NEGATIVE_INFINITY;
  for (let t = 1; t <= scores.length; t++) {
    const s = scores[t - 1];
    if (Number.isNaN(s)) {
      for (let k = t - 1; k < scores.length; k++) aggregates[k] = NaN;
      return { flaggedAt: flaggedAt >= 0 ? flaggedAt : t - 1, aggregates, peak: Infinity };
    }
    if (r.kind === "ema") a = t === 1 ? s : r.alpha * s + (1 - r.alpha) * a;
    else {
      sum += s;
      if (t > r.window) sum -= scores[t - 1 - r.window];
      a = sum / Math.min(t, r.window);
    }
    aggregates[t - 1] = a;
    if (t >= r.minTokens) {
      peak = Math.max(peak, a);
      if (flaggedAt < 0 && a >= threshold) flaggedAt = t - 1;
    }
  }
  return { flaggedAt, aggregates, peak };
}
