// Electron utility process: owns the model and answers the main process, one request at a time.
"use strict";
const { loadModel, runtimeInfo } = require("safety-lens");

const modelPath = process.argv[2];
const threads = Number(process.env.SAFETY_LENS_THREADS) || undefined; // default: the physical cores
const model = loadModel({ modelPath, threads, gpu: "auto" });
model.catch(() => {}); // a load failure is the answer to each request below

const methods = {
  async info() {
    return { model: (await model).info, runtime: runtimeInfo() };
  },
  async capture(texts, layers = ["final"]) {
    const acts = await (await model).capture(texts, { layers, pool: "last" });
    return { nEmbd: acts.nEmbd, layers: Object.fromEntries(layers.map((l) => [l, acts.layer(l).slice()])) };
  },
};

let queue = Promise.resolve();
process.parentPort.on("message", ({ data: { id, method, args } }) => {
  queue = queue.then(async () => {
    try {
      if (!Object.hasOwn(methods, method)) throw new TypeError(`unknown method ${method}`);
      process.parentPort.postMessage({ id, result: await methods[method](...args) });
    } catch (e) {
      process.parentPort.postMessage({ id, error: { name: e.name, code: e.code, message: e.message } });
    }
  });
});
