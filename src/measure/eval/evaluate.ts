// `edgetune eval`: runs a model over a dataset batch by batch (in a runner child, never on the caller's event
// loop) and scores it against labels (accuracy, precision/recall/F1) and/or a reference model (fidelity per output).
// Only accumulators are kept between batches, so the dataset's size does not matter.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DatasetError, UsageError, isENOENT, throwIfAborted, ModelError } from '../../errors.js';
import { loadModel, sha256 } from '../../onnx/model.js';
import type { OpContext, Quality } from '../../types.js';
import type { ImageFolderOptions } from '../datasets/images.js';
import { FidelityAccumulator, summarizeFidelity, type OutputFidelity } from '../fidelity.js';
import { inputSpecs } from '../inputs.js';
import { toNumbers, type PlainTensor } from '../plain-tensor.js';
import { ModelRunner, type SessionSettings } from '../runner.js';
import type { DataBatch } from '../datasets/source.js';
import { openEvalData, readLabels, withLabels } from './data.js';
import { ClassificationMetrics, type ClassificationResult } from './metrics.js';

export interface EvalOptions {
  model: string;
  /** dataset: image folder, ONNX test-data folder, .npy/.npz, .jsonl, IDX folder */
  data: string;
  /** labels file (.npy, IDX, text), one per example; replaces the dataset's own labels */
  labels?: string;
  /** a reference model (usually the fp32 original) to measure fidelity against */
  reference?: string;
  /** the classifier output (default: the model's first output) */
  output?: string;
  batchSize?: number;
  limit?: number;
  /** single-score outputs: positive when the score is above this (default 0.5; use 0 for logits) */
  threshold?: number;
  image?: ImageFolderOptions;
  session?: SessionSettings;
}

export interface FileInfo { path: string; sha256: string; bytes: number }

export interface EvalResult {
  v: 1;
  model: FileInfo;
  reference?: FileInfo;
  data: { path: string; format: string; count?: number };
  /** examples run */
  n: number;
  classification?: ClassificationResult & { output: string };
  /** fidelity to the reference, per output */
  fidelity?: Record<string, OutputFidelity>;
  /** the summary a Measurement carries: accuracy, and the worst output's fidelity */
  quality: Quality;
  notes: string[];
  wallS: number;
}

async function fileInfo(path: string): Promise<FileInfo> {
  const abs = resolve(path);
  try {
    const bytes = await readFile(abs);
    return { path: abs, sha256: sha256(bytes), bytes: bytes.length };
  } catch (e) {
    if (isENOENT(e)) throw new ModelError('MODEL_NOT_FOUND', `${path}: no such file`);
    throw e;
  }
}

function examplesIn(feeds: Record<string, PlainTensor>): number {
  return Object.values(feeds)[0]?.dims[0] ?? 1;
}

/** The class-score width of an output for `rows` examples; throws when it is not one row of scores per example. */
function classesOf(name: string, t: PlainTensor, rows: number, first: number): number {
  if (t.data.length % rows !== 0 || t.dims[0] !== rows) {
    throw new DatasetError('DATASET_CORRUPT', `output "${name}" has dims [${t.dims.join(',')}] for ${rows} examples (from example ${first}); classification needs [N, classes]`);
  }
  const per = t.data.length / rows;
  const last = t.dims[t.dims.length - 1] ?? 1;
  if (t.dims.length > 1 && per !== last) {
    throw new DatasetError('DATASET_CORRUPT', `output "${name}" has ${per} values per example in dims [${t.dims.join(',')}]; classification needs one row of class scores per example (pick another with --output)`);
  }
  return per;
}

export async function evaluateModel(o: EvalOptions, ctx: OpContext = {}): Promise<EvalResult> {
  const started = Date.now();
  throwIfAborted(ctx.signal, 'evaluation');
  const model = await fileInfo(o.model);
  const reference = o.reference ? await fileInfo(o.reference) : undefined;
  const parsed = await loadModel(model.path);
  const specs = inputSpecs(parsed);
  let data = await openEvalData(o.data, parsed, o.image);
  if (o.labels) data = withLabels(data, await readLabels(o.labels, data.classes), o.labels);
  const notes = [...data.notes];
  // Examples are counted on the first input's dim 0 (examplesIn), so only that dim can fix the batch: another
  // input's fixed dim 0 is not a batch (Silero's state is [2, batch, 128]). ONNX test-data sets are fed whole, each
  // already checked against every fixed dim when the folder was opened, so no set is skipped for its size.
  const first0 = specs[0]?.shape?.[0];
  const fixedBatch = data.format !== 'testdata' && typeof first0 === 'number' ? first0 : undefined;
  const batchSize = fixedBatch ?? o.batchSize ?? 32;
  if (fixedBatch !== undefined && o.batchSize !== undefined && o.batchSize !== fixedBatch) {
    notes.push(`the model fixes its batch at ${fixedBatch}; --batch ${o.batchSize} is ignored`);
  }

  // The first batch is read before any runner starts, so a dataset that cannot be scored fails fast.
  const iterator = data.batches({ batchSize, limit: o.limit, signal: ctx.signal })[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) throw new DatasetError('DATASET_CORRUPT', `${o.data}: no examples were read`);
  if (first.value.labels === undefined && !reference) {
    throw new UsageError(`${o.data} has no labels and no --reference was given: there is nothing to score against (give --labels FILE or --reference fp32.onnx)`);
  }
  async function* rest(): AsyncGenerator<DataBatch> {
    yield first.value as DataBatch;
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) yield r.value;
  }

  const session = o.session ?? {};
  const runner = await ModelRunner.start(model.path, session, ctx);
  let refRunner: ModelRunner | undefined;
  try {
    if (reference) refRunner = await ModelRunner.start(reference.path, session, ctx);
    const output = o.output ?? runner.outputNames[0];
    if (!runner.outputNames.includes(output)) {
      throw new UsageError(`--output "${output}" is not an output of ${model.path} (outputs: ${runner.outputNames.join(', ')})`);
    }
    let metrics: ClassificationMetrics | undefined;
    const fidelity = new Map<string, FidelityAccumulator>();
    let n = 0;
    for await (const batch of rest()) {
      throwIfAborted(ctx.signal, 'evaluation');
      const rows = examplesIn(batch.feeds);
      if (fixedBatch !== undefined && rows !== fixedBatch) {
        notes.push(`the last ${rows} example(s) were skipped: the model takes batches of exactly ${fixedBatch}`);
        break;
      }
      const out = await runner.run(batch.feeds, ctx);
      if (batch.labels) {
        const t = out[output];
        const classes = classesOf(output, t, rows, n);
        metrics ??= new ClassificationMetrics(classes, o.threshold ?? 0.5, data.classes);
        if (classes !== metrics.classes) throw new DatasetError('DATASET_CORRUPT', `output "${output}" gave ${classes} scores per example from example ${n}, ${metrics.classes} before`);
        metrics.add(toNumbers(t), batch.labels, n);
      }
      if (refRunner) {
        const ref = await refRunner.run(batch.feeds, ctx);
        for (const [name, r] of Object.entries(ref)) {
          const t = out[name];
          if (!t) throw new ModelError('MODEL_INVALID', `output "${name}" of the reference is missing from ${model.path} (it has: ${Object.keys(out).join(', ')})`);
          if (r.dims.length !== t.dims.length || r.dims.some((d, i) => d !== t.dims[i])) {
            throw new ModelError('MODEL_INVALID', `output "${name}": the reference gives [${r.dims.join(',')}] but ${model.path} gives [${t.dims.join(',')}]`);
          }
          let acc = fidelity.get(name);
          if (!acc) fidelity.set(name, (acc = new FidelityAccumulator()));
          acc.add(toNumbers(r), toNumbers(t), r.dims[r.dims.length - 1]);
        }
      }
      n += rows;
      ctx.onProgress?.({ step: 'evaluate', pct: data.count ? Math.min(100, (100 * n) / Math.min(data.count, o.limit ?? Infinity)) : 0, detail: `${n} examples` });
    }
    if (n === 0) throw new DatasetError('DATASET_CORRUPT', `${o.data}: no examples were read`);

    const perOutput = refRunner ? Object.fromEntries([...fidelity].map(([k, a]) => [k, a.result()])) : undefined;
    const classification = metrics ? { output, ...metrics.result() } : undefined;
    if (classification?.classes === 1) notes.push(`output "${output}" gives one score: positive when above ${o.threshold ?? 0.5} (use --threshold 0 for logits)`);
    const quality: Quality = { ...(perOutput ? summarizeFidelity(perOutput) : {}), ...(classification ? { accuracy: classification.top1 } : {}) };
    ctx.onProgress?.({ step: 'done', pct: 100 });
    return {
      v: 1, model, ...(reference ? { reference } : {}), data: { path: resolve(o.data), format: data.format, ...(data.count !== undefined ? { count: data.count } : {}) },
      n, ...(classification ? { classification } : {}), ...(perOutput ? { fidelity: perOutput } : {}), quality, notes, wallS: (Date.now() - started) / 1000,
    };
  } finally {
    await Promise.all([runner.close(), refRunner?.close()]);
  }
}
