/**
 * examples/electron/ as a packaged app, in plain Node (Electron cannot be installed here): main.js with a stubbed
 * "electron" module (test/electron-stub/) forks worker.js as its utility process, which loads safety-lens from
 * resources/app.asar. The layout is the one the README's electron-builder configuration produces: JavaScript in
 * app.asar (a folder here), the addon and llama.cpp's libraries unpacked to app.asar.unpacked, the model in
 * extraResources. Inside app.asar the native files are empty placeholders (in a real archive native code cannot
 * read them either), so the capture only works if every native path resolves to app.asar.unpacked.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";

import { loadModel } from "../src/core/model";
import { platformPackages } from "../src/core/native";
import { MODEL, maxAbsDiff, tmpDir } from "./helpers";
import { HOST, PREBUILT_NAME, ROOT, goodAddon } from "./stage";

const run = promisify(execFile);
const TEXTS = ["Once upon a time", "The cat sat on the mat and looked at the dog."];

/** Writes `file` into app.asar as an empty placeholder and its real content into app.asar.unpacked. */
function unpack(res: string, rel: string, content: Buffer | string): void {
  for (const [dir, data] of [["app.asar", ""], ["app.asar.unpacked", content]] as const) {
    const f = path.join(res, dir, rel);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, data);
  }
}

const made: string[] = [];
afterAll(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true }))); // ~30 MB of llama.cpp libraries

function packagedApp(): string {
  const dir = tmpDir("safety-lens-electron-");
  made.push(dir);
  const res = path.join(dir, "resources");
  const asar = path.join(res, "app.asar");
  const modules = path.join(asar, "node_modules");
  fs.mkdirSync(modules, { recursive: true });
  for (const f of ["main.js", "worker.js", "package.json"]) fs.copyFileSync(path.join(ROOT, "examples", "electron", f), path.join(asar, f));
  // safety-lens: JavaScript in the archive, the prebuilt addon unpacked
  const sl = path.join(modules, "safety-lens");
  fs.mkdirSync(sl);
  fs.copyFileSync(path.join(ROOT, "package.json"), path.join(sl, "package.json"));
  fs.cpSync(path.join(ROOT, "dist"), path.join(sl, "dist"), { recursive: true, filter: (f) => !f.endsWith(".map") });
  unpack(res, path.join("node_modules", "safety-lens", "prebuilds", HOST, PREBUILT_NAME), fs.readFileSync(goodAddon()));
  // this platform's llama.cpp libraries (no CUDA: the configuration leaves it out), all unpacked
  const pkg = platformPackages().cpu;
  const from = path.join(ROOT, "node_modules", "@node-llama-cpp", pkg);
  fs.mkdirSync(path.join(modules, "@node-llama-cpp", pkg), { recursive: true });
  fs.copyFileSync(path.join(from, "package.json"), path.join(modules, "@node-llama-cpp", pkg, "package.json"));
  for (const f of fs.readdirSync(path.join(from, "bins", pkg))) {
    unpack(res, path.join("node_modules", "@node-llama-cpp", pkg, "bins", pkg, f), fs.readFileSync(path.join(from, "bins", pkg, f)));
  }
  // the other dependencies: JavaScript only
  for (const name of fs.readdirSync(path.join(ROOT, "node_modules"))) {
    if (name.startsWith(".") || name === "@node-llama-cpp") continue;
    fs.symlinkSync(path.join(ROOT, "node_modules", name), path.join(modules, name));
  }
  fs.copyFileSync(MODEL, path.join(res, "model.gguf")); // extraResources
  return res;
}

/** Electron's part: start the app's main.js, answer as the renderer would, quit. */
const HARNESS = `
  const Module = require("node:module");
  const path = require("node:path");
  const [resources, stub] = process.argv.slice(1);
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, ...rest) {
    return request === "electron" ? stub : resolve.call(this, request, ...rest);
  };
  process.resourcesPath = resources;
  const logs = [];
  console.log = (...a) => logs.push(a.join(" "));
  const { app, ipcMain } = require("electron");
  require(path.join(resources, "app.asar", "main.js"));
  (async () => {
    await app._ready();
    const info = await ipcMain._invoke("safety-lens:info");
    const cap = await ipcMain._invoke("safety-lens:capture", ${JSON.stringify(TEXTS)}, [2, "final"]);
    const bad = await ipcMain._invoke("safety-lens:capture", ["x"], [99]).catch((e) => ({ name: e.name, message: e.message }));
    app._quit();
    const layers = Object.fromEntries(Object.entries(cap.layers).map(([k, v]) => [k, { type: v.constructor.name, values: Array.from(v) }]));
    process.stdout.write(JSON.stringify({ info, nEmbd: cap.nEmbd, layers, bad, logs }));
  })().catch((e) => { process.stderr.write(String(e.stack || e)); process.exit(1); });`;

test("examples/electron: main.js + utility process, from an unpacked-asar layout", async () => {
  const res = packagedApp();
  const stub = path.join(__dirname, "electron-stub", "electron.js");
  const { stdout } = await run(process.execPath, ["-e", HARNESS, res, stub], {
    env: { ...process.env, SAFETY_LENS_THREADS: "1" },
    timeout: 60_000,
  });
  const r = JSON.parse(stdout);
  const unpacked = path.join(res, "app.asar.unpacked", "node_modules");
  const addon = path.join(unpacked, "safety-lens", "prebuilds", HOST, PREBUILT_NAME);
  expect(r.info.runtime.addon).toEqual({ kind: "prebuilt", path: addon, skipped: [] });
  expect(r.info.runtime.llamaCpp.libraries).toBe(path.join(unpacked, "@node-llama-cpp", platformPackages().cpu, "bins", platformPackages().cpu));
  expect(r.info.runtime.llamaCpp.release).toMatch(/^v\d/);
  expect(r.info.model.path).toBe(path.join(res, "model.gguf"));
  expect(r.info.model.threads).toBe(1);
  expect(r.logs).toEqual([`safety-lens: prebuilt addon ${addon}, llama.cpp ${r.info.runtime.llamaCpp.release}`]);
  expect(r.bad).toEqual({ name: "RangeError", message: expect.stringContaining("layer 99 is out of range") });

  // the same numbers as a capture in this process
  const model = await loadModel({ modelPath: MODEL, threads: 1, gpu: false });
  try {
    const ref = await model.capture(TEXTS, { layers: [2, "final"], pool: "last" });
    expect(r.nEmbd).toBe(model.info.nEmbd);
    for (const l of [2, "final"] as const) {
      expect(r.layers[l].type).toBe("Float32Array"); // structured clone keeps the type across the process boundary
      expect(maxAbsDiff(Float32Array.from(r.layers[l].values), ref.layer(l))).toBeLessThan(1e-5);
    }
  } finally {
    await model.dispose();
  }
});
