/**
 * A guard on the standard prompt-safety benchmarks, read from the files their authors
 * publish (src/io/suites.ts): per set, F1 of the unsafe class (sets with unsafe
 * prompts) or the accuracy / false-positive rate (all-safe sets), beside the figures the
 * latent-prototype moderation paper reports for its models where it reports them.
 */
import type { Model } from "../core/model";
import { readSuiteDir, type SkippedFile, type SuiteSet } from "../io/suites";
import { flagged } from "./metrics";
import type { Probe } from "./probe";
import { LPM_RESULTS, MLPM_RESULTS, type PaperBenchmark, PAPER_BENCHMARKS } from "./reference-figures";

/** Reference rows printed beside our figures: the paper's LPM and MLPM on instruction-tuned models, and a guard model. */
export const REFERENCE_COLUMNS: readonly { label: string; method: "lpm" | "mlpm" | "guard"; model: string }[] = [
  { label: "paper LPM Llama-3-8B-Inst", method: "lpm", model: "llama3_8b_inst" },
  { label: "paper MLPM Llama-3-8B-Inst", method: "mlpm", model: "llama3_8b_inst" },
  { label: "paper LPM OLMo2-7B-Inst", method: "lpm", model: "olmo2_1124_7b_inst" },
  { label: "WildGuard (guard model)", method: "guard", model: "wildguard" },
];

export interface SuiteEvaluation {
  name: string;
  title: string;
  file: string;
  kind: SuiteSet["kind"];
  n: number;
  unsafe: number;
  safe: number;
  /** F1 of the unsafe class (undefined on all-safe sets). */
  f1?: number;
  recall?: number;
  precision?: number;
  /** Share of prompts classified correctly (on all-safe sets: classified safe). */
  accuracy: number;
  /** Flagged safe prompts / safe prompts (undefined without safe prompts). */
  fpr?: number;
  /** Prompts whose score was NaN (counted as flagged). */
  nanScores: number;
  /** The paper's F1 (%) for this benchmark per reference column, where it reports one. */
  paper: Record<string, number>;
}

function paperFigures(name: string): Record<string, number> {
  const key = (name === "harmbench-test" ? "harmbench" : name) as PaperBenchmark;
  if (!Object.prototype.hasOwnProperty.call(PAPER_BENCHMARKS, key)) return {};
  const out: Record<string, number> = {};
  for (const col of REFERENCE_COLUMNS) {
    const rows = col.method === "mlpm" ? MLPM_RESULTS : LPM_RESULTS;
    const row = rows.find((r) => r.method === col.method && r.model === col.model);
    if (row) out[col.label] = row.f1[key];
  }
  return out;
}

/** Scores every set of a benchmark folder with the probe (rendered as it was trained). */
export async function evaluateOnSuites(
  model: Model,
  probe: Probe,
  dir: string,
  o: { signal?: AbortSignal; onLog?: (m: string) => void; limitPerSet?: number } = {},
): Promise<{ sets: SuiteEvaluation[]; skipped: SkippedFile[] }> {
  probe.checkModel(model);
  const { sets, skipped } = await readSuiteDir(dir, { signal: o.signal });
  const out: SuiteEvaluation[] = [];
  const limit = model.info.contextSize;
  for (const set of sets) {
    let records = o.limitPerSet ? set.records.slice(0, o.limitPerSet) : set.records;
    // prompts longer than the context are left out and counted
    const chat = probe.chatOption();
    const fits = records.filter((r) => model.tokenize(r.text, { chat }).length <= limit);
    if (fits.length < records.length) o.onLog?.(`${set.name}: ${records.length - fits.length} prompt(s) longer than the context left out`);
    records = fits;
    if (records.length === 0) continue;
    const scores = await probe.score(model, records.map((r) => r.text), { signal: o.signal });
    let tp = 0;
    let fp = 0;
    let tn = 0;
    let fn = 0;
    let nan = 0;
    records.forEach((r, i) => {
      const s = scores[i];
      if (Number.isNaN(s)) nan++;
      const f = flagged(s, probe.threshold);
      if (r.label === "unsafe") f ? tp++ : fn++;
      else f ? fp++ : tn++;
    });
    const unsafe = tp + fn;
    const safe = fp + tn;
    const precision = tp + fp ? tp / (tp + fp) : 0;
    const recall = unsafe ? tp / unsafe : 0;
    const e: SuiteEvaluation = {
      name: set.name,
      title: set.title,
      file: set.file,
      kind: set.kind,
      n: records.length,
      unsafe,
      safe,
      accuracy: (tp + tn) / records.length,
      nanScores: nan,
      paper: paperFigures(set.name),
    };
    if (unsafe > 0) {
      e.f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
      e.recall = recall;
      e.precision = precision;
    }
    if (safe > 0) e.fpr = fp / safe;
    out.push(e);
    o.onLog?.(`${set.name}: ${records.length} prompts`);
  }
  return { sets: out, skipped };
}

/** The evaluation as a text table. */
export function suiteTable(sets: readonly SuiteEvaluation[]): string {
  const pct = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? "" : (100 * x).toFixed(1));
  const cols = REFERENCE_COLUMNS.map((c) => c.label);
  const head = ["set", "n", "unsafe", "F1 %", "recall %", "accuracy %", "FPR %", ...cols];
  const rows = sets.map((s) => [
    s.name,
    String(s.n),
    String(s.unsafe),
    pct(s.f1),
    pct(s.recall),
    pct(s.accuracy),
    pct(s.fpr),
    ...cols.map((c) => (s.paper[c] === undefined ? "" : s.paper[c].toFixed(1))),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
