import { loadModel, Model } from "../src";
import { MODEL } from "./helpers";

describe("continuationLogprobs and lastTokenLogits", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false });
  });
  afterAll(async () => {
    await model.dispose();
  });

  test("equals log-softmax of the full next-token logits, token by token", async () => {
    const prompt = "Once upon a time";
    const cont = " there was a dog";
    const contTokens = Array.from(model.tokenizeText(cont));
    const all = Array.from({ length: model.info.nVocab }, (_, i) => i);
    // by hand: extend the prompt one token at a time and read the full logits
    let want = 0;
    const head = Array.from(model.tokenize(prompt));
    for (let k = 0; k < contTokens.length; k++) {
      const seq = Int32Array.from([...head, ...contTokens.slice(0, k)]);
      const lg = await model.lastTokenLogits({ tokens: seq, offsets: Uint32Array.of(0, seq.length) }, all);
      let mx = -Infinity;
      for (const v of lg) mx = Math.max(mx, v);
      let s = 0;
      for (const v of lg) s += Math.exp(v - mx);
      want += lg[contTokens[k]] - mx - Math.log(s);
    }
    const r = await model.continuationLogprobs([
      { prompt, continuation: cont },
      { prompt, continuation: " zq xv" },
    ]);
    expect(r.tokens[0]).toBe(contTokens.length);
    expect(Math.abs(r.sum[0] - want)).toBeLessThan(1e-3);
    expect(r.mean[0]).toBeCloseTo(r.sum[0] / contTokens.length, 10);
    // a fluent continuation is more likely than gibberish
    expect(r.mean[0]).toBeGreaterThan(r.mean[1]);
  });

  test("the greedy continuation's first token has the highest logit", async () => {
    const g = await model.generate("Once upon a time", { maxTokens: 1, temperature: 0 });
    const all = Array.from({ length: model.info.nVocab }, (_, i) => i);
    const lg = await model.lastTokenLogits(["Once upon a time"], all);
    let best = 0;
    for (let i = 1; i < lg.length; i++) if (lg[i] > lg[best]) best = i;
    expect(g.candidates[0].tokens[0]).toBe(best);
  });

  test("bad input", async () => {
    await expect(model.continuationLogprobs([])).rejects.toThrow(new TypeError("pairs must be a non-empty array of { prompt, continuation }"));
    await expect(model.continuationLogprobs([{ prompt: "hi", continuation: "" }])).rejects.toThrow("pairs[0].continuation is empty");
    await expect(model.lastTokenLogits(["hi"], [999999])).rejects.toThrow(RangeError);
  });
});
