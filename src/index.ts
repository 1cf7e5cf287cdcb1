export { loadModel, Model, Activations, DEFAULT_MODEL_PATH } from "./model";
export type {
  LoadModelOptions,
  ModelInfo,
  LayerSpec,
  Pool,
  CaptureInput,
  CaptureOptions,
  CaptureProgressInfo,
  ChatOptions,
  PrepareOptions,
  PreparedTexts,
} from "./model";
export type { ChatMessage } from "./chat";
export type {
  GenerateOptions,
  GenerateResult,
  GenerationCandidate,
  GenerationStream,
  GenerateCaptureOptions,
  TokenEvent,
  FinishReason,
  PromptHiddenVerdict,
} from "./generate";
export type { GpuOption } from "./native";
export { physicalCoreCount } from "./native";
export { runtimeInfo } from "./core/runtime-info";
export type { RuntimeInfo, BackendStatus } from "./core/runtime-info";
export type { AddonSource, AddonKind } from "./core/addon-loader";
export * from "./errors";
export { writeSafetensors, readSafetensors } from "./safetensors";
export { readJsonl, readTextRecords } from "./jsonl";
export * from "./probe/index";
export { Guard, DEFAULT_REFUSAL, DEFAULT_SAFETY_SYSTEM_PROMPT } from "./guard";
export type { GuardOptions, GuardVerdict, GuardedResult, SafePath } from "./guard";
export { Ranker, RANKER_FORMAT, RANKER_VERSION, srrFeatures, defaultRankerLayer } from "./srr/ranker";
export type { RankResult, RankerTrainOptions, SrrListInput } from "./srr/ranker";
export { trainRankerOnFiles, evaluateRanker, loadRankerData } from "./srr/pipeline";
export type { RankerEvaluation, TrainRankerJob, RankerDataOptions } from "./srr/pipeline";
export { loadResponseFiles, splitByInstruction, splitBySource } from "./srr/data";
export type { RankItem } from "./srr/data";
export { rankingMetrics, top1SafeAccuracy, pairwiseAccuracy, ndcg, mrr } from "./srr/metrics";
