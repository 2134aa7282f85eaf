// Calibration: which range each activation tensor should be quantized over, measured by running the model on
// examples (ctx.data), or, when the caller has none, on generated inputs with a loud warning.
import type { DataSource } from '../../measure/datasets/source.js';
import { generateInputs, inputSpecs } from '../../measure/inputs.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { OpContext } from '../../types.js';
import { collectStats } from './collect.js';
import { MASK_MAGNITUDE } from './histogram.js';
import { DEFAULT_PERCENTILE, rangeOf, type CalibrationMethod, type Range } from './ranges.js';

export type { CalibrationMethod, Range } from './ranges.js';

export interface CalibrationSettings {
  method?: CalibrationMethod;
  percentile?: number;
  samples?: number;
  batch?: number;
}

export interface CalibrationContext extends OpContext {
  data?: DataSource;
  workDir?: string;
  /** input shapes for generated data when the model's dims are dynamic */
  shapes?: Record<string, number[]>;
  memoryBudgetBytes?: number;
}

export interface CalibrationResult {
  ranges: Map<string, Range>;
  /** tensors that got no range, and why (not float32, only masks, never produced) */
  skipped: Map<string, string>;
  method: CalibrationMethod;
  source: string;
  samples: number;
  warnings: string[];
  notes: string[];
}

/** Seeded N(0, 1) inputs shaped from the model's specs: what compress's verification also feeds. */
export function generatedSource(model: OnnxModel, opts: { shapes?: Record<string, number[]>; seed?: number } = {}): DataSource {
  const specs = inputSpecs(model);
  return {
    name: 'generated inputs',
    async *batches(o = {}) {
      const limit = o.limit ?? 128;
      const fixed = specs.some((s) => typeof s.shape?.[0] === 'number');
      for (let done = 0, i = 0; done < limit; i++) {
        const batch = fixed ? undefined : Math.min(o.batchSize ?? 16, limit - done);
        const { tensors } = generateInputs(specs, { shapes: opts.shapes, batch, seed: (opts.seed ?? 4321) + i });
        const first = Object.values(tensors)[0];
        done += first?.dims[0] ?? 1;
        yield { feeds: tensors };
      }
    },
  };
}

/** Ranges for `tensors` (main-graph value names) by the settings' method. */
export async function calibrate(model: OnnxModel, tensors: string[], settings: CalibrationSettings, ctx: CalibrationContext = {}): Promise<CalibrationResult> {
  const method = settings.method ?? 'percentile';
  const samples = settings.samples ?? 128;
  const warnings: string[] = [];
  const source = ctx.data ?? generatedSource(model, { shapes: ctx.shapes });
  if (!ctx.data) {
    warnings.push('static quantization was calibrated on generated random inputs, not real data: activation ranges will be off and accuracy may drop badly. Pass a calibration dataset (a few hundred real examples).');
  }
  const r = await collectStats(model, source, {
    tensors, histogram: method !== 'minmax', samples, batch: settings.batch ?? 16,
    workDir: ctx.workDir, memoryBudgetBytes: ctx.memoryBudgetBytes,
  }, ctx);
  const ranges = new Map<string, Range>();
  const skipped = new Map<string, string>();
  for (const t of tensors) {
    const dt = r.dtypes.get(t);
    const s = r.stats.get(t);
    if (dt === undefined) { skipped.set(t, 'ONNX Runtime did not produce it during calibration'); continue; }
    if (dt !== 'float32') { skipped.set(t, `it is ${dt}, not float32`); continue; }
    if (!s) { skipped.set(t, 'no values were observed'); continue; }
    if (s.masked > 0) {
      // A ±3.4e38 mask squeezed into 8 bits would become an ordinary number and stop masking anything.
      skipped.set(t, `it holds ${s.masked} mask or non-finite values (|x| ≥ ${MASK_MAGNITUDE.toExponential(0)}) that 8 bits cannot represent`);
      continue;
    }
    const range = rangeOf(s, method, { percentile: settings.percentile ?? DEFAULT_PERCENTILE });
    if (!range || !Number.isFinite(range.min) || !Number.isFinite(range.max)) { skipped.set(t, 'no finite range'); continue; }
    ranges.set(t, range);
  }
  if (r.samples < Math.min(samples, 32) && ctx.data) {
    warnings.push(`calibration ran on only ${r.samples} examples from ${source.name}; ranges from so few examples are noisy`);
  }
  return { ranges, skipped, method, source: source.name, samples: r.samples, warnings, notes: r.notes };
}
