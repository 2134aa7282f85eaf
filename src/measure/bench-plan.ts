// When warm-up ends and when timed runs stop. Pure, shared by the parent (validation, defaults) and the runner child
// (the loop itself), so both read the same rule.
import { UsageError } from '../errors.js';

export interface BenchPlanOptions {
  /** warm-up ends at this many runs or at `warmupMs`, whichever comes first (0 of either skips it) */
  warmupRuns?: number;
  warmupMs?: number;
  /** timed runs go on until both minimums are met ... */
  minRuns?: number;
  minMs?: number;
  /** ... or either maximum is hit */
  maxRuns?: number;
  maxMs?: number;
}
export type BenchPlan = Required<BenchPlanOptions>;

// Sized so a 1-ms model is done in 2-3 s including process start, and a 1-s model in about 25 s.
export const DEFAULT_BENCH_PLAN: Readonly<BenchPlan> = Object.freeze({
  warmupRuns: 5, warmupMs: 300, minRuns: 20, minMs: 1000, maxRuns: 500, maxMs: 10_000,
});

/** Fills defaults and checks values; throws UsageError naming the option at fault. */
export function resolvePlan(opts: BenchPlanOptions = {}): BenchPlan {
  const plan: BenchPlan = { ...DEFAULT_BENCH_PLAN };
  for (const key of Object.keys(DEFAULT_BENCH_PLAN) as Array<keyof BenchPlan>) {
    const v = opts[key];
    if (v === undefined) continue;
    const isRuns = key.endsWith('Runs');
    const ok = typeof v === 'number' && v >= 0 && (v === Infinity || (Number.isFinite(v) && (!isRuns || Number.isInteger(v))));
    if (!ok) throw new UsageError(`bench option ${key} must be a non-negative ${isRuns ? 'integer' : 'number of ms'}, got ${v}`);
    plan[key] = v;
  }
  if (plan.maxRuns < 1) throw new UsageError(`bench option maxRuns must be at least 1, got ${plan.maxRuns}`);
  if (plan.maxMs <= 0) throw new UsageError(`bench option maxMs must be above 0, got ${plan.maxMs}`);
  if (!Number.isFinite(plan.minRuns) || !Number.isFinite(plan.minMs)) {
    throw new UsageError('bench options minRuns and minMs must be finite, or the timed runs would never end');
  }
  if (!Number.isFinite(plan.warmupRuns) && !Number.isFinite(plan.warmupMs)) {
    throw new UsageError('bench options warmupRuns and warmupMs cannot both be infinite, or warm-up would never end');
  }
  return plan;
}

export function warmupDone(plan: BenchPlan, runs: number, elapsedMs: number): boolean {
  return runs >= plan.warmupRuns || elapsedMs >= plan.warmupMs;
}

const ratio = (x: number, limit: number) => (limit <= 0 ? 1 : x / limit);

/** How far the timed phase is, 0..1; it is over at 1 (and after at least one run). */
export function timedFraction(plan: BenchPlan, runs: number, elapsedMs: number): number {
  const f = Math.max(
    Math.min(ratio(runs, plan.minRuns), ratio(elapsedMs, plan.minMs)),
    ratio(runs, plan.maxRuns),
    ratio(elapsedMs, plan.maxMs),
  );
  return Math.min(1, f);
}

export function timedDone(plan: BenchPlan, runs: number, elapsedMs: number): boolean {
  return runs >= 1 && timedFraction(plan, runs, elapsedMs) >= 1;
}
