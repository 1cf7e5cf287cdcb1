import { SUITES } from "../src/io/suites";
import {
  LPM_RESULTS,
  MLPM_MEANS,
  MLPM_PRETRAINED_VS_INSTRUCT,
  MLPM_RESULTS,
  PAPER_BENCHMARKS,
  type PaperBenchmark,
} from "../src/probe/reference-figures";

const BENCHMARKS = Object.keys(PAPER_BENCHMARKS).sort() as PaperBenchmark[];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test("the paper's benchmarks are sets readSuiteDir reads, with the supports the paper scored", () => {
  const names = new Set(SUITES.map((s) => s.name));
  for (const b of BENCHMARKS) expect([b, names.has(b)]).toEqual([b, true]);
  expect(BENCHMARKS).toHaveLength(8);
  expect(PAPER_BENCHMARKS["openai-moderation"].safe + PAPER_BENCHMARKS["openai-moderation"].unsafe).toBe(1680);
});

// The authors' files carry each row's mean: recomputing it checks that no figure was mistyped.
test("LPM-version rows: eight F1s and seven accuracies whose means are the authors' means", () => {
  expect(LPM_RESULTS).toHaveLength(49);
  expect(new Set(LPM_RESULTS.map((r) => r.method))).toEqual(new Set(["guard", "lpm", "nmc", "mlp", "prompted"]));
  for (const r of LPM_RESULTS) {
    expect(Object.keys(r.f1).sort()).toEqual(BENCHMARKS);
    expect([r.method, r.model, Math.abs(mean(Object.values(r.f1)) - r.meanF1!) < 0.01]).toEqual([r.method, r.model, true]);
    expect(Object.keys(r.benignAccuracy!)).toHaveLength(7);
    expect([r.method, r.model, Math.abs(mean(Object.values(r.benignAccuracy!)) - r.meanBenignAccuracy!) < 0.01]).toEqual([r.method, r.model, true]);
    for (const v of [...Object.values(r.f1), ...Object.values(r.benignAccuracy!)]) expect(v >= 0 && v <= 100).toBe(true);
  }
});

test("MLPM figures agree across the authors' files", () => {
  for (const r of MLPM_RESULTS) {
    expect(Object.keys(r.f1).sort()).toEqual(BENCHMARKS);
    expect(r.meanF1).toBeUndefined();
  }
  // Means over all eight = (WildGuardTest + 7 x the mean of the other seven) / 8.
  for (const p of MLPM_PRETRAINED_VS_INSTRUCT) {
    expect([p.model, Math.abs((p.wildguardtest + 7 * p.meanF1WithoutWildguardtest) / 8 - p.meanF1) < 0.01]).toEqual([p.model, true]);
  }
  // The model-size figure's 7-8B instruct models are the instruct rows; its guards are the guard rows.
  const size = (family: string, b: number) => MLPM_MEANS.find((m) => m.family === family && m.paramsB === b)!.meanF1;
  const it = (model: string) => MLPM_PRETRAINED_VS_INSTRUCT.find((p) => p.model === model)!.meanF1;
  expect([size("Llama3", 8), size("Mistral", 7), size("OLMo2", 7), size("Qwen3", 8)]).toEqual([
    it("Llama3-8B-IT"),
    it("Mistral-7B-IT"),
    it("OLMo2-7B-IT"),
    it("Qwen3-8B-IT"),
  ]);
  const guard = (model: string) => LPM_RESULTS.find((r) => r.method === "guard" && r.model === model)!.meanF1;
  expect([size("Aegis-D", 7), size("LlamaGuard3", 8), size("WildGuard", 7)]).toEqual([guard("aegis_defensive"), guard("llama_guard_3_8b"), guard("wildguard")]);
});
