/**
 * The report of a guard training (trainGuard) as one self-contained HTML file: no
 * scripts, no external resources; the layer sweep as an inline SVG chart, tables of
 * the methods compared, the metrics per source, the confusion table, and the hardest
 * mistakes of each kind (truncated, escaped).
 */
import type { ModelInfo } from "../core/model";
import { escapeXml, sweepChartSvg } from "./svg";
import type { GuardTraining, Mistake } from "./train-guard";
import type { Metrics } from "./types";

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(1) : "n/a");
const num = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : "n/a");

function metricsRow(name: string, m: Metrics): string {
  // without unsafe prompts precision, recall and F1 are undefined; without safe ones the FPR is
  const pos = (x: number) => (m.positives > 0 ? pct(x) : "n/a");
  const fpr = m.n - m.positives > 0 ? pct(m.fpr) : "n/a";
  return `<tr><th scope="row">${escapeXml(name)}</th><td>${m.n}</td><td>${m.positives}</td><td>${pos(m.precision)}</td><td>${pos(m.recall)}</td><td>${pos(m.f1)}</td><td>${fpr}</td><td>${num(m.auroc)}</td></tr>`;
}

const METRIC_HEAD = "<tr><th></th><th>prompts</th><th>unsafe</th><th>precision %</th><th>recall %</th><th>F1 %</th><th>FPR %</th><th>AUROC</th></tr>";

function mistakes(title: string, list: Mistake[], note: string): string {
  const items = list.length
    ? list.map((m) => `<li><span class="score">${num(m.score)}</span> <span class="src">${escapeXml(m.source)}</span> ${escapeXml(m.text.length > 240 ? `${m.text.slice(0, 240)}…` : m.text)}</li>`).join("\n")
    : "<li>none</li>";
  return `<section><h2>${escapeXml(title)}</h2><p class="note">${escapeXml(note)}</p><ol class="mistakes">${items}</ol></section>`;
}

/** The report as HTML text. */
export function guardReportHtml(t: GuardTraining, model: Pick<ModelInfo, "name" | "arch" | "nLayer" | "nEmbd" | "fingerprint" | "path">): string {
  const p = t.probe;
  const c = t.confusion;
  const chart = sweepChartSvg(
    t.sweep.map((r) => ({ layer: r.layer, f1: r.val.f1, auroc: r.val.auroc })),
    { width: 760, height: 380, title: "Layer sweep (LPM per layer): validation F1 and AUROC" },
  );
  const sources = Object.entries(t.test.perSource)
    .map(([s, m]) => metricsRow(s, m))
    .join("\n");
  const data = Object.entries(t.data.perSource)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([s, n]) => `<tr><th scope="row">${escapeXml(s)}</th><td>${n.safe}</td><td>${n.unsafe}</td></tr>`)
    .join("\n");
  const candidates = t.candidates
    .map(
      (cand) =>
        `<tr${cand.method === p.method ? ' class="chosen"' : ""}><th scope="row">${cand.method}${cand.method === p.method ? " (chosen)" : ""}</th><td>${escapeXml(
          cand.layers.length === 1 ? `layer ${String(cand.layers[0])}` : `${cand.layers.length} layers`,
        )}</td><td>${pct(cand.val.f1)}</td><td>${pct(cand.val.fpr)}</td><td>${num(cand.val.auroc)}</td><td>${pct(cand.test.f1)}</td><td>${pct(cand.test.fpr)}</td><td>${num(cand.test.auroc)}</td></tr>`,
    )
    .join("\n");
  const title = `Guard report: ${model.name || model.arch}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeXml(title)}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px auto; max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th[scope="row"] { text-align: left; font-weight: 600; } tr.chosen { background: #eef6ee; }
.confusion td { min-width: 70px; text-align: center; font-size: 16px; } .note { color: #555; }
.mistakes li { margin: 4px 0; } .score { font-family: monospace; background: #f3f3f3; padding: 0 4px; } .src { color: #777; font-size: 12px; }
.kv td:first-child { text-align: left; color: #555; } .kv td { text-align: left; }
</style>
</head>
<body>
<h1>${escapeXml(title)}</h1>
<table class="kv" id="summary">
<tr><td>model</td><td>${escapeXml(model.path)} (${escapeXml(model.arch)}, ${model.nLayer} layers x ${model.nEmbd}, fingerprint ${escapeXml(model.fingerprint)})</td></tr>
<tr><td>chosen</td><td>${p.method} on ${escapeXml(p.layers.length === 1 ? `layer ${String(p.layers[0])}` : `${p.layers.length} layers`)}</td></tr>
<tr><td>threshold</td><td>${num(p.threshold)}: the false-positive rate on safe validation prompts is ${pct(t.validation.fpr)}% (target ${pct(t.targetFpr)}%)</td></tr>
<tr><td>test split</td><td>F1 ${pct(t.test.overall.f1)}%, recall ${pct(t.test.overall.recall)}%, FPR ${pct(t.test.overall.fpr)}%, AUROC ${num(t.test.overall.auroc)} on ${t.test.overall.n} prompts</td></tr>
<tr><td>data</td><td>${t.data.train} train / ${t.data.val} validation / ${t.data.test} test prompts from ${t.data.files.map((f) => escapeXml(f)).join(", ")}</td></tr>
<tr><td>time</td><td>${t.seconds.toFixed(1)} s</td></tr>
</table>

<section><h2>Layer sweep</h2>
<p class="note">One LPM per layer on the validation split; the single-layer methods use layer ${escapeXml(String(t.bestLayer))}, the best on validation.</p>
<figure id="sweep-chart">${chart}</figure>
</section>

<section><h2>Methods compared</h2>
<p class="note">Each method's threshold gives the target false-positive rate on safe validation prompts; the chosen method has the best validation F1.</p>
<table id="methods"><tr><th>method</th><th>layers</th><th>val F1 %</th><th>val FPR %</th><th>val AUROC</th><th>test F1 %</th><th>test FPR %</th><th>test AUROC</th></tr>
${candidates}
</table></section>

<section><h2>Held-out test split</h2>
<table id="confusion" class="confusion">
<tr><th></th><th>flagged</th><th>passed</th></tr>
<tr><th scope="row">unsafe</th><td>${c.tp}</td><td>${c.fn}</td></tr>
<tr><th scope="row">safe</th><td>${c.fp}</td><td>${c.tn}</td></tr>
</table>
<table id="per-source">${METRIC_HEAD}
${metricsRow("all", t.test.overall)}
${sources}
</table></section>

<p class="note">Content warning: the lists below quote prompts from safety datasets, some of them offensive or harmful.</p>
${mistakes("Missed unsafe prompts (lowest scores)", t.hardest.missed, "Unsafe test prompts the guard passed, the most confident misses first.")}
${mistakes("False alarms (highest scores)", t.hardest.falseAlarms, "Safe test prompts the guard flagged, the most confident first.")}

<section><h2>Data</h2><table id="data"><tr><th>source</th><th>safe</th><th>unsafe</th></tr>
${data}
</table></section>
</body>
</html>
`;
}
