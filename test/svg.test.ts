import { bestLayerIndex, escapeXml, sweepChartSvg } from "../src/probe/svg";

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/**
 * A small strict XML parser (elements, attributes, text, the five predefined entities and numeric
 * character references; no DTDs or CDATA). Throws on anything not well-formed.
 */
function parseXml(src: string): XmlElement {
  let pos = 0;
  const fail = (msg: string): never => {
    throw new Error(`${msg} at offset ${pos}: ${JSON.stringify(src.slice(pos, pos + 40))}`);
  };
  const NAME = /[A-Za-z_:][A-Za-z0-9_.:-]*/y;
  const name = (): string => {
    NAME.lastIndex = pos;
    const m = NAME.exec(src);
    if (!m) fail("expected a name");
    pos += m![0].length;
    return m![0];
  };
  const ws = () => {
    while (pos < src.length && /\s/.test(src[pos])) pos++;
  };
  const decode = (s: string): string => {
    if (/[<]/.test(s)) fail("raw < in text or attribute");
    return s.replace(/&([^;]*);?/g, (all, ent: string) => {
      if (!all.endsWith(";")) fail(`unterminated entity ${all}`);
      const named: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
      if (ent in named) return named[ent];
      const m = /^#(x[0-9a-fA-F]+|[0-9]+)$/.exec(ent);
      if (!m) fail(`unknown entity &${ent};`);
      return String.fromCodePoint(m![1][0] === "x" ? parseInt(m![1].slice(1), 16) : parseInt(m![1], 10));
    });
  };
  const element = (): XmlElement => {
    if (src[pos] !== "<") fail("expected <");
    pos++;
    const el: XmlElement = { name: name(), attrs: {}, children: [], text: "" };
    for (;;) {
      const before = pos;
      ws();
      if (src.startsWith("/>", pos)) {
        pos += 2;
        return el;
      }
      if (src[pos] === ">") {
        pos++;
        break;
      }
      if (pos === before) fail("expected whitespace before an attribute");
      const an = name();
      if (an in el.attrs) fail(`duplicate attribute ${an}`);
      ws();
      if (src[pos] !== "=") fail("expected =");
      pos++;
      ws();
      const q = src[pos];
      if (q !== '"' && q !== "'") fail("expected a quoted attribute value");
      const end = src.indexOf(q, pos + 1);
      if (end < 0) fail("unterminated attribute value");
      el.attrs[an] = decode(src.slice(pos + 1, end));
      pos = end + 1;
    }
    for (;;) {
      const lt = src.indexOf("<", pos);
      if (lt < 0) fail(`unclosed <${el.name}>`);
      el.text += decode(src.slice(pos, lt));
      pos = lt;
      if (src.startsWith("</", pos)) {
        pos += 2;
        const close = name();
        if (close !== el.name) fail(`</${close}> closes <${el.name}>`);
        ws();
        if (src[pos] !== ">") fail("expected >");
        pos++;
        return el;
      }
      if (src.startsWith("<!--", pos)) {
        const end = src.indexOf("-->", pos);
        if (end < 0) fail("unterminated comment");
        pos = end + 3;
        continue;
      }
      el.children.push(element());
    }
  };
  ws();
  const root = element();
  ws();
  if (pos !== src.length) fail("content after the root element");
  return root;
}

function all(el: XmlElement, pred: (e: XmlElement) => boolean, out: XmlElement[] = []): XmlElement[] {
  if (pred(el)) out.push(el);
  for (const c of el.children) all(c, pred, out);
  return out;
}

function textOf(el: XmlElement): string {
  return el.text + el.children.map(textOf).join("");
}

const ROWS = [
  { layer: 0, f1: 0.5, auroc: 0.6 },
  { layer: 1, f1: 0.7, auroc: 0.8 },
  { layer: 2, f1: 0.91, auroc: 0.95 },
  { layer: 3, f1: 0.85, auroc: 0.97 },
  { layer: "final" as const, f1: 0.8, auroc: 0.9 },
];

test("the checker itself rejects malformed XML", () => {
  expect(() => parseXml("<a><b></a></b>")).toThrow("</a> closes <b>");
  expect(() => parseXml('<a x="1" x="2"/>')).toThrow("duplicate attribute");
  expect(() => parseXml("<a>1 < 2</a>")).toThrow();
  expect(() => parseXml("<a>AT&T</a>")).toThrow();
  expect(() => parseXml("<a/><b/>")).toThrow("content after the root element");
  expect(parseXml('<a t="&lt;&amp;&#x41;">x<b/>y</a>')).toEqual({ name: "a", attrs: { t: "<&A" }, children: [{ name: "b", attrs: {}, children: [], text: "" }], text: "xy" });
});

test("a well-formed SVG with both series, axes, legend and the best layer marked", () => {
  const svg = sweepChartSvg(ROWS, { title: 'Probe <sweep> & "friends"', width: 700, height: 400 });
  const root = parseXml(svg);
  expect(root.name).toBe("svg");
  expect(root.attrs.xmlns).toBe("http://www.w3.org/2000/svg");
  expect(root.attrs.width).toBe("700");
  expect(root.attrs.viewBox).toBe("0 0 700 400");
  // the title survives escaping
  expect(all(root, (e) => e.name === "title")[0].text).toBe('Probe <sweep> & "friends"');
  expect(svg).toContain("Probe &lt;sweep&gt; &amp; &quot;friends&quot;");

  const series = all(root, (e) => e.attrs["data-series"] !== undefined);
  expect(series.map((s) => s.attrs["data-series"])).toEqual(["F1", "AUROC"]);
  for (const s of series) {
    expect(all(s, (e) => e.name === "path").length).toBe(1);
    expect(all(s, (e) => e.name === "circle").length).toBe(ROWS.length);
    const d = all(s, (e) => e.name === "path")[0].attrs.d;
    expect(d.match(/[ML]/g)!.length).toBe(ROWS.length);
  }
  // F1 points: higher value, smaller y
  const f1y = all(series[0], (e) => e.name === "circle").map((c) => Number(c.attrs.cy));
  expect(f1y[2]).toBeLessThan(f1y[1]);
  expect(f1y[1]).toBeLessThan(f1y[0]);

  // y ticks 0.0 .. 1.0 and every layer label
  const texts = all(root, (e) => e.name === "text").map(textOf);
  for (const t of ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0", "layer"]) expect(texts).toContain(t);
  const layerLabels = all(root, (e) => e.attrs.class === "layer-label").map(textOf);
  expect(layerLabels).toEqual(["0", "1", "2", "3", "final"]);
  // legend
  const legend = all(root, (e) => e.attrs.class === "legend")[0];
  expect(all(legend, (e) => e.name === "text").map(textOf)).toEqual(["F1", "AUROC", "best layer (F1)"]);

  // the best layer by F1 (layer 2, not layer 3 which has the best AUROC)
  const best = all(root, (e) => e.attrs.class === "best-layer");
  expect(best.length).toBe(1);
  expect(best[0].attrs["data-layer"]).toBe("2");
  expect(textOf(best[0])).toContain("best: layer 2 (F1 0.910, AUROC 0.950)");
  const marker = all(best[0], (e) => e.name === "line")[0];
  expect(marker.attrs.x1).toBe(all(series[0], (e) => e.name === "circle")[2].attrs.cx);
});

test("edge cases: empty, one row, missing values, many layers, ties, bad sizes", () => {
  const empty = parseXml(sweepChartSvg([]));
  expect(all(empty, (e) => e.attrs.class === "best-layer").length).toBe(0);
  expect(all(empty, (e) => e.name === "text").map(textOf)).toContain("no data");

  const one = parseXml(sweepChartSvg([{ layer: "final", f1: 0.4, auroc: 0.5 }]));
  expect(all(one, (e) => e.attrs.class === "best-layer")[0].attrs["data-layer"]).toBe("final");

  // NaN breaks the line; out-of-range values are clamped to the axis
  const gaps = parseXml(
    sweepChartSvg([
      { layer: 0, f1: 0.2, auroc: 1.3 },
      { layer: 1, f1: NaN, auroc: 0.5 },
      { layer: 2, f1: 0.3, auroc: -1 },
      { layer: 3, f1: 0.1, auroc: 0.5 },
    ]),
  );
  const [f1, auroc] = all(gaps, (e) => e.attrs["data-series"] !== undefined);
  expect(all(f1, (e) => e.name === "path").length).toBe(2);
  expect(all(f1, (e) => e.name === "circle").length).toBe(3);
  const ys = all(auroc, (e) => e.name === "circle").map((c) => Number(c.attrs.cy));
  const ticks = all(gaps, (e) => e.name === "text" && (textOf(e) === "1.0" || textOf(e) === "0.0")).map((e) => Number(e.attrs.y));
  expect(ys[0]).toBe(ticks[1]); // 1.0
  expect(ys[2]).toBe(ticks[0]); // 0.0
  expect(all(gaps, (e) => e.attrs.class === "best-layer")[0].attrs["data-layer"]).toBe("2");

  // 80 layers: labels thinned but the best one is always labelled
  const many = Array.from({ length: 80 }, (_, i) => ({ layer: i, f1: i === 37 ? 0.99 : 0.5, auroc: 0.7 }));
  const m = parseXml(sweepChartSvg(many));
  const labels = all(m, (e) => e.attrs.class === "layer-label").map(textOf);
  expect(labels.length).toBeLessThan(40);
  expect(labels).toContain("37");
  expect(labels).toContain("79");

  expect(bestLayerIndex([{ layer: 0, f1: 0.8, auroc: 0 }, { layer: 1, f1: 0.8, auroc: 1 }])).toBe(0);
  expect(bestLayerIndex([{ layer: 0, f1: NaN, auroc: 0 }])).toBe(-1);
  expect(() => sweepChartSvg(ROWS, { width: 10 })).toThrow(RangeError);
  expect(escapeXml("a\u0001b<'>")).toBe("ab&lt;&apos;&gt;");
});
