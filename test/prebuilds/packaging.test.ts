/**
 * The npm package as users get it: `npm pack` (prepack builds the prebuilt binaries this machine can), then
 * `npm install <tarball>` into a fresh folder with a PATH that holds node, npm and sh (npm runs scripts with
 * it) and nothing else: no git, no C/C++ compiler, no make, no Python. Dependencies come from the registry.
 */
import { execFile, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";

import { loadModel } from "../../src/core/model";
import { MODEL, maxAbsDiff, tmpDir } from "../helpers";
import { HOST, PREBUILT_NAME, ROOT, truncated } from "../stage";

const run = promisify(execFile);
const TOOLS = ["git", "cc", "c++", "gcc", "g++", "clang", "clang++", "make", "gmake", "python3", "python"];

let work: string;
let app: string;
let env: NodeJS.ProcessEnv;
let installSeconds: number;
let installLog: string;
/** npm's own timers for the install (ms): unpacking, tree building, each package's scripts */
let timers: Record<string, number>;
let pkgDir: string;

/** npm's own entry point (npm-cli.js), not a shell wrapper that would need more of PATH. */
function npmCli(): string {
  const fromEnv = process.env.npm_execpath;
  if (fromEnv && /npm-cli\.js$/.test(fromEnv)) return fromEnv;
  const which = spawnSync("sh", ["-c", "command -v npm"], { encoding: "utf8" }).stdout.trim();
  return fs.realpathSync(which);
}

/** The environment of a user without build tools: PATH is node, npm and sh; npm's own variables of this run removed. */
function toollessEnv(bin: string): NodeJS.ProcessEnv {
  const keep = new Set(["npm_config_registry", "npm_config_cache", "npm_config_userconfig"]);
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) || keep.has(k)) out[k] = v;
  for (const k of ["INIT_CWD", "NODE", "PYTHON", "CC", "CXX", "MAKE"]) delete out[k];
  return { ...out, PATH: bin };
}

beforeAll(async () => {
  work = tmpDir("safety-lens-pack-");
  const t0 = Date.now();
  const { stdout } = await run("npm", ["pack", "--silent", "--pack-destination", work], { cwd: ROOT, maxBuffer: 16 << 20 });
  const tgz = path.join(work, stdout.trim().split("\n").pop()!);
  console.log(`npm pack (prepack: prebuild, prepare: tsc): ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const bin = path.join(work, "bin");
  fs.mkdirSync(bin);
  fs.symlinkSync(fs.realpathSync(process.execPath), path.join(bin, "node"));
  fs.symlinkSync(npmCli(), path.join(bin, "npm"));
  fs.symlinkSync("/bin/sh", path.join(bin, "sh"));
  env = toollessEnv(bin);
  const found = TOOLS.filter((t) => spawnSync("/bin/sh", ["-c", `command -v ${t}`], { env }).status === 0);
  expect(found).toEqual([]);

  app = path.join(work, "app");
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
  const t1 = Date.now();
  const logs = path.join(work, "logs");
  const r = await run(path.join(bin, "npm"), ["install", "--no-audit", "--no-fund", "--foreground-scripts", "--timing", "--logs-dir", logs, tgz], { cwd: app, env, maxBuffer: 16 << 20 });
  installSeconds = (Date.now() - t1) / 1000;
  installLog = r.stdout + r.stderr;
  pkgDir = path.join(app, "node_modules", "safety-lens");
  const timing = fs.readdirSync(logs).find((f) => f.endsWith("-timing.json"))!;
  timers = JSON.parse(fs.readFileSync(path.join(logs, timing), "utf8")).timers;
  const s = (k: string) => `${((timers[k] ?? NaN) / 1000).toFixed(1)} s`;
  console.log(
    `npm install <tarball> without git, compiler, make or Python: ${installSeconds.toFixed(1)} s ` +
      `(resolving the tree ${s("idealTree")}, unpacking ${s("reify:unpack")}, the longest @node-llama-cpp/linux-x64-cuda-ext ` +
      `${s("reifyNode:node_modules/@node-llama-cpp/linux-x64-cuda-ext")}, node-llama-cpp's postinstall ${s("build:run:postinstall:node_modules/node-llama-cpp")}, ` +
      `safety-lens's install step ${s("build:run:install:node_modules/safety-lens")})`,
  );
});

afterAll(() => fs.rmSync(work, { recursive: true, force: true })); // the installed tree is ~750 MB

test("the tarball carries the prebuilt binaries and no llama.cpp file", async () => {
  const { stdout } = await run("tar", ["-tzf", fs.readdirSync(work).filter((f) => f.endsWith(".tgz")).map((f) => path.join(work, f))[0]]);
  const files = stdout.split("\n");
  expect(files).toContain(`package/prebuilds/${HOST}/${PREBUILT_NAME}`);
  expect(files).toContain("package/prebuilds/linux-arm64/safety-lens.glibc.node");
  expect(files.filter((f) => /llama-headers|\/build\/|\.h$/.test(f) && !f.startsWith("package/native/"))).toEqual([]);
});

// The whole install measured 10.7 s on an idle 2-core machine and up to 36 s while other jobs loaded it (README);
// most of it is node-llama-cpp's GPU packages being unpacked. What safety-lens itself adds is its install step.
test("installs with the prebuilt binary, compiling nothing: safety-lens's own step takes under 3 s", () => {
  expect(installLog).toContain(`safety-lens: using the prebuilt addon prebuilds/${HOST}/${PREBUILT_NAME}`);
  expect(fs.existsSync(path.join(pkgDir, "build"))).toBe(false);
  expect(fs.existsSync(path.join(pkgDir, "llama-headers"))).toBe(false);
  expect(timers["build:run:install:node_modules/safety-lens"]).toBeLessThan(3000);
  expect(installSeconds).toBeLessThan(90); // a guard against hangs; see above for the numbers
});

test("capture on the embedded model works and equals this checkout's", async () => {
  const script = `
    const sl = require("safety-lens");
    (async () => {
      const model = await sl.loadModel({ threads: 1, gpu: false });
      const acts = await model.capture(["Once upon a time", "Hi"], { layers: [1, "final"] });
      console.log(JSON.stringify({ l1: Array.from(acts.layer(1)), final: Array.from(acts.layer("final")) }));
      await model.dispose();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const { stdout } = await run(path.join(work, "bin", "node"), ["-e", script], { cwd: app, env });
  const r = JSON.parse(stdout);
  const model = await loadModel({ modelPath: MODEL, threads: 1, gpu: false });
  try {
    const ref = await model.capture(["Once upon a time", "Hi"], { layers: [1, "final"] });
    expect(maxAbsDiff(Float32Array.from(r.l1), ref.layer(1))).toBeLessThan(1e-5);
    expect(maxAbsDiff(Float32Array.from(r.final), ref.layer("final"))).toBeLessThan(1e-5);
  } finally {
    await model.dispose();
  }
});

test("`safety-lens info` says which binary it loaded, the llama.cpp release and the backends", async () => {
  const { stdout } = await run(path.join(app, "node_modules", ".bin", "safety-lens"), ["info", "--threads", "1", "--gpu", "false", "--json"], { cwd: app, env });
  const { runtime } = JSON.parse(stdout);
  expect(runtime.addon).toEqual({ kind: "prebuilt", path: path.join(fs.realpathSync(pkgDir), "prebuilds", HOST, PREBUILT_NAME), skipped: [] });
  expect(runtime.llamaCpp).toEqual({ release: "v0.5.0", nodeLlamaCpp: "3.22.1", libraries: expect.stringContaining(path.join(app, "node_modules", "@node-llama-cpp")) });
  expect(runtime.backends[0]).toEqual({ name: "cpu", available: true, devices: [expect.any(String)] });
  const text = (await run(path.join(app, "node_modules", ".bin", "safety-lens"), ["info", "--threads", "1", "--gpu", "false"], { cwd: app, env })).stdout;
  expect(text).toMatch(/^addon {8}prebuilt: .*safety-lens\.glibc\.node$/m);
  expect(text).toMatch(/^llama\.cpp {4}v0\.5\.0 \(node-llama-cpp 3\.22\.1\)/m);
  expect(text).toMatch(/^backends {5}cpu: yes/m);
});

test("a source build without the tools says exactly what is missing and how to get it", () => {
  const r = spawnSync(path.join(work, "bin", "npm"), ["rebuild", "safety-lens", "--build-from-source", "--foreground-scripts"], { cwd: app, env, encoding: "utf8" });
  expect(r.status).not.toBe(0);
  const out = r.stdout + r.stderr;
  expect(out).toContain(
    "safety-lens: build from source requested, and building the native addon from source needs git, a C++17 compiler (g++ or clang++), make, Python 3, which are not installed.",
  );
  expect(out).toContain("Debian/Ubuntu: `apt-get install git build-essential python3`");
  expect(out).toContain("run `npm rebuild safety-lens`");
});

test("a prebuilt binary that does not load: the install falls back to a source build, and without tools says both", () => {
  const file = path.join(pkgDir, "prebuilds", HOST, PREBUILT_NAME);
  const good = fs.readFileSync(file);
  fs.writeFileSync(file, truncated(good));
  try {
    const r = spawnSync(path.join(work, "bin", "npm"), ["rebuild", "safety-lens", "--foreground-scripts"], { cwd: app, env, encoding: "utf8" });
    expect(r.status).not.toBe(0);
    const out = r.stdout + r.stderr;
    expect(out).toMatch(new RegExp(`the prebuilt addon prebuilds/${HOST}/${PREBUILT_NAME.replace(/\./g, "\\.")} does not load here: loading it killed the process \\(SIGBUS\\): truncated`));
    expect(out).toContain("building it from source");
    expect(out).toContain("needs git, a C++17 compiler (g++ or clang++), make, Python 3");
    // and at run time, one typed error instead of a crash
    const load = spawnSync(path.join(work, "bin", "node"), ["-e", `require("safety-lens").loadModel({ threads: 1 }).catch((e) => { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); })`], { cwd: app, env, encoding: "utf8" });
    expect(load.status).toBe(0);
    const e = JSON.parse(load.stdout);
    expect(e).toMatchObject({ name: "BackendError", code: "NATIVE_ADDON_LOAD_FAILED" });
    expect(e.message).toContain(`${path.join(fs.realpathSync(pkgDir), "prebuilds", HOST, PREBUILT_NAME)} (prebuilt for ${HOST}): truncated`);
  } finally {
    fs.writeFileSync(file, good);
  }
});
