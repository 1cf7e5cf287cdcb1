/**
 * Finds and loads the native addon, the way node-gyp-build does: a binary built here
 * (build/Release/safety_lens.node: `npm install` found no prebuilt binary that loads, or
 * `npm run build:native`), else the prebuilt one for this platform
 * (prebuilds/<platform>-<arch>/safety-lens.glibc.node, made by `prebuildify --napi`).
 *
 * A binary that fails to load (wrong glibc, corrupted file, wrong architecture) is not a
 * crash: the other candidate is tried, and if none loads the caller gets one BackendError
 * (NATIVE_ADDON_LOAD_FAILED) naming each file, the loader's own message and the fix.
 */
import * as fs from "node:fs";
import * as path from "node:path";

import { BackendError } from "../errors";
import { elfProblem } from "./elf";

export type AddonKind = "built" | "prebuilt";

export interface AddonSource {
  /** "built": compiled on this machine (build/Release); "prebuilt": shipped in the package (prebuilds/) */
  kind: AddonKind;
  path: string;
}

export interface LoadedAddon<T> {
  addon: T;
  source: AddonSource;
  /** candidates tried before it that failed to load, with the loader's message */
  skipped: { source: AddonSource; reason: string }[];
}

/** The parts of node-gyp-build used here (it has no type declarations). */
interface NodeGypBuild {
  path(dir: string): string;
  parseTuple(name: string): { name: string; platform: string; architectures: string[] } | undefined;
  matchTuple(platform: string, arch: string): (t: unknown) => boolean;
  compareTuples(a: unknown, b: unknown): number;
  parseTags(file: string): { file: string } | undefined;
  matchTags(runtime: string, abi: string): (t: unknown) => boolean;
  compareTags(runtime: string): (a: unknown, b: unknown) => number;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const gypBuild = require("node-gyp-build") as NodeGypBuild;

const BUILT = path.join("build", "Release", "safety_lens.node");
const SOURCE_BUILD_NEEDS = "git, a C++17 compiler, make and Python 3";
/** glibc that node-llama-cpp's llama.cpp libraries (and the prebuilt addon) need: see scripts/prebuild.js. */
const MIN_GLIBC = "2.34";

/** The installed package's root (this file is dist/core/addon-loader.js). */
export function packageRoot(): string {
  return path.resolve(__dirname, "..", "..");
}

/**
 * Electron: a file inside app.asar that was unpacked (asarUnpack) lives at the same path under
 * app.asar.unpacked. Native code (dlopen, mmap) cannot read inside the archive, so paths handed
 * to it must point there.
 */
export function unpackedPath(p: string): string {
  const marker = `${path.sep}app.asar${path.sep}`;
  const i = p.indexOf(marker);
  if (i < 0) return p;
  const unpacked = `${p.slice(0, i)}${path.sep}app.asar.unpacked${path.sep}${p.slice(i + marker.length)}`;
  return fs.existsSync(unpacked) ? unpacked : p;
}

function runtime(): string {
  return process.versions.electron ? "electron" : "node";
}

function readdir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** node-gyp-build's choice among prebuilds/, ignoring build/ (so it can be the fallback for a broken local build). */
function findPrebuilt(root: string): string | null {
  const tuple = readdir(path.join(root, "prebuilds"))
    .map((n) => gypBuild.parseTuple(n))
    .filter(gypBuild.matchTuple(process.platform, process.arch))
    .sort(gypBuild.compareTuples)[0];
  if (!tuple) return null;
  const dir = path.join(root, "prebuilds", tuple.name);
  const winner = readdir(dir)
    .map((f) => gypBuild.parseTags(f))
    .filter(gypBuild.matchTags(runtime(), process.versions.modules))
    .sort(gypBuild.compareTags(runtime()))[0];
  return winner ? path.join(dir, winner.file) : null;
}

/** The binaries to try, in node-gyp-build's order: built here, then the prebuilt one. */
export function addonCandidates(root = packageRoot()): AddonSource[] {
  const out: AddonSource[] = [];
  let first: string | null = null;
  try {
    first = gypBuild.path(root); // honours SAFETY_LENS_PREBUILD and PREBUILDS_ONLY, like every node-gyp-build user
  } catch {
    // nothing fits: handled below
  }
  if (first) out.push({ kind: path.resolve(first) === path.resolve(root, BUILT) ? "built" : "prebuilt", path: first });
  const pre = findPrebuilt(root);
  if (pre && !out.some((c) => path.resolve(c.path) === path.resolve(pre))) out.push({ kind: "prebuilt", path: pre });
  return out.map((c) => ({ kind: c.kind, path: unpackedPath(path.resolve(c.path)) }));
}

function platformLabel(): string {
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime;
  return `${process.platform}-${process.arch}${glibc ? ` (glibc ${glibc})` : ""}`;
}

function fixFor(failures: { source: AddonSource; reason: string }[]): string {
  if (failures.some((f) => /GLIBC(XX)?_[0-9.]+' not found/.test(f.reason))) {
    return `This system's C/C++ runtime is older than safety-lens supports: it needs glibc >= ${MIN_GLIBC} and libstdc++ from GCC 11 or later ` +
      "(as node-llama-cpp's llama.cpp libraries do; e.g. Debian 12, Ubuntu 22.04, RHEL 9 or newer).";
  }
  const prebuilt = failures.some((f) => f.source.kind === "prebuilt");
  return (prebuilt ? "Build the addon for this machine instead: `npm rebuild safety-lens --build-from-source`" : "Rebuild it: `npm rebuild safety-lens`") +
    ` (it needs ${SOURCE_BUILD_NEEDS}; with npm 11 allow the install script: \`npm install-scripts approve safety-lens\`).`;
}

function describe(source: AddonSource): string {
  return `${source.path} (${source.kind === "built" ? "built here" : `prebuilt for ${path.basename(path.dirname(source.path))}`})`;
}

/**
 * Loads the first candidate that loads. Throws one BackendError: NATIVE_ADDON_MISSING when there
 * is no candidate, NATIVE_ADDON_LOAD_FAILED (every file with its reason, and the fix) when none loads.
 */
export function loadAddon<T>(root = packageRoot()): LoadedAddon<T> {
  const candidates = addonCandidates(root);
  if (candidates.length === 0) {
    throw new BackendError(
      "NATIVE_ADDON_MISSING",
      `The safety-lens native addon is missing: no prebuilt binary in ${path.join(root, "prebuilds")} fits ${platformLabel()} ` +
        `and none was built here (${path.join(root, BUILT)}). Build it: \`npm rebuild safety-lens\` (it needs ${SOURCE_BUILD_NEEDS}; ` +
        "with npm 11 allow the install script: `npm install-scripts approve safety-lens`).",
    );
  }
  const skipped: { source: AddonSource; reason: string }[] = [];
  let cause: unknown;
  for (const source of candidates) {
    try {
      // glibc's dlopen kills the process (SIGBUS) on a truncated file: check the ELF structure first
      const problem = process.platform === "linux" ? elfProblem(source.path) : null;
      if (problem) {
        skipped.push({ source, reason: problem });
        continue;
      }
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(source.path) as T;
      return { addon, source, skipped };
    } catch (e) {
      cause ??= e;
      skipped.push({ source, reason: String((e as Error)?.message ?? e).trim() });
    }
  }
  const lines = skipped.map((f) => `  ${describe(f.source)}: ${f.reason}`).join("\n");
  throw new BackendError(
    "NATIVE_ADDON_LOAD_FAILED",
    `The safety-lens native addon could not be loaded on ${platformLabel()}:\n${lines}\n${fixFor(skipped)}`,
    { cause },
  );
}

let cached: { ok: LoadedAddon<unknown> } | { error: unknown } | undefined;

/** The package's addon, loaded once per process (a failure is remembered too: the same error every time). */
export function packageAddon<T>(): LoadedAddon<T> {
  if (!cached) {
    try {
      cached = { ok: loadAddon<unknown>() };
    } catch (e) {
      cached = { error: e };
    }
  }
  if ("error" in cached) throw cached.error;
  return cached.ok as LoadedAddon<T>;
}
