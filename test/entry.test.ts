/**
 * The package's entry points from plain Node, the way an Electron main or
 * utility process uses them: require the package by its main field, in the main
 * thread and in a worker thread (per-environment state, cleanup at exit).
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const ROOT = path.join(__dirname, "..");

test("require(package) in a fresh process: load, capture, asyncDispose", async () => {
  const script = `
    const sl = require(${JSON.stringify(ROOT)});
    const { embed } = require(${JSON.stringify(path.join(ROOT, "dist", "core", "internal.js"))});
    (async () => {
      const model = await sl.loadModel({ gpu: false });
      const acts = await model.capture(["Once upon a time"], { layers: [2, "final"] });
      const ref = await embed(model, ["Once upon a time"]);
      let d = 0; const f = acts.layer("final");
      for (let i = 0; i < f.length; i++) d = Math.max(d, Math.abs(f[i] - ref[i]));
      await model[Symbol.asyncDispose]();
      console.log(JSON.stringify({ n: acts.layer(2).length, d, disposed: model.isDisposed }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const { stdout } = await run(process.execPath, ["-e", script]);
  const r = JSON.parse(stdout);
  expect(r).toEqual({ n: 64, d: expect.any(Number), disposed: true });
  expect(r.d).toBeLessThan(1e-4);
});

test("worker threads: two at once, one exits without disposing", async () => {
  const script = `
    const { Worker } = require("node:worker_threads");
    const body = (dispose) => \`
      const { parentPort } = require("node:worker_threads");
      const sl = require(\${JSON.stringify(${JSON.stringify(ROOT)})});
      (async () => {
        const model = await sl.loadModel({ gpu: false, threads: 1 });
        const acts = await model.capture(["The dog ran", "Lily liked to play"], { layers: [3] });
        if (\${dispose}) await model.dispose();
        parentPort.postMessage(Array.from(acts.layer(3).slice(0, 4)));
      })();\`;
    const go = (dispose) => new Promise((resolve, reject) => {
      const w = new Worker(body(dispose), { eval: true });
      w.once("message", resolve); w.once("error", reject);
    });
    (async () => {
      const [a, b] = await Promise.all([go(true), go(false)]);
      console.log(JSON.stringify({ a, b }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const { stdout } = await run(process.execPath, ["-e", script]);
  const { a, b } = JSON.parse(stdout);
  expect(a).toHaveLength(4);
  expect(a).toEqual(b);
});
