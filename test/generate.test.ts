import { AbortError, InputError, loadModel, Model, ModelStateError } from "../src";
import { MODEL, maxAbsDiff, modelVariant } from "./helpers";

const PROMPT = "Once upon a time";
const TOL = 1e-4;

/** Fresh capture of prompt + response tokens, for comparison with what generation read. */
async function freshCapture(model: Model, promptTokens: Int32Array, response: Int32Array, layers: (number | "final")[]) {
  const all = new Int32Array(promptTokens.length + response.length);
  all.set(promptTokens);
  all.set(response, promptTokens.length);
  return model.capture({ tokens: all, offsets: Uint32Array.of(0, all.length) }, { layers, pool: "tokens" });
}

describe("generate", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false });
  });
  afterAll(async () => {
    await model.dispose();
  });

  test("response and prompt hidden states equal a fresh capture at the same positions (last and mean)", async () => {
    const layers: (number | "final")[] = [1, 4, "final"];
    const promptTokens = model.tokenize(PROMPT);
    for (const response of ["last", "mean"] as const) {
      const out = await model.generate(PROMPT, { n: 3, maxTokens: 24, temperature: 0.9, seed: 11, capture: { layers, response } });
      expect(out.candidates).toHaveLength(3);
      for (const c of out.candidates) {
        expect(c.tokens.length).toBeGreaterThan(0);
        const fresh = await freshCapture(model, promptTokens, c.tokens, layers);
        for (const l of layers) {
          const rows = fresh.get(l, 0);
          const n = c.tokens.length;
          const p = promptTokens.length;
          let want: Float32Array;
          if (response === "last") want = rows.subarray((p + n - 1) * 64, (p + n) * 64);
          else {
            want = new Float32Array(64);
            for (let r = p; r < p + n; r++) for (let e = 0; e < 64; e++) want[e] += rows[r * 64 + e] / n;
          }
          expect(maxAbsDiff(c.hidden.response!.layer(l), want)).toBeLessThan(TOL);
          expect(maxAbsDiff(c.hidden.prompt!.layer(l), rows.subarray((p - 1) * 64, p * 64))).toBeLessThan(1e-4);
        }
      }
    }
  });

  test("candidates sample independently; a seed reproduces them; greedy is deterministic", async () => {
    const a = await model.generate(PROMPT, { n: 4, maxTokens: 20, temperature: 1, seed: 5 });
    const b = await model.generate(PROMPT, { n: 4, maxTokens: 20, temperature: 1, seed: 5 });
    expect(a.candidates.map((c) => c.text)).toEqual(b.candidates.map((c) => c.text));
    expect(new Set(a.candidates.map((c) => c.text)).size).toBeGreaterThan(1);
    expect(a.seed).toBe(5);
    const g1 = await model.generate(PROMPT, { maxTokens: 30, temperature: 0 });
    const g2 = await model.generate(PROMPT, { maxTokens: 30, temperature: 0, n: 2 });
    expect(g2.candidates[0].text).toBe(g1.candidates[0].text);
    expect(g2.candidates[1].text).toBe(g1.candidates[0].text);
    expect(g1.candidates[0].text).toBe(model.detokenize(g1.candidates[0].tokens));
    expect(g1.candidates[0].finishReason).toBe("length");
    expect(g1.candidates[0].tokens).toHaveLength(30);
  });

  test("stop strings cut the text; one that never matches runs to maxTokens", async () => {
    const greedy = await model.generate(PROMPT, { maxTokens: 40, temperature: 0 });
    const text = greedy.candidates[0].text;
    const at = text.indexOf("Lily");
    expect(at).toBeGreaterThan(0);
    const cut = await model.generate(PROMPT, { maxTokens: 40, temperature: 0, stop: ["Lily", "zzzz"] });
    expect(cut.candidates[0].finishReason).toBe("stop");
    expect(cut.candidates[0].text).toBe(text.slice(0, at));
    const never = await model.generate(PROMPT, { maxTokens: 12, temperature: 0, stop: "\u2603never\u2603" });
    expect(never.candidates[0].finishReason).toBe("length");
    expect(never.candidates[0].tokens).toHaveLength(12);
  });

  test("onToken and the async iterator stream exactly the final text", async () => {
    const parts: string[][] = [[], []];
    const out = await model.generate(PROMPT, { n: 2, maxTokens: 25, temperature: 0.7, seed: 3, onToken: (e) => parts[e.candidate].push(e.text) });
    expect(parts[0].join("")).toBe(out.candidates[0].text);
    expect(parts[1].join("")).toBe(out.candidates[1].text);
    expect(parts[0].length).toBe(out.candidates[0].tokens.length);
    const stream = model.generateStream(PROMPT, { maxTokens: 15, temperature: 0 });
    let text = "";
    for await (const e of stream) text += e.text;
    expect(text).toBe((await stream.result).candidates[0].text);
  });

  test("onPromptHidden runs before sampling and can veto (sync or async)", async () => {
    const greedyBefore = await model.generate(PROMPT, { maxTokens: 5, temperature: 0 });
    let seen: Float32Array | null = null;
    const ok = await model.generate(PROMPT, {
      maxTokens: 5,
      capture: { layers: [2] },
      onPromptHidden: (h) => {
        seen = h.layer(2).slice();
      },
    });
    expect(ok.vetoed).toBe(false);
    expect(ok.candidates[0].tokens.length).toBe(5);
    const ref = await model.capture([PROMPT], { layers: [2] });
    expect(maxAbsDiff(seen!, ref.layer(2))).toBe(0);
    let tokens = 0;
    const vetoed = await model.generate(PROMPT, {
      n: 2,
      capture: { layers: [2] },
      onToken: () => tokens++,
      onPromptHidden: async () => ({ stop: true }),
    });
    expect(vetoed.vetoed).toBe(true);
    expect(tokens).toBe(0);
    expect(vetoed.candidates.map((c) => c.finishReason)).toEqual(["vetoed", "vetoed"]);
    expect(vetoed.candidates[0].text).toBe("");
    expect(vetoed.candidates[0].hidden.prompt!.layer(2)).toEqual(ref.layer(2));
    // the model is fine afterwards
    const after = await model.generate(PROMPT, { maxTokens: 5, temperature: 0 });
    expect(Array.from(after.candidates[0].tokens)).toEqual(Array.from(greedyBefore.candidates[0].tokens));
  });

  test("a hook that throws rejects the generation and leaves the model usable", async () => {
    await expect(
      model.generate(PROMPT, {
        capture: { layers: [1] },
        onPromptHidden: () => {
          throw new Error("guard broke");
        },
      }),
    ).rejects.toThrow("guard broke");
    const out = await model.generate(PROMPT, { maxTokens: 3, temperature: 0 });
    expect(out.candidates[0].tokens).toHaveLength(3);
  });

  test("abort mid-generation returns what was made so far; abort before start throws", async () => {
    const ac = new AbortController();
    let count = 0;
    const out = await model.generate(PROMPT, {
      n: 2,
      maxTokens: 300,
      ignoreEos: true,
      temperature: 0.8,
      signal: ac.signal,
      onToken: () => {
        if (++count === 10) ac.abort();
      },
    });
    for (const c of out.candidates) {
      expect(c.finishReason).toBe("aborted");
      expect(c.tokens.length).toBeGreaterThan(0);
      expect(c.tokens.length).toBeLessThan(300);
    }
    const pre = new AbortController();
    pre.abort();
    await expect(model.generate(PROMPT, { signal: pre.signal })).rejects.toBeInstanceOf(AbortError);
  });

  test("capture after generate is unaffected", async () => {
    const before = await model.capture(["The cat sat"], { layers: [3] });
    await model.generate(PROMPT, { n: 3, maxTokens: 10 });
    const after = await model.capture(["The cat sat"], { layers: [3] });
    expect(maxAbsDiff(before.layer(3), after.layer(3))).toBe(0);
  });

  test("bad input: empty prompt, maxTokens, n, context overflow, wrong types", async () => {
    const err = await model.generate("").catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toBe("prompt is empty");
    await expect(model.generate([])).rejects.toThrow("prompt is empty");
    await expect(model.generate(PROMPT, { maxTokens: 0 })).rejects.toThrow(new RangeError("maxTokens must be between 1 and 2048, got 0"));
    await expect(model.generate(PROMPT, { maxTokens: 2.5 })).rejects.toThrow(new TypeError("maxTokens must be an integer, got 2.5"));
    await expect(model.generate(PROMPT, { n: 0 })).rejects.toThrow(new RangeError("n must be between 1 and 64, got 0"));
    await expect(model.generate(PROMPT, { n: 4, maxTokens: 1000 })).rejects.toThrow(
      new RangeError(`the prompt (${model.tokenize(PROMPT).length} tokens) plus n (4) x maxTokens (1000) exceeds the context (2048 tokens); lower maxTokens or n, or load the model with a larger contextSize`),
    );
    await expect(model.generate(PROMPT, { stop: [""] })).rejects.toThrow(new TypeError("stop must be a non-empty string or an array of non-empty strings"));
    await expect(model.generate(PROMPT, { temperature: -1 })).rejects.toThrow(new RangeError("temperature must be between 0 and 100, got -1"));
    await expect(model.generate(PROMPT, { onPromptHidden: () => undefined })).rejects.toThrow(
      new TypeError("onPromptHidden needs capture: { layers, prompt: true }"),
    );
  });

  test("generate after dispose", async () => {
    const m = await loadModel({ modelPath: MODEL, gpu: false });
    await m.dispose();
    const err = await m.generate(PROMPT).catch((e) => e);
    expect(err).toBeInstanceOf(ModelStateError);
    expect(err.code).toBe("MODEL_DISPOSED");
  });
});

describe("end of generation", () => {
  test("an end-of-generation token ends a candidate (not part of its text); ignoreEos keeps going", async () => {
    // stories260K marks a story's end with BOS (id 1); a copy that calls it EOS ends generation there
    const model = await loadModel({ modelPath: await modelVariant({ eosId: 1 }), gpu: false });
    try {
      const out = await model.generate(PROMPT, { maxTokens: 600, temperature: 0, capture: { layers: [2] } });
      const c = out.candidates[0];
      expect(c.finishReason).toBe("eos");
      expect(c.tokens.length).toBe(341);
      expect(Array.from(c.tokens)).not.toContain(1);
      // the response hidden state is the last response token's, not the EOS token's
      const fresh = await freshCapture(model, model.tokenize(PROMPT), c.tokens, [2]);
      const p = model.tokenize(PROMPT).length;
      expect(maxAbsDiff(c.hidden.response!.layer(2), fresh.get(2, 0).subarray((p + 340) * 64, (p + 341) * 64))).toBeLessThan(1e-4);
      const more = await model.generate(PROMPT, { maxTokens: 345, temperature: 0, ignoreEos: true });
      expect(more.candidates[0].finishReason).toBe("length");
      expect(more.candidates[0].tokens[341]).toBe(1);
    } finally {
      await model.dispose();
    }
  });
});

describe("chat templates in generation", () => {
  test("the model's own template renders the prompt; a failing template is a clear error", async () => {
    const tmpl =
      "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" +
      "{% if m['role'] == 'tool' %}{{ raise_exception('Tool role not supported') }}{% endif %}" +
      "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}";
    const path = await modelVariant({ template: tmpl });
    const model = await loadModel({ modelPath: path, gpu: false });
    try {
      expect(model.info.chatTemplate).toBe(tmpl);
      const out = await model.generate([{ role: "user", content: "Tell me a story" }], { maxTokens: 5, temperature: 0 });
      expect(out.prompt).toBe("[user] Tell me a story\n[assistant] ");
      expect(out.candidates[0].tokens).toHaveLength(5);
      // A template that refuses the system role gets the system text merged into the user turn (as node-llama-cpp does).
      const merged = await model.generate([{ role: "system", content: "x" }, { role: "user", content: "hi" }], { maxTokens: 1, temperature: 0 });
      expect(merged.prompt).toBe("[user] ### System message\n\nx\n\n----\n\nhi\n[assistant] ");
      const err = await model.generate([{ role: "tool", content: "x" }], { maxTokens: 5 }).catch((e) => e);
      expect(err).toBeInstanceOf(InputError);
      expect(err.code).toBe("TEMPLATE_FAILED");
      expect(err.message).toBe("the chat template of llama failed to render: Tool role not supported");
    } finally {
      await model.dispose();
    }
  });
});

describe("callbacks that throw", () => {
  // The caller's own error comes back (the same object), after the native job stopped; the
  // model stays usable. (Before: onToken/onProgress errors were swallowed and the call resolved,
  // and a throwing onPromptHidden came back as DecodeError DECODE_FAILED.)
  test("onToken, onProgress and onPromptHidden errors reject the call with the caller's error", async () => {
    const model = await loadModel({ modelPath: MODEL, gpu: false });
    try {
      const clean = await model.generate(PROMPT, { maxTokens: 6, temperature: 0 });
      const bug = new Error("user bug");
      let calls = 0;
      const e1 = await model
        .generate(PROMPT, {
          maxTokens: 6,
          temperature: 0,
          onToken: () => {
            calls++;
            throw bug;
          },
        })
        .catch((e) => e);
      expect(e1).toBe(bug);
      expect(calls).toBe(1); // no callback after the one that threw
      const e2 = await model
        .capture(["a", "b"], {
          layers: [0],
          onProgress: () => {
            throw bug;
          },
        })
        .catch((e) => e);
      expect(e2).toBe(bug);
      const e3 = await model
        .generate(PROMPT, {
          maxTokens: 6,
          capture: { layers: [1] },
          onPromptHidden: () => {
            throw bug;
          },
        })
        .catch((e) => e);
      expect(e3).toBe(bug);
      const e4 = await model
        .generate(PROMPT, {
          maxTokens: 6,
          capture: { layers: [1] },
          onPromptHidden: async () => Promise.reject(bug),
        })
        .catch((e) => e);
      expect(e4).toBe(bug);
      // the model is usable and gives what a clean run gives
      const again = await model.generate(PROMPT, { maxTokens: 6, temperature: 0 });
      expect(Array.from(again.candidates[0].tokens)).toEqual(Array.from(clean.candidates[0].tokens));
      expect((await model.capture(["a", "b"], { layers: [0] })).rows).toBe(2);
    } finally {
      await model.dispose();
    }
  });
});
