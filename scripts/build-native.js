#!/usr/bin/env node
// Builds the safety-lens native addon.
//
// 1. Extracts llama.cpp's public headers (include/, ggml/include/) from the
//    git bundle shipped in node-llama-cpp (llama/gitRelease.bundle) into
//    build/llama-headers. Nothing from llama.cpp is ever committed here.
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

function fail(msg) {
  console.error(`\nsafety-lens: ${msg}\n`);
  process.exit(1);
}

function have(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: "ignore" });
  return r.status === 0;
}

function findPackageDir(name) {
  for (const base of require.resolve.paths(name) || []) {
    const dir = path.join(base, name);
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
  }
  return null;
}

function extractHeaders() {
  const nlc = findPackageDir("node-llama-cpp");
  if (!nlc) fail("node-llama-cpp is not installed; run `npm install` in the project first.");
  const bundle = path.join(nlc, "llama", "gitRelease.bundle");
  if (!fs.existsSync(bundle)) fail(`node-llama-cpp has no llama/gitRelease.bundle at ${bundle}; reinstall node-llama-cpp.`);
  const version = JSON.parse(fs.readFileSync(path.join(nlc, "package.json"), "utf8")).version;
  const stamp = path.join(headersDir, ".stamp");
  const want = `${version}:${fs.statSync(bundle).size}`;
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === want) return;
  if (!have("git", ["--version"])) {
    fail("building the native addon needs git, to read llama.cpp's headers from node-llama-cpp's gitRelease.bundle.\n" +
      "Install it (Debian/Ubuntu: `apt-get install git`; macOS: `xcode-select --install`; Windows: Git for Windows) and run `npm install` again.");
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "safety-lens-llama-"));
  try {
    execFileSync("git", ["clone", "--quiet", "--bare", bundle, path.join(tmp, "repo.git")], { stdio: ["ignore", "ignore", "inherit"] });
    const tar = path.join(tmp, "headers.tar");
    execFileSync("git", ["--git-dir", path.join(tmp, "repo.git"), "archive", "--format=tar", "-o", tar, "HEAD", "include", "ggml/include", "LICENSE"],
      { stdio: ["ignore", "ignore", "inherit"] });
    fs.rmSync(headersDir, { recursive: true, force: true });
    fs.mkdirSync(headersDir, { recursive: true });
    execFileSync("tar", ["-xf", tar, "-C", headersDir], { stdio: "inherit" });
    fs.writeFileSync(stamp, want);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function checkCompiler() {
  if (process.platform === "win32") return; // node-gyp finds Visual Studio itself and says what is missing
  const cxx = process.env.CXX || "c++";
  if (!have(cxx, ["--version"]) && !have("g++", ["--version"]) && !have("clang++", ["--version"])) {
    fail("building the native addon needs a C++17 compiler and make.\n" +
      "Install them (Debian/Ubuntu: `apt-get install build-essential python3`; macOS: `xcode-select --install`) and run `npm install` again.");
  }
}

function runNodeGyp() {
  let gyp = process.env.npm_config_node_gyp;
  if (!gyp || !fs.existsSync(gyp)) {
    try {
      gyp = require.resolve("node-gyp/bin/node-gyp.js");
    } catch {
      fail("node-gyp was not found; run `npm install` again.");
    }
  }
  const jobs = String(Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length));
  const args = [gyp, "rebuild", "--jobs", jobs];
  // Build against the headers of the running Node when it has them (official
  // builds and distro packages do), so node-gyp downloads nothing.
  const nodeDir = process.env.npm_config_nodedir || path.resolve(path.dirname(process.execPath), "..");
  if (fs.existsSync(path.join(nodeDir, "include", "node", "node_api.h"))) args.push(`--nodedir=${nodeDir}`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) fail("compiling the native addon failed (see the compiler output above).");
}

if (process.env.SAFETY_LENS_SKIP_NATIVE === "1") {
  console.log("safety-lens: SAFETY_LENS_SKIP_NATIVE=1, not building the native addon");
  process.exit(0);
}
checkCompiler();
extractHeaders();
runNodeGyp();
