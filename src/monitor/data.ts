/**
 * Token-level features for monitors: for each response, the hidden states of its
 * tokens read after its instruction (the instruction rendered with the assistant
 * prefix, the response tokenized as plain text after it, as generation produces it),
 * and the instruction's own last-token state (for the prompt-only baseline). Captured
 * in chunks so memory holds only the response rows.
 */
import type { LayerSpec } from "../core/activations";
import { chatOptionOf, DEFAULT_INPUT_FORMAT, type InputFormat } from "../core/chat";
import { checkOnLong, cutInstruction, type OnLong } from "../core/corpus";
import type { Model } from "../core/model";
import { InputError } from "../errors";
import type { RankItem } from "../srr/data";

/** One response to monitor: its instruction, text and label. */
export interface MonitoredResponse {
  id: string;
  source: string;
  prompt: RankItem["prompt"];
  text: string;
  /** 1 = unsafe. */
  label: 0 | 1;
}

/** Responses of response lists (every candidate of every list). */
export function responsesOf(items: readonly RankItem[]): MonitoredResponse[] {
  const out: MonitoredResponse[] = [];
  for (const it of items) it.candidates.forEach((c, i) => out.push({ id: `${it.id}#${i}`, source: it.source, prompt: it.prompt, text: c.text, label: c.safe ? 0 : 1 }));
  return out;
}

export interface TokenFeatures {
  responses: MonitoredResponse[];
  nEmbd: number;
  /** Per layer: the response token rows, all responses concatenated. */
  tokens: Map<LayerSpec, Float32Array>;
  /** offsets[i]..offsets[i+1]: response i's rows. */
  offsets: Uint32Array;
  /** Per layer: each response's instruction last-token state (responses x nEmbd). */
  prompts: Map<LayerSpec, Float32Array>;
  /** Responses left out because their instruction alone fills the context (ids), or their text is empty. */
  skipped: string[];
  /** Responses whose instruction was cut to its last tokens (onLong "truncate"; ids). */
  truncatedPrompts: string[];
  /** Responses cut to fit maxResponseTokens or the context. */
  truncated: number;
}

export interface TokenFeatureOptions {
  input?: InputFormat;
  /** Response tokens read at most (default 64). */
  maxResponseTokens?: number;
  /** Sequences per capture call (default 64). */
  chunk?: number;
  /**
   * A response whose instruction leaves no room for it: "skip" (default; listed in `skipped`),
   * "truncate" (the instruction's last tokens are kept, leaving room for maxResponseTokens or a
   * quarter of the context), "error" (TEXT_TOO_LONG naming the response).
   */
  onLong?: OnLong;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** Reads token-level features of the responses at the given layers. */
export async function tokenFeatures(model: Model, responses: readonly MonitoredResponse[], layers: readonly LayerSpec[], o: TokenFeatureOptions = {}): Promise<TokenFeatures> {
  const chat = chatOptionOf(o.input ?? DEFAULT_INPUT_FORMAT);
  const maxResp = o.maxResponseTokens ?? 64;
  const chunk = o.chunk ?? 64;
  const d = model.info.nEmbd;
  const ctx = model.info.contextSize;
  const onLong = checkOnLong(o.onLong);
  const kept: MonitoredResponse[] = [];
  const skipped: string[] = [];
  const truncatedPrompts: string[] = [];
  let truncated = 0;
  // tokenize: [head | tail], the tail cut to the room left
  const seqs: { head: number; all: Int32Array }[] = [];
  const heads = new Map<string, Int32Array>();
  for (const r of responses) {
    const key = typeof r.prompt === "string" ? r.prompt : JSON.stringify(r.prompt);
    let head = heads.get(key);
    if (!head) heads.set(key, (head = model.tokenize(r.prompt, { chat })));
    if (head.length >= ctx) {
      if (onLong === "error") {
        throw new InputError("TEXT_TOO_LONG", `response ${JSON.stringify(r.id)}: its instruction has ${head.length} tokens but the context holds ${ctx}`);
      }
      if (onLong === "skip") {
        skipped.push(r.id);
        continue;
      }
      head = cutInstruction(head, ctx, maxResp, model.info.bosId);
      truncatedPrompts.push(r.id);
    }
    const room = Math.min(maxResp, ctx - head.length);
    const full = model.tokenizeText(r.text);
    if (full.length === 0) {
      skipped.push(r.id);
      continue;
    }
    if (full.length > room) truncated++;
    const tail = full.subarray(0, room);
    const all = new Int32Array(head.length + tail.length);
    all.set(head);
    all.set(tail, head.length);
    seqs.push({ head: head.length, all });
    kept.push(r);
  }
  const offsets = new Uint32Array(kept.length + 1);
  seqs.forEach((s, i) => (offsets[i + 1] = offsets[i] + (s.all.length - s.head)));
  const rows = offsets[kept.length];
  const tokens = new Map<LayerSpec, Float32Array>(layers.map((l) => [l, new Float32Array(rows * d)]));
  const prompts = new Map<LayerSpec, Float32Array>(layers.map((l) => [l, new Float32Array(kept.length * d)]));
  for (let c0 = 0; c0 < seqs.length; c0 += chunk) {
    const part = seqs.slice(c0, c0 + chunk);
    const off = new Uint32Array(part.length + 1);
    part.forEach((s, i) => (off[i + 1] = off[i] + s.all.length));
    const toks = new Int32Array(off[part.length]);
    part.forEach((s, i) => toks.set(s.all, off[i]));
    const acts = await model.capture({ tokens: toks, offsets: off }, { layers: [...layers], pool: "tokens", signal: o.signal });
    for (const l of layers) {
      const X = acts.layer(l);
      const T = tokens.get(l)!;
      const P = prompts.get(l)!;
      part.forEach((s, i) => {
        const r = c0 + i;
        const start = off[i];
        T.set(X.subarray((start + s.head) * d, (start + s.all.length) * d), offsets[r] * d);
        P.set(X.subarray((start + s.head - 1) * d, (start + s.head) * d), r * d);
      });
    }
    o.onProgress?.(Math.min(seqs.length, c0 + chunk), seqs.length);
  }
  return { responses: kept, nEmbd: d, tokens, offsets, prompts, skipped, truncatedPrompts, truncated };
}

/** Token labels: every token of a response carries the response's label. */
export function tokenLabels(f: TokenFeatures, which: readonly number[]): Uint8Array {
  let n = 0;
  for (const i of which) n += f.offsets[i + 1] - f.offsets[i];
  const y = new Uint8Array(n);
  let k = 0;
  for (const i of which) {
    y.fill(f.responses[i].label, k, k + (f.offsets[i + 1] - f.offsets[i]));
    k += f.offsets[i + 1] - f.offsets[i];
  }
  return y;
}

/** The token rows of some responses at one layer (a copy). */
export function tokenRows(f: TokenFeatures, layer: LayerSpec, which: readonly number[]): Float32Array {
  const d = f.nEmbd;
  const X = f.tokens.get(layer)!;
  let n = 0;
  for (const i of which) n += f.offsets[i + 1] - f.offsets[i];
  const out = new Float32Array(n * d);
  let k = 0;
  for (const i of which) {
    const len = f.offsets[i + 1] - f.offsets[i];
    out.set(X.subarray(f.offsets[i] * d, f.offsets[i + 1] * d), k * d);
    k += len;
  }
  return out;
}
