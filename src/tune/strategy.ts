// Which candidate to measure next, and when to stop. Pure: the orchestrator (tune.ts) measures and calls again.
//
// adaptive (default): quality is known for every candidate before any latency is measured (it depends on the
// compressed model, not on the session, and is evaluated once per model), so the search is about latency only:
//   - the incumbent is the best measured candidate that meets every constraint;
//   - only candidates that could beat it are left: better quality, or the same quality and a smaller file;
//   - of those, the best-quality one whose predicted chance of meeting the budget is at least `pMin` is measured;
//   - while nothing is feasible and the best latency seen is more than `far`× the budget, an intermediate target
//     halfway (in log) to the budget is used instead (NetAdapt's progressive schedule: each step buys part of the
//     way down with the least quality lost, and calibrates the latency model on the way);
//   - with nothing feasible and nothing predicted likely, the candidate most likely to fit is measured once, so an
//     infeasible verdict names a close candidate;
//   - stop when no candidate is left that could beat the incumbent, or all left are predicted over budget.
// exhaustive: every candidate, in order, for comparison.
import { probAtMost, type LatencyFeatures, type LatencyModel, type Prediction } from './latency-model.js';

export type StrategyName = 'adaptive' | 'exhaustive';

export interface CandidateView {
  id: string;
  label: string;
  features: LatencyFeatures;
  /** quality score of its model (decide.ts qualityScore); -Infinity when unknown */
  score: number;
  bytes: number;
  /** false when its quality alone already breaks the accuracy/fidelity floor */
  qualityOk: boolean;
  /** latency at the budget's percentile, and whether every constraint held */
  measured?: { latencyMs: number; feasible: boolean };
  /** why it is out of the search (compression failed, duplicate of another, ...) */
  out?: string;
}

export interface StrategyOptions {
  strategy: StrategyName;
  budgetMs: number;
  /** smallest predicted chance of meeting the budget worth a measurement (default 0.1) */
  pMin?: number;
  /** best latency over budget × far: take a progressive step first (default 2) */
  far?: number;
  /** how many "closest attempt" measurements were taken already (at most one is) */
  lastResorts?: number;
}

export type Step =
  | { kind: 'measure'; id: string; why: string; predicted?: Prediction; pBudget?: number; lastResort?: boolean }
  | { kind: 'stop'; why: string };

const better = (a: CandidateView, b: CandidateView) =>
  a.score !== b.score ? a.score > b.score : a.bytes !== b.bytes ? a.bytes < b.bytes : a.measured!.latencyMs < b.measured!.latencyMs;

/** The best measured candidate that met every constraint. */
export function incumbentOf(cands: readonly CandidateView[]): CandidateView | undefined {
  let inc: CandidateView | undefined;
  for (const c of cands) if (c.measured?.feasible && (!inc || better(c, inc))) inc = c;
  return inc;
}

/** Could `c` win over the incumbent? Only on quality, or on size at equal quality: latency is just a tie-break. */
export function canBeat(c: CandidateView, inc: CandidateView): boolean {
  return c.score > inc.score || (c.score === inc.score && c.bytes < inc.bytes);
}

const pct = (p: number) => `${(100 * p).toFixed(p < 0.01 ? 2 : 0)}%`;

export function nextStep(cands: readonly CandidateView[], model: LatencyModel | undefined, o: StrategyOptions): Step {
  if (o.strategy === 'exhaustive') {
    const next = cands.find((c) => !c.measured && !c.out);
    return next ? { kind: 'measure', id: next.id, why: 'exhaustive: every candidate in order' } : { kind: 'stop', why: 'exhaustive: every candidate was measured' };
  }
  const inc = incumbentOf(cands);
  let open = cands.filter((c) => !c.measured && !c.out && c.qualityOk);
  if (inc) open = open.filter((c) => canBeat(c, inc));
  if (!open.length) {
    return { kind: 'stop', why: inc ? `no unmeasured candidate can beat ${inc.label} (none has better quality, or equal quality and a smaller file)` : 'every candidate within the quality floor was measured' };
  }
  if (!model) return { kind: 'measure', id: open[0].id, why: 'no latency model yet' };
  const ranked = open
    .map((c) => { const predicted = model.predict(c.features); return { c, predicted, p: probAtMost(predicted, o.budgetMs) }; })
    .sort((a, b) => b.c.score - a.c.score || a.c.bytes - b.c.bytes || b.p - a.p);
  const pMin = o.pMin ?? 0.1;
  if (!inc) {
    const seen = cands.filter((c) => c.measured).map((c) => c.measured!.latencyMs);
    const best = seen.length ? Math.min(...seen) : Infinity;
    if (Number.isFinite(best) && best > (o.far ?? 2) * o.budgetMs) {
      const target = Math.sqrt(best * o.budgetMs);
      const step = ranked.find((r) => probAtMost(r.predicted, target) >= 0.5);
      if (step) {
        return {
          kind: 'measure', id: step.c.id, predicted: step.predicted, pBudget: step.p,
          why: `progressive step: best quality predicted under ${target.toFixed(3)} ms (halfway in log from the best so far, ${best.toFixed(3)} ms, to the budget); predicted ${step.predicted.ms.toFixed(3)} ms`,
        };
      }
    }
  }
  const pick = ranked.find((r) => r.p >= pMin);
  if (pick) {
    return {
      kind: 'measure', id: pick.c.id, predicted: pick.predicted, pBudget: pick.p,
      why: `best quality left with a ${pct(pick.p)} predicted chance of meeting the budget (predicted ${pick.predicted.ms.toFixed(3)} ms)`,
    };
  }
  const likeliest = [...ranked].sort((a, b) => b.p - a.p || b.c.score - a.c.score)[0];
  if (!inc && (o.lastResorts ?? 0) < 1) {
    return {
      kind: 'measure', id: likeliest.c.id, predicted: likeliest.predicted, pBudget: likeliest.p, lastResort: true,
      why: `nothing feasible yet and nothing likely: the candidate most likely to fit (${pct(likeliest.p)}, predicted ${likeliest.predicted.ms.toFixed(3)} ms)`,
    };
  }
  return { kind: 'stop', why: `the ${open.length} candidate(s) left are all predicted over budget (best chance ${pct(likeliest.p)}, under the ${pct(pMin)} threshold)` };
}
