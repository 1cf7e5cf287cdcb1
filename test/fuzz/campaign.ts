/**
 * Runs GGUF mutants through test/fuzz/load-child.js, each in its own process with a timeout, a few
 * at a time, and classifies how each ended.
 */
import { spawn } from "node:child_process";
import { writeFile, unlink } from "node:fs/promises";
import * as path from "node:path";
import type { Mutation } from "./mutate";

const CHILD = path.join(__dirname, "load-child.js");

export type Outcome =
  | { kind: "ok" }
  /** A typed error (SafetyLensError subclass, TypeError or RangeError), with its code or name. */
  | { kind: "typed"; code: string; message: string }
  /** Any other exception reached the caller. */
  | { kind: "untyped"; name: string; message: string }
  | { kind: "crash"; signal: string; stderr: string }
  /** Exited non-zero or printed no result (e.g. out of memory). */
  | { kind: "died"; status: number | null; stderr: string }
  | { kind: "hang"; stderr: string };

export interface MutantResult {
  mutation: Mutation;
  outcome: Outcome;
  ms: number;
}

const TYPED = new Set([
  "ModelLoadError",
  "BackendError",
  "ModelStateError",
  "InputError",
  "DecodeError",
  "AbortError",
  "TypeError",
  "RangeError",
]);

/** Loads one file in a fresh child process. */
export function runChild(file: string, timeoutMs: number, loadOptions: object = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    // The address-space cap keeps a mutant that asks llama.cpp for absurd buffers from taking the
    // machine's memory (the child then sees an allocation failure); where it cannot be set, none.
    const args = [CHILD, file, JSON.stringify(loadOptions)];
    // No gdb backtrace on an abort: the assert line says enough and gdb takes seconds.
    const env = { ...process.env, SAFETY_LENS_LOG: "", GGML_NO_BACKTRACE: "1" };
    const child =
      process.platform === "win32"
        ? spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env })
        : spawn("/bin/sh", ["-c", 'ulimit -v 6291456 2>/dev/null; exec "$0" "$@"', process.execPath, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      stderr += d;
      if (stderr.length > 20000) stderr = stderr.slice(-10000);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      const tail = stderr.slice(-4000);
      if (timedOut) return resolve({ kind: "hang", stderr: tail });
      if (signal) return resolve({ kind: "crash", signal, stderr: tail });
      const line = stdout.trim().split("\n").pop() ?? "";
      let r: { outcome?: string; name?: string; code?: string | null; message?: string } | undefined;
      try {
        r = JSON.parse(line);
      } catch {
        r = undefined;
      }
      if (status !== 0 || !r) return resolve({ kind: "died", status, stderr: tail + stdout.slice(-1000) });
      if (r.outcome === "ok") return resolve({ kind: "ok" });
      const name = r.name ?? "?";
      if (TYPED.has(name)) return resolve({ kind: "typed", code: r.code ?? name, message: r.message ?? "" });
      resolve({ kind: "untyped", name, message: r.message ?? "" });
    });
  });
}

/** Applies each mutation to a copy of `original`, writes it under `dir` and loads it, `parallel` at a time. */
export async function runCampaign(
  original: Buffer,
  mutations: Mutation[],
  opts: { dir: string; parallel: number; timeoutMs: number; onResult?: (r: MutantResult, done: number) => void },
): Promise<MutantResult[]> {
  const results: MutantResult[] = new Array(mutations.length);
  let next = 0;
  let done = 0;
  const worker = async (slot: number) => {
    const file = path.join(opts.dir, `mutant-${slot}.gguf`);
    while (next < mutations.length) {
      const i = next++;
      const m = mutations[i];
      const copy = Buffer.from(original);
      const result = m.apply(copy);
      const buf = Buffer.isBuffer(result) ? result : copy;
      await writeFile(file, buf);
      const t0 = Date.now();
      const outcome = await runChild(file, opts.timeoutMs);
      results[i] = { mutation: m, outcome, ms: Date.now() - t0 };
      opts.onResult?.(results[i], ++done);
    }
    await unlink(file).catch(() => undefined);
  };
  await Promise.all(Array.from({ length: opts.parallel }, (_, s) => worker(s)));
  return results;
}

/** Outcome counts: ok, typed errors by code, and each kind of failure. */
export function summarize(results: MutantResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  const bump = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  for (const { outcome: o } of results) {
    if (o.kind === "typed") bump(`typed ${o.code}`);
    else if (o.kind === "crash") bump(`crash ${o.signal}`);
    else bump(o.kind);
  }
  return counts;
}

export function isFailure(o: Outcome): boolean {
  return o.kind === "crash" || o.kind === "hang" || o.kind === "died" || o.kind === "untyped";
}

/** The stderr line that says why a child aborted (a GGML_ASSERT or similar), if any. */
export function abortReason(stderr: string): string {
  const lines = stderr.split("\n");
  const hit = lines.find((l) => /GGML_ASSERT|GGML_ABORT|error:|fatal|terminate|Assertion/.test(l));
  return (hit ?? lines.filter((l) => l.trim()).slice(-1)[0] ?? "").trim().slice(0, 300);
}
