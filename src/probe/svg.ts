/**
 * A self-contained SVG line chart of a layer sweep: F1 and AUROC per layer, the best layer (by
 * F1) marked. No scripts, no external fonts or styles; every text is XML-escaped.
 */

export interface SweepChartRow {
  layer: number | "final";
  /** Validation F1, 0..1 (NaN: no point). */
  f1: number;
  /** Validation AUROC, 0..1 (NaN: no point). */
  auroc: number;
}

export interface SweepChartOptions {
  title?: string;
  /** Pixels (default 640). */
  width?: number;
  /** Pixels (default 360). */
  height?: number;
}

const F1_COLOR = "#1f77b4";
const AUROC_COLOR = "#d62728";
const BEST_COLOR = "#2ca02c";

/** Escapes text for XML element content and attribute values. */
export function escapeXml(s: string): string {
  // Characters XML 1.0 does not allow at all are dropped.
  const clean = s.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, "");
  return clean.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}

function num(v: number): string {
  return String(Math.round(v * 10) / 10);
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toFixed(3) : "n/a";
}

/** Index of the row with the highest finite F1 (the first on ties), or -1. */
export function bestLayerIndex(rows: readonly SweepChartRow[]): number {
  let best = -1;
  rows.forEach((r, i) => {
    if (Number.isFinite(r.f1) && (best < 0 || r.f1 > rows[best].f1)) best = i;
  });
  return best;
}

function dimension(name: string, v: number | undefined, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > 100000) {
    throw new RangeError(`${name} must be a number between ${min} and 100000, got ${String(v)}`);
  }
  return v;
}

/**
 * Render a sweep as an SVG document (a string starting with `<svg`). Layers are spaced evenly along
 * the x axis in the order given; values are clamped to the 0..1 axis and non-finite ones are left
 * out (breaking the line).
 */
export function sweepChartSvg(rows: readonly SweepChartRow[], opts: SweepChartOptions = {}): string {
  if (!Array.isArray(rows)) throw new TypeError("rows must be an array of { layer, f1, auroc }");
  const width = dimension("width", opts.width, 640, 200);
  const height = dimension("height", opts.height, 360, 150);
  const title = opts.title ?? "Layer sweep: validation F1 and AUROC";
  if (typeof title !== "string") throw new TypeError("title must be a string");

  const m = { top: 40, right: 20, bottom: 72, left: 52 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const n = rows.length;
  const x = (i: number) => m.left + ((i + 0.5) * plotW) / Math.max(n, 1);
  const y = (v: number) => m.top + (1 - Math.min(1, Math.max(0, v))) * plotH;
  const label = (l: number | "final") => String(l);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${num(width)}" height="${num(height)}" viewBox="0 0 ${num(width)} ${num(height)}" ` +
      `font-family="sans-serif" font-size="12" role="img" aria-label="${escapeXml(title)}">`,
  );
  out.push(`<title>${escapeXml(title)}</title>`);
  out.push(`<rect x="0" y="0" width="${num(width)}" height="${num(height)}" fill="#ffffff"/>`);
  out.push(`<text x="${num(width / 2)}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);

  // Y axis: grid and ticks at 0, 0.2, ..., 1.
  out.push(`<g class="y-axis">`);
  for (let t = 0; t <= 5; t++) {
    const v = t / 5;
    const yy = num(y(v));
    out.push(`<line x1="${num(m.left)}" y1="${yy}" x2="${num(m.left + plotW)}" y2="${yy}" stroke="#e0e0e0" stroke-width="1"/>`);
    out.push(`<line x1="${num(m.left - 5)}" y1="${yy}" x2="${num(m.left)}" y2="${yy}" stroke="#333333" stroke-width="1"/>`);
    out.push(`<text x="${num(m.left - 8)}" y="${yy}" text-anchor="end" dominant-baseline="middle">${v.toFixed(1)}</text>`);
  }
  out.push(`<line x1="${num(m.left)}" y1="${num(m.top)}" x2="${num(m.left)}" y2="${num(m.top + plotH)}" stroke="#333333" stroke-width="1"/>`);
  out.push(`</g>`);

  // X axis: one tick per layer, labels thinned when they would overlap.
  out.push(`<g class="x-axis">`);
  out.push(`<line x1="${num(m.left)}" y1="${num(m.top + plotH)}" x2="${num(m.left + plotW)}" y2="${num(m.top + plotH)}" stroke="#333333" stroke-width="1"/>`);
  const every = Math.max(1, Math.ceil((n * 30) / Math.max(plotW, 1)));
  const best = bestLayerIndex(rows);
  rows.forEach((r, i) => {
    const xx = num(x(i));
    out.push(`<line x1="${xx}" y1="${num(m.top + plotH)}" x2="${xx}" y2="${num(m.top + plotH + 5)}" stroke="#333333" stroke-width="1"/>`);
    if (i % every === 0 || i === n - 1 || i === best) {
      out.push(`<text class="layer-label" x="${xx}" y="${num(m.top + plotH + 18)}" text-anchor="middle">${escapeXml(label(r.layer))}</text>`);
    }
  });
  out.push(`<text x="${num(m.left + plotW / 2)}" y="${num(m.top + plotH + 36)}" text-anchor="middle">layer</text>`);
  out.push(`</g>`);

  if (n === 0) {
    out.push(`<text x="${num(m.left + plotW / 2)}" y="${num(m.top + plotH / 2)}" text-anchor="middle" fill="#777777">no data</text>`);
  }

  // Best layer marker (under the lines).
  if (best >= 0) {
    const xx = num(x(best));
    const r = rows[best];
    const anchor = best > n / 2 ? "end" : "start";
    const dx = anchor === "end" ? -6 : 6;
    out.push(`<g class="best-layer" data-layer="${escapeXml(label(r.layer))}">`);
    out.push(`<line x1="${xx}" y1="${num(m.top)}" x2="${xx}" y2="${num(m.top + plotH)}" stroke="${BEST_COLOR}" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    out.push(`<circle cx="${xx}" cy="${num(y(r.f1))}" r="7" fill="none" stroke="${BEST_COLOR}" stroke-width="2"/>`);
    out.push(
      `<text x="${num(x(best) + dx)}" y="${num(m.top + plotH - 10)}" text-anchor="${anchor}" fill="${BEST_COLOR}">` +
        `${escapeXml(`best: layer ${label(r.layer)} (F1 ${fmt(r.f1)}, AUROC ${fmt(r.auroc)})`)}</text>`,
    );
    out.push(`</g>`);
  }

  // The two series.
  const series = (name: string, cls: string, color: string, value: (r: SweepChartRow) => number, dash: string) => {
    const segments: string[] = [];
    let current: string[] = [];
    rows.forEach((r, i) => {
      const v = value(r);
      if (!Number.isFinite(v)) {
        if (current.length) segments.push(current.join(" "));
        current = [];
        return;
      }
      current.push(`${current.length ? "L" : "M"}${num(x(i))} ${num(y(v))}`);
    });
    if (current.length) segments.push(current.join(" "));
    out.push(`<g class="series ${cls}" data-series="${escapeXml(name)}">`);
    for (const d of segments) {
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ""}/>`);
    }
    rows.forEach((r, i) => {
      const v = value(r);
      if (!Number.isFinite(v)) return;
      out.push(
        `<circle cx="${num(x(i))}" cy="${num(y(v))}" r="3" fill="${color}">` +
          `<title>${escapeXml(`layer ${label(r.layer)}: ${name} ${fmt(v)}`)}</title></circle>`,
      );
    });
    out.push(`</g>`);
  };
  series("F1", "f1", F1_COLOR, (r) => r.f1, "");
  series("AUROC", "auroc", AUROC_COLOR, (r) => r.auroc, "6 3");

  // Legend, below the axis title.
  const ly = height - 16;
  const lx = m.left;
  out.push(`<g class="legend">`);
  out.push(`<line x1="${num(lx)}" y1="${num(ly)}" x2="${num(lx + 24)}" y2="${num(ly)}" stroke="${F1_COLOR}" stroke-width="2"/>`);
  out.push(`<text x="${num(lx + 30)}" y="${num(ly)}" dominant-baseline="middle">F1</text>`);
  out.push(`<line x1="${num(lx + 70)}" y1="${num(ly)}" x2="${num(lx + 94)}" y2="${num(ly)}" stroke="${AUROC_COLOR}" stroke-width="2" stroke-dasharray="6 3"/>`);
  out.push(`<text x="${num(lx + 100)}" y="${num(ly)}" dominant-baseline="middle">AUROC</text>`);
  out.push(`<line x1="${num(lx + 168)}" y1="${num(ly - 7)}" x2="${num(lx + 168)}" y2="${num(ly + 7)}" stroke="${BEST_COLOR}" stroke-width="1.5" stroke-dasharray="4 3"/>`);
  out.push(`<text x="${num(lx + 176)}" y="${num(ly)}" dominant-baseline="middle">best layer (F1)</text>`);
  out.push(`</g>`);

  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
