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
export * from "./errors";
export { writeSafetensors, readSafetensors } from "./safetensors";
export { readJsonl, readTextRecords } from "./jsonl";
export * from "./probe/index";
export { Guard, DEFAULT_REFUSAL, DEFAULT_SAFETY_SYSTEM_PROMPT } from "./guard";
export type { GuardOptions, GuardVerdict, GuardedResult, SafePath } from "./guard";
