/**
 * Safety Representation Ranking commands: train-ranker, eval-ranker, rank.
 */
import * as path from "node:path";
import { parseArgs } from "node:util";

import { loadModel } from "../core/model";
import { readJsonl } from "../io/jsonl";
import { evaluateRanker, loadRankerData, type RankerEvaluation, trainRankerOnFiles } from "../srr/pipeline";
import { Ranker } from "../srr/ranker";
import { common, intOption, listData, listDataOptions, modelOptions, numOption, onLongValue, parseLayers, print, UsageError, logger } from "./util";

function evalText(e: RankerEvaluation): string {
  const b = e.baselines;
  const f = (x: number | null) => (x === null ? "n/a" : x.toFixed(3));
  return [
    `lists ${e.lists} (skipped ${e.skipped}${e.skippedLongIds.length ? `, ${e.skippedLongIds.length} longer than the context` : ""}${e.truncatedIds.length ? `, ${e.truncatedIds.length} truncated` : ""})  top-1 safe ${e.top1.toFixed(3)}  pairwise ${e.pairwise.toFixed(3)}  NDCG ${e.ndcg.toFixed(3)}  MRR ${e.mrr.toFixed(3)}`,
    `baselines (top-1 safe): random ${f(b.random)}  first ${f(b.first)}  shortest ${f(b.shortest)}  longest ${f(b.longest)}  logprob ${f(b.logprob)}  probe ${f(b.probe)}`,
  ].join("\n");
}

export async function cmdTrainRanker(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...common,
      ...listDataOptions,
      layer: { type: "string" },
      lite: { type: "boolean", default: false },
      width: { type: "string" },
      heads: { type: "string" },
      tau: { type: "string" },
      epochs: { type: "string" },
      "max-response-tokens": { type: "string" },
      out: { type: "string", default: "ranker.json" },
    },
    strict: true,
  });
  const log = logger(values.json);
  const model = await loadModel(modelOptions(values));
  try {
    const layer = values.layer ? parseLayers(values.layer, model.info.nLayer) : undefined;
    if (layer && layer.length !== 1) throw new UsageError("--layer takes one layer");
    const r = await trainRankerOnFiles(model, {
      ...listData(values, log),
      layer: layer?.[0],
      lite: values.lite,
      width: intOption(values.width, "width"),
      heads: intOption(values.heads, "heads"),
      tau: numOption(values.tau, "tau"),
      epochs: intOption(values.epochs, "epochs"),
      maxResponseTokens: intOption(values["max-response-tokens"], "max-response-tokens"),
      checkpoint: values.out,
    });
    await r.ranker.save(values.out); // the final ranker (with its test figures) over the checkpoint
    const value = { out: path.resolve(values.out), layer: r.ranker.layer, config: r.ranker.config, trainSeconds: r.trainSeconds, seconds: r.seconds, test: r.test };
    print(values.json, value, `wrote ${value.out}: ${r.ranker.config.lite ? "lite " : ""}ranker on layer ${r.ranker.layer} (trained in ${r.trainSeconds.toFixed(1)} s)\ntest: ${evalText(r.test)}`);
  } finally {
    await model.dispose();
  }
}

export async function cmdEvalRanker(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...common, ...listDataOptions, ranker: { type: "string" }, split: { type: "string", default: "test" }, "no-logprob": { type: "boolean", default: false } },
    strict: true,
  });
  if (!values.ranker) throw new UsageError("eval-ranker needs --ranker ranker.json");
  if (values.split !== "test" && values.split !== "all") throw new UsageError(`--split must be test or all; got ${JSON.stringify(values.split)}`);
  const log = logger(values.json);
  const model = await loadModel(modelOptions(values));
  try {
    const ranker = await Ranker.load(values.ranker, model);
    const data = await loadRankerData(listData(values, log));
    const items = values.split === "all" ? data.items : data.test;
    const e = await evaluateRanker(model, ranker, items, { trainItems: data.train, logprob: !values["no-logprob"], onLog: log, onLong: onLongValue(values["on-long"]) });
    print(values.json, e, `${values.ranker} on the ${values.split} split:\n${evalText(e)}`);
  } finally {
    await model.dispose();
  }
}

export async function cmdRank(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...common,
      ranker: { type: "string" },
      instruction: { type: "string" },
      candidate: { type: "string", multiple: true },
      input: { type: "string" },
      "lossy-utf8": { type: "boolean", default: false },
      "on-long": { type: "string", default: "error" },
    },
    strict: true,
  });
  if (!values.ranker) throw new UsageError("rank needs --ranker ranker.json");
  const onLong = onLongValue(values["on-long"]);
  if (onLong === "skip") throw new UsageError("rank --on-long takes error or truncate");
  let lists: { prompt: string; candidates: string[] }[] = [];
  if (values.instruction !== undefined) {
    if (!values.candidate || values.candidate.length === 0) throw new UsageError("rank needs --candidate TEXT (repeat it) with --instruction");
    lists.push({ prompt: values.instruction, candidates: values.candidate });
  }
  if (values.input) {
    for await (const { value } of readJsonl(values.input, { lossyUtf8: values["lossy-utf8"] })) {
      const v = value as { prompt?: unknown; candidates?: unknown };
      if (typeof v.prompt === "string" && Array.isArray(v.candidates)) {
        lists.push({ prompt: v.prompt, candidates: v.candidates.map((c) => (typeof c === "string" ? c : String((c as { text?: unknown }).text ?? ""))) });
      }
    }
  }
  if (lists.length === 0) throw new UsageError("rank needs --instruction TEXT with --candidate TEXT..., or --input LISTS.jsonl");
  lists = lists.filter((l) => l.candidates.length > 0);
  const model = await loadModel(modelOptions(values));
  try {
    const ranker = await Ranker.load(values.ranker, model);
    const out: { prompt: string; best: number; order: number[]; scores: number[]; probabilities: number[]; safest: string }[] = [];
    for (const l of lists) {
      const r = await ranker.rank(model, l.prompt, l.candidates, { onLong });
      out.push({ prompt: l.prompt, best: r.best, order: r.order, scores: Array.from(r.scores), probabilities: Array.from(r.probabilities), safest: l.candidates[r.best] });
    }
    print(
      values.json,
      { results: out },
      out
        .map((o) => [`> ${o.prompt}`, ...o.order.map((i, k) => `  ${k === 0 ? "*" : " "} ${o.scores[i].toFixed(3)}  ${lists[out.indexOf(o)].candidates[i].replace(/\s+/g, " ").slice(0, 100)}`)].join("\n"))
        .join("\n"),
    );
  } finally {
    await model.dispose();
  }
}
