/**
 * The internal entry: what benchmarks and tests need from a model beyond the public
 * API. Not exported from the package index.
 *
 *   embed(model, texts)     llama.cpp's own last-token embeddings (the reference "final" is tested against)
 *   evaluate(model, texts)  plain llama_decode, no eval callback (the benchmark's floor)
 *   layerCodes(model, l)    the addon's slot codes of a layer list
 *   graphProbe(model)       which hidden states the compute graph names (found at load)
 */
import type { CaptureInput, LayerSpec, PreparedTexts } from "./activations";
import { checkLayers } from "./activations";
import type { PrepareOptions } from "./chat";
import { kInternal, type Model } from "./model";

/**
 * llama.cpp's own embeddings output (llama_get_embeddings_ith) for each input's last
 * token, from a separate context with embeddings on and no callback.
 */
export async function embed(model: Model, inputs: readonly CaptureInput[] | PreparedTexts, options: PrepareOptions = {}): Promise<Float32Array> {
  const callSite = new Error();
  const m = model[kInternal];
  m.checkUsable();
  const prepared = m.prepare(inputs, options);
  const out = new Float32Array((prepared.offsets.length - 1) * model.info.nEmbd);
  await m.exclusive(callSite, m.extraContext("embeddings").then((c) => c.decode({ tokens: prepared.tokens, offsets: prepared.offsets, embeddings: out })));
  return out;
}

/**
 * Plain llama_decode over the inputs, batched exactly as capture does but on a context
 * without the eval callback.
 */
export async function evaluate(
  model: Model,
  inputs: readonly CaptureInput[] | PreparedTexts,
  options: PrepareOptions = {},
): Promise<{ tokens: number; decodeMs: number }> {
  const callSite = new Error();
  const m = model[kInternal];
  m.checkUsable();
  const prepared = m.prepare(inputs, options);
  const r = await m.exclusive(callSite, m.extraContext("plain").then((c) => c.decode({ tokens: prepared.tokens, offsets: prepared.offsets })));
  return { tokens: prepared.tokens.length, decodeMs: r.decodeMs };
}

/** The addon's slot codes (-1 = final) of a checked layer list. */
export function layerCodes(model: Model, layers: readonly LayerSpec[]): { specs: LayerSpec[]; codes: Int32Array } {
  return checkLayers(layers, model.info.nLayer);
}

/** What the one-token probe at load found: layers named l_out-<n>, result_norm, its cost. */
export function graphProbe(model: Model): { layers: number[]; resultNorm: boolean; nodes: number; aborted: boolean; ms: number } {
  const g = model[kInternal].graph;
  return { layers: Array.from(g.layers), resultNorm: g.resultNorm, nodes: g.nodes, aborted: g.aborted, ms: g.ms };
}
