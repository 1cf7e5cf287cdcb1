import { auprc, auroc, bestF1Threshold, confusionAt, metricsAt, nextUp, perSource, thresholdForFpr } from "../src/probe/metrics";

const u8 = (a: number[]) => Uint8Array.from(a);

describe("AUROC", () => {
  test("perfect, reversed and fully tied rankings", () => {
    const y = u8([0, 0, 1, 1]);
    expect(auroc([0.1, 0.2, 0.8, 0.9], y)).toBe(1);
    expect(auroc([0.9, 0.8, 0.2, 0.1], y)).toBe(0);
    expect(auroc([0.5, 0.5, 0.5, 0.5], y)).toBe(0.5);
  });

  test("ties between a positive and a negative count 1/2", () => {
    // pairs (pos, neg): 0.4>0.1: 1, 0.4=0.4: 1/2, 0.8 beats both: 2 -> 3.5 / 4
    expect(auroc(Float32Array.from([0.1, 0.4, 0.4, 0.8]), u8([0, 0, 1, 1]))).toBe(0.875);
    // 3 negatives, 2 positives, mixed order: pairs won 1 + 0.5 + 3 = 4.5 of 6
    expect(auroc([0.3, 0.7, 0.3, 0.9, 0.1], u8([0, 0, 1, 1, 0]))).toBeCloseTo(4.5 / 6, 12);
  });

  test("matches a brute-force pair count on random data with ties", () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const n = 200;
    const s = Array.from({ length: n }, () => Math.round(rnd() * 20) / 20);
    const y = u8(Array.from({ length: n }, (_, i) => (rnd() < 0.3 + 0.4 * s[i] ? 1 : 0)));
    let won = 0;
    let pairs = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++)
        if (y[i] === 1 && y[j] === 0) {
          pairs++;
          won += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
        }
    expect(auroc(s, y)).toBeCloseTo(won / pairs, 12);
  });

  test("NaN when a class is missing", () => {
    expect(auroc([0.1, 0.2], u8([1, 1]))).toBeNaN();
    expect(auroc([0.1, 0.2], u8([0, 0]))).toBeNaN();
  });
});

describe("AUPRC (average precision)", () => {
  test("by hand", () => {
    // ranks: + - + - +; P = 3: (1/3)*1 + (1/3)*(2/3) + (1/3)*(3/5)
    expect(auprc([0.9, 0.8, 0.7, 0.6, 0.5], u8([1, 0, 1, 0, 1]))).toBeCloseTo((1 + 2 / 3 + 3 / 5) / 3, 12);
    expect(auprc([0.9, 0.8, 0.2, 0.1], u8([1, 1, 0, 0]))).toBe(1);
  });

  test("tied scores enter together", () => {
    // 0.9: (tp 0, fp 1); 0.5 group: tp 1, fp 2 -> R 1/2, P 1/3; 0.1: tp 2, fp 2 -> R 1, P 1/2
    expect(auprc([0.9, 0.5, 0.5, 0.1], u8([0, 1, 0, 1]))).toBeCloseTo(0.5 / 3 + 0.25, 12);
  });

  test("NaN without positives", () => {
    expect(auprc([0.3, 0.4], u8([0, 0]))).toBeNaN();
  });
});

describe("thresholds and confusion", () => {
  test("confusionAt predicts unsafe for score >= threshold", () => {
    expect(confusionAt([0.2, 0.5, 0.5, 0.9], u8([0, 1, 0, 1]), 0.5)).toEqual({ tp: 2, fp: 1, tn: 1, fn: 0 });
  });

  test("metricsAt values and conventions for empty denominators", () => {
    const m = metricsAt([0.1, 0.6, 0.7, 0.4, 0.9], u8([0, 0, 1, 1, 1]), 0.5);
    // tp 2 (0.7, 0.9), fp 1 (0.6), fn 1 (0.4), tn 1
    expect(m).toMatchObject({ n: 5, positives: 3, threshold: 0.5 });
    expect(m.precision).toBeCloseTo(2 / 3, 12);
    expect(m.recall).toBeCloseTo(2 / 3, 12);
    expect(m.f1).toBeCloseTo(2 / 3, 12);
    expect(m.accuracy).toBeCloseTo(3 / 5, 12);
    expect(m.fpr).toBeCloseTo(1 / 2, 12);
    expect(m.auroc).toBeCloseTo(auroc([0.1, 0.6, 0.7, 0.4, 0.9], u8([0, 0, 1, 1, 1])), 12);
    // nothing predicted positive: precision 0, f1 0
    const none = metricsAt([0.1, 0.2], u8([0, 1]), 0.9);
    expect(none).toMatchObject({ precision: 0, recall: 0, f1: 0, fpr: 0, accuracy: 0.5 });
    // no positives: recall 0, auroc / auprc NaN; no negatives: fpr 0
    const noPos = metricsAt([0.1, 0.8], u8([0, 0]), 0.5);
    expect(noPos.recall).toBe(0);
    expect(noPos.fpr).toBe(0.5);
    expect(noPos.auroc).toBeNaN();
    expect(noPos.auprc).toBeNaN();
    expect(metricsAt([0.1, 0.8], u8([1, 1]), 0.5).fpr).toBe(0);
  });

  test("thresholdForFpr hits the target rate exactly and is the lowest such threshold", () => {
    // 100 negatives 0.000 .. 0.990, 50 positives 0.5 .. 0.99 (interleaved with negatives)
    const scores: number[] = [];
    const y: number[] = [];
    for (let i = 0; i < 100; i++) {
      scores.push(i / 100);
      y.push(0);
    }
    for (let i = 0; i < 50; i++) {
      scores.push(0.505 + i / 100);
      y.push(1);
    }
    const yy = u8(y);
    for (const target of [0, 0.01, 0.05, 0.1, 0.25, 0.333]) {
      const t = thresholdForFpr(scores, yy, target);
      const fpr = metricsAt(scores, yy, t).fpr;
      expect(fpr).toBeLessThanOrEqual(target);
      expect(fpr).toBeCloseTo(Math.floor(target * 100 + 1e-9) / 100, 12); // as close as the data allows
      // any lower attained score admits one more negative
      const lower = Math.max(...scores.filter((s) => s < t));
      expect(metricsAt(scores, yy, lower).fpr).toBeGreaterThan(target);
    }
    expect(thresholdForFpr(scores, yy, 0.05)).toBe(nextUp(0.94));
    // target 1: everything predicted unsafe
    expect(metricsAt(scores, yy, thresholdForFpr(scores, yy, 1)).recall).toBe(1);
  });

  test("thresholdForFpr with tied negatives stays at or below the target", () => {
    // negatives: 0.9, 0.8, 0.8, 0.8, 0.1 x 6 (n0 = 10); target 0.2 allows 2, but 0.8 is a triple tie
    const scores = [0.9, 0.8, 0.8, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.85, 0.95];
    const y = u8([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    const t = thresholdForFpr(scores, y, 0.2);
    expect(t).toBe(nextUp(0.8));
    const m = metricsAt(scores, y, t);
    expect(m.fpr).toBeCloseTo(0.1, 12);
    expect(m.recall).toBe(1);
    // target 0.4 admits the tie
    expect(metricsAt(scores, y, thresholdForFpr(scores, y, 0.4)).fpr).toBeCloseTo(0.4, 12);
  });

  test("bestF1Threshold on a constructed set", () => {
    const scores = [0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2];
    const y = u8([1, 1, 0, 1, 1, 0, 0, 1]);
    // F1 by threshold: .333 .571 .5 .667 .8 .727 .667 .769 -> 0.6
    expect(bestF1Threshold(scores, y)).toBe(0.6);
    expect(metricsAt(scores, y, 0.6).f1).toBeCloseTo(0.8, 12);
    for (const s of scores) expect(metricsAt(scores, y, s).f1).toBeLessThanOrEqual(0.8 + 1e-12);
    // ties in score: the group enters together
    expect(bestF1Threshold([0.9, 0.5, 0.5, 0.5, 0.1], u8([1, 0, 0, 1, 1]))).toBe(0.1);
    // no positives: nothing predicted unsafe
    const t = bestF1Threshold([0.2, 0.7], u8([0, 0]));
    expect(t).toBeGreaterThan(0.7);
    expect(confusionAt([0.2, 0.7], u8([0, 0]), t).fp).toBe(0);
  });
});

describe("perSource", () => {
  test("breaks metrics down by source", () => {
    const scores = Float32Array.from([0.9, 0.2, 0.8, 0.1, 0.6, 0.4, 0.7]);
    const y = u8([1, 0, 1, 0, 0, 1, 1]);
    const sources = ["b", "a", "b", "a", "c", "c", "a"];
    const r = perSource(scores, y, sources, 0.5);
    expect(Object.keys(r)).toEqual(["a", "b", "c"]);
    expect(r.a).toMatchObject({ n: 3, positives: 1, precision: 1, recall: 1, f1: 1, accuracy: 1, auroc: 1, fpr: 0 });
    expect(r.b).toMatchObject({ n: 2, positives: 2, recall: 1, fpr: 0 });
    expect(r.b.auroc).toBeNaN();
    expect(r.c).toMatchObject({ n: 2, positives: 1, precision: 0, recall: 0, f1: 0, accuracy: 0, auroc: 0, fpr: 1 });
    expect(r.a.auprc).toBe(1);
  });
});
