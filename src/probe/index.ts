/** The probe module: prompt-safety probes on hidden states. */
import "../core/native-math";

export * from "./types";
export { Probe, PROBE_FORMAT, PROBE_VERSION, PROBE_METHODS, DEFAULT_PROBE_INPUT } from "./probe";
export { sigmoid } from "../math/linalg";
export type { ProbeMethod, ProbeInput, ThresholdRule, ProbeTrainOptions } from "./probe";
export { loadPromptFiles, splitRecords, labelsOf, sourcesOf } from "./data";
export type { PromptRecord, LoadPromptStats, LoadPromptOptions } from "./data";
export { ActivationCache, CACHE_CHUNK_ROWS } from "./cache";
export type { CacheFeaturesOptions, CacheFeaturesResult, CacheFillOptions, CacheFillResult, CacheLayerResult } from "./cache";
export { sweepChartSvg } from "./svg";
export { trainProbe, evaluateProbe, sweepLayers, featuresFor, openLayerSource, evaluateScores } from "./pipeline";
export type { TrainProbeOptions, Evaluation, SweepRow, DataOptions, FeatureSet, LayerSource } from "./pipeline";
export { promptedScores, PROMPTED_TEMPLATE } from "./prompted";
