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
import type { NativeContext } from "./native";

export type FinishReason = "eos" | "length" | "stop" | "aborted" | "vetoed";

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
export function resolveGenerateOptions(o: GenerateOptions, limits: { contextSize: number; sequences: number }) {
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
  };
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


/** One checked generation request for {@link runGeneration}. */
export interface GenerationJob {
  ctx: NativeContext;
  /** The rendered prompt and its tokens. */
  text: string;
  tokens: Int32Array;
  o: ResolvedGenerateOptions;
  layers: { specs: LayerSpec[]; codes: Int32Array } | null;
  nEmbd: number;
  /** The caller's hooks and signal. */
  options: GenerateOptions;
  isDisposed: () => boolean;
}

/**
 * Runs one generation on a native context: (1) prefill the prompt into sequence 0,
 * reading its hidden state on the way; (2) hand it to the hook, which may veto;
 * (3) decode the n candidates in parallel sequences sharing the prompt's cells.
 */
export async function runGeneration(job: GenerationJob): Promise<GenerateResult> {
  const { ctx, text, tokens, o, layers, nEmbd, options } = job;
  const signal = options.signal;
  const t0 = performance.now();
  const onAbort = () => ctx.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  const timings = { prefillMs: 0, hookMs: 0, decodeMs: 0, steps: 0, totalMs: 0 };
  const base = { prompt: text, promptTokens: tokens.length, seed: o.seed, timings };
  const emptyResult = (reason: "vetoed" | "aborted", prompt: Activations | null): GenerateResult => {
    timings.totalMs = performance.now() - t0;
    const candidates: GenerationCandidate[] = Array.from({ length: o.n }, () => ({
      text: "",
      tokens: new Int32Array(0),
      finishReason: reason,
      hidden: { prompt, response: null },
    }));
    return { ...base, candidates, vetoed: reason === "vetoed" };
  };
  try {
    // 1. prefill: the prompt goes into sequence 0 and stays there; its hidden state is read on the way
    const promptOut = layers && o.capture!.prompt ? layers.specs.map(() => new Float32Array(nEmbd)) : [];
    const prefill = { tokens, offsets: Uint32Array.of(0, tokens.length), keep: true };
    try {
      if (promptOut.length) await ctx.capture({ ...prefill, layers: layers!.codes, pool: 0, outputs: promptOut, earlyExit: false });
      else await ctx.decode(prefill);
    } catch (e) {
      if ((e as { code?: string }).code === "ABORTED") return emptyResult("aborted", null);
      throw e;
    }
    timings.prefillMs = performance.now() - t0;
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

    // 3. n candidates in parallel sequences sharing the prompt's cells
    const resp = layers && o.capture!.response ? layers : null;
    const respOut = resp ? resp.specs.map(() => new Float32Array(o.n * nEmbd)) : [];
    const decoder = new PieceDecoder();
    const onToken = options.onToken;
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
        layers: resp ? resp.codes : new Int32Array(0),
        pool: o.capture?.response === "mean" ? 1 : 0,
        outputs: respOut,
      },
      onToken ? (candidate, token, piece) => onToken({ candidate, token, text: decoder.push(candidate, piece) }) : undefined,
    );
    timings.decodeMs = r.decodeMs;
    timings.steps = r.steps;
    timings.totalMs = performance.now() - t0;
    const utf8 = new TextDecoder("utf-8");
    const candidates: GenerationCandidate[] = r.candidates.map((c, i) => ({
      text: utf8.decode(c.text),
      tokens: c.tokens,
      finishReason: c.finishReason,
      hidden: {
        prompt: promptActs,
        response:
          resp && c.decoded > 0
            ? new Activations(
                resp.specs,
                o.capture!.response as "last" | "mean",
                nEmbd,
                1,
                Uint32Array.of(c.tokens.length),
                respOut.map((d) => d.subarray(i * nEmbd, (i + 1) * nEmbd)),
                Uint32Array.of(0, 1),
              )
            : null,
      },
    }));
    return { ...base, candidates, vetoed: false };
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}
