/**
 * Reference figures of the latent-prototype moderation paper (Chrabąszcz et al., arXiv 2502.16174:
 * v2 "Do LLMs Understand the Safety of Their Inputs? Training-Free Moderation via Latent Prototypes",
 * LPM; v3+ "Efficient LLM Moderation with Multi-Layer Latent Prototypes", MLPM), per benchmark, to
 * print beside our own evaluations.
 *
 * Where they come from: the paper's tables could not be read in the stored copies of its arXiv pages
 * (only their openings are searchable), so these are the authors' own result files in their
 * repository `maciejchrabaszcz/latent-prototype-moderator` (MIT), under `plotting/data/` ("all data
 * used for plotting"), at commit 1361ba1882426bd4186e17995f187532e663336c, converted to numbers
 * unchanged (percentages; the MLPM per-benchmark scores, stored there as fractions, rounded to two
 * decimals). They were not cross-checked against the PDF's tables.
 *
 * Protocol (from the repository's `scripts/preprocessing/prepare_datasets.py` and
 * `src/evaluation/utils.py`): prototypes / probes fitted on the WildGuardMix training set; prompts
 * read with the chat template and generation prompt; F1 of the unsafe class at threshold 0.5 on the
 * harmful benchmarks; on the all-safe capability sets the figure is the accuracy, i.e. the share of
 * prompts classified safe (F1 is undefined without positives; the 0 and 100 values fit only accuracy).
 */

/** The paper's eight prompt-safety benchmarks, keyed by the set names `readSuiteDir` gives. */
export type PaperBenchmark =
  | "aegis"
  | "harmbench"
  | "openai-moderation"
  | "simplesafetytests"
  | "toxicchat"
  | "wildguardtest"
  | "wildjailbreak"
  | "xstest";

export interface PaperBenchmarkInfo {
  /** The column name in the authors' files. */
  paperLabel: string;
  /** Which records the paper scored. */
  protocol: string;
  /** Safe and unsafe prompts scored (the supports in `plotting/data/per_layer_per_task_plotting_data.csv`). */
  safe: number;
  unsafe: number;
}

export const PAPER_BENCHMARKS: Readonly<Record<PaperBenchmark, PaperBenchmarkInfo>> = {
  aegis: {
    paperLabel: "Aegis",
    protocol: "nvidia/Aegis-AI-Content-Safety-Dataset-1.0 test, user messages; unsafe when at most one of labels_0..2 is \"Safe\"",
    safe: 126,
    unsafe: 233,
  },
  harmbench: {
    paperLabel: "HarmB",
    protocol: "harmbench_behaviors_text_test.csv, FunctionalCategory standard or copyright (contextual left out), Behavior only",
    safe: 0,
    unsafe: 239,
  },
  "openai-moderation": {
    paperLabel: "OAI",
    protocol: "OpenAI moderation evaluation set (1,680 samples); unsafe when any of S, H, V, HR, SH, S3, H2, V2 is 1",
    safe: 1158,
    unsafe: 522,
  },
  simplesafetytests: {
    paperLabel: "SimpST",
    protocol: "Bertievidgen/SimpleSafetyTests test, all prompts unsafe",
    safe: 0,
    unsafe: 100,
  },
  toxicchat: {
    paperLabel: "ToxiC hum",
    protocol: "lmsys/toxic-chat toxicchat0124 test, rows with human_annotation true; unsafe when toxicity is 1",
    safe: 2491,
    unsafe: 362,
  },
  wildguardtest: {
    paperLabel: "WG",
    protocol: "allenai/wildguardmix wildguardtest, rows with a prompt_harm_label; harmful is unsafe",
    safe: 945,
    unsafe: 754,
  },
  wildjailbreak: {
    paperLabel: "WJ",
    protocol: "allenai/wildjailbreak evaluation set (adversarial prompts; label 1 is unsafe)",
    safe: 210,
    unsafe: 2000,
  },
  xstest: {
    paperLabel: "XS",
    protocol: "allenai/xstest-response (split response_harmfulness) prompts, unsafe when prompt_type is prompt_harmful: not xstest_prompts.csv's 450 prompts",
    safe: 249,
    unsafe: 197,
  },
};

/** All-safe capability sets the paper also scored (accuracy = share classified safe). */
export type PaperBenignSet = "alpacaEval" | "bbh" | "humanEval" | "gsm8k" | "mmluRedux" | "mtBench" | "truthfulQA";

export interface ReferenceRow {
  /**
   * "guard": a guard model's verdict; "lpm": Mahalanobis distance to class prototypes of the last
   * layer (the paper's LPM); "nmc": Euclidean distance to class means; "mlp": a supervised MLP probe;
   * "prompted": the model asked whether the prompt is harmful; "mlpm": multi-layer prototypes.
   */
  method: "guard" | "lpm" | "nmc" | "mlp" | "prompted" | "mlpm";
  /** The model as the authors name it (e.g. "llama3_8b_inst", "olmo2_1124_7b_inst", "wildguard"). */
  model: string;
  /** F1 (%) of the unsafe class per benchmark. */
  f1: Readonly<Record<PaperBenchmark, number>>;
  /** Mean of the eight F1s, as the authors give it (absent where they give none). */
  meanF1?: number;
  benignAccuracy?: Readonly<Record<PaperBenignSet, number>>;
  meanBenignAccuracy?: number;
}

/**
 * LPM-version results (v2): `plotting/data/main_results.csv` (the same file at commits f557150 and
 * 1361ba1), every row.
 */
export const LPM_RESULTS: readonly ReferenceRow[] = [
  { method: "guard", model: "aegis_defensive", f1: { aegis: 81.00, harmbench: 70.46, "openai-moderation": 76.44, simplesafetytests: 97.96, toxicchat: 75.61, wildguardtest: 72.09, wildjailbreak: 75.44, xstest: 81.53 }, meanF1: 78.82, benignAccuracy: { alpacaEval: 99.01, bbh: 97.78, humanEval: 100.00, gsm8k: 99.92, mmluRedux: 99.20, mtBench: 100.00, truthfulQA: 95.95 }, meanBenignAccuracy: 98.84 },
  { method: "guard", model: "llama_guard_3_8b", f1: { aegis: 71.74, harmbench: 98.94, "openai-moderation": 79.11, simplesafetytests: 99.50, toxicchat: 54.11, wildguardtest: 76.76, wildjailbreak: 67.83, xstest: 88.52 }, meanF1: 79.56, benignAccuracy: { alpacaEval: 98.63, bbh: 99.81, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 99.93, mtBench: 98.75, truthfulQA: 99.87 }, meanBenignAccuracy: 99.57 },
  { method: "guard", model: "wildguard", f1: { aegis: 89.78, harmbench: 99.37, "openai-moderation": 72.28, simplesafetytests: 99.50, toxicchat: 70.14, wildguardtest: 88.04, wildjailbreak: 97.10, xstest: 95.26 }, meanF1: 88.93, benignAccuracy: { alpacaEval: 96.89, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 99.71, mtBench: 97.50, truthfulQA: 96.58 }, meanBenignAccuracy: 98.67 },
  { method: "lpm", model: "llama3_8b", f1: { aegis: 79.62, harmbench: 96.31, "openai-moderation": 59.65, simplesafetytests: 94.74, toxicchat: 49.48, wildguardtest: 81.69, wildjailbreak: 82.49, xstest: 73.13 }, meanF1: 77.14, benignAccuracy: { alpacaEval: 87.20, bbh: 98.80, humanEval: 99.39, gsm8k: 100.00, mmluRedux: 91.25, mtBench: 86.25, truthfulQA: 93.54 }, meanBenignAccuracy: 93.78 },
  { method: "lpm", model: "llama3_8b_inst", f1: { aegis: 82.08, harmbench: 99.16, "openai-moderation": 73.02, simplesafetytests: 99.50, toxicchat: 64.82, wildguardtest: 85.39, wildjailbreak: 91.19, xstest: 94.85 }, meanF1: 86.25, benignAccuracy: { alpacaEval: 95.28, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 98.75, truthfulQA: 94.81 }, meanBenignAccuracy: 98.41 },
  { method: "lpm", model: "llama_guard_3_8b", f1: { aegis: 84.62, harmbench: 99.58, "openai-moderation": 72.93, simplesafetytests: 98.99, toxicchat: 61.45, wildguardtest: 88.04, wildjailbreak: 93.54, xstest: 92.27 }, meanF1: 86.43, benignAccuracy: { alpacaEval: 96.65, bbh: 99.91, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 99.74, mtBench: 100.00, truthfulQA: 99.75 }, meanBenignAccuracy: 99.44 },
  { method: "lpm", model: "mistral12b_inst", f1: { aegis: 82.84, harmbench: 100.00, "openai-moderation": 69.39, simplesafetytests: 99.50, toxicchat: 61.34, wildguardtest: 85.93, wildjailbreak: 89.27, xstest: 93.99 }, meanF1: 85.28, benignAccuracy: { alpacaEval: 93.04, bbh: 98.43, humanEval: 99.39, gsm8k: 99.92, mmluRedux: 100.00, mtBench: 98.75, truthfulQA: 96.84 }, meanBenignAccuracy: 98.05 },
  { method: "lpm", model: "mistral7b", f1: { aegis: 76.28, harmbench: 92.10, "openai-moderation": 59.95, simplesafetytests: 96.91, toxicchat: 53.08, wildguardtest: 82.56, wildjailbreak: 81.14, xstest: 68.21 }, meanF1: 76.28, benignAccuracy: { alpacaEval: 89.57, bbh: 90.83, humanEval: 98.78, gsm8k: 100.00, mmluRedux: 95.48, mtBench: 93.75, truthfulQA: 93.04 }, meanBenignAccuracy: 94.49 },
  { method: "lpm", model: "mistral7b_inst", f1: { aegis: 84.58, harmbench: 98.94, "openai-moderation": 68.74, simplesafetytests: 98.48, toxicchat: 56.91, wildguardtest: 85.31, wildjailbreak: 89.02, xstest: 91.49 }, meanF1: 84.18, benignAccuracy: { alpacaEval: 92.30, bbh: 54.17, humanEval: 98.78, gsm8k: 100.00, mmluRedux: 99.16, mtBench: 92.50, truthfulQA: 93.80 }, meanBenignAccuracy: 90.10 },
  { method: "lpm", model: "mistral_24b_inst", f1: { aegis: 84.26, harmbench: 99.16, "openai-moderation": 72.45, simplesafetytests: 98.48, toxicchat: 63.41, wildguardtest: 86.63, wildjailbreak: 90.20, xstest: 92.99 }, meanF1: 85.95, benignAccuracy: { alpacaEval: 95.28, bbh: 94.35, humanEval: 100.00, gsm8k: 97.50, mmluRedux: 99.67, mtBench: 97.50, truthfulQA: 95.32 }, meanBenignAccuracy: 97.09 },
  { method: "lpm", model: "olmo2_0325_32b_inst", f1: { aegis: 87.02, harmbench: 99.79, "openai-moderation": 77.78, simplesafetytests: 100.00, toxicchat: 75.41, wildguardtest: 89.24, wildjailbreak: 96.67, xstest: 95.51 }, meanF1: 90.18, benignAccuracy: { alpacaEval: 98.51, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 100.00, truthfulQA: 98.61 }, meanBenignAccuracy: 99.59 },
  { method: "lpm", model: "olmo2_0425_1b_inst", f1: { aegis: 82.60, harmbench: 99.58, "openai-moderation": 70.51, simplesafetytests: 98.99, toxicchat: 68.01, wildguardtest: 87.24, wildjailbreak: 92.86, xstest: 89.39 }, meanF1: 86.15, benignAccuracy: { alpacaEval: 96.40, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 98.75, truthfulQA: 97.09 }, meanBenignAccuracy: 98.89 },
  { method: "lpm", model: "olmo2_1124_13b_inst", f1: { aegis: 87.25, harmbench: 99.79, "openai-moderation": 74.66, simplesafetytests: 99.50, toxicchat: 76.81, wildguardtest: 88.61, wildjailbreak: 96.85, xstest: 96.32 }, meanF1: 89.97, benignAccuracy: { alpacaEval: 98.26, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 99.96, mtBench: 100.00, truthfulQA: 97.22 }, meanBenignAccuracy: 99.35 },
  { method: "lpm", model: "olmo2_1124_7b", f1: { aegis: 79.16, harmbench: 92.34, "openai-moderation": 59.60, simplesafetytests: 96.91, toxicchat: 51.11, wildguardtest: 82.04, wildjailbreak: 81.29, xstest: 75.61 }, meanF1: 77.26, benignAccuracy: { alpacaEval: 87.70, bbh: 98.61, humanEval: 84.76, gsm8k: 98.64, mmluRedux: 97.30, mtBench: 86.25, truthfulQA: 96.46 }, meanBenignAccuracy: 92.82 },
  { method: "lpm", model: "olmo2_1124_7b_dpo", f1: { aegis: 88.25, harmbench: 98.73, "openai-moderation": 73.77, simplesafetytests: 99.50, toxicchat: 74.31, wildguardtest: 87.92, wildjailbreak: 96.61, xstest: 96.91 }, meanF1: 89.50, benignAccuracy: { alpacaEval: 98.26, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 96.25, truthfulQA: 97.97 }, meanBenignAccuracy: 98.93 },
  { method: "lpm", model: "olmo2_1124_7b_inst", f1: { aegis: 88.25, harmbench: 98.30, "openai-moderation": 73.69, simplesafetytests: 99.50, toxicchat: 74.59, wildguardtest: 87.93, wildjailbreak: 96.64, xstest: 96.64 }, meanF1: 89.44, benignAccuracy: { alpacaEval: 97.89, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 96.25, truthfulQA: 98.23 }, meanBenignAccuracy: 98.91 },
  { method: "lpm", model: "olmo2_1124_7b_sft", f1: { aegis: 87.61, harmbench: 97.86, "openai-moderation": 72.24, simplesafetytests: 99.50, toxicchat: 72.99, wildguardtest: 88.15, wildjailbreak: 96.47, xstest: 96.08 }, meanF1: 88.86, benignAccuracy: { alpacaEval: 98.26, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 96.25, truthfulQA: 97.09 }, meanBenignAccuracy: 98.80 },
  { method: "lpm", model: "olmoe_1b_7b_0125_inst", f1: { aegis: 86.11, harmbench: 87.00, "openai-moderation": 70.09, simplesafetytests: 99.50, toxicchat: 70.46, wildguardtest: 87.33, wildjailbreak: 94.29, xstest: 91.55 }, meanF1: 85.79, benignAccuracy: { alpacaEval: 96.02, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 98.87, mtBench: 96.25, truthfulQA: 98.10 }, meanBenignAccuracy: 98.46 },
  { method: "lpm", model: "wildguard", f1: { aegis: 89.18, harmbench: 83.13, "openai-moderation": 66.91, simplesafetytests: 98.48, toxicchat: 70.13, wildguardtest: 87.55, wildjailbreak: 97.31, xstest: 92.55 }, meanF1: 85.65, benignAccuracy: { alpacaEval: 97.39, bbh: 98.24, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 97.85, mtBench: 100.00, truthfulQA: 96.96 }, meanBenignAccuracy: 98.63 },
  { method: "nmc", model: "llama3_8b", f1: { aegis: 18.25, harmbench: 91.61, "openai-moderation": 19.79, simplesafetytests: 51.85, toxicchat: 28.75, wildguardtest: 62.72, wildjailbreak: 82.35, xstest: 2.01 }, meanF1: 44.67, benignAccuracy: { alpacaEval: 72.80, bbh: 92.22, humanEval: 82.93, gsm8k: 95.60, mmluRedux: 63.27, mtBench: 51.25, truthfulQA: 100.00 }, meanBenignAccuracy: 79.72 },
  { method: "nmc", model: "llama3_8b_inst", f1: { aegis: 72.04, harmbench: 80.50, "openai-moderation": 69.85, simplesafetytests: 98.48, toxicchat: 50.59, wildguardtest: 78.35, wildjailbreak: 73.70, xstest: 93.85 }, meanF1: 77.17, benignAccuracy: { alpacaEval: 99.50, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 100.00, truthfulQA: 98.10 }, meanBenignAccuracy: 99.66 },
  { method: "nmc", model: "llama_guard_3_8b", f1: { aegis: 58.43, harmbench: 98.51, "openai-moderation": 72.14, simplesafetytests: 91.89, toxicchat: 57.26, wildguardtest: 77.38, wildjailbreak: 85.05, xstest: 72.26 }, meanF1: 76.62, benignAccuracy: { alpacaEval: 97.02, bbh: 61.02, humanEval: 75.00, gsm8k: 97.19, mmluRedux: 91.51, mtBench: 90.00, truthfulQA: 100.00 }, meanBenignAccuracy: 87.39 },
  { method: "nmc", model: "mistral12b_inst", f1: { aegis: 59.59, harmbench: 87.26, "openai-moderation": 61.60, simplesafetytests: 90.11, toxicchat: 49.27, wildguardtest: 72.11, wildjailbreak: 78.88, xstest: 78.53 }, meanF1: 72.17, benignAccuracy: { alpacaEval: 85.09, bbh: 93.43, humanEval: 99.39, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 87.50, truthfulQA: 100.00 }, meanBenignAccuracy: 95.06 },
  { method: "nmc", model: "mistral7b", f1: { aegis: 20.27, harmbench: 100.00, "openai-moderation": 34.50, simplesafetytests: 66.67, toxicchat: 24.79, wildguardtest: 62.95, wildjailbreak: 78.36, xstest: 2.01 }, meanF1: 48.69, benignAccuracy: { alpacaEval: 54.78, bbh: 34.26, humanEval: 0.00, gsm8k: 93.71, mmluRedux: 7.03, mtBench: 41.25, truthfulQA: 100.00 }, meanBenignAccuracy: 47.29 },
  { method: "nmc", model: "mistral7b_inst", f1: { aegis: 73.63, harmbench: 96.09, "openai-moderation": 69.38, simplesafetytests: 95.83, toxicchat: 44.62, wildguardtest: 72.44, wildjailbreak: 77.08, xstest: 90.03 }, meanF1: 77.39, benignAccuracy: { alpacaEval: 89.69, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 91.25, truthfulQA: 99.87 }, meanBenignAccuracy: 97.26 },
  { method: "nmc", model: "mistral_24b_inst", f1: { aegis: 75.98, harmbench: 77.75, "openai-moderation": 73.73, simplesafetytests: 97.96, toxicchat: 52.36, wildguardtest: 74.71, wildjailbreak: 51.57, xstest: 90.42 }, meanF1: 74.31, benignAccuracy: { alpacaEval: 98.51, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 99.96, mtBench: 100.00, truthfulQA: 97.09 }, meanBenignAccuracy: 99.37 },
  { method: "nmc", model: "olmo2_0325_32b_inst", f1: { aegis: 78.28, harmbench: 75.84, "openai-moderation": 68.97, simplesafetytests: 97.44, toxicchat: 53.18, wildguardtest: 82.39, wildjailbreak: 78.97, xstest: 92.57 }, meanF1: 78.46, benignAccuracy: { alpacaEval: 99.75, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 100.00, truthfulQA: 98.73 }, meanBenignAccuracy: 99.78 },
  { method: "nmc", model: "olmo2_0425_1b_inst", f1: { aegis: 78.82, harmbench: 93.78, "openai-moderation": 57.84, simplesafetytests: 98.48, toxicchat: 57.24, wildguardtest: 82.57, wildjailbreak: 72.36, xstest: 90.72 }, meanF1: 78.98, benignAccuracy: { alpacaEval: 99.50, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 100.00, truthfulQA: 96.58 }, meanBenignAccuracy: 99.44 },
  { method: "nmc", model: "olmo2_1124_13b_inst", f1: { aegis: 82.10, harmbench: 95.86, "openai-moderation": 73.19, simplesafetytests: 99.50, toxicchat: 53.51, wildguardtest: 81.78, wildjailbreak: 76.63, xstest: 94.49 }, meanF1: 82.13, benignAccuracy: { alpacaEval: 99.01, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 100.00, truthfulQA: 96.84 }, meanBenignAccuracy: 99.41 },
  { method: "nmc", model: "olmo2_1124_7b", f1: { aegis: 23.65, harmbench: 99.58, "openai-moderation": 37.35, simplesafetytests: 64.86, toxicchat: 25.61, wildguardtest: 62.72, wildjailbreak: 82.34, xstest: 2.01 }, meanF1: 49.77, benignAccuracy: { alpacaEval: 59.88, bbh: 85.19, humanEval: 26.22, gsm8k: 94.84, mmluRedux: 48.76, mtBench: 48.75, truthfulQA: 99.87 }, meanBenignAccuracy: 66.22 },
  { method: "nmc", model: "olmo2_1124_7b_dpo", f1: { aegis: 82.77, harmbench: 93.06, "openai-moderation": 74.11, simplesafetytests: 98.99, toxicchat: 59.10, wildguardtest: 83.16, wildjailbreak: 83.63, xstest: 94.46 }, meanF1: 83.66, benignAccuracy: { alpacaEval: 99.38, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 100.00, truthfulQA: 98.99 }, meanBenignAccuracy: 99.77 },
  { method: "nmc", model: "olmo2_1124_7b_inst", f1: { aegis: 82.59, harmbench: 92.83, "openai-moderation": 74.66, simplesafetytests: 98.99, toxicchat: 58.68, wildguardtest: 83.63, wildjailbreak: 83.06, xstest: 94.46 }, meanF1: 83.61, benignAccuracy: { alpacaEval: 99.25, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 100.00, truthfulQA: 98.86 }, meanBenignAccuracy: 99.73 },
  { method: "nmc", model: "olmo2_1124_7b_sft", f1: { aegis: 81.19, harmbench: 93.06, "openai-moderation": 70.38, simplesafetytests: 97.44, toxicchat: 54.61, wildguardtest: 82.20, wildjailbreak: 83.40, xstest: 89.81 }, meanF1: 81.51, benignAccuracy: { alpacaEval: 99.50, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 100.00, truthfulQA: 99.37 }, meanBenignAccuracy: 99.84 },
  { method: "nmc", model: "olmoe_1b_7b_0125_inst", f1: { aegis: 81.64, harmbench: 82.56, "openai-moderation": 65.84, simplesafetytests: 99.50, toxicchat: 47.27, wildguardtest: 79.75, wildjailbreak: 69.90, xstest: 94.03 }, meanF1: 77.56, benignAccuracy: { alpacaEval: 98.01, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 99.89, mtBench: 100.00, truthfulQA: 90.51 }, meanBenignAccuracy: 98.34 },
  { method: "nmc", model: "wildguard", f1: { aegis: 58.33, harmbench: 92.83, "openai-moderation": 59.81, simplesafetytests: 78.79, toxicchat: 34.00, wildguardtest: 80.75, wildjailbreak: 87.99, xstest: 38.52 }, meanF1: 66.38, benignAccuracy: { alpacaEval: 85.22, bbh: 86.02, humanEval: 95.73, gsm8k: 100.00, mmluRedux: 89.50, mtBench: 97.50, truthfulQA: 99.87 }, meanBenignAccuracy: 93.41 },
  { method: "mlp", model: "llama3_8b", f1: { aegis: 62.22, harmbench: 95.40, "openai-moderation": 62.07, simplesafetytests: 89.50, toxicchat: 55.33, wildguardtest: 75.62, wildjailbreak: 70.25, xstest: 33.61 }, meanF1: 68.00, benignAccuracy: { alpacaEval: 90.56, bbh: 95.65, humanEval: 99.39, gsm8k: 100.00, mmluRedux: 97.45, mtBench: 95.00, truthfulQA: 99.24 }, meanBenignAccuracy: 96.76 },
  { method: "mlp", model: "llama3_8b_inst", f1: { aegis: 78.80, harmbench: 95.63, "openai-moderation": 75.38, simplesafetytests: 98.99, toxicchat: 66.31, wildguardtest: 84.50, wildjailbreak: 87.86, xstest: 94.52 }, meanF1: 85.25, benignAccuracy: { alpacaEval: 97.14, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 100.00, truthfulQA: 98.86 }, meanBenignAccuracy: 99.43 },
  { method: "mlp", model: "mistral7b", f1: { aegis: 69.45, harmbench: 84.26, "openai-moderation": 60.81, simplesafetytests: 93.05, toxicchat: 52.08, wildguardtest: 76.64, wildjailbreak: 71.60, xstest: 54.95 }, meanF1: 70.36, benignAccuracy: { alpacaEval: 92.17, bbh: 96.02, humanEval: 98.17, gsm8k: 100.00, mmluRedux: 84.77, mtBench: 92.50, truthfulQA: 98.73 }, meanBenignAccuracy: 94.62 },
  { method: "mlp", model: "mistral7b_inst", f1: { aegis: 81.75, harmbench: 95.86, "openai-moderation": 70.11, simplesafetytests: 97.44, toxicchat: 61.13, wildguardtest: 82.35, wildjailbreak: 83.01, xstest: 90.76 }, meanF1: 82.80, benignAccuracy: { alpacaEval: 94.66, bbh: 99.07, humanEval: 100.00, gsm8k: 99.92, mmluRedux: 99.93, mtBench: 96.25, truthfulQA: 98.61 }, meanBenignAccuracy: 98.35 },
  { method: "mlp", model: "olmo2_1124_7b", f1: { aegis: 51.96, harmbench: 91.86, "openai-moderation": 58.87, simplesafetytests: 76.54, toxicchat: 50.31, wildguardtest: 74.48, wildjailbreak: 67.58, xstest: 12.38 }, meanF1: 60.50, benignAccuracy: { alpacaEval: 89.69, bbh: 98.98, humanEval: 94.51, gsm8k: 100.00, mmluRedux: 98.51, mtBench: 91.25, truthfulQA: 100.00 }, meanBenignAccuracy: 96.13 },
  { method: "mlp", model: "olmo2_1124_7b_inst", f1: { aegis: 84.11, harmbench: 96.09, "openai-moderation": 76.26, simplesafetytests: 98.48, toxicchat: 74.93, wildguardtest: 86.54, wildjailbreak: 94.87, xstest: 94.68 }, meanF1: 88.25, benignAccuracy: { alpacaEval: 99.25, bbh: 100.00, humanEval: 100.00, gsm8k: 100.00, mmluRedux: 100.00, mtBench: 100.00, truthfulQA: 99.49 }, meanBenignAccuracy: 99.82 },
  { method: "prompted", model: "llama3_8b", f1: { aegis: 26.03, harmbench: 29.29, "openai-moderation": 26.39, simplesafetytests: 33.33, toxicchat: 14.89, wildguardtest: 19.26, wildjailbreak: 18.98, xstest: 15.77 }, meanF1: 22.99, benignAccuracy: { alpacaEval: 86.83, bbh: 83.70, humanEval: 63.41, gsm8k: 45.79, mmluRedux: 64.36, mtBench: 71.25, truthfulQA: 88.86 }, meanBenignAccuracy: 72.03 },
  { method: "prompted", model: "llama3_8b_inst", f1: { aegis: 70.71, harmbench: 53.37, "openai-moderation": 49.48, simplesafetytests: 81.66, toxicchat: 40.88, wildguardtest: 52.13, wildjailbreak: 27.97, xstest: 70.59 }, meanF1: 55.85, benignAccuracy: { alpacaEval: 96.27, bbh: 91.11, humanEval: 30.49, gsm8k: 94.09, mmluRedux: 85.93, mtBench: 92.50, truthfulQA: 97.22 }, meanBenignAccuracy: 83.94 },
  { method: "prompted", model: "mistral7b", f1: { aegis: 0.00, harmbench: 0.83, "openai-moderation": 0.00, simplesafetytests: 0.00, toxicchat: 1.35, wildguardtest: 4.88, wildjailbreak: 3.63, xstest: 0.00 }, meanF1: 1.34, benignAccuracy: { alpacaEval: 95.28, bbh: 100.00, humanEval: 0.00, gsm8k: 100.00, mmluRedux: 99.27, mtBench: 87.50, truthfulQA: 99.11 }, meanBenignAccuracy: 83.02 },
  { method: "prompted", model: "mistral7b_inst", f1: { aegis: 85.06, harmbench: 78.99, "openai-moderation": 67.57, simplesafetytests: 99.50, toxicchat: 60.96, wildguardtest: 78.73, wildjailbreak: 87.94, xstest: 81.00 }, meanF1: 79.97, benignAccuracy: { alpacaEval: 95.03, bbh: 86.39, humanEval: 93.29, gsm8k: 100.00, mmluRedux: 96.54, mtBench: 90.00, truthfulQA: 93.67 }, meanBenignAccuracy: 93.56 },
  { method: "prompted", model: "olmo2_1124_7b", f1: { aegis: 26.77, harmbench: 9.56, "openai-moderation": 25.94, simplesafetytests: 48.48, toxicchat: 12.47, wildguardtest: 24.54, wildjailbreak: 5.35, xstest: 55.68 }, meanF1: 26.10, benignAccuracy: { alpacaEval: 98.76, bbh: 65.83, humanEval: 89.02, gsm8k: 100.00, mmluRedux: 98.83, mtBench: 96.25, truthfulQA: 100.00 }, meanBenignAccuracy: 92.67 },
  { method: "prompted", model: "olmo2_1124_7b_dpo", f1: { aegis: 86.57, harmbench: 79.60, "openai-moderation": 75.90, simplesafetytests: 100.00, toxicchat: 66.98, wildguardtest: 83.07, wildjailbreak: 77.28, xstest: 85.27 }, meanF1: 81.83, benignAccuracy: { alpacaEval: 98.51, bbh: 13.06, humanEval: 93.29, gsm8k: 98.64, mmluRedux: 95.01, mtBench: 92.50, truthfulQA: 92.66 }, meanBenignAccuracy: 83.38 },
  { method: "prompted", model: "olmo2_1124_7b_inst", f1: { aegis: 86.57, harmbench: 79.60, "openai-moderation": 76.08, simplesafetytests: 100.00, toxicchat: 67.14, wildguardtest: 82.62, wildjailbreak: 78.25, xstest: 84.33 }, meanF1: 81.82, benignAccuracy: { alpacaEval: 98.39, bbh: 21.94, humanEval: 90.85, gsm8k: 99.92, mmluRedux: 94.57, mtBench: 93.75, truthfulQA: 92.78 }, meanBenignAccuracy: 84.60 },
  { method: "prompted", model: "olmo2_1124_7b_sft", f1: { aegis: 82.73, harmbench: 79.29, "openai-moderation": 76.07, simplesafetytests: 98.99, toxicchat: 65.75, wildguardtest: 81.40, wildjailbreak: 72.50, xstest: 87.44 }, meanF1: 80.52, benignAccuracy: { alpacaEval: 98.63, bbh: 14.91, humanEval: 97.56, gsm8k: 99.77, mmluRedux: 98.65, mtBench: 97.50, truthfulQA: 94.43 }, meanBenignAccuracy: 85.92 },
];

/**
 * MLPM per benchmark: `plotting/data/multilayer_multiple_datasets_plot_data.csv`, the rows with
 * prototypes from WildGuardMix only (`num_datasets` "wildguard"), the baseline arm of the paper's
 * several-datasets experiment. Their means (computed: Mistral-7B 87.55, Llama3-8B 88.32, OLMo2-7B
 * 89.69, Qwen3-8B 85.47) differ slightly from the headline means in `MLPM_MEANS` for OLMo2-7B and
 * Qwen3-8B, so treat them as approximate per-benchmark values of the headline method.
 */
export const MLPM_RESULTS: readonly ReferenceRow[] = [
  { method: "mlpm", model: "mistral7b_inst", f1: { aegis: 87.42, harmbench: 99.58, "openai-moderation": 70.11, simplesafetytests: 99.50, toxicchat: 66.60, wildguardtest: 87.86, wildjailbreak: 93.53, xstest: 95.83 } },
  { method: "mlpm", model: "qwen3_8b", f1: { aegis: 82.95, harmbench: 100.00, "openai-moderation": 70.87, simplesafetytests: 96.91, toxicchat: 63.78, wildguardtest: 86.89, wildjailbreak: 91.88, xstest: 90.46 } },
  { method: "mlpm", model: "llama3_8b_inst", f1: { aegis: 86.17, harmbench: 100.00, "openai-moderation": 71.75, simplesafetytests: 99.50, toxicchat: 68.94, wildguardtest: 88.12, wildjailbreak: 94.67, xstest: 97.42 } },
  { method: "mlpm", model: "olmo2_1124_7b_inst", f1: { aegis: 88.84, harmbench: 98.94, "openai-moderation": 72.44, simplesafetytests: 99.50, toxicchat: 74.72, wildguardtest: 88.42, wildjailbreak: 97.77, xstest: 96.91 } },
];

/**
 * MLPM mean F1 over the eight benchmarks per model family and size (`plotting/data/model_size_perf.csv`,
 * the paper's model-size figure; the three guards are the guard models' own means).
 */
export const MLPM_MEANS: readonly { family: string; paramsB: number; activeParamsB: number; meanF1: number }[] = [
  { family: "Aegis-D", paramsB: 7, activeParamsB: 7, meanF1: 78.82 },
  { family: "LlamaGuard3", paramsB: 8, activeParamsB: 8, meanF1: 79.56 },
  { family: "WildGuard", paramsB: 7, activeParamsB: 7, meanF1: 88.93 },
  { family: "Llama3", paramsB: 1, activeParamsB: 1, meanF1: 84.83 },
  { family: "Llama3", paramsB: 3, activeParamsB: 3, meanF1: 88.08 },
  { family: "Llama3", paramsB: 8, activeParamsB: 8, meanF1: 88.30 },
  { family: "Llama3", paramsB: 70, activeParamsB: 70, meanF1: 90.50 },
  { family: "Mistral", paramsB: 7, activeParamsB: 7, meanF1: 87.55 },
  { family: "Mistral", paramsB: 12, activeParamsB: 12, meanF1: 87.48 },
  { family: "Mistral", paramsB: 24, activeParamsB: 24, meanF1: 87.47 },
  { family: "OLMo2", paramsB: 1, activeParamsB: 1, meanF1: 86.68 },
  { family: "OLMo2", paramsB: 7, activeParamsB: 7, meanF1: 90.18 },
  { family: "OLMo2", paramsB: 13, activeParamsB: 13, meanF1: 89.81 },
  { family: "OLMo2", paramsB: 32, activeParamsB: 32, meanF1: 90.17 },
  { family: "OLMoE", paramsB: 7, activeParamsB: 1, meanF1: 86.96 },
  { family: "Qwen3", paramsB: 0.6, activeParamsB: 0.6, meanF1: 78.03 },
  { family: "Qwen3", paramsB: 1.7, activeParamsB: 1.7, meanF1: 81.37 },
  { family: "Qwen3", paramsB: 4, activeParamsB: 4, meanF1: 83.72 },
  { family: "Qwen3", paramsB: 8, activeParamsB: 8, meanF1: 85.95 },
  { family: "Qwen3", paramsB: 32, activeParamsB: 32, meanF1: 87.08 },
  { family: "Qwen3-MoE", paramsB: 30, activeParamsB: 3, meanF1: 84.79 },
];

/**
 * MLPM on pretrained (PT) and instruction-tuned (IT) models: F1 on WildGuardTest, mean F1 over the
 * other seven benchmarks and over all eight (`plotting/data/pretrained_vs_instruct_new.csv`).
 */
export const MLPM_PRETRAINED_VS_INSTRUCT: readonly {
  model: string;
  wildguardtest: number;
  meanF1WithoutWildguardtest: number;
  meanF1: number;
}[] = [
  { model: "Llama3-8B-PT", wildguardtest: 82.55, meanF1WithoutWildguardtest: 77.74, meanF1: 78.34 },
  { model: "Llama3-8B-IT", wildguardtest: 88.04, meanF1WithoutWildguardtest: 88.34, meanF1: 88.30 },
  { model: "Mistral-7B-PT", wildguardtest: 83.38, meanF1WithoutWildguardtest: 76.81, meanF1: 77.63 },
  { model: "Mistral-7B-IT", wildguardtest: 87.63, meanF1WithoutWildguardtest: 87.54, meanF1: 87.55 },
  { model: "OLMo2-7B-PT", wildguardtest: 84.65, meanF1WithoutWildguardtest: 79.33, meanF1: 79.99 },
  { model: "OLMo2-7B-IT", wildguardtest: 88.52, meanF1WithoutWildguardtest: 90.42, meanF1: 90.18 },
  { model: "Qwen3-8B-PT", wildguardtest: 85.29, meanF1WithoutWildguardtest: 81.33, meanF1: 81.82 },
  { model: "Qwen3-8B-IT", wildguardtest: 86.21, meanF1WithoutWildguardtest: 85.91, meanF1: 85.95 },
];
