/**
 * Finding and loading the addon (src/core/addon-loader.ts): node-gyp-build's order (built here, then
 * prebuilds/<platform>-<arch>/), and binaries that cannot load (corrupted, truncated, another
 * architecture, a newer glibc) giving one BackendError with the file, the reason and the fix, or
 * falling back to the other binary; never a crash.
 */
import * as fs from "node:fs";
import * as path from "node:path";

import { addonCandidates, loadAddon, unpackedPath } from "../src/core/addon-loader";
import { elfProblem } from "../src/core/elf";
import { BackendError } from "../src/errors";
import { tmpDir } from "./helpers";
import { HOST, PREBUILT_NAME, ROOT, garbage, goodAddon, newerGlibc, nodeJson, otherArch, stagePackage, truncated } from "./stage";

const GOOD = fs.readFileSync(goodAddon());
const LOADER = path.join(ROOT, "dist", "core", "addon-loader.js");

function loadError(root: string): BackendError {
  try {
    loadAddon(root);
  } catch (e) {
    expect(e).toBeInstanceOf(BackendError);
    return e as BackendError;
  }
  throw new Error("loadAddon did not throw");
}

const prebuiltPath = (root: string) => path.join(root, "prebuilds", HOST, PREBUILT_NAME);

test("candidates: built here first, then the prebuilt binary for this platform", () => {
  const root = stagePackage(tmpDir(), { built: GOOD, prebuilt: GOOD });
  fs.mkdirSync(path.join(root, "prebuilds", "win32-x64")); // another platform's folder is ignored
  fs.writeFileSync(path.join(root, "prebuilds", "win32-x64", "safety-lens.node"), "x");
  expect(addonCandidates(root)).toEqual([
    { kind: "built", path: path.join(root, "build", "Release", "safety_lens.node") },
    { kind: "prebuilt", path: prebuiltPath(root) },
  ]);
  expect(addonCandidates(stagePackage(tmpDir(), { prebuilt: GOOD }))).toEqual([expect.objectContaining({ kind: "prebuilt" })]);
});

test("no binary at all: NATIVE_ADDON_MISSING names the platform, the folders and the fix", () => {
  const root = stagePackage(tmpDir(), { prebuilt: GOOD, prebuildDir: "sunos-sparc" });
  const e = loadError(root);
  expect(e.code).toBe("NATIVE_ADDON_MISSING");
  expect(e.message).toContain(path.join(root, "prebuilds"));
  expect(e.message).toContain(`${process.platform}-${process.arch}`);
  expect(e.message).toContain("npm rebuild safety-lens");
});

test.each([
  ["corrupted", garbage, /not an ELF shared object \(420 bytes, starting "this is "\)/],
  ["truncated", truncated, /truncated: its section headers end at byte \d+, the file has 4096 bytes/],
  ["wrong-architecture", otherArch, /built for another architecture: it is a 64-bit ELF file for aarch64 \(arm64\), e_machine 183, this process is x64/],
])("a %s prebuilt binary: one NATIVE_ADDON_LOAD_FAILED naming the file, the reason and the fix", (_what, damage, reason) => {
  const root = stagePackage(tmpDir(), { prebuilt: damage(GOOD) });
  const e = loadError(root);
  expect(e.code).toBe("NATIVE_ADDON_LOAD_FAILED");
  expect(e.message).toContain(`${prebuiltPath(root)} (prebuilt for ${HOST}): `);
  expect(e.message).toMatch(reason);
  expect(e.message).toContain("npm rebuild safety-lens --build-from-source");
  expect(e.message).toContain("git, a C++17 compiler, make and Python 3");
});

test("a prebuilt binary needing a newer glibc: dlopen's own message and the glibc it takes", () => {
  const root = stagePackage(tmpDir(), { prebuilt: newerGlibc(GOOD) });
  expect(elfProblem(prebuiltPath(root))).toBeNull(); // structurally sound: dlopen itself refuses it
  const e = loadError(root);
  expect(e.code).toBe("NATIVE_ADDON_LOAD_FAILED");
  expect(e.message).toContain(`version \`GLIBC_2.99' not found (required by ${prebuiltPath(root)})`);
  expect(e.message).toContain("it needs glibc >= 2.34 and libstdc++ from GCC 11 or later");
  expect((e.cause as Error).message).toContain("GLIBC_2.99"); // the loader's error is kept as the cause
});

test("both binaries broken: one error listing both", () => {
  const root = stagePackage(tmpDir(), { built: truncated(GOOD), prebuilt: otherArch(GOOD) });
  const e = loadError(root);
  const lines = e.message.split("\n");
  expect(lines[1]).toMatch(/build[/\\]Release[/\\]safety_lens\.node \(built here\): truncated/);
  expect(lines[2]).toContain(`${prebuiltPath(root)} (prebuilt for ${HOST}): built for another architecture`);
});

// Successful loads run in fresh processes: one process should not load two copies of the addon.
const LOAD = `
  const { loadAddon } = require(${JSON.stringify(LOADER)});
  const r = loadAddon(process.argv[1]);
  console.log(JSON.stringify({ source: r.source, skipped: r.skipped, exports: Object.keys(r.addon).sort() }));`;

test("a broken local build falls back to the prebuilt binary, and says what it skipped", async () => {
  const root = stagePackage(tmpDir(), { built: garbage(), prebuilt: GOOD });
  const r = await nodeJson<{ source: { kind: string; path: string }; skipped: { reason: string }[]; exports: string[] }>(LOAD, [root]);
  expect(r.source).toEqual({ kind: "prebuilt", path: prebuiltPath(root) });
  expect(r.skipped).toEqual([{ source: { kind: "built", path: path.join(root, "build", "Release", "safety_lens.node") }, reason: expect.stringMatching(/^not an ELF/) }]);
  expect(r.exports).toEqual(expect.arrayContaining(["AddonContext", "AddonModel", "loadLibraries"]));
});

test("a good local build is used before a broken prebuilt binary", async () => {
  const root = stagePackage(tmpDir(), { built: GOOD, prebuilt: garbage() });
  const r = await nodeJson<{ source: { kind: string }; skipped: unknown[] }>(LOAD, [root]);
  expect(r.source.kind).toBe("built");
  expect(r.skipped).toEqual([]);
});

test("through the package: loadModel rejects with the BackendError (twice, the same), the process lives on", async () => {
  const root = stagePackage(tmpDir(), { prebuilt: truncated(GOOD) });
  const r = await nodeJson<{ errors: { name: string; code: string; message: string }[]; same: boolean }>(`
    const sl = require(process.argv[1]);
    (async () => {
      const errors = [];
      for (let i = 0; i < 2; i++) {
        try { await sl.loadModel({ threads: 1, gpu: false }); } catch (e) { errors.push(e); }
      }
      console.log(JSON.stringify({ errors: errors.map((e) => ({ name: e.name, code: e.code, message: e.message, isBackend: e instanceof sl.BackendError })), same: errors[0] === errors[1] }));
    })();`, [root]);
  expect(r.errors).toHaveLength(2);
  expect(r.errors[0]).toMatchObject({ name: "BackendError", code: "NATIVE_ADDON_LOAD_FAILED", isBackend: true });
  expect(r.errors[0].message).toContain(`${prebuiltPath(root)} (prebuilt for ${HOST}): truncated`);
  expect(r.same).toBe(true);
});

test("Electron: paths inside app.asar map to app.asar.unpacked when that file exists there", () => {
  const res = path.join(tmpDir(), "resources");
  const inside = path.join(res, "app.asar", "node_modules", "safety-lens", "prebuilds", "x.node");
  expect(unpackedPath(inside)).toBe(inside); // not unpacked: unchanged
  const unpacked = path.join(res, "app.asar.unpacked", "node_modules", "safety-lens", "prebuilds", "x.node");
  fs.mkdirSync(path.dirname(unpacked), { recursive: true });
  fs.writeFileSync(unpacked, "");
  expect(unpackedPath(inside)).toBe(unpacked);
  expect(unpackedPath(unpacked)).toBe(unpacked);
  expect(unpackedPath(path.join(res, "app.asarx", "a"))).toBe(path.join(res, "app.asarx", "a"));
});
