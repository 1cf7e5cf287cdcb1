/**
 * Generation with capture: n candidates decoded in parallel sequences that share
 * the prompt's KV cache, the prompt's hidden state handed to a hook before the
 * first token is sampled (where a guard can veto), and each response's hidden
 * state read from the same decoding work.
 */
import { randomInt } from "node:crypto";
import { TextDecoder } from "node:util";

import { ModelStateError } from "../errors";
import { Activations, type CaptureInput, type LayerSpec } from "./activations";
import type { PrepareOptions } from "./chat";
import type { NativeContext, NativeGenerateResult } from "./native";

export type FinishReason = "eos" | "length" | "stop" | "aborted" | "vetoed" | "flagged";

/**
 * A streaming response monitor as generation runs it: a linear rule on one layer's
 * hidden state of each generated token, s_t = sigmoid(w . h_t + b), aggregated (an
 * exponential moving average, or the mean of the last `window` scores) and compared
 * with `threshold` from token `minTokens` on; crossing it stops the candidate with
 * finishReason "flagged" (the token that crossed is not kept). A NaN score flags at
 * once. A Monitor (src/monitor) is one; this is all generation needs of it.
 */
export interface StreamMonitorSpec {
  readonly layer: LayerSpec;
  /** Weights on the raw hidden state (nEmbd) and bias. */
  readonly w: Float32Array;
  readonly b: number;
  readonly rule: StreamRule;
  readonly threshold: number;
}

export interface StreamRule {
  kind: "ema" | "mean";
  /** ema: weight of the newest score (0 < alpha <= 1). */
  alpha?: number;
  /** mean: scores averaged (>= 1). */
  window?: number;
  /** The first token that may flag (1-based). */
  minTokens?: number;
}

/** What a monitored candidate reports. */
export interface MonitorReport {
  /** Each read token's score (probability of unsafe). */
  scores: Float32Array;
  /** The aggregate after the last read token (NaN when a score was NaN). */
  aggregate: number;
  /** Index of the token that crossed the threshold (it is not in tokens/text), or -1. */
  flaggedAt: number;
  flagged: boolean;
}

export interface GenerateCaptureOptions {
  /** Layers to read (layer numbers and/or "final"). */
  layers: LayerSpec[];
  /** The prompt's last-token hidden state (handed to onPromptHidden). Default true. */
  prompt?: boolean;
  /** Each response's hidden state: its last token, the mean over its tokens, or none. Default "last". */
  response?: "last" | "mean" | false;
}

export interface TokenEvent {
  candidate: number;
  token: number;
  /** The text this token adds (UTF-8 split across tokens is held back until complete). */
  text: string;
}

export type PromptHiddenVerdict = void | undefined | { stop?: boolean };

export interface GenerateOptions extends PrepareOptions {
  /** Most tokens per candidate. Default 128. */
  maxTokens?: number;
  /** 0 is greedy (deterministic). Default 0.8. */
  temperature?: number;
  /** Default 0.95 (1 disables). */
  topP?: number;
  /** Default 40 (0 disables). */
  topK?: number;
  /** Default 0.05 (0 disables). */
  minP?: number;
  /** Sampling seed; candidate i uses seed + i. Default: random (reported in the result). */
  seed?: number;
  /** Strings that end a candidate; the text is cut before the match. */
  stop?: string | string[];
  /** Candidates decoded in parallel from one prefill. Default 1. */
  n?: number;
  /** Keep going past end-of-generation tokens (for benchmarks). Default false. */
  ignoreEos?: boolean;
  capture?: GenerateCaptureOptions;
  /** A streaming response monitor (e.g. a Monitor): stops a candidate whose aggregate score crosses its threshold. */
  monitor?: StreamMonitorSpec;
  /** Runs after the prefill, before the first token is sampled; return { stop: true } to veto. */
  onPromptHidden?: (hidden: Activations) => PromptHiddenVerdict | Promise<PromptHiddenVerdict>;
  onToken?: (event: TokenEvent) => void;
  signal?: AbortSignal;
}

export interface GenerationCandidate {
  text: string;
  tokens: Int32Array;
  finishReason: FinishReason;
  hidden: {
    /** The prompt's last-token hidden state (shared by all candidates), or null when not captured. */
    prompt: Activations | null;
    /** This response's hidden state (last token or mean over its tokens), or null when not captured or empty. */
    response: Activations | null;
  };
  /** With a monitor: its per-token scores and verdict. */
  monitor?: MonitorReport;
}

export interface GenerateResult {
  candidates: GenerationCandidate[];
  /** The text the model saw (chat template applied when asked). */
  prompt: string;
  promptTokens: number;
  vetoed: boolean;
  seed: number;
  timings: { prefillMs: number; hookMs: number; decodeMs: number; steps: number; totalMs: number };
}

/** Generation options with defaults filled in, checked. */
export type ResolvedGenerateOptions = ReturnType<typeof resolveGenerateOptions>;

/** Checks generation options; returns them with defaults filled in. */
export function resolveGenerateOptions(o: GenerateOptions, limits: { contextSize: number; sequences: number; nEmbd: number }) {
  if (o === null || typeof o !== "object") throw new TypeError("options must be an object");
  const num = (name: string, v: unknown, def: number, min: number, max: number, int = false): number => {
    if (v === undefined) return def;
    if (typeof v !== "number" || Number.isNaN(v) || (int && !Number.isInteger(v))) {
      throw new TypeError(`${name} must be ${int ? "an integer" : "a number"}, got ${typeof v === "number" ? v : typeof v}`);
    }
    if (v < min || v > max) throw new RangeError(`${name} must be between ${min} and ${max}, got ${v}`);
    return v;
  };
  const maxTokens = num("maxTokens", o.maxTokens, 128, 1, limits.contextSize, true);
  const n = num("n", o.n, 1, 1, limits.sequences, true);
  const temperature = num("temperature", o.temperature, 0.8, 0, 100);
  const topP = num("topP", o.topP, 0.95, 0, 1);
  const topK = num("topK", o.topK, 40, 0, 1 << 20, true);
  const minP = num("minP", o.minP, 0.05, 0, 1);
  const seed = num("seed", o.seed, -1, 0, 0xffffffff, true);
  const stopList = o.stop === undefined ? [] : typeof o.stop === "string" ? [o.stop] : o.stop;
  if (!Array.isArray(stopList) || !stopList.every((s) => typeof s === "string" && s.length > 0)) {
    throw new TypeError("stop must be a non-empty string or an array of non-empty strings");
  }
  if (o.ignoreEos !== undefined && typeof o.ignoreEos !== "boolean") throw new TypeError("ignoreEos must be a boolean");
  for (const k of ["onPromptHidden", "onToken"] as const) {
    if (o[k] !== undefined && typeof o[k] !== "function") throw new TypeError(`${k} must be a function`);
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
  let capture: { layers: LayerSpec[]; prompt: boolean; response: "last" | "mean" | false } | null = null;
  if (o.capture !== undefined) {
    if (o.capture === null || typeof o.capture !== "object") throw new TypeError("capture must be { layers, prompt?, response? }");
    const response = o.capture.response ?? "last";
    if (response !== "last" && response !== "mean" && response !== false) throw new TypeError('capture.response must be "last", "mean" or false');
    if (o.capture.prompt !== undefined && typeof o.capture.prompt !== "boolean") throw new TypeError("capture.prompt must be a boolean");
    capture = { layers: o.capture.layers, prompt: o.capture.prompt ?? true, response };
  }
  if (o.onPromptHidden && !capture?.prompt) throw new TypeError("onPromptHidden needs capture: { layers, prompt: true }");
  const monitor = o.monitor === undefined ? null : checkMonitor(o.monitor, limits.nEmbd);
  return {
    maxTokens,
    n,
    temperature,
    topP,
    topK,
    minP,
    seed: seed < 0 ? randomInt(0, 0x7fffffff) : seed,
    stop: stopList,
    ignoreEos: o.ignoreEos ?? false,
    capture,
    monitor,
  };
}

/** A checked monitor spec in the addon's terms (the layer still to be placed among the captured ones). */
export interface ResolvedMonitor {
  layer: LayerSpec;
  w: Float32Array;
  b: number;
  kind: number;
  alpha: number;
  window: number;
  minTokens: number;
  threshold: number;
}

function checkMonitor(m: StreamMonitorSpec, nEmbd: number): ResolvedMonitor {
  if (m === null || typeof m !== "object") throw new TypeError("monitor must be a Monitor or { layer, w, b, rule, threshold }");
  if (!(m.w instanceof Float32Array) || m.w.length !== nEmbd) throw new TypeError(`monitor.w must be a Float32Array of ${nEmbd} weights`);
  if (!m.w.every((x) => Number.isFinite(x)) || typeof m.b !== "number" || !Number.isFinite(m.b)) throw new RangeError("monitor weights must be finite");
  if (typeof m.threshold !== "number" || !(m.threshold >= 0 && m.threshold <= 1)) throw new RangeError(`monitor.threshold must be between 0 and 1, got ${String(m.threshold)}`);
  const r = m.rule;
  if (r === null || typeof r !== "object" || (r.kind !== "ema" && r.kind !== "mean")) throw new TypeError('monitor.rule must be { kind: "ema" | "mean", ... }');
  const alpha = r.alpha ?? 0.3;
  const window = r.window ?? 8;
  const minTokens = r.minTokens ?? 1;
  if (!(typeof alpha === "number" && alpha > 0 && alpha <= 1)) throw new RangeError(`monitor.rule.alpha must be in (0, 1], got ${String(alpha)}`);
  if (!(Number.isInteger(window) && window >= 1)) throw new RangeError(`monitor.rule.window must be a positive integer, got ${String(window)}`);
  if (!(Number.isInteger(minTokens) && minTokens >= 1)) throw new RangeError(`monitor.rule.minTokens must be a positive integer, got ${String(minTokens)}`);
  return { layer: m.layer, w: m.w, b: m.b, kind: r.kind === "ema" ? 0 : 1, alpha, window, minTokens, threshold: m.threshold };
}

/** Per-candidate incremental UTF-8 decoding of token pieces. */
export class PieceDecoder {
  private readonly decoders: TextDecoder[] = [];
  push(candidate: number, piece: Uint8Array): string {
    let d = this.decoders[candidate];
    if (!d) d = this.decoders[candidate] = new TextDecoder("utf-8");
    return d.decode(piece, { stream: true });
  }
}

/** An async iterator over token events plus the final result; see Model.generateStream. */
export interface GenerationStream extends AsyncIterable<TokenEvent> {
  result: Promise<GenerateResult>;
}

export function makeStream(start: (onToken: (e: TokenEvent) => void) => Promise<GenerateResult>): GenerationStream {
  const queue: TokenEvent[] = [];
  let done = false;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const result = start((e) => {
    queue.push(e);
    notify();
  }).then(
    (r) => {
      done = true;
      notify();
      return r;
    },
    (e) => {
      done = true;
      failure = e;
      notify();
      throw e;
    },
  );
  result.catch(() => undefined); // observed through the iterator or by the caller
  return {
    result,
    async *[Symbol.asyncIterator]() {
      while (true) {
        if (queue.length) {
          yield queue.shift()!;
          continue;
        }
        if (done) {
          if (failure) throw failure;
          return;
        }
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
}


/** Where a generation's prompt goes in the KV cache: a chat's own sequence (see core/session). */
export interface SequencePlacement {
  /** The prompt's sequence; candidate 0 continues it. */
  seq: number;
  /** Cells of `seq` before this position are reused (already hold the prompt's first tokens). */
  pos0: number;
  /** Candidate -> sequence ([0] === seq). */
  seqs: Int32Array;
}

/** One checked generation request for {@link runGeneration}. */
export interface GenerationJob {
  ctx: NativeContext;
  /** The rendered prompt and its tokens (all of them; with a placement, those from pos0 are prefilled). */
  text: string;
  tokens: Int32Array;
  o: ResolvedGenerateOptions;
  /** Every layer the request names (capture.layers), checked, with the addon's codes. */
  layers: { specs: LayerSpec[]; codes: Int32Array } | null;
  /** The monitor's layer code, when a monitor is given. */
  monitorCode: number | null;
  nEmbd: number;
  /** The caller's hooks and signal. */
  options: GenerateOptions;
  isDisposed: () => boolean;
  /** A chat's sequence; none: the prompt goes into sequence 0 of a cleared cache. */
  placement?: SequencePlacement;
}

/** What runGeneration returns besides the result: the addon's view of each candidate. */
export interface GenerationRun {
  result: GenerateResult;
  /** Null when nothing was decoded after the prefill (vetoed, aborted). */
  native: NativeGenerateResult | null;
  /** Whether the prompt's prefill completed (its cells are in the cache). */
  prefilled: boolean;
}

/**
 * Runs one generation on a native context: (1) prefill the prompt (into sequence 0, or
 * onto a chat's sequence after its cached prefix), reading its hidden state on the way;
 * (2) hand it to the hook, which may veto; (3) decode the n candidates in parallel
 * sequences sharing the prompt's cells, with the monitor reading each token.
 */
export async function runGeneration(job: GenerationJob): Promise<GenerationRun> {
  const { ctx, text, tokens, o, layers, nEmbd, options, placement } = job;
  const signal = options.signal;
  const t0 = performance.now();
  const onAbort = () => ctx.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  const timings = { prefillMs: 0, hookMs: 0, decodeMs: 0, steps: 0, totalMs: 0 };
  const base = { prompt: text, promptTokens: tokens.length, seed: o.seed, timings };
  let prefilled = false;
  const emptyResult = (reason: "vetoed" | "aborted", prompt: Activations | null): GenerationRun => {
    timings.totalMs = performance.now() - t0;
    const candidates: GenerationCandidate[] = Array.from({ length: o.n }, () => ({
      text: "",
      tokens: new Int32Array(0),
      finishReason: reason,
      hidden: { prompt, response: null },
    }));
    return { result: { ...base, candidates, vetoed: reason === "vetoed" }, native: null, prefilled };
  };
  try {
    // 1. prefill: the prompt stays in its sequence; its hidden state is read on the way
    const promptOut = layers && o.capture!.prompt ? layers.specs.map(() => new Float32Array(nEmbd)) : [];
    const pos0 = placement?.pos0 ?? 0;
    const fresh = tokens.subarray(pos0);
    const prefill = { tokens: fresh, offsets: Uint32Array.of(0, fresh.length), keep: true, ...(placement ? { seq: placement.seq, pos0 } : {}) };
    try {
      if (promptOut.length) await ctx.capture({ ...prefill, layers: layers!.codes, pool: 0, outputs: promptOut, earlyExit: false });
      else await ctx.decode(prefill);
    } catch (e) {
      if ((e as { code?: string }).code === "ABORTED" && (e as { nativeJob?: boolean }).nativeJob) return emptyResult("aborted", null);
      throw e;
    }
    timings.prefillMs = performance.now() - t0;
    prefilled = true;
    const promptActs = promptOut.length
      ? new Activations(layers!.specs, "last", nEmbd, 1, Uint32Array.of(tokens.length), promptOut, Uint32Array.of(0, 1))
      : null;

    // 2. the hook (a guard) sees the prompt before any token is sampled
    if (options.onPromptHidden) {
      const th = performance.now();
      const verdict = await options.onPromptHidden(promptActs!);
      timings.hookMs = performance.now() - th;
      if (verdict && typeof verdict === "object" && verdict.stop === true) return emptyResult("vetoed", promptActs);
    }
    if (job.isDisposed()) throw new ModelStateError("MODEL_DISPOSED", "the model was disposed during generation");
    if (signal?.aborted) return emptyResult("aborted", promptActs);

    // 3. n candidates in parallel sequences sharing the prompt's cells; the response layers are
    // the requested ones (when response capture is on) plus the monitor's
    const exposed = layers && o.capture!.response ? layers : null;
    const respSpecs: LayerSpec[] = exposed ? [...exposed.specs] : [];
    const respCodes: number[] = exposed ? Array.from(exposed.codes) : [];
    let monitorSlot = -1;
    if (o.monitor) {
      monitorSlot = respCodes.indexOf(job.monitorCode!);
      if (monitorSlot < 0) {
        monitorSlot = respCodes.length;
        respSpecs.push(o.monitor.layer);
        respCodes.push(job.monitorCode!);
      }
    }
    const respOut = respSpecs.map(() => new Float32Array(o.n * nEmbd));
    const decoder = new PieceDecoder();
    const onToken = options.onToken;
    const m = o.monitor;
    const r = await ctx.generate(
      {
        n: o.n,
        maxTokens: o.maxTokens,
        temperature: o.temperature,
        topK: o.topK,
        topP: o.topP,
        minP: o.minP,
        seed: o.seed,
        stop: o.stop,
        ignoreEos: o.ignoreEos,
        layers: Int32Array.from(respCodes),
        pool: o.capture?.response === "mean" ? 1 : 0,
        outputs: respOut,
        ...(placement ? { seqs: placement.seqs, keep: true } : {}),
        ...(m ? { monitor: { slot: monitorSlot, w: m.w, b: m.b, kind: m.kind, alpha: m.alpha, window: m.window, threshold: m.threshold, minTokens: m.minTokens } } : {}),
      },
      onToken ? (candidate, token, piece) => onToken({ candidate, token, text: decoder.push(candidate, piece) }) : undefined,
    );
    timings.decodeMs = r.decodeMs;
    timings.steps = r.steps;
    timings.totalMs = performance.now() - t0;
    const utf8 = new TextDecoder("utf-8");
    const nExposed = exposed ? exposed.specs.length : 0;
    const candidates: GenerationCandidate[] = r.candidates.map((c, i) => ({
      text: utf8.decode(c.text),
      tokens: c.tokens,
      finishReason: c.finishReason,
      hidden: {
        prompt: promptActs,
        response:
          exposed && c.decoded > 0
            ? new Activations(
                exposed.specs,
                o.capture!.response as "last" | "mean",
                nEmbd,
                1,
                Uint32Array.of(c.tokens.length),
                respOut.slice(0, nExposed).map((d) => d.subarray(i * nEmbd, (i + 1) * nEmbd)),
                Uint32Array.of(0, 1),
              )
            : null,
      },
      ...(c.scores
        ? { monitor: { scores: c.scores, aggregate: c.aggregate!, flaggedAt: c.flaggedAt!, flagged: c.finishReason === "flagged" } }
        : {}),
    }));
    return { result: { ...base, candidates, vetoed: false }, native: r, prefilled };
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
