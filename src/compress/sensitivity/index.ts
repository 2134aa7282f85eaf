// `edgetune sensitivity`: which layers a compression hurts most. One kind per analysis; the CLI only dispatches.
import { resolve } from 'node:path';
import { loadModel } from '../../onnx/model.js';
import { openDataSource } from '../../measure/datasets/open.js';
import type { QuantizeStep } from '../../schema/recipe.js';
import type { OpContext } from '../../types.js';
import { quantSensitivity, type QuantSensitivity } from './quant.js';

export type { QuantSensitivity, LayerDamage } from './quant.js';
export type { Damage } from './damage.js';

export interface QuantSensitivityOptions {
  kind: 'quant';
  model: string;
  quantize: QuantizeStep;
  /** a dataset path (see measure/datasets/open.ts); random inputs when absent */
  data?: string;
  samples?: number;
  shapes?: Record<string, number[]>;
}

export type SensitivityOptions = QuantSensitivityOptions;
export type SensitivityReport = QuantSensitivity & { model: string };

export async function runSensitivity(opts: SensitivityOptions, ctx: OpContext = {}): Promise<SensitivityReport> {
  const path = resolve(opts.model);
  const model = await loadModel(path);
  const data = opts.data ? await openDataSource(opts.data, model) : undefined;
  switch (opts.kind) {
    case 'quant': {
      const r = await quantSensitivity(model, opts.quantize, { ...ctx, data, samples: opts.samples, shapes: opts.shapes });
      return { ...r, model: path };
    }
  }
}
