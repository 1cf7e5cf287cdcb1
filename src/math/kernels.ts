/**
 * Dense double-precision kernels for small networks (row-major): matrix products with register
 * blocking, a Float32-input projection, LayerNorm forward/backward and dropout masks. Each
 * function keeps one element type per argument so V8 keeps its loops monomorphic and fast.
 */
import type { Rng } from "./rng";

// Math functions captured once: inside Jest's vm context every `Math.x` lookup goes through
// the sandbox's global object and costs ~20x more than a call through a local binding.
const { sqrt, min, imul } = Math;

/** LayerNorm's variance epsilon (PyTorch's default). */
export const LN_EPS = 1e-5;

/** T (cols x rows) = W^T for W rows x cols; reuses T when it has the right size. */
export function transposeInto(W: Float64Array, rows: number, cols: number, T: Float64Array): Float64Array {
  const out = T.length === rows * cols ? T : new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = W[r * cols + c];
  return out;
}


let zeroBuf = new Float64Array(0);
/** A zero vector of at least len entries (shared, never written). */
export function ZEROS(len: number): Float64Array {
  if (zeroBuf.length < len) zeroBuf = new Float64Array(len);
  return zeroBuf;
}
/** Y (n x out) = X (n x inD) W^T + b, W out x inD. Two rows x four outputs register blocking. */
export function linFwd(X: Float64Array, n: number, inD: number, W: Float64Array, bias: Float64Array | null, out: number, Y: Float64Array, acc = false): void {
  const b = bias ?? ZEROS(out);
  let r = 0;
  for (; r + 2 <= n; r += 2) {
    const x0 = r * inD;
    const x1 = x0 + inD;
    const y0 = r * out;
    const y1 = y0 + out;
    let o = 0;
    for (; o + 4 <= out; o += 4) {
      const w0 = o * inD;
      const w1 = w0 + inD;
      const w2 = w1 + inD;
      const w3 = w2 + inD;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (let t = 0; t < inD; t++) {
        const p = X[x0 + t];
        const q = X[x1 + t];
        const u0 = W[w0 + t], u1 = W[w1 + t], u2 = W[w2 + t], u3 = W[w3 + t];
        a0 += p * u0; a1 += p * u1; a2 += p * u2; a3 += p * u3;
        c0 += q * u0; c1 += q * u1; c2 += q * u2; c3 += q * u3;
      }
      if (acc) {
        Y[y0 + o] += a0 + b[o]; Y[y0 + o + 1] += a1 + b[o + 1]; Y[y0 + o + 2] += a2 + b[o + 2]; Y[y0 + o + 3] += a3 + b[o + 3];
        Y[y1 + o] += c0 + b[o]; Y[y1 + o + 1] += c1 + b[o + 1]; Y[y1 + o + 2] += c2 + b[o + 2]; Y[y1 + o + 3] += c3 + b[o + 3];
      } else {
        Y[y0 + o] = a0 + b[o]; Y[y0 + o + 1] = a1 + b[o + 1]; Y[y0 + o + 2] = a2 + b[o + 2]; Y[y0 + o + 3] = a3 + b[o + 3];
        Y[y1 + o] = c0 + b[o]; Y[y1 + o + 1] = c1 + b[o + 1]; Y[y1 + o + 2] = c2 + b[o + 2]; Y[y1 + o + 3] = c3 + b[o + 3];
      }
    }
    for (; o < out; o++) {
      const w0 = o * inD;
      let a = 0, c = 0;
      for (let t = 0; t < inD; t++) {
        a += X[x0 + t] * W[w0 + t];
        c += X[x1 + t] * W[w0 + t];
      }
      Y[y0 + o] = (acc ? Y[y0 + o] : 0) + a + b[o];
      Y[y1 + o] = (acc ? Y[y1 + o] : 0) + c + b[o];
    }
  }
  for (; r < n; r++) {
    const x0 = r * inD;
    const y0 = r * out;
    let o = 0;
    for (; o + 4 <= out; o += 4) {
      const w0 = o * inD;
      const w1 = w0 + inD;
      const w2 = w1 + inD;
      const w3 = w2 + inD;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let t = 0; t < inD; t++) {
        const p = X[x0 + t];
        a0 += p * W[w0 + t]; a1 += p * W[w1 + t]; a2 += p * W[w2 + t]; a3 += p * W[w3 + t];
      }
      Y[y0 + o] = (acc ? Y[y0 + o] : 0) + a0 + b[o];
      Y[y0 + o + 1] = (acc ? Y[y0 + o + 1] : 0) + a1 + b[o + 1];
      Y[y0 + o + 2] = (acc ? Y[y0 + o + 2] : 0) + a2 + b[o + 2];
      Y[y0 + o + 3] = (acc ? Y[y0 + o + 3] : 0) + a3 + b[o + 3];
    }
    for (; o < out; o++) {
      const w0 = o * inD;
      let a = 0;
      for (let t = 0; t < inD; t++) a += X[x0 + t] * W[w0 + t];
      Y[y0 + o] = (acc ? Y[y0 + o] : 0) + a + b[o];
    }
  }
}

/**
 * Projection forward on Float32 input rows: Y[yRow + r] = X[xOff + r*d ..] W^T + b for r < n.
 * Rows are taken in chunks of 32 (kept in cache) and, within a chunk, four weight rows at a
 * time against two input rows (register blocking). A separate function from linFwd keeps
 * each monomorphic in V8.
 */
export function projFwd(X: Float32Array, xOff: number, n: number, d: number, W: Float64Array, b: Float64Array, k: number, Y: Float64Array, yRow: number): void {
  const CHUNK = 32;
  for (let c0 = 0; c0 < n; c0 += CHUNK) {
    const c1 = min(n, c0 + CHUNK);
    let o = 0;
    for (; o + 4 <= k; o += 4) {
      const w0 = o * d;
      const w1 = w0 + d;
      const w2 = w1 + d;
      const w3 = w2 + d;
      const b0 = b[o], b1 = b[o + 1], b2 = b[o + 2], b3 = b[o + 3];
      let r = c0;
      for (; r + 2 <= c1; r += 2) {
        const x0 = xOff + r * d;
        const x1 = x0 + d;
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0, e0 = 0, e1 = 0, e2 = 0, e3 = 0;
        for (let t = 0; t < d; t++) {
          const p = X[x0 + t];
          const q = X[x1 + t];
          const u0 = W[w0 + t], u1 = W[w1 + t], u2 = W[w2 + t], u3 = W[w3 + t];
          a0 += p * u0; a1 += p * u1; a2 += p * u2; a3 += p * u3;
          e0 += q * u0; e1 += q * u1; e2 += q * u2; e3 += q * u3;
        }
        const y0 = (yRow + r) * k + o;
        const y1 = y0 + k;
        Y[y0] = a0 + b0; Y[y0 + 1] = a1 + b1; Y[y0 + 2] = a2 + b2; Y[y0 + 3] = a3 + b3;
        Y[y1] = e0 + b0; Y[y1 + 1] = e1 + b1; Y[y1 + 2] = e2 + b2; Y[y1 + 3] = e3 + b3;
      }
      if (r < c1) {
        const x0 = xOff + r * d;
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (let t = 0; t < d; t++) {
          const p = X[x0 + t];
          a0 += p * W[w0 + t]; a1 += p * W[w1 + t]; a2 += p * W[w2 + t]; a3 += p * W[w3 + t];
        }
        const y0 = (yRow + r) * k + o;
        Y[y0] = a0 + b0; Y[y0 + 1] = a1 + b1; Y[y0 + 2] = a2 + b2; Y[y0 + 3] = a3 + b3;
      }
    }
    for (; o < k; o++) {
      const w0 = o * d;
      for (let r = c0; r < c1; r++) {
        const x0 = xOff + r * d;
        let a = 0;
        for (let t = 0; t < d; t++) a += X[x0 + t] * W[w0 + t];
        Y[(yRow + r) * k + o] = a + b[o];
      }
    }
  }
}

/** G (out x inD) += dY^T X, gb += column sums of dY; dY n x out, X n x inD. */
export function linGradW(dY: Float64Array, n: number, out: number, X: Float64Array, inD: number, G: Float64Array, gb: Float64Array): void {
  for (let r = 0; r < n; r++) {
    const y0 = r * out;
    for (let o = 0; o < out; o++) gb[o] += dY[y0 + o];
  }
  let o = 0;
  for (; o + 2 <= out; o += 2) {
    const g0 = o * inD;
    const g1 = g0 + inD;
    let r = 0;
    for (; r + 4 <= n; r += 4) {
      const a0 = dY[r * out + o], a1 = dY[(r + 1) * out + o], a2 = dY[(r + 2) * out + o], a3 = dY[(r + 3) * out + o];
      const b0 = dY[r * out + o + 1], b1 = dY[(r + 1) * out + o + 1], b2 = dY[(r + 2) * out + o + 1], b3 = dY[(r + 3) * out + o + 1];
      const x0 = r * inD, x1 = x0 + inD, x2 = x1 + inD, x3 = x2 + inD;
      for (let t = 0; t < inD; t++) {
        const p0 = X[x0 + t], p1 = X[x1 + t], p2 = X[x2 + t], p3 = X[x3 + t];
        G[g0 + t] += a0 * p0 + a1 * p1 + a2 * p2 + a3 * p3;
        G[g1 + t] += b0 * p0 + b1 * p1 + b2 * p2 + b3 * p3;
      }
    }
    for (; r < n; r++) {
      const a0 = dY[r * out + o], b0 = dY[r * out + o + 1];
      const x0 = r * inD;
      for (let t = 0; t < inD; t++) {
        const p0 = X[x0 + t];
        G[g0 + t] += a0 * p0;
        G[g1 + t] += b0 * p0;
      }
    }
  }
  for (; o < out; o++) {
    const g0 = o * inD;
    for (let r = 0; r < n; r++) {
      const a0 = dY[r * out + o];
      const x0 = r * inD;
      for (let t = 0; t < inD; t++) G[g0 + t] += a0 * X[x0 + t];
    }
  }
}

/**
 * Projection weight gradient on stacked Float32 input rows: G (k x d) += dY^T X, gb += column
 * sums of dY; dY n x k, X n x d. Two outputs x eight rows register blocking.
 */
export function projGradW(dY: Float64Array, n: number, k: number, X: Float32Array, d: number, G: Float64Array, gb: Float64Array): void {
  // chunks of 64 rows stay in cache while every weight-row pair passes over them
  const CHUNK = 64;
  for (let c0 = 0; c0 < n; c0 += CHUNK) {
    const rows = min(CHUNK, n - c0);
    projGradWChunk(dY.subarray(c0 * k, (c0 + rows) * k), rows, k, X.subarray(c0 * d, (c0 + rows) * d), d, G, gb);
  }
}

export function projGradWChunk(dY: Float64Array, n: number, k: number, X: Float32Array, d: number, G: Float64Array, gb: Float64Array): void {
  for (let r = 0; r < n; r++) {
    const y0 = r * k;
    for (let o = 0; o < k; o++) gb[o] += dY[y0 + o];
  }
  let o = 0;
  for (; o + 2 <= k; o += 2) {
    const g0 = o * d;
    const g1 = g0 + d;
    let r = 0;
    for (; r + 8 <= n; r += 8) {
      const y = r * k + o;
      const a0 = dY[y], a1 = dY[y + k], a2 = dY[y + 2 * k], a3 = dY[y + 3 * k];
      const a4 = dY[y + 4 * k], a5 = dY[y + 5 * k], a6 = dY[y + 6 * k], a7 = dY[y + 7 * k];
      const b0 = dY[y + 1], b1 = dY[y + k + 1], b2 = dY[y + 2 * k + 1], b3 = dY[y + 3 * k + 1];
      const b4 = dY[y + 4 * k + 1], b5 = dY[y + 5 * k + 1], b6 = dY[y + 6 * k + 1], b7 = dY[y + 7 * k + 1];
      const x0 = r * d, x1 = x0 + d, x2 = x1 + d, x3 = x2 + d, x4 = x3 + d, x5 = x4 + d, x6 = x5 + d, x7 = x6 + d;
      for (let t = 0; t < d; t++) {
        const p0 = X[x0 + t], p1 = X[x1 + t], p2 = X[x2 + t], p3 = X[x3 + t];
        const p4 = X[x4 + t], p5 = X[x5 + t], p6 = X[x6 + t], p7 = X[x7 + t];
        G[g0 + t] += a0 * p0 + a1 * p1 + a2 * p2 + a3 * p3 + a4 * p4 + a5 * p5 + a6 * p6 + a7 * p7;
        G[g1 + t] += b0 * p0 + b1 * p1 + b2 * p2 + b3 * p3 + b4 * p4 + b5 * p5 + b6 * p6 + b7 * p7;
      }
    }
    for (; r < n; r++) {
      const a0 = dY[r * k + o], b0 = dY[r * k + o + 1];
      const x0 = r * d;
      for (let t = 0; t < d; t++) {
        const p0 = X[x0 + t];
        G[g0 + t] += a0 * p0;
        G[g1 + t] += b0 * p0;
      }
    }
  }
  for (; o < k; o++) {
    const g0 = o * d;
    for (let r = 0; r < n; r++) {
      const a0 = dY[r * k + o];
      const x0 = r * d;
      for (let t = 0; t < d; t++) G[g0 + t] += a0 * X[x0 + t];
    }
  }
}

/** Row-wise LayerNorm of Z (n x k) into Y; keeps xhat and 1/sigma for the backward pass. */
export function lnFwd(Z: Float64Array, n: number, k: number, g: Float64Array, b: Float64Array, Y: Float64Array, xh: Float64Array, rs: Float64Array): void {
  for (let r = 0; r < n; r++) {
    const o = r * k;
    let mu = 0;
    for (let t = 0; t < k; t++) mu += Z[o + t];
    mu /= k;
    let v = 0;
    for (let t = 0; t < k; t++) {
      const e = Z[o + t] - mu;
      v += e * e;
    }
    const s = 1 / sqrt(v / k + LN_EPS);
    rs[r] = s;
    for (let t = 0; t < k; t++) {
      const x = (Z[o + t] - mu) * s;
      xh[o + t] = x;
      Y[o + t] = g[t] * x + b[t];
    }
  }
}

/** LayerNorm backward: dZ = d LN / dZ applied to dY; gg, gb accumulate the gamma/beta gradients. */
export function lnBwd(dY: Float64Array, n: number, k: number, g: Float64Array, xh: Float64Array, rs: Float64Array, gg: Float64Array, gb: Float64Array, dZ: Float64Array): void {
  for (let r = 0; r < n; r++) {
    const o = r * k;
    let m1 = 0;
    let m2 = 0;
    for (let t = 0; t < k; t++) {
      const dy = dY[o + t];
      const x = xh[o + t];
      gg[t] += dy * x;
      gb[t] += dy;
      const dx = dy * g[t];
      m1 += dx;
      m2 += dx * x;
    }
    m1 /= k;
    m2 /= k;
    const s = rs[r];
    for (let t = 0; t < k; t++) dZ[o + t] = s * (dY[o + t] * g[t] - m1 - xh[o + t] * m2);
  }
}

/**
 * Dropout multipliers: 0 with probability p, else 1/(1-p). One draw from rng seeds a local
 * counter-based generator (32-bit state, integer mixing) for the whole mask, so the mask is
 * a deterministic function of the rng's state and the hot loop makes no method calls.
 */
export function fillMask(mask: Float64Array, len: number, p: number, rng: Rng): void {
  const keep = 1 / (1 - p);
  const threshold = p * 4294967296;
  let state = (rng.next() * 4294967296) >>> 0;
  for (let i = 0; i < len; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = imul(z ^ (z >>> 16), 0x21f0aaad);
    z = imul(z ^ (z >>> 15), 0x735a2d97);
    z = (z ^ (z >>> 15)) >>> 0;
    mask[i] = z < threshold ? 0 : keep;
  }
}
