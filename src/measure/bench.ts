// Benchmarking a model file on this device with ONNX Runtime: one model at one or several input shapes, each run in
// its own child process, with the device's speed conditions watched around it. Comparisons live in compare.ts.
import { dirname, resolve } from 'node:path';
import { EdgetuneError, throwIfAborted } from '../errors.js';
import { parseModel, readModelFile, sha256 } from '../onnx/model.js';
import { recipeLabel } from '../schema/recipe.js';
import type { LatencyStats, Measurement, OpContext, Quality, Recipe } from '../types.js';
import { resolvePlan, type BenchPlan, type BenchPlanOptions, type StopReason } from './bench-plan.js';
import { EnvMonitor, type EnvReport, type MonitorOptions } from './env/monitor.js';
import { INT_RANGE, generateInputs, inputSpecs, type InputOptions, type InputSpec } from './inputs.js';
import type { PlainTensor } from './plain-tensor.js';
import { ModelRunner, type SessionSettings } from './runner.js';
import type { BenchReply } from './runner-protocol.js';
import { latencyStats } from './stats.js';

export interface BenchOptions extends BenchPlanOptions, Omit<InputOptions, 'float'> {
  session?: SessionSettings;
  /** feed these instead of generating inputs from the model's specs (e.g. a dataset batch) */
  inputs?: Record<string, PlainTensor>;
  /** where `inputs` came from, for the report's notes (e.g. "the first 4 examples of data/ (idx)") */
  inputsFrom?: string;
  /** where the device's conditions are read from; false skips the readings */
  env?: MonitorOptions | false;
}

export interface BenchResult {
  v: 1;
  backend: 'onnxruntime' | 'tensorrt';
  model: { path: string; sha256: string; bytes: number };
  session: SessionSettings;
  inputs: Array<{ name: string; dtype: string; dims: number[] }>;
  latencyMs: LatencyStats;
  samplesMs: number[];
  /** session creation (ORT) or engine deserialisation (TensorRT); undefined when the tool does not say */
  loadMs?: number;
  /** the first inference at these shapes, never sampled */
  firstRunMs?: number;
  /** the benchmark process's peak resident set, Node and the runtime included */
  peakRssMB?: number;
  /** that process's peak before the model was loaded, so peakRssMB − baseRssMB is roughly the model's share */
  baseRssMB?: number;
  /** runs before the timed ones, including the first run */
  warmupRuns: number;
  warmupMs?: number;
  timed: {
    wallMs: number;
    stopReason: StopReason;
    /** achieved width of the 95 % CI of the median over the median; undefined below 6 samples */
    ciRelWidth?: number;
    /** the width asked for; undefined when no CI was asked for */
    ciTarget?: number;
  };
  env?: EnvReport;
  /** from env: true when taken while throttled or with a frequency change, null when the device cannot tell */
  throttled: boolean | null;
  notes: string[];
}

interface Prepared {
  path: string;
  model: BenchResult['model'];
  specs: InputSpec[] | undefined;
  inputs: Record<string, PlainTensor>;
  notes: string[];
}

/** Reads the model once: its hash and size, and inputs for it (given, or generated from its specs). */
export async function prepareBench(modelPath: string, opts: BenchOptions): Promise<Prepared> {
  const path = resolve(modelPath);
  const bytes = await readModelFile(modelPath);
  const model = { path, sha256: sha256(bytes), bytes: bytes.length };
  if (opts.inputs) return { path, model, specs: undefined, inputs: opts.inputs, notes: [`inputs: ${opts.inputsFrom ?? 'given by the caller'}`] };
  const specs = inputSpecs(parseModel(bytes, path, dirname(path)));
  const gen = generateInputs(specs, opts);
  return { path, model, specs, inputs: gen.tensors, notes: gen.notes };
}

export function describeInputs(inputs: Record<string, PlainTensor>): BenchResult['inputs'] {
  return Object.entries(inputs).map(([name, t]) => ({ name, dtype: t.dtype, dims: [...t.dims] }));
}

/** Notes a reader needs: the CI target missed, and everything the env readings warn about. */
export function resultNotes(plan: BenchPlan, timed: BenchResult['timed'], env: EnvReport | undefined): string[] {
  const notes: string[] = [];
  const missed = timed.ciRelWidth === undefined || timed.ciRelWidth > plan.ciRelWidth;
  if (Number.isFinite(plan.ciRelWidth) && timed.stopReason !== 'ci' && timed.stopReason !== 'min' && missed) {
    const got = timed.ciRelWidth === undefined ? 'unknown (too few samples)' : `${(timed.ciRelWidth * 100).toFixed(1)} %`;
    notes.push(`the 95 % CI of the median is ${got} of the median wide, over the ${(plan.ciRelWidth * 100).toFixed(1)} % asked: stopped at ${timed.stopReason}; the device is noisy or the cap is short`);
  }
  if (env) notes.push(...env.warnings.map((w) => `warning: ${w}`), ...env.notes);
  return notes;
}

export function timedOf(plan: BenchPlan, r: Pick<BenchReply, 'timedWallMs' | 'stopReason' | 'ciRelWidth'>): BenchResult['timed'] {
  return {
    wallMs: r.timedWallMs,
    stopReason: r.stopReason,
    ...(Number.isFinite(r.ciRelWidth) ? { ciRelWidth: r.ciRelWidth } : {}),
    ...(Number.isFinite(plan.ciRelWidth) ? { ciTarget: plan.ciRelWidth } : {}),
  };
}

/** Benchmarks prepared inputs in a loaded runner, with env readings around it. */
async function benchLoaded(runner: ModelRunner, p: Prepared, inputs: Record<string, PlainTensor>, notes: string[], plan: BenchPlan, opts: BenchOptions, ctx: OpContext): Promise<BenchResult> {
  const monitor = opts.env === false ? undefined : await EnvMonitor.start(opts.env ?? {});
  let r: BenchReply;
  try {
    r = await runner.bench(inputs, plan, {
      signal: ctx.signal,
      onProgress: (pr) => { if (pr.step === 'timed runs') monitor?.markTimed(); ctx.onProgress?.(pr); },
    });
  } catch (e) {
    monitor?.dispose();
    throw e;
  }
  const env = await monitor?.stop();
  const rss = await runner.peakRssMB(ctx);
  const timed = timedOf(plan, r);
  return {
    v: 1, backend: 'onnxruntime', model: p.model, session: opts.session ?? {}, inputs: describeInputs(inputs),
    latencyMs: latencyStats(r.samplesMs), samplesMs: r.samplesMs, loadMs: runner.loadMs, firstRunMs: r.firstRunMs,
    peakRssMB: rss, baseRssMB: runner.baseRssMB, warmupRuns: r.warmupRuns, warmupMs: r.warmupMs, timed,
    ...(env ? { env } : {}), throttled: env?.throttled ?? null, notes: [...notes, ...resultNotes(plan, timed, env)],
  };
}

/** Loads the model in a runner process, warms it up and times it. Latency is measured in the child around session.run. */
export async function benchModel(modelPath: string, opts: BenchOptions = {}, ctx: OpContext = {}): Promise<BenchResult> {
  const [r] = await benchShapes(modelPath, [{}], opts, ctx);
  return r;
}

/**
 * Benchmarks the model at several input shapes in one runner, one after the other (each with its own warm-up and
 * first run). Each entry of `shapeSets` is merged over `opts.shapes`.
 */
export async function benchShapes(modelPath: string, shapeSets: ReadonlyArray<Record<string, number[]>>, opts: BenchOptions = {}, ctx: OpContext = {}): Promise<BenchResult[]> {
  const plan = resolvePlan(opts);
  throwIfAborted(ctx.signal, `benchmark of ${modelPath}`);
  if (shapeSets.length === 0) throw new RangeError('benchShapes: needs at least one shape set (use [{}] for the defaults)');
  const p = await prepareBench(modelPath, { ...opts, shapes: { ...opts.shapes, ...shapeSets[0] } });
  // Every shape set is resolved before any process starts, so a bad --shape fails fast.
  const sets = shapeSets.map((s) => {
    if (opts.inputs || !p.specs) return { inputs: p.inputs, notes: p.notes };
    const gen = generateInputs(p.specs, { ...opts, shapes: { ...opts.shapes, ...s } });
    return { inputs: gen.tensors, notes: gen.notes };
  });
  ctx.onProgress?.({ step: 'load', pct: 0, detail: p.path });
  const runner = await ModelRunner.start(p.path, opts.session ?? {}, ctx, { pin: true });
  try {
    const out: BenchResult[] = [];
    for (const [i, s] of sets.entries()) {
      const scaled: OpContext = {
        signal: ctx.signal,
        onProgress: ctx.onProgress && ((pr) => ctx.onProgress!({ ...pr, pct: (100 * i + pr.pct) / sets.length })),
      };
      try {
        out.push(await benchLoaded(runner, p, s.inputs, runner.pinned ? [...s.notes, runner.pinned] : s.notes, plan, opts, scaled));
      } catch (e) {
        throw p.specs ? withGeneratedHint(e, p.specs, s.inputs) : e;
      }
    }
    ctx.onProgress?.({ step: 'done', pct: 100 });
    return out;
  } finally {
    await runner.close();
  }
}

/**
 * A run that failed on generated inputs may have failed because of their values: integer inputs are often settings
 * (a sample rate, token ids) the model checks. The error then says which inputs were random and how to give real ones.
 */
function withGeneratedHint(e: unknown, specs: readonly InputSpec[], inputs: Record<string, PlainTensor>): unknown {
  if (!(e instanceof EdgetuneError) || e.code !== 'BENCH_FAILED') return e;
  const ints = specs.filter((s) => s.dtype && /int/.test(s.dtype) && inputs[s.name]).map((s) => `"${s.name}" (${s.dtype})`);
  if (ints.length === 0) return e;
  return new EdgetuneError('BENCH_FAILED', `${e.message}. The inputs were generated: ${ints.join(', ')} got random integers in [0, ${INT_RANGE}); if the model needs particular values (a sample rate, token ids, a state), give real inputs with --data`, { cause: e });
}

/** A BenchResult as the Measurement tune and reports use. Values the backend did not give become NaN. */
export function toMeasurement(r: BenchResult, recipe: Recipe, quality: Quality = {}): Measurement {
  return {
    v: 1, recipe, label: recipeLabel(recipe), model: { sha256: r.model.sha256, bytes: r.model.bytes }, latencyMs: r.latencyMs,
    loadMs: r.loadMs ?? NaN, firstRunMs: r.firstRunMs ?? NaN, peakRssMB: r.peakRssMB ?? NaN, throttled: r.throttled, quality,
  };
}

// Kept here so existing imports (`compareModels` from bench.js) keep working.
export { compareModels, blockPlan, type CompareResult } from './compare.js';
