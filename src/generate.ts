/**
 * Generation with capture: n candidates decoded in parallel sequences that share
 * the prompt's KV cache, the prompt's hidden state handed to a hook before the
 * first token is sampled (where a guard can veto), and each response's hidden
 * state read from the same decoding work.
 */
import { randomInt } from "node:crypto";
import { TextDecoder } from "node:util";

import type { Activations, CaptureInput, LayerSpec, PrepareOptions } from "./model";

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

export type { CaptureInput };
