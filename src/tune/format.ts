import { formatTable, fmtBytes } from '../cli/output.js';
import type { TuneResult } from '../types.js';
import { latencyAt } from './decide.js';

/** The result table a person reads: one row per trial, the chosen one marked, then the verdict. */
export function formatTuneTable(r: TuneResult): string {
  const p = r.budget.percentile;
  const rows = r.trials.map((m) => [
    m === r.chosen || (r.chosen && m.label === r.chosen.label && m.model.sha256 === r.chosen.model.sha256) ? '→' : r.front.includes(m) ? '*' : '',
    m.label,
    fmtBytes(m.model.bytes),
    Number(latencyAt(m, p).toFixed(3)),
    Number(m.latencyMs.p50.toFixed(3)),
    Number((r.baseline.latencyMs.p50 / m.latencyMs.p50).toFixed(2)),
    Number((m.quality.cosine ?? NaN).toFixed(6)),
    m.quality.sqnrDb === undefined ? '-' : Number.isFinite(m.quality.sqnrDb) ? m.quality.sqnrDb.toFixed(1) : 'exact',
    m.quality.top1Agreement === undefined ? '-' : `${(m.quality.top1Agreement * 100).toFixed(1)}%`,
    latencyAt(m, p) <= r.budget.latencyMs ? 'yes' : 'no',
  ]);
  const table = formatTable(['', 'candidate', 'size', `p${p} ms`, 'p50 ms', 'speed-up', 'cosine', 'SQNR dB', 'top-1 agree', 'in budget'], rows);
  const verdict = r.chosen
    ? `chosen: ${r.chosen.label} — p${p} ${latencyAt(r.chosen, p).toFixed(3)} ms ≤ ${r.budget.latencyMs} ms budget, cosine ${r.chosen.quality.cosine?.toFixed(6)} to fp32${r.output ? `\nwritten: ${r.output}` : ''}`
    : `NOT MET: ${r.infeasible?.reason}`;
  return `${table}\n(→ chosen, * on the latency/fidelity Pareto front; fidelity is measured against fp32 on generated inputs)\n${verdict}\nbaseline fp32 p${p}: ${latencyAt(r.baseline, p).toFixed(3)} ms · ${r.trials.length} trials in ${r.wallS.toFixed(1)} s`;
}
