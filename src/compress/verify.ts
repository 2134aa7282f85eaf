import { generateInputs, inputSpecs } from '../measure/inputs.js';
import { ModelRunner } from '../measure/runner.js';
import { compareOutputs, FidelityAccumulator } from '../measure/fidelity.js';
import type { DataSource } from '../measure/datasets/source.js';
import { elementCountOf, toNumbers, type PlainTensor } from '../measure/plain-tensor.js';
import type { OnnxModel } from '../onnx/model.js';
import { throwIfAborted } from '../errors.js';
import type { OpContext } from '../types.js';

export type FidelityByOutput = Record<string, { cosine: number; maxAbsError: number; sqnrDb: number; top1Agreement?: number }>;

export interface VerifyOptions {
  shapes?: Record<string, number[]>;
  seed?: number;
  /** real examples to compare on; generated N(0, 1) inputs when absent */
  data?: DataSource;
  /** examples taken from `data` (default 64) */
  samples?: number;
  /** examples of `data` to pass over first (those that calibrated the model, when the set has enough beyond them) */
  skip?: number;
}

export interface VerifyResult {
  fidelity: FidelityByOutput;
  /** what the comparison ran on, for the report */
  on: { source: string; examples: number };
}

/**
 * Runs the original and the compressed file on the same inputs, each in its own ONNX Runtime child process, and
 * compares every output. Loading the compressed file here is also the proof that ORT accepts it.
 */
export async function verifyAgainst(
  originalPath: string, original: OnnxModel, candidatePath: string, opts: VerifyOptions = {}, ctx: OpContext = {},
): Promise<VerifyResult> {
  const ref = await ModelRunner.start(originalPath, { intraOpThreads: 1 }, ctx);
  try {
    const cand = await ModelRunner.start(candidatePath, { intraOpThreads: 1 }, ctx);
    try {
      if (!opts.data) {
        const { tensors } = generateInputs(inputSpecs(original), { shapes: opts.shapes, seed: opts.seed ?? 1234 });
        const fidelity = compareOutputs(await ref.run(tensors), await cand.run(tensors)) as FidelityByOutput;
        return { fidelity, on: { source: 'generated inputs', examples: firstDim(tensors) } };
      }
      return await verifyOnData(ref, cand, opts.data, opts, ctx);
    } finally {
      await cand.close();
    }
  } finally {
    await ref.close();
  }
}

async function verifyOnData(ref: ModelRunner, cand: ModelRunner, data: DataSource, opts: VerifyOptions, ctx: OpContext): Promise<VerifyResult> {
  const want = opts.samples ?? 64;
  const skip = opts.skip ?? 0;
  const acc = new Map<string, FidelityAccumulator>();
  let seen = 0, used = 0;
  // Reading past the skipped examples costs a pass over them, but never holds more than one batch in memory.
  for await (const batch of data.batches({ batchSize: 16, limit: skip + want, signal: ctx.signal })) {
    throwIfAborted(ctx.signal, 'verification');
    let feeds = batch.feeds;
    let n = firstDim(feeds);
    seen += n;
    if (seen <= skip) continue;
    if (seen - n < skip) {
      // A batch straddling the boundary: keep only its unseen rows (possible when the model's batch dim is free).
      const drop = skip - (seen - n);
      feeds = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, dropRows(t, drop)]));
      n -= drop;
    }
    const [a, b] = [await ref.run(feeds), await cand.run(feeds)];
    // compareOutputs checks names and dims; the accumulator sums over batches.
    compareOutputs(a, b);
    for (const [name, r] of Object.entries(a)) {
      const f = acc.get(name) ?? new FidelityAccumulator();
      f.add(toNumbers(r), toNumbers(b[name]), r.dims[r.dims.length - 1]);
      acc.set(name, f);
    }
    used += n;
  }
  if (used === 0 && skip > 0) return verifyOnData(ref, cand, data, { ...opts, skip: 0 }, ctx);
  const fidelity: FidelityByOutput = {};
  for (const [name, f] of acc) {
    const r = f.result();
    fidelity[name] = { cosine: r.cosine, maxAbsError: r.maxAbsError, sqnrDb: r.sqnrDb, ...(r.top1Agreement !== undefined ? { top1Agreement: r.top1Agreement } : {}) };
  }
  return { fidelity, on: { source: data.name, examples: used } };
}

function dropRows(t: PlainTensor, k: number): PlainTensor {
  const row = elementCountOf(t.dims.slice(1));
  return { dtype: t.dtype, dims: [t.dims[0] - k, ...t.dims.slice(1)], data: t.data.subarray(k * row) as PlainTensor['data'] };
}

function firstDim(feeds: Record<string, PlainTensor>): number {
  return Object.values(feeds)[0]?.dims[0] ?? 1;
}
