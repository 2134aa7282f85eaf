// The recipe's prune step: magnitude (unstructured zeros) or channel (structured, optionally reconstructed).
import { UsageError } from '../../errors.js';
import { dropValueInfo } from '../../onnx/graph.js';
import { cloneModel, type OnnxModel } from '../../onnx/model.js';
import type { PruneStep } from '../../schema/recipe.js';
import type { PassReport } from '../../types.js';
import type { PassOptions } from '../pass.js';
import type { PipelineContext } from '../pipeline.js';
import { pruneChannels } from './channel.js';
import { MAGNITUDE_OPS, gzipSize, pruneMagnitude } from './magnitude.js';
import { nodeLabel } from './tensors.js';
import { reconstruct, type ReconstructOptions } from './reconstruct.js';

export interface PruneStepResult {
  passes: PassReport[];
  warnings: string[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Runs the prune step on `model` (a private copy the step changes in place). */
export async function runPrune(model: OnnxModel, step: PruneStep, exclude: PassOptions, ctx: PipelineContext & { reconstruct?: ReconstructOptions } = {}): Promise<PruneStepResult> {
  for (const [name, r] of Object.entries(step.perLayer ?? {})) {
    if (!(r >= 0 && r <= 0.95)) throw new UsageError(`recipe.prune.perLayer["${name}"]: ratio ${r} must be between 0 and 0.95`);
  }
  if (step.method === 'magnitude') {
    const before = gzipSize(model);
    const report = pruneMagnitude(model, { ...exclude, ratio: step.ratio, scope: step.scope, perLayer: step.perLayer });
    const after = gzipSize(model);
    const warnings = [
      `unstructured sparsity: gzipped model ${before} → ${after} bytes (${pct(after / before)}); the .onnx file is as large as before and ONNX Runtime has no sparse kernels, so it runs no faster. Use method "channel" for speed.`,
      ...unknownLayers(step, model.proto.graph!.node.filter((n) => MAGNITUDE_OPS.has(n.opType)).map(nodeLabel)),
    ];
    if (step.reconstruct) warnings.push('recipe.prune.reconstruct applies to channel pruning only; it was ignored');
    return { passes: [report], warnings };
  }
  const teacher = step.reconstruct ? cloneModel(model) : undefined;
  const res = pruneChannels(model, {
    ...exclude, ratio: step.ratio, importance: step.importance, scope: step.scope, multiple: step.multiple, perLayer: step.perLayer,
  });
  // The exporter's shapes no longer hold for the pruned tensors; reconstruction runs this model in ONNX Runtime.
  if (res.report.changed.length) dropValueInfo(model.proto.graph!);
  const passes = [res.report];
  const warnings: string[] = unknownLayers(step, res.spaces.flatMap((c) => c.nodes));
  if (!teacher) return { passes, warnings };
  if (!res.sinks.length) {
    warnings.push('reconstruction: no layer lost input channels, so nothing was refitted');
    return { passes, warnings };
  }
  let rec;
  try {
    rec = await reconstruct(teacher, model, res.sinks, { data: ctx.data, shapes: ctx.shapes, workDir: ctx.workDir, ...ctx.reconstruct }, ctx);
  } catch (e) {
    // Without data, a model with dynamic input dims cannot be fed random inputs: prune anyway, say why not refitted.
    if (e instanceof UsageError) {
      warnings.push(`reconstruction skipped: ${e.message}; give calibration data to refit the pruned layers`);
      return { passes, warnings };
    }
    throw e;
  }
  passes.push(rec.report);
  warnings.push(...rec.warnings);
  const f = rec.fidelity;
  if (f.without && f.with) {
    const top = (a: typeof f.with) => (a.top1Agreement !== undefined ? `, top-1 agreement ${pct(a.top1Agreement)}` : '');
    warnings.push(`reconstruction on ${f.examples} calibration examples (${f.source}): output cosine ${f.without.cosine.toFixed(4)}${top(f.without)} without → ${f.with.cosine.toFixed(4)}${top(f.with)} with`);
  }
  return { passes, warnings };
}

/** A perLayer key that names no layer the step considered would be ignored without a word: say so instead. */
function unknownLayers(step: PruneStep, known: string[]): string[] {
  const have = new Set(known);
  const bad = Object.keys(step.perLayer ?? {}).filter((n) => !have.has(n));
  if (!bad.length) return [];
  const eg = known.slice(0, 3).map((n) => `"${n}"`).join(', ');
  return [`recipe.prune.perLayer: ${bad.map((n) => `"${n}"`).join(', ')} name${bad.length === 1 ? 's' : ''} no ${step.method === 'channel' ? 'layer producing channels' : 'Conv/Gemm/MatMul layer'} in this model, so ${bad.length === 1 ? 'it was' : 'they were'} ignored${eg ? ` (names look like ${eg})` : ''}`];
}
