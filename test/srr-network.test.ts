import { Rng } from "../src/math/rng";
import {
  initRanker,
  rankerBlockShapes,
  rankerLoss,
  rankerLossAndGrad,
  rankerProbs,
  rankerScores,
  rankerScoresBatch,
  type RankList,
  type RankerConfig,
  type RankerParams,
} from "../src/srr/network";
import { trainRanker } from "../src/srr/train";

function randomList(rng: Rng, d: number, m: number, safe?: number[]): RankList {
  const u = new Float32Array(d);
  for (let i = 0; i < d; i++) u[i] = rng.normal();
  const v = new Float32Array(m * d);
  for (let i = 0; i < m * d; i++) v[i] = rng.normal();
  const list: RankList = { u, v, m };
  if (safe) list.safe = Uint8Array.from(safe);
  return list;
}

/** Lists whose safe candidates lean along a planted unit direction and unsafe ones against it. */
function plantedLists(rng: Rng, n: number, d: number, alpha: number, dir: Float32Array): RankList[] {
  const out: RankList[] = [];
  for (let l = 0; l < n; l++) {
    const m = 8 + rng.int(9);
    const safe = new Uint8Array(m);
    // at least one of each class
    for (let i = 0; i < m; i++) safe[i] = rng.next() < 0.4 ? 1 : 0;
    const a = rng.int(m);
    let b = rng.int(m - 1);
    if (b >= a) b++;
    safe[a] = 1;
    safe[b] = 0;
    const list = randomList(rng, d, m);
    for (let i = 0; i < m; i++) {
      const sign = safe[i] ? alpha : -alpha;
      for (let t = 0; t < d; t++) list.v[i * d + t] += sign * dir[t];
    }
    list.safe = safe;
    out.push(list);
  }
  return out;
}

function top1(config: RankerConfig, params: RankerParams, lists: RankList[]): number {
  let hit = 0;
  const scores = rankerScoresBatch(config, params, lists);
  lists.forEach((l, j) => {
    const s = scores[j];
    let best = 0;
    for (let i = 1; i < s.length; i++) if (s[i] > s[best]) best = i;
    if (l.safe![best]) hit++;
  });
  return hit / lists.length;
}

/** Initial parameters with every block randomised (so biases, gamma and beta are exercised too). */
function jittered(config: Partial<RankerConfig> & { d: number }, seed: number): { config: RankerConfig; params: RankerParams } {
  const r = initRanker(config, seed);
  const rng = new Rng(seed + 100);
  for (const [name, , cols] of rankerBlockShapes(r.config)) {
    const b = r.params[name];
    for (let i = 0; i < b.length; i++) {
      if (cols > 1) b[i] += 0.3 * rng.normal();
      else if (name.endsWith(".g")) b[i] = 1 + 0.3 * rng.normal();
      else b[i] = 0.3 * rng.normal();
    }
  }
  return r;
}

describe("SRR ranker: construction", () => {
  test("defaults, block shapes, lite has only the projection", () => {
    const { config, params } = initRanker({ d: 10 }, 3);
    expect(config).toEqual({ d: 10, width: 64, heads: 4, ff: 128, tau: 0.1, dropout: 0.1, lite: false });
    expect(Object.keys(params).sort()).toEqual(
      [
        "proj.w", "proj.b", "attn.wq", "attn.bq", "attn.wk", "attn.bk", "attn.wv", "attn.bv", "attn.wo", "attn.bo",
        "ln1.g", "ln1.b", "ff.w1", "ff.b1", "ff.w2", "ff.b2", "ln2.g", "ln2.b",
      ].sort(),
    );
    expect(params["proj.w"].length).toBe(64 * 10);
    expect(params["ff.w1"].length).toBe(128 * 64);
    expect(params["ff.w2"].length).toBe(64 * 128);
    expect(Array.from(params["ln1.g"]).every((x) => x === 1)).toBe(true);
    expect(Array.from(params["attn.bq"]).every((x) => x === 0)).toBe(true);
    const limit = Math.sqrt(6 / (64 + 10));
    const w = params["proj.w"];
    expect(Math.max(...Array.from(w, Math.abs))).toBeLessThanOrEqual(limit);
    expect(Math.max(...Array.from(w, Math.abs))).toBeGreaterThan(0.8 * limit);
    const lite = initRanker({ d: 10, lite: true, width: 8 }, 3);
    expect(Object.keys(lite.params).sort()).toEqual(["proj.b", "proj.w"]);
    expect(() => initRanker({ d: 10, width: 6, heads: 4 })).toThrow(/heads/);
    // same seed, same parameters
    expect(initRanker({ d: 10 }, 3).params["attn.wq"]).toEqual(params["attn.wq"]);
  });

  test("input validation", () => {
    const { config, params } = initRanker({ d: 4, width: 4, heads: 2 }, 1);
    const rng = new Rng(1);
    const list = randomList(rng, 4, 3, [1, 0, 0]);
    expect(() => rankerScores(config, params, { ...list, u: new Float32Array(3) })).toThrow(/u has/);
    expect(() => rankerScores(config, params, { ...list, m: 4 })).toThrow(/v has/);
    expect(() => rankerLossAndGrad(config, params, [{ ...list, safe: undefined }])).toThrow(/safe labels/);
    expect(() => trainRanker(config, params, [{ ...list, safe: new Uint8Array([1, 0]) }])).toThrow(/safe has 2/);
    expect(() => rankerLossAndGrad(config, params, [{ ...list, safe: new Uint8Array(3) }])).toThrow(/safe candidate/);
  });
});

describe("SRR ranker: gradients", () => {
  const d = 6;
  const rng = new Rng(11);
  const lists = [
    randomList(rng, d, 3, [1, 0, 0]),
    randomList(rng, d, 1, [1]),
    randomList(rng, d, 5, [0, 1, 1, 0, 0]),
    randomList(rng, d, 2, [0, 1]),
    randomList(rng, d, 4, [1, 1, 1, 1]),
  ];

  for (const lite of [false, true]) {
    test(`central differences match every parameter block (${lite ? "lite" : "full"})`, () => {
      const { config, params } = jittered({ d, width: 4, heads: 2, ff: 8, lite }, 5);
      const { loss, grads } = rankerLossAndGrad(config, params, lists);
      expect(loss).toBeCloseTo(rankerLoss(config, params, lists), 12);
      expect(loss).toBeGreaterThan(0);
      const names = rankerBlockShapes(config).map(([n]) => n);
      expect(Object.keys(grads).sort()).toEqual([...names].sort());
      const eps = 1e-3;
      let checked = 0;
      let worst = 0;
      for (const name of names) {
        const b = params[name];
        const g = grads[name];
        let blockNorm = 0;
        for (let i = 0; i < b.length; i++) {
          const orig = b[i];
          b[i] = orig + eps;
          const hi = b[i];
          const lp = rankerLoss(config, params, lists);
          b[i] = orig - eps;
          const lo = b[i];
          const lm = rankerLoss(config, params, lists);
          b[i] = orig;
          const num = (lp - lm) / (hi - lo);
          const err = Math.abs(num - g[i]);
          const rel = err / Math.max(Math.abs(num), Math.abs(g[i]));
          if (!(rel < 1e-3 || err < 1e-6)) {
            throw new Error(`${name}[${i}]: analytic ${g[i]} vs numeric ${num} (rel ${rel})`);
          }
          worst = Math.max(worst, Math.min(rel, err * 1e3));
          blockNorm += g[i] * g[i];
          checked++;
        }
        // every block receives gradient, except the key bias: softmax over keys is invariant to
        // adding q . b_k to every score, so its gradient is exactly zero
        if (name === "attn.bk") expect(blockNorm).toBeLessThan(1e-20);
        else expect(blockNorm).toBeGreaterThan(1e-12);
      }
      expect(checked).toBe(names.reduce((s, n) => s + params[n].length, 0));
      expect(worst).toBeLessThan(1e-3);
    });
  }

  test("with dropout on (masks fixed by the seed) the gradient still matches central differences", () => {
    const { config, params } = jittered({ d, width: 4, heads: 2, ff: 8, dropout: 0.3 }, 7);
    const lossAt = () => rankerLossAndGrad(config, params, lists, { train: true, rng: new Rng(3) }).loss;
    const { loss, grads } = rankerLossAndGrad(config, params, lists, { train: true, rng: new Rng(3) });
    expect(loss).not.toBeCloseTo(rankerLoss(config, params, lists), 6);
    const eps = 1e-3;
    for (const [name] of rankerBlockShapes(config)) {
      const b = params[name];
      for (let i = 0; i < b.length; i++) {
        const orig = b[i];
        b[i] = orig + eps;
        const hi = b[i];
        const lp = lossAt();
        b[i] = orig - eps;
        const lo = b[i];
        const lm = lossAt();
        b[i] = orig;
        const num = (lp - lm) / (hi - lo);
        const err = Math.abs(num - grads[name][i]);
        const rel = err / Math.max(Math.abs(num), Math.abs(grads[name][i]));
        if (!(rel < 1e-3 || err < 1e-6)) throw new Error(`${name}[${i}]: analytic ${grads[name][i]} vs numeric ${num}`);
      }
    }
  });

  test("a one-candidate list has zero loss and no gradient", () => {
    const { config, params } = jittered({ d, width: 4, heads: 2, ff: 8 }, 2);
    const { loss, grads } = rankerLossAndGrad(config, params, [lists[1]]);
    expect(loss).toBeCloseTo(0, 12);
    for (const g of Object.values(grads)) expect(Math.max(...Array.from(g, Math.abs))).toBeLessThan(1e-9);
  });

  test("batch loss and gradient are the mean of the per-list ones", () => {
    const { config, params } = jittered({ d, width: 4, heads: 2, ff: 8 }, 4);
    const all = rankerLossAndGrad(config, params, lists);
    const each = lists.map((l) => rankerLossAndGrad(config, params, [l]));
    const meanLoss = each.reduce((s, e) => s + e.loss, 0) / lists.length;
    expect(all.loss).toBeCloseTo(meanLoss, 12);
    for (const name of Object.keys(all.grads)) {
      const g = all.grads[name];
      for (let i = 0; i < g.length; i++) {
        const mean = each.reduce((s, e) => s + e.grads[name][i], 0) / lists.length;
        expect(Math.abs(g[i] - mean)).toBeLessThan(1e-6 * Math.max(1, Math.abs(mean)));
      }
    }
  });

  test("dropout in train mode is deterministic for a seed and off at inference", () => {
    const { config, params } = jittered({ d, width: 4, heads: 2, ff: 8, dropout: 0.3 }, 6);
    const a = rankerLossAndGrad(config, params, lists, { train: true, rng: new Rng(9) });
    const b = rankerLossAndGrad(config, params, lists, { train: true, rng: new Rng(9) });
    const c = rankerLossAndGrad(config, params, lists, { train: true, rng: new Rng(10) });
    const inf = rankerLossAndGrad(config, params, lists);
    const inf2 = rankerLossAndGrad(config, params, lists, { train: false, rng: new Rng(9) });
    expect(a.loss).toBe(b.loss);
    for (const name of Object.keys(a.grads)) expect(a.grads[name]).toEqual(b.grads[name]);
    expect(a.loss).not.toBe(c.loss);
    expect(a.loss).not.toBe(inf.loss);
    expect(inf2.loss).toBe(inf.loss);
    // dropout 0: train mode equals inference
    const noDrop = { ...config, dropout: 0 };
    expect(rankerLossAndGrad(noDrop, params, lists, { train: true, rng: new Rng(9) }).loss).toBe(inf.loss);
  });
});

describe("SRR ranker: scoring", () => {
  const d = 32;
  for (const lite of [false, true]) {
    test(`permuting candidates permutes the scores (${lite ? "lite" : "full"})`, () => {
      const { config, params } = jittered({ d, width: 16, heads: 4, lite }, 8);
      const rng = new Rng(21);
      const list = randomList(rng, d, 9);
      const perm = rng.shuffle(Uint32Array.from({ length: 9 }, (_, i) => i));
      const v2 = new Float32Array(list.v.length);
      for (let i = 0; i < 9; i++) v2.set(list.v.subarray(perm[i] * d, (perm[i] + 1) * d), i * d);
      const s = rankerScores(config, params, list);
      const s2 = rankerScores(config, params, { u: list.u, v: v2, m: 9 });
      expect(s.length).toBe(9);
      for (let i = 0; i < 9; i++) expect(Math.abs(s2[i] - s[perm[i]])).toBeLessThan(1e-6);
      for (let i = 0; i < 9; i++) expect(Math.abs(s[i])).toBeLessThanOrEqual(1 + 1e-6);
      // the scores do depend on the candidate set (full) and are plain cosines of projections (lite)
      const p = rankerProbs(config, params, list);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    });
  }

  test("lite scores are cosines of the projected vectors", () => {
    const { config, params } = jittered({ d: 5, width: 3, lite: true }, 2);
    const list = randomList(new Rng(4), 5, 4);
    const proj = (x: Float32Array, off: number) => {
      const out = [0, 0, 0];
      for (let o = 0; o < 3; o++) {
        out[o] = params["proj.b"][o];
        for (let t = 0; t < 5; t++) out[o] += params["proj.w"][o * 5 + t] * x[off + t];
      }
      return out;
    };
    const a = proj(list.u, 0);
    const s = rankerScores(config, params, list);
    for (let i = 0; i < 4; i++) {
      const b = proj(list.v, i * 5);
      const dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
      const cos = dot / Math.hypot(...a) / Math.hypot(...b);
      expect(s[i]).toBeCloseTo(cos, 6);
    }
  });

  test("a batch of lists of different lengths scores each exactly as alone", () => {
    const { config, params } = jittered({ d, width: 16, heads: 4 }, 9);
    const rng = new Rng(5);
    const lists = [1, 7, 3, 12, 2].map((m) => randomList(rng, d, m));
    const batch = rankerScoresBatch(config, params, lists);
    lists.forEach((l, j) => {
      expect(batch[j].length).toBe(l.m);
      expect(batch[j]).toEqual(rankerScores(config, params, l));
    });
    // and in another order / with other company
    const again = rankerScoresBatch(config, params, [lists[3], lists[0]]);
    expect(again[0]).toEqual(batch[3]);
    expect(again[1]).toEqual(batch[0]);
  });
});

describe("SRR ranker: training", () => {
  const d = 32;
  const rng = new Rng(77);
  const dir = new Float32Array(d);
  for (let i = 0; i < d; i++) dir[i] = rng.normal();
  const nrm = Math.hypot(...dir);
  for (let i = 0; i < d; i++) dir[i] /= nrm;
  // Candidates are N(0, I) plus or minus alpha along the planted direction; the instruction is
  // N(0, I). (Cosine scoring against the instruction's own projection is hurt by the
  // instruction's random component along the planted direction, so the planted signal is
  // made clearly larger than the noise.)
  const alpha = 5;
  const train = plantedLists(rng, 600, d, alpha, dir);
  const val = plantedLists(rng, 100, d, alpha, dir);
  const test_ = plantedLists(rng, 300, d, alpha, dir);

  for (const lite of [false, true]) {
    test(`learns a planted safe direction: top-1 >= 0.95 on held-out lists (${lite ? "lite" : "full"})`, () => {
      const { config, params } = initRanker({ d, width: 16, heads: 4, lite }, 3);
      const before = top1(config, params, test_);
      const epochsSeen: number[] = [];
      const res = trainRanker(config, params, train, {
        epochs: 30,
        seed: 5,
        val,
        patience: 5,
        lr: 1e-2,
        onEpoch: (e) => epochsSeen.push(e.epoch),
      });
      const acc = top1(config, res.params, test_);
      expect(acc).toBeGreaterThanOrEqual(0.95);
      expect(before).toBeLessThan(0.8);
      expect(res.summary.lists).toBe(600);
      expect(res.summary.skipped).toBe(0);
      expect(epochsSeen.length).toBe(res.summary.epochs);
      expect(res.summary.bestEpoch).toBeGreaterThanOrEqual(1);
      expect(res.summary.valLoss).toBeCloseTo(rankerLoss(config, res.params, val), 10);
      // the input parameters are not modified
      expect(params["proj.w"]).toEqual(initRanker({ d, width: 16, heads: 4, lite }, 3).params["proj.w"]);
    });
  }

  test("training is deterministic for a seed; skips lists without both classes; early stopping keeps the best", () => {
    const { config, params } = initRanker({ d, width: 8, heads: 2 }, 1);
    const small = train.slice(0, 40);
    const allSafe = randomList(rng, d, 4, [1, 1, 1, 1]);
    const allUnsafe = randomList(rng, d, 3, [0, 0, 0]);
    const unlabeled = randomList(rng, d, 3);
    const data = [...small, allSafe, allUnsafe, unlabeled];
    const history: Array<{ epoch: number; trainLoss: number; valLoss?: number }> = [];
    const a = trainRanker(config, params, data, { epochs: 6, seed: 4, batchSize: 8, val: val.slice(0, 10), onEpoch: (e) => history.push(e) });
    const b = trainRanker(config, params, data, { epochs: 6, seed: 4, batchSize: 8, val: val.slice(0, 10) });
    const c = trainRanker(config, params, data, { epochs: 6, seed: 5, batchSize: 8, val: val.slice(0, 10) });
    expect(a.summary.lists).toBe(40);
    expect(a.summary.skipped).toBe(3);
    for (const name of Object.keys(a.params)) expect(a.params[name]).toEqual(b.params[name]);
    expect(a.params["proj.w"]).not.toEqual(c.params["proj.w"]);
    expect({ ...a.summary, seconds: 0 }).toEqual({ ...b.summary, seconds: 0 });
    const best = history.reduce((x, y) => ((y.valLoss as number) < (x.valLoss as number) ? y : x));
    expect(a.summary.bestEpoch).toBe(best.epoch);
    expect(a.summary.valLoss).toBe(best.valLoss);
    expect(a.summary.trainLoss).toBe(best.trainLoss);
    // training reduces the loss
    expect(history[history.length - 1].trainLoss).toBeLessThan(history[0].trainLoss);

    // patience stops early: with lr 0 the validation loss never improves after epoch 1
    const frozen = trainRanker(config, params, data, { epochs: 20, seed: 4, lr: 0, val: val.slice(0, 10), patience: 2 });
    expect(frozen.summary.bestEpoch).toBe(1);
    expect(frozen.summary.epochs).toBe(3);
    // without validation the last epoch's parameters come back
    const noVal = trainRanker(config, params, small, { epochs: 2, seed: 4 });
    expect(noVal.summary.bestEpoch).toBe(2);
    expect(noVal.summary.valLoss).toBeUndefined();
  });
});
