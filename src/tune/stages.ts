// Progressive preparation: structural compression (pruning, low-rank, sensitive-layer fallback) costs real time to
// build (SVD, reconstruction, sensitivity runs) and, for the same quantization mode, does not raise quality. So the
// models are prepared stage by stage — stage 0 is every quantization mode of the unchanged model; each pruning or
// low-rank step (and a fallback) is one stage more — and a later stage is opened only for models that could still
// beat the best feasible candidate: those whose less compressed parents score above it (an upper bound under that
// monotonicity assumption), or all of them while nothing is feasible. Pure.
import type { TuneAxes, TunePoint } from './space.js';

export interface StagedKey {
  key: string;
  stage: number;
  /** model keys whose quality bounds this one from above (less compressed, same quantization; fp32 for a fallback) */
  parents: string[];
}

type KeyOf = (p: TunePoint) => string;

/** The stage and parents of a grid point's model. */
export function stageOf(p: TunePoint, axes: TuneAxes, keyOf: KeyOf): StagedKey {
  const i = Math.max(0, axes.prune.indexOf(p.prune ?? 0));
  const j = Math.max(0, axes.lowrankEnergy.indexOf(p.lowrankEnergy));
  const fb = (p.fallback ?? 0) > 0;
  const parents: string[] = [];
  if (fb) parents.push(keyOf({ ...p, quant: 'fp32', fallback: 0 }));
  else {
    if (i > 0) parents.push(keyOf({ ...p, prune: axes.prune[i - 1] || undefined }));
    if (j > 0) parents.push(keyOf({ ...p, lowrankEnergy: axes.lowrankEnergy[j - 1] }));
  }
  return { key: keyOf(p), stage: i + j + (fb ? 1 : 0), parents };
}

/**
 * The quality bound of a model not yet evaluated: the lowest bound of its parents, where an evaluated parent's bound
 * is its score. Undefined when a parent has neither (it was never reached): then nothing is known.
 */
export function boundOf(k: StagedKey, known: ReadonlyMap<string, number>): number | undefined {
  if (!k.parents.length) return undefined;
  let b = Infinity;
  for (const p of k.parents) {
    const v = known.get(p);
    if (v === undefined) return undefined;
    b = Math.min(b, v);
  }
  return b;
}

/**
 * Which models of the next stage to prepare: all while nothing is feasible, else those whose bound exceeds the
 * incumbent's score (or is unknown). The rest are returned with their bound, to be reported and remembered (a bound
 * propagates to their own children).
 */
export function selectStage(keys: readonly StagedKey[], known: ReadonlyMap<string, number>, incumbentScore: number | undefined): { prepare: StagedKey[]; bounded: Array<{ k: StagedKey; bound: number }> } {
  const prepare: StagedKey[] = [];
  const bounded: Array<{ k: StagedKey; bound: number }> = [];
  for (const k of keys) {
    const b = boundOf(k, known);
    if (incumbentScore === undefined || b === undefined || b > incumbentScore) prepare.push(k);
    else bounded.push({ k, bound: b });
  }
  return { prepare, bounded };
}
