// A/B comparison of two models on this device: both loaded in warm runners side by side, measured in alternating
// short blocks (A B A B …), so drift (heat, a background job, a governor change) lands on both alike. Each A block
// and the B block after it form a pair; the ratio of their medians is one observation of "how much slower is B".
import { throwIfAborted } from '../errors.js';
import type { OpContext } from '../types.js';
import { capHit, ciRelWidthOf, minimumsMet, resolvePlan, timedFraction, type BenchPlan, type BenchPlanOptions, type StopReason } from './bench-plan.js';
import { describeInputs, prepareBench, resultNotes, timedOf, type BenchOptions, type BenchResult } from './bench.js';
import { EnvMonitor, type EnvReport } from './env/monitor.js';
import { ModelRunner } from './runner.js';
import { latencyStats, median, pairedRatio, sortedCopy, type RatioEstimate } from './stats.js';

export interface CompareResult {
  v: 1;
  a: BenchResult;
  b: BenchResult;
  /** b's median over a's, over all samples: below 1 means b is faster */
  ratioP50: number;
  /** the paired estimate of b/a and its 95 % CI (see stats.pairedRatio) */
  ratio: RatioEstimate;
  stopReason: StopReason;
  env?: EnvReport;
  throttled: boolean | null;
  /** about the comparison as a whole (the CI target missed, spinning turned off) */
  notes: string[];
}

// Blocks this long alternate often enough for a CI from pairs (1 s of minimum time gives ~20 pairs), and are long
// enough that the IPC round trip per block (well under 1 ms) stays small.
const BLOCK_MS = 50;
// With a run budget, each block takes at most this share of it, so even sub-millisecond models alternate.
const BLOCKS = 20;

/**
 * One interleaved block: the plan's warm-up the first time; afterwards one untimed run when the model is cheap (the
 * other model has just evicted its caches), then BLOCK_MS or 1/BLOCKS of the run budget, never past what is left.
 */
export function blockPlan(plan: BenchPlan, warmed: boolean, runsSoFar: number, wallMsSoFar: number, typicalMs = Infinity): BenchPlanOptions {
  const leftRuns = Math.max(1, plan.maxRuns - runsSoFar);
  const leftMs = Math.max(1, plan.maxMs - wallMsSoFar);
  const blockRuns = Number.isFinite(plan.maxRuns) ? Math.max(1, Math.ceil(plan.maxRuns / BLOCKS)) : Infinity;
  const rewarm = typicalMs < BLOCK_MS / 10 ? 1 : 0;
  return {
    warmupRuns: warmed ? rewarm : plan.warmupRuns,
    warmupMs: warmed ? 0 : plan.warmupMs,
    warmupMaxMs: warmed ? Infinity : plan.warmupMaxMs,
    // At least one run per block, so a slow model still alternates run by run.
    minRuns: 1,
    minMs: Math.min(BLOCK_MS, leftMs),
    ciRelWidth: Infinity,
    maxRuns: Math.min(leftRuns, blockRuns),
    maxMs: Math.min(BLOCK_MS, leftMs),
  };
}

interface Side {
  samples: number[];
  blockMedians: number[];
  wallMs: number;
  firstRunMs: number;
  warmupRuns: number;
  warmupMs: number;
  warmed: boolean;
}

/**
 * Benchmarks two models (typically an original and its compressed version) interleaved. Stops when both have met
 * the plan's minimums and the 95 % CI of the paired ratio is narrower than `ciRelWidth` of the ratio, or when either
 * hits a maximum. Both get inputs from their own specs with the same seed, so equal specs give equal inputs.
 */
export async function compareModels(aPath: string, bPath: string, opts: BenchOptions = {}, ctx: OpContext = {}): Promise<CompareResult> {
  const plan = resolvePlan(opts);
  throwIfAborted(ctx.signal, 'comparison');
  const prepared = [await prepareBench(aPath, opts), await prepareBench(bPath, opts)];
  // An idle runner's thread pool keeps spinning after its block and steals cores from the other runner's block
  // (measured here: 2.6x fewer runs per block on 2 cores). Both sides get the same setting, so the ratio stays fair.
  const spinDefaulted = opts.session?.spinning === undefined;
  const session = { ...opts.session, ...(spinDefaulted ? { spinning: false } : {}) };
  const spinNote = spinDefaulted ? ['thread-pool spinning off for the comparison (an idle runner would spin on cores the other one needs); give --spinning to measure with it'] : [];
  const runners: ModelRunner[] = [];
  let monitor: EnvMonitor | undefined;
  try {
    // Loaded one after the other: on a small board two loads at once would inflate both load times.
    for (const p of prepared) {
      ctx.onProgress?.({ step: 'load', pct: 0, detail: p.path });
      runners.push(await ModelRunner.start(p.path, session, ctx, { pin: true }));
    }
    monitor = opts.env === false ? undefined : await EnvMonitor.start(opts.env ?? {});
    const sides: Side[] = prepared.map(() => ({ samples: [], blockMedians: [], wallMs: 0, firstRunMs: NaN, warmupRuns: 0, warmupMs: 0, warmed: false }));
    let ratioCi = Infinity;
    let stop: StopReason | undefined;
    while (!stop) {
      for (let i = 0; i < 2; i++) {
        const s = sides[i];
        const typical = s.samples.length ? s.wallMs / s.samples.length : Infinity;
        const r = await runners[i].bench(prepared[i].inputs, blockPlan(plan, s.warmed, s.samples.length, s.wallMs, typical), { signal: ctx.signal });
        if (!s.warmed) { s.firstRunMs = r.firstRunMs; s.warmupRuns = r.warmupRuns; s.warmupMs = r.warmupMs; s.warmed = true; monitor?.markTimed(); }
        s.samples.push(...r.samplesMs);
        s.blockMedians.push(median(r.samplesMs));
        s.wallMs += r.timedWallMs;
      }
      if (Number.isFinite(plan.ciRelWidth) && sides[0].blockMedians.length >= 6) {
        const est = pairedRatio(sides[0].blockMedians, sides[1].blockMedians);
        ratioCi = (est.ci95[1] - est.ci95[0]) / est.estimate;
      }
      stop = stopOf(plan, sides, ratioCi);
      const f = (i: number) => timedFraction(plan, sides[i].samples.length, sides[i].wallMs, ratioCi);
      ctx.onProgress?.({
        step: 'timed runs (interleaved)', pct: 50 * (f(0) + f(1)),
        detail: `${sides[0].samples.length} + ${sides[1].samples.length} runs`,
      });
    }
    const env = await monitor?.stop();
    monitor = undefined;
    const results: BenchResult[] = [];
    for (let i = 0; i < 2; i++) {
      const s = sides[i];
      const timed = timedOf(plan, { timedWallMs: s.wallMs, stopReason: stop, ciRelWidth: ciRelWidthOf(sortedCopy(s.samples)) });
      results.push({
        v: 1, backend: 'onnxruntime', model: prepared[i].model, session, inputs: describeInputs(prepared[i].inputs),
        latencyMs: latencyStats(s.samples), samplesMs: s.samples, loadMs: runners[i].loadMs, firstRunMs: s.firstRunMs,
        peakRssMB: await runners[i].peakRssMB(ctx), baseRssMB: runners[i].baseRssMB, warmupRuns: s.warmupRuns, warmupMs: s.warmupMs,
        // The per-model CI note does not apply: the comparison's target is the ratio's CI.
        timed, ...(env ? { env } : {}), throttled: env?.throttled ?? null, notes: [...prepared[i].notes, ...resultNotes({ ...plan, ciRelWidth: Infinity }, timed, env)],
      });
    }
    ctx.onProgress?.({ step: 'done', pct: 100 });
    const [a, b] = results;
    const ratio = pairedRatio(sides[0].blockMedians, sides[1].blockMedians);
    const notes = [...spinNote, ...(runners[0].pinned ? [`both ${runners[0].pinned}`] : [])];
    const width = (ratio.ci95[1] - ratio.ci95[0]) / ratio.estimate;
    if (Number.isFinite(plan.ciRelWidth) && stop !== 'ci' && !(width <= plan.ciRelWidth)) {
      notes.push(`the 95 % CI of the ratio is ${(width * 100).toFixed(1)} % of it wide, over the ${(plan.ciRelWidth * 100).toFixed(1)} % asked: stopped at ${stop}`);
    }
    return {
      v: 1, a, b, ratioP50: b.latencyMs.p50 / a.latencyMs.p50, ratio, stopReason: stop, ...(env ? { env } : {}), throttled: env?.throttled ?? null, notes,
    };
  } finally {
    monitor?.dispose();
    await Promise.all(runners.map((r) => r.close()));
  }
}

function stopOf(plan: BenchPlan, sides: Side[], ratioCi: number): StopReason | undefined {
  for (const s of sides) {
    const cap = capHit(plan, s.samples.length, s.wallMs);
    if (cap) return cap;
  }
  if (!sides.every((s) => minimumsMet(plan, s.samples.length, s.wallMs))) return undefined;
  if (!Number.isFinite(plan.ciRelWidth)) return 'min';
  return ratioCi <= plan.ciRelWidth ? 'ci' : undefined;
}
