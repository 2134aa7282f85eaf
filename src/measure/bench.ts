// Benchmarking a model file on this device: one model alone, or two interleaved so both see the same conditions.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ModelError, isENOENT, throwIfAborted } from '../errors.js';
import { parseModel, sha256 } from '../onnx/model.js';
import type { LatencyStats, OpContext } from '../types.js';
import { resolvePlan, timedFraction, type BenchPlan, type BenchPlanOptions } from './bench-plan.js';
import { generateInputs, inputSpecs, type InputOptions } from './inputs.js';
import type { PlainTensor } from './plain-tensor.js';
import { ModelRunner, type SessionSettings } from './runner.js';
import { latencyStats } from './stats.js';

export interface BenchOptions extends BenchPlanOptions, Omit<InputOptions, 'float'> {
  session?: SessionSettings;
  /** feed these instead of generating inputs from the model's specs */
  inputs?: Record<string, PlainTensor>;
}

export interface BenchResult {
  v: 1;
  model: { path: string; sha256: string; bytes: number };
  session: SessionSettings;
  inputs: Array<{ name: string; dtype: string; dims: number[] }>;
  latencyMs: LatencyStats;
  samplesMs: number[];
  loadMs: number;
  firstRunMs: number;
  peakRssMB: number;
  /** runs before the timed ones, including the first run */
  warmupRuns: number;
  notes: string[];
}

export interface CompareResult {
  v: 1;
  a: BenchResult;
  b: BenchResult;
  /** b's median over a's: below 1 means b is faster */
  ratioP50: number;
}

interface Prepared {
  path: string;
  model: BenchResult['model'];
  inputs: Record<string, PlainTensor>;
  notes: string[];
}

// Interleaved blocks are this long, so slow drift (heat, a background job) lands on both models alike.
const BLOCK_MS = 200;
const BLOCKS = 10;

async function prepare(modelPath: string, opts: BenchOptions): Promise<Prepared> {
  const path = resolve(modelPath);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    if (isENOENT(e)) throw new ModelError('MODEL_NOT_FOUND', `${modelPath}: no such file`);
    throw e;
  }
  const model = { path, sha256: sha256(bytes), bytes: bytes.length };
  if (opts.inputs) return { path, model, inputs: opts.inputs, notes: ['inputs given by the caller'] };
  const gen = generateInputs(inputSpecs(parseModel(bytes, path, dirname(path))), opts);
  return { path, model, inputs: gen.tensors, notes: gen.notes };
}

function describeInputs(inputs: Record<string, PlainTensor>): BenchResult['inputs'] {
  return Object.entries(inputs).map(([name, t]) => ({ name, dtype: t.dtype, dims: [...t.dims] }));
}

function resultOf(p: Prepared, session: SessionSettings, runner: ModelRunner, samplesMs: number[], firstRunMs: number, warmupRuns: number, peakRssMB: number): BenchResult {
  return {
    v: 1, model: p.model, session, inputs: describeInputs(p.inputs), latencyMs: latencyStats(samplesMs), samplesMs,
    loadMs: runner.loadMs, firstRunMs, peakRssMB, warmupRuns, notes: p.notes,
  };
}

/** Loads the model in a runner process, warms it up and times it. Latency is measured in the child around session.run. */
export async function benchModel(modelPath: string, opts: BenchOptions = {}, ctx: OpContext = {}): Promise<BenchResult> {
  const plan = resolvePlan(opts);
  throwIfAborted(ctx.signal, `benchmark of ${modelPath}`);
  const p = await prepare(modelPath, opts);
  const session = opts.session ?? {};
  ctx.onProgress?.({ step: 'load', pct: 0, detail: p.path });
  const runner = await ModelRunner.start(p.path, session, ctx);
  try {
    const r = await runner.bench(p.inputs, plan, ctx);
    const rss = await runner.peakRssMB(ctx);
    ctx.onProgress?.({ step: 'done', pct: 100 });
    return resultOf(p, session, runner, r.samplesMs, r.firstRunMs, r.warmupRuns, rss);
  } finally {
    await runner.close();
  }
}

/**
 * Benchmarks two models (typically an original and its compressed version) in alternating blocks of about 200 ms,
 * both runners warm and loaded side by side, so drift affects both alike. Each model's stop rule is the plan's, counted
 * over its own blocks. Both get inputs from their own specs with the same seed, so equal specs give equal inputs.
 */
export async function compareModels(aPath: string, bPath: string, opts: BenchOptions = {}, ctx: OpContext = {}): Promise<CompareResult> {
  const plan = resolvePlan(opts);
  throwIfAborted(ctx.signal, 'comparison');
  const prepared = [await prepare(aPath, opts), await prepare(bPath, opts)];
  const session = opts.session ?? {};
  const runners: ModelRunner[] = [];
  try {
    // Loaded one after the other: on a small board two loads at once would inflate both load times.
    for (const p of prepared) {
      ctx.onProgress?.({ step: 'load', pct: 0, detail: p.path });
      runners.push(await ModelRunner.start(p.path, session, ctx));
    }
    const state = prepared.map(() => ({ samples: [] as number[], wallMs: 0, firstRunMs: NaN, warmupRuns: 0, warmed: false }));
    const fraction = (i: number) => timedFraction(plan, state[i].samples.length, state[i].wallMs);
    const report = () => ctx.onProgress?.({
      step: 'timed runs (interleaved)', pct: 50 * (fraction(0) + fraction(1)),
      detail: `${state[0].samples.length} + ${state[1].samples.length} runs`,
    });
    while (state.some((_, i) => fraction(i) < 1 || state[i].samples.length === 0)) {
      for (let i = 0; i < runners.length; i++) {
        const s = state[i];
        if (s.samples.length > 0 && fraction(i) >= 1) continue;
        const r = await runners[i].bench(prepared[i].inputs, blockPlan(plan, s.warmed, s.samples.length, s.wallMs), { signal: ctx.signal });
        if (!s.warmed) { s.firstRunMs = r.firstRunMs; s.warmupRuns = r.warmupRuns; s.warmed = true; }
        s.samples.push(...r.samplesMs);
        s.wallMs += r.timedWallMs;
        report();
      }
    }
    const results: BenchResult[] = [];
    for (let i = 0; i < runners.length; i++) {
      const s = state[i];
      results.push(resultOf(prepared[i], session, runners[i], s.samples, s.firstRunMs, s.warmupRuns, await runners[i].peakRssMB(ctx)));
    }
    ctx.onProgress?.({ step: 'done', pct: 100 });
    const [a, b] = results;
    return { v: 1, a, b, ratioP50: b.latencyMs.p50 / a.latencyMs.p50 };
  } finally {
    await Promise.all(runners.map((r) => r.close()));
  }
}

/**
 * One interleaved block: warm-up only the first time, then BLOCK_MS or a tenth of the run budget, whichever ends
 * first (so even a sub-millisecond model alternates about ten times), never past what is left of the model's budget.
 */
export function blockPlan(plan: BenchPlan, warmed: boolean, runsSoFar: number, wallMsSoFar: number): BenchPlanOptions {
  const leftRuns = Math.max(1, plan.maxRuns - runsSoFar);
  const leftMs = Math.max(1, plan.maxMs - wallMsSoFar);
  const blockRuns = Number.isFinite(plan.maxRuns) ? Math.max(1, Math.ceil(plan.maxRuns / BLOCKS)) : Infinity;
  return {
    warmupRuns: warmed ? 0 : plan.warmupRuns,
    warmupMs: warmed ? 0 : plan.warmupMs,
    // At least one run per block, so a slow model still alternates run by run.
    minRuns: 1,
    minMs: Math.min(BLOCK_MS, leftMs),
    maxRuns: Math.min(leftRuns, blockRuns),
    maxMs: Math.min(BLOCK_MS, leftMs),
  };
}
