import type { Measurement, TuneBudget } from '../types.js';

/** The latency figure the budget is about (p50, p90, p95 or p99). */
export function latencyAt(m: Measurement, percentile: TuneBudget['percentile']): number {
  return m.latencyMs[`p${percentile}` as 'p50' | 'p90' | 'p95' | 'p99'];
}

/**
 * Fidelity score used to rank: accuracy when measured, else the worst output's SQNR to the fp32 baseline
 * (Infinity when identical). SQNR rather than cosine: cosine of a one-value output (a probability) is always 1.
 */
export function qualityScore(m: Measurement): number {
  return m.quality.accuracy ?? m.quality.sqnrDb ?? m.quality.cosine ?? 0;
}

function cmp(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface Violation { constraint: 'latency' | 'memory'; limit: number; actual: number; over: number }

export function violations(m: Measurement, budget: TuneBudget): Violation[] {
  const out: Violation[] = [];
  const lat = latencyAt(m, budget.percentile);
  if (lat > budget.latencyMs) out.push({ constraint: 'latency', limit: budget.latencyMs, actual: lat, over: lat - budget.latencyMs });
  if (budget.memoryMB !== undefined && m.peakRssMB > budget.memoryMB) {
    out.push({ constraint: 'memory', limit: budget.memoryMB, actual: m.peakRssMB, over: m.peakRssMB - budget.memoryMB });
  }
  return out;
}

/** Best first: higher quality, then the smaller model, then the faster one. */
export function compareCandidates(a: Measurement, b: Measurement, percentile: TuneBudget['percentile']): number {
  return cmp(qualityScore(b), qualityScore(a)) || cmp(a.model.bytes, b.model.bytes) || cmp(latencyAt(a, percentile), latencyAt(b, percentile));
}

export interface Decision {
  chosen: Measurement | null;
  infeasible?: { reason: string; best: Measurement };
}

/**
 * The most faithful candidate that meets every constraint. When none does, the one closest to the latency budget
 * and a sentence saying which constraint failed by how much.
 */
export function decide(trials: Measurement[], budget: TuneBudget): Decision {
  if (trials.length === 0) throw new RangeError('decide: no trials to choose from');
  const feasible = trials.filter((m) => violations(m, budget).length === 0);
  if (feasible.length > 0) return { chosen: [...feasible].sort((a, b) => compareCandidates(a, b, budget.percentile))[0] };
  const best = [...trials].sort((a, b) => latencyAt(a, budget.percentile) - latencyAt(b, budget.percentile))[0];
  const why = violations(best, budget).map((v) =>
    v.constraint === 'latency'
      ? `p${budget.percentile} latency ${v.actual.toFixed(3)} ms is over the ${v.limit} ms budget by ${v.over.toFixed(3)} ms (${((v.actual / v.limit - 1) * 100).toFixed(0)}%)`
      : `peak memory ${v.actual.toFixed(0)} MB is over the ${v.limit} MB limit by ${v.over.toFixed(0)} MB`);
  return { chosen: null, infeasible: { reason: `no candidate meets the budget; the closest, ${best.label}: ${why.join('; ')}`, best } };
}

/** Candidates no other candidate beats on both latency (lower) and quality (higher): the trade-off curve. */
export function paretoFront(trials: Measurement[], percentile: TuneBudget['percentile']): Measurement[] {
  const front = trials.filter((m) => !trials.some((o) =>
    o !== m &&
    latencyAt(o, percentile) <= latencyAt(m, percentile) &&
    qualityScore(o) >= qualityScore(m) &&
    (latencyAt(o, percentile) < latencyAt(m, percentile) || qualityScore(o) > qualityScore(m))));
  return front.sort((a, b) => latencyAt(a, percentile) - latencyAt(b, percentile));
}
