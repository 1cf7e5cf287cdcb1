/**
 * Corpus-scale capture: the hidden states of many texts written to a safetensors file
 * (or one per layer) chunk by chunk, in memory bounded by the chunk, resumable after a
 * crash, and shardable (io/capture-file.ts is the file side).
 *
 * Chunks are fixed: rows [start + k * chunkRows, start + (k + 1) * chunkRows) of the
 * shard, each captured in one call and recorded atomically, so a resumed capture redoes
 * exactly the chunks that were not recorded and writes the same bytes as an
 * uninterrupted run.
 *
 * Long records follow one policy (also used by the probe and ranker pipelines):
 * "skip" (default) leaves them out and lists their ids, "truncate" keeps the end of the
 * text (where a chat template puts the assistant prefix; the BOS token is kept), "error"
 * stops with TEXT_TOO_LONG (what was finished stays on disk and can be resumed).
 */
import { AbortError, InputError } from "../errors";
import { type CaptureFileSummary, digestFile, openCaptureFile, parseShard } from "../io/capture-file";
import type { Activations, CaptureInput, LayerSpec, PreparedTexts } from "./activations";
import type { ChatOptions } from "./chat";
import { checkOneOf } from "./validate";

/** What to do with a record longer than the context. */
export type OnLong = "skip" | "truncate" | "error";

export const ON_LONG: readonly OnLong[] = ["skip", "truncate", "error"];

/** Checks an onLong option against the policies a call allows (all three by default). */
export function checkOnLong<T extends OnLong = OnLong>(v: unknown, allowed: readonly T[] = ON_LONG as readonly T[], fallback: T = "skip" as T): T {
  return v === undefined ? fallback : checkOneOf("onLong", v, allowed);
}

/**
 * Fits a token sequence into `limit` tokens by the policy: the tokens (maybe cut: the
 * last ones, a leading BOS kept), or null to skip; "error" throws TEXT_TOO_LONG.
 */
export function fitTokens(tokens: Int32Array, limit: number, onLong: OnLong, bos: number | null, where: string): { tokens: Int32Array; truncated: boolean } | null {
  if (tokens.length <= limit) return { tokens, truncated: false };
  if (onLong === "skip") return null;
  if (onLong === "error") throw new InputError("TEXT_TOO_LONG", `${where} has ${tokens.length} tokens but the context holds ${limit}`);
  const keepBos = bos !== null && tokens[0] === bos && limit > 1;
  const out = new Int32Array(limit);
  if (keepBos) {
    out[0] = bos!;
    out.set(tokens.subarray(tokens.length - (limit - 1)), 1);
  } else out.set(tokens.subarray(tokens.length - limit));
  return { tokens: out, truncated: true };
}

/**
 * Response tokens kept after an instruction that alone fills the context: maxResponseTokens, and at
 * most a quarter of the context (at least 1).
 */
export function responseReserve(contextSize: number, maxResponseTokens: number): number {
  return Math.min(maxResponseTokens, Math.max(1, Math.floor(contextSize / 4)));
}

/** Such an instruction cut to its last tokens (a leading BOS kept), leaving responseReserve tokens. */
export function cutInstruction(head: Int32Array, contextSize: number, maxResponseTokens: number, bos: number | null): Int32Array {
  return fitTokens(head, contextSize - responseReserve(contextSize, maxResponseTokens), "truncate", bos, "")!.tokens;
}

/** The model as corpus capture uses it (structural: core/model.ts's Model is one). */
export interface CorpusModel {
  readonly info: { fingerprint: string; nEmbd: number; nLayer: number; contextSize: number; path: string; arch: string; name: string; bosId: number | null };
  tokenize(input: CaptureInput, options?: { chat?: boolean | ChatOptions }): Int32Array;
  capture(inputs: PreparedTexts, options: { layers: LayerSpec[]; pool?: "last" | "mean"; signal?: AbortSignal }): Promise<Activations>;
}

export interface CaptureToFileOptions {
  /** Output file (with splitLayers, the stem of the per-layer files). */
  out: string;
  layers: LayerSpec[];
  /** "last" (default) or "mean" (one row per text). */
  pool?: "last" | "mean";
  /** Render the texts as a user message with the chat template (default false). */
  chat?: boolean | ChatOptions;
  /** One file per layer. */
  splitLayers?: boolean;
  /** Capture rows [floor(i N / n), floor((i + 1) N / n)) of the N records (a "i/n" string or { index, count }). */
  shard?: string | { index: number; count: number };
  /** Continue the capture in progress at `out`. */
  resume?: boolean;
  /** Discard an unfinished capture at `out` and start over. */
  overwrite?: boolean;
  /** Records longer than the context: "skip" (default), "truncate", "error". */
  onLong?: OnLong;
  /** Rows per chunk (default 256): memory is bounded by chunkRows x layers x width. */
  chunkRows?: number;
  /** Ids of the records (default "0".."N-1"); stored in the file. */
  ids?: readonly string[];
  /** The input file, to refuse a resume over another input (its digest is stored). */
  sourceFile?: string;
  /** Extra metadata stored in the header. */
  metadata?: Record<string, string>;
  signal?: AbortSignal;
  onProgress?: (p: CorpusProgress) => void;
}

export interface CorpusProgress {
  rowsDone: number;
  rows: number;
  tokensDone: number;
  rowsPerSec: number;
  tokensPerSec: number;
  /** Seconds left at the current rate (NaN until known). */
  etaSec: number;
}

export interface CaptureToFileReport {
  out: string;
  files: string[];
  /** Rows of this file (the shard's). */
  rows: number;
  rowStart: number;
  rowEnd: number;
  captured: number;
  skipped: number;
  skippedIds: string[];
  truncated: number;
  truncatedIds: string[];
  /** Tokens decoded in this run. */
  tokens: number;
  seconds: number;
  bytes: number;
  /** Whether this run continued an earlier one. */
  resumed: boolean;
}

/** Captures records into a file; see the module comment. */
export async function captureToFile(model: CorpusModel, records: readonly CaptureInput[], o: CaptureToFileOptions): Promise<CaptureToFileReport> {
  const t0 = performance.now();
  if (!Array.isArray(records) || records.length === 0) throw new TypeError("records must be a non-empty array of texts or chat message arrays");
  if (o === null || typeof o !== "object" || typeof o.out !== "string" || o.out.length === 0) throw new TypeError("options.out must be a file path");
  const onLong = checkOnLong(o.onLong);
  const pool = o.pool ?? "last";
  if (pool !== "last" && pool !== "mean") throw new TypeError(`pool must be "last" or "mean", got ${JSON.stringify(pool)}`);
  const chunkRows = o.chunkRows ?? 256;
  if (!Number.isInteger(chunkRows) || chunkRows < 1) throw new RangeError(`chunkRows must be a positive integer, got ${String(chunkRows)}`);
  const ids = o.ids ?? records.map((_, i) => String(i));
  if (ids.length !== records.length) throw new RangeError(`${ids.length} ids for ${records.length} records`);
  const shard = typeof o.shard === "string" ? parseShard(o.shard) : o.shard;
  const chat = o.chat ?? false;
  const info = model.info;
  const writer = await openCaptureFile({
    out: o.out,
    layers: o.layers,
    width: info.nEmbd,
    rows: records.length,
    ...(shard ? { shard } : {}),
    fingerprint: info.fingerprint,
    pool,
    ...(o.sourceFile ? { sourceDigest: await digestFile(o.sourceFile) } : {}),
    rowIds: ids,
    metadata: {
      model_path: info.path,
      model_arch: info.arch,
      chat: typeof chat === "object" ? JSON.stringify(chat) : String(chat),
      on_long: onLong,
      chunk_rows: String(chunkRows),
      ...o.metadata,
    },
    tokenCounts: true,
    splitLayers: o.splitLayers,
    resume: o.resume,
    overwrite: o.overwrite,
  });
  const resumed = writer.resumed;
  const start = writer.progress.rowStart;
  const truncatedIds: string[] = [];
  const skippedIds: string[] = [];
  let tokens = 0;
  let summary: CaptureFileSummary;
  try {
    const total = writer.progress.rows;
    const doneAtStart = writer.progress.done;
    const tRun = performance.now();
    for (const [a, b] of writer.missingRanges()) {
      // chunks are aligned to the shard's start, so a resume redoes whole chunks
      for (let c0 = start + Math.floor((a - start) / chunkRows) * chunkRows; c0 < b; c0 += chunkRows) {
        if (o.signal?.aborted) throw new AbortError();
        const c1 = Math.min(c0 + chunkRows, writer.progress.rowEnd);
        const skipped: number[] = [];
        const counts = new Int32Array(c1 - c0);
        const kept: Int32Array[] = [];
        for (let r = c0; r < c1; r++) {
          const full = model.tokenize(records[r], { chat });
          counts[r - c0] = full.length;
          const fit = fitTokens(full, info.contextSize, onLong, info.bosId, `records[${r}] (id ${ids[r]})`);
          if (!fit) skipped.push(r);
          else {
            if (fit.truncated) truncatedIds.push(ids[r]);
            kept.push(fit.tokens);
          }
        }
        let perLayer: Float32Array[] = o.layers.map(() => new Float32Array(0));
        if (kept.length > 0) {
          const offsets = new Uint32Array(kept.length + 1);
          kept.forEach((t, i) => (offsets[i + 1] = offsets[i] + t.length));
          const toks = new Int32Array(offsets[kept.length]);
          kept.forEach((t, i) => toks.set(t, offsets[i]));
          const acts = await model.capture({ tokens: toks, offsets }, { layers: o.layers, pool, signal: o.signal });
          perLayer = o.layers.map((l) => acts.layer(l));
          tokens += toks.length;
        }
        await writer.writeRows(c0, perLayer, { skipped, tokenCounts: counts });
        const p = writer.progress;
        const secs = (performance.now() - tRun) / 1000;
        const rowsNow = p.done - doneAtStart;
        const rate = secs > 0 ? rowsNow / secs : 0;
        o.onProgress?.({
          rowsDone: p.done,
          rows: total,
          tokensDone: tokens,
          rowsPerSec: rate,
          tokensPerSec: secs > 0 ? tokens / secs : 0,
          etaSec: rate > 0 ? (total - p.done) / rate : NaN,
        });
      }
    }
    // what was cut follows from the recorded token counts (the same after a resume)
    const counts = writer.recordedTokenCounts()!;
    const skippedSet = new Set(writer.skippedRows());
    const truncatedRows: number[] = [];
    if (onLong === "truncate") counts.forEach((n, i) => n > info.contextSize && !skippedSet.has(start + i) && truncatedRows.push(start + i));
    truncatedIds.length = 0;
    for (const r of truncatedRows) truncatedIds.push(ids[r]);
    summary = await writer.finish({ truncated_rows: String(truncatedRows.length) });
    skippedIds.push(...writer.skippedRows().map((r) => ids[r]));
  } finally {
    await writer.close();
  }
  return {
    out: o.out,
    files: summary.files,
    rows: summary.rowEnd - summary.rowStart,
    rowStart: summary.rowStart,
    rowEnd: summary.rowEnd,
    captured: summary.captured,
    skipped: summary.skipped,
    skippedIds,
    truncated: truncatedIds.length,
    truncatedIds,
    tokens,
    seconds: (performance.now() - t0) / 1000,
    bytes: summary.bytes,
    resumed,
  };
}

/** Inputs tokenized and fitted to the context by a long-record policy. */
export interface FittedInputs {
  /** The kept inputs' tokens (null when none is kept). */
  prepared: PreparedTexts | null;
  /** For each prepared text, the index of its input. */
  rows: number[];
  /** Indices of inputs left out (policy "skip"). */
  skipped: number[];
  /** Indices of inputs cut to the context (policy "truncate"). */
  truncated: number[];
}

/** Tokenizes inputs as the model reads them and applies the long-record policy to each. */
export function fitInputs(
  model: Pick<CorpusModel, "info" | "tokenize">,
  inputs: readonly CaptureInput[],
  o: { chat?: boolean | ChatOptions; onLong?: OnLong; limit?: number; name?: (i: number) => string } = {},
): FittedInputs {
  const onLong = checkOnLong(o.onLong);
  const limit = o.limit ?? model.info.contextSize;
  const kept: Int32Array[] = [];
  const rows: number[] = [];
  const skipped: number[] = [];
  const truncated: number[] = [];
  inputs.forEach((input, i) => {
    const fit = fitTokens(model.tokenize(input, { chat: o.chat }), limit, onLong, model.info.bosId, o.name ? o.name(i) : `texts[${i}]`);
    if (!fit) {
      skipped.push(i);
      return;
    }
    if (fit.truncated) truncated.push(i);
    kept.push(fit.tokens);
    rows.push(i);
  });
  if (kept.length === 0) return { prepared: null, rows, skipped, truncated };
  const offsets = new Uint32Array(kept.length + 1);
  kept.forEach((t, i) => (offsets[i + 1] = offsets[i] + t.length));
  const tokens = new Int32Array(offsets[kept.length]);
  kept.forEach((t, i) => tokens.set(t, offsets[i]));
  return { prepared: { tokens, offsets }, rows, skipped, truncated };
}
