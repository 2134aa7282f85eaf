import { throwIfAborted } from '../errors.js';
import type { OpContext } from '../types.js';
import type { ClassificationSet } from './datasets/idx.js';
import type { PlainTensor } from './plain-tensor.js';
import { ModelRunner, type SessionSettings } from './runner.js';

export interface AccuracyResult {
  accuracy: number;
  correct: number;
  n: number;
  /** predicted class per example, so two models can be compared example by example */
  predictions: Uint8Array;
}

/**
 * Top-1 accuracy of a classifier on a labelled set, run batch by batch in an ONNX Runtime child process
 * (never on the caller's event loop). The model must take one float input [N, C, H, W] and give logits [N, classes].
 */
export async function evaluateClassifier(
  modelPath: string, set: ClassificationSet,
  opts: { inputName?: string; outputName?: string; batch?: number; session?: SessionSettings } = {}, ctx: OpContext = {},
): Promise<AccuracyResult> {
  const runner = await ModelRunner.start(modelPath, opts.session ?? { intraOpThreads: 1 }, ctx);
  try {
    const input = opts.inputName ?? runner.inputNames[0];
    const output = opts.outputName ?? runner.outputNames[0];
    const predictions = new Uint8Array(set.count);
    let correct = 0;
    for (const b of set.batches(opts.batch ?? 100)) {
      throwIfAborted(ctx.signal, 'evaluation');
      const feed: Record<string, PlainTensor> = { [input]: { dtype: 'float32', dims: b.dims, data: b.input } as PlainTensor };
      const out = (await runner.run(feed, ctx))[output];
      const classes = out.dims[out.dims.length - 1];
      const data = out.data as Float32Array;
      for (let r = 0; r < b.dims[0]; r++) {
        let best = 0;
        for (let c = 1; c < classes; c++) if (data[r * classes + c] > data[r * classes + best]) best = c;
        predictions[b.start + r] = best;
        if (best === b.labels[r]) correct++;
      }
      ctx.onProgress?.({ step: 'evaluate', pct: (100 * (b.start + b.dims[0])) / set.count });
    }
    return { accuracy: set.count ? correct / set.count : NaN, correct, n: set.count, predictions };
  } finally {
    await runner.close();
  }
}
