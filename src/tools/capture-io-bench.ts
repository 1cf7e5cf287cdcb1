/**
 * Capture-file I/O benchmark: writes a synthetic capture (rows x tensors x width float32) chunk by
 * chunk through the capture writer, then reads it back by row chunks, or merges shards, and prints
 * throughput and the process's peak RSS as JSON. One mode per process, so that peak RSS is that
 * mode's own.
 *
 *   node dist/tools/capture-io-bench.js write --rows 50000 --tensors 25 --width 896 --dir /tmp/x
 *   node dist/tools/capture-io-bench.js read  --dir /tmp/x
 *   node dist/tools/capture-io-bench.js merge --rows 50000 --tensors 25 --width 896 --dir /tmp/x --shards 2
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { peakRssMiB } from "./bench-util";
import { CaptureReader, mergeCaptureFiles, openCaptureFile, type CaptureLayer } from "../io/capture-file";

interface Args {
  mode: string;
  rows: number;
  tensors: number;
  width: number;
  chunk: number;
  dir: string;
  sync: boolean;
  reuse: boolean;
  shards: number;
}

function args(): Args {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rows: { type: "string", default: "5000" },
      tensors: { type: "string", default: "25" },
      width: { type: "string", default: "896" },
      chunk: { type: "string", default: "256" },
      dir: { type: "string", default: "/tmp/capture-io-bench" },
      "no-sync": { type: "boolean", default: false },
      reuse: { type: "boolean", default: false },
      shards: { type: "string", default: "2" },
    },
  });
  return {
    mode: positionals[0] ?? "write",
    rows: Number(values.rows),
    tensors: Number(values.tensors),
    width: Number(values.width),
    chunk: Number(values.chunk),
    dir: values.dir!,
    sync: !values["no-sync"],
    reuse: values.reuse!,
    shards: Number(values.shards),
  };
}

const mib = (bytes: number) => bytes / 1048576;

/** Writes rows [start, end) of a synthetic capture to `out`; returns seconds spent in the writer. */
async function writeCapture(a: Args, out: string, shard?: { index: number; count: number }): Promise<{ seconds: number; bytes: number }> {
  const layers: CaptureLayer[] = Array.from({ length: a.tensors }, (_, i) => i);
  const w = await openCaptureFile({
    out, layers, width: a.width, rows: a.rows, shard, fingerprint: "bench", pool: "last", sync: a.sync, overwrite: true,
  });
  let seconds = 0;
  let reused: Float32Array[] | null = null;
  for (const [s, e] of w.missingRanges()) {
    for (let r = s; r < e; r += a.chunk) {
      const n = Math.min(e, r + a.chunk) - r;
      // A capture hands over fresh arrays per batch; --reuse keeps one set (the writer's own memory).
      const perLayer: Float32Array[] = a.reuse && reused && reused[0].length === n * a.width ? reused : layers.map(() => new Float32Array(n * a.width));
      if (a.reuse) reused = perLayer;
      perLayer.forEach((arr, l) => {
        arr[0] = r + l; // a marker per chunk; the rest stays as allocated
        arr[arr.length - 1] = -r;
      });
      const t0 = performance.now();
      await w.writeRows(r, perLayer);
      seconds += (performance.now() - t0) / 1000;
    }
  }
  const t0 = performance.now();
  const summary = await w.finish();
  seconds += (performance.now() - t0) / 1000;
  return { seconds, bytes: summary.bytes };
}

async function main(): Promise<void> {
  const a = args();
  const out = join(a.dir, "bench.safetensors");
  const dataBytes = a.rows * a.tensors * a.width * 4;
  if (a.mode === "write") {
    const t0 = performance.now();
    const { seconds, bytes } = await writeCapture(a, out);
    const wall = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({
      mode: "write", rows: a.rows, tensors: a.tensors, width: a.width, chunkRows: a.chunk, sync: a.sync, reuse: a.reuse,
      fileMiB: +mib(bytes).toFixed(1), writerSeconds: +seconds.toFixed(2), wallSeconds: +wall.toFixed(2),
      writeMiBps: +(mib(dataBytes) / seconds).toFixed(1), peakRssMiB: +peakRssMiB().toFixed(1),
    }));
  } else if (a.mode === "read") {
    const reader = await CaptureReader.open(out);
    const t0 = performance.now();
    let bytes = 0;
    for (const layer of reader.info.layers) {
      for await (const c of reader.chunks(layer, { chunkRows: a.chunk })) bytes += c.data.byteLength;
    }
    const seconds = (performance.now() - t0) / 1000;
    await reader.close();
    console.log(JSON.stringify({ mode: "read", MiB: +mib(bytes).toFixed(1), seconds: +seconds.toFixed(2), readMiBps: +(mib(bytes) / seconds).toFixed(1), peakRssMiB: +peakRssMiB().toFixed(1) }));
  } else if (a.mode === "shards") {
    let seconds = 0;
    for (let i = 0; i < a.shards; i++) seconds += (await writeCapture(a, join(a.dir, `shard-${i}.safetensors`), { index: i, count: a.shards })).seconds;
    console.log(JSON.stringify({ mode: "shards", shards: a.shards, writerSeconds: +seconds.toFixed(2), peakRssMiB: +peakRssMiB().toFixed(1) }));
  } else if (a.mode === "merge") {
    const inputs = Array.from({ length: a.shards }, (_, i) => join(a.dir, `shard-${i}.safetensors`));
    const t0 = performance.now();
    const r = await mergeCaptureFiles(inputs, join(a.dir, "merged.safetensors"));
    const seconds = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ mode: "merge", MiB: +mib(r.bytes).toFixed(1), seconds: +seconds.toFixed(2), mergeMiBps: +(mib(r.bytes) / seconds).toFixed(1), peakRssMiB: +peakRssMiB().toFixed(1) }));
    for (const p of inputs) await rm(p, { force: true });
  } else {
    throw new Error(`unknown mode ${a.mode} (write | read | shards | merge)`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
