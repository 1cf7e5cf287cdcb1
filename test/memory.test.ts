/**
 * Memory over load/dispose cycles (README, Memory). Each case runs in a child process
 * (test/fixtures/memory-cycles.js) with --expose-gc, so that jest's own heap is not measured.
 *
 * Measured on 2 cores, glibc 2.36 (the README has the full numbers):
 * - 200 cycles of load, capture, generate, embed, evaluate, dispose: malloc'd bytes in use
 *   grow by ~48 KB from cycle 50 to 200 (~110 bytes per iteration come from Node itself:
 *   a loop of bare awaits grows as much). A leaked llama_batch grew them by 16 MB,
 *   leaked samplers by 5 MB: the bound is 512 KB, about 3.5 KB per cycle.
 * - 10 models loaded together and disposed, 6 rounds: RSS after round 6 is within
 *   -2..+8 MB of round 1 with releaseMemoryOnDispose (the default), +115 MB without
 *   (glibc keeps the freed buffers in its per-thread arenas).
 * About 12 s for both.
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";

import { loadModel } from "../src";

const run = promisify(execFile);
const ROOT = path.join(__dirname, "..");
const FIXTURE = path.join(__dirname, "fixtures", "memory-cycles.js");
const MB = 1024 * 1024;

interface Sample {
  rss: number;
  heapUsed: number;
  inUse: number | null;
}

async function cycles(mode: "cycles" | "together", n: number): Promise<Record<string, Sample>> {
  const { stdout } = await run(process.execPath, ["--expose-gc", "--max-semi-space-size=1", FIXTURE, ROOT, mode, String(n)], {
    timeout: 90_000,
  });
  return JSON.parse(stdout.trim());
}

const glibc = process.platform === "linux" && !!(process.report?.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;

describe("memory over load/dispose cycles", () => {
  test("200 load/capture/generate/dispose cycles leak nothing", async () => {
    const r = await cycles("cycles", 200);
    if (glibc) {
      // the allocator's own count of live bytes: a leak shows here whatever the allocator keeps
      expect(r.atN.inUse! - r.at50.inUse!).toBeLessThan(512 * 1024);
    } else {
      expect(r.atN.inUse).toBeNull();
    }
    // the JS wrappers of disposed models are collected
    expect(r.atN.heapUsed - r.at50.heapUsed).toBeLessThan(1 * MB);
    // a gross guard: one leaked context per cycle would be > 20 MB per cycle
    expect(r.atN.rss - r.at50.rss).toBeLessThan(32 * MB);
  });

  test("10 models loaded together and disposed give their memory back", async () => {
    const r = await cycles("together", 6);
    expect(r.atN.rss - r.at1.rss).toBeLessThan(32 * MB);
  });
});

test("releaseMemoryOnDispose must be a boolean", async () => {
  await expect(loadModel({ gpu: false, threads: 1, releaseMemoryOnDispose: "yes" as unknown as boolean })).rejects.toThrow(
    new TypeError("releaseMemoryOnDispose must be a boolean"),
  );
  // off: dispose still frees everything (the allocator keeps the pages)
  const m = await loadModel({ gpu: false, threads: 1, releaseMemoryOnDispose: false });
  await m.capture(["Once upon a time"], { layers: [1] });
  await m.dispose();
  expect(m.isDisposed).toBe(true);
});
