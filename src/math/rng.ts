/** Seeded randomness: a small deterministic PRNG and the stratified split built on it. */

/**
 * Small deterministic PRNG (a 32-bit counter passed through an integer hash, in the
 * spirit of splitmix), with Gaussian draws by Box-Muller. Same seed, same stream.
 */
export class Rng {
  private state: number;
  private spare: number | null = null;
  constructor(seed = 1) {
    this.state = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    z = (z ^ (z >>> 15)) >>> 0;
    return z / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Standard normal. */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = this.next();
    while (u <= 1e-300) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  /** In-place Fisher-Yates shuffle. */
  shuffle<T extends { length: number; [i: number]: number }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

/**
 * Stratified split of 0..n-1: from each class (shuffled by the seed) the first
 * round(fraction * n_c) rows go to `second`, the rest to `first`. Both sorted.
 */
export function stratifiedSplit(y: Uint8Array, fraction: number, seed = 1): { first: Uint32Array; second: Uint32Array } {
  const rng = new Rng(seed);
  const first: number[] = [];
  const second: number[] = [];
  for (const c of [0, 1]) {
    const idx: number[] = [];
    for (let i = 0; i < y.length; i++) if ((y[i] ? 1 : 0) === c) idx.push(i);
    rng.shuffle(idx);
    const k = Math.round(fraction * idx.length);
    for (let t = 0; t < idx.length; t++) (t < k ? second : first).push(idx[t]);
  }
  const asc = (a: number, b: number) => a - b;
  return { first: Uint32Array.from(first.sort(asc)), second: Uint32Array.from(second.sort(asc)) };
}
