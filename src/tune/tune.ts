import { mkdtemp, rm, copyFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { loadModel, modelBytes, saveModel, sha256, type OnnxModel } from '../onnx/model.js';
import { applyRecipe } from '../compress/pipeline.js';
import { generateInputs, inputSpecs } from '../measure/inputs.js';
import { ModelRunner } from '../measure/runner.js';
import { latencyStats } from '../measure/stats.js';
import { compareOutputs, summarizeFidelity } from '../measure/fidelity.js';
import type { PlainTensor } from '../measure/plain-tensor.js';
import { throwIfAborted } from '../errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import type { Measurement, OpContext, Target, TuneBudget, TuneResult } from '../types.js';
import { recipeLabel } from '../schema/recipe.js';
import { candidateSpace, type Candidate, type QuantChoice } from './space.js';
import { decide, paretoFront } from './decide.js';

export interface TuneOptions {
  model: string;
  budgetMs: number;
  percentile?: TuneBudget['percentile'];
  memoryMB?: number;
  /** where the chosen model goes (default: `<model>.tuned.onnx` beside the input) */
  output?: string;
  /** where the TuneResult JSON goes (default: `<output>.tune.json`) */
  resultPath?: string;
  /** the device this runs on; defaults keep the tuner usable without a profile */
  device?: { id: string; target: string };
  space?: Target['space'];
  quant?: QuantChoice[];
  threads?: number[];
  shapes?: Record<string, number[]>;
  /** benchmark length per candidate; the defaults suit models of a few ms */
  bench?: { minRuns?: number; minMs?: number; maxRuns?: number; maxMs?: number; warmupRuns?: number };
}

/**
 * Measures every candidate of the space on this device (latency in a child process, fidelity to fp32 on the same
 * generated inputs) and picks the most faithful one that meets the budget.
 */
export async function tune(opts: TuneOptions, ctx: OpContext = {}): Promise<TuneResult> {
  const started = Date.now();
  const percentile = opts.percentile ?? 90;
  const budget: TuneBudget = { latencyMs: opts.budgetMs, percentile, ...(opts.memoryMB !== undefined ? { memoryMB: opts.memoryMB } : {}) };
  if (!(opts.budgetMs > 0)) throw new RangeError(`budgetMs must be a positive number of milliseconds (got ${opts.budgetMs})`);
  const inPath = resolve(opts.model);
  const output = resolve(opts.output ?? join(dirname(inPath), `${basename(inPath, '.onnx')}.tuned.onnx`));
  const resultPath = resolve(opts.resultPath ?? `${output.replace(/\.onnx$/, '')}.tune.json`);
  const original = await loadModel(inPath);
  const inBytes = modelBytes(original);
  const candidates = candidateSpace(opts.space, availableParallelism(), { quant: opts.quant, threads: opts.threads });
  const { tensors: inputs } = generateInputs(inputSpecs(original), { shapes: opts.shapes, seed: 20261123 });

  const work = await mkdtemp(join(tmpdir(), 'edgetune-tune-'));
  try {
    const files = await buildCandidateFiles(original, inPath, candidates, work, ctx);
    const runnable = candidates.filter((c) => files.has(c.quant));
    const trials: Measurement[] = [];
    let reference: Record<string, PlainTensor> | undefined;
    for (const [i, c] of runnable.entries()) {
      throwIfAborted(ctx.signal, 'tune');
      const step = `measure ${recipeLabel(c.recipe)} (${i + 1}/${runnable.length})`;
      const elapsed = (Date.now() - started) / 1000;
      ctx.onProgress?.({ step, pct: (100 * i) / runnable.length, etaS: i > 0 ? (elapsed / i) * (runnable.length - i) : undefined });
      const file = files.get(c.quant)!;
      const m = await measureCandidate(c, file, inputs, reference, opts.bench ?? {}, ctx);
      reference ??= m.outputs; // fp32 comes first in the space, so the first run is the reference
      trials.push(m.measurement);
    }
    const baseline = trials.find((m) => !m.recipe.quantize) ?? trials[0];
    const decision = decide(trials, budget);
    if (decision.chosen) {
      await writeFileAtomic(output, await readBytes(files.get(quantOf(decision.chosen))!));
    }
    const result: TuneResult = {
      v: 1,
      device: opts.device ?? { id: 'local', target: 'unknown' },
      model: { path: inPath, sha256: sha256(inBytes), bytes: inBytes.length },
      budget,
      baseline,
      chosen: decision.chosen,
      ...(decision.chosen ? { output } : {}),
      ...(decision.infeasible ? { infeasible: decision.infeasible } : {}),
      front: paretoFront(trials, percentile),
      trials,
      wallS: (Date.now() - started) / 1000,
    };
    await writeJsonAtomic(resultPath, result);
    ctx.onProgress?.({ step: 'done', pct: 100 });
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function quantOf(m: Measurement): QuantChoice {
  return m.recipe.quantize ? (m.recipe.quantize.mode as QuantChoice) : 'fp32';
}

async function readBytes(path: string): Promise<Uint8Array> {
  const { readFile } = await import('node:fs/promises');
  return readFile(path);
}

/** One compressed file per quantization choice; a choice that changes nothing in this model is dropped. */
async function buildCandidateFiles(original: OnnxModel, inPath: string, candidates: Candidate[], work: string, ctx: OpContext): Promise<Map<QuantChoice, string>> {
  const files = new Map<QuantChoice, string>();
  for (const c of candidates) {
    if (files.has(c.quant)) continue;
    throwIfAborted(ctx.signal, 'tune');
    if (c.quant === 'fp32') {
      const p = join(work, 'fp32.onnx');
      await copyFile(inPath, p);
      files.set('fp32', p);
      continue;
    }
    const res = await applyRecipe(original, c.recipe, { signal: ctx.signal, modelPath: inPath });
    if (res.passes.every((p) => p.changed.length === 0)) continue;
    const p = join(work, `${c.quant}.onnx`);
    await saveModel(res.model, p);
    files.set(c.quant, p);
  }
  return files;
}

async function measureCandidate(
  c: Candidate, file: string, inputs: Record<string, PlainTensor>, reference: Record<string, PlainTensor> | undefined,
  bench: NonNullable<TuneOptions['bench']>, ctx: OpContext,
): Promise<{ measurement: Measurement; outputs: Record<string, PlainTensor> }> {
  const runner = await ModelRunner.start(file, { intraOpThreads: c.threads }, { signal: ctx.signal });
  try {
    const outputs = await runner.run(inputs);
    const timing = await runner.bench(inputs, { warmupRuns: 5, minRuns: 30, minMs: 500, maxRuns: 300, maxMs: 4000, ...bench }, { signal: ctx.signal });
    const peakRssMB = await runner.peakRssMB();
    const bytes = await readBytes(file);
    const quality = summarizeFidelity(compareOutputs(reference ?? outputs, outputs));
    return {
      outputs,
      measurement: {
        v: 1,
        recipe: c.recipe,
        label: recipeLabel(c.recipe),
        model: { sha256: sha256(bytes), bytes: bytes.length },
        latencyMs: latencyStats(timing.samplesMs),
        loadMs: runner.loadMs,
        firstRunMs: timing.firstRunMs,
        peakRssMB,
        throttled: null,
        quality,
      },
    };
  } finally {
    await runner.close();
  }
}
