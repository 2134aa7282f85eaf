import { EdgetuneError } from '../../errors.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { QuantizeStep } from '../../schema/recipe.js';
import type { PassReport } from '../../types.js';
import type { PassOptions } from '../pass.js';
import type { PipelineContext } from '../pipeline.js';
import { quantizeDynamic } from './dynamic.js';
import { storeWeightsFp16 } from './fp16.js';

export interface StepResult { passes: PassReport[]; warnings: string[] }

/** The quantize step: one module per mode. `model` is a private copy the step may change in place. */
export async function runQuantize(model: OnnxModel, q: QuantizeStep, exclude: PassOptions, ctx: PipelineContext): Promise<StepResult> {
  switch (q.mode) {
    case 'dynamic':
      if (q.bits !== undefined && q.bits !== 8) throw new EdgetuneError('USAGE', `recipe.quantize.bits: dynamic quantization is int8 only (got ${q.bits})`);
      return { passes: [quantizeDynamic(model, { ...exclude, perChannel: q.perChannel })], warnings: [] };
    case 'fp16':
      if (!q.fullGraph) {
        return {
          passes: [storeWeightsFp16(model, exclude)],
          warnings: ['fp16 weights only halve the file on CPUs: ONNX Runtime casts them back to fp32 at load time, so expect no speed-up'],
        };
      }
      break;
    default:
      break;
  }
  void ctx;
  throw new EdgetuneError('USAGE', `recipe.quantize: mode "${q.mode}"${q.fullGraph ? ' with fullGraph' : ''} is not available in this edgetune version; use "dynamic" or "fp16"`);
}
