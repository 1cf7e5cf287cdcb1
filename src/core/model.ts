/**
 * Model: a loaded GGUF model and the capture API.
 *
 *   const model = await loadModel({ modelPath, threads, gpu });
 *   const acts = await model.capture(texts, { layers: [4, 12, "final"], pool: "last" });
 *   acts.layer(12); // Float32Array, texts.length x nEmbd, row-major
 *
 * Every option is checked here, with exact TypeError/RangeError messages, before
 * anything crosses into C++ (src/core/native.ts, native/).
 */
import * as path from "node:path";

import { AbortError, CaptureError, InputError, ModelLoadError, ModelStateError } from "../errors";
import { validateModelFile } from "../io/gguf-validate";
import { ggufFingerprint, readGgufInfo } from "../io/gguf";
import {
  Activations,
  checkLayers,
  describeOption as describe,
  type CaptureInput,
  type CaptureOptions,
  type LayerSpec,
  type Pool,
  type PreparedTexts,
} from "./activations";
import { checkInt } from "./validate";
import { type ChatMessage, type ChatOptions, isChatMessages, type PrepareOptions, renderChat } from "./chat";
import {
  type GenerateOptions,
  type GenerateResult,
  type GenerationJob,
  type GenerationStream,
  makeStream,
  resolveGenerateOptions,
  runGeneration,
  type TokenEvent,
} from "./generate";
import { type CaptureToFileOptions, type CaptureToFileReport, captureToFile, fitTokens } from "./corpus";
import { SessionHost } from "./session";
import { checkTemplateDate } from "./template";
import {
  type GpuOption,
  mapNativeError,
  type NativeContext,
  type NativeGraphProbe,
  type NativeModel,
  type NativeModelInfo,
  ensureLibraries,
  getAddon,
  logicalCoreCount,
  physicalCoreCount,
  resolveGpu,
} from "./native";

/** The model shipped in the package: stories260K (MIT), a 260K-parameter llama trained on TinyStories. */
export const DEFAULT_MODEL_PATH = path.join(__dirname, "..", "..", "models", "stories260K.gguf");

export interface LoadModelOptions {
  /** A GGUF file. Default: the embedded stories260K model. */
  modelPath?: string;
  /** CPU threads for llama.cpp. Default: the number of physical cores. */
  threads?: number;
  /** "auto" (default) tries CUDA, Vulkan, Metal and falls back to the CPU; false is CPU only; a name demands that backend. */
  gpu?: GpuOption;
  /** Layers to offload when a GPU is used. Default: all. */
  gpuLayers?: number;
  /** Tokens the context holds: the longest text that can be captured. Default: min(training context, 4096). */
  contextSize?: number;
  /** Tokens per llama_decode call. Default 512. */
  batchSize?: number;
  /** Most texts decoded together in one batch. Default 64. */
  sequences?: number;
  /** Memory-map the model file. Default true. */
  useMmap?: boolean;
  /**
   * llama.cpp's flash attention. Default false: it accumulates in half precision,
   * so a text's hidden states then depend on what else shares its batch (up to
   * ~1e-2 here). Turn it on for speed on GPUs when that does not matter.
   */
  flashAttention?: boolean;
  /**
   * Element type of the KV cache. Default "f32": with "f16" (llama.cpp's default, half
   * the memory) a tiny difference in a key can flip its rounding, and the same text's
   * hidden states then differ by up to ~5e-4 between batch shapes (measured); with
   * "f32" they agree to ~2e-6.
   */
  kvCacheType?: "f32" | "f16";
  /**
   * After dispose(), hand the memory llama.cpp freed back to the OS (glibc's malloc_trim;
   * nothing elsewhere). Default true: glibc otherwise keeps a context's buffers in its
   * per-thread arenas, and RSS grew ~90 MB over 1,000 load/dispose cycles (README, Memory).
   */
  releaseMemoryOnDispose?: boolean;
}

/** What a loaded model is: the GGUF's own figures (as the addon reads them) and how it was loaded. */
export interface ModelInfo extends Pick<NativeModelInfo, "arch" | "name" | "description" | "nLayer" | "nEmbd" | "nCtxTrain" | "nVocab" | "nParams" | "sizeBytes"> {
  path: string;
  /** The model's own Jinja chat template, or null (a fallback ChatML template is then used). */
  chatTemplate: string | null;
  /** Identifies the weights: probes and rankers trained on one model refuse another. */
  fingerprint: string;
  /** The beginning-of-sequence token id, or null. */
  bosId: number | null;
  backend: string;
  devices: string[];
  threads: number;
  contextSize: number;
  batchSize: number;
  sequences: number;
  flashAttention: boolean;
  kvCacheType: "f32" | "f16";
}


/** What is wrong with something that should be a string or chat messages, for TypeError messages. */
function describeMessages(v: unknown): string {
  if (!Array.isArray(v)) return `got ${describe(v)}`;
  for (let i = 0; i < v.length; i++) {
    const m = v[i] as Record<string, unknown> | null;
    if (m === null || typeof m !== "object" || Array.isArray(m)) return `but message ${i} is ${describe(m)}`;
    if (typeof m.role !== "string") return `but message ${i} has ${m.role === undefined ? "no role" : `role ${describe(m.role)}`}`;
    if (typeof m.content !== "string") return `but message ${i} has ${m.content === undefined ? "no content" : `content ${describe(m.content)}`}`;
  }
  return "got an array";
}

/** Symbol.asyncDispose; Node 20 defines it as Symbol.for("nodejs.asyncDispose"), some sandboxes (jest) do not. */
const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? (Symbol.for("nodejs.asyncDispose") as typeof Symbol.asyncDispose);

const POOLS: Readonly<Record<Pool, number>> = Object.freeze({ last: 0, mean: 1, tokens: 2 });

/** Key of the accessor that src/core/internal.ts (benchmarks, tests) reads a model's native side through. */
export const kInternal = Symbol("safety-lens.internal");

/** What the internal entry (src/core/internal.ts) may use; not part of the public API. */
export interface ModelInternals {
  prepare(inputs: readonly CaptureInput[] | PreparedTexts, options: PrepareOptions): PreparedTexts;
  checkUsable(): void;
  extraContext(kind: "embeddings" | "plain"): Promise<NativeContext>;
  exclusive<T>(callSite: Error, job: Promise<T>): Promise<T>;
  /** The chat sequences (core/session.ts), on a context of their own. */
  sessions(): SessionHost;
  /** Checks generate options and renders the prompt (the job without its context). */
  generationJob(input: CaptureInput, options: GenerateOptions): Omit<GenerationJob, "ctx" | "placement">;
  /** What the load-time probe found in the compute graph. */
  graph: NativeGraphProbe;
}

export class Model {
  private nativeContext: NativeContext | null;
  private extraContexts = new Map<string, Promise<NativeContext>>();
  private createdContexts: NativeContext[] = [];
  private sessionHost: SessionHost | null = null;
  private running: Promise<unknown> | null = null;
  private disposed = false;

  private constructor(
    readonly info: ModelInfo,
    private readonly native: NativeModel,
    private readonly nativeInfo: NativeModelInfo,
    context: NativeContext,
    private readonly releaseMemoryOnDispose: boolean,
    private readonly graph: NativeGraphProbe,
  ) {
    this.nativeContext = context;
  }

  /** Loads a GGUF model. See {@link loadModel}. */
  static async load(options: LoadModelOptions = {}): Promise<Model> {
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
    const modelPath = options.modelPath ?? DEFAULT_MODEL_PATH;
    if (typeof modelPath !== "string" || modelPath.length === 0) throw new TypeError("modelPath must be a non-empty string");
    // More threads than logical cores only slows llama.cpp down (its workers spin-wait: 64
    // threads on 2 cores took 68 s for what 2 do in 61 ms), so that is refused.
    const maxThreads = logicalCoreCount();
    const threads = options.threads === undefined ? physicalCoreCount() : checkInt("threads", options.threads, 1, maxThreads, ` (the ${maxThreads} logical cores)`);
    const gpu = options.gpu === undefined ? "auto" : options.gpu;
    if (!(gpu === false || gpu === "auto" || gpu === "cuda" || gpu === "vulkan" || gpu === "metal")) {
      throw new TypeError(`gpu must be "auto", "cuda", "vulkan", "metal" or false, got ${describe(gpu)}`);
    }
    const gpuLayers = options.gpuLayers === undefined ? -1 : checkInt("gpuLayers", options.gpuLayers, 0, 100000);
    const batchSize = options.batchSize === undefined ? 512 : checkInt("batchSize", options.batchSize, 1, 65536);
    const sequencesAsked = options.sequences === undefined ? undefined : checkInt("sequences", options.sequences, 1, 256);
    if (options.contextSize !== undefined) checkInt("contextSize", options.contextSize, 16, 1 << 22);
    if (options.useMmap !== undefined && typeof options.useMmap !== "boolean") throw new TypeError("useMmap must be a boolean");
    if (options.flashAttention !== undefined && typeof options.flashAttention !== "boolean") throw new TypeError("flashAttention must be a boolean");
    if (options.releaseMemoryOnDispose !== undefined && typeof options.releaseMemoryOnDispose !== "boolean") {
      throw new TypeError("releaseMemoryOnDispose must be a boolean");
    }
    const kvCacheType = options.kvCacheType ?? "f32";
    if (kvCacheType !== "f32" && kvCacheType !== "f16") throw new TypeError(`kvCacheType must be "f32" or "f16", got ${describe(kvCacheType)}`);

    const abs = path.resolve(modelPath);
    const gguf = await readGgufInfo(abs); // missing / not GGUF / truncated: ModelLoadError before llama.cpp sees it
    validateModelFile(abs, gguf); // values llama.cpp would abort on: MODEL_INVALID instead of a crash
    const fingerprint = await ggufFingerprint(abs, gguf);

    const addon = ensureLibraries();
    const { backend, devices } = resolveGpu(gpu);
    const native = new addon.AddonModel(abs, {
      gpuLayers: devices.length ? gpuLayers : 0,
      useMmap: options.useMmap ?? true,
      devices: devices.map((d) => d.name),
    });
    try {
      await native.load();
    } catch (e) {
      throw new ModelLoadError("MODEL_LOAD_FAILED", (e as Error).message, { cause: e });
    }
    const ni = native.info();
    if (ni.hasEncoder) {
      native.dispose();
      throw new ModelLoadError("MODEL_LOAD_FAILED", `${abs}: encoder-decoder models (${ni.arch}) are not supported`);
    }
    const contextSize = options.contextSize ?? Math.max(16, Math.min(ni.nCtxTrain > 0 ? ni.nCtxTrain : 4096, 4096));
    // llama.cpp decodes at most min(contextSize, batchSize) tokens per call and reserves one
    // output row per sequence within them (it asserts, aborting the process, otherwise).
    const perCall = Math.min(contextSize, batchSize);
    if (sequencesAsked !== undefined && sequencesAsked > perCall) {
      native.dispose();
      throw new RangeError(
        `sequences (${sequencesAsked}) must not exceed the tokens one llama_decode takes: min(contextSize, batchSize) = ${perCall}`,
      );
    }
    const sequences = Math.min(sequencesAsked ?? 64, perCall);
    const context = new addon.AddonContext(native, {
      contextSize,
      batchSize,
      sequences,
      threads,
      capture: true,
      embeddings: false,
      flashAttention: options.flashAttention ?? false,
      kvCacheF16: kvCacheType === "f16",
    });
    // Which hidden states the architecture's graph names (l_out-<n>, result_norm), from one
    // test token (stopped once the graph is seen: well under a millisecond on the CPU).
    let graph: NativeGraphProbe;
    try {
      await context.init();
      graph = await context.probeGraph();
    } catch (e) {
      context.dispose();
      native.dispose();
      throw new ModelLoadError("MODEL_LOAD_FAILED", (e as Error).message, { cause: e });
    }
    const ci = context.info();
    const info: ModelInfo = {
      path: abs,
      arch: ni.arch,
      name: ni.name,
      description: ni.description,
      nLayer: ni.nLayer,
      nEmbd: ni.nEmbd,
      nCtxTrain: ni.nCtxTrain,
      nVocab: ni.nVocab,
      nParams: ni.nParams,
      sizeBytes: ni.sizeBytes,
      chatTemplate: ni.chatTemplate,
      fingerprint,
      bosId: typeof ni.bosId === "number" ? ni.bosId : null,
      backend,
      devices: devices.map((d) => d.name),
      threads: ci.threads,
      contextSize: ci.contextSize,
      batchSize: ci.batchSize,
      sequences: ci.sequences,
      flashAttention: options.flashAttention ?? false,
      kvCacheType,
    };
    return new Model(Object.freeze(info), native, ni, context, options.releaseMemoryOnDispose ?? true, graph);
  }

  /** @internal */
  get [kInternal](): ModelInternals {
    return {
      prepare: (inputs, options) => (isPrepared(inputs) ? this.checkPrepared(inputs) : this.prepare(inputs, options)),
      checkUsable: () => this.checkUsable(),
      extraContext: (kind) => this.extraContext(kind),
      exclusive: (callSite, job) => this.exclusive(callSite, job),
      sessions: () => {
        this.checkUsable();
        this.sessionHost ??= new SessionHost({
          contextSize: this.info.contextSize,
          sequences: this.info.sequences,
          context: () => {
            if (this.disposed) return Promise.reject(new ModelStateError("MODEL_DISPOSED", "the model is disposed"));
            return this.extraContext("chat");
          },
          exclusive: (callSite, job) => {
            this.checkUsable();
            return this.exclusive(callSite, job);
          },
        });
        return this.sessionHost;
      },
      generationJob: (input, options) => {
        this.checkUsable();
        const { ctx: _ctx, ...job } = this.generationJob(input, options, null as unknown as NativeContext);
        return job;
      },
      graph: this.graph,
    };
  }

  private checkUsable(): void {
    if (this.disposed) throw new ModelStateError("MODEL_DISPOSED", "the model is disposed");
    if (this.running) throw new ModelStateError("MODEL_BUSY", "the model is busy with another capture; await it before starting the next");
  }

  /** Renders one input to the text the model sees (chat template applied when asked). */
  formatText(
    input: CaptureInput,
    options: PrepareOptions = {},
    where = "input",
  ): { text: string; chat: boolean; date: string | null; systemMerged: boolean } {
    const chat = options.chat;
    if (chat !== undefined && typeof chat !== "boolean" && (chat === null || typeof chat !== "object")) {
      throw new TypeError("chat must be a boolean or { addAssistantPrefix?, systemPrompt?, date? }");
    }
    let messages: ChatMessage[] | null = null;
    if (typeof input === "string") {
      if (chat) messages = [{ role: "user", content: input }];
    } else if (isChatMessages(input)) {
      messages = input;
    } else {
      throw new TypeError(`${where} must be a string or an array of { role, content } messages, ${describeMessages(input)}`);
    }
    if (messages === null) return { text: input as string, chat: false, date: null, systemMerged: false };
    if (messages.length === 0 || messages.every((m) => m.content.trim() === "")) {
      throw new InputError("TEXT_EMPTY", `${where} is empty`);
    }
    const opts: ChatOptions = typeof chat === "object" && chat !== null ? chat : {};
    if (opts.systemPrompt !== undefined && typeof opts.systemPrompt !== "string") throw new TypeError("chat.systemPrompt must be a string");
    if (opts.systemPrompt && messages[0]?.role !== "system") messages = [{ role: "system", content: opts.systemPrompt }, ...messages];
    if (opts.date !== undefined) checkTemplateDate(opts.date, "chat.date");
    const r = renderChat(this.nativeInfo.chatTemplate, messages, {
      bosToken: this.nativeInfo.bosToken,
      eosToken: this.nativeInfo.eosToken,
      addAssistantPrefix: opts.addAssistantPrefix ?? true,
      source: this.info.name || path.basename(this.info.path),
      date: opts.date,
    });
    return { text: r.text, chat: true, date: r.date, systemMerged: r.systemMerged };
  }

  /** Tokens of one input as the model sees them. */
  tokenize(input: CaptureInput, options: PrepareOptions = {}): Int32Array {
    if (this.disposed) throw new ModelStateError("MODEL_DISPOSED", "the model is disposed");
    return this.tokenizeOne(input, options, "input");
  }

  private tokenizeOne(input: CaptureInput, options: PrepareOptions, where: string): Int32Array {
    return this.renderAndTokenize(input, options, where).tokens;
  }

  /** The text the model sees for one input, and its tokens. */
  private renderAndTokenize(input: CaptureInput, options: PrepareOptions, where: string): { text: string; tokens: Int32Array } {
    const { text, chat } = this.formatText(input, options, where);
    if (text.length === 0 || (!chat && text.trim().length === 0)) throw new InputError("TEXT_EMPTY", `${where} is empty`);
    if (chat) {
      // A template that writes the BOS token itself must not get a second one.
      const bos = this.nativeInfo.bosToken;
      const hasBos = !!bos && text.startsWith(bos);
      return { text, tokens: this.native.tokenize(text, !hasBos, true) };
    }
    return { text, tokens: this.native.tokenize(text, true, false) };
  }

  /** Tokens of a plain string, without the model's BOS unless asked, special-token text not parsed unless asked. */
  tokenizeText(text: string, options: { addBos?: boolean; parseSpecial?: boolean } = {}): Int32Array {
    if (this.disposed) throw new ModelStateError("MODEL_DISPOSED", "the model is disposed");
    if (typeof text !== "string") throw new TypeError("text must be a string");
    return this.native.tokenize(text, options.addBos ?? false, options.parseSpecial ?? false);
  }

  /** Detokenizes tokens back to text. */
  detokenize(tokens: Int32Array): string {
    if (this.disposed) throw new ModelStateError("MODEL_DISPOSED", "the model is disposed");
    return this.native.detokenize(tokens, true);
  }

  /** Tokenizes inputs and checks each fits the context. */
  prepare(inputs: readonly CaptureInput[], options: PrepareOptions = {}): PreparedTexts {
    if (this.disposed) throw new ModelStateError("MODEL_DISPOSED", "the model is disposed");
    if (!Array.isArray(inputs)) throw new TypeError("texts must be an array of strings or chat message arrays");
    if (inputs.length === 0) throw new RangeError("texts must not be empty");
    const toks: Int32Array[] = new Array(inputs.length);
    const offsets = new Uint32Array(inputs.length + 1);
    for (let i = 0; i < inputs.length; i++) {
      const t = this.tokenizeOne(inputs[i], options, `texts[${i}]`);
      if (t.length === 0) throw new InputError("TEXT_EMPTY", `texts[${i}] is empty`);
      if (t.length > this.info.contextSize) {
        throw new InputError(
          "TEXT_TOO_LONG",
          `texts[${i}] has ${t.length} tokens but the context holds ${this.info.contextSize}; shorten it or load the model with a larger contextSize`,
        );
      }
      toks[i] = t;
      offsets[i + 1] = offsets[i] + t.length;
    }
    const tokens = new Int32Array(offsets[inputs.length]);
    for (let i = 0; i < toks.length; i++) tokens.set(toks[i], offsets[i]);
    return { tokens, offsets };
  }

  /**
   * Reads the residual stream (the output of the given transformer layers) for
   * every input. Batched: many texts per llama_decode, each its own sequence.
   */
  async capture(inputs: readonly CaptureInput[] | PreparedTexts, options: CaptureOptions): Promise<Activations> {
    const callSite = new Error();
    this.checkUsable();
    if (options === null || typeof options !== "object") throw new TypeError("options must be an object with a layers array");
    const pool = options.pool ?? "last";
    if (!Object.prototype.hasOwnProperty.call(POOLS, pool)) throw new TypeError(`pool must be "last", "mean" or "tokens", got ${describe(pool)}`);
    if (options.earlyExit !== undefined && typeof options.earlyExit !== "boolean") throw new TypeError("earlyExit must be a boolean");
    if (options.onProgress !== undefined && typeof options.onProgress !== "function") throw new TypeError("onProgress must be a function");
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
    const { specs, codes } = checkLayers(options.layers, this.info.nLayer);
    this.checkCapturable(specs);
    const prepared = isPrepared(inputs) ? this.checkPrepared(inputs) : this.prepare(inputs, options);
    if (signal?.aborted) throw new AbortError();

    const count = prepared.offsets.length - 1;
    const totalTokens = prepared.offsets[count];
    const rows = pool === "tokens" ? totalTokens : count;
    const outputs = specs.map(() => new Float32Array(rows * this.info.nEmbd));
    const onProgress = options.onProgress;
    const ctx = this.nativeContext!;
    const onAbort = () => ctx.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    const run = ctx.capture(
      { tokens: prepared.tokens, offsets: prepared.offsets, layers: codes, pool: POOLS[pool], outputs, earlyExit: options.earlyExit ?? true },
      onProgress ? (textsDone, tokensDone) => onProgress({ textsDone, texts: count, tokensDone, tokens: totalTokens }) : undefined,
    );
    try {
      await this.exclusive(callSite, run);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    const tokenCounts = new Uint32Array(count);
    for (let i = 0; i < count; i++) tokenCounts[i] = prepared.offsets[i + 1] - prepared.offsets[i];
    const offsets = pool === "tokens" ? prepared.offsets.slice() : Uint32Array.from({ length: count + 1 }, (_, i) => i);
    return new Activations(specs, pool, this.info.nEmbd, count, tokenCounts, outputs, offsets);
  }

  /** Refuses, before any decode, hidden states the architecture's graph does not name. */
  private checkCapturable(specs: readonly LayerSpec[]): void {
    const named = new Set(this.graph.layers);
    const missing = specs.filter((s) => (s === "final" ? !this.graph.resultNorm : !named.has(s)));
    if (missing.length === 0) return;
    const layers = missing.filter((s) => s !== "final");
    const why: string[] = [];
    if (layers.length > 0) {
      why.push(named.size === 0 ? "no layer outputs (l_out-<n>)" : `no output for ${layers.length > 1 ? "layers" : "layer"} ${layers.join(", ")} (l_out-<n>)`);
    }
    if (missing.includes("final")) why.push("no final-norm output (result_norm)");
    const list = missing.map((s) => (s === "final" ? '"final"' : String(s)));
    throw new CaptureError(
      "LAYERS_UNSUPPORTED",
      `${list.length > 1 ? "layers" : "layer"} ${list.join(", ")} cannot be captured from this model: llama.cpp's compute graph for the ${this.info.arch} architecture names ${why.join(" and ")}`,
    );
  }

  private checkPrepared(p: PreparedTexts): PreparedTexts {
    const n = p.offsets.length - 1;
    if (n < 1 || p.offsets[0] !== 0 || p.offsets[n] !== p.tokens.length) throw new RangeError("prepared offsets do not span the tokens");
    for (let i = 0; i < n; i++) {
      const len = p.offsets[i + 1] - p.offsets[i];
      if (p.offsets[i + 1] < p.offsets[i] || len === 0) throw new InputError("TEXT_EMPTY", `texts[${i}] is empty`);
      if (len > this.info.contextSize) throw new InputError("TEXT_TOO_LONG", `texts[${i}] has ${len} tokens but the context holds ${this.info.contextSize}`);
    }
    return p;
  }

  /** Runs one native job as the model's only job, mapping its rejection to a typed error with the caller's stack. */
  private async exclusive<T>(callSite: Error, job: Promise<T>): Promise<T> {
    this.running = job;
    try {
      return await job;
    } catch (e) {
      throw mapNativeError(e, callSite);
    } finally {
      this.running = null;
    }
  }

  /** A context of another kind on the same weights, created once (concurrent callers share the creation). */
  private extraContext(kind: "embeddings" | "plain" | "chat"): Promise<NativeContext> {
    let p = this.extraContexts.get(kind);
    if (!p) {
      const addon = ensureLibraries();
      const c = new addon.AddonContext(this.native, {
        contextSize: this.info.contextSize,
        batchSize: this.info.batchSize,
        sequences: this.info.sequences,
        threads: this.info.threads,
        capture: kind === "chat",
        embeddings: kind === "embeddings",
        flashAttention: this.info.flashAttention,
        kvCacheF16: this.info.kvCacheType === "f16",
      });
      this.createdContexts.push(c);
      p = c.init().then(() => c);
      this.extraContexts.set(kind, p);
      p.catch(() => this.extraContexts.delete(kind));
    }
    return p;
  }

  /**
   * Generates n candidate responses to a prompt (text or chat messages) in
   * parallel sequences that share one prefill. With `capture`, the prompt's and
   * each response's hidden states come out of the same decoding work, and
   * `onPromptHidden` can veto before the first token is sampled.
   */
  async generate(input: CaptureInput, options: GenerateOptions = {}): Promise<GenerateResult> {
    const callSite = new Error();
    this.checkUsable();
    const job = this.generationJob(input, options, this.nativeContext!);
    const ctxSize = this.info.contextSize;
    if (job.tokens.length + job.o.n * job.o.maxTokens > ctxSize) {
      throw new RangeError(
        `the prompt (${job.tokens.length} tokens) plus n (${job.o.n}) x maxTokens (${job.o.maxTokens}) exceeds the context (${ctxSize} tokens); ` +
          "lower maxTokens or n, or load the model with a larger contextSize",
      );
    }
    if (options.signal?.aborted) throw new AbortError();
    return (await this.exclusive(callSite, runGeneration(job))).result;
  }

  /** Checks generate options and renders the prompt: a job for runGeneration on `ctx`. */
  private generationJob(input: CaptureInput, options: GenerateOptions, ctx: NativeContext): GenerationJob {
    const o = resolveGenerateOptions(options, this.info);
    const layers = o.capture ? checkLayers(o.capture.layers, this.info.nLayer) : null;
    const monitorCode = o.monitor ? checkLayers([o.monitor.layer], this.info.nLayer).codes[0] : null;
    if (layers) this.checkCapturable(layers.specs);
    if (o.monitor) this.checkCapturable([o.monitor.layer]);
    const { text, tokens } = this.renderAndTokenize(input, options, "prompt");
    return { ctx, text, tokens, o, layers, monitorCode, nEmbd: this.info.nEmbd, options, isDisposed: () => this.disposed };
  }

  /**
   * Captures a corpus into a safetensors file (or one per layer) chunk by chunk, in memory
   * bounded by the chunk; resumable after a crash, shardable (see core/corpus.ts).
   */
  async captureToFile(records: readonly CaptureInput[], options: CaptureToFileOptions): Promise<CaptureToFileReport> {
    this.checkUsable(); // inside async: a disposed or busy model rejects, like every other job
    return captureToFile(this, records, options);
  }

  /** generate() as an async iterator of token events; `.result` resolves to the full result. */
  generateStream(input: CaptureInput, options: GenerateOptions = {}): GenerationStream {
    const userOnToken = options.onToken;
    return makeStream((push) =>
      this.generate(input, {
        ...options,
        onToken: (e: TokenEvent) => {
          push(e);
          userOnToken?.(e);
        },
      }),
    );
  }

  /**
   * Each input's last-token logits of the given token ids (texts x ids,
   * row-major), from plain llama_decode: what the prompted baseline scores with.
   */
  async lastTokenLogits(inputs: readonly CaptureInput[] | PreparedTexts, tokenIds: readonly number[], options: PrepareOptions = {}): Promise<Float32Array> {
    const callSite = new Error();
    this.checkUsable();
    if (!Array.isArray(tokenIds) || tokenIds.length === 0) throw new TypeError("tokenIds must be a non-empty array of token ids");
    tokenIds.forEach((t, i) => checkInt(`tokenIds[${i}]`, t, 0, this.info.nVocab - 1));
    const prepared = isPrepared(inputs) ? this.checkPrepared(inputs) : this.prepare(inputs, options);
    const out = new Float32Array((prepared.offsets.length - 1) * tokenIds.length);
    await this.exclusive(
      callSite,
      this.extraContext("plain").then((c) => c.decode({ tokens: prepared.tokens, offsets: prepared.offsets, logitTokens: Int32Array.from(tokenIds), logits: out })),
    );
    return out;
  }

  /**
   * Log-probabilities of continuations: for each pair, the sum and the mean over
   * the continuation's tokens of log p(token | prompt, earlier tokens), from plain
   * llama_decode (what the "mean log-probability" ranking baseline scores with).
   * Prompts are rendered like capture's inputs; continuations are tokenized as plain text.
   */
  async continuationLogprobs(
    pairs: readonly { prompt: CaptureInput; continuation: string }[],
    options: PrepareOptions & {
      /** Read at most this many continuation tokens (its start). */
      maxContinuationTokens?: number;
      /** A pair longer than the context: "error" (default, TEXT_TOO_LONG) or "truncate" (the continuation's start, then the prompt's end, are kept). */
      onLong?: "error" | "truncate";
    } = {},
  ): Promise<{ sum: Float64Array; mean: Float64Array; tokens: Uint32Array }> {
    const callSite = new Error();
    this.checkUsable();
    if (!Array.isArray(pairs) || pairs.length === 0) throw new TypeError("pairs must be a non-empty array of { prompt, continuation }");
    const ctx = this.info.contextSize;
    const seqs: Int32Array[] = [];
    const scoreFrom = new Uint32Array(pairs.length);
    const counts = new Uint32Array(pairs.length);
    pairs.forEach((p, i) => {
      if (typeof p?.continuation !== "string" || p.continuation.length === 0) throw new InputError("TEXT_EMPTY", `pairs[${i}].continuation is empty`);
      let head = this.tokenizeOne(p.prompt, options, `pairs[${i}].prompt`);
      let tail = this.native.tokenize(p.continuation, false, false);
      if (tail.length === 0) throw new InputError("TEXT_EMPTY", `pairs[${i}].continuation is empty`);
      if (options.maxContinuationTokens !== undefined) tail = tail.subarray(0, Math.max(1, options.maxContinuationTokens));
      if (head.length + tail.length > ctx) {
        if (options.onLong !== "truncate") {
          throw new InputError("TEXT_TOO_LONG", `pairs[${i}] has ${head.length + tail.length} tokens but the context holds ${ctx}`);
        }
        // keep the continuation's start (at least a quarter of the context when the prompt is long), then the prompt's end
        tail = tail.subarray(0, Math.max(1, Math.min(tail.length, ctx - Math.min(head.length, ctx - Math.max(1, Math.floor(ctx / 4))))));
        if (head.length + tail.length > ctx) head = fitTokens(head, ctx - tail.length, "truncate", this.info.bosId, `pairs[${i}].prompt`)!.tokens;
      }
      const all = new Int32Array(head.length + tail.length);
      all.set(head);
      all.set(tail, head.length);
      seqs.push(all);
      scoreFrom[i] = head.length;
      counts[i] = tail.length;
    });
    const offsets = new Uint32Array(pairs.length + 1);
    seqs.forEach((t, i) => (offsets[i + 1] = offsets[i] + t.length));
    const tokens = new Int32Array(offsets[pairs.length]);
    seqs.forEach((t, i) => tokens.set(t, offsets[i]));
    const sum = new Float64Array(pairs.length);
    await this.exclusive(callSite, this.extraContext("plain").then((c) => c.decode({ tokens, offsets, scoreFrom, logprobs: sum })));
    return { sum, mean: sum.map((v, i) => v / counts[i]), tokens: counts };
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees the model and its contexts. Idempotent; a running capture is cancelled first. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (this.running) {
      this.nativeContext?.cancel();
      for (const c of this.createdContexts) c.cancel();
      await this.running.catch(() => undefined);
    }
    // a context still being created uses the weights on a worker thread: let it finish first
    await Promise.all([...this.extraContexts.values()].map((p) => p.catch(() => undefined)));
    for (const c of this.createdContexts) c.dispose();
    this.createdContexts = [];
    this.extraContexts.clear();
    this.nativeContext?.dispose();
    this.nativeContext = null;
    this.native.dispose();
    if (this.releaseMemoryOnDispose) getAddon().releaseMemory();
  }

  async [asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** Typed-array check that also holds across realms (arrays made by the addon or in a vm context). */
function isTyped(v: unknown, tag: "Int32Array" | "Uint32Array"): boolean {
  return ArrayBuffer.isView(v) && Object.prototype.toString.call(v) === `[object ${tag}]`;
}

function isPrepared(v: unknown): v is PreparedTexts {
  return v !== null && typeof v === "object" && !Array.isArray(v) && isTyped((v as PreparedTexts).tokens, "Int32Array") && isTyped((v as PreparedTexts).offsets, "Uint32Array");
}

/** Loads a GGUF model (default: the embedded stories260K) for capture. */
export function loadModel(options: LoadModelOptions = {}): Promise<Model> {
  return Model.load(options);
}
