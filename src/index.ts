/**
 * safety-lens: hidden states of local GGUF models (llama.cpp) for safety probes,
 * a two-step guard and safety representation ranking. The public API.
 */
export { loadModel, Model, DEFAULT_MODEL_PATH } from "./core/model";
export type { LoadModelOptions, ModelInfo } from "./core/model";
export { Activations } from "./core/activations";
export type { LayerSpec, Pool, CaptureInput, CaptureOptions, CaptureProgressInfo, PreparedTexts, Features } from "./core/activations";
export type { ChatMessage, ChatOptions, PrepareOptions, InputFormat } from "./core/chat";
export { renderChatTemplate, DEFAULT_TEMPLATE_DATE, SYSTEM_MESSAGE_MERGE_FORMAT } from "./core/template";
export type { TemplateRenderInfo } from "./core/template";
export type { CaptureToFileOptions, CaptureToFileReport, CorpusProgress, OnLong } from "./core/corpus";
export type {
  GenerateOptions,
  GenerateResult,
  GenerationCandidate,
  GenerationStream,
  GenerateCaptureOptions,
  TokenEvent,
  FinishReason,
  PromptHiddenVerdict,
} from "./core/generate";
export type { GpuOption } from "./core/native";
export { physicalCoreCount } from "./core/native";
export { runtimeInfo } from "./core/runtime-info";
export type { RuntimeInfo, BackendStatus } from "./core/runtime-info";
export type { AddonSource, AddonKind } from "./core/addon-loader";
export * from "./errors";
export { writeSafetensors, readSafetensors } from "./io/safetensors";
export {
  openCaptureFile, CaptureFileWriter, digestFile, mergeCaptureFiles, readCaptureInfo, readCaptureRows, CaptureReader,
  shardRange, parseShard, layerFilePath, progressPath, CAPTURE_FORMAT, FINAL_METADATA_RESERVE,
} from "./io/capture-file";
export type { CaptureFileOptions, CaptureFileProgress, CaptureFileSummary, CaptureInfo, CaptureLayer, MergeOptions, MergeResult } from "./io/capture-file";
export { readJsonl, readTextRecords } from "./io/jsonl";
export * from "./probe/index";
export { Guard, DEFAULT_REFUSAL, DEFAULT_SAFETY_SYSTEM_PROMPT } from "./guard";
export type { GuardOptions, GuardVerdict, GuardedResult, SafePath } from "./guard";
export { Ranker, RANKER_FORMAT, RANKER_VERSION, srrFeatures, defaultRankerLayer } from "./srr/ranker";
export type { RankResult, RankerTrainOptions, SrrListInput } from "./srr/ranker";
export type { RankList, RankerConfig } from "./srr/network";
export { trainRankerOnFiles, evaluateRanker, loadRankerData, fitLists } from "./srr/pipeline";
export type { RankerEvaluation, TrainRankerJob, RankerDataOptions } from "./srr/pipeline";
export { loadResponseFiles, splitByInstruction, splitBySource } from "./srr/data";
export type { RankItem } from "./srr/data";
export { rankingMetrics, top1SafeAccuracy, pairwiseAccuracy, ndcg, mrr } from "./srr/metrics";
export { readSuiteDir, dropOverlap, SUITES } from "./io/suites";
export type { SuiteSet, SuiteRecord, SuiteKind, SuiteSpec, SkippedFile, ReadSuiteOptions } from "./io/suites";
export { PAPER_BENCHMARKS, LPM_RESULTS, MLPM_RESULTS, MLPM_MEANS, MLPM_PRETRAINED_VS_INSTRUCT } from "./probe/reference-figures";
export type { PaperBenchmark, PaperBenchmarkInfo, PaperBenignSet, ReferenceRow } from "./probe/reference-figures";
export { trainGuard, STARTER_DATA } from "./probe/train-guard";
export type { TrainGuardOptions, GuardTraining, GuardCandidate, Mistake } from "./probe/train-guard";
export { guardReportHtml } from "./probe/report";
export { evaluateOnSuites, suiteTable, REFERENCE_COLUMNS } from "./probe/eval-suites";
export type { SuiteEvaluation } from "./probe/eval-suites";
export { Monitor, MONITOR_FORMAT, MONITOR_VERSION, DEFAULT_STREAM_RULE, DEFAULT_MONITOR_REFUSAL } from "./monitor/monitor";
export type { MonitorAction, MonitorGenerateOptions } from "./monitor/monitor";
export { trainMonitor, evaluateMonitor, defaultMonitorLayers } from "./monitor/train";
export type { TrainMonitorOptions, MonitorMetrics, MonitorEvaluation, MonitorSweepRow } from "./monitor/train";
export { replay as replayStreamRule } from "./monitor/rule";
export { Chat, createChat, CHAT_FORMAT, CHAT_VERSION } from "./chat/chat";
export type { ChatHistory, ChatSessionOptions, ChatSendOptions, ChatTurn, ContextPolicy } from "./chat/chat";
export type { StreamMonitorSpec, StreamRule, MonitorReport } from "./core/generate";
