// When warm-up ends and when timed runs stop. Pure, shared by the parent (validation, defaults) and the runner child
// (the loop itself), so both read the same rule.
//
// Warm-up ends once both its run count and its time are reached (the count settles caches and allocators, the time
// lets the CPU governor ramp up), or at `warmupMaxMs` so a slow model is not warmed for minutes. Timed runs go on
// until both minimums are reached, then until the 95 % confidence interval of the median is narrower than
// `ciRelWidth` of the median; a maximum (runs or time) stops them whatever the interval.
import { UsageError } from '../errors.js';
import { medianCiRanks } from './stats.js';

export interface BenchPlanOptions {
  /** warm-up needs this many runs and `warmupMs` of runs ... */
  warmupRuns?: number;
  warmupMs?: number;
  /** ... and is cut short here whatever the count */
  warmupMaxMs?: number;
  /** timed runs go on until both minimums are met ... */
  minRuns?: number;
  minMs?: number;
  /** ... and then until the 95 % CI of the median is at most this fraction of the median wide (Infinity: stop at the minimums) ... */
  ciRelWidth?: number;
  /** ... or either maximum is hit */
  maxRuns?: number;
  maxMs?: number;
}
export type BenchPlan = Required<BenchPlanOptions>;

/** Why the timed runs stopped. `min`: the minimums were met and no CI was asked for. */
export type StopReason = 'ci' | 'min' | 'max-runs' | 'max-ms';

// Sized so a 1-ms model is done in 2-3 s including process start, and a noisy or 1-s model within about 15 s.
export const DEFAULT_BENCH_PLAN: Readonly<BenchPlan> = Object.freeze({
  warmupRuns: 5, warmupMs: 300, warmupMaxMs: 3000, minRuns: 20, minMs: 1000, ciRelWidth: 0.02, maxRuns: 10_000, maxMs: 10_000,
});

/** Fills defaults and checks values; throws UsageError naming the option at fault. */
export function resolvePlan(opts: BenchPlanOptions = {}): BenchPlan {
  const plan: BenchPlan = { ...DEFAULT_BENCH_PLAN };
  for (const key of Object.keys(DEFAULT_BENCH_PLAN) as Array<keyof BenchPlan>) {
    const v = opts[key];
    if (v === undefined) continue;
    const isRuns = key.endsWith('Runs');
    const ok = typeof v === 'number' && v >= 0 && (v === Infinity || (Number.isFinite(v) && (!isRuns || Number.isInteger(v))));
    if (!ok) {
      const what = isRuns ? 'integer' : key === 'ciRelWidth' ? 'fraction (0.02 = 2 % of the median)' : 'number of ms';
      throw new UsageError(`bench option ${key} must be a non-negative ${what}, got ${v}`);
    }
    plan[key] = v;
  }
  if (plan.maxRuns < 1) throw new UsageError(`bench option maxRuns must be at least 1, got ${plan.maxRuns}`);
  if (plan.maxMs <= 0) throw new UsageError(`bench option maxMs must be above 0, got ${plan.maxMs}`);
  if (!Number.isFinite(plan.minRuns) || !Number.isFinite(plan.minMs)) {
    throw new UsageError('bench options minRuns and minMs must be finite, or the timed runs would never end');
  }
  if (plan.ciRelWidth === 0 && !Number.isFinite(plan.maxRuns) && !Number.isFinite(plan.maxMs)) {
    throw new UsageError('bench option ciRelWidth 0 can never be met; give maxRuns or maxMs, or a width above 0');
  }
  if (!Number.isFinite(plan.warmupMaxMs) && (!Number.isFinite(plan.warmupRuns) || !Number.isFinite(plan.warmupMs))) {
    throw new UsageError('bench options warmupRuns and warmupMs must be finite when warmupMaxMs is not, or warm-up would never end');
  }
  return plan;
}

export function warmupDone(plan: BenchPlan, runs: number, elapsedMs: number): boolean {
  return (runs >= plan.warmupRuns && elapsedMs >= plan.warmupMs) || elapsedMs >= plan.warmupMaxMs;
}

/** The maximum that ends the timed runs now, if any. */
export function capHit(plan: BenchPlan, runs: number, elapsedMs: number): 'max-runs' | 'max-ms' | undefined {
  if (runs >= plan.maxRuns) return 'max-runs';
  if (elapsedMs >= plan.maxMs) return 'max-ms';
  return undefined;
}

export function minimumsMet(plan: BenchPlan, runs: number, elapsedMs: number): boolean {
  return runs >= 1 && runs >= plan.minRuns && elapsedMs >= plan.minMs;
}

/**
 * Width of the 95 % CI of the median over the median, from ascending samples. Infinity when the samples cannot give
 * a 95 % interval yet (n < 6) or the median is 0.
 */
export function ciRelWidthOf(sorted: ArrayLike<number>): number {
  const n = sorted.length;
  if (n < 6) return Infinity;
  const { lo, hi } = medianCiRanks(n);
  const mid = (sorted[(n - 1) >> 1] + sorted[n >> 1]) / 2;
  if (!(mid > 0)) return Infinity;
  return (sorted[hi - 1] - sorted[lo - 1]) / mid;
}

/**
 * Whether the timed runs are over, given the CI width measured last (`ciRel`, Infinity before any check).
 * Returns why, or undefined to go on.
 */
export function timedStop(plan: BenchPlan, runs: number, elapsedMs: number, ciRel: number): StopReason | undefined {
  if (runs < 1) return undefined;
  const cap = capHit(plan, runs, elapsedMs);
  if (cap) return cap;
  if (!minimumsMet(plan, runs, elapsedMs)) return undefined;
  if (!Number.isFinite(plan.ciRelWidth)) return 'min';
  return ciRel <= plan.ciRelWidth ? 'ci' : undefined;
}

/** Kept for callers that only know counts and time: done when timedStop would stop with an unmet CI. */
export function timedDone(plan: BenchPlan, runs: number, elapsedMs: number, ciRel = Infinity): boolean {
  return timedStop(plan, runs, elapsedMs, ciRel) !== undefined;
}

const ratio = (x: number, limit: number) => (limit <= 0 ? 1 : x / limit);

/**
 * How far the timed phase is, 0..1: the first half tracks the lagging minimum, the second half the CI (its width
 * shrinks as 1/√n, so (target/width)² estimates the share of runs done). A nearer maximum takes over.
 */
export function timedFraction(plan: BenchPlan, runs: number, elapsedMs: number, ciRel = Infinity): number {
  const mins = Math.min(ratio(runs, plan.minRuns), ratio(elapsedMs, plan.minMs));
  let f: number;
  if (!Number.isFinite(plan.ciRelWidth)) f = mins;
  else if (mins < 1) f = mins / 2;
  else f = 0.5 + 0.5 * Math.min(1, (plan.ciRelWidth / ciRel) ** 2);
  return Math.min(1, Math.max(f, ratio(runs, plan.maxRuns), ratio(elapsedMs, plan.maxMs)));
}
