/**
 * Small dense linear algebra for the probes and the ranker: dot products, axpy,
 * column statistics, the scatter matrix (with a pluggable native kernel),
 * Cholesky, and the logistic function.
 *
 * Matrices are row-major typed arrays. Accumulation is always in double precision
 * (JS numbers); inputs may be Float32Array or Float64Array. Inner loops are
 * unrolled four ways with independent accumulators, which V8 compiles to tight
 * scalar code (there is no SIMD in plain JS, but the independent chains hide the
 * latency of the adds).
 */

export type Vec = Float32Array | Float64Array;

/** A row-major matrix over either float type. */
export interface Mat {
  data: Vec;
  rows: number;
  cols: number;
}

/** A row-major Float32 matrix (the shape of captured features). */
export interface MatF32 {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** sum_{k<n} a[aOff+k] * b[bOff+k]; n defaults to the length of a from aOff. */
export function dot(a: Vec, b: Vec, len?: number, aOff = 0, bOff = 0): number {
  const n = len ?? a.length - aOff;
  let s0 = 0,
    s1 = 0,
    s2 = 0,
    s3 = 0;
  let k = 0;
  const n4 = n - (n & 3);
  for (; k < n4; k += 4) {
    s0 += a[aOff + k] * b[bOff + k];
    s1 += a[aOff + k + 1] * b[bOff + k + 1];
    s2 += a[aOff + k + 2] * b[bOff + k + 2];
    s3 += a[aOff + k + 3] * b[bOff + k + 3];
  }
  for (; k < n; k++) s0 += a[aOff + k] * b[bOff + k];
  return s0 + s1 + s2 + s3;
}

/**
 * sum_{k<n} a[aOff+k] * x[k] over Float32Arrays only: the scoring hot path (one
 * element type, so V8 keeps the loop monomorphic).
 */
export function dotF32(a: Float32Array, aOff: number, x: Float32Array, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < n; k += 4) {
    s0 += a[aOff + k] * x[k];
    s1 += a[aOff + k + 1] * x[k + 1];
    s2 += a[aOff + k + 2] * x[k + 2];
    s3 += a[aOff + k + 3] * x[k + 3];
  }
  for (; k < n; k++) s0 += a[aOff + k] * x[k];
  return s0 + s1 + s2 + s3;
}

/** y[yOff+k] += alpha * x[xOff+k] for k < n (n defaults to y.length - yOff). */
export function axpy(alpha: number, x: Vec, y: Vec, len?: number, xOff = 0, yOff = 0): void {
  const n = len ?? y.length - yOff;
  let k = 0;
  const n4 = n - (n & 3);
  for (; k < n4; k += 4) {
    y[yOff + k] += alpha * x[xOff + k];
    y[yOff + k + 1] += alpha * x[xOff + k + 1];
    y[yOff + k + 2] += alpha * x[xOff + k + 2];
    y[yOff + k + 3] += alpha * x[xOff + k + 3];
  }
  for (; k < n; k++) y[yOff + k] += alpha * x[xOff + k];
}

/** Column means over all rows, or over the given row subset. */
export function colMeans(X: Mat, rows?: Uint32Array | null): Float64Array {
  const { data, cols } = X;
  const m = new Float64Array(cols);
  const n = rows ? rows.length : X.rows;
  for (let k = 0; k < n; k++) {
    const r = rows ? rows[k] : k;
    axpy(1, data, m, cols, r * cols, 0);
  }
  if (n > 0) for (let j = 0; j < cols; j++) m[j] /= n;
  return m;
}

/** Population standard deviations (divide by n) of the columns around `mean`. */
export function colStds(X: Mat, mean: Vec, rows?: Uint32Array | null): Float64Array {
  const { data, cols } = X;
  const s = new Float64Array(cols);
  const n = rows ? rows.length : X.rows;
  for (let k = 0; k < n; k++) {
    const off = (rows ? rows[k] : k) * cols;
    for (let j = 0; j < cols; j++) {
      const t = data[off + j] - mean[j];
      s[j] += t * t;
    }
  }
  for (let j = 0; j < cols; j++) s[j] = n > 0 ? Math.sqrt(s[j] / n) : 0;
  return s;
}

// ---------------------------------------------------------------------------
// Scatter matrix sum_r (x_r - c)(x_r - c)^T
// ---------------------------------------------------------------------------

/**
 * Kernel computing the full symmetric scatter matrix (cols x cols, row-major Float64)
 * sum over the selected rows of (x - center)(x - center)^T. `rows` is the number of
 * rows of X; `rowIndex` (when not null) selects the rows to use.
 */
export type ScatterKernel = (
  X: Float32Array,
  rows: number,
  cols: number,
  center: Float64Array,
  rowIndex: Uint32Array | null,
) => Float64Array;

let scatterKernel: ScatterKernel | null = null;

/** Plug in a faster (e.g. native, multithreaded) scatter kernel; null restores the JS one. */
export function setScatterKernel(fn: ScatterKernel | null): void {
  scatterKernel = fn;
}

/** The currently plugged kernel (null when the JS implementation is used). */
export function getScatterKernel(): ScatterKernel | null {
  return scatterKernel;
}

/**
 * Scatter of the rows of X (or of `rowsSubset`) around `center`:
 * sum_r (x_r - center)(x_r - center)^T, a full symmetric d x d row-major Float64Array.
 * Uses the plugged kernel when there is one, else {@link scatterJs}.
 */
export function scatter(X: MatF32, rowsSubset: Uint32Array | undefined | null, center: Float64Array): Float64Array {
  if (center.length !== X.cols) throw new RangeError(`scatter: center has ${center.length} entries, X has ${X.cols} columns`);
  const idx = rowsSubset ?? null;
  if (scatterKernel) {
    const S = scatterKernel(X.data, X.rows, X.cols, center, idx);
    if (S.length !== X.cols * X.cols) throw new Error(`scatter kernel returned ${S.length} entries, expected ${X.cols * X.cols}`);
    return S;
  }
  return scatterJs(X.data, X.rows, X.cols, center, idx);
}

/** Rows per transposed panel in the JS scatter kernel. */
const PANEL = 64;

/**
 * JS scatter kernel (same contract as {@link ScatterKernel}). Rows are processed in
 * panels of PANEL rows: each panel is centered and transposed into a (d padded to a
 * multiple of 4) x PANEL Float64 buffer, so that every entry (i, j) is a contiguous dot
 * product of two panel rows. The upper triangle is computed in 2 x 4 register tiles
 * (eight independent accumulators, six loads per eight multiply-adds) and mirrored to
 * the lower triangle at the end. About 4-5 s for 20,000 x 896 on one core.
 */
export function scatterJs(
  X: Float32Array,
  rows: number,
  cols: number,
  center: Float64Array,
  rowIndex: Uint32Array | null,
): Float64Array {
  const d = cols;
  const n = rowIndex ? rowIndex.length : rows;
  const out = new Float64Array(d * d);
  if (n === 0 || d === 0) return out;
  const B = PANEL;
  const dp = (d + 3) & ~3; // padded size; padding rows of the panel stay zero
  const S = dp === d ? out : new Float64Array(dp * dp);
  const P = new Float64Array(dp * B);
  for (let start = 0; start < n; start += B) {
    const nb = Math.min(B, n - start);
    // fill panel: P[j*B + r] = X[row_r, j] - center[j]; tail rows of a short last panel stay zero
    if (nb < B) P.fill(0);
    for (let r = 0; r < nb; r++) {
      const row = rowIndex ? rowIndex[start + r] : start + r;
      if (row >= rows) throw new RangeError(`scatter: row index ${row} out of range (${rows} rows)`);
      const off = row * d;
      for (let j = 0; j < d; j++) P[j * B + r] = X[off + j] - center[j];
    }
    for (let i = 0; i < dp; i += 2) {
      const pi0 = i * B;
      const pi1 = pi0 + B;
      for (let j = i & ~3; j < dp; j += 4) {
        const pj0 = j * B;
        const pj1 = pj0 + B;
        const pj2 = pj1 + B;
        const pj3 = pj2 + B;
        let a00 = 0,
          a01 = 0,
          a02 = 0,
          a03 = 0,
          a10 = 0,
          a11 = 0,
          a12 = 0,
          a13 = 0;
        for (let r = 0; r < B; r++) {
          const x0 = P[pi0 + r];
          const x1 = P[pi1 + r];
          const y0 = P[pj0 + r];
          const y1 = P[pj1 + r];
          const y2 = P[pj2 + r];
          const y3 = P[pj3 + r];
          a00 += x0 * y0;
          a01 += x0 * y1;
          a02 += x0 * y2;
          a03 += x0 * y3;
          a10 += x1 * y0;
          a11 += x1 * y1;
          a12 += x1 * y2;
          a13 += x1 * y3;
        }
        const o = i * dp + j;
        S[o] += a00;
        S[o + 1] += a01;
        S[o + 2] += a02;
        S[o + 3] += a03;
        S[o + dp] += a10;
        S[o + dp + 1] += a11;
        S[o + dp + 2] += a12;
        S[o + dp + 3] += a13;
      }
    }
  }
  // copy out the upper triangle (from the padded buffer when padded) and mirror it
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const v = S[i * dp + j];
      out[i * d + j] = v;
      out[j * d + i] = v;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Cholesky (symmetric positive definite), Float64, row-major
// ---------------------------------------------------------------------------

/**
 * In-place Cholesky factorisation A = L L^T of a symmetric positive definite d x d
 * row-major matrix; the lower triangle of A is overwritten by L (the upper triangle is
 * left as it was). Returns false when a pivot is not positive (A not numerically PD).
 */
export function choleskyInPlace(A: Float64Array, d: number): boolean {
  for (let j = 0; j < d; j++) {
    const rj = j * d;
    let s = A[rj + j] - dot(A, A, j, rj, rj);
    if (!(s > 0) || !Number.isFinite(s)) return false;
    const ljj = Math.sqrt(s);
    A[rj + j] = ljj;
    const inv = 1 / ljj;
    for (let i = j + 1; i < d; i++) {
      const ri = i * d;
      A[ri + j] = (A[ri + j] - dot(A, A, j, ri, rj)) * inv;
    }
  }
  return true;
}

/** Solve (L L^T) x = b with L from {@link choleskyInPlace}; returns a new Float64Array. */
export function choleskySolve(L: Float64Array, d: number, b: ArrayLike<number>): Float64Array {
  const x = Float64Array.from(b as ArrayLike<number>);
  // forward: L y = b
  for (let i = 0; i < d; i++) {
    const ri = i * d;
    x[i] = (x[i] - dot(L, x, i, ri, 0)) / L[ri + i];
  }
  // backward: L^T x = y
  for (let i = d - 1; i >= 0; i--) {
    let s = x[i];
    for (let k = i + 1; k < d; k++) s -= L[k * d + i] * x[k];
    x[i] = s / L[i * d + i];
  }
  return x;
}

// ---------------------------------------------------------------------------
// Logistic function and binary cross-entropy
// ---------------------------------------------------------------------------

/** Numerically stable logistic function. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** log(1 + exp(t)) without overflow. */
export function softplus(t: number): number {
  return t > 0 ? t + Math.log1p(Math.exp(-t)) : Math.log1p(Math.exp(t));
}

/** Binary cross-entropy of a logit z against label yi (0/1). */
export function bce(z: number, yi: number): number {
  return yi ? softplus(-z) : softplus(z);
}
