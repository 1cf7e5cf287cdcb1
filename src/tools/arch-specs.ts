/**
 * What llama.cpp's loader expects of each architecture the synthetic models cover: the
 * metadata keys (load_hparams) and the tensors with their shapes (load_tensors), as data.
 * Read from llama.cpp's src/models/<arch>.cpp (load_arch_hparams, load_arch_tensors) and
 * src/llama-arch.cpp (the tensor names) of the release node-llama-cpp ships. Shapes are in
 * GGUF order (ne0 first: [in, out] for a matrix).
 */
import { GgufValueType } from "../io/gguf";

/** The sizes a spec's shapes and keys are functions of. */
export interface ArchConfig {
  layers: number;
  width: number;
  heads: number;
  headsKv: number;
  headDim: number;
  ffn: number;
  nVocab: number;
  ctx: number;
}

/** How a tensor is filled: random N(0, 0.02^2), or ones (norm weights). */
export type TensorInit = "normal" | "ones";

export interface TensorSpec {
  /** Name; "#" is the layer number in per-layer tensors ("blk.#.attn_q.weight"). */
  name: string;
  shape: (c: ArchConfig) => number[];
  init: TensorInit;
  /** Kept F32 even as a matrix (llama.cpp's converter does so for these; its graph adds them to F32 rows). */
  f32?: boolean;
}

/** A metadata key below the architecture's prefix ("attention.head_count" -> "qwen2.attention.head_count"). */
export interface HparamSpec {
  key: string;
  type: GgufValueType.UINT32 | GgufValueType.FLOAT32 | GgufValueType.BOOL;
  value: (c: ArchConfig) => number | boolean;
}

export interface ArchSpec {
  /** general.architecture. */
  arch: string;
  /** Models of this architecture, for the docs and --help. */
  models: string;
  /** The llama.cpp vocab (models/ggml-vocab-<name>.gguf in the bundle) closest to these models' tokenizer. */
  vocab: string;
  /**
   * Head size: "free" (any; written as attention.key_length/value_length when it is not
   * width / heads), or "width/heads" where llama.cpp's shapes assume it.
   */
  headDim: "free" | "width/heads";
  /** Default head size when free (a function of width and heads). */
  defaultHeadDim?: (width: number, heads: number) => number;
  /** Keys beyond the common ones (context, sizes, heads), in file order. */
  hparams: HparamSpec[];
  /** Tensors before the blocks, per block (with "#"), and after them, in file order. */
  head: TensorSpec[];
  block: TensorSpec[];
  tail: TensorSpec[];
  /** Whether the graph names every layer's output l_out-<n> (false: capture refuses layers). */
  namesLayerOutputs: boolean;
}

const u32 = (key: string, value: (c: ArchConfig) => number): HparamSpec => ({ key, type: GgufValueType.UINT32, value });
const f32 = (key: string, value: number): HparamSpec => ({ key, type: GgufValueType.FLOAT32, value: () => value });
const flag = (key: string, value: boolean): HparamSpec => ({ key, type: GgufValueType.BOOL, value: () => value });
const w = (name: string, shape: (c: ArchConfig) => number[]): TensorSpec => ({ name, shape, init: "normal" });
const ones = (name: string, size: (c: ArchConfig) => number): TensorSpec => ({ name, shape: (c) => [size(c)], init: "ones" });

// Sizes every spec uses.
const width = (c: ArchConfig): number => c.width;
const qDim = (c: ArchConfig): number => c.heads * c.headDim;
const kvDim = (c: ArchConfig): number => c.headsKv * c.headDim;

const RMS_EPS = (v: number): HparamSpec => f32("attention.layer_norm_rms_epsilon", v);
const ROPE_BASE = (v: number): HparamSpec => f32("rope.freq_base", v);

const TOKEN_EMBD = w("token_embd.weight", (c) => [c.width, c.nVocab]);
const OUTPUT = w("output.weight", (c) => [c.width, c.nVocab]);
const OUTPUT_NORM = ones("output_norm.weight", width);

const ATTN_NORM = ones("blk.#.attn_norm.weight", width);
const FFN_NORM = ones("blk.#.ffn_norm.weight", width);
const Q = w("blk.#.attn_q.weight", (c) => [c.width, qDim(c)]);
const K = w("blk.#.attn_k.weight", (c) => [c.width, kvDim(c)]);
const V = w("blk.#.attn_v.weight", (c) => [c.width, kvDim(c)]);
const O = w("blk.#.attn_output.weight", (c) => [qDim(c), c.width]);
const GATE = w("blk.#.ffn_gate.weight", (c) => [c.width, c.ffn]);
const UP = w("blk.#.ffn_up.weight", (c) => [c.width, c.ffn]);
const DOWN = w("blk.#.ffn_down.weight", (c) => [c.ffn, c.width]);
const POST_ATTN_NORM = ones("blk.#.post_attention_norm.weight", width);
const POST_FFN_NORM = ones("blk.#.post_ffw_norm.weight", width);
const Q_NORM_HEAD = ones("blk.#.attn_q_norm.weight", (c) => c.headDim);
const K_NORM_HEAD = ones("blk.#.attn_k_norm.weight", (c) => c.headDim);

/** The pre-norm SwiGLU block of llama-like models (no biases). */
const LLAMA_BLOCK = [ATTN_NORM, Q, K, V, O, FFN_NORM, GATE, UP, DOWN];

const SPECS: readonly ArchSpec[] = [
  {
    arch: "llama",
    models: "Llama 3.x, Mistral 7B, SmolLM2, TinyLlama",
    vocab: "llama-bpe",
    headDim: "free",
    hparams: [ROPE_BASE(500000), RMS_EPS(1e-5)],
    head: [TOKEN_EMBD],
    block: LLAMA_BLOCK,
    tail: [OUTPUT_NORM], // tied embeddings (Llama 3.2 1B/3B): no output.weight
    namesLayerOutputs: true,
  },
  {
    arch: "qwen2",
    models: "Qwen 2 / 2.5",
    vocab: "qwen2",
    headDim: "width/heads",
    hparams: [ROPE_BASE(1000000), RMS_EPS(1e-6)],
    head: [TOKEN_EMBD],
    block: [
      ATTN_NORM,
      Q,
      w("blk.#.attn_q.bias", (c) => [qDim(c)]),
      K,
      w("blk.#.attn_k.bias", (c) => [kvDim(c)]),
      V,
      w("blk.#.attn_v.bias", (c) => [kvDim(c)]),
      O,
      FFN_NORM,
      GATE,
      UP,
      DOWN,
    ],
    tail: [OUTPUT_NORM],
    namesLayerOutputs: true,
  },
  {
    arch: "qwen3",
    models: "Qwen 3 (dense)",
    vocab: "qwen2",
    headDim: "free",
    defaultHeadDim: () => 128, // Qwen3 heads are 128 wide at every size
    hparams: [ROPE_BASE(1000000), RMS_EPS(1e-6)],
    head: [TOKEN_EMBD],
    block: [ATTN_NORM, Q, K, V, O, K_NORM_HEAD, Q_NORM_HEAD, FFN_NORM, GATE, UP, DOWN],
    tail: [OUTPUT_NORM],
    namesLayerOutputs: true,
  },
  {
    arch: "gemma2",
    models: "Gemma 2",
    vocab: "gemma-4",
    headDim: "free",
    hparams: [
      u32("attention.sliding_window", () => 4096),
      RMS_EPS(1e-6),
      f32("attn_logit_softcapping", 50),
      f32("final_logit_softcapping", 30),
    ],
    head: [TOKEN_EMBD],
    block: [ATTN_NORM, Q, K, V, O, POST_ATTN_NORM, FFN_NORM, GATE, UP, DOWN, POST_FFN_NORM],
    tail: [OUTPUT_NORM], // the output head is always token_embd
    namesLayerOutputs: true,
  },
  {
    arch: "gemma3",
    models: "Gemma 3 (text)",
    vocab: "gemma-4",
    headDim: "free",
    defaultHeadDim: () => 128,
    hparams: [
      ROPE_BASE(1000000),
      f32("rope.freq_base_swa", 10000),
      u32("attention.sliding_window", () => 512),
      // every other layer global (Gemma 3 has 5 local : 1 global; 2 shows both kinds in 4 layers)
      u32("attention.sliding_window_pattern", () => 2),
      RMS_EPS(1e-6),
    ],
    head: [TOKEN_EMBD],
    block: [ATTN_NORM, Q, K, V, O, POST_ATTN_NORM, K_NORM_HEAD, Q_NORM_HEAD, FFN_NORM, GATE, UP, DOWN, POST_FFN_NORM],
    tail: [OUTPUT_NORM],
    namesLayerOutputs: true,
  },
  {
    arch: "phi3",
    models: "Phi-3 / 3.5 / 4-mini",
    vocab: "phi-3",
    headDim: "width/heads",
    hparams: [ROPE_BASE(10000), RMS_EPS(1e-5), u32("rope.dimension_count", (c) => c.headDim)],
    head: [TOKEN_EMBD],
    block: [
      ATTN_NORM,
      // fused Q, K, V; a fused gate+up of twice the feed-forward size
      w("blk.#.attn_qkv.weight", (c) => [c.width, qDim(c) + 2 * kvDim(c)]),
      O,
      FFN_NORM,
      w("blk.#.ffn_down.weight", (c) => [c.ffn, c.width]),
      w("blk.#.ffn_up.weight", (c) => [c.width, 2 * c.ffn]),
    ],
    tail: [OUTPUT_NORM, OUTPUT],
    namesLayerOutputs: true,
  },
  {
    arch: "granite",
    models: "Granite 3.x (dense)",
    vocab: "starcoder",
    headDim: "free",
    hparams: [
      ROPE_BASE(10000),
      RMS_EPS(1e-6),
      f32("logit_scale", 8),
      f32("residual_scale", 0.22),
      f32("embedding_scale", 12),
      f32("attention.scale", 0.015625),
    ],
    head: [TOKEN_EMBD],
    block: LLAMA_BLOCK,
    tail: [OUTPUT_NORM],
    namesLayerOutputs: true,
  },
  {
    arch: "olmo2",
    models: "OLMo 2",
    vocab: "gpt-neox",
    headDim: "width/heads",
    hparams: [ROPE_BASE(500000), RMS_EPS(1e-6)],
    head: [TOKEN_EMBD],
    block: [
      // post-norm only: no attn_norm / ffn_norm; Q and K normed over all heads
      Q,
      K,
      V,
      O,
      ones("blk.#.attn_q_norm.weight", qDim),
      ones("blk.#.attn_k_norm.weight", kvDim),
      POST_ATTN_NORM,
      GATE,
      UP,
      DOWN,
      POST_FFN_NORM,
    ],
    tail: [OUTPUT_NORM, OUTPUT], // output.weight is required
    namesLayerOutputs: true,
  },
  {
    arch: "mistral3",
    models: "Mistral Small 3.x, Ministral 3 (text)",
    vocab: "llama-spm", // Mistral's earlier SentencePiece vocab: the bundle has no Tekken vocab
    headDim: "free",
    hparams: [ROPE_BASE(1000000000), RMS_EPS(1e-5)],
    head: [TOKEN_EMBD],
    block: LLAMA_BLOCK,
    tail: [OUTPUT_NORM, OUTPUT], // untied output head
    namesLayerOutputs: true,
  },
  {
    arch: "smollm3",
    models: "SmolLM3 (SmolLM2 is llama)",
    vocab: "llama-bpe",
    headDim: "free",
    hparams: [ROPE_BASE(5000000), RMS_EPS(1e-6)], // every 4th layer has no RoPE (llama.cpp fixes the step)
    head: [TOKEN_EMBD],
    block: LLAMA_BLOCK,
    tail: [OUTPUT_NORM],
    namesLayerOutputs: true,
  },
  {
    // An encoder whose graph names no l_out-<n> and no result_norm (its output is result_embd):
    // capture refuses it up front. Not part of the capture matrix.
    arch: "bert",
    models: "BERT / BGE embedding models",
    vocab: "bert-bge",
    headDim: "width/heads",
    hparams: [f32("attention.layer_norm_epsilon", 1e-12), flag("attention.causal", false)],
    head: [
      TOKEN_EMBD,
      { ...w("token_types.weight", (c) => [c.width, 2]), f32: true },
      { ...w("position_embd.weight", (c) => [c.width, c.ctx]), f32: true },
      ones("token_embd_norm.weight", width),
      w("token_embd_norm.bias", (c) => [c.width]),
    ],
    block: [
      Q,
      w("blk.#.attn_q.bias", (c) => [qDim(c)]),
      K,
      w("blk.#.attn_k.bias", (c) => [kvDim(c)]),
      V,
      w("blk.#.attn_v.bias", (c) => [kvDim(c)]),
      O,
      w("blk.#.attn_output.bias", (c) => [c.width]),
      ones("blk.#.attn_output_norm.weight", width),
      w("blk.#.attn_output_norm.bias", (c) => [c.width]),
      UP,
      w("blk.#.ffn_up.bias", (c) => [c.ffn]),
      DOWN,
      w("blk.#.ffn_down.bias", (c) => [c.width]),
      ones("blk.#.layer_output_norm.weight", width),
      w("blk.#.layer_output_norm.bias", (c) => [c.width]),
    ],
    tail: [],
    namesLayerOutputs: false,
  },
];

/** Architecture names createSyntheticModel accepts. */
export const SYNTHETIC_ARCHS: readonly string[] = Object.freeze(SPECS.map((s) => s.arch));

/** The spec of one architecture, or undefined. */
export function archSpec(arch: string): ArchSpec | undefined {
  return SPECS.find((s) => s.arch === arch);
}

/**
 * Keys every architecture reads (llama_model_base::load_hparams), in the order the first
 * synthetic models wrote them, then the architecture's own; key_length/value_length when the
 * head size is not width / heads.
 */
export function hparamsOf(spec: ArchSpec, c: ArchConfig): { key: string; type: HparamSpec["type"]; value: number | boolean }[] {
  const common: HparamSpec[] = [
    u32("block_count", (x) => x.layers),
    u32("context_length", (x) => x.ctx),
    u32("embedding_length", (x) => x.width),
    u32("feed_forward_length", (x) => x.ffn),
    u32("attention.head_count", (x) => x.heads),
    u32("attention.head_count_kv", (x) => x.headsKv),
  ];
  if (c.headDim * c.heads !== c.width) {
    common.push(u32("attention.key_length", (x) => x.headDim), u32("attention.value_length", (x) => x.headDim));
  }
  return [...common, ...spec.hparams].map((h) => ({ key: `${spec.arch}.${h.key}`, type: h.type, value: h.value(c) }));
}
