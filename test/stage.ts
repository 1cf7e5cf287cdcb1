/**
 * Staged copies of the package for the addon-loading tests: package.json and dist/ copied (the loader finds the
 * package root from its own location), node_modules and models linked, and chosen addon files under build/Release
 * and prebuilds/.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";

import { addonCandidates } from "../src/core/addon-loader";

export const ROOT = path.join(__dirname, "..");
export const PREBUILT_NAME = "safety-lens.glibc.node";
export const HOST = `${process.platform}-${process.arch}`;

const run = promisify(execFile);

/** An addon binary that loads here: the one this checkout uses (built here, or prebuilt). */
export function goodAddon(): string {
  const c = addonCandidates(ROOT)[0];
  if (!c) throw new Error("no addon in this checkout: run npm install first");
  return c.path;
}

export interface StageOptions {
  /** contents of build/Release/safety_lens.node */
  built?: Buffer;
  /** contents of prebuilds/<prebuildDir>/safety-lens.glibc.node */
  prebuilt?: Buffer;
  prebuildDir?: string;
}

export function stagePackage(dir: string, opts: StageOptions): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(ROOT, "package.json"), path.join(dir, "package.json"));
  fs.cpSync(path.join(ROOT, "dist"), path.join(dir, "dist"), { recursive: true, filter: (f) => !f.endsWith(".map") });
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  fs.symlinkSync(path.join(ROOT, "models"), path.join(dir, "models"));
  if (opts.built) {
    fs.mkdirSync(path.join(dir, "build", "Release"), { recursive: true });
    fs.writeFileSync(path.join(dir, "build", "Release", "safety_lens.node"), opts.built);
  }
  if (opts.prebuilt) {
    fs.mkdirSync(path.join(dir, "prebuilds", opts.prebuildDir ?? HOST), { recursive: true });
    fs.writeFileSync(path.join(dir, "prebuilds", opts.prebuildDir ?? HOST, PREBUILT_NAME), opts.prebuilt);
  }
  return dir;
}

/** Runs a script in a fresh Node process; stdout parsed as JSON. */
export async function nodeJson<T = Record<string, unknown>>(script: string, args: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<T> {
  const { stdout } = await run(process.execPath, ["-e", script, ...args], { env, maxBuffer: 16 << 20 });
  return JSON.parse(stdout) as T;
}

// Damaged binaries, each made from a good one.

/** Not a shared object at all. */
export const garbage = (): Buffer => Buffer.from("this is not an addon\n".repeat(20));

/** The first 4 KiB only (an interrupted download): glibc's dlopen would die of SIGBUS on it. */
export const truncated = (good: Buffer): Buffer => good.subarray(0, 4096);

/** The same binary marked as aarch64 (x64 host) or x86-64 (any other host): another architecture's file. */
export function otherArch(good: Buffer): Buffer {
  const b = Buffer.from(good);
  b.writeUInt16LE(process.arch === "x64" ? 183 : 62, 18);
  return b;
}

/** The same binary requiring glibc symbol versions that do not exist yet (what an older system sees). */
export function newerGlibc(good: Buffer): Buffer {
  const text = good.toString("latin1");
  const b = Buffer.from(good);
  let n = 0;
  for (const m of text.matchAll(/GLIBC_2\.[0-9]{2}\0/g)) {
    b.write("GLIBC_2.99", m.index!, "latin1");
    n++;
  }
  if (n === 0) throw new Error("the addon has no GLIBC_2.NN reference to rewrite");
  return b;
}
