/** Streaming-monitor commands: train-monitor, eval-monitor. */
import * as path from "node:path";
import { parseArgs } from "node:util";

import { loadModel } from "../core/model";
import { Monitor } from "../monitor/monitor";
import { evaluateMonitor, type MonitorEvaluation, trainMonitor } from "../monitor/train";
import { common, intOption, listData, listDataOptions, logger, modelOptions, numOption, parseLayers, print, UsageError } from "./util";

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : "n/a");

function evalText(e: MonitorEvaluation): string {
  const b = e.baselines;
  return [
    `responses ${e.n} (${e.unsafe} unsafe): recall ${f3(e.recall)}  FPR ${f3(e.fpr)}  F1 ${f3(e.f1)}  read before the flag ${f3(e.meanFractionRead)}  AUROC ${f3(e.auroc)}`,
    `baselines: end of response F1 ${f3(b.endOfResponse.f1)} (recall ${f3(b.endOfResponse.recall)}, FPR ${f3(b.endOfResponse.fpr)});` +
      ` prompt only F1 ${f3(b.promptOnly.f1)} (recall ${f3(b.promptOnly.recall)}, FPR ${f3(b.promptOnly.fpr)})`,
  ].join("\n");
}

function rule(values: Record<string, unknown>) {
  const kind = (values.rule as string | undefined) ?? "ema";
  if (kind !== "ema" && kind !== "mean") throw new UsageError(`--rule must be ema or mean, got ${JSON.stringify(kind)}`);
  return {
    kind: kind as "ema" | "mean",
    alpha: numOption(values.alpha as string | undefined, "alpha"),
    window: intOption(values.window as string | undefined, "window"),
    minTokens: intOption(values["min-tokens"] as string | undefined, "min-tokens"),
  };
}

export async function cmdTrainMonitor(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...common,
      ...listDataOptions,
      method: { type: "string", default: "logreg" },
      layer: { type: "string" },
      layers: { type: "string" },
      rule: { type: "string" },
      alpha: { type: "string" },
      window: { type: "string" },
      "min-tokens": { type: "string" },
      "target-fpr": { type: "string" },
      "max-response-tokens": { type: "string" },
      out: { type: "string", default: "monitor.json" },
    },
    strict: true,
  });
  if (values.method !== "logreg" && values.method !== "lpm") throw new UsageError(`--method must be logreg or lpm, got ${JSON.stringify(values.method)}`);
  const log = logger(values.json);
  const model = await loadModel(modelOptions(values));
  try {
    const layer = values.layer ? parseLayers(values.layer, model.info.nLayer) : undefined;
    if (layer && layer.length !== 1) throw new UsageError("--layer takes one layer (use --layers to choose the sweep)");
    const r = await trainMonitor(model, {
      ...listData(values, log),
      method: values.method,
      layer: layer?.[0],
      sweepLayers: values.layers ? parseLayers(values.layers, model.info.nLayer) : undefined,
      rule: rule(values),
      targetFpr: numOption(values["target-fpr"], "target-fpr"),
      maxResponseTokens: intOption(values["max-response-tokens"], "max-response-tokens"),
    });
    await r.monitor.save(values.out);
    const value = {
      out: path.resolve(values.out),
      layer: r.monitor.layer,
      method: r.monitor.method,
      rule: r.monitor.rule,
      threshold: r.monitor.threshold,
      validation: r.validation,
      test: r.test,
      sweep: r.sweep,
      skipped: r.skipped.length,
      skippedIds: r.skipped,
      truncatedPromptIds: r.truncatedPrompts,
      truncated: r.truncated,
      seconds: r.seconds,
    };
    print(
      values.json,
      value,
      `wrote ${value.out}: ${r.monitor.method} on layer ${r.monitor.layer}, ${r.monitor.rule.kind} rule, threshold ${r.monitor.threshold.toFixed(4)} (${r.seconds.toFixed(1)} s)\ntest: ${evalText(r.test)}`,
    );
  } finally {
    await model.dispose();
  }
}

export async function cmdEvalMonitor(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...common, ...listDataOptions, monitor: { type: "string" }, split: { type: "string", default: "test" }, "max-response-tokens": { type: "string" } },
    strict: true,
  });
  if (!values.monitor) throw new UsageError("eval-monitor needs --monitor monitor.json");
  if (values.split !== "test" && values.split !== "all") throw new UsageError(`--split must be test or all, got ${JSON.stringify(values.split)}`);
  const log = logger(values.json);
  const model = await loadModel(modelOptions(values));
  try {
    const monitor = await Monitor.load(values.monitor, model);
    const e = await evaluateMonitor(model, monitor, {
      ...listData(values, log),
      split: values.split,
      maxResponseTokens: intOption(values["max-response-tokens"], "max-response-tokens"),
    });
    print(values.json, e, evalText(e));
  } finally {
    await model.dispose();
  }
}
