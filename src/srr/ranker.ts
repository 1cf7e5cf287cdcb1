/**
 * Safety Representation Ranking (arXiv 2505.15710): rank candidate responses to
 * one instruction by the model's own hidden states and pick the safest.
 *
 *   instruction: last-token hidden state of the chat-formatted instruction with the assistant prefix
 *   candidate:   last-token hidden state of that text followed by the candidate response
 *   ranker:      shared projection, one Transformer encoder layer over [instruction, candidates],
 *                cosine(instruction, candidate) / tau, softmax; trained listwise (src/srr/network.ts)
 *
 * A ranker file is JSON data: format and version, config, weights, layer, input
 * rendering and the model's fingerprint (the envelope in src/io/model-file.ts).
 */

import type { CaptureInput, LayerSpec } from "../core/activations";
import { chatOptionOf, type ChatOptions, DEFAULT_INPUT_FORMAT, type InputFormat, readInputFormat } from "../core/chat";
import type { GenerateOptions, GenerateResult, GenerationCandidate } from "../core/generate";
import type { Model } from "../core/model";
import { checkModelIdentity, identityOf, type ModelIdentity, readEnvelope, readJsonFile, writeJsonFile, writeJsonFileSync } from "../io/model-file";
import { checkOnLong, cutInstruction, responseReserve } from "../core/corpus";
import { InputError } from "../errors";
import { initRanker, type RankerConfig, type RankerParams, type RankList, rankerScores } from "./network";
import { trainRanker } from "./train";




export const RANKER_FORMAT = "safety-lens/ranker";
export const RANKER_VERSION = 1;

export interface RankResult {
  /** Higher = safer (cosine similarity to the instruction after the encoder). */
  scores: Float32Array;
  /** Candidate indices, safest first. */
  order: number[];
  best: number;
  /** softmax(scores / tau): the ranker's distribution over candidates. */
  probabilities: Float32Array;
  /**
   * Candidates whose score was NaN (a damaged ranker, or NaN in the model's hidden
   * states): they rank last, as the least safe, and get probability 0 (fail closed).
   */
  invalid: number[];
}

export interface RankerTrainOptions {
  layer?: LayerSpec;
  lite?: boolean;
  width?: number;
  heads?: number;
  ff?: number;
  tau?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  seed?: number;
  patience?: number;
  input?: InputFormat;
  maxResponseTokens?: number;
  onLog?: (m: string) => void;
  /**
   * A file the best ranker so far is written to (atomically) at each improvement, so an
   * interruption or a late error loses no finished epoch.
   */
  checkpoint?: string;
}

/** Default layer: about a quarter of the depth, as the paper. */
export function defaultRankerLayer(nLayer: number): number {
  return Math.max(0, Math.round(nLayer / 4) - 1);
}

export class Ranker {
  private constructor(
    readonly config: RankerConfig,
    private readonly params: RankerParams,
    readonly layer: LayerSpec,
    readonly input: InputFormat,
    readonly maxResponseTokens: number,
    readonly modelInfo: ModelIdentity,
    readonly training: Record<string, unknown>,
  ) {}

  /** The `chat` option that renders instructions as this ranker expects. */
  chatOption(): boolean | ChatOptions {
    return chatOptionOf(this.input);
  }

  /** Trains a ranker on lists of features (see srrFeatures). */
  static fromLists(
    model: Pick<Model, "info">,
    train: RankList[],
    val: RankList[] | undefined,
    o: RankerTrainOptions & { layer: LayerSpec },
  ): { ranker: Ranker; summary: Record<string, unknown> } {
    const { config, params } = initRanker(
      { d: model.info.nEmbd, lite: o.lite ?? false, ...(o.width ? { width: o.width } : {}), ...(o.heads ? { heads: o.heads } : {}), ...(o.ff ? { ff: o.ff } : {}), ...(o.tau ? { tau: o.tau } : {}) },
      o.seed ?? 1,
    );
    const r = trainRanker(config, params, train, {
      epochs: o.epochs,
      batchSize: o.batchSize,
      lr: o.lr,
      weightDecay: o.weightDecay,
      seed: o.seed ?? 1,
      val,
      patience: o.patience,
      onEpoch: o.onLog ? (e) => o.onLog!(`epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)}${e.valLoss !== undefined ? `, val loss ${e.valLoss.toFixed(4)}` : ""}`) : undefined,
      onImprove: o.checkpoint
        ? (params, e) => {
            const partial = new Ranker(config, params, o.layer, o.input ?? DEFAULT_INPUT_FORMAT, o.maxResponseTokens ?? 256, identityOf(model.info), {
              checkpoint: { epoch: e.epoch, trainLoss: e.trainLoss, valLoss: e.valLoss ?? null },
              created: new Date().toISOString(),
            });
            writeJsonFileSync(o.checkpoint!, partial.toJSON());
          }
        : undefined,
    });
    const ranker = new Ranker(config, r.params, o.layer, o.input ?? DEFAULT_INPUT_FORMAT, o.maxResponseTokens ?? 256, identityOf(model.info), {
      summary: r.summary,
      created: new Date().toISOString(),
    });
    return { ranker, summary: r.summary as unknown as Record<string, unknown> };
  }

  /** Scores one list of precomputed features. */
  scoreList(list: RankList): RankResult {
    const scores = rankerScores(this.config, this.params, list);
    return finishRanking(scores, this.config.tau);
  }

  /**
   * Ranks candidate responses to one instruction (one batched capture of instruction and
   * candidates). An instruction that alone fills the context is an error, or with
   * onLong "truncate" its last tokens are read.
   */
  async rank(model: Model, instruction: CaptureInput, candidates: readonly string[], options: { onLong?: "error" | "truncate" } = {}): Promise<RankResult> {
    this.checkModel(model);
    if (!Array.isArray(candidates) || candidates.length === 0) throw new TypeError("candidates must be a non-empty array of strings");
    candidates.forEach((c, i) => {
      if (typeof c !== "string" || c.length === 0) throw new TypeError(`candidates[${i}] must be a non-empty string`);
    });
    const [list] = await srrFeatures(model, [{ prompt: instruction, candidates: candidates.map((text) => ({ text })) }], this.layer, {
      input: this.input,
      maxResponseTokens: this.maxResponseTokens,
      onLong: options.onLong,
    });
    return this.scoreList(list);
  }

  /**
   * Best-of-N safe generation: n candidates decode in parallel from one prefill;
   * the instruction's and each response's hidden states come from the generation
   * itself (no second pass); the safest is returned with all scores.
   */
  async generateSafest(
    model: Model,
    instruction: CaptureInput,
    options: GenerateOptions = {},
  ): Promise<GenerateResult & { ranking: RankResult; safest: GenerationCandidate; rankMs: number }> {
    this.checkModel(model);
    const userLayers = options.capture?.layers ?? [];
    const layers = [this.layer, ...userLayers.filter((l) => l !== this.layer)];
    const out = await model.generate(instruction, {
      n: 4,
      ...options,
      chat: this.chatOption(),
      capture: { layers, prompt: true, response: "last" },
    });
    const t0 = performance.now();
    const ranking = this.rankCandidates(out.candidates);
    return { ...out, ranking, safest: out.candidates[ranking.best], rankMs: performance.now() - t0 };
  }

  /**
   * Ranks generated candidates from the hidden states their generation captured (the
   * prompt's and each response's last token at the ranker's layer). A candidate with no
   * response state (empty) or flagged by a monitor ranks last.
   */
  rankCandidates(candidates: readonly GenerationCandidate[]): RankResult {
    const d = this.modelInfo.nEmbd;
    const prompt = candidates[0]?.hidden.prompt;
    const usable = candidates
      .map((c, i) => ({ c, i }))
      .filter((x) => x.c.hidden.response !== null && x.c.finishReason !== "flagged" && x.c.hidden.response.layers.includes(this.layer));
    const scores = new Float32Array(candidates.length).fill(Number.NEGATIVE_INFINITY);
    if (usable.length > 0 && prompt && prompt.layers.includes(this.layer)) {
      const v = new Float32Array(usable.length * d);
      usable.forEach((x, k) => v.set(x.c.hidden.response!.layer(this.layer), k * d));
      const partial = rankerScores(this.config, this.params, { u: prompt.layer(this.layer), v, m: usable.length });
      usable.forEach((x, k) => (scores[x.i] = partial[k]));
    }
    return finishRanking(scores, this.config.tau);
  }

  checkModel(model: Pick<Model, "info">, file: string | null = null): void {
    checkModelIdentity("ranker", this.modelInfo, model.info, file);
  }

  toJSON(): Record<string, unknown> {
    const weights: Record<string, number[]> = {};
    for (const [k, v] of Object.entries(this.params)) weights[k] = Array.from(v);
    return {
      format: RANKER_FORMAT,
      version: RANKER_VERSION,
      config: this.config,
      layer: this.layer,
      input: this.input,
      maxResponseTokens: this.maxResponseTokens,
      model: this.modelInfo,
      weights,
      training: this.training,
    };
  }

  async save(file: string): Promise<void> {
    await writeJsonFile(file, this.toJSON());
  }

  static async load(file: string, model?: Pick<Model, "info">): Promise<Ranker> {
    const r = Ranker.fromJSON(await readJsonFile(file, "ranker"), file);
    if (model) r.checkModel(model, file);
    return r;
  }

  /** Validates a parsed ranker file: every weight block's size follows from the config. */
  static fromJSON(json: unknown, file: string | null = null): Ranker {
    const { json: o, model: m, training, bad } = readEnvelope(json, file, "ranker", RANKER_FORMAT, RANKER_VERSION);
    const c = o.config as Record<string, unknown>;
    const int = (v: unknown, name: string, min: number, max: number) => {
      if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) bad(`config.${name} must be an integer between ${min} and ${max}`);
      return v as number;
    };
    if (!c || typeof c !== "object") bad("config missing");
    const config: RankerConfig = {
      d: int(c.d, "d", 1, 1 << 16),
      width: int(c.width, "width", 1, 4096),
      heads: int(c.heads, "heads", 1, 64),
      ff: int(c.ff, "ff", 1, 1 << 16),
      tau: typeof c.tau === "number" && c.tau > 0 && Number.isFinite(c.tau) ? c.tau : bad("config.tau must be a positive number"),
      dropout: typeof c.dropout === "number" && c.dropout >= 0 && c.dropout < 1 ? c.dropout : bad("config.dropout must be in [0, 1)"),
      lite: typeof c.lite === "boolean" ? c.lite : bad("config.lite must be a boolean"),
    };
    if (config.d !== m.nEmbd) bad(`config.d (${config.d}) differs from the model width (${m.nEmbd})`);
    if (config.width % config.heads !== 0) bad("config.width must be a multiple of config.heads");
    const layer = o.layer as LayerSpec;
    if (!(layer === "final" || (Number.isInteger(layer) && (layer as number) >= 0 && (layer as number) < m.nLayer))) bad(`invalid layer ${JSON.stringify(layer)}`);
    const input = readInputFormat(o.input, bad);
    const maxResponseTokens = int(o.maxResponseTokens, "maxResponseTokens", 1, 1 << 20);
    // expected block sizes from a fresh init with this config
    const expected = initRanker(config, 1).params;
    const w = o.weights as Record<string, unknown>;
    if (!w || typeof w !== "object" || Array.isArray(w)) bad("weights missing");
    const params: RankerParams = {};
    for (const [k, ref] of Object.entries(expected)) {
      const v = w[k];
      const block = Array.isArray(v) && v.length === ref.length && v.every((x) => typeof x === "number") ? Float32Array.from(v as number[]) : null;
      // finite as float32: a 1e308 is finite JSON but Infinity once stored
      if (!block || !block.every((x) => Number.isFinite(x))) bad(`weights.${k} must be ${ref.length} finite numbers`);
      params[k] = block!;
    }
    for (const k of Object.keys(w)) if (!Object.prototype.hasOwnProperty.call(expected, k)) bad(`unexpected weight block ${JSON.stringify(k)}`);
    return new Ranker(config, params, layer, input, maxResponseTokens, m, training);
  }
}

export function finishRanking(scores: Float32Array, tau: number): RankResult {
  // NaN ranks below everything, even an empty response's -Infinity
  const key = (i: number) => (Number.isNaN(scores[i]) ? -1 : Number.isFinite(scores[i]) || scores[i] > 0 ? 1 : 0);
  const order = Array.from(scores.keys()).sort((a, b) => key(b) - key(a) || (key(a) === 1 ? scores[b] - scores[a] : 0) || a - b);
  const invalid = Array.from(scores.keys()).filter((i) => Number.isNaN(scores[i]));
  let mx = Number.NEGATIVE_INFINITY;
  for (const s of scores) if (Number.isFinite(s)) mx = Math.max(mx, s);
  const probabilities = new Float32Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    probabilities[i] = Number.isFinite(scores[i]) ? Math.exp((scores[i] - mx) / tau) : 0;
    sum += probabilities[i];
  }
  if (sum > 0) for (let i = 0; i < scores.length; i++) probabilities[i] /= sum;
  return { scores, order, best: order[0], probabilities, invalid };
}

export interface SrrListInput {
  prompt: CaptureInput;
  candidates: { text: string; safe?: boolean }[];
}

/**
 * Features for ranking: per list, the instruction's last-token hidden state and
 * each candidate's (instruction followed by the response), at one layer, in one
 * batched capture. Responses are tokenized as plain text after the rendered
 * instruction (as generation produces them) and cut to maxResponseTokens.
 */
export async function srrFeatures(
  model: Model,
  lists: readonly SrrListInput[],
  layer: LayerSpec,
  opts: {
    input?: InputFormat;
    maxResponseTokens?: number;
    /** An instruction that leaves no room for a response: "error" (default, TEXT_TOO_LONG) or "truncate" (its last tokens are kept). */
    onLong?: "error" | "truncate";
    signal?: AbortSignal;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<RankList[]> {
  const onLong = checkOnLong<"error" | "truncate">(opts.onLong, ["error", "truncate"], "error");
  const chat = chatOptionOf(opts.input ?? DEFAULT_INPUT_FORMAT);
  const maxResp = opts.maxResponseTokens ?? 256;
  const ctx = model.info.contextSize;
  const seqs: Int32Array[] = [];
  const shape: { m: number; safe: Uint8Array | undefined }[] = [];
  lists.forEach((l, li) => {
    let head = model.tokenize(l.prompt, { chat });
    if (head.length >= ctx) {
      // the instruction alone fills the context: keep its end (the assistant prefix) and room for the responses' start
      if (onLong === "error") {
        const reserve = responseReserve(ctx, maxResp);
        throw new InputError("TEXT_TOO_LONG", `lists[${li}].prompt has ${head.length} tokens but the context holds ${ctx}, and ${reserve} of them are kept for the responses`);
      }
      head = cutInstruction(head, ctx, maxResp, model.info.bosId);
    }
    seqs.push(head);
    const room = Math.max(1, Math.min(maxResp, ctx - head.length));
    const labelled = l.candidates.every((c) => typeof c.safe === "boolean");
    l.candidates.forEach((c, ci) => {
      if (typeof c.text !== "string" || c.text.length === 0) throw new TypeError(`lists[${li}].candidates[${ci}] has no text`);
      const tail = model.tokenizeText(c.text).subarray(0, room);
      const all = new Int32Array(head.length + tail.length);
      all.set(head);
      all.set(tail, head.length);
      seqs.push(all);
    });
    shape.push({ m: l.candidates.length, safe: labelled ? Uint8Array.from(l.candidates, (c) => (c.safe ? 1 : 0)) : undefined });
  });
  const offsets = new Uint32Array(seqs.length + 1);
  seqs.forEach((t, i) => (offsets[i + 1] = offsets[i] + t.length));
  const tokens = new Int32Array(offsets[seqs.length]);
  seqs.forEach((t, i) => tokens.set(t, offsets[i]));
  const acts = await model.capture(
    { tokens, offsets },
    { layers: [layer], pool: "last", signal: opts.signal, onProgress: opts.onProgress ? (p) => opts.onProgress!(p.textsDone, p.texts) : undefined },
  );
  const X = acts.layer(layer);
  const d = model.info.nEmbd;
  const out: RankList[] = [];
  let row = 0;
  for (const s of shape) {
    const u = X.slice(row * d, (row + 1) * d);
    const v = X.slice((row + 1) * d, (row + 1 + s.m) * d);
    out.push({ u, v, m: s.m, ...(s.safe ? { safe: s.safe } : {}) });
    row += 1 + s.m;
  }
  return out;
}
