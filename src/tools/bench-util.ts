/**
 * Timing helpers of the benchmarks: variants alternate within each round, and a comparison is
 * the median of per-round ratios with its spread (timing noise here is about 15% run to run).
 */
import * as fs from "node:fs";

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Seconds per round for each variant, the variants alternating within every round. */
export type Rounds = Record<string, number[]>;

/**
 * Runs every variant once (warm-up), then `rounds` rounds in which each variant runs once,
 * alternating (A B C, then C B A, ...) so drift on a noisy machine falls on all of them alike.
 */
export async function measure(runs: Record<string, () => Promise<unknown>>, rounds: number, log: (m: string) => void): Promise<Rounds> {
  for (const fn of Object.values(runs)) await fn();
  const keys = Object.keys(runs);
  const times: Rounds = Object.fromEntries(keys.map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (const k of r % 2 ? [...keys].reverse() : keys) times[k].push(await timeIt(runs[k]));
    log(`  round ${r + 1}/${rounds}: ${keys.map((k) => `${k} ${times[k][r].toFixed(3)}s`).join(", ")}`);
  }
  return times;
}

/** A per-round ratio: its median and its spread over the rounds. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** The ratio a[i] / b[i] of each round (times of one round run back to back), summarised. */
export function ratioOf(a: readonly number[], b: readonly number[], scale = 1): Spread {
  const xs = a.map((x, i) => (scale * x) / b[i]);
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

export const med = (t: Rounds, k: string) => median(t[k]);


/**
 * This process's peak resident memory in MiB. On Linux, VmHWM of /proc/self/status: the
 * high-water mark of this process's own address space. (getrusage's maxRSS is kept across
 * execve, so a child spawned by a large parent reports the parent's size.) Elsewhere maxRSS.
 */
export function peakRssMiB(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(fs.readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}
