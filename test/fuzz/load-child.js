// Fuzz child: loads one GGUF file with the built library (dist/), captures one short text and
// decodes two tokens (so the output head runs too), prints one JSON line and exits 0. A crash of
// llama.cpp shows up to the parent as a signal death of this process.
"use strict";
const path = require("node:path");
// FUZZ_LIB: another build to test (e.g. main's, to see a campaign's outcome before a fix).
const lib = process.env.FUZZ_LIB || path.join(__dirname, "..", "..", "dist", "index.js");
const { loadModel, SafetyLensError } = require(lib);

async function main(file, extra) {
  let model;
  try {
    model = await loadModel({ modelPath: file, threads: 1, gpu: false, ...extra });
    const acts = await model.capture(["Once upon a time"], { layers: [0, "final"], earlyExit: false });
    const out = await model.generate("Once upon a time", { maxTokens: 2, temperature: 0, ignoreEos: true });
    return { outcome: "ok", nEmbd: acts.layer("final").length, tokens: out.candidates[0].tokens.length };
  } catch (e) {
    if (e instanceof SafetyLensError) return { outcome: "error", name: e.name, code: e.code, message: e.message };
    // TypeError/RangeError from our own checks count as typed too; anything else is reported as such.
    return { outcome: "error", name: e && e.name, code: e && e.code ? String(e.code) : null, message: String(e && e.message) };
  } finally {
    if (model) await model.dispose();
  }
}

// argv[3]: optional JSON of more loadModel options.
main(process.argv[2], JSON.parse(process.argv[3] || "{}")).then((r) => {
  process.stdout.write(JSON.stringify(r) + "\n");
  process.exit(0);
});
