import { EdgetuneError } from '../../errors.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { QuantizeStep } from '../../schema/recipe.js';
import type { PassReport } from '../../types.js';
import type { PassOptions } from '../pass.js';
import type { PipelineContext } from '../pipeline.js';
import { dynamicStep } from './dynamic.js';
import { storeWeightsFp16 } from './fp16.js';
import { weightOnlyStep } from './weight-only.js';
import { fp16GraphStep } from './fp16-graph.js';
import { fallbackRequested, quantizeWithFallback } from '../sensitivity/fallback.js';
import { quantizeStatic } from './static.js';

export interface StepResult { passes: PassReport[]; warnings: string[] }

/** The quantize step: one module per mode. `model` is a private copy the step may change in place. */
export async function runQuantize(model: OnnxModel, q: QuantizeStep, exclude: PassOptions, ctx: PipelineContext): Promise<StepResult> {
  // Sensitivity analysis first (it strips `fallback` before quantizing, so this does not recurse).
  if (fallbackRequested(q)) return quantizeWithFallback(model, q, exclude, ctx, runQuantize);
  return byMode(model, q, exclude, ctx);
}

async function byMode(model: OnnxModel, q: QuantizeStep, exclude: PassOptions, ctx: PipelineContext): Promise<StepResult> {
  switch (q.mode) {
    case 'dynamic':
      if (q.bits !== undefined && q.bits !== 8) throw new EdgetuneError('USAGE', `recipe.quantize.bits: dynamic quantization is int8 only (got ${q.bits})`);
      return dynamicStep(model, q, exclude);
    case 'fp16':
      if (!q.fullGraph) {
        return {
          passes: [storeWeightsFp16(model, exclude)],
          warnings: ['fp16 weights only halve the file on CPUs: ONNX Runtime casts them back to fp32 at load time, so expect no speed-up'],
        };
      }
      return fp16GraphStep(model, exclude);
    case 'weight-only':
      return weightOnlyStep(model, q, exclude);
    case 'static':
      return quantizeStatic(model, q, exclude, ctx);
    default:
      break;
  }
  void ctx;
  throw new EdgetuneError('USAGE', `recipe.quantize: mode "${q.mode}"${q.fullGraph ? ' with fullGraph' : ''} is not available in this edgetune version; use "dynamic" or "fp16"`);
}
