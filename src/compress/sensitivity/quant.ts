// Quantization sensitivity: quantize one layer at a time (every other layer kept fp32 by a skip override), run the
// model on the same examples as the fp32 reference, and rank layers by the damage done to the outputs.
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgetuneError, throwIfAborted } from '../../errors.js';
import { saveModel, type OnnxModel } from '../../onnx/model.js';
import { generateInputs, inputSpecs } from '../../measure/inputs.js';
import { ModelRunner, type SessionSettings } from '../../measure/runner.js';
import type { DataBatch } from '../../measure/datasets/source.js';
import type { PlainTensor } from '../../measure/plain-tensor.js';
import type { QuantizeStep } from '../../schema/recipe.js';
import type { PassReport, Recipe } from '../../types.js';
import type { PassOptions } from '../pass.js';
import { applyRecipe, type PipelineContext } from '../pipeline.js';
import { withSkips } from '../quantize/overrides.js';
import { DamageAccumulator, type Damage } from './damage.js';

export interface SensitivityContext extends PipelineContext {
  /** the recipe's exclusions, honoured when listing layers */
  exclude?: PassOptions;
  /** examples taken from ctx.data (default 64) */
  samples?: number;
  /** random input sets when there is no data (default 8) */
  generated?: number;
  /** input shapes for generated inputs with dynamic dims */
  shapes?: Record<string, number[]>;
  session?: SessionSettings;
  /** also measure every layer quantized at once (default true; the recipe fallback does not need it) */
  measureAll?: boolean;
}

export interface LayerDamage extends Damage {
  node: string;
  op: string;
  /** what quantizing it meant, from the pass report */
  what: string;
}

export interface QuantSensitivity {
  v: 1;
  kind: 'quant';
  mode: QuantizeStep['mode'];
  data: { source: string; examples: number; labelled: boolean };
  /** how `damage` is defined, for readers of the JSON */
  metric: string;
  /** every layer quantized at once, for comparison (absent when not asked for) */
  all?: Damage;
  /** worst first */
  layers: LayerDamage[];
  /** what the mode does not quantize, and why */
  skipped: PassReport['skipped'];
  notes: string[];
  wallS: number;
}

const METRIC = 'damage = 1 − cosine similarity of the model outputs with the fp32 model (worst output), over all examples';

/** Ranks the layers `q` would quantize by the damage each one does alone. Never modifies `model`. */
export async function quantSensitivity(model: OnnxModel, q: QuantizeStep, ctx: SensitivityContext = {}): Promise<QuantSensitivity> {
  if (q.mode === 'fp16') throw new EdgetuneError('USAGE', 'sensitivity: fp16 changes weights, not layers one at a time; use mode dynamic, weight-only or static');
  const started = Date.now();
  const base: QuantizeStep = { ...q, fallback: undefined };
  const exclude = { ops: ctx.exclude?.excludeOps ?? [], nodes: ctx.exclude?.excludeNodes ?? [] };
  const recipe = (step: QuantizeStep): Recipe => ({ v: 1, quantize: step, exclude });
  const ownDir = ctx.workDir === undefined;
  const work = ctx.workDir ?? (await mkdtemp(join(tmpdir(), 'edgetune-sensitivity-')));
  const progress = (done: number, total: number, step: string, detail?: string) => ctx.onProgress?.({ step, pct: (100 * done) / total, detail });
  try {
    const refPath = join(work, `sensitivity-reference-${process.pid}.onnx`);
    await saveModel(model, refPath);
    const inner: PipelineContext = { data: ctx.data, modelPath: refPath, workDir: work, signal: ctx.signal };
    const full = await applyRecipe(model, recipe(base), inner);
    const layers = uniqueChanges(full.passes);
    const skipped = full.passes.flatMap((p) => p.skipped);
    const { batches, source, notes } = await examples(model, ctx);
    const dataInfo = { source, examples: batches.reduce((n, b) => n + batchSize(b), 0), labelled: batches.some((b) => b.labels !== undefined) };
    if (layers.length === 0) {
      notes.push(`mode ${q.mode} quantizes no layer of this model: nothing to rank`);
      return { v: 1, kind: 'quant', mode: q.mode, data: dataInfo, metric: METRIC, layers: [], skipped, notes, wallS: (Date.now() - started) / 1000 };
    }
    const measureAll = ctx.measureAll ?? true;
    const total = layers.length + 1 + (measureAll ? 1 : 0);
    const first = total - layers.length; // progress steps before the per-layer runs
    progress(0, total, 'sensitivity: fp32 reference');
    const reference = await runAll(refPath, batches, ctx);
    const damageOf = async (candidate: OnnxModel, tag: string): Promise<Damage> => {
      const path = join(work, `sensitivity-${tag}-${process.pid}.onnx`);
      try {
        await saveModel(candidate, path);
        const outs = await runAll(path, batches, ctx);
        const acc = new DamageAccumulator(reference.first);
        outs.outputs.forEach((o, i) => acc.add(reference.outputs[i], o, batches[i].labels));
        return acc.result();
      } finally {
        await unlink(path).catch(() => {});
        await unlink(`${path}.data`).catch(() => {});
      }
    };
    let all: Damage | undefined;
    if (measureAll) {
      progress(1, total, 'sensitivity: all layers quantized');
      all = await damageOf(full.model, 'all');
    }
    const ranked: LayerDamage[] = [];
    for (const [i, layer] of layers.entries()) {
      throwIfAborted(ctx.signal, 'sensitivity analysis');
      progress(first + i, total, 'sensitivity: one layer at a time', `${i + 1}/${layers.length} ${layer.node}`);
      const others = layers.filter((l) => l.node !== layer.node).map((l) => l.node);
      const one = await applyRecipe(model, recipe(withSkips(base, others)), inner);
      if (!uniqueChanges(one.passes).some((c) => c.node === layer.node)) {
        notes.push(`layer "${layer.node}" was not quantized when alone; left out of the ranking`);
        continue;
      }
      ranked.push({ node: layer.node, op: layer.op, what: layer.what, ...(await damageOf(one.model, String(i))) });
    }
    ranked.sort((a, b) => b.damage - a.damage || a.sqnrDb - b.sqnrDb);
    progress(total, total, 'sensitivity: done');
    return {
      v: 1, kind: 'quant', mode: q.mode,
      data: dataInfo, metric: METRIC, all, layers: ranked, skipped, notes, wallS: (Date.now() - started) / 1000,
    };
  } finally {
    if (ownDir) await rm(work, { recursive: true, force: true });
    else await unlink(join(work, `sensitivity-reference-${process.pid}.onnx`)).catch(() => {});
  }
}

function uniqueChanges(passes: PassReport[]): PassReport['changed'] {
  const seen = new Set<string>();
  return passes.flatMap((p) => p.changed).filter((c) => !c.node.startsWith('(') && !seen.has(c.node) && seen.add(c.node));
}

function batchSize(b: DataBatch): number {
  const first = Object.values(b.feeds)[0];
  return b.labels?.length ?? first?.dims[0] ?? 1;
}

/** The examples every candidate runs on, held in memory so that each one sees exactly the same inputs. */
async function examples(model: OnnxModel, ctx: SensitivityContext): Promise<{ batches: DataBatch[]; source: string; notes: string[] }> {
  const notes: string[] = [];
  const batches: DataBatch[] = [];
  if (ctx.data) {
    for await (const b of ctx.data.batches({ batchSize: 16, limit: ctx.samples ?? 64, signal: ctx.signal })) batches.push(b);
    if (batches.length === 0) throw new EdgetuneError('DATASET_CORRUPT', `${ctx.data.name}: the dataset gave no examples`);
    return { batches, source: ctx.data.name, notes };
  }
  const specs = inputSpecs(model);
  const n = ctx.generated ?? 8;
  for (let i = 0; i < n; i++) {
    const g = generateInputs(specs, { shapes: ctx.shapes, seed: 1000 + i });
    if (i === 0) notes.push(...g.notes);
    batches.push({ feeds: g.tensors });
  }
  notes.push('no data given: damage was measured on random inputs, which can rank layers differently from real data (pass --data)');
  return { batches, source: 'generated', notes };
}

async function runAll(path: string, batches: DataBatch[], ctx: SensitivityContext): Promise<{ outputs: Array<Record<string, PlainTensor>>; first?: string }> {
  const runner = await ModelRunner.start(path, ctx.session ?? { intraOpThreads: 1 }, { signal: ctx.signal });
  try {
    const outputs: Array<Record<string, PlainTensor>> = [];
    for (const b of batches) outputs.push(await runner.run(b.feeds, { signal: ctx.signal }));
    return { outputs, first: runner.outputNames[0] };
  } finally {
    await runner.close();
  }
}
