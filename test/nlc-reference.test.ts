/**
 * A second, independent reference: node-llama-cpp's own embedding call
 * (LlamaEmbeddingContext.getEmbeddingFor, llama.cpp's embeddings output through
 * another binding) on the same tokens must equal capture's "final" layer.
 * node-llama-cpp is ESM-only, so it runs in a child process.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { loadModel } from "../src";
import { MODEL, STORIES, maxAbsDiff, tmpDir } from "./helpers";

const run = promisify(execFile);

test('capture "final" equals node-llama-cpp getEmbeddingFor on the same tokens', async () => {
  // node-llama-cpp keeps llama.cpp's default F16 KV cache; match it (ours defaults to F32)
  const model = await loadModel({ modelPath: MODEL, gpu: false, kvCacheType: "f16" });
  try {
    const texts = STORIES.slice(0, 3);
    const prepared = model.prepare(texts);
    const tokenLists = texts.map((_, i) => Array.from(prepared.tokens.subarray(prepared.offsets[i], prepared.offsets[i + 1])));
    const script = `
      import { getLlama, LlamaLogLevel } from "node-llama-cpp";
      const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
      // flash attention off on both sides: it accumulates in half precision (see loadModel flashAttention)
      const model = await llama.loadModel({ modelPath: ${JSON.stringify(MODEL)}, defaultContextFlashAttention: false });
      const ctx = await model.createEmbeddingContext({ contextSize: 512, threads: 1 });
      const out = [];
      for (const toks of ${JSON.stringify(tokenLists)}) out.push((await ctx.getEmbeddingFor(toks)).vector);
      console.log(JSON.stringify(out));
      await ctx.dispose(); await model.dispose(); await llama.dispose();`;
    // a file, not -e: node-llama-cpp forks a test process that inherits process.execArgv
    const file = path.join(tmpDir(), "nlc-reference.mjs");
    fs.writeFileSync(file, script.replace('from "node-llama-cpp"', `from ${JSON.stringify(pathToFileURL(require.resolve("node-llama-cpp")).href)}`));
    const { stdout } = await run(process.execPath, [file], { maxBuffer: 1 << 24 });
    const ref = JSON.parse(stdout.trim().split("\n").pop()!) as number[][];
    const acts = await model.capture(prepared, { layers: ["final"] });
    expect(ref).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      expect(ref[i]).toHaveLength(64);
      expect(maxAbsDiff(acts.get("final", i), Float32Array.from(ref[i]))).toBeLessThan(1e-4);
    }
  } finally {
    await model.dispose();
  }
});

test("greedy generation equals node-llama-cpp's greedy output, token for token", async () => {
  const model = await loadModel({ modelPath: MODEL, gpu: false });
  try {
    const prompts = ["Once upon a time", "Tom and Sue went to the park"];
    const ours = [];
    for (const p of prompts) ours.push(await model.generate(p, { maxTokens: 60, temperature: 0 }));
    const promptTokens = prompts.map((p) => Array.from(model.tokenize(p)));
    const script = `
      import { getLlama, LlamaLogLevel } from "node-llama-cpp";
      const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
      const model = await llama.loadModel({ modelPath: ${JSON.stringify(MODEL)}, defaultContextFlashAttention: false });
      const ctx = await model.createContext({ contextSize: 512, threads: 1 }); // 2 threads oversubscribe 2 cores next to jest
      const out = [];
      for (const prompt of ${JSON.stringify(promptTokens)}) {
        const seq = ctx.getSequence();
        const toks = [];
        for await (const t of seq.evaluate(prompt, { temperature: 0 })) {
          toks.push(t);
          if (toks.length >= 60) break;
        }
        out.push(toks);
        seq.dispose();
      }
      console.log(JSON.stringify(out));
      await ctx.dispose(); await model.dispose(); await llama.dispose();`;
    const file = path.join(tmpDir(), "nlc-greedy.mjs");
    fs.writeFileSync(file, script.replace('from "node-llama-cpp"', `from ${JSON.stringify(pathToFileURL(require.resolve("node-llama-cpp")).href)}`));
    const { stdout } = await run(process.execPath, [file], { maxBuffer: 1 << 24 });
    const theirs = JSON.parse(stdout.trim().split("\n").pop()!) as number[][];
    for (let i = 0; i < prompts.length; i++) {
      expect(ours[i].candidates[0].tokens).toHaveLength(60);
      expect(Array.from(ours[i].candidates[0].tokens)).toEqual(theirs[i]);
    }
  } finally {
    await model.dispose();
  }
});
