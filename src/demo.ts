/**
 * `npm run demo`: the main job on the embedded model and the shipped sample
 * prompts. Captures every layer's last-token hidden state of each prompt
 * (chat template applied, assistant prefix appended), writes them to a
 * safetensors file, and shows per layer how well a nearest-class-mean rule
 * separates unsafe from safe prompts on a held-out third.
 */
import * as os from "node:os";
import * as path from "node:path";

import { captureFile } from "./cli";
import { readJsonl } from "./jsonl";
import { LayerSpec, loadModel, LoadModelOptions } from "./model";

export const SAMPLE_PROMPTS = path.join(__dirname, "..", "samples", "prompts.jsonl");

export interface DemoLayerResult {
  layer: LayerSpec;
  centroidDistance: number;
  heldOutAccuracy: number;
}

export async function runDemo(opts: LoadModelOptions & { json?: boolean; input?: string; out?: string }): Promise<DemoLayerResult[]> {
  const input = opts.input ?? SAMPLE_PROMPTS;
  const out = opts.out ?? path.join(os.tmpdir(), "safety-lens-demo.safetensors");
  const labels: boolean[] = [];
  for await (const { value } of readJsonl(input)) labels.push(value.label === "unsafe");
  const t0 = performance.now();
  const model = await loadModel(opts);
  try {
    const layers: LayerSpec[] = [...Array.from({ length: model.info.nLayer }, (_, i) => i), "final"];
    const r = await captureFile(model, { input, layers, pool: "last", chat: true, out, quiet: opts.json });
    const n = model.info.nEmbd;
    // held-out split: every third prompt
    const test = (i: number) => i % 3 === 2;
    const results: DemoLayerResult[] = layers.map((layer) => {
      const x = r.data.get(layer)!;
      const mu = [new Float64Array(n), new Float64Array(n)];
      const cnt = [0, 0];
      for (let i = 0; i < r.rows; i++) {
        if (test(i)) continue;
        const c = labels[i] ? 1 : 0;
        cnt[c]++;
        for (let e = 0; e < n; e++) mu[c][e] += x[i * n + e];
      }
      for (const c of [0, 1]) for (let e = 0; e < n; e++) mu[c][e] /= Math.max(1, cnt[c]);
      let dist = 0;
      for (let e = 0; e < n; e++) dist += (mu[1][e] - mu[0][e]) ** 2;
      let right = 0;
      let total = 0;
      for (let i = 0; i < r.rows; i++) {
        if (!test(i)) continue;
        let d0 = 0;
        let d1 = 0;
        for (let e = 0; e < n; e++) {
          d0 += (x[i * n + e] - mu[0][e]) ** 2;
          d1 += (x[i * n + e] - mu[1][e]) ** 2;
        }
        right += (d1 < d0) === labels[i] ? 1 : 0;
        total++;
      }
      return { layer, centroidDistance: Math.sqrt(dist), heldOutAccuracy: right / total };
    });
    const seconds = (performance.now() - t0) / 1000;
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ model: model.info.path, out: r.out, rows: r.rows, tokens: r.tokens, seconds, layers: results }, null, 2)}\n`);
    } else {
      const best = results.reduce((a, b) => (b.heldOutAccuracy > a.heldOutAccuracy ? b : a));
      const lines = [
        `model: ${model.info.path} (${model.info.arch}, ${model.info.nLayer} layers x ${model.info.nEmbd})`,
        `data:  ${input}: ${r.rows} prompts (${labels.filter(Boolean).length} unsafe), chat template + assistant prefix, last token`,
        `wrote ${r.out} (${layers.length} tensors [${r.rows}, ${n}]) - ${r.tokens} tokens at ${Math.round(r.tokensPerSec)} tokens/s`,
        "",
        "layer | class-mean distance | held-out accuracy (nearest class mean)",
        "------|---------------------|---------------------------------------",
        ...results.map((x) => `${String(x.layer).padStart(5)} | ${x.centroidDistance.toFixed(3).padStart(19)} | ${x.heldOutAccuracy.toFixed(3)}`),
        "",
        `best layer: ${best.layer} (${(best.heldOutAccuracy * 100).toFixed(1)}% on ${r.rows - Math.floor(r.rows * (2 / 3))} held-out prompts). ${seconds.toFixed(1)} s in all.`,
        "The embedded model is a 260K-parameter story model: bring a real chat model with --model for meaningful numbers.",
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
    }
    return results;
  } finally {
    await model.dispose();
  }
}
