/** `safety-lens train-guard` and `eval-guard`: a guard for your own model in one command, and the standard benchmarks. */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";

import { loadModel } from "../core/model";
import { evaluateOnSuites, suiteTable } from "../probe/eval-suites";
import { PROBE_METHODS, Probe, type ProbeMethod } from "../probe/probe";
import { guardReportHtml } from "../probe/report";
import { trainGuard } from "../probe/train-guard";
import { commonData, dataOptions, inputOptions } from "./probe";
import { common, intOption, logger, modelOptions, numOption, print, UsageError } from "./util";

export async function cmdTrainGuard(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...common,
      ...dataOptions,
      "no-starter": { type: "boolean", default: false },
      "target-fpr": { type: "string" },
      methods: { type: "string" },
      out: { type: "string", default: "guard.json" },
      report: { type: "string" },
    },
    strict: true,
  });
  const methods = values.methods?.split(",").map((s) => s.trim()) as ProbeMethod[] | undefined;
  for (const m of methods ?? []) if (!PROBE_METHODS.includes(m)) throw new UsageError(`--methods takes ${PROBE_METHODS.join(", ")}; got ${JSON.stringify(m)}`);
  const log = logger(values.json);
  const model = await loadModel(modelOptions(values));
  try {
    const t = await trainGuard(model, {
      ...commonData(values, log, { filesOptional: true }),
      input: inputOptions(values),
      starter: !values["no-starter"],
      targetFpr: numOption(values["target-fpr"], "target-fpr"),
      methods,
    });
    await t.probe.save(values.out);
    if (values.report) fs.writeFileSync(values.report, guardReportHtml(t, model.info));
    const value = {
      out: path.resolve(values.out),
      report: values.report ? path.resolve(values.report) : null,
      method: t.probe.method,
      layers: t.probe.layers,
      threshold: t.probe.threshold,
      validation: t.validation,
      test: t.test,
      candidates: t.candidates,
      sweep: t.sweep.map((r) => ({ layer: r.layer, valF1: r.val.f1, valAuroc: r.val.auroc })),
      confusion: t.confusion,
      data: t.data,
      seconds: t.seconds,
    };
    const m = t.test.overall;
    print(
      values.json,
      value,
      `wrote ${value.out}: ${t.probe.method} on ${t.probe.layers.length === 1 ? `layer ${String(t.probe.layers[0])}` : `${t.probe.layers.length} layers`}, ` +
        `threshold ${t.probe.threshold.toFixed(4)} (validation FPR ${(100 * t.validation.fpr).toFixed(1)}%, target ${(100 * t.targetFpr).toFixed(1)}%)\n` +
        `test (${m.n} prompts): precision ${m.precision.toFixed(3)} recall ${m.recall.toFixed(3)} F1 ${m.f1.toFixed(3)} FPR ${m.fpr.toFixed(3)} AUROC ${m.auroc.toFixed(3)}` +
        `${value.report ? `\nreport: ${value.report}` : ""}\n(${t.seconds.toFixed(1)} s)`,
    );
  } finally {
    await model.dispose();
  }
}

export async function cmdEvalGuard(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { ...common, probe: { type: "string" }, suite: { type: "string" }, "limit-per-set": { type: "string" } },
    strict: true,
  });
  if (!values.probe) throw new UsageError("eval-guard needs --probe guard.json");
  if (!values.suite) throw new UsageError("eval-guard needs --suite DIR (a folder of benchmark files as their authors publish them)");
  const log = logger(values.json);
  const model = await loadModel(modelOptions(values));
  try {
    const probe = await Probe.load(values.probe, model);
    const r = await evaluateOnSuites(model, probe, values.suite, { onLog: log, limitPerSet: intOption(values["limit-per-set"], "limit-per-set") });
    const skipped = r.skipped.map((s) => `skipped ${s.file}: ${s.reason}`).join("\n");
    print(values.json, r, `${suiteTable(r.sets)}${skipped ? `\n\n${skipped}` : ""}`);
  } finally {
    await model.dispose();
  }
}
