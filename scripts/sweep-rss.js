#!/usr/bin/env node
// Peak memory of a layer sweep (or train-guard) through the activation cache, each run in its own
// child process (VmHWM: its own peak resident memory), on the embedded model by default:
//   node scripts/sweep-rss.js [--prompts 2000,8000] [--what sweep|guard] [--threads 1] [--dist dist] [--model PATH]
// The prompts are data/starter/prompts.jsonl repeated with a suffix (" [k]") until there are N.
// Each N runs twice on a fresh cache folder: "cold" (everything captured) and "warm" (all hits).
// --standin LxD (e.g. 32x1024): the embedded model's tokenizer and template, but reported as L layers x D wide and
// capture() returning pseudo-random rows of that shape (no forward pass): the pipeline's memory at a real model's
// size without its compute. Peak memory then also holds each layer's d x d LPM statistics.
"use strict";
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

const ROOT = path.join(__dirname, "..");

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

function writePrompts(n, file) {
  const lines = fs.readFileSync(path.join(ROOT, "data", "starter", "prompts.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const out = [];
  for (let k = 0; out.length < n; k++) {
    for (const r of lines) {
      if (out.length >= n) break;
      out.push(JSON.stringify({ ...r, id: `${r.id}~${k}`, text: k === 0 ? r.text : `${r.text} [${k}]` }));
    }
  }
  fs.writeFileSync(file, out.join("\n") + "\n");
}

async function child() {
  const dist = path.resolve(arg("dist", path.join(ROOT, "dist")));
  const lib = require(path.join(dist, "index.js"));
  const { peakRssMiB } = require(path.join(dist, "tools", "bench-util.js"));
  const real = await lib.loadModel({ modelPath: arg("model", path.join(ROOT, "models", "stories260K.gguf")), gpu: false, threads: Number(arg("threads", "1")) });
  const model = arg("standin") ? standIn(real, arg("standin")) : real;
  const t0 = performance.now();
  const logs = [];
  const common = { cacheDir: arg("cache-dir"), onLog: (m) => logs.push(m) };
  let best;
  if (arg("what", "sweep") === "guard") {
    const r = await lib.trainGuard(model, { ...common, starter: false, files: [arg("file")] });
    best = `${r.probe.method} ${r.bestLayer}`;
  } else {
    const r = await lib.sweepLayers(model, { ...common, files: [arg("file")], method: "lpm" });
    best = `layer ${r.best.layer} val F1 ${r.best.val.f1.toFixed(4)}`;
  }
  const seconds = (performance.now() - t0) / 1000;
  await real.dispose();
  const act = logs.find((l) => l.startsWith("activations:")) ?? "";
  process.stdout.write(JSON.stringify({ maxRssMiB: peakRssMiB(), seconds, best, activations: act }) + "\n");
}

/** A model that reports L layers x D and captures pseudo-random rows (seeded by the text and layer). */
function standIn(real, spec) {
  const [L, D] = spec.split("x").map(Number);
  const info = { ...real.info, nLayer: L, nEmbd: D, fingerprint: `standin-${L}x${D}`, name: `standin-${L}x${D}` };
  const hash = (s) => {
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
    return h >>> 0;
  };
  return {
    info,
    formatText: (t, o) => real.formatText(t, o),
    tokenize: (t, o) => real.tokenize(t, o),
    async capture(inputs, o) {
      const texts = Array.isArray(inputs) ? inputs : Array.from({ length: inputs.offsets.length - 1 }, (_, i) => `prepared ${i}`);
      const out = o.layers.map((l) => {
        const data = new Float32Array(texts.length * D);
        texts.forEach((t, i) => {
          let x = (hash(t) ^ Math.imul(typeof l === "number" ? l + 1 : 999, 2654435761)) >>> 0 || 1;
          for (let j = 0; j < D; j++) {
            x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
            data[i * D + j] = x / 2147483648 - 1;
          }
        });
        return data;
      });
      return {
        layers: o.layers,
        count: texts.length,
        tokenCounts: new Uint32Array(texts.length).fill(1),
        layer: (l) => out[o.layers.indexOf(l)],
        features: (l) => ({ data: out[o.layers.indexOf(l)], rows: texts.length, cols: D }),
      };
    },
  };
}

function main() {
  const sizes = arg("prompts", "2000,8000").split(",").map(Number);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sweep-rss-"));
  const results = [];
  try {
    for (const n of sizes) {
      const file = path.join(tmp, `prompts-${n}.jsonl`);
      writePrompts(n, file);
      const cacheDir = path.join(tmp, `cache-${n}`);
      for (const run of ["cold", "warm"]) {
        const args = [__filename, "--child", "--file", file, "--cache-dir", cacheDir];
        for (const k of ["dist", "threads", "what", "model", "standin"]) if (arg(k) !== undefined) args.push(`--${k}`, arg(k));
        const r = spawnSync(process.execPath, args, { encoding: "utf8", maxBuffer: 1 << 26 });
        if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
        const j = JSON.parse(r.stdout.trim().split("\n").pop());
        results.push({ prompts: n, run, ...j });
        console.log(`${String(n).padStart(6)} ${run.padEnd(4)}  peak RSS ${j.maxRssMiB.toFixed(1).padStart(7)} MiB  ${j.seconds.toFixed(1).padStart(6)} s  ${j.best}  (${j.activations})`);
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (arg("json") !== undefined) fs.writeFileSync(arg("json"), JSON.stringify(results, null, 2));
}

if (process.argv.includes("--child")) {
  child().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else main();
