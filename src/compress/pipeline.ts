import { cloneModel, type OnnxModel } from '../onnx/model.js';
import { dropValueInfo } from '../onnx/graph.js';
import { EdgetuneError, throwIfAborted } from '../errors.js';
import type { OpContext, PassReport, Recipe } from '../types.js';
import { quantizeDynamic } from './quantize/dynamic.js';
import { storeWeightsFp16 } from './quantize/fp16.js';

export interface PipelineResult {
  model: OnnxModel;
  passes: PassReport[];
  warnings: string[];
}

/**
 * Applies a recipe's steps in the fixed order (prune → lowrank → quantize) to a copy of the model.
 * Pure apart from reading external weight data; the input model is never modified.
 */
export function applyRecipe(input: OnnxModel, recipe: Recipe, ctx: OpContext = {}): PipelineResult {
  const model = cloneModel(input);
  const passes: PassReport[] = [];
  const warnings: string[] = [];
  const exclude = { excludeOps: recipe.exclude?.ops, excludeNodes: recipe.exclude?.nodes };
  const q = recipe.quantize;
  const steps = q ? 1 : 0;
  let done = 0;
  const tick = (step: string) => ctx.onProgress?.({ step, pct: steps ? (100 * done++) / steps : 100 });

  if (recipe.prune || recipe.lowrank) {
    throw new EdgetuneError('USAGE', `recipe.${recipe.prune ? 'prune' : 'lowrank'}: this edgetune version cannot apply that step yet; remove it from the recipe`);
  }
  if (q) {
    throwIfAborted(ctx.signal, 'compress');
    tick(`quantize (${q.mode})`);
    if (q.mode === 'dynamic') {
      if (q.bits !== undefined && q.bits !== 8) throw new RangeError(`recipe.quantize.bits: dynamic quantization is int8 only (got ${q.bits})`);
      passes.push(quantizeDynamic(model, { ...exclude, perChannel: q.perChannel }));
    } else if (q.mode === 'fp16' && !q.fullGraph) {
      passes.push(storeWeightsFp16(model, exclude));
      warnings.push('fp16 weights only halve the file on CPUs: ONNX Runtime casts them back to fp32 at load time, so expect no speed-up');
    } else {
      throw new EdgetuneError('USAGE', `recipe.quantize: mode "${q.mode}"${q.fullGraph ? ' with fullGraph' : ''} is not available in this edgetune version; use "dynamic" or "fp16"`);
    }
  }
  // Shapes recorded by the exporter may no longer hold after a rewrite; ORT re-infers them.
  if (passes.some((p) => p.changed.length > 0)) dropValueInfo(model.proto.graph!);
  for (const p of passes) {
    if (p.changed.length === 0) warnings.push(`${p.pass}: nothing in this model was changed (${p.skipped.length} candidates skipped)`);
  }
  ctx.onProgress?.({ step: 'compressed', pct: 100 });
  return { model, passes, warnings };
}
