/** `safety-lens generate`: n candidates with their hidden states. */
import { parseArgs } from "node:util";

import type { Activations } from "../core/activations";
import { loadModel } from "../core/model";
import { common, intOption, modelOptions, numOption, parseLayers, print, UsageError } from "./util";

export async function cmdGenerate(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...common,
      prompt: { type: "string" },
      n: { type: "string" },
      "max-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      "top-k": { type: "string" },
      "min-p": { type: "string" },
      seed: { type: "string" },
      stop: { type: "string", multiple: true },
      chat: { type: "boolean", default: false },
      layers: { type: "string" },
      response: { type: "string", default: "last" },
    },
    strict: true,
  });
  if (values.prompt === undefined) throw new UsageError("generate needs --prompt TEXT");
  if (values.response !== "last" && values.response !== "mean") throw new UsageError(`--response must be last or mean, got ${JSON.stringify(values.response)}`);
  const model = await loadModel(modelOptions(values));
  try {
    const n = intOption(values.n, "n") ?? 1;
    const layers = values.layers ? parseLayers(values.layers, model.info.nLayer) : undefined;
    const streaming = !values.json && n === 1 && !!process.stdout.isTTY;
    const out = await model.generate(values.prompt, {
      n,
      maxTokens: intOption(values["max-tokens"], "max-tokens") ?? 64,
      temperature: numOption(values.temperature, "temperature"),
      topP: numOption(values["top-p"], "top-p"),
      topK: intOption(values["top-k"], "top-k"),
      minP: numOption(values["min-p"], "min-p"),
      seed: intOption(values.seed, "seed"),
      stop: values.stop,
      chat: values.chat,
      capture: layers ? { layers, response: values.response as "last" | "mean" } : undefined,
      onToken: streaming ? (e) => process.stdout.write(e.text) : undefined,
    });
    const hidden = (a: Activations | null) =>
      a && layers ? Object.fromEntries(layers.map((l) => [String(l), Array.from(a.layer(l))])) : undefined;
    const value = {
      prompt: out.prompt,
      promptTokens: out.promptTokens,
      seed: out.seed,
      timings: out.timings,
      promptHidden: hidden(out.candidates[0]?.hidden.prompt ?? null),
      candidates: out.candidates.map((c) => ({
        text: c.text,
        tokens: c.tokens.length,
        finishReason: c.finishReason,
        responseHidden: hidden(c.hidden.response),
      })),
    };
    if (values.json) print(true, value, "");
    else if (streaming) process.stdout.write(`\n[${out.candidates[0].finishReason}, ${out.candidates[0].tokens.length} tokens, seed ${out.seed}]\n`);
    else {
      const lines = out.candidates.map((c, i) => `--- candidate ${i} (${c.finishReason}, ${c.tokens.length} tokens)\n${c.text}`);
      print(false, value, `${lines.join("\n")}\n[seed ${out.seed}, ${(out.timings.totalMs / 1000).toFixed(2)} s]`);
    }
  } finally {
    await model.dispose();
  }
}
