import type { Recipe, Target } from '../types.js';

// A target's search space as axes, and the recipe for any point on them. The tuner decides which points to
// try (a full grid is usually too big to measure); this module only says what the target allows and how a
// choice becomes a recipe that src/schema/recipe.ts accepts.

export type QuantOption = 'fp32' | 'dynamic' | 'fp16' | 'static' | 'weight-only-4' | 'weight-only-8';
type GraphOpt = NonNullable<Target['defaults']['graphOptimizationLevel']>;

export interface SpaceAxes {
  quant: QuantOption[];
  threads: number[];
  /** 0 = no pruning (always first). */
  prune: number[];
  /** undefined = no low-rank step (always first). */
  lowrankEnergy: Array<number | undefined>;
  graphOptimizationLevel: Array<GraphOpt | undefined>;
  spinning: Array<boolean | undefined>;
}

export interface SpacePoint {
  quant: QuantOption;
  threads: number;
  prune?: number;
  lowrankEnergy?: number;
  graphOptimizationLevel?: GraphOpt;
  spinning?: boolean;
}

/** The axes for a device with `cores` usable CPUs: 'all' threads resolved, counts above `cores` dropped. */
export function spaceAxes(target: Target, cores: number): SpaceAxes {
  if (!Number.isInteger(cores) || cores < 1) throw new RangeError(`spaceAxes: cores must be a positive integer, got ${cores}`);
  const s = target.space;
  const threads = [...new Set(s.threads.map((t) => (t === 'all' ? cores : t)).filter((t) => t <= cores))].sort((a, b) => a - b);
  const quant: QuantOption[] = [...new Set<QuantOption>(['fp32', ...s.quant])];
  if (s.staticInt8) quant.push('static');
  for (const b of s.weightOnlyBits ?? []) quant.push(`weight-only-${b}`);
  return {
    quant,
    threads: threads.length ? threads : [cores],
    prune: [0, ...(s.prune ?? []).filter((r) => r > 0)],
    lowrankEnergy: [undefined, ...(s.lowrankEnergy ?? [])],
    graphOptimizationLevel: s.graphOptimizationLevel ?? [undefined],
    spinning: s.spinning ?? [undefined],
  };
}

/** How many points the full grid has. */
export function gridSize(a: SpaceAxes): number {
  return a.quant.length * a.threads.length * a.prune.length * a.lowrankEnergy.length * a.graphOptimizationLevel.length * a.spinning.length;
}

/** The recipe for one point, with the target's defaults (activation type, reduce-range, …) applied. */
export function recipeFor(target: Target, p: SpacePoint): Recipe {
  const d = target.defaults;
  const r: Recipe = { v: 1 };
  if (p.prune && p.prune > 0) r.prune = { method: 'channel', ratio: p.prune };
  if (p.lowrankEnergy !== undefined) r.lowrank = { energy: p.lowrankEnergy };
  const int8 = {
    perChannel: d.perChannel ?? true,
    ...(d.activationType ? { activationType: d.activationType } : {}),
    ...(d.reduceRange !== undefined ? { reduceRange: d.reduceRange } : {}),
  };
  if (p.quant === 'dynamic') r.quantize = { mode: 'dynamic', ...int8 };
  else if (p.quant === 'static') r.quantize = { mode: 'static', ...int8 };
  else if (p.quant === 'fp16') r.quantize = { mode: 'fp16' }; // storage only: never fullGraph on a CPU
  else if (p.quant === 'weight-only-4' || p.quant === 'weight-only-8') {
    r.quantize = {
      mode: 'weight-only',
      bits: p.quant === 'weight-only-4' ? 4 : 8,
      ...(d.weightOnlyAccuracyLevel !== undefined ? { accuracyLevel: d.weightOnlyAccuracyLevel } : {}),
    };
  }
  const gol = p.graphOptimizationLevel ?? d.graphOptimizationLevel;
  const spin = p.spinning ?? d.spinning;
  r.session = { intraOpThreads: p.threads, ...(gol ? { graphOptimizationLevel: gol } : {}), ...(spin !== undefined ? { spinning: spin } : {}) };
  return r;
}

/**
 * Every point of the grid, baseline first (fp32, no pruning, no low-rank, fewest threads first). Refuses a
 * grid larger than `max` rather than return thousands of trials nobody can afford to measure.
 */
export function enumerateSpace(target: Target, cores: number, max = 512): Array<{ point: SpacePoint; recipe: Recipe }> {
  const a = spaceAxes(target, cores);
  const n = gridSize(a);
  if (n > max) throw new RangeError(`target ${target.name}: its full grid has ${n} points (more than ${max}); sample the axes from spaceAxes() instead`);
  const out: Array<{ point: SpacePoint; recipe: Recipe }> = [];
  for (const quant of a.quant)
    for (const prune of a.prune)
      for (const lowrankEnergy of a.lowrankEnergy)
        for (const graphOptimizationLevel of a.graphOptimizationLevel)
          for (const spinning of a.spinning)
            for (const threads of a.threads) {
              const point: SpacePoint = {
                quant,
                threads,
                ...(prune ? { prune } : {}),
                ...(lowrankEnergy !== undefined ? { lowrankEnergy } : {}),
                ...(graphOptimizationLevel ? { graphOptimizationLevel } : {}),
                ...(spinning !== undefined ? { spinning } : {}),
              };
              out.push({ point, recipe: recipeFor(target, point) });
            }
  return out;
}
