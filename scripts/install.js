#!/usr/bin/env node
// npm install step. Uses the prebuilt addon for this platform (prebuilds/<platform>-<arch>/, node-gyp-build's layout)
// when it loads here; otherwise builds from source (scripts/build-native.js), and when that is impossible says what
// is missing and how to get it. Loading is tested in a child process, as node-gyp-build-test does, so a binary that
// cannot load (wrong glibc, corrupted, wrong architecture) never takes this process down.
//
// `npm install --build-from-source` (or SAFETY_LENS_BUILD_FROM_SOURCE=1) skips the prebuilt binary;
// SAFETY_LENS_SKIP_NATIVE=1 does nothing. The package works without this script when a prebuilt binary fits
// (the loader finds it at run time), so npm 11's install-script policy needs no approval there.
"use strict";
const { spawnSync } = require("node:child_process");
const path = require("node:path");

const native = require("./build-native");

const MIN_GLIBC = [2, 34]; // node-llama-cpp's llama.cpp libraries need it, and the prebuilt addon needs no more

/** The prebuilt binary node-gyp-build picks here (ignoring any build/ folder), or null. */
function prebuilt() {
  process.env.PREBUILDS_ONLY = "1"; // node-gyp-build's own switch, read when it is first required
  try {
    return require("node-gyp-build").path(native.root);
  } catch {
    return null; // nothing fits this platform/arch/libc
  } finally {
    delete process.env.PREBUILDS_ONLY;
  }
}

/** Loads the binary in a fresh process; returns null when it loads, else the loader's message. */
function loadError(file) {
  const r = spawnSync(process.execPath, ["-e", "require(process.argv[1])", file], { encoding: "utf8" });
  if (r.status === 0) return null;
  if (r.signal) {
    let problem = null;
    try {
      problem = require("../dist/core/elf").elfProblem(file); // says why, e.g. truncated (glibc's dlopen dies of SIGBUS)
    } catch {
      // dist/ missing: the signal alone
    }
    return `loading it killed the process (${r.signal})${problem ? `: ${problem}` : ""}`;
  }
  const lines = (r.stderr || "").split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /^Error:/.test(l))?.replace(/^Error:\s*/, "") || lines[0] || `exit code ${r.status}, signal ${r.signal}`;
}

function main() {
  if (process.env.SAFETY_LENS_SKIP_NATIVE === "1") {
    console.log("safety-lens: SAFETY_LENS_SKIP_NATIVE=1, not installing the native addon");
    return;
  }
  const fromSource = process.env.npm_config_build_from_source === "true" || process.env.SAFETY_LENS_BUILD_FROM_SOURCE === "1";
  const glibc = process.report?.getReport()?.header?.glibcVersionRuntime;
  const where = `${process.platform}-${process.arch}${glibc ? `, glibc ${glibc}` : ""}`;
  const [major, minor] = (glibc || "").split(".").map(Number);
  if (glibc && (major < MIN_GLIBC[0] || (major === MIN_GLIBC[0] && minor < MIN_GLIBC[1]))) {
    console.warn(`safety-lens: warning: this system has glibc ${glibc}; llama.cpp's libraries from node-llama-cpp need glibc >= ${MIN_GLIBC.join(".")}, so safety-lens cannot run here`);
  }
  let why = "build from source requested";
  if (!fromSource) {
    const file = prebuilt();
    if (file) {
      const err = loadError(file);
      if (!err) {
        console.log(`safety-lens: using the prebuilt addon ${path.relative(native.root, file)} (${where})`);
        return;
      }
      why = `the prebuilt addon ${path.relative(native.root, file)} does not load here: ${err}`;
    } else {
      why = `no prebuilt addon for ${where}`;
    }
  }
  console.log(`safety-lens: ${why}; building it from source`);
  try {
    native.buildFromSource();
  } catch (e) {
    if (!(e instanceof native.BuildError)) throw e;
    console.error(`\nsafety-lens: ${why}, and ${e.message}\n`);
    process.exit(1);
  }
}

main();
