import type { Recipe, Target } from '../types.js';

export type QuantChoice = 'fp32' | 'dynamic' | 'fp16';

export interface Candidate {
  quant: QuantChoice;
  threads: number;
  recipe: Recipe;
}

/** Recipe for a quantization choice; fp32 means "no compression step". */
export function quantRecipe(q: QuantChoice): Recipe {
  if (q === 'dynamic') return { v: 1, quantize: { mode: 'dynamic', perChannel: true } };
  if (q === 'fp16') return { v: 1, quantize: { mode: 'fp16', perChannel: false } };
  return { v: 1 };
}

/**
 * The grid worth trying on this device: the target's quantization choices × its thread counts (`all` resolved to
 * the core count, duplicates removed). fp32 is always included: it is the baseline.
 */
export function candidateSpace(space: Target['space'] | undefined, cores: number, overrides: { quant?: QuantChoice[]; threads?: number[] } = {}): Candidate[] {
  const quants = new Set<QuantChoice>(['fp32', ...(overrides.quant ?? space?.quant ?? ['fp32', 'dynamic', 'fp16'])]);
  const threadList = overrides.threads ?? (space?.threads ?? [1, 'all']).map((t) => (t === 'all' ? cores : Math.min(t, cores)));
  const threads = [...new Set(threadList.filter((t) => t >= 1))].sort((a, b) => a - b);
  const out: Candidate[] = [];
  for (const quant of quants) {
    for (const th of threads) {
      const recipe = quantRecipe(quant);
      out.push({ quant, threads: th, recipe: { ...recipe, session: { intraOpThreads: th } } });
    }
  }
  return out;
}
