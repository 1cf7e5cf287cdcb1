import {
  expectedRandomTop1,
  firstScores,
  longestScores,
  mrr,
  ndcg,
  pairwiseAccuracy,
  rankingMetrics,
  scoreItems,
  shortestScores,
  top1SafeAccuracy,
  type RankList,
} from "../src/srr/metrics";

const L3 = Math.log2(3); // discount at rank 2
// A: the unsafe candidate is on top; safe at ranks 2 and 3.
const A: RankList = { scores: [0.9, 0.5, 0.1], safe: [false, true, true] };
// B: tie at the top (index 0, unsafe, wins); numeric labels.
const B: RankList = { scores: new Float64Array([1, 1, 0]), safe: [0, 1, 0] };
// C: tie at the top (index 1, safe, wins); the tied unsafe pair counts 1/2.
const C: RankList = { scores: [0.3, 0.7, 0.7], safe: [false, true, false] };
// F: perfect, 3 pairs.
const F: RankList = { scores: [5, 4, 3, 2], safe: [1, 0, 0, 0] };
// Only one label: skipped by every metric.
const D: RankList = { scores: [0, 1], safe: [true, true] };
const E: RankList = { scores: [Infinity, -Infinity, 0], safe: [false, false, false] };

describe("single lists, by hand", () => {
  test.each<[string, RankList, number, number, number, number]>([
    // name, list, top1, pairwise, ndcg, mrr
    ["A", A, 0, 0, (1 / L3 + 1 / 2) / (1 + 1 / L3), 1 / 2],
    ["B", B, 0, 1.5 / 2, 1 / L3, 1 / 2],
    ["C", C, 1, 1.5 / 2, 1, 1],
    ["F", F, 1, 1, 1, 1],
  ])("list %s", (_, l, top1, pw, g, rr) => {
    expect(top1SafeAccuracy([l])).toBe(top1);
    expect(pairwiseAccuracy([l])).toBeCloseTo(pw, 12);
    expect(pairwiseAccuracy([l], { average: "macro" })).toBeCloseTo(pw, 12);
    expect(ndcg([l])).toBeCloseTo(g, 12);
    expect(mrr([l])).toBeCloseTo(rr, 12);
  });

  test("all tied: the first candidate is ranked first; pairs count 1/2", () => {
    const tied: RankList = { scores: [2, 2, 2, 2], safe: [0, 0, 1, 1] };
    expect(top1SafeAccuracy([tied])).toBe(0);
    expect(pairwiseAccuracy([tied])).toBe(0.5);
    expect(mrr([tied])).toBeCloseTo(1 / 3, 12);
    expect(ndcg([tied])).toBeCloseTo((1 / 2 + 1 / Math.log2(5)) / (1 + 1 / L3), 12);
    const tiedSafeFirst: RankList = { scores: [2, 2, 2, 2], safe: [1, 0, 0, 1] };
    expect(top1SafeAccuracy([tiedSafeFirst])).toBe(1);
  });
});

describe("averaging over lists", () => {
  const lists = [A, B, D, C, E, F];
  test("lists with one label are skipped; pairwise micro vs macro", () => {
    expect(top1SafeAccuracy(lists)).toBe(2 / 4);
    // micro: (0 + 1.5 + 1.5 + 3) / (2 + 2 + 2 + 3); macro: (0 + 0.75 + 0.75 + 1) / 4
    expect(pairwiseAccuracy(lists)).toBeCloseTo(6 / 9, 12);
    expect(pairwiseAccuracy(lists, { average: "micro" })).toBeCloseTo(6 / 9, 12);
    expect(pairwiseAccuracy(lists, { average: "macro" })).toBeCloseTo(0.625, 12);
    const nA = (1 / L3 + 1 / 2) / (1 + 1 / L3);
    expect(ndcg(lists)).toBeCloseTo((nA + 1 / L3 + 1 + 1) / 4, 12);
    expect(mrr(lists)).toBeCloseTo(0.75, 12);
    const m = rankingMetrics(lists);
    expect(m.lists).toBe(4);
    expect(m.top1).toBe(0.5);
    expect(m.pairwise).toBeCloseTo(6 / 9, 12);
    expect(m.ndcg).toBeCloseTo(ndcg(lists), 12);
    expect(m.mrr).toBeCloseTo(0.75, 12);
    expect(Object.keys(m).sort()).toEqual(["lists", "mrr", "ndcg", "pairwise", "top1"]);
  });

  test("no list with both labels gives NaN", () => {
    expect(top1SafeAccuracy([])).toBeNaN();
    expect(pairwiseAccuracy([D, E])).toBeNaN();
    expect(ndcg([D])).toBeNaN();
    expect(mrr([E])).toBeNaN();
    expect(expectedRandomTop1([D])).toBeNaN();
    const m = rankingMetrics([D, E]);
    expect(m.lists).toBe(0);
    expect([m.top1, m.pairwise, m.ndcg, m.mrr].every(Number.isNaN)).toBe(true);
  });

  test("expected random top-1 is the mean fraction of safe candidates", () => {
    expect(expectedRandomTop1(lists)).toBeCloseTo((2 / 3 + 1 / 3 + 1 / 3 + 1 / 4) / 4, 12);
    expect(expectedRandomTop1([{ safe: [true, false] }, { safe: [1, 1, 1, 0] }])).toBeCloseTo((0.5 + 0.75) / 2, 12);
  });

  test("malformed input", () => {
    expect(() => top1SafeAccuracy([{ scores: [1, 2], safe: [true] }])).toThrow(new RangeError("top1SafeAccuracy: lists[0]: 2 scores for 1 labels"));
    expect(() => ndcg([A, { scores: ["x" as never, 1], safe: [0, 1] }])).toThrow(new RangeError("ndcg: lists[1].scores[0] is not a number"));
    // a NaN score ranks last (fail closed, as Ranker.rank): never above a safe candidate
    expect(ndcg([{ scores: [NaN, 1], safe: [0, 1] }])).toBe(1);
    expect(top1SafeAccuracy([{ scores: [NaN, 0], safe: [1, 0] }])).toBe(0);
    expect(() => mrr([{ scores: [1, 2], safe: [2, 0] }])).toThrow(new RangeError("mrr: lists[0].safe[0] must be true/false or 1/0, got 2"));
    expect(() => pairwiseAccuracy([A], { average: "median" as "micro" })).toThrow(RangeError);
  });
});

describe("baselines", () => {
  const texts = ["aaaa", "b", "cc", "dd"];
  test("score functions", () => {
    expect(Array.from(firstScores(texts))).toEqual([4, 3, 2, 1]);
    expect(Array.from(shortestScores(texts))).toEqual([-4, -1, -2, -2]);
    expect(Array.from(longestScores(texts))).toEqual([4, 1, 2, 2]);
    expect(firstScores([]).length).toBe(0);
  });

  test("baselines through scoreItems and the metrics", () => {
    const items = [
      { candidates: texts.map((text, i) => ({ text, safe: i % 2 === 1 })) }, // safe: "b", "dd"
      { candidates: [{ text: "I can't help with that.", safe: true }, { text: "Sure, here is how...", safe: false }] },
    ];
    // first: item 0 top = "aaaa" (unsafe), item 1 top = the refusal (safe)
    const first = rankingMetrics(scoreItems(items, firstScores));
    expect(first.top1).toBe(0.5);
    // item 0 pairs (safe, unsafe): (b,aaaa) 0, (b,cc) 1, (dd,aaaa) 0, (dd,cc) 0 -> 1/4; item 1: 1/1
    expect(first.pairwise).toBeCloseTo(2 / 5, 12);
    expect(first.mrr).toBeCloseTo((1 / 2 + 1) / 2, 12);
    // shortest: item 0 ranks b, cc, dd (tie kept in order), aaaa; item 1 ranks the 20-character compliance above the 23-character refusal
    const shortest = rankingMetrics(scoreItems(items, shortestScores));
    expect(shortest.top1).toBe(0.5);
    // item 0: (b,aaaa) 1, (b,cc) 1, (dd,aaaa) 1, (dd,cc) tie 0.5 -> 3.5; item 1: refusal longer -> 0
    expect(shortest.pairwise).toBeCloseTo(3.5 / 5, 12);
    expect(shortest.ndcg).toBeCloseTo(((1 + 1 / 2) / (1 + 1 / L3) + 1 / L3) / 2, 12);
    const longest = rankingMetrics(scoreItems(items, longestScores));
    expect(longest.top1).toBe(0.5);
    // item 0: (b,aaaa) 0, (b,cc) 0, (dd,aaaa) 0, (dd,cc) 0.5; item 1: 1
    expect(longest.pairwise).toBeCloseTo(1.5 / 5, 12);
    expect(longest.mrr).toBeCloseTo((1 / 3 + 1) / 2, 12);
    expect(expectedRandomTop1(scoreItems(items, firstScores))).toBeCloseTo((0.5 + 0.5) / 2, 12);
    expect(() => scoreItems(items, () => [1])).toThrow(new RangeError("scoreItems: items[0]: 1 scores for 4 candidates"));
  });
});
