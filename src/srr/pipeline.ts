/**
 * SRR pipelines on labelled response lists: load, split by instruction (or by
 * source), read features, train the ranker, evaluate it against the baselines.
 */
import { createHash } from "node:crypto";

import { checkLayers, type LayerSpec } from "../core/activations";
import { chatOptionOf, DEFAULT_INPUT_FORMAT, type InputFormat } from "../core/chat";
import type { OnLong } from "../core/corpus";
import { InputError } from "../errors";
import type { Model } from "../core/model";
import { Probe } from "../probe/probe";
import type { Features } from "../core/activations";
import { hasBothLabels, loadResponseFiles, RankItem, splitByInstruction, splitBySource } from "./data";
import { expectedRandomTop1, firstScores, longestScores, rankingMetrics, RankingMetrics, scoreItems, shortestScores, top1SafeAccuracy } from "./metrics";
import type { RankList } from "./network";
import { defaultRankerLayer, Ranker, RankerTrainOptions, srrFeatures } from "./ranker";

export interface RankerDataOptions {
  files: string[];
  seed?: number;
  fractions?: [number, number, number];
  limitPerFile?: number;
  /** Replace bytes that are not valid UTF-8 instead of failing. */
  lossyUtf8?: boolean;
  /**
   * Lists whose instruction alone fills the context: "skip" (default; counted and listed),
   * "truncate" (the instruction's end and the responses' start are read), "error".
   */
  onLong?: OnLong;
  maxCandidates?: number;
  maxChars?: number;
  /** Cross-source generalisation: train (and validate) on every other source, test on these. */
  testSources?: string[];
  /** Shuffle each list's candidates (seeded) so file order cannot leak labels. Default true. */
  shuffle?: boolean;
  onLog?: (m: string) => void;
}

export interface RankerEvaluation extends RankingMetrics {
  skipped: number;
  /** Lists left out because their instruction alone fills the context (ids). */
  skippedLongIds: string[];
  /** Lists whose instruction was cut to its end (ids). */
  truncatedIds: string[];
  baselines: { random: number; first: number; shortest: number; longest: number; logprob: number | null; probe: number | null };
}

/**
 * Candidates in a seeded, per-list random order. Some files list the safe
 * candidate first (HH-RLHF: chosen, then rejected), which would let any scorer
 * that ties win through the lowest-index tie rule, and make "first" a perfect
 * baseline. The ranker itself is permutation-equivariant.
 */
export function shuffleCandidates(items: RankItem[], seed: number): RankItem[] {
  return items.map((it) => {
    const h = createHash("sha256").update(`${seed}\0${it.id}\0${it.prompt}`).digest();
    let st = h.readUInt32LE(0) || 1;
    const next = () => ((st = (Math.imul(st, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const c = it.candidates.slice();
    for (let i = c.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [c[i], c[j]] = [c[j], c[i]];
    }
    return { ...it, candidates: c };
  });
}

export async function loadRankerData(o: RankerDataOptions) {
  const loaded = await loadResponseFiles(o.files, { limitPerFile: o.limitPerFile, lossyUtf8: o.lossyUtf8, maxCandidates: o.maxCandidates, maxChars: o.maxChars });
  const stats = loaded.stats;
  const items = o.shuffle === false ? loaded.items : shuffleCandidates(loaded.items, o.seed ?? 1);
  let train: RankItem[], val: RankItem[], test: RankItem[];
  if (o.testSources && o.testSources.length) {
    const trainSources = [...new Set(items.map((it) => it.source))].filter((src) => !o.testSources!.includes(src));
    // instructions shared across sources (JBB goals) are dropped from the test side: no instruction is in both
    const bySource = splitBySource(items, trainSources, o.testSources, { dropSharedPrompts: true });
    const inner = splitByInstruction(bySource.train, { seed: o.seed ?? 1, fractions: [0.85, 0.15, 0] });
    train = inner.train;
    val = inner.val;
    test = bySource.test;
  } else {
    ({ train, val, test } = splitByInstruction(items, { seed: o.seed ?? 1, fractions: o.fractions ?? [0.7, 0.15, 0.15] }));
  }
  o.onLog?.(
    `data: ${items.length} lists, ${stats.candidates} candidates (${stats.withBoth} lists with both labels) from ${o.files.length} file(s); ` +
      `split ${train.length}/${val.length}/${test.length}${o.testSources?.length ? ` (test sources: ${o.testSources.join(", ")})` : ""}`,
  );
  return { items, stats, train, val, test };
}

/**
 * The long-record policy on lists: those whose rendered instruction leaves no room for a
 * response are skipped (ids listed), kept to be truncated, or refused (TEXT_TOO_LONG).
 */
export function fitLists(model: Model, items: RankItem[], input: InputFormat | undefined, onLong: OnLong = "skip"): { kept: RankItem[]; skippedIds: string[]; truncatedIds: string[] } {
  const chat = chatOptionOf(input ?? DEFAULT_INPUT_FORMAT);
  const limit = model.info.contextSize;
  const kept: RankItem[] = [];
  const skippedIds: string[] = [];
  const truncatedIds: string[] = [];
  for (const it of items) {
    const n = model.tokenize(it.prompt, { chat }).length;
    if (n < limit) kept.push(it);
    else if (onLong === "skip") skippedIds.push(it.id);
    else if (onLong === "truncate") {
      truncatedIds.push(it.id);
      kept.push(it);
    } else throw new InputError("TEXT_TOO_LONG", `list ${it.id}: its instruction has ${n} tokens but the context holds ${limit}`);
  }
  return { kept, skippedIds, truncatedIds };
}

function listsWithBoth(items: RankItem[]): { kept: RankItem[]; skipped: number } {
  const kept = items.filter(hasBothLabels);
  return { kept, skipped: items.length - kept.length };
}

/** Candidate features of every list flattened into one matrix, with labels 1 = unsafe (for the per-candidate probe). */
function flatten(lists: RankList[], d: number): { X: Features; y: Uint8Array } {
  const rows = lists.reduce((a, l) => a + l.m, 0);
  const data = new Float32Array(rows * d);
  const y = new Uint8Array(rows);
  let r = 0;
  for (const l of lists) {
    data.set(l.v, r * d);
    for (let i = 0; i < l.m; i++) y[r + i] = l.safe![i] ? 0 : 1;
    r += l.m;
  }
  return { X: { data, rows, cols: d }, y };
}

/** Evaluates a ranker on lists with both labels, beside the baselines on the same lists. */
export async function evaluateRanker(
  model: Model,
  ranker: Ranker,
  items: RankItem[],
  opts: {
    trainItems?: RankItem[];
    /** Features of `trainItems`' lists with both labels, when the caller already has them (saves a capture). */
    trainFeatures?: RankList[];
    logprob?: boolean;
    onLog?: (m: string) => void;
    onLong?: OnLong;
  } = {},
): Promise<RankerEvaluation> {
  ranker.checkModel(model);
  const fitted = fitLists(model, items, ranker.input, opts.onLong);
  const { kept, skipped } = listsWithBoth(fitted.kept);
  if (kept.length === 0) throw new RangeError("no list has both a safe and an unsafe candidate");
  const truncate = { onLong: "truncate" as const };
  const feats = await srrFeatures(model, kept, ranker.layer, { input: ranker.input, maxResponseTokens: ranker.maxResponseTokens, ...truncate });
  const ranked = feats.map((l) => ({ scores: ranker.scoreList(l).scores, safe: l.safe! }));
  const metrics = rankingMetrics(ranked);
  const baselines: RankerEvaluation["baselines"] = {
    random: expectedRandomTop1(ranked),
    first: top1SafeAccuracy(scoreItems(kept, firstScores)),
    shortest: top1SafeAccuracy(scoreItems(kept, shortestScores)),
    longest: top1SafeAccuracy(scoreItems(kept, longestScores)),
    logprob: null,
    probe: null,
  };
  if (opts.logprob ?? true) {
    // the model's own mean log-probability of each response given the instruction
    const pairs = kept.flatMap((it) => it.candidates.map((c) => ({ prompt: it.prompt, continuation: c.text })));
    // the same part of each response the ranker reads
    const lp = await model.continuationLogprobs(pairs, { chat: ranker.chatOption(), maxContinuationTokens: ranker.maxResponseTokens, onLong: "truncate" });
    let k = 0;
    const lists = kept.map((it) => {
      const scores = lp.mean.slice(k, k + it.candidates.length);
      k += it.candidates.length;
      return { scores, safe: it.candidates.map((c) => c.safe) };
    });
    baselines.logprob = top1SafeAccuracy(lists);
  }
  if (opts.trainItems && opts.trainItems.length) {
    // a per-candidate logistic probe: P(safe) of each response on its own
    const trainFeats =
      opts.trainFeatures ??
      (await srrFeatures(model, listsWithBoth(fitLists(model, opts.trainItems, ranker.input, opts.onLong).kept).kept, ranker.layer, {
        input: ranker.input,
        maxResponseTokens: ranker.maxResponseTokens,
        ...truncate,
      }));
    const { X, y } = flatten(trainFeats, model.info.nEmbd);
    const probe = Probe.train({ method: "logreg", layers: [ranker.layer], train: { features: [X], labels: y }, model });
    const d = model.info.nEmbd;
    baselines.probe = top1SafeAccuracy(
      feats.map((l) => {
        const s = probe.scoreFeatures([{ data: l.v, rows: l.m, cols: d }]);
        return { scores: s.map((p) => 1 - p), safe: l.safe! };
      }),
    );
  }
  opts.onLog?.(`evaluated ${kept.length} lists (${skipped} skipped without both labels${fitted.skippedIds.length ? `, ${fitted.skippedIds.length} longer than the context` : ""})`);
  return { ...metrics, skipped, skippedLongIds: fitted.skippedIds, truncatedIds: fitted.truncatedIds, baselines };
}

export interface TrainRankerJob extends RankerDataOptions, RankerTrainOptions {
  layer?: LayerSpec;
}

/** The whole job: data, features, training (early stopping on validation lists), evaluation on the test lists. */
export async function trainRankerOnFiles(model: Model, o: TrainRankerJob): Promise<{ ranker: Ranker; test: RankerEvaluation; seconds: number; trainSeconds: number }> {
  const t0 = performance.now();
  const layer = o.layer ?? defaultRankerLayer(model.info.nLayer);
  checkLayers([layer], model.info.nLayer);
  const data = await loadRankerData(o);
  const fitTr = fitLists(model, data.train, o.input, o.onLong);
  const fitVa = fitLists(model, data.val, o.input, o.onLong);
  const [train, val, test] = [fitTr.kept, fitVa.kept, data.test];
  const longIds = { skippedIds: [...fitTr.skippedIds, ...fitVa.skippedIds], truncatedIds: [...fitTr.truncatedIds, ...fitVa.truncatedIds] };
  if (longIds.skippedIds.length) o.onLog?.(`skipped ${longIds.skippedIds.length} training/validation list(s) whose instruction fills the context`);
  const tr = listsWithBoth(train);
  const va = listsWithBoth(val);
  o.onLog?.(`training lists: ${tr.kept.length} (${tr.skipped} skipped without both labels); validation lists: ${va.kept.length}`);
  if (tr.kept.length === 0) throw new RangeError("no training list has both a safe and an unsafe candidate");
  const feat = { input: o.input, maxResponseTokens: o.maxResponseTokens, onLong: "truncate" as const };
  const trainFeats = await srrFeatures(model, tr.kept, layer, feat);
  const valFeats = va.kept.length ? await srrFeatures(model, va.kept, layer, feat) : undefined;
  const ts = performance.now();
  const { ranker } = Ranker.fromLists(model, trainFeats, valFeats, { ...o, layer });
  const trainSeconds = (performance.now() - ts) / 1000;
  (ranker.training as Record<string, unknown>).data = {
    files: o.files,
    seed: o.seed ?? 1,
    testSources: o.testSources ?? null,
    trainLists: tr.kept.length,
    trainSkipped: tr.skipped,
    valLists: va.kept.length,
    testLists: test.length,
    onLong: o.onLong ?? "skip",
    ...longIds,
    trainSeconds,
  };
  if (o.checkpoint) await ranker.save(o.checkpoint);
  const evaluation = await evaluateRanker(model, ranker, test, { trainItems: train, trainFeatures: trainFeats, onLog: o.onLog, onLong: o.onLong });
  (ranker.training as Record<string, unknown>).test = evaluation;
  return { ranker, test: evaluation, seconds: (performance.now() - t0) / 1000, trainSeconds };
}
