// Quality of a compressed model, evaluated once per model file (session settings do not change outputs): top-1
// accuracy on labelled held-out examples when there are any, and always fidelity to the fp32 model's outputs on the
// same examples. The examples and the fp32 outputs are read once and kept in memory for every candidate.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DatasetError, isENOENT, throwIfAborted } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { openEvalData } from '../measure/eval/data.js';
import { FidelityAccumulator, summarizeFidelity } from '../measure/fidelity.js';
import { generateInputs, inputSpecs } from '../measure/inputs.js';
import type { DataBatch, DataSource } from '../measure/datasets/source.js';
import { toNumbers, type PlainTensor } from '../measure/plain-tensor.js';
import { ModelRunner } from '../measure/runner.js';
import type { OpContext, Quality } from '../types.js';

export interface TuneData {
  source: DataSource;
  /** where it came from, for the report */
  name: string;
  /** the classifier output named by the dataset's meta.json, if any */
  output?: string;
  notes: string[];
}

/**
 * The examples to evaluate and calibrate with: `--data` when given, else a labelled set that sits next to the
 * model with a meta.json naming it (the bundled example), else none (generated inputs, fidelity only).
 */
export async function openTuneData(modelPath: string, model: OnnxModel, data?: string): Promise<TuneData | undefined> {
  const dir = data ?? dirname(modelPath);
  let meta: { output?: unknown; evalSet?: unknown } | undefined;
  try {
    meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'));
  } catch (e) {
    if (!isENOENT(e) && !(e instanceof SyntaxError)) throw e;
  }
  if (data === undefined && !meta?.evalSet) return undefined;
  const source = await openEvalData(dir, model);
  const notes = [...source.notes];
  if (data === undefined) notes.push(`using the labelled examples next to the model (${join(dir, 'meta.json')} names them)`);
  return { source, name: source.name, ...(typeof meta?.output === 'string' ? { output: meta.output } : {}), notes };
}

export interface EvalSet {
  batches: DataBatch[];
  examples: number;
  labelled: boolean;
  /** 'generated' or the dataset's name */
  from: string;
  notes: string[];
}

/** Reads the first `samples` examples of `data` (or generates `samples` seeded inputs) into memory. */
export async function loadEvalSet(model: OnnxModel, data: TuneData | undefined, o: { samples: number; shapes?: Record<string, number[]>; seed?: number }, ctx: OpContext = {}): Promise<EvalSet> {
  const notes: string[] = [];
  if (!data) {
    const specs = inputSpecs(model);
    const batches: DataBatch[] = [];
    for (let i = 0; i < o.samples; i++) batches.push({ feeds: generateInputs(specs, { shapes: o.shapes, seed: (o.seed ?? 7) + i }).tensors });
    notes.push(`quality is fidelity to fp32 on ${o.samples} generated input(s): give --data for accuracy on real examples`);
    return { batches, examples: o.samples, labelled: false, from: 'generated', notes };
  }
  const fixed = inputSpecs(model).map((s) => s.shape?.[0]).find((d): d is number => typeof d === 'number');
  const batches: DataBatch[] = [];
  let n = 0;
  for await (const b of data.source.batches({ batchSize: fixed ?? 50, limit: o.samples, signal: ctx.signal })) {
    throwIfAborted(ctx.signal, 'reading evaluation data');
    batches.push(b);
    n += Object.values(b.feeds)[0]?.dims[0] ?? 1;
  }
  if (!n) throw new DatasetError('DATASET_CORRUPT', `${data.name}: no examples were read`);
  const labelled = batches.every((b) => b.labels !== undefined);
  if (!labelled) notes.push(`${data.name} has no labels: quality is fidelity to fp32 on its first ${n} example(s)`);
  return { batches, examples: n, labelled, from: data.name, notes };
}

/** A source that skips the first `n` examples of another: calibration data kept apart from evaluation data. */
export function skipExamples(src: DataSource, n: number): DataSource {
  return {
    name: `${src.name} (after the first ${n} examples)`,
    ...(src.count !== undefined ? { count: Math.max(0, src.count - n) } : {}),
    async *batches(o = {}) {
      let seen = 0;
      let given = 0;
      const limit = o.limit ?? Infinity;
      for await (const b of src.batches({ ...o, limit: limit === Infinity ? undefined : n + limit })) {
        const rows = Object.values(b.feeds)[0]?.dims[0] ?? 1;
        seen += rows;
        if (seen <= n) continue;
        if (given >= limit) return;
        given += rows;
        yield b;
      }
    },
  };
}

export interface EvalRun {
  quality: Quality;
  /** outputs per batch: kept for the fp32 reference run only */
  outputs?: Array<Record<string, PlainTensor>>;
  notes: string[];
}

function argmaxRows(t: PlainTensor, rows: number): Int32Array | undefined {
  if (t.dims[0] !== rows || t.data.length % rows !== 0) return undefined;
  const classes = t.data.length / rows;
  if (classes < 2 || t.dims[t.dims.length - 1] !== classes) return undefined;
  const v = toNumbers(t);
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (v[r * classes + c] > v[r * classes + best]) best = c;
    out[r] = best;
  }
  return out;
}

/**
 * Runs `file` over the evaluation set in a runner child. With `reference` (the fp32 run's outputs), quality holds
 * fidelity to it; without, this is the reference run and its outputs are returned. Accuracy is computed from
 * `output` (default: the model's first) when the set is labelled and that output is [N, classes].
 */
export async function evaluateFile(file: string, set: EvalSet, reference: Array<Record<string, PlainTensor>> | undefined, o: { output?: string } = {}, ctx: OpContext = {}): Promise<EvalRun> {
  const runner = await ModelRunner.start(file, {}, ctx);
  const notes: string[] = [];
  try {
    const output = o.output && runner.outputNames.includes(o.output) ? o.output : runner.outputNames[0];
    const fid = new Map<string, FidelityAccumulator>();
    const outputs: Array<Record<string, PlainTensor>> = [];
    let correct = 0, scored = 0;
    let accuracyOk = set.labelled;
    for (const [i, b] of set.batches.entries()) {
      throwIfAborted(ctx.signal, 'quality evaluation');
      const out = await runner.run(b.feeds, ctx);
      if (!reference) outputs.push(out);
      const ref = reference?.[i] ?? out;
      for (const [name, r] of Object.entries(ref)) {
        const t = out[name];
        if (!t) throw new DatasetError('DATASET_CORRUPT', `${file}: output "${name}" of the fp32 model is missing`);
        let acc = fid.get(name);
        if (!acc) fid.set(name, (acc = new FidelityAccumulator()));
        acc.add(toNumbers(r), toNumbers(t), r.dims[r.dims.length - 1]);
      }
      if (accuracyOk && b.labels) {
        const rows = Object.values(b.feeds)[0]?.dims[0] ?? 1;
        const pred = argmaxRows(out[output], rows);
        if (!pred) {
          accuracyOk = false;
          notes.push(`output "${output}" is not one row of class scores per example (dims [${out[output].dims.join(',')}]): no accuracy, quality is fidelity`);
          continue;
        }
        for (let r = 0; r < rows; r++) if (pred[r] === b.labels[r]) correct++;
        scored += rows;
      }
    }
    const quality: Quality = summarizeFidelity(Object.fromEntries([...fid].map(([k, a]) => [k, a.result()])));
    if (accuracyOk && scored > 0) quality.accuracy = correct / scored;
    return { quality, ...(reference ? {} : { outputs }), notes };
  } finally {
    await runner.close();
  }
}
