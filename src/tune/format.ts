import { formatTable, fmtBytes } from '../cli/output.js';
import type { Measurement, TuneResult } from '../types.js';
import { latencyAt, violations, type TuneLimits } from './decide.js';
import type { TuneOutcome } from './options.js';

const same = (a: Measurement | null | undefined, b: Measurement) => !!a && a.label === b.label && a.model.sha256 === b.model.sha256;

/**
 * The result table a person reads: one row per trial (→ chosen, * on the Pareto front), then the verdict and how
 * the search went. Works on a bare TuneResult too (a result received over MQTT).
 */
export function formatTuneTable(r: TuneResult & Partial<Omit<TuneOutcome, keyof TuneResult>>): string {
  const p = r.budget.percentile;
  const accuracy = r.trials.some((m) => m.quality.accuracy !== undefined);
  const baseAcc = r.quality?.baselineAccuracy ?? r.baseline.quality.accuracy;
  const rows = r.trials.map((m) => {
    const vs = violations(m, r.budget as TuneLimits, baseAcc);
    return [
      same(r.chosen, m) ? '→' : r.front.some((f) => same(f, m)) ? '*' : '',
      m.label,
      fmtBytes(m.model.bytes),
      Number(latencyAt(m, p).toFixed(3)),
      Number((r.baseline.latencyMs.p50 / m.latencyMs.p50).toFixed(2)),
      ...(accuracy ? [m.quality.accuracy === undefined ? '-' : `${(m.quality.accuracy * 100).toFixed(2)}%`] : []),
      m.quality.sqnrDb === undefined ? '-' : Number.isFinite(m.quality.sqnrDb) ? m.quality.sqnrDb.toFixed(1) : 'exact',
      m.quality.cosine === undefined ? '-' : m.quality.cosine.toFixed(5),
      vs.length ? vs.map((v) => v.constraint).join(',') : 'ok',
    ];
  });
  const table = formatTable(['', 'candidate', 'size', `p${p} ms`, 'speed-up', ...(accuracy ? ['accuracy'] : []), 'SQNR dB', 'cosine', 'constraints'], rows);
  const c = r.chosen;
  const verdict = c
    ? `chosen: ${c.label} — p${p} ${latencyAt(c, p).toFixed(3)} ms ≤ ${r.budget.latencyMs} ms budget (confirmed)${c.quality.accuracy !== undefined ? `, accuracy ${(c.quality.accuracy * 100).toFixed(2)}%` : ''}${c.quality.cosine !== undefined ? `, cosine ${c.quality.cosine.toFixed(5)} to fp32` : ''}, ${fmtBytes(c.model.bytes)}${r.output ? `\nwritten: ${r.output}` : ''}`
    : `NOT MET: ${r.infeasible?.reason}`;
  const how = r.search && r.space
    ? `${r.strategy}: ${r.trials.length} of ${r.space.candidates} candidates measured (${r.search.replayed} from the journal) over ${r.space.models} model(s); stopped: ${r.search.stopReason}`
    : `${r.trials.length} trials`;
  const files = [r.resultPath ? `result: ${r.resultPath}` : '', r.report ? `report: ${r.report}` : ''].filter(Boolean).join(' · ');
  // Models that could not be built are not in the table: say so, one line per reason, so no mode vanishes silently.
  const notBuilt = new Map<string, number>();
  for (const m of r.models ?? []) {
    const why = m.reason ?? 'no reason given';
    if (m.status === 'skipped') notBuilt.set(why, (notBuilt.get(why) ?? 0) + 1);
  }
  return [
    table,
    `(→ chosen, * on the latency/quality Pareto front; quality ${r.quality ? `is ${r.quality.metric} on ${r.quality.examples} example(s) from ${r.quality.from}` : 'is fidelity to fp32'})`,
    ...[...notBuilt].map(([why, n]) => `not built: ${n} model(s): ${why}`),
    ...(r.notes ?? []).map((n) => `note: ${n}`),
    verdict,
    `baseline ${r.baseline.label} p${p}: ${latencyAt(r.baseline, p).toFixed(3)} ms · ${how} · ${r.wallS.toFixed(1)} s`,
    ...(files ? [files] : []),
  ].join('\n');
}
