/**
 * Loading the native addon and llama.cpp's prebuilt libraries from
 * node-llama-cpp's platform packages (@node-llama-cpp/<platform>).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { AbortError, BackendError, DecodeError, ModelStateError, SafetyLensError } from "../errors";
import { packageAddon, unpackedPath } from "./addon-loader";

export type GpuOption = "auto" | "cuda" | "vulkan" | "metal" | false;

export interface NativeDevice {
  index: number;
  name: string;
  description: string;
  type: "cpu" | "gpu" | "igpu" | "accel" | "other";
  backend: string;
  memoryFree: number;
  memoryTotal: number;
}

/** The shape of build/Release/safety_lens.node (see native/addon.cpp). */
export interface NativeAddon {
  loadLibraries(libraries: string[], cpuBackendDir: string): void;
  loadBackend(path: string): string;
  scatter(X: Float32Array, rows: number, cols: number, center: Float64Array, rowIndex: Uint32Array | null, threads: number): Float64Array;
  devices(): NativeDevice[];
  /** glibc: malloc_trim(0), hands freed pages back to the OS; false where unsupported (native/AddonMemory.cpp). */
  releaseMemory(): boolean;
  /** glibc's counters over all arenas, in bytes; null elsewhere. */
  mallocStats(): { inUse: number; free: number; mapped: number } | null;
  /** llama.cpp's quantizer (tools only): writes `output` with `type` weights. */
  quantize(input: string, output: string, type: "f16" | "q8_0" | "q4_k_m", threads?: number): Promise<void>;
  AddonModel: new (path: string, options: { gpuLayers: number; useMmap: boolean; devices: string[] }) => NativeModel;
  AddonContext: new (model: NativeModel, options: NativeContextOptions) => NativeContext;
}

export interface NativeModelInfo {
  arch: string;
  name: string;
  description: string;
  nLayer: number;
  nEmbd: number;
  nCtxTrain: number;
  nVocab: number;
  nParams: number;
  sizeBytes: number;
  hasEncoder: boolean;
  chatTemplate: string | null;
  /** The BOS token id, or null. */
  bosId: number | null;
  bosToken: string | null;
  eosToken: string | null;
  eotToken: string | null;
  addBos: boolean;
  addEos: boolean;
}

export interface NativeModel {
  load(): Promise<void>;
  info(): NativeModelInfo;
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  detokenize(tokens: Int32Array, special?: boolean): string;
  dispose(): void;
}

export interface NativeContextOptions {
  contextSize: number;
  batchSize: number;
  sequences: number;
  threads: number;
  capture: boolean;
  embeddings: boolean;
  flashAttention: boolean;
  kvCacheF16: boolean;
}

export interface NativeCaptureRequest {
  tokens: Int32Array;
  offsets: Uint32Array;
  layers: Int32Array;
  pool: number;
  outputs: Float32Array[];
  earlyExit: boolean;
  keep?: boolean;
  /** with keep: continue this sequence from pos0, leaving other sequences' cells */
  seq?: number;
  pos0?: number;
}

export interface NativeDecodeRequest {
  tokens: Int32Array;
  offsets: Uint32Array;
  embeddings?: Float32Array;
  /** prefill: keep the (single) text in the KV cache for generate() */
  keep?: boolean;
  /** with keep: continue this sequence from pos0, leaving other sequences' cells */
  seq?: number;
  pos0?: number;
  /** read each text's last-token logits of these token ids into `logits` (texts x ids) */
  logitTokens?: Int32Array;
  logits?: Float32Array;
  /** per text, the first token whose log-probability given everything before it is summed into `logprobs` */
  scoreFrom?: Uint32Array;
  logprobs?: Float64Array;
}

export interface NativeGenerateRequest {
  n: number;
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  seed: number;
  stop: string[];
  ignoreEos: boolean;
  layers: Int32Array;
  pool: number;
  outputs: Float32Array[];
  /** candidate -> sequence id ([0] is the prefilled sequence) */
  seqs?: Int32Array;
  /** leave every candidate's cells in the cache */
  keep?: boolean;
  monitor?: NativeMonitor;
}

/** A linear streaming monitor on one captured slot (see native/StreamingMonitor.h). */
export interface NativeMonitor {
  slot: number;
  w: Float32Array;
  b: number;
  /** 0: exponential moving average, 1: mean of the last `window` scores */
  kind: number;
  alpha: number;
  window: number;
  threshold: number;
  minTokens: number;
}

export interface NativeGenerateCandidate {
  tokens: Int32Array;
  text: Buffer;
  finishReason: "eos" | "length" | "stop" | "flagged" | "aborted";
  decoded: number;
  /** tokens decoded into the KV cache (a flagged token included) */
  cached: Int32Array;
  /** monitored: each decoded token's score, the aggregate after the last, and where it flagged (-1: never) */
  scores?: Float32Array;
  aggregate?: number;
  flaggedAt?: number;
}

export interface NativeGenerateResult {
  candidates: NativeGenerateCandidate[];
  decodeMs: number;
  steps: number;
}

export interface NativeGraphProbe {
  /** Layers whose output the graph names l_out-<n>. */
  layers: Int32Array;
  /** Whether it names the final norm's output result_norm. */
  resultNorm: boolean;
  /** Graph nodes seen. */
  nodes: number;
  /** Whether the probe stopped the computation early (after the whole graph was seen). */
  aborted: boolean;
  ms: number;
}

export interface NativeContext {
  init(): Promise<void>;
  capture(request: NativeCaptureRequest, onProgress?: (textsDone: number, tokensDone: number) => void): Promise<{ decodeMs: number }>;
  decode(request: NativeDecodeRequest, onProgress?: (textsDone: number, tokensDone: number) => void): Promise<{ decodeMs: number }>;
  generate(request: NativeGenerateRequest, onToken?: (candidate: number, token: number, piece: Buffer) => void): Promise<NativeGenerateResult>;
  cancel(): void;
  /** Drops a sequence's cells in [p0, p1) (-1: open). */
  seqRemove(seq: number, p0: number, p1: number): void;
  /** Makes dst share src's cells in [p0, p1). */
  seqCopy(src: number, dst: number, p0: number, p1: number): void;
  /** Decodes one token to find which hidden states the compute graph names (see native/GraphProbeWorker.h). */
  probeGraph(): Promise<NativeGraphProbe>;
  info(): { contextSize: number; batchSize: number; sequences: number; threads: number };
  dispose(): void;
}

/**
 * Rethrows a native job's rejection as a typed error that keeps the caller's stack.
 * An error the caller threw (from a callback such as onToken, onProgress or
 * onPromptHidden) is rethrown as it is.
 */
export function mapNativeError(e: unknown, callSite: Error): unknown {
  const native = (e as { nativeJob?: boolean } | null)?.nativeJob === true;
  if (!native && !(e instanceof SafetyLensError) && !(e instanceof TypeError) && !(e instanceof RangeError)) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: string } | null)?.code;
  let err: Error;
  if (e instanceof SafetyLensError) err = e;
  else if (native && code === "ABORTED") err = new AbortError();
  else if (native && code === "CONTEXT_FULL") err = new ModelStateError("CONTEXT_FULL", msg);
  else if (e instanceof TypeError || e instanceof RangeError) err = e;
  else err = new DecodeError("DECODE_FAILED", msg, { cause: e });
  const site = callSite.stack?.split("\n").slice(1).join("\n");
  if (site) err.stack = `${err.name}: ${err.message}\n${site}`;
  return err;
}

/** Loads the addon once: built here or prebuilt (see core/addon-loader.ts). */
export function getAddon(): NativeAddon {
  return packageAddon<NativeAddon>().addon;
}

/** node-llama-cpp's platform package names for this machine. */
export function platformPackages(): { cpu: string; cuda?: string; vulkan?: string } {
  const { platform, arch } = process;
  if (platform === "linux" && arch === "x64") return { cpu: "linux-x64", cuda: "linux-x64-cuda", vulkan: "linux-x64-vulkan" };
  if (platform === "linux" && arch === "arm64") return { cpu: "linux-arm64" };
  if (platform === "linux" && arch === "arm") return { cpu: "linux-armv7l" };
  if (platform === "darwin" && arch === "arm64") return { cpu: "mac-arm64-metal" };
  if (platform === "darwin" && arch === "x64") return { cpu: "mac-x64" };
  if (platform === "win32" && arch === "x64") return { cpu: "win-x64", cuda: "win-x64-cuda", vulkan: "win-x64-vulkan" };
  if (platform === "win32" && arch === "arm64") return { cpu: "win-arm64" };
  throw new BackendError("BACKEND_UNAVAILABLE", `node-llama-cpp ships no prebuilt llama.cpp for ${platform}-${arch}`);
}

/** The bins/<name> folder of an installed @node-llama-cpp/<name> package, or null. */
export function findBinsDir(name: string): string | null {
  for (const base of require.resolve.paths(`@node-llama-cpp/${name}`) ?? []) {
    const dir = path.join(base, "@node-llama-cpp", name, "bins", name);
    if (fs.existsSync(dir)) return unpackedPath(dir); // Electron: native code cannot read inside app.asar
  }
  return null;
}

function findLibrary(dir: string, stem: "llama" | "ggml" | "ggml-base"): string {
  const files = fs.readdirSync(dir);
  const ext = process.platform === "win32" ? ".dll" : process.platform === "darwin" ? ".dylib" : ".so";
  const prefix = process.platform === "win32" ? "" : "lib";
  // libllama.v0.5.0.so, libggml.v0.5.0.so, libggml-base.so (names differ per variant and version)
  const re = new RegExp(`^${prefix}${stem.replace("-", "\\-")}(\\.[A-Za-z0-9_]+)*(\\.v[0-9.]+)?${ext.replace(".", "\\.")}$`);
  const hit = files.find((f) => re.test(f) && !f.startsWith(`${prefix}${stem}-`));
  if (!hit) throw new BackendError("BACKEND_UNAVAILABLE", `no ${prefix}${stem}*${ext} in ${dir}; reinstall node-llama-cpp`);
  return path.join(dir, hit);
}

let librariesDir: string | undefined;
const loadedBackends = new Map<string, string | Error>();

/** Loads llama.cpp's CPU libraries (once per process). */
export function ensureLibraries(): NativeAddon {
  const a = getAddon();
  if (librariesDir) return a;
  const pkgs = platformPackages();
  const dir = findBinsDir(pkgs.cpu);
  if (!dir) {
    throw new BackendError(
      "BACKEND_UNAVAILABLE",
      `@node-llama-cpp/${pkgs.cpu} is not installed; it ships llama.cpp for this platform. Run \`npm install\` (optional dependencies must not be omitted).`,
    );
  }
  const libs = [findLibrary(dir, "llama"), findLibrary(dir, "ggml"), findLibrary(dir, "ggml-base")];
  try {
    a.loadLibraries(libs, dir);
  } catch (e) {
    throw new BackendError("BACKEND_UNAVAILABLE", `could not load llama.cpp from ${dir}: ${(e as Error).message}`, { cause: e });
  }
  librariesDir = dir;
  return a;
}

function gpuDevices(a: NativeAddon, backend?: string): NativeDevice[] {
  return a.devices().filter((d) => (d.type === "gpu" || d.type === "igpu") && (!backend || d.backend.toLowerCase() === backend.toLowerCase()));
}

/** Adds one GPU backend library (CUDA or Vulkan) from its @node-llama-cpp package. */
function loadGpuBackend(a: NativeAddon, kind: "cuda" | "vulkan"): string {
  const prior = loadedBackends.get(kind);
  if (typeof prior === "string") return prior;
  if (prior instanceof Error) throw prior;
  try {
    const pkg = platformPackages()[kind];
    if (!pkg) throw new BackendError("BACKEND_UNAVAILABLE", `node-llama-cpp has no ${kind} build for ${process.platform}-${process.arch}`);
    const dir = findBinsDir(pkg);
    if (!dir) throw new BackendError("BACKEND_UNAVAILABLE", `@node-llama-cpp/${pkg} is not installed, so ${kind} cannot be used`);
    const file = path.join(dir, `${process.platform === "win32" ? "" : "lib"}ggml-${kind}${process.platform === "win32" ? ".dll" : ".so"}`);
    if (!fs.existsSync(file)) throw new BackendError("BACKEND_UNAVAILABLE", `${file} is missing; reinstall @node-llama-cpp/${pkg}`);
    let reg: string;
    try {
      reg = a.loadBackend(file);
    } catch (e) {
      const hint = kind === "cuda" ? " (it needs an NVIDIA driver and the CUDA 13 runtime: libcudart, libcublas)" : " (it needs a Vulkan loader, libvulkan.so.1, and a driver)";
      throw new BackendError("BACKEND_UNAVAILABLE", `the ${kind} backend could not be loaded${hint}: ${(e as Error).message}`, { cause: e });
    }
    loadedBackends.set(kind, reg);
    return reg;
  } catch (e) {
    loadedBackends.set(kind, e as Error);
    throw e;
  }
}

/**
 * Resolves the `gpu` option to the devices a model should offload to.
 * "auto" tries CUDA, then Vulkan (then Metal on macOS) and falls back to the CPU.
 */
export function resolveGpu(gpu: GpuOption): { backend: string; devices: NativeDevice[] } {
  const a = ensureLibraries();
  if (gpu === false) return { backend: "cpu", devices: [] };
  if (gpu === "metal") {
    const d = gpuDevices(a, "MTL").concat(gpuDevices(a, "Metal"));
    if (d.length === 0) throw new BackendError("BACKEND_UNAVAILABLE", "gpu: \"metal\" needs macOS on Apple silicon; no Metal device was found");
    return { backend: "metal", devices: d };
  }
  if (gpu === "cuda" || gpu === "vulkan") {
    const reg = loadGpuBackend(a, gpu);
    const d = gpuDevices(a, reg);
    if (d.length === 0) throw new BackendError("BACKEND_UNAVAILABLE", `the ${gpu} backend loaded but found no device`);
    return { backend: gpu, devices: d };
  }
  // auto
  if (process.platform === "darwin") {
    const d = gpuDevices(a, "MTL").concat(gpuDevices(a, "Metal"));
    if (d.length > 0) return { backend: "metal", devices: d };
    return { backend: "cpu", devices: [] };
  }
  for (const kind of ["cuda", "vulkan"] as const) {
    try {
      const reg = loadGpuBackend(a, kind);
      const d = gpuDevices(a, reg);
      if (d.length > 0) return { backend: kind, devices: d };
    } catch {
      // try the next one; "auto" falls back to the CPU
    }
  }
  return { backend: "cpu", devices: [] };
}

/** Logical CPUs available to this process (hyper-threads included; affinity respected). */
export function logicalCoreCount(): number {
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}

let physical: number | undefined;

/**
 * Physical CPU cores available to this process: llama.cpp's thread count.
 * Hyper-threads and more threads than cores slow decoding down sharply.
 */
export function physicalCoreCount(): number {
  if (physical !== undefined) return physical;
  const available = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  let cores = available;
  try {
    if (process.platform === "linux") {
      const info = fs.readFileSync("/proc/cpuinfo", "utf8");
      const ids = new Set<string>();
      let phys = "0";
      for (const line of info.split("\n")) {
        const [k, v] = line.split(":").map((s) => s?.trim());
        if (k === "physical id") phys = v;
        else if (k === "core id") ids.add(`${phys}:${v}`);
      }
      if (ids.size > 0) cores = ids.size;
    } else if (process.platform === "darwin") {
      cores = Number(execFileSync("sysctl", ["-n", "hw.physicalcpu"], { encoding: "utf8" }).trim()) || available;
    }
  } catch {
    cores = available;
  }
  physical = Math.max(1, Math.min(cores, available));
  return physical;
}
