// The decision: the best candidate that meets every constraint, the trade-off curve, and — when nothing meets
// them — the closest candidate and by how much each constraint fails. Pure.
import type { Measurement, TuneBudget } from '../types.js';

/** The budget plus the quality floor: a maximum accuracy drop (points) or a minimum cosine to fp32. */
export interface TuneLimits extends TuneBudget {
  /** lowest acceptable cosine similarity to the fp32 outputs (worst output) when quality is fidelity */
  minFidelity?: number;
}

/** The latency figure the budget is about (p50, p90, p95 or p99). */
export function latencyAt(m: Measurement, percentile: TuneBudget['percentile']): number {
  return m.latencyMs[`p${percentile}` as 'p50' | 'p90' | 'p95' | 'p99'];
}

/**
 * The score candidates are ranked by, higher is better: accuracy when it was measured on labelled data, else the
 * worst output's SQNR to fp32 in dB (Infinity when identical). SQNR rather than cosine because cosine saturates
 * (0.9999 and 0.99999 print alike), ignores a wrong scale, and is always 1 for a one-value output. A candidate with
 * no quality figure at all ranks last.
 */
export function qualityScore(m: Pick<Measurement, 'quality'>): number {
  return m.quality.accuracy ?? m.quality.sqnrDb ?? m.quality.cosine ?? -Infinity;
}

function cmp(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export type Constraint = 'latency' | 'memory' | 'accuracy' | 'fidelity';
export interface Violation { constraint: Constraint; limit: number; actual: number; over: number }

/** What a candidate's quality alone breaks (known before any latency is measured). */
export function qualityViolations(q: Measurement['quality'], limits: TuneLimits, baselineAccuracy?: number): Violation[] {
  const out: Violation[] = [];
  if (limits.maxAccuracyDrop !== undefined && baselineAccuracy !== undefined && q.accuracy !== undefined) {
    const drop = (baselineAccuracy - q.accuracy) * 100;
    if (drop > limits.maxAccuracyDrop + 1e-9) out.push({ constraint: 'accuracy', limit: limits.maxAccuracyDrop, actual: drop, over: drop - limits.maxAccuracyDrop });
  }
  if (limits.minFidelity !== undefined) {
    const cos = q.cosine;
    if (cos === undefined || cos < limits.minFidelity) {
      const actual = cos ?? -Infinity;
      out.push({ constraint: 'fidelity', limit: limits.minFidelity, actual, over: limits.minFidelity - actual });
    }
  }
  return out;
}

export function violations(m: Measurement, budget: TuneLimits, baselineAccuracy?: number): Violation[] {
  const out: Violation[] = [];
  const lat = latencyAt(m, budget.percentile);
  if (!(lat <= budget.latencyMs)) out.push({ constraint: 'latency', limit: budget.latencyMs, actual: lat, over: lat - budget.latencyMs });
  if (budget.memoryMB !== undefined && !(m.peakRssMB <= budget.memoryMB)) {
    out.push({ constraint: 'memory', limit: budget.memoryMB, actual: m.peakRssMB, over: m.peakRssMB - budget.memoryMB });
  }
  out.push(...qualityViolations(m.quality, budget, baselineAccuracy));
  return out;
}

/** Best first: higher quality, then the smaller model, then the faster one. */
export function compareCandidates(a: Measurement, b: Measurement, percentile: TuneBudget['percentile']): number {
  return cmp(qualityScore(b), qualityScore(a)) || cmp(a.model.bytes, b.model.bytes) || cmp(latencyAt(a, percentile), latencyAt(b, percentile));
}

export interface Decision {
  chosen: Measurement | null;
  infeasible?: { reason: string; best: Measurement; violations?: Violation[] };
}

export function describeViolation(v: Violation, percentile: TuneBudget['percentile']): string {
  switch (v.constraint) {
    case 'latency':
      return `p${percentile} latency ${v.actual.toFixed(3)} ms is over the ${v.limit} ms budget by ${v.over.toFixed(3)} ms (${((v.actual / v.limit - 1) * 100).toFixed(0)}%)`;
    case 'memory':
      return `peak memory ${v.actual.toFixed(0)} MB is over the ${v.limit} MB limit by ${v.over.toFixed(0)} MB`;
    case 'accuracy':
      return `accuracy drop ${v.actual.toFixed(2)} points is over the ${v.limit}-point limit by ${v.over.toFixed(2)}`;
    default:
      return `cosine to fp32 ${Number.isFinite(v.actual) ? v.actual.toFixed(4) : 'unknown'} is under the ${v.limit} floor${Number.isFinite(v.over) ? ` by ${v.over.toFixed(4)}` : ''}`;
  }
}

/** How far a candidate is from feasible: the sum of each violated limit's relative excess. */
function distance(vs: Violation[]): number {
  return vs.reduce((s, v) => s + (Number.isFinite(v.over) ? Math.abs(v.over) / Math.max(Math.abs(v.limit), 1e-9) : 1e6), 0);
}

/**
 * The best candidate that meets every constraint (quality, then size, then speed). When none does: the closest —
 * among the candidates whose quality is acceptable when there are any, the one with the smallest relative excess —
 * and a sentence naming each constraint it fails and by how much.
 */
export function decide(trials: Measurement[], budget: TuneLimits, baselineAccuracy?: number): Decision {
  if (trials.length === 0) throw new RangeError('decide: no trials to choose from');
  const judged = trials.map((m) => ({ m, vs: violations(m, budget, baselineAccuracy) }));
  const feasible = judged.filter((j) => j.vs.length === 0).map((j) => j.m);
  if (feasible.length > 0) return { chosen: [...feasible].sort((a, b) => compareCandidates(a, b, budget.percentile))[0] };
  const qualityOk = judged.filter((j) => !j.vs.some((v) => v.constraint === 'accuracy' || v.constraint === 'fidelity'));
  const pool = qualityOk.length ? qualityOk : judged;
  const best = [...pool].sort((a, b) => distance(a.vs) - distance(b.vs) || compareCandidates(a.m, b.m, budget.percentile))[0];
  const why = best.vs.map((v) => describeViolation(v, budget.percentile));
  return { chosen: null, infeasible: { reason: `no candidate meets the budget; the closest, ${best.m.label}: ${why.join('; ')}`, best: best.m, violations: best.vs } };
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
