#!/usr/bin/env node
// Builds the safety-lens native addon from source into build/Release. This is
// the fallback when no prebuilt binary fits (scripts/install.js) and the
// developer's build (`npm run build:native`); scripts/prebuild.js reuses it.
//
// 1. Extracts llama.cpp's public headers (include/, ggml/include/) from the
//    git bundle shipped in node-llama-cpp (llama/gitRelease.bundle) into
//    llama-headers/. Nothing from llama.cpp is ever committed here.
// 2. Runs node-gyp against them. The addon links no llama.cpp library at
//    build time: it loads node-llama-cpp's prebuilt shared libraries at run
//    time (see native/LlamaApi.cpp), so one build serves CPU, CUDA and Vulkan.
"use strict";
const { execFileSync, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const headersDir = path.join(root, "llama-headers"); // outside build/: node-gyp rebuild wipes build/

const INSTALL_HINT =
  "Install them (Debian/Ubuntu: `apt-get install git build-essential python3`; Fedora/RHEL: `dnf install git gcc-c++ make python3`; " +
  "Alpine: `apk add git build-base python3`; macOS: `xcode-select --install`; Windows: Git for Windows, Python 3 and the " +
  "Visual Studio Build Tools with \"Desktop development with C++\") and run `npm rebuild safety-lens`.";

class BuildError extends Error {}

function have(cmd, args = ["--version"]) {
  const r = spawnSync(cmd, args, { stdio: "ignore", shell: process.platform === "win32" });
  return r.status === 0;
}

function findPackageDir(name) {
  for (const base of require.resolve.paths(name) || []) {
    const dir = path.join(base, name);
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
  }
  return null;
}

/** What a source build needs that this machine lacks: names for the message, in the order they are needed. */
function missingTools() {
  const missing = [];
  const stamped = fs.existsSync(path.join(headersDir, ".stamp"));
  if (!stamped && !have("git")) missing.push("git");
  if (process.platform !== "win32") {
    // On Windows node-gyp finds Visual Studio itself and says what is missing.
    const cxx = process.env.CXX;
    if (!(cxx && have(cxx)) && !have("c++") && !have("g++") && !have("clang++")) missing.push("a C++17 compiler (g++ or clang++)");
    if (!have(process.env.MAKE || "make")) missing.push("make");
  }
  const py = process.env.PYTHON || process.env.npm_config_python;
  if (!(py && have(py)) && !have("python3") && !(process.platform === "win32" && (have("py", ["-3", "--version"]) || have("python")))) {
    missing.push("Python 3");
  }
  return missing;
}

/** node-llama-cpp's version and llama.cpp release (the headers and the libraries loaded at run time must match). */
function llamaRelease() {
  const nlc = findPackageDir("node-llama-cpp");
  if (!nlc) return null;
  const read = (f) => JSON.parse(fs.readFileSync(path.join(nlc, f), "utf8"));
  let release = null;
  try {
    release = read("llama/binariesGithubRelease.json").release;
  } catch {
    // older layouts: not fatal, the headers still come from the bundle
  }
  return { nodeLlamaCpp: read("package.json").version, release };
}

/** Extracts llama.cpp's headers from node-llama-cpp's git bundle into llama-headers/ (once per bundle). */
function extractHeaders() {
  const nlc = findPackageDir("node-llama-cpp");
  if (!nlc) throw new BuildError("node-llama-cpp is not installed; run `npm install` in the project first.");
  const bundle = path.join(nlc, "llama", "gitRelease.bundle");
  if (!fs.existsSync(bundle)) throw new BuildError(`node-llama-cpp has no llama/gitRelease.bundle at ${bundle}; reinstall node-llama-cpp.`);
  const version = JSON.parse(fs.readFileSync(path.join(nlc, "package.json"), "utf8")).version;
  const stamp = path.join(headersDir, ".stamp");
  const want = `${version}:${fs.statSync(bundle).size}`;
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === want) return headersDir;
  if (!have("git")) {
    throw new BuildError("building the native addon needs git, to read llama.cpp's headers from node-llama-cpp's gitRelease.bundle.\n" + INSTALL_HINT);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "safety-lens-llama-"));
  try {
    execFileSync("git", ["clone", "--quiet", "--bare", bundle, path.join(tmp, "repo.git")], { stdio: ["ignore", "ignore", "inherit"] });
    fs.rmSync(headersDir, { recursive: true, force: true });
    fs.mkdirSync(headersDir, { recursive: true });
    // the archive sits in the folder it is unpacked in, named relatively: GNU tar on Windows reads "C:\..." as a host
    const tar = path.join(headersDir, "headers.tar");
    execFileSync("git", ["--git-dir", path.join(tmp, "repo.git"), "archive", "--format=tar", "-o", tar, "HEAD", "include", "ggml/include", "LICENSE"],
      { stdio: ["ignore", "ignore", "inherit"] });
    execFileSync("tar", ["-xf", "headers.tar"], { cwd: headersDir, stdio: "inherit" });
    fs.rmSync(tar);
    fs.writeFileSync(stamp, want);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return headersDir;
}

/** binding.gyp as an object (gyp files are Python literals: comments, single quotes and trailing commas allowed). */
function readBindingGyp(dir = root) {
  const text = fs.readFileSync(path.join(dir, "binding.gyp"), "utf8");
  let out = "";
  let quote = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") { out += c + text[++i]; continue; }
      if (c === quote) { out += '"'; quote = null; continue; }
      out += c === '"' ? '\\"' : c;
    } else if (c === "'" || c === '"') {
      quote = c;
      out += '"';
    } else if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else {
      out += c;
    }
  }
  return JSON.parse(out.replace(/,(\s*[}\]])/g, "$1"));
}

/** The addon target of binding.gyp: its sources and include dirs (relative to the project root). */
function addonTarget(dir = root) {
  const target = readBindingGyp(dir).targets.find((t) => t.target_name === "safety_lens");
  if (!target) throw new BuildError("binding.gyp has no target named safety_lens");
  return target;
}

/** The node-gyp entry point: npm's own (set for every npm script), else a local install. */
function nodeGypPath() {
  const gyp = process.env.npm_config_node_gyp;
  if (gyp && fs.existsSync(gyp)) return gyp;
  try {
    return require.resolve("node-gyp/bin/node-gyp.js");
  } catch {
    throw new BuildError("node-gyp was not found: run this through npm (`npm run build:native`, which provides its node-gyp) or `npm install node-gyp`.");
  }
}

/** The running Node's own headers when it has them (official builds and distro packages do), so node-gyp downloads nothing. */
function nodeDir() {
  const dir = process.env.npm_config_nodedir || path.resolve(path.dirname(process.execPath), "..");
  return fs.existsSync(path.join(dir, "include", "node", "node_api.h")) ? dir : null;
}

function buildFromSource({ jobs } = {}) {
  const missing = missingTools();
  if (missing.length) {
    throw new BuildError(`building the native addon from source needs ${missing.join(", ")}, which ${missing.length > 1 ? "are" : "is"} not installed.\n${INSTALL_HINT}`);
  }
  extractHeaders();
  const n = jobs || process.env.JOBS || String(Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length));
  const args = [nodeGypPath(), "rebuild", "--jobs", String(n)];
  const nd = nodeDir();
  if (nd) args.push(`--nodedir=${nd}`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) throw new BuildError("compiling the native addon failed (see the compiler output above).");
  return path.join(root, "build", "Release", "safety_lens.node");
}

module.exports = {
  root, headersDir, INSTALL_HINT, BuildError, have, findPackageDir, missingTools, llamaRelease,
  extractHeaders, readBindingGyp, addonTarget, nodeGypPath, nodeDir, buildFromSource,
};

if (require.main === module) {
  if (process.env.SAFETY_LENS_SKIP_NATIVE === "1") {
    console.log("safety-lens: SAFETY_LENS_SKIP_NATIVE=1, not building the native addon");
    process.exit(0);
  }
  try {
    buildFromSource();
  } catch (e) {
    if (!(e instanceof BuildError)) throw e;
    console.error(`\nsafety-lens: ${e.message}\n`);
    process.exit(1);
  }
}
