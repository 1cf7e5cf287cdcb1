/**
 * Safety Representation Ranking (SRR, arXiv 2505.15710): the ranker network.
 *
 * One list = an instruction's hidden state u (d) and m candidate hidden states
 * v_1..v_m (d each). A shared linear projection P (d -> k) maps every one of them
 * into a k-wide sequence X = [Pu, Pv_1, ..., Pv_m] (no positional encoding, so the
 * candidates are permutation-equivariant), one post-LN Transformer encoder layer
 * (PyTorch nn.TransformerEncoderLayer semantics: MHA, dropout, residual, LayerNorm,
 * ReLU feed-forward, dropout, residual, LayerNorm) maps X to Y, and candidate i is
 * scored by s_i = cos(Y_0, Y_i). p = softmax(s / tau) over the candidates; the
 * training loss is KL(q || p) with q uniform over the safe candidates (listwise).
 * The "lite" ablation drops the encoder: s_i = cos(Pu, Pv_i).
 *
 * Everything is plain TypeScript with hand-written backward passes (dense kernels in
 * src/math/kernels.ts, training in ./train.ts). Parameters are
 * stored as Float32Array blocks; every computation (activations, gradients, loss,
 * optimiser state) runs in double precision. Each list is processed on its own
 * (sequence length m + 1), so there is never any padding: a batch of lists of
 * different lengths gives exactly the scores of the lists scored one by one, and
 * the attention key mask of a padded implementation is not needed.
 *
 * Dropout (training only, seeded) sits where PyTorch puts it: on the attention
 * probabilities, on the attention output before the first residual, after the
 * ReLU, and on the feed-forward output before the second residual.
 *
 * Cost: the projection (rows x d x k per pass) dominates at LLM widths; during training
 * the input rows of a mini-batch are stacked so that it runs as one forward product and
 * one weight-gradient product (its input gradient is never needed).
 */
import { fillMask, linFwd, linGradW, lnBwd, lnFwd, projFwd, projGradW, transposeInto } from "../math/kernels";
import { Rng } from "../math/rng";

// Math functions captured once: inside Jest's vm context every `Math.x` lookup goes through
// the sandbox's global object and costs ~20x more than a call through a local binding.
const { exp, log, sqrt, max, min } = Math;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

export interface RankerConfig {
  /** Hidden-state width of the LLM (input width). */
  d: number;
  /** Projection width k (model width of the encoder). */
  width: number;
  /** Attention heads (must divide width). */
  heads: number;
  /** Feed-forward width. */
  ff: number;
  /** Softmax temperature over the cosine scores. */
  tau: number;
  /** Dropout probability in training. */
  dropout: number;
  /** Lite ablation: no encoder layer, s_i = cos(Pu, Pv_i). */
  lite: boolean;
}

/** Named parameter blocks (row-major matrices, out x in). Encoder blocks are absent when lite. */
export interface RankerParams {
  [name: string]: Float32Array;
}

export interface RankList {
  /** Instruction hidden state (d). */
  u: Float32Array;
  /** Candidate hidden states, m x d row-major. */
  v: Float32Array;
  /** Number of candidates. */
  m: number;
  /** 1 = safe, 0 = unsafe (m entries); needed for training and for the loss. */
  safe?: Uint8Array;
}

export interface RankerLossOptions {
  /** Training mode: dropout on (when config.dropout > 0). */
  train?: boolean;
  /** Dropout randomness (train mode); a fresh Rng(1) when omitted. */
  rng?: Rng;
}

export const DEFAULT_RANKER_CONFIG: Omit<RankerConfig, "d" | "ff"> = {
  width: 64,
  heads: 4,
  tau: 0.1,
  dropout: 0.1,
  lite: false,
};

const COS_EPS = 1e-8;

/** Parameter block names in storage order, with their shapes [rows, cols] (cols 1 for vectors). */
export function rankerBlockShapes(config: RankerConfig): Array<[string, number, number]> {
  const { d, width: k, ff } = config;
  const out: Array<[string, number, number]> = [
    ["proj.w", k, d],
    ["proj.b", k, 1],
  ];
  if (!config.lite) {
    out.push(
      ["attn.wq", k, k],
      ["attn.bq", k, 1],
      ["attn.wk", k, k],
      ["attn.bk", k, 1],
      ["attn.wv", k, k],
      ["attn.bv", k, 1],
      ["attn.wo", k, k],
      ["attn.bo", k, 1],
      ["ln1.g", k, 1],
      ["ln1.b", k, 1],
      ["ff.w1", ff, k],
      ["ff.b1", ff, 1],
      ["ff.w2", k, ff],
      ["ff.b2", k, 1],
      ["ln2.g", k, 1],
      ["ln2.b", k, 1],
    );
  }
  return out;
}


function resolveConfig(config: Partial<RankerConfig> & { d: number }): RankerConfig {
  const width = config.width ?? DEFAULT_RANKER_CONFIG.width;
  const c: RankerConfig = {
    d: config.d,
    width,
    heads: config.heads ?? DEFAULT_RANKER_CONFIG.heads,
    ff: config.ff ?? 2 * width,
    tau: config.tau ?? DEFAULT_RANKER_CONFIG.tau,
    dropout: config.dropout ?? DEFAULT_RANKER_CONFIG.dropout,
    lite: config.lite ?? DEFAULT_RANKER_CONFIG.lite,
  };
  checkConfig(c);
  return c;
}

export function checkConfig(c: RankerConfig): void {
  const posInt = (x: number) => Number.isInteger(x) && x > 0;
  if (!posInt(c.d)) throw new RangeError(`ranker: d must be a positive integer, got ${c.d}`);
  if (!posInt(c.width)) throw new RangeError(`ranker: width must be a positive integer, got ${c.width}`);
  if (!c.lite) {
    if (!posInt(c.heads) || c.width % c.heads !== 0)
      throw new RangeError(`ranker: heads (${c.heads}) must be a positive divisor of width (${c.width})`);
    if (!posInt(c.ff)) throw new RangeError(`ranker: ff must be a positive integer, got ${c.ff}`);
  }
  if (!(c.tau > 0)) throw new RangeError(`ranker: tau must be > 0, got ${c.tau}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new RangeError(`ranker: dropout must be in [0, 1), got ${c.dropout}`);
}

export function checkParams(c: RankerConfig, params: RankerParams): void {
  for (const [name, r, cols] of rankerBlockShapes(c)) {
    const b = params[name];
    if (!b) throw new RangeError(`ranker: parameter block ${name} missing`);
    if (b.length !== r * cols) throw new RangeError(`ranker: parameter block ${name} has ${b.length} entries, need ${r * cols}`);
  }
}

export function checkList(c: RankerConfig, list: RankList, needLabels: boolean): void {
  const { d } = c;
  if (!Number.isInteger(list.m) || list.m < 1) throw new RangeError(`ranker: list needs m >= 1 candidates, got ${list.m}`);
  if (list.u.length !== d) throw new RangeError(`ranker: u has ${list.u.length} entries, need d = ${d}`);
  if (list.v.length < list.m * d) throw new RangeError(`ranker: v has ${list.v.length} entries, need m * d = ${list.m * d}`);
  if (needLabels && !list.safe) throw new RangeError("ranker: list needs safe labels (m entries) for the loss");
  if (list.safe && list.safe.length < list.m)
    throw new RangeError(`ranker: safe has ${list.safe.length} entries, need m = ${list.m}`);
}

// ---------------------------------------------------------------------------
// Initialisation
// ---------------------------------------------------------------------------

/** Fresh parameters: Glorot-uniform matrices, zero biases, LayerNorm gamma 1 / beta 0. */
export function initRanker(
  config: Partial<RankerConfig> & { d: number },
  seed = 1,
): { config: RankerConfig; params: RankerParams } {
  const c = resolveConfig(config);
  const rng = new Rng(seed);
  const params: RankerParams = {};
  for (const [name, rows, cols] of rankerBlockShapes(c)) {
    const b = new Float32Array(rows * cols);
    if (cols > 1) {
      const limit = sqrt(6 / (rows + cols));
      for (let i = 0; i < b.length; i++) b[i] = (2 * rng.next() - 1) * limit;
    } else if (name.endsWith(".g")) {
      b.fill(1);
    }
    params[name] = b;
  }
  return { config: c, params };
}

// ---------------------------------------------------------------------------
// Internal double-precision parameter view
// ---------------------------------------------------------------------------

export interface P64 {
  pw: Float64Array;
  pb: Float64Array;
  wq: Float64Array;
  bq: Float64Array;
  wk: Float64Array;
  bk: Float64Array;
  wv: Float64Array;
  bv: Float64Array;
  wo: Float64Array;
  bo: Float64Array;
  g1: Float64Array;
  be1: Float64Array;
  w1: Float64Array;
  b1: Float64Array;
  w2: Float64Array;
  b2: Float64Array;
  g2: Float64Array;
  be2: Float64Array;
  // transposed encoder weights (in x out), for the input gradients; filled by refreshTransposes
  wqT: Float64Array;
  wkT: Float64Array;
  wvT: Float64Array;
  woT: Float64Array;
  w1T: Float64Array;
  w2T: Float64Array;
}

export const FIELD_OF: Record<string, keyof P64> = {
  "proj.w": "pw",
  "proj.b": "pb",
  "attn.wq": "wq",
  "attn.bq": "bq",
  "attn.wk": "wk",
  "attn.bk": "bk",
  "attn.wv": "wv",
  "attn.bv": "bv",
  "attn.wo": "wo",
  "attn.bo": "bo",
  "ln1.g": "g1",
  "ln1.b": "be1",
  "ff.w1": "w1",
  "ff.b1": "b1",
  "ff.w2": "w2",
  "ff.b2": "b2",
  "ln2.g": "g2",
  "ln2.b": "be2",
};

const EMPTY = new Float64Array(0);

function emptyP64(): P64 {
  const p = {} as P64;
  for (const f of Object.values(FIELD_OF)) p[f] = EMPTY;
  p.wqT = p.wkT = p.wvT = p.woT = p.w1T = p.w2T = EMPTY;
  return p;
}

/** Double copies of the parameters (zeros when params is null: a gradient accumulator). */
export function toP64(c: RankerConfig, params: RankerParams | null): P64 {
  const p = emptyP64();
  for (const [name, rows, cols] of rankerBlockShapes(c)) {
    const b = new Float64Array(rows * cols);
    if (params) b.set(params[name]);
    p[FIELD_OF[name]] = b;
  }
  return p;
}

export function refreshTransposes(c: RankerConfig, P: P64): void {
  if (c.lite) return;
  const { width: k, ff } = c;
  P.wqT = transposeInto(P.wq, k, k, P.wqT);
  P.wkT = transposeInto(P.wk, k, k, P.wkT);
  P.wvT = transposeInto(P.wv, k, k, P.wvT);
  P.woT = transposeInto(P.wo, k, k, P.woT);
  P.w1T = transposeInto(P.w1, ff, k, P.w1T);
  P.w2T = transposeInto(P.w2, k, ff, P.w2T);
}


// ---------------------------------------------------------------------------
// Workspace (per call, grown to the longest list)
// ---------------------------------------------------------------------------

export class Workspace {
  cap = 0;
  /** Whether the forward pass drew dropout masks (the backward pass applies them). */
  dropOn = false;
  // forward
  x0 = EMPTY; q = EMPTY; kk = EMPTY; vv = EMPTY; att = EMPTY; attM = EMPTY;
  o = EMPTY; ao = EMPTY; m1 = EMPTY; z = EMPTY; x1 = EMPTY; xh1 = EMPTY; rs1 = EMPTY;
  pre = EMPTY; hd = EMPTY; mf = EMPTY; f = EMPTY; m2 = EMPTY; y = EMPTY; xh2 = EMPTY; rs2 = EMPTY;
  s = EMPTY; nrm = EMPTY;
  // backward
  dy = EMPTY; dz = EMPTY; dx1 = EMPTY; dhd = EMPTY; dao = EMPTY; dO = EMPTY;
  dq = EMPTY; dk = EMPTY; dv = EMPTY; dx0 = EMPTY; dA = EMPTY;

  // batch buffers: stacked input rows, their projections and the projections' gradients
  rowCap = 0;
  S = new Float32Array(0);
  X0 = EMPTY;
  dX0 = EMPTY;

  constructor(private readonly c: RankerConfig) {}

  ensureBatch(rows: number): void {
    if (rows <= this.rowCap) return;
    this.rowCap = rows;
    this.S = new Float32Array(rows * this.c.d);
    this.X0 = new Float64Array(rows * this.c.width);
    this.dX0 = new Float64Array(rows * this.c.width);
  }

  ensure(n: number): void {
    if (n <= this.cap) return;
    const { width: k, heads: h, ff, lite } = this.c;
    const F = (len: number) => new Float64Array(len);
    this.cap = n;
    this.x0 = F(n * k);
    this.s = F(n);
    this.nrm = F(n);
    this.dy = F(n * k);
    this.dx0 = F(n * k);
    if (lite) return;
    this.q = F(n * k); this.kk = F(n * k); this.vv = F(n * k);
    this.att = F(h * n * n); this.attM = F(h * n * n);
    this.o = F(n * k); this.ao = F(n * k); this.m1 = F(n * k); this.z = F(n * k);
    this.x1 = F(n * k); this.xh1 = F(n * k); this.rs1 = F(n);
    this.pre = F(n * ff); this.hd = F(n * ff); this.mf = F(n * ff);
    this.f = F(n * k); this.m2 = F(n * k); this.y = F(n * k); this.xh2 = F(n * k); this.rs2 = F(n);
    this.dz = F(n * k); this.dx1 = F(n * k); this.dhd = F(n * ff); this.dao = F(n * k); this.dO = F(n * k);
    this.dq = F(n * k); this.dk = F(n * k); this.dv = F(n * k); this.dA = F(n);
  }
}

// ---------------------------------------------------------------------------
// Forward / backward of one list
// ---------------------------------------------------------------------------

/**
 * Forward pass of one list; fills ws (ws.s[1..m] = cosine scores) and returns the output rows.
 * The projected rows come from `projected` (rows row..row+m of a batch projection) when given.
 */
function forwardList(c: RankerConfig, P: P64, list: RankList, ws: Workspace, rng: Rng | null, projected: Float64Array | null, row: number): Float64Array {
  const { d, width: k } = c;
  const m = list.m;
  const n = m + 1;
  ws.ensure(n);
  const x0 = ws.x0;
  if (projected) {
    x0.set(projected.subarray(row * k, (row + n) * k));
  } else {
    projFwd(list.u, 0, 1, d, P.pw, P.pb, k, x0, 0);
    projFwd(list.v, 0, m, d, P.pw, P.pb, k, x0, 1);
  }
  let Y = x0;
  if (!c.lite) {
    const h = c.heads;
    const dh = k / h;
    const scale = 1 / sqrt(dh);
    const drop = rng !== null && c.dropout > 0;
    const { q, kk, vv, att, attM, o, ao, m1, z, x1, xh1, rs1, pre, hd, mf, f, m2, y, xh2, rs2 } = ws;
    linFwd(x0, n, k, P.wq, P.bq, k, q);
    linFwd(x0, n, k, P.wk, P.bk, k, kk);
    linFwd(x0, n, k, P.wv, P.bv, k, vv);
    if (drop) fillMask(attM, h * n * n, c.dropout, rng);
    o.fill(0, 0, n * k);
    for (let a = 0; a < h; a++) {
      const hOff = a * dh;
      const aBase = a * n * n;
      for (let i = 0; i < n; i++) {
        const qi = i * k + hOff;
        const row = aBase + i * n;
        let mx = -Infinity;
        for (let j = 0; j < n; j++) {
          const kj = j * k + hOff;
          let sc = 0;
          for (let t = 0; t < dh; t++) sc += q[qi + t] * kk[kj + t];
          sc *= scale;
          att[row + j] = sc;
          if (sc > mx) mx = sc;
        }
        let sum = 0;
        for (let j = 0; j < n; j++) {
          const e = exp(att[row + j] - mx);
          att[row + j] = e;
          sum += e;
        }
        const inv = 1 / sum;
        for (let j = 0; j < n; j++) att[row + j] *= inv;
        const oi = i * k + hOff;
        for (let j = 0; j < n; j++) {
          const w = drop ? att[row + j] * attM[row + j] : att[row + j];
          if (w === 0) continue;
          const vj = j * k + hOff;
          for (let t = 0; t < dh; t++) o[oi + t] += w * vv[vj + t];
        }
      }
    }
    linFwd(o, n, k, P.wo, P.bo, k, ao);
    const nk = n * k;
    if (drop) {
      fillMask(m1, nk, c.dropout, rng);
      for (let t = 0; t < nk; t++) z[t] = x0[t] + ao[t] * m1[t];
    } else {
      for (let t = 0; t < nk; t++) z[t] = x0[t] + ao[t];
    }
    lnFwd(z, n, k, P.g1, P.be1, x1, xh1, rs1);
    const ff = c.ff;
    const nf = n * ff;
    linFwd(x1, n, k, P.w1, P.b1, ff, pre);
    if (drop) {
      fillMask(mf, nf, c.dropout, rng);
      for (let t = 0; t < nf; t++) hd[t] = pre[t] > 0 ? pre[t] * mf[t] : 0;
    } else {
      for (let t = 0; t < nf; t++) hd[t] = pre[t] > 0 ? pre[t] : 0;
    }
    linFwd(hd, n, ff, P.w2, P.b2, k, f);
    if (drop) {
      fillMask(m2, nk, c.dropout, rng);
      for (let t = 0; t < nk; t++) z[t] = x1[t] + f[t] * m2[t];
    } else {
      for (let t = 0; t < nk; t++) z[t] = x1[t] + f[t];
    }
    lnFwd(z, n, k, P.g2, P.be2, y, xh2, rs2);
    Y = y;
  }
  // cosine scores against the instruction row
  const { s, nrm } = ws;
  for (let i = 0; i < n; i++) {
    let ss = 0;
    const r = i * k;
    for (let t = 0; t < k; t++) ss += Y[r + t] * Y[r + t];
    nrm[i] = sqrt(ss);
  }
  const n0 = max(nrm[0], COS_EPS);
  for (let i = 1; i < n; i++) {
    let dt = 0;
    const r = i * k;
    for (let t = 0; t < k; t++) dt += Y[t] * Y[r + t];
    s[i] = dt / (n0 * max(nrm[i], COS_EPS));
  }
  return Y;
}

/**
 * Loss of one list (after forwardList) and, when G is given, backward pass with the
 * upstream scale `scale` (1 / number of lists) accumulated into G; the gradient of the
 * projected rows goes to rows row..row+m of dX0.
 */
function backwardList(c: RankerConfig, P: P64, G: P64 | null, list: RankList, ws: Workspace, Y: Float64Array, scale: number, dX0: Float64Array, row: number): number {
  const { width: k, tau } = c;
  const m = list.m;
  const n = m + 1;
  const safe = list.safe as Uint8Array;
  const { s, nrm, dy } = ws;
  // listwise KL(q || softmax(s / tau))
  let mx = -Infinity;
  let ns = 0;
  for (let i = 1; i < n; i++) {
    const zi = s[i] / tau;
    if (zi > mx) mx = zi;
    if (safe[i - 1]) ns++;
  }
  if (ns === 0) throw new RangeError("ranker: a list without any safe candidate has no target distribution");
  let sum = 0;
  for (let i = 1; i < n; i++) sum += exp(s[i] / tau - mx);
  const lse = mx + log(sum);
  const qv = 1 / ns;
  let loss = 0;
  for (let i = 1; i < n; i++) if (safe[i - 1]) loss += qv * (log(qv) - (s[i] / tau - lse));
  if (!G) return loss;

  // d loss / d s_i = (p_i - q_i) / tau, times the batch scale
  dy.fill(0, 0, n * k);
  const n0raw = nrm[0];
  const n0 = max(n0raw, COS_EPS);
  const inv0sq = n0raw > COS_EPS ? 1 / (n0 * n0) : 0;
  for (let i = 1; i < n; i++) {
    const pi = exp(s[i] / tau - lse);
    const ds = ((pi - (safe[i - 1] ? qv : 0)) / tau) * scale;
    if (ds === 0) continue;
    const niraw = nrm[i];
    const ni = max(niraw, COS_EPS);
    const invisq = niraw > COS_EPS ? 1 / (ni * ni) : 0;
    const cross = ds / (n0 * ni);
    const a0 = -ds * s[i] * inv0sq;
    const ai = -ds * s[i] * invisq;
    const r = i * k;
    for (let t = 0; t < k; t++) {
      const y0 = Y[t];
      const yi = Y[r + t];
      dy[t] += cross * yi + a0 * y0;
      dy[r + t] += cross * y0 + ai * yi;
    }
  }

  let dx0 = dy;
  if (!c.lite) {
    const h = c.heads;
    const dh = k / h;
    const sc = 1 / sqrt(dh);
    const ff = c.ff;
    const drop = c.dropout > 0 && ws.dropOn;
    const { x0, q, kk, vv, att, attM, o, m1, x1, xh1, rs1, pre, hd, mf, m2, xh2, rs2, dz, dx1, dhd, dao, dO, dq, dk, dv, dA } = ws;
    const nk = n * k;
    const nf = n * ff;
    // LN2
    lnBwd(dy, n, k, P.g2, xh2, rs2, G.g2, G.be2, dz);
    // residual to x1, dropout-scaled to the FF output
    dx1.set(dz.subarray(0, nk));
    if (drop) for (let t = 0; t < nk; t++) dz[t] *= m2[t];
    linGradW(dz, n, k, hd, ff, G.w2, G.b2);
    linFwd(dz, n, k, P.w2T, null, ff, dhd);
    for (let t = 0; t < nf; t++) dhd[t] = pre[t] > 0 ? (drop ? dhd[t] * mf[t] : dhd[t]) : 0;
    linGradW(dhd, n, ff, x1, k, G.w1, G.b1);
    linFwd(dhd, n, ff, P.w1T, null, k, dx1, true);
    // LN1
    lnBwd(dx1, n, k, P.g1, xh1, rs1, G.g1, G.be1, dz);
    dx0 = ws.dx0;
    dx0.set(dz.subarray(0, nk));
    if (drop) for (let t = 0; t < nk; t++) dao[t] = dz[t] * m1[t];
    else dao.set(dz.subarray(0, nk));
    linGradW(dao, n, k, o, k, G.wo, G.bo);
    linFwd(dao, n, k, P.woT, null, k, dO);
    // attention
    dq.fill(0, 0, nk);
    dk.fill(0, 0, nk);
    dv.fill(0, 0, nk);
    for (let a = 0; a < h; a++) {
      const hOff = a * dh;
      const aBase = a * n * n;
      for (let i = 0; i < n; i++) {
        const row = aBase + i * n;
        const oi = i * k + hOff;
        // dA[j] = dO_i . v_j (through the dropout mask); dv_j += A'_ij dO_i
        let dot = 0;
        for (let j = 0; j < n; j++) {
          const vj = j * k + hOff;
          const mj = drop ? attM[row + j] : 1;
          const w = att[row + j] * mj;
          let g = 0;
          for (let t = 0; t < dh; t++) {
            const go = dO[oi + t];
            g += go * vv[vj + t];
            dv[vj + t] += w * go;
          }
          g *= mj;
          dA[j] = g;
          dot += g * att[row + j];
        }
        // softmax backward, then scores = scale * q_i . k_j
        const qi = i * k + hOff;
        for (let j = 0; j < n; j++) {
          const dS = att[row + j] * (dA[j] - dot) * sc;
          if (dS === 0) continue;
          const kj = j * k + hOff;
          for (let t = 0; t < dh; t++) {
            dq[qi + t] += dS * kk[kj + t];
            dk[kj + t] += dS * q[qi + t];
          }
        }
      }
    }
    linGradW(dq, n, k, x0, k, G.wq, G.bq);
    linFwd(dq, n, k, P.wqT, null, k, dx0, true);
    linGradW(dk, n, k, x0, k, G.wk, G.bk);
    linFwd(dk, n, k, P.wkT, null, k, dx0, true);
    linGradW(dv, n, k, x0, k, G.wv, G.bv);
    linFwd(dv, n, k, P.wvT, null, k, dx0, true);
  }
  // the projection's gradient is taken once per batch (lossCore) from the stacked rows
  dX0.set(dx0.subarray(0, n * k), row * k);
  return loss;
}

/** Mean loss over lists and (optionally) double gradients; the shared core of the public API. */
export function lossCore(c: RankerConfig, P: P64, lists: RankList[], G: P64 | null, rng: Rng | null, workspace?: Workspace): number {
  if (lists.length === 0) return 0;
  const { d, width: k } = c;
  const ws = workspace ?? new Workspace(c);
  let maxN = 1;
  let rows = 0;
  for (const l of lists) {
    maxN = max(maxN, l.m + 1);
    rows += l.m + 1;
  }
  ws.ensure(maxN);
  ws.dropOn = rng !== null && c.dropout > 0;
  const scale = 1 / lists.length;
  let total = 0;
  if (!G) {
    for (const list of lists) {
      const Y = forwardList(c, P, list, ws, rng, null, 0);
      total += backwardList(c, P, null, list, ws, Y, scale, EMPTY, 0);
    }
    return total * scale;
  }
  refreshTransposes(c, P);
  // Stack the batch's input rows so that the projection (the dominant cost) runs as one
  // forward and one weight-gradient product over all rows.
  ws.ensureBatch(rows);
  const S = ws.S;
  const X0 = ws.X0;
  const dX0 = ws.dX0;
  let row = 0;
  for (const l of lists) {
    S.set(l.u, row * d);
    S.set(l.v.subarray(0, l.m * d), (row + 1) * d);
    row += l.m + 1;
  }
  projFwd(S, 0, rows, d, P.pw, P.pb, k, X0, 0);
  row = 0;
  for (const list of lists) {
    const Y = forwardList(c, P, list, ws, rng, X0, row);
    total += backwardList(c, P, G, list, ws, Y, scale, dX0, row);
    row += list.m + 1;
  }
  projGradW(dX0, rows, k, S, d, G.pw, G.pb);
  return total * scale;
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/** Cosine scores s_i (i = 1..m) of one list in inference mode (no dropout). */
export function rankerScores(config: RankerConfig, params: RankerParams, list: RankList): Float32Array {
  return rankerScoresBatch(config, params, [list])[0];
}

/** Scores of several lists (any lengths); each list is processed on its own, so no padding. */
export function rankerScoresBatch(config: RankerConfig, params: RankerParams, lists: RankList[]): Float32Array[] {
  checkConfig(config);
  checkParams(config, params);
  const P = toP64(config, params);
  const ws = new Workspace(config);
  const out: Float32Array[] = [];
  for (const list of lists) {
    checkList(config, list, false);
    forwardList(config, P, list, ws, null, null, 0);
    out.push(Float32Array.from(ws.s.subarray(1, list.m + 1)));
  }
  return out;
}

/** Softmax(s / tau) over the candidates of one list (inference mode). */
export function rankerProbs(config: RankerConfig, params: RankerParams, list: RankList): Float32Array {
  const s = rankerScores(config, params, list);
  let mx = -Infinity;
  for (let i = 0; i < s.length; i++) mx = max(mx, s[i] / config.tau);
  let sum = 0;
  const e = new Float64Array(s.length);
  for (let i = 0; i < s.length; i++) sum += e[i] = exp(s[i] / config.tau - mx);
  const p = new Float32Array(s.length);
  for (let i = 0; i < s.length; i++) p[i] = e[i] / sum;
  return p;
}

/**
 * Mean listwise KL(q || p) over the lists and its gradient for every parameter block.
 * Every list needs safe labels with at least one safe candidate (lists that are all
 * safe are allowed here: their target is uniform). Dropout only when opts.train.
 */
export function rankerLossAndGrad(
  config: RankerConfig,
  params: RankerParams,
  lists: RankList[],
  opts: RankerLossOptions = {},
): { loss: number; grads: RankerParams } {
  checkConfig(config);
  checkParams(config, params);
  for (const l of lists) checkList(config, l, true);
  const P = toP64(config, params);
  const G = toP64(config, null);
  const rng = opts.train ? (opts.rng ?? new Rng(1)) : null;
  const loss = lossCore(config, P, lists, G, rng);
  const grads: RankerParams = {};
  for (const [name] of rankerBlockShapes(config)) grads[name] = Float32Array.from(G[FIELD_OF[name]]);
  return { loss, grads };
}

/** Mean loss in double precision, inference mode (no gradients); for checks and validation. */
export function rankerLoss(config: RankerConfig, params: RankerParams, lists: RankList[]): number {
  checkConfig(config);
  checkParams(config, params);
  for (const l of lists) checkList(config, l, true);
  return lossCore(config, toP64(config, params), lists, null, null);
}
