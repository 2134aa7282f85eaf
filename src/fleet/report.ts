// The fleet report: one self-contained HTML page (inline SVG, no scripts or network assets) with, per hardware
// target, the latency and quality of what each device runs and the merged Pareto fronts of distributed tunes.
import { prepareOutputs, writeFileAtomic } from '../util/atomic.js';
import { latencyAt } from '../tune/decide.js';
import type { Measurement } from '../types.js';
import { recipeLabel } from '../schema/recipe.js';
import { isMeasurement, isTuneResult, restoreMeasurement } from './result-doc.js';
import type { FrontRow, ResultRow, ResultsStore } from './store/results.js';
import { esc, scatterSvg, type Point } from './svg.js';

export interface ReportDevice {
  device: string;
  /** The recipe the device's latest deploy result names (undefined: no deploy recorded). */
  deployed?: string;
  /** Where latency and quality come from (see reportData); `from` names a merged front when not the device's own. */
  measured?: { label: string; p50?: number; p90?: number; accuracy?: number; sqnrDb?: number; at: string; jobId: string; from?: string };
  simulated: boolean;
}

export interface ReportTarget {
  target: string;
  devices: ReportDevice[];
  fronts: FrontRow[];
}

export interface ReportData {
  title: string;
  generatedAt: string;
  targets: ReportTarget[];
}

/** Every measurement a result holds: a bench's, or a tune's trials (its choice among them). */
function measurementsOf(r: ResultRow): Measurement[] {
  if (isMeasurement(r.doc)) return [restoreMeasurement(r.doc)];
  if (isTuneResult(r.doc)) return (r.doc.trials ?? []).filter(isMeasurement).map(restoreMeasurement);
  return [];
}

type Measured = NonNullable<ReportDevice['measured']>;

function measured(m: Measurement, at: string, jobId: string, from?: string): Measured {
  return { label: m.label, p50: m.latencyMs?.p50, p90: m.latencyMs?.p90, accuracy: m.quality?.accuracy, sqnrDb: m.quality?.sqnrDb, at, jobId, ...(from ? { from } : {}) };
}

/**
 * Folds stored results (oldest first) into what each device runs and how fast and good that is: the device's own
 * latest measurement of its deployed recipe, else the merged front's figure for that recipe (measured by another
 * device of the class in a distributed tune), else its latest measurement of anything.
 */
export function reportData(results: ResultRow[], fronts: FrontRow[], opts: { title?: string; now?: Date } = {}): ReportData {
  type Acc = { target?: string; dev: ReportDevice; own: Array<{ m: Measurement; at: string; jobId: string }> };
  const byDevice = new Map<string, Acc>();
  for (const r of [...results].sort((a, b) => a.receivedAt.localeCompare(b.receivedAt))) {
    const e = byDevice.get(r.device) ?? { dev: { device: r.device, simulated: false }, own: [] };
    byDevice.set(r.device, e);
    if (r.target) e.target = r.target;
    if (r.simulated) e.dev.simulated = true;
    if (r.type === 'deploy' || r.type === 'rollback') {
      const d = (r.doc as { deployed?: { recipe?: unknown } }).deployed;
      e.dev.deployed = r.label ?? (d ? '(recipe not given)' : undefined);
      continue;
    }
    for (const m of measurementsOf(r)) e.own.push({ m, at: r.receivedAt, jobId: r.jobId });
  }
  const targets = new Map<string, ReportTarget>();
  const get = (t: string) => targets.get(t) ?? targets.set(t, { target: t, devices: [], fronts: [] }).get(t)!;
  for (const f of fronts) get(f.target).fronts.push(f);
  for (const { target, dev, own } of byDevice.values()) {
    const t = get(target ?? 'unknown target');
    const mine = dev.deployed ? own.filter((o) => recipeLabel(o.m.recipe) === dev.deployed).at(-1) : undefined;
    const fromFront = dev.deployed && !mine
      ? t.fronts.flatMap((f) => f.front.map((m) => ({ f, m: restoreMeasurement(m) }))).filter((x) => recipeLabel(x.m.recipe) === dev.deployed).at(-1)
      : undefined;
    const pick = mine ? measured(mine.m, mine.at, mine.jobId)
      : fromFront ? measured(fromFront.m, fromFront.f.createdAt, fromFront.f.runId, `merged front of ${fromFront.f.runId}`)
      : own.length ? measured(own.at(-1)!.m, own.at(-1)!.at, own.at(-1)!.jobId) : undefined;
    if (pick) dev.measured = pick;
    t.devices.push(dev);
  }
  for (const t of targets.values()) t.devices.sort((a, b) => a.device.localeCompare(b.device));
  return {
    title: opts.title ?? 'edgetune fleet report',
    generatedAt: (opts.now ?? new Date()).toISOString(),
    targets: [...targets.values()].sort((a, b) => a.target.localeCompare(b.target)),
  };
}

/** Accuracy when every plotted figure has it, else SQNR (dB, finite values only). */
function qualityAxis(t: ReportTarget): { name: string; of: (q: { accuracy?: number; sqnrDb?: number }) => number | undefined } {
  const qs: Array<{ accuracy?: number; sqnrDb?: number }> = [...t.devices.flatMap((d) => (d.measured ? [d.measured] : [])), ...t.fronts.flatMap((f) => f.front.map((m) => m.quality ?? {}))];
  if (qs.length && qs.every((q) => q.accuracy !== undefined)) return { name: 'accuracy', of: (q) => q.accuracy };
  return { name: 'SQNR to fp32 (dB; exact matches not plotted)', of: (q) => (q.sqnrDb !== undefined && Number.isFinite(q.sqnrDb) ? q.sqnrDb : undefined) };
}

function targetSection(t: ReportTarget): string {
  const axis = qualityAxis(t);
  const points: Point[] = [];
  for (const d of t.devices) {
    const y = d.measured ? axis.of(d.measured) : undefined;
    if (d.measured?.p90 === undefined || y === undefined) continue;
    points.push({ x: d.measured.p90, y, series: d.deployed ?? d.measured.label, label: `${d.device}: ${d.measured.label}, p90 ${d.measured.p90.toFixed(3)} ms, ${axis.name.split(' ')[0]} ${y.toFixed(4)}` });
  }
  const lines = t.fronts.map((f) => ({
    name: `merged front ${f.runId}`,
    points: f.front.map((raw) => restoreMeasurement(raw)).flatMap((m) => {
      const y = axis.of(m.quality ?? {});
      return y === undefined ? [] : [{ x: latencyAt(m, f.percentile as 50 | 90 | 95 | 99), y, label: `${m.label}${f.winner && f.winner.label === m.label ? ' (winner)' : ''}` }];
    }),
  }));
  const svg = scatterSvg({ title: `${t.target}: deployed recipes and merged Pareto fronts`, xLabel: 'latency p90 (ms)', yLabel: axis.name, points, lines });
  const rows = t.devices.map((d) => `<tr><td>${esc(d.device)}${d.simulated ? ' <span class="sim">simulated</span>' : ''}</td><td>${esc(d.deployed ?? '-')}</td><td>${esc(d.measured?.label ?? '-')}${d.measured?.from ? ` <small>(${esc(d.measured.from)})</small>` : ''}</td>` +
    `<td class="n">${d.measured?.p50?.toFixed(3) ?? '-'}</td><td class="n">${d.measured?.p90?.toFixed(3) ?? '-'}</td>` +
    `<td class="n">${d.measured?.accuracy?.toFixed(4) ?? '-'}</td><td class="n">${d.measured?.sqnrDb === undefined ? '-' : Number.isFinite(d.measured.sqnrDb) ? d.measured.sqnrDb.toFixed(1) : 'exact'}</td>` +
    `<td>${esc(d.measured?.at ?? '-')}</td></tr>`).join('\n');
  const fronts = t.fronts.map((f) => `<li>run ${esc(f.runId)} (${esc(f.createdAt)}): ${f.front.length} points on the front; winner ${esc(f.winner?.label ?? 'none (budget not met)')}</li>`).join('');
  return `<section><h2>${esc(t.target)}</h2>${svg}
<table><thead><tr><th>device</th><th>deployed recipe</th><th>measurement</th><th>p50 ms</th><th>p90 ms</th><th>accuracy</th><th>SQNR dB</th><th>measured at</th></tr></thead>
<tbody>${rows || '<tr><td colspan="8">no device results for this target</td></tr>'}</tbody></table>
${fronts ? `<ul>${fronts}</ul>` : ''}</section>`;
}

export function renderReport(d: ReportData): string {
  const anySim = d.targets.some((t) => t.devices.some((x) => x.simulated));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(d.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 16px}
th,td{border:1px solid #ddd;padding:3px 8px;font-size:13px}td.n{text-align:right;font-variant-numeric:tabular-nums}
.sim{background:#fde68a;padding:0 4px;border-radius:3px;font-size:11px}section{margin-bottom:32px}
</style></head><body>
<h1>${esc(d.title)}</h1>
<p>Generated ${esc(d.generatedAt)}. Latency and quality are those of each device's deployed recipe (its own latest measurement of it, else the merged front's), or its latest measurement when no deploy is recorded; circles are devices (coloured by deployed recipe), squares joined by a dashed line are merged Pareto fronts of distributed tunes.</p>
${anySim ? '<p><span class="sim">simulated</span> marks results from fleet-sim devices: their numbers are made up, not measured.</p>' : ''}
${d.targets.length ? d.targets.map(targetSection).join('\n') : '<p>No results recorded yet.</p>'}
</body></html>
`;
}

export async function writeReport(store: ResultsStore, file: string, opts: { since?: string; title?: string } = {}): Promise<ReportData> {
  const data = reportData(store.results({ since: opts.since }), store.fronts({ since: opts.since }), { title: opts.title });
  await prepareOutputs([{ path: file, what: 'report' }]);
  await writeFileAtomic(file, renderReport(data));
  return data;
}
