// Runs the model over calibration batches in an ONNX Runtime child process, with the tensors to observe added as
// graph outputs; the child folds each batch into running statistics before the next one is read, so activations
// never cross the IPC channel and memory holds one batch of them at a time, never the whole set. When one batch of
// every observed tensor would exceed the memory budget, the tensors are split into groups and the data is run once
// per group.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { ValueInfoProtoSchema } from 'onnx-buf';
import { EdgetuneError, throwIfAborted } from '../../errors.js';
import { dropValueInfo } from '../../onnx/graph.js';
import { cloneModel, saveModel, type OnnxModel } from '../../onnx/model.js';
import type { DataBatch, DataSource } from '../../measure/datasets/source.js';
import type { PlainDtype } from '../../measure/plain-tensor.js';
import { ModelRunner, type SessionSettings } from '../../measure/runner.js';
import type { OpContext } from '../../types.js';
import { TensorStats } from './histogram.js';
import { inputSpecs } from '../../measure/inputs.js';

export interface CollectOptions {
  /** tensors of the main graph to observe (graph inputs are read from the feeds) */
  tensors: string[];
  /** keep histograms (percentile, entropy) or only min/max */
  histogram: boolean;
  /** examples to run at most */
  samples: number;
  batch: number;
  /** bytes of observed activations one run may return (default 256 MB) */
  memoryBudgetBytes?: number;
  workDir?: string;
  session?: SessionSettings;
}

export interface CollectResult {
  stats: Map<string, TensorStats>;
  /** the dtype each observed tensor had at run time (only float32 tensors get statistics) */
  dtypes: Map<string, PlainDtype>;
  /** examples run (per group) */
  samples: number;
  groups: number;
  notes: string[];
}

const DEFAULT_BUDGET = 256 * 2 ** 20;

/** A copy of the model that also returns `tensors`. Outputs need no type: ONNX Runtime infers it. */
export function augmentModel(model: OnnxModel, tensors: string[]): OnnxModel {
  const m = cloneModel(model);
  const g = m.proto.graph!;
  // Stale value_info shapes from the exporter can make ORT reject the copy; it re-infers them anyway.
  dropValueInfo(g);
  const have = new Set([...g.output.map((o) => o.name), ...g.input.map((i) => i.name)]);
  for (const t of tensors) if (!have.has(t)) g.output.push(create(ValueInfoProtoSchema, { name: t }));
  return m;
}

function examplesIn(b: DataBatch): number {
  const first = Object.values(b.feeds)[0];
  return first?.dims[0] ?? 1;
}

/** Observes `opts.tensors` over the data source; see the file comment for the memory rule. */
export async function collectStats(model: OnnxModel, source: DataSource, opts: CollectOptions, ctx: OpContext = {}): Promise<CollectResult> {
  const inputs = new Set(model.proto.graph!.input.map((i) => i.name));
  const stats = new Map<string, TensorStats>();
  const dtypes = new Map<string, PlainDtype>();
  const notes: string[] = [];
  const budget = opts.memoryBudgetBytes ?? DEFAULT_BUDGET;
  const dir = opts.workDir ?? await mkdtemp(join(tmpdir(), 'edgetune-calib-'));
  const ownDir = opts.workDir === undefined;
  const start = async (tensors: string[], tag: string) => {
    const path = join(dir, `calibrate-${tag}.onnx`);
    await saveModel(augmentModel(model, tensors.filter((t) => !inputs.has(t))), path);
    return ModelRunner.start(path, opts.session ?? {}, ctx);
  };

  try {
    // Probe with one example: learns each tensor's size per example (to plan groups) and its dtype.
    ctx.onProgress?.({ step: 'calibration: probe', pct: 0 });
    let probe: DataBatch | undefined;
    for await (const b of source.batches({ batchSize: 1, limit: 1, signal: ctx.signal })) { probe = b; break; }
    if (!probe) throw new EdgetuneError('DATASET_CORRUPT', `${source.name}: no examples to calibrate with`);
    let runner = await start(opts.tensors, 'all');
    const sizes = new Map<string, number>();
    try {
      const out = { ...probe.feeds, ...(await runner.run(probe.feeds, ctx)) };
      const per = examplesIn(probe);
      for (const t of opts.tensors) {
        const v = out[t];
        if (!v) continue;
        dtypes.set(t, v.dtype);
        // Graph inputs come from the feeds, not from the run's outputs: they cost no extra memory.
        sizes.set(t, inputs.has(t) ? 0 : v.data.byteLength / per);
      }
    } catch (e) {
      await runner.close();
      throw e;
    }
    const observed = opts.tensors.filter((t) => dtypes.get(t) === 'float32');
    // A model that fixes its batch dim is fed exactly that many examples per run, whatever batch was asked for:
    // plan the memory for what will really arrive (yolox-nano: 4 groups planned for batch 8, 1 needed at batch 1).
    const fixed = inputSpecs(model).map((sp) => sp.shape?.[0]).find((d): d is number => typeof d === 'number');
    const { groups, batch } = planGroups(observed.map((t) => ({ name: t, bytes: sizes.get(t) ?? 0 })), fixed ?? opts.batch, budget);
    if (fixed === undefined && batch < opts.batch) notes.push(`calibration batch lowered from ${opts.batch} to ${batch} to keep one run's activations under ${Math.round(budget / 2 ** 20)} MB`);
    if (groups.length > 1) notes.push(`activations observed in ${groups.length} groups (the data is run once per group) to stay under ${Math.round(budget / 2 ** 20)} MB per run`);

    let samples = 0;
    for (const [gi, group] of groups.entries()) {
      if (groups.length > 1 || gi > 0) {
        await runner.close();
        runner = await start(group, `g${gi}`);
      }
      samples = 0;
      try {
        for await (const b of source.batches({ batchSize: batch, limit: opts.samples, signal: ctx.signal })) {
          throwIfAborted(ctx.signal, 'calibration');
          // The child folds the activations where ORT computed them: only dtypes and, at the end, statistics
          // cross the IPC channel (copying every activation back cost Ultraface 1.6 GB for 64 examples).
          const { dtypes: got } = await runner.observe(b.feeds, group, opts.histogram, ctx);
          for (const [name, dt] of Object.entries(got)) dtypes.set(name, dt);
          samples += examplesIn(b);
          ctx.onProgress?.({ step: 'calibration', pct: (100 * (gi + Math.min(1, samples / opts.samples))) / groups.length, detail: `${samples} examples` });
        }
        for (const [name, s] of await runner.takeStats(ctx)) stats.set(name, s);
      } finally {
        await runner.close();
      }
    }
    return { stats, dtypes, samples, groups: groups.length, notes };
  } finally {
    if (ownDir) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Splits tensors (bytes per example) into groups whose batch fits the budget; lowers the batch when one tensor
 * alone would not fit. Pure; exported for tests.
 */
export function planGroups(tensors: Array<{ name: string; bytes: number }>, batch: number, budget: number): { groups: string[][]; batch: number } {
  const biggest = Math.max(0, ...tensors.map((t) => t.bytes));
  const b = biggest * batch > budget ? Math.max(1, Math.floor(budget / Math.max(1, biggest))) : batch;
  const groups: string[][] = [];
  let cur: string[] = [];
  let used = 0;
  for (const t of tensors) {
    if (cur.length && used + t.bytes * b > budget) { groups.push(cur); cur = []; used = 0; }
    cur.push(t.name);
    used += t.bytes * b;
  }
  if (cur.length || groups.length === 0) groups.push(cur);
  return { groups, batch: b };
}

/** Dims of `tensors` (main-graph values) on the source's first example: one run, for decisions that need ranks. */
export async function probeDims(model: OnnxModel, source: DataSource, tensors: string[], opts: { workDir?: string } = {}, ctx: OpContext = {}): Promise<Map<string, number[]>> {
  const dims = new Map<string, number[]>();
  if (tensors.length === 0) return dims;
  const dir = opts.workDir ?? await mkdtemp(join(tmpdir(), 'edgetune-probe-'));
  try {
    let first: DataBatch | undefined;
    for await (const b of source.batches({ batchSize: 1, limit: 1, signal: ctx.signal })) { first = b; break; }
    if (!first) return dims;
    const path = join(dir, 'probe.onnx');
    await saveModel(augmentModel(model, tensors), path);
    const runner = await ModelRunner.start(path, {}, ctx);
    try {
      const out = { ...first.feeds, ...(await runner.run(first.feeds, ctx)) };
      for (const t of tensors) if (out[t]) dims.set(t, out[t].dims);
    } finally {
      await runner.close();
    }
    return dims;
  } finally {
    if (opts.workDir === undefined) await rm(dir, { recursive: true, force: true });
  }
}
