// Capture files under crashes and full disks: a child process writing a synthetic capture is
// SIGKILLed at random (seeded) moments and at each stage of a chunk and of finish(), then resumed
// until done; the result must equal an uninterrupted run byte for byte. Disk full: an injected
// ENOSPC, and a real one on a small tmpfs (mounted when running as root). Memory: peak RSS of
// 2,000 against 20,000 rows. About 10 s.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, readdir, rm, statfs, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CaptureFileError } from "../src/errors";
import { layerFilePath, openCaptureFile, type CaptureFileOptions } from "../src/io/capture-file";
import { rng } from "./helpers";

// eslint-disable-next-line @typescript-eslint/no-var-requires
const synth = require("./fixtures/capture-synthetic.js") as {
  options: (cfg: object) => CaptureFileOptions;
  run: (cfg: object) => Promise<unknown>;
  writeChunk: (w: unknown, r: number, e: number, cfg: object) => Promise<void>;
};
const CHILD = join(__dirname, "fixtures", "capture-synthetic.js");

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "safety-lens-capcrash-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
const fresh = (name: string) => join(dir, `${name}-${n++}.safetensors`);
const sha = async (p: string) => createHash("sha256").update(await readFile(p)).digest("hex");
const LAYERS = [0, 7, "final"];
const config = (out: string, extra: object = {}) => ({ out, layers: LAYERS, width: 64, rows: 1500, chunk: 16, ...extra });
const filesOf = (cfg: { out: string; split?: boolean }) => (cfg.split ? LAYERS.map((l) => layerFilePath(cfg.out, l as number)) : [cfg.out]);

/** Errors from the fixture come from dist/'s copy of the class: compare by name. */
function expectCaptureError(e: unknown, code: string): CaptureFileError {
  expect(e).toBeInstanceOf(Error);
  expect((e as Error).name).toBe("CaptureFileError");
  expect((e as CaptureFileError).code).toBe(code);
  return e as CaptureFileError;
}


interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Rows done when it opened the file ("ready N"), or -1 when it died before. */
  doneAtStart: number;
}

/**
 * Runs the synthetic capture in a child. With `kill`, SIGKILLs it `ms` after spawn (it may still
 * be starting or opening the file), or `ms` after it reported `chunks` more finished chunks.
 */
function child(cfg: object, kill?: { ms: number; chunks?: number }): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CHILD, JSON.stringify({ ...cfg, reportChunks: kill?.chunks !== undefined })], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    const killIn = (ms: number) => (timer ??= setTimeout(() => p.kill("SIGKILL"), ms));
    if (kill && kill.chunks === undefined) killIn(kill.ms);
    p.stdout.on("data", (d) => {
      stdout += d;
      if (kill?.chunks !== undefined && /^ready /m.test(stdout) && (stdout.match(/^chunk /gm)?.length ?? 0) >= kill.chunks) killIn(kill.ms);
    });
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", reject);
    p.on("close", (code, signal) => {
      clearTimeout(timer);
      const m = /^ready (\d+)$/m.exec(stdout);
      resolve({ code, signal, stdout, stderr, doneAtStart: m ? Number(m[1]) : -1 });
    });
  });
}

async function expectNoLeftovers(out: string): Promise<void> {
  const stem = out.split("/").pop()!.replace(/\.safetensors$/, "");
  const left = (await readdir(dir)).filter((f) => f.startsWith(stem) && /\.(partial|progress\.json|tmp)$/.test(f));
  expect(left).toEqual([]);
}

describe("kill -9", () => {
  test.each([
    ["one file", 20260101, {}],
    ["one file per layer", 777, { split: true }],
  ])("%s: killed at random moments (seed %d), resumed until done, equals an uninterrupted run", async (_name, seed, extra) => {
    const ref = config(fresh("ref"), { ...extra, rows: 1500 });
    const refRun = await child(ref);
    expect(refRun.code).toBe(0);

    // Kills land after a random number of finished chunks (0-10) plus 0-6 ms, i.e. anywhere in a
    // chunk's data writes, fsyncs, progress append or the 2 ms "model" pause; two rounds kill from
    // spawn instead (starting, opening, resuming). 8 rounds of at most 11 chunks cannot reach the
    // 94 chunks of the file, so every round is a kill.
    const cfg = config(fresh("killed"), { ...extra, rows: 1500, delayMs: 2 });
    const random = rng(seed);
    let kills = 0;
    let killsWhileWriting = 0;
    let lastDone = -1;
    const progressSeen: number[] = [];
    for (let round = 0; round < 8; round++) {
      const when = round === 2 || round === 5 ? { ms: Math.floor(random() * 150) } : { chunks: Math.floor(random() * 11), ms: random() * 6 };
      const r = await child(cfg, when);
      expect(r.stderr).toBe("");
      expect(r.signal).toBe("SIGKILL"); // a refusal or crash of our own would show here
      kills++;
      if (r.doneAtStart >= 0) {
        killsWhileWriting++;
        expect(r.doneAtStart).toBeGreaterThanOrEqual(lastDone); // never loses recorded rows
        lastDone = r.doneAtStart;
        progressSeen.push(r.doneAtStart);
      }
    }
    expect(kills).toBe(8);
    expect(killsWhileWriting).toBeGreaterThanOrEqual(6);
    expect(new Set(progressSeen).size).toBeGreaterThanOrEqual(4); // kills landed at different points
    const last = await child(cfg); // idempotent once finished
    expect(last.code).toBe(0);
    for (const [i, f] of filesOf(cfg).entries()) expect(await sha(f)).toBe(await sha(filesOf(ref)[i]));
    await expectNoLeftovers(cfg.out);
    // eslint-disable-next-line no-console
    console.log(`kill -9 (${_name}): ${kills} kills, ${killsWhileWriting} while writing, rows done at restarts: ${progressSeen.join(", ")}`);
  });

  describe("at each stage", () => {
    // One uninterrupted reference per mode.
    const refs: Record<string, string[]> = {};
    beforeAll(async () => {
      for (const split of [false, true]) {
        const ref = config(fresh("sref"), { split, rows: 200 });
        expect((await child(ref)).code).toBe(0);
        refs[String(split)] = filesOf(ref);
      }
    });

    test.each([
      ["created", 1, {}],
      ["data-written", 3, {}],
      ["progress-written", 4, {}],
      ["headers-written", 1, {}],
      ["renamed", 1, {}],
      ["data-written", 2, { split: true }],
      ["headers-written", 1, { split: true }],
      ["file-renamed", 1, { split: true }], // one file renamed, two still .partial
      ["file-renamed", 2, { split: true }],
      ["renamed", 1, { split: true }],
    ])("killed at stage %s (#%d) %j, then resumed: byte-identical", async (stage, nth, extra: { split?: boolean }) => {
      const cfg = config(fresh("stage"), { ...extra, rows: 200 });
      const killed = await child({ ...cfg, killAt: { stage, nth } });
      expect(killed.signal).toBe("SIGKILL");
      const resumed = await child(cfg);
      expect(resumed.stderr).toBe("");
      expect(resumed.code).toBe(0);
      const ref = refs[String(extra.split ?? false)];
      for (const [i, f] of filesOf(cfg).entries()) expect(await sha(f)).toBe(await sha(ref[i]));
      await expectNoLeftovers(cfg.out);
    });
  });
});

describe("disk full", () => {
  function enospc(): NodeJS.ErrnoException {
    return Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", errno: -28, syscall: "write" });
  }

  test("an injected ENOSPC is a DISK_FULL error that keeps the rows; the same writer or a resumed one continues", async () => {
    const ref = config(fresh("dref"), { rows: 300 });
    await synth.run(ref);
    for (const how of ["same writer", "resume"]) {
      const cfg = config(fresh("dfull"), { rows: 300 });
      let full = true;
      let writes = 0;
      const hooks = {
        beforeWrite: () => {
          if (full && ++writes > 40) throw enospc();
        },
      };
      const err = await synth.run({ ...cfg, hooks }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const e = expectCaptureError(err, "DISK_FULL");
      expect(e.file).toBe(`${cfg.out}.partial`);
      expect(e.message).toMatch(/disk full \(ENOSPC\) while writing (skipped )?rows (from )?\d+(-\d+)?; the \d+ of 300 rows completed before are kept\. Free some space and resume \(--resume\) to continue from row \d+/);
      expect((e.cause as NodeJS.ErrnoException).code).toBe("ENOSPC");
      full = false;
      if (how === "resume") {
        await synth.run(cfg);
      } else {
        // The writer that failed stays usable: retry the failed chunk, then go on.
        writes = 0;
        full = true;
        const w = await openCaptureFile({ ...synth.options(cfg), overwrite: true, resume: false, hooks });
        let failures = 0;
        for (let r = 0; r < 300; r += 16) {
          for (;;) {
            try {
              await synth.writeChunk(w, r, Math.min(300, r + 16), cfg);
              break;
            } catch (e2) {
              expect((e2 as CaptureFileError).code).toBe("DISK_FULL");
              failures++;
              full = false; // space was freed
            }
          }
        }
        expect(failures).toBe(1);
        await w.finish({ note: "synthetic" });
      }
      expect(await sha(cfg.out)).toBe(await sha(ref.out));
    }
  });

  const canMount =
    process.platform === "linux" &&
    process.getuid?.() === 0 &&
    spawnSync("sh", ["-c", "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d; r=$?; rmdir $d; exit $r"]).status === 0;

  (canMount ? test : test.skip)("a real ENOSPC on a small tmpfs: refused up front when it cannot fit, DISK_FULL mid-run, resumed after space is freed", async () => {
    const mnt = join(dir, "tmpfs");
    await mkdir(mnt);
    expect(spawnSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt]).status).toBe(0);
    try {
      const ref = config(fresh("tref"), { rows: 1500 });
      await synth.run(ref);
      const cfg = config(join(mnt, "acts.safetensors"), { rows: 1500 });
      const size = (await readFile(ref.out)).length; // 1.2 MB
      // Up front: too little room for the file.
      const filler = join(mnt, "filler");
      const free = async () => {
        const s = await statfs(mnt);
        return s.bavail * s.bsize;
      };
      await writeFile(filler, Buffer.alloc((await free()) - size + 200_000));
      const early = await synth.run(cfg).then(() => undefined, (e: unknown) => e);
      expectCaptureError(early, "DISK_FULL");
      expect((early as CaptureFileError).message).toMatch(/needs 1\.\d MB more but .*tmpfs has \d+ kB free; free some space/);
      expect(await readdir(mnt)).toEqual(["filler"]);
      // Mid-run: room for the sparse file at start, filled up by someone else while it runs.
      await rm(filler);
      const w = await openCaptureFile(synth.options(cfg));
      await w.close();
      await writeFile(filler, Buffer.alloc((await free()) - 500_000));
      const mid = await synth.run({ ...cfg, checkFreeSpace: false }).then(() => undefined, (e: unknown) => e);
      const opts = synth.options(cfg);
      expectCaptureError(mid, "DISK_FULL");
      expect((mid as CaptureFileError).message).toContain("disk full (ENOSPC)");
      expect((mid as CaptureFileError).message).toContain("resume (--resume) to continue");
      const doneBefore = await openCaptureFile({ ...opts, checkFreeSpace: false });
      expect(doneBefore.progress.done).toBeGreaterThan(100);
      expect(doneBefore.progress.complete).toBe(false);
      await doneBefore.close();
      await rm(filler);
      await synth.run(cfg);
      expect(await sha(cfg.out)).toBe(await sha(ref.out));
    } finally {
      spawnSync("umount", [mnt]);
    }
  });
});

test("memory stays flat: peak RSS writing 40,000 rows vs 4,000 (4 layers x 256 floats: 164 MB vs 16 MB)", async () => {
  const rss: number[] = [];
  for (const rows of [4_000, 40_000]) {
    // lean: no per-row ids or token counts (the header's O(rows) metadata); reuse: the caller's
    // chunk arrays are reused, so that garbage waiting for the GC does not blur the writer's own use.
    // No fsync: page cache is not RSS, and the test runs faster.
    const r = await child({ out: fresh("mem"), layers: [0, 1, 2, 3], width: 256, rows, chunk: 128, lean: true, reuse: true, sync: false });
    expect(r.code).toBe(0);
    rss.push(JSON.parse(/^done (.*)$/m.exec(r.stdout)![1]).maxRSS / 1024);
  }
  // eslint-disable-next-line no-console
  console.log(`peak RSS: ${rss[0].toFixed(1)} MB for 4,000 rows, ${rss[1].toFixed(1)} MB for 40,000 rows`);
  expect(rss[1] - rss[0]).toBeLessThan(12);
});
