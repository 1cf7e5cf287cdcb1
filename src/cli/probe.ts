/**
 * Probe commands: train-probe, eval-probe, sweep, classify.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";

import { loadModel } from "../core/model";
import { checkTemplateDate } from "../core/template";
import { readTextRecords } from "../io/jsonl";
import { evaluateProbe, evaluateScores, loadAndSplit, sweepLayers, trainProbe } from "../probe/pipeline";
import { DEFAULT_PROBE_INPUT, PROBE_METHODS, Probe, type ProbeInput, type ProbeMethod, type ThresholdRule } from "../probe/probe";
import { flagged } from "../probe/metrics";
import { promptedScores } from "../probe/prompted";
import { sweepChartSvg } from "../probe/svg";
import type { Metrics } from "../probe/types";
import { common, intOption, logger, modelOptions, numOption, onLongOption, onLongValue, parseLayers, print, UsageError } from "./util";

export const dataOptions = {
  data: { type: "string", multiple: true },
  seed: { type: "string" },
  "limit-per-file": { type: "string" },
  "no-cache": { type: "boolean", default: false },
  "cache-dir": { type: "string" },
  "no-chat": { type: "boolean", default: false },
  "no-assistant-prefix": { type: "boolean", default: false },
  "system-prompt": { type: "string" },
  date: { type: "string" },
  "lossy-utf8": { type: "boolean", default: false },
  ...onLongOption,
} as const;

type Values = Record<string, unknown>;

/** The --data files (repeated, or separated by commas). */
function dataFileList(values: Values): string[] {
  const raw = (values.data as string[] | undefined) ?? [];
  return raw.flatMap((d) => d.split(",")).map((s) => s.trim()).filter(Boolean);
}

function dataFiles(values: Values): string[] {
  const files = dataFileList(values);
  if (files.length === 0) throw new UsageError("give labelled prompts with --data FILE.jsonl (repeat it, or separate files with commas)");
  return files;
}

export function commonData(values: Values, log: (m: string) => void, o: { filesOptional?: boolean } = {}) {
  return {
    files: o.filesOptional ? dataFileList(values) : dataFiles(values),
    seed: intOption(values.seed as string | undefined, "seed") ?? 1,
    limitPerFile: intOption(values["limit-per-file"] as string | undefined, "limit-per-file"),
    lossyUtf8: values["lossy-utf8"] === true,
    onLong: onLongValue(values["on-long"]),
    cacheDir: values["no-cache"] ? null : ((values["cache-dir"] as string | undefined) ?? undefined),
    onLog: log,
  };
}

export function inputOptions(values: Values): ProbeInput {
  return {
    chat: !values["no-chat"],
    addAssistantPrefix: !values["no-assistant-prefix"],
    systemPrompt: (values["system-prompt"] as string | undefined) ?? DEFAULT_PROBE_INPUT.systemPrompt,
    date: values.date === undefined ? DEFAULT_PROBE_INPUT.date : checkTemplateDate(values.date, "--date"),
  };
}

export function parseThreshold(v: string | undefined): ThresholdRule | undefined {
  if (v === undefined) return undefined;
  if (v === "best-f1") return "best-f1";
  const m = /^fpr:([0-9.]+)$/.exec(v);
  if (m) return { fpr: Number(m[1]) };
  const x = Number(v);
  if (v.trim() !== "" && Number.isFinite(x)) return x;
  throw new UsageError(`--threshold takes a number, best-f1 or fpr:RATE (e.g. fpr:0.05); got ${JSON.stringify(v)}`);
}

function metricsLine(m: Metrics): string {
  return `n ${m.n}  precision ${m.precision.toFixed(3)}  recall ${m.recall.toFixed(3)}  F1 ${m.f1.toFixed(3)}  accuracy ${m.accuracy.toFixed(3)}  AUROC ${m.auroc.toFixed(3)}  AUPRC ${m.auprc.toFixed(3)}  FPR ${m.fpr.toFixed(3)}  @ ${m.threshold.toFixed(3)}`;
}

function perSourceTable(per: Record<string, Metrics>): string {
  return Object.entries(per)
    .map(([s, m]) => `  ${s.padEnd(28)} n ${String(m.n).padStart(5)}  recall ${m.recall.toFixed(3)}  FPR ${m.fpr.toFixed(3)}  F1 ${m.f1.toFixed(3)}`)
    .join("\n");
}

export async function cmdTrainProbe(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...common, ...dataOptions, method: { type: "string", default: "logreg" }, layer: { type: "string" }, layers: { type: "string" }, threshold: { type: "string" }, out: { type: "string", default: "probe.json" }, hidden: { type: "string" }, l2: { type: "string" }, l1: { type: "string" } },
    strict: true,
  });
  const method = values.method as ProbeMethod;
  if (!PROBE_METHODS.includes(method)) throw new UsageError(`--method must be one of ${PROBE_METHODS.join(", ")}; got ${JSON.stringify(values.method)}`);
  const log = logger(values.json);
  const model = await loadModel(modelOptions(values));
  try {
    const spec = values.layers ?? values.layer;
    const layers = spec ? parseLayers(spec, model.info.nLayer) : undefined;
    const methodOptions: Record<string, unknown> = {};
    if (values.hidden) methodOptions.hidden = intOption(values.hidden, "hidden");
    if (values.l2) methodOptions.l2 = numOption(values.l2, "l2");
    if (values.l1) methodOptions.l1 = numOption(values.l1, "l1");
    const r = await trainProbe(model, {
      ...commonData(values, log),
      method,
      layers,
      threshold: parseThreshold(values.threshold) ?? "best-f1",
      input: inputOptions(values),
      methodOptions,
    });
    await r.probe.save(values.out);
    const val = r.probe.training.validation as Metrics | null;
    const value = {
      out: path.resolve(values.out),
      method,
      layers: r.probe.layers,
      threshold: r.probe.threshold,
      validation: val,
      test: { ...r.test.overall, perSource: r.test.perSource },
      skipped: r.long.skippedIds.length,
      skippedIds: r.long.skippedIds,
      truncated: r.long.truncatedIds.length,
      truncatedIds: r.long.truncatedIds,
      seconds: r.seconds,
    };
    print(
      values.json,
      value,
      [
        `wrote ${value.out}: ${method} probe on layer(s) ${r.probe.layers.join(",")}, threshold ${r.probe.threshold.toFixed(3)} (${r.probe.thresholdRule})`,
        val ? `validation: ${metricsLine(val)}` : "",
        `test:       ${metricsLine(r.test.overall)}`,
        perSourceTable(r.test.perSource),
        `${r.seconds.toFixed(1)} s`,
      ].filter(Boolean).join("\n"),
    );
  } finally {
    await model.dispose();
  }
}

export async function cmdEvalProbe(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...common, ...dataOptions, probe: { type: "string" }, split: { type: "string", default: "test" }, baseline: { type: "string" } },
    strict: true,
  });
  if (!values.probe) throw new UsageError("eval-probe needs --probe probe.json");
  if (values.split !== "test" && values.split !== "all") throw new UsageError(`--split must be test or all; got ${JSON.stringify(values.split)}`);
  if (values.baseline !== undefined && values.baseline !== "prompted") throw new UsageError(`--baseline takes prompted; got ${JSON.stringify(values.baseline)}`);
  const log = logger(values.json);
  const model = await loadModel(modelOptions(values));
  try {
    const probe = await Probe.load(values.probe, model);
    const data = commonData(values, log);
    const r = await evaluateProbe(model, probe, { ...data, split: values.split as "test" | "all" });
    const value: Record<string, unknown> = { ...r.overall, perSource: r.perSource, skippedIds: r.long.skippedIds, truncatedIds: r.long.truncatedIds };
    const lines = [`${values.probe} (${probe.method}, layer(s) ${probe.layers.join(",")}) on the ${values.split} split:`, metricsLine(r.overall), perSourceTable(r.perSource)];
    if (values.baseline === "prompted") {
      const { records, splits } = await loadAndSplit({ ...data, input: probe.input }, model);
      const use = values.split === "all" ? records : splits.test;
      const scores = await promptedScores(model, use.map((x) => x.text));
      const labels = Uint8Array.from(use.map((x) => x.label));
      const ev = evaluateScores(scores, labels, use.map((x) => x.source), 0.5);
      value.baseline = { prompted: { ...ev.overall, perSource: ev.perSource } };
      lines.push("baseline (the model asked, P(Yes) >= 0.5):", metricsLine(ev.overall));
    }
    print(values.json, value, lines.join("\n"));
  } finally {
    await model.dispose();
  }
}

export async function cmdSweep(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...common, ...dataOptions, method: { type: "string", default: "lpm" }, svg: { type: "string" } },
    strict: true,
  });
  const method = values.method as "logreg" | "mlp" | "lpm";
  if (!["logreg", "mlp", "lpm"].includes(method)) throw new UsageError(`--method must be logreg, mlp or lpm for a sweep; got ${JSON.stringify(values.method)}`);
  const log = logger(values.json);
  const model = await loadModel(modelOptions(values));
  try {
    const r = await sweepLayers(model, { ...commonData(values, log), method, input: inputOptions(values) });
    const svgPath = values.svg ?? "sweep.svg";
    fs.writeFileSync(svgPath, sweepChartSvg(r.rows.map((x) => ({ layer: x.layer, f1: x.val.f1, auroc: x.val.auroc })), { title: `${method} probe per layer (validation) - ${model.info.name}` }));
    const value = { method, svg: path.resolve(svgPath), best: { layer: r.best.layer, val: r.best.val, test: r.best.test }, layers: r.rows, skippedIds: r.long.skippedIds, truncatedIds: r.long.truncatedIds };
    const table = [
      "layer | val F1 | val AUROC | test F1 | test AUROC | train s",
      "------|--------|-----------|---------|------------|--------",
      ...r.rows.map((x) => `${String(x.layer).padStart(5)} | ${x.val.f1.toFixed(3)}  | ${x.val.auroc.toFixed(3)}     | ${x.test.f1.toFixed(3)}   | ${x.test.auroc.toFixed(3)}      | ${x.trainSeconds.toFixed(2)}`),
      "",
      `best layer on validation: ${r.best.layer} (test F1 ${r.best.test.f1.toFixed(3)}, AUROC ${r.best.test.auroc.toFixed(3)}); chart: ${value.svg}`,
    ].join("\n");
    print(values.json, value, table);
  } finally {
    await model.dispose();
  }
}

export async function cmdClassify(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...common,
      probe: { type: "string" },
      prompt: { type: "string", multiple: true },
      input: { type: "string" },
      field: { type: "string", default: "text" },
      "lossy-utf8": { type: "boolean", default: false },
      ...onLongOption,
    },
    strict: true,
  });
  if (!values.probe) throw new UsageError("classify needs --probe probe.json");
  const onLong = onLongValue(values["on-long"]);
  if (!values.prompt && !values.input) throw new UsageError("classify needs --prompt TEXT (repeatable) or --input FILE.jsonl");
  const model = await loadModel(modelOptions(values));
  try {
    const probe = await Probe.load(values.probe, model);
    let ids: string[] = [];
    let texts: string[] = values.prompt ?? [];
    ids = texts.map((_, i) => `prompt${i}`);
    if (values.input) {
      const r = await readTextRecords(values.input, { field: values.field, lossyUtf8: values["lossy-utf8"] });
      ids = ids.concat(r.ids);
      texts = texts.concat(r.texts);
    }
    // a prompt too long to read (--on-long skip) scores NaN and is flagged: it was not checked
    const lengths = texts.map((t) => model.tokenize(t, { chat: probe.chatOption() }).length);
    const scores = await probe.score(model, texts, { onLong });
    const limit = model.info.contextSize;
    const rows = texts.map((t, i) => ({
      id: ids[i],
      text: t,
      score: Number.isNaN(scores[i]) ? null : scores[i],
      unsafe: flagged(scores[i], probe.threshold),
      ...(lengths[i] > limit ? { long: onLong === "skip" ? "skipped" : "truncated" } : {}),
    }));
    const skippedIds = rows.filter((r) => r.long === "skipped").map((r) => r.id);
    print(
      values.json,
      { threshold: probe.threshold, results: rows, skipped: skippedIds.length, skippedIds },
      rows.map((r) => `${r.unsafe ? "UNSAFE" : "safe  "} ${r.score === null ? "  n/a" : r.score.toFixed(3)}${r.long ? ` (${r.long})` : ""}  ${r.text.length > 90 ? `${r.text.slice(0, 90)}…` : r.text}`).join("\n"),
    );
  } finally {
    await model.dispose();
  }
}
