import * as os from "node:os";
import * as fs from "node:fs";
import * as path from "node:path";

import { AbortError, InputError, loadModel, Model, ModelLoadError, ModelStateError } from "../src";
import { MODEL, STORIES, tmpDir } from "./helpers";

describe("bad model files", () => {
  const dir = tmpDir();

  test("missing file", async () => {
    const p = path.join(dir, "nope.gguf");
    const err = await loadModel({ modelPath: p, gpu: false }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.code).toBe("MODEL_NOT_FOUND");
    expect(err.message).toBe(`Model file not found: ${p}`);
  });

  test("a file that is not GGUF", async () => {
    const p = path.join(dir, "text.gguf");
    fs.writeFileSync(p, "this is not a model, just some text\n".repeat(10));
    const err = await loadModel({ modelPath: p, gpu: false }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.code).toBe("MODEL_INVALID");
    expect(err.message).toBe(`${p} is not a GGUF file (bad magic bytes)`);
  });

  test("a truncated GGUF (data cut short, and header cut short)", async () => {
    const full = fs.readFileSync(MODEL);
    const p = path.join(dir, "half.gguf");
    fs.writeFileSync(p, full.subarray(0, Math.floor(full.length / 2)));
    const err = await loadModel({ modelPath: p, gpu: false }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.code).toBe("MODEL_INVALID");
    expect(err.message.startsWith(`${p} is truncated: `)).toBe(true);
    const q = path.join(dir, "head.gguf");
    fs.writeFileSync(q, full.subarray(0, 200));
    const err2 = await loadModel({ modelPath: q, gpu: false }).catch((e) => e);
    expect(err2).toBeInstanceOf(ModelLoadError);
    expect(err2.code).toBe("MODEL_INVALID");
    expect(err2.message).toMatch(/is truncated/);
  });

  test("bad options are TypeErrors / RangeErrors with exact messages", async () => {
    const cores = os.availableParallelism();
    await expect(loadModel({ modelPath: MODEL, threads: 0 })).rejects.toThrow(new RangeError(`threads must be between 1 and ${cores} (the ${cores} logical cores), got 0`));
    await expect(loadModel({ modelPath: MODEL, threads: 1.5 })).rejects.toThrow(new TypeError("threads must be an integer, got number 1.5"));
    await expect(loadModel({ modelPath: MODEL, gpu: "opencl" as never })).rejects.toThrow(
      new TypeError('gpu must be "auto", "cuda", "vulkan", "metal" or false, got "opencl"'),
    );
    await expect(loadModel({ modelPath: 42 as never })).rejects.toThrow(new TypeError("modelPath must be a non-empty string"));
  });
});

describe("bad capture input", () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel({ modelPath: MODEL, gpu: false, contextSize: 64, batchSize: 16 });
  });
  afterAll(async () => {
    await model.dispose();
  });

  test("layer out of range, wrong type, duplicate", async () => {
    await expect(model.capture(["hi"], { layers: [5] })).rejects.toThrow(
      new RangeError('layer 5 is out of range: the model has 5 layers (0-4); use "final" for the output after the final norm'),
    );
    await expect(model.capture(["hi"], { layers: [-1] })).rejects.toThrow(RangeError);
    await expect(model.capture(["hi"], { layers: ["12" as never] })).rejects.toThrow(new TypeError('layers[0] must be a layer number or "final", got "12"'));
    await expect(model.capture(["hi"], { layers: [] })).rejects.toThrow(new TypeError('layers must be a non-empty array of layer numbers or "final"'));
    await expect(model.capture(["hi"], { layers: [1, 1] })).rejects.toThrow(new RangeError("layer 1 is listed twice"));
    await expect(model.capture(["hi"], { layers: [1], pool: "max" as never })).rejects.toThrow(new TypeError('pool must be "last", "mean" or "tokens", got "max"'));
  });

  test("empty text", async () => {
    const err = await model.capture(["fine", ""], { layers: [0] }).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.code).toBe("TEXT_EMPTY");
    expect(err.message).toBe("texts[1] is empty");
    await expect(model.capture(["   "], { layers: [0] })).rejects.toThrow("texts[0] is empty");
    await expect(model.capture([[]], { layers: [0] })).rejects.toThrow("texts[0] is empty");
    await expect(model.capture([], { layers: [0] })).rejects.toThrow(new RangeError("texts must not be empty"));
    await expect(model.capture([42 as never], { layers: [0] })).rejects.toThrow(
      new TypeError("texts[0] must be a string or an array of { role, content } messages, got number 42"),
    );
  });

  test("text longer than the context", async () => {
    const long = STORIES.join(" ").repeat(3);
    const n = model.tokenize(long).length;
    const err = await model.capture(["short", long], { layers: [0] }).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.code).toBe("TEXT_TOO_LONG");
    expect(model.info.contextSize).toBe(256); // llama.cpp rounds the context up to a multiple of 256
    expect(err.message).toBe(`texts[1] has ${n} tokens but the context holds 256; shorten it or load the model with a larger contextSize`);
    // the model still works afterwards
    const ok = await model.capture(["short"], { layers: [0] });
    expect(ok.rows).toBe(1);
  });

  test("abort before start and mid-run; the model stays usable", async () => {
    const pre = new AbortController();
    pre.abort();
    await expect(model.capture(["hi"], { layers: [0], signal: pre.signal })).rejects.toBeInstanceOf(AbortError);

    const many = Array.from({ length: 300 }, (_, i) => `${STORIES[i % STORIES.length].slice(0, 40)} ${i}`);
    const ac = new AbortController();
    let progressCalls = 0;
    const err = await model
      .capture(many, {
        layers: [4],
        signal: ac.signal,
        onProgress: () => {
          progressCalls++;
          ac.abort();
        },
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(err.code).toBe("ABORTED");
    expect(err.stack).toMatch(/errors\.test\.ts/); // the caller's stack is kept
    expect(progressCalls).toBeGreaterThanOrEqual(1);
    const after = await model.capture(["still works"], { layers: [4] });
    expect(after.layer(4).every(Number.isFinite)).toBe(true);
  });

  test("two captures at once on one model", async () => {
    const many = Array.from({ length: 50 }, (_, i) => `story ${i}`);
    const first = model.capture(many, { layers: [2] });
    const err = await model.capture(["second"], { layers: [2] }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelStateError);
    expect(err.code).toBe("MODEL_BUSY");
    expect(err.message).toBe("the model is busy with another capture; await it before starting the next");
    const acts = await first;
    expect(acts.rows).toBe(50);
  });
});

describe("dispose", () => {
  test("is idempotent, and use after dispose is a clear error", async () => {
    const model = await loadModel({ modelPath: MODEL, gpu: false });
    await model.dispose();
    await model.dispose();
    expect(model.isDisposed).toBe(true);
    const err = await model.capture(["hi"], { layers: [0] }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelStateError);
    expect(err.code).toBe("MODEL_DISPOSED");
    expect(err.message).toBe("the model is disposed");
    expect(() => model.tokenize("hi")).toThrow("the model is disposed");
  });

  test("dispose during a capture cancels it", async () => {
    const model = await loadModel({ modelPath: MODEL, gpu: false, batchSize: 16 });
    const many = Array.from({ length: 400 }, (_, i) => `${STORIES[i % STORIES.length]} ${i}`);
    const run = model.capture(many, { layers: [4] });
    await model.dispose();
    await expect(run).rejects.toBeInstanceOf(AbortError);
  });

  test("Symbol.asyncDispose", async () => {
    const model = await loadModel({ modelPath: MODEL, gpu: false });
    // Node 20's Symbol.asyncDispose is Symbol.for("nodejs.asyncDispose"); jest's sandbox lacks the global
    const dispose = (model as unknown as Record<symbol, () => Promise<void>>)[Symbol.for("nodejs.asyncDispose")];
    expect(typeof dispose).toBe("function");
    await dispose.call(model);
    expect(model.isDisposed).toBe(true);
  });
});
