#!/usr/bin/env node
// Builds the prebuilt addon binaries shipped in the npm package:
// prebuilds/<platform>-<arch>/safety-lens[.glibc].node, made by `prebuildify --napi` and loaded by node-gyp-build.
// The addon is plain N-API (NAPI_VERSION 8) and loads llama.cpp at run time, so one binary per platform/arch
// serves every Node >= 20 and every Electron.
//
//   node scripts/prebuild.js                 every target this machine can build (stale ones only)
//   node scripts/prebuild.js --target linux-arm64 --force
//   node scripts/prebuild.js --check         build nothing; inspect what is in prebuilds/
//   node scripts/prebuild.js --check --expect linux-x64,darwin-arm64   ... and fail unless these are there
//
// On linux-x64 it builds linux-x64 natively and linux-arm64 with Debian's g++-aarch64-linux-gnu. Each target is
// built in a staging copy under build/ (binding.gyp plus links to its source folders), so the developer's own
// build/Release is left alone. Linux binaries are checked: ELF machine, and the glibc/libstdc++ symbol versions
// they need, which must not exceed those of node-llama-cpp's libraries that the addon loads.
"use strict";
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { parseArgs } = require("node:util");

const native = require("./build-native");

const { root } = native;
const CROSS = {
  // target -> cross toolchain prefix, usable from a linux-x64 host
  "linux-arm64": "aarch64-linux-gnu-",
};
const ELF_MACHINE = { x64: 62, arm64: 183 };
const NLC_PACKAGE = { "linux-x64": "linux-x64", "linux-arm64": "linux-arm64" };

function host() {
  return `${process.platform}-${process.arch}`;
}

/** Targets this machine can build: its own, plus the cross targets whose toolchain is installed. */
function buildableTargets() {
  const out = [host()];
  if (host() === "linux-x64") {
    for (const [t, prefix] of Object.entries(CROSS)) if (native.have(`${prefix}g++`)) out.push(t);
  }
  return out;
}

function outputFile(target) {
  const platform = target.split("-")[0];
  return path.join(root, "prebuilds", target, `safety-lens${platform === "linux" ? ".glibc" : ""}.node`);
}

/** Files whose change makes a prebuilt stale: binding.gyp, the folders of its sources, the headers, the build scripts. */
function inputFiles() {
  const t = native.addonTarget();
  const files = [path.join(root, "binding.gyp"), path.join(native.headersDir, ".stamp"), __filename, require.resolve("./build-native")];
  const dirs = new Set(t.sources.map((s) => path.dirname(path.join(root, s))));
  for (const d of dirs) for (const f of fs.readdirSync(d)) files.push(path.join(d, f));
  return files.filter((f) => fs.existsSync(f));
}

function isStale(target) {
  const out = outputFile(target);
  if (!fs.existsSync(out)) return true;
  const built = fs.statSync(out).mtimeMs;
  return inputFiles().some((f) => fs.statSync(f).mtimeMs > built);
}

/** A copy of the project for one target: binding.gyp, plus links to the folders its sources and include dirs name. */
function stage(target) {
  const dir = path.join(root, "build", "prebuild-stage", target);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(root, "binding.gyp"), path.join(dir, "binding.gyp"));
  const t = native.addonTarget();
  const tops = new Set([...t.sources, ...(t.include_dirs || [])].filter((p) => !p.startsWith("<")).map((p) => p.split(/[\\/]/)[0]));
  for (const top of tops) {
    if (fs.existsSync(path.join(root, top))) fs.symlinkSync(path.join(root, top), path.join(dir, top), "junction");
  }
  return dir;
}

function buildTarget(target, jobs) {
  const [platform, arch] = target.split("-");
  const cwd = stage(target);
  const env = { ...process.env, JOBS: String(jobs) };
  const nd = native.nodeDir();
  if (nd) env.npm_config_nodedir = nd;
  // prebuildify spawns this through a shell on Windows only: a plain path elsewhere (node-gyp.js has a shebang)
  env.PREBUILD_NODE_GYP = process.platform === "win32" ? `"${process.execPath}" "${native.nodeGypPath()}"` : native.nodeGypPath();
  if (target !== host()) {
    const prefix = CROSS[target];
    if (!prefix || host() !== "linux-x64") throw new native.BuildError(`cannot build ${target} on ${host()}`);
    Object.assign(env, { CC: `${prefix}gcc`, CXX: `${prefix}g++`, LINK: `${prefix}g++`, AR: `${prefix}ar`, PREBUILD_STRIP_BIN: `${prefix}strip` });
  }
  const args = [require.resolve("prebuildify/bin.js"), "--napi", "--strip", `--target=${process.versions.node}`, `--arch=${arch}`,
    `--platform=${platform}`, `--name=safety-lens`, `--cwd=${cwd}`, `--out=${root}`];
  if (platform === "linux") args.push("--tag-libc");
  const r = spawnSync(process.execPath, args, { cwd, env, stdio: "inherit", shell: false });
  if (r.status !== 0) throw new native.BuildError(`prebuildify failed for ${target}`);
  fs.rmSync(cwd, { recursive: true, force: true });
  if (!fs.existsSync(outputFile(target))) throw new native.BuildError(`prebuildify did not write ${outputFile(target)}`);
}

/** Symbol versions an ELF file needs, highest per family: { GLIBC: "2.34", GLIBCXX: "3.4.29", ... }. */
function versionNeeds(file) {
  const r = spawnSync("readelf", ["--version-info", "--wide", file], { encoding: "utf8" });
  if (r.status !== 0) return null;
  const top = {};
  for (const m of r.stdout.matchAll(/Name: (GLIBC|GLIBCXX|CXXABI|GCC)_([0-9.]+)/g)) {
    if (!top[m[1]] || compareVersions(m[2], top[m[1]]) > 0) top[m[1]] = m[2];
  }
  return top;
}

function compareVersions(a, b) {
  const x = a.split(".").map(Number);
  const y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
  return 0;
}

function maxNeeds(list) {
  const top = {};
  for (const needs of list) {
    for (const [k, v] of Object.entries(needs || {})) if (!top[k] || compareVersions(v, top[k]) > 0) top[k] = v;
  }
  return top;
}

/** The highest symbol versions among the node-llama-cpp libraries the addon loads for this target (llama, ggml, ggml-base, CPU backends). */
function llamaLibraryNeeds(target) {
  const pkg = NLC_PACKAGE[target];
  const base = pkg && native.findPackageDir(`@node-llama-cpp/${pkg}`);
  if (!base) return null;
  const dir = path.join(base, "bins", pkg);
  const libs = fs.readdirSync(dir).filter((f) => /^lib(llama|ggml)(\.v[0-9.]+|-base|-cpu-.*)?\.so$/.test(f));
  return maxNeeds(libs.map((f) => versionNeeds(path.join(dir, f))));
}

const fmt = (needs) => Object.entries(needs).sort().map(([k, v]) => `${k}_${v}`).join(", ") || "none";

/** Checks a Linux binary: its ELF machine, and that it needs no newer glibc/libstdc++ than llama.cpp's own libraries. */
function inspect(target) {
  const file = outputFile(target);
  const [platform, arch] = target.split("-");
  const line = { target, file: path.relative(root, file), bytes: fs.statSync(file).size };
  if (platform !== "linux") return line;
  const head = Buffer.alloc(20);
  const fd = fs.openSync(file, "r");
  fs.readSync(fd, head, 0, 20, 0);
  fs.closeSync(fd);
  const machine = head.readUInt16LE(18);
  if (head.toString("latin1", 1, 4) !== "ELF" || machine !== ELF_MACHINE[arch]) {
    throw new native.BuildError(`${file} is not an ELF file for ${arch} (e_machine ${machine})`);
  }
  line.needs = versionNeeds(file);
  line.llamaNeeds = llamaLibraryNeeds(target);
  if (line.needs && line.llamaNeeds) {
    for (const k of ["GLIBC", "GLIBCXX", "CXXABI"]) {
      if (line.needs[k] && (!line.llamaNeeds[k] || compareVersions(line.needs[k], line.llamaNeeds[k]) > 0)) {
        throw new native.BuildError(`${file} needs ${k}_${line.needs[k]}, newer than node-llama-cpp's libraries (${k}_${line.llamaNeeds[k] || "none"}): build it on an older system`);
      }
    }
  }
  return line;
}

function main() {
  const { values } = parseArgs({
    options: {
      target: { type: "string", multiple: true },
      force: { type: "boolean" },
      check: { type: "boolean" },
      expect: { type: "string" },
      jobs: { type: "string" },
    },
  });
  const can = buildableTargets();
  const wanted = values.target || can;
  const jobs = Number(values.jobs || process.env.JOBS || 1);
  const results = [];
  if (!values.check) {
    for (const t of wanted) {
      if (!can.includes(t)) {
        const why = CROSS[t] ? `install ${CROSS[t]}g++ (Debian: apt-get install g++-aarch64-linux-gnu)` : "build it on that platform";
        throw new native.BuildError(`cannot build ${t} on ${host()}: ${why}`);
      }
    }
    native.extractHeaders();
    for (const t of wanted) {
      if (!values.force && !isStale(t)) {
        console.log(`safety-lens prebuild: ${t} is up to date`);
        continue;
      }
      const t0 = Date.now();
      console.log(`safety-lens prebuild: building ${t}${t === host() ? "" : " (cross)"}, ${jobs} job(s)`);
      buildTarget(t, jobs);
      results.push({ target: t, seconds: (Date.now() - t0) / 1000 });
    }
    if (!values.target && host() === "linux-x64") {
      for (const t of Object.keys(CROSS)) if (!can.includes(t)) console.log(`safety-lens prebuild: ${t} skipped (install ${CROSS[t]}g++ to build it)`);
    }
  }
  const dir = path.join(root, "prebuilds");
  const present = fs.existsSync(dir) ? fs.readdirSync(dir).filter((t) => fs.existsSync(outputFile(t))) : [];
  // a binary this machine cannot rebuild must not be packed stale (say, arm64 after a change to native/)
  const stale = present.filter((t) => !(values.check ? [] : can).includes(t) && isStale(t));
  if (stale.length) {
    throw new native.BuildError(`${stale.map((t) => path.relative(root, outputFile(t))).join(", ")} ${stale.length > 1 ? "are" : "is"} older than ` +
      "binding.gyp, its sources or llama.cpp's headers. Rebuild " + (stale.length > 1 ? "them" : "it") + " where that is possible, or delete " + (stale.length > 1 ? "them" : "it") + ".");
  }
  for (const t of present) {
    const line = inspect(t);
    const took = results.find((r) => r.target === t);
    console.log(`${line.file}: ${(line.bytes / 1024).toFixed(0)} KiB${took ? `, built in ${took.seconds.toFixed(1)} s` : ""}`);
    if (line.needs) {
      console.log(`  needs ${fmt(line.needs)}`);
      if (line.llamaNeeds) console.log(`  node-llama-cpp's libraries for ${t} need ${fmt(line.llamaNeeds)}`);
    }
  }
  if (present.length === 0) console.log("safety-lens prebuild: prebuilds/ is empty");
  const absent = (values.expect ? values.expect.split(",") : []).filter((t) => !present.includes(t));
  if (absent.length) throw new native.BuildError(`missing prebuilt binaries: ${absent.join(", ")}`);
}

module.exports = { outputFile, versionNeeds, llamaLibraryNeeds, buildableTargets };

if (require.main === module) {
  try {
    main();
  } catch (e) {
    if (!(e instanceof native.BuildError)) throw e;
    console.error(`\nsafety-lens prebuild: ${e.message}\n`);
    process.exit(1);
  }
}
