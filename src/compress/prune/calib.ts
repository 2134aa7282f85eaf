// The examples reconstruction and sensitivity run the models on: the caller's DataSource, or seeded random inputs
// shaped from the model's input specs (with a warning: random inputs say little about real activations).
import { UsageError, throwIfAborted } from '../../errors.js';
import type { DataBatch, DataSource } from '../../measure/datasets/source.js';
import { generateInputs, inputSpecs } from '../../measure/inputs.js';
import { elementCountOf } from '../../measure/plain-tensor.js';
import type { OnnxModel } from '../../onnx/model.js';

export interface CalibrationOptions {
  data?: DataSource;
  /** examples to use; default 256 for small inputs, 32 when one example has over 64k elements */
  samples?: number;
  /** examples per batch; default 32 for small inputs, 4 for large */
  batchSize?: number;
  /** sizes for dynamic input dims, when inputs are generated */
  shapes?: Record<string, number[]>;
  seed?: number;
}

export interface Calibration {
  /** where the examples come from, for reports */
  source: string;
  samples: number;
  batchSize: number;
  warning?: string;
  batches(signal?: AbortSignal): AsyncIterable<DataBatch>;
}

const LARGE_EXAMPLE = 65536;

/** Throws UsageError when inputs must be generated but a dynamic dim has no size (give `shapes` or data). */
export function calibration(model: OnnxModel, opts: CalibrationOptions = {}): Calibration {
  const specs = inputSpecs(model);
  let perExample = 0;
  if (!opts.data) {
    const probe = generateInputs(specs, { shapes: opts.shapes, seed: 1 });
    for (const t of Object.values(probe.tensors)) perExample += elementCountOf(t.dims.slice(1));
  }
  const large = perExample > LARGE_EXAMPLE || specs.some((s) => s.shape?.slice(1).some((d) => typeof d !== 'number'));
  const samples = opts.samples ?? (large ? 32 : 256);
  const batchSize = opts.batchSize ?? (large ? 4 : 32);
  if (!(Number.isInteger(samples) && samples > 0)) throw new UsageError(`calibration samples must be a positive integer, got ${samples}`);
  const data = opts.data;
  if (data) {
    return {
      source: data.name, samples: Math.min(samples, data.count ?? samples), batchSize,
      batches: (signal) => data.batches({ batchSize, limit: samples, signal }),
    };
  }
  const seed = opts.seed ?? 20240501;
  return {
    source: 'generated', samples, batchSize,
    warning: `no calibration data was given: random inputs (N(0,1)) were used, which may not look like real ones; pass a dataset for a faithful fit`,
    async *batches(signal?: AbortSignal) {
      let done = 0;
      for (let i = 0; done < samples; i++) {
        throwIfAborted(signal, 'calibration');
        const { tensors } = generateInputs(specs, { shapes: opts.shapes, seed: seed + i, batch: Math.min(batchSize, samples - done) });
        const first = Object.values(tensors)[0];
        done += first ? Math.max(1, first.dims[0] ?? 1) : samples;
        yield { feeds: tensors };
      }
    },
  };
}
