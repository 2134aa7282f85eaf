// The tune report as one self-contained HTML file: inline CSS and SVG, no script, nothing fetched from a network,
// so it opens from a device's disk or an e-mail attachment. Rendering is pure; writing is atomic.
import { writeFileAtomic } from '../util/atomic.js';
import type { Measurement, TuneResult } from '../types.js';
import { latencyAt, qualityScore, violations, type TuneLimits } from '../tune/decide.js';
import type { TuneOutcome } from '../tune/options.js';
import { escapeXml as esc, scatterSvg, type ScatterPoint } from './svg.js';

type Result = TuneResult & Partial<Omit<TuneOutcome, keyof TuneResult>>;

function fmtBytes(b: number): string {
  return b < 1024 ? `${b} B` : b < 1024 ** 2 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 1024 ** 2).toFixed(2)} MiB`;
}
const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '–');

/** The quality axis: accuracy in % when measured, else SQNR in dB (exact copies drawn just above the best). */
function qualityAxis(r: Result): { label: string; value: (m: Measurement) => number; text: (m: Measurement) => string } {
  if (r.trials.some((m) => m.quality.accuracy !== undefined)) {
    return { label: 'top-1 accuracy (%)', value: (m) => (m.quality.accuracy ?? NaN) * 100, text: (m) => (m.quality.accuracy === undefined ? '–' : `${(m.quality.accuracy * 100).toFixed(2)}%`) };
  }
  const finite = r.trials.map((m) => m.quality.sqnrDb ?? NaN).filter(Number.isFinite);
  const top = finite.length ? Math.max(...finite) + 6 : 60;
  return {
    label: 'fidelity to fp32: SQNR (dB, higher is closer; exact copies at the top)',
    value: (m) => (m.quality.sqnrDb === Infinity ? top : m.quality.sqnrDb ?? NaN),
    text: (m) => (m.quality.sqnrDb === undefined ? '–' : m.quality.sqnrDb === Infinity ? 'exact' : `${m.quality.sqnrDb.toFixed(1)} dB`) + (m.quality.cosine !== undefined ? ` · cos ${m.quality.cosine.toFixed(5)}` : ''),
  };
}

const same = (a: Measurement | null | undefined, b: Measurement) => !!a && a.label === b.label && a.model.sha256 === b.model.sha256;

/** Measurement.throttled: true when taken while throttled or with a frequency change; null when the device cannot tell. */
function throttledCell(m: Measurement): string {
  if (m.throttled === true) return '<td class="hot" title="throttled or the CPU frequency changed during this measurement">⚠ yes</td>';
  if (m.throttled === false) return '<td>no</td>';
  return '<td title="this device cannot tell">?</td>';
}

export function renderTuneReport(r: Result): string {
  const p = r.budget.percentile;
  const limits = r.budget as TuneLimits;
  const qa = qualityAxis(r);
  const baseAcc = r.quality?.baselineAccuracy ?? r.baseline.quality.accuracy;
  const points: ScatterPoint[] = r.trials.map((m) => ({
    x: latencyAt(m, p), y: qa.value(m), label: m.label,
    role: same(r.chosen, m) ? 'chosen' : r.front.some((f) => same(f, m)) ? 'front' : same(r.baseline, m) ? 'baseline' : undefined,
    detail: `${m.label}\np${p} ${ms(latencyAt(m, p))} ms · ${qa.text(m)} · ${fmtBytes(m.model.bytes)}`,
  }));
  for (const u of r.search?.unmeasured ?? []) {
    const y = qa.value({ quality: u.quality } as Measurement);
    points.push({ x: u.predictedMs, y, label: u.label, role: 'predicted', detail: `${u.label} (not measured)\npredicted p${p} ${ms(u.predictedMs)} ms · ${qa.text({ quality: u.quality } as Measurement)}` });
  }
  if (r.chosen && !r.trials.some((m) => same(r.chosen, m))) points.push({ x: latencyAt(r.chosen, p), y: qa.value(r.chosen), label: r.chosen.label, role: 'chosen' });
  const floor = limits.maxAccuracyDrop !== undefined && baseAcc !== undefined && qa.label.startsWith('top-1')
    ? { at: (baseAcc * 100) - limits.maxAccuracyDrop, label: `accuracy floor (−${limits.maxAccuracyDrop} pt)` } : undefined;
  const chart = scatterSvg(points, {
    xLabel: `p${p} latency (ms) on ${r.device.id}`, yLabel: qa.label, connectFront: true,
    xLine: { at: r.budget.latencyMs, label: `budget ${r.budget.latencyMs} ms` }, ...(floor ? { yLine: floor } : {}),
  });
  const chosenRow = (m: Measurement) => same(r.chosen, m);
  const rows = r.trials.map((m) => {
    const vs = violations(m, limits, baseAcc);
    const cls = chosenRow(m) ? ' class="chosen"' : vs.length ? ' class="miss"' : '';
    return `<tr${cls}><td>${chosenRow(m) ? '→ ' : ''}${esc(m.label)}</td><td>${fmtBytes(m.model.bytes)}</td><td>${ms(latencyAt(m, p))}</td><td>${ms(m.latencyMs.p50)}</td>` +
      `<td>${(r.baseline.latencyMs.p50 / m.latencyMs.p50).toFixed(2)}×</td><td>${esc(qa.text(m))}</td><td>${Number.isFinite(m.peakRssMB) ? m.peakRssMB.toFixed(0) : '–'}</td>` +
      `<td>${r.front.some((f) => same(f, m)) ? '●' : ''}</td>${throttledCell(m)}<td>${vs.length ? esc(vs.map((v) => v.constraint).join(', ')) : 'meets all'}</td></tr>`;
  }).join('\n');
  const hot = r.trials.filter((m) => m.throttled === true);
  const unknown = r.trials.filter((m) => m.throttled === null || m.throttled === undefined).length;
  const throttleNote = hot.length
    ? `<p class="warn">⚠ ${hot.length} of ${r.trials.length} trial(s) were measured while the CPU was throttled or changed frequency (${esc(hot.map((m) => m.label).join(', '))}): their latency may be higher than this device normally gives. Cool the device or rerun them.</p>`
    : unknown === r.trials.length ? '<p class="note">This device cannot tell whether it throttled during the measurements (column "throttled": ?).</p>' : '';
  const verdict = r.chosen
    ? `<div class="verdict ok"><b>Chosen: ${esc(r.chosen.label)}</b> — p${p} ${ms(latencyAt(r.chosen, p))} ms within the ${r.budget.latencyMs} ms budget (confirmed with a longer benchmark), ${esc(qa.text(r.chosen))}, ${fmtBytes(r.chosen.model.bytes)} (fp32 ${fmtBytes(r.baseline.model.bytes)}), ${(r.baseline.latencyMs.p50 / r.chosen.latencyMs.p50).toFixed(2)}× the fp32 speed.${r.chosen.throttled ? ' ⚠ Its confirmation ran while the CPU was throttled or changed frequency.' : ''}${r.output ? ` Written to <code>${esc(r.output)}</code>.` : ''}</div>`
    : `<div class="verdict bad"><b>Budget not met.</b> ${esc(r.infeasible?.reason ?? 'no candidate meets the constraints')}</div>`;
  const quality = limits.maxAccuracyDrop !== undefined ? `accuracy drop ≤ ${limits.maxAccuracyDrop} points vs fp32${baseAcc !== undefined ? ` (${(baseAcc * 100).toFixed(2)}%)` : ''}` : '';
  const fidelity = limits.minFidelity !== undefined ? `cosine to fp32 ≥ ${limits.minFidelity}` : '';
  const facts: Array<[string, string]> = [
    ['model', `${r.model.path} (${fmtBytes(r.model.bytes)}, sha256 ${r.model.sha256.slice(0, 12)}…)`],
    ['device', `${r.device.id} · target ${r.device.target}`],
    ['budget', [`p${p} ≤ ${r.budget.latencyMs} ms`, r.budget.memoryMB !== undefined ? `peak memory ≤ ${r.budget.memoryMB} MB` : '', quality, fidelity].filter(Boolean).join(' · ')],
    ...(r.quality ? [['quality', `${r.quality.metric} on ${r.quality.examples} example(s) from ${r.quality.from}`] as [string, string]] : []),
    ...(r.space ? [['space', `${r.space.candidates} candidates over ${r.space.models} model(s), ${r.space.skipped.length} not tried`] as [string, string]] : []),
    ...(r.search ? [['search', `${r.strategy} · ${r.trials.length} trial(s) (${r.search.measured} measured now, ${r.search.replayed} replayed from the journal) · stopped: ${r.search.stopReason}`] as [string, string]] : []),
    ['baseline', `${r.baseline.label}: p${p} ${ms(latencyAt(r.baseline, p))} ms`],
    ['wall time', `${r.wallS.toFixed(1)} s`],
  ];
  const skipped = r.space?.skipped.length
    ? `<details><summary>${r.space.skipped.length} candidate(s) not tried, and why</summary><table><tr><th>candidate</th><th>why</th></tr>${r.space.skipped.map((s) => `<tr><td>${esc(s.label)}</td><td>${esc(s.why)}</td></tr>`).join('')}</table></details>` : '';
  const log = r.search?.log.length
    ? `<details><summary>search order (${r.search.log.length} steps)</summary><table><tr><th>#</th><th>candidate</th><th>predicted ms</th><th>chance</th><th>measured ms</th><th>why</th></tr>${r.search.log.map((l, i) => `<tr><td>${i + 1}</td><td>${esc(l.label)}${l.replayed ? ' (journal)' : ''}</td><td>${l.predictedMs !== undefined ? ms(l.predictedMs) : ''}</td><td>${l.pBudget !== undefined ? `${(l.pBudget * 100).toFixed(0)}%` : ''}</td><td>${l.measuredMs !== undefined ? ms(l.measuredMs) : esc(l.failed ?? '')}</td><td>${esc(l.why)}</td></tr>`).join('')}</table></details>` : '';
  const confirms = r.search?.confirmations.length
    ? `<p>Confirmation: ${r.search.confirmations.map((c) => `${esc(c.label)} ${ms(c.searchMs)} → ${ms(c.confirmMs)} ms (${c.held ? 'held' : `missed: ${esc(c.violations.join(', '))}`})`).join('; ')}</p>` : '';
  const notes = [...(r.notes ?? []), ...(r.journal?.notes ?? [])];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgetune tune — ${esc(r.model.path.split('/').pop() ?? r.model.path)}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#24292f;margin:24px auto;max-width:1100px;padding:0 16px}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:24px 0 8px}
.verdict{padding:10px 14px;border-radius:6px;margin:12px 0}.ok{background:#dafbe1;border:1px solid #4ac26b}.bad{background:#ffebe9;border:1px solid #ff8182}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left}
th{background:#f6f8fa}tr.chosen td{background:#dafbe1;font-weight:600}tr.miss td{color:#6e7781}td.hot{color:#9a6700;font-weight:600}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px}.note{color:#6e7781}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}dt{color:#57606a}dd{margin:0}
code{font-size:12px}.legend span{margin-right:14px}.dot{display:inline-block;width:10px;height:10px;border-radius:50%;vertical-align:middle;margin-right:4px}
</style></head><body>
<h1>edgetune tune report</h1>
${verdict}
<dl>${facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>
<h2>Latency against quality</h2>
<div class="legend"><span><i class="dot" style="background:#9aa5b1"></i>trial</span><span><i class="dot" style="background:#1f6feb"></i>Pareto front</span><span><i class="dot" style="background:#1a7f37"></i>chosen</span><span><i class="dot" style="background:#8250df;border-radius:0"></i>fp32 baseline</span><span><i class="dot" style="border:1px dashed #9aa5b1"></i>not measured (predicted latency)</span><span style="color:#cf222e">- - budget</span></div>
${chart}
${confirms}
<h2>Trials</h2>
${throttleNote}
<table><tr><th>candidate</th><th>size</th><th>p${p} ms</th><th>p50 ms</th><th>speed-up</th><th>quality</th><th>peak MB</th><th>front</th><th>throttled</th><th>constraints</th></tr>
${rows}
</table>
${log}
${skipped}
${notes.length ? `<h2>Notes</h2><ul>${notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : ''}
<p style="color:#6e7781;font-size:12px">Generated by edgetune. Quality score used for ranking: ${qa.label}; ${esc(`higher quality wins, ties go to the smaller model, then the faster one (score of the chosen: ${r.chosen ? String(qualityScore(r.chosen)) : 'n/a'})`)}.</p>
</body></html>
`;
}

export async function writeTuneReport(r: Result, path: string): Promise<void> {
  await writeFileAtomic(path, renderTuneReport(r));
}
