// Static int8 quantization (QDQ) with calibrated activation ranges:
//   1. raise the opset to 13 when that is safe (per-channel DequantizeLinear needs it), else per-tensor weights;
//   2. plan which nodes get QDQ (qdq-plan.ts) and so which activations need ranges; flatten channels-last before
//      an FC layer fed by an int8 conv (nhwc-flatten.ts);
//   3. calibrate those activations by running the model in ONNX Runtime on the caller's data (calibrate/);
//   4. re-plan with what calibration could measure, then rewrite the graph (qdq-rewrite.ts).
// ONNX Runtime fuses the result into QLinearConv / QLinearMatMul / QGemm / QLinearAdd … at session creation.
import { EdgetuneError, throwIfAborted } from '../../errors.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { QuantizeStep } from '../../schema/recipe.js';
import type { PassReport } from '../../types.js';
import { probeDims } from '../calibrate/collect.js';
import { calibrate, generatedSource } from '../calibrate/index.js';
import { opsetVersion, type PassOptions } from '../pass.js';
import type { PipelineContext } from '../pipeline.js';
import { overrideFor } from './overrides.js';
import { foldBatchNorms } from './qdq-fold.js';
import { hostCpu, int8KernelWarnings, type HostCpu } from './qdq-isa.js';
import { PER_CHANNEL_OPSET, softmaxInputsToProbe, upgradeBlocker, upgradeToOpset13, type RankOf } from './qdq-opset.js';
import { activationParams, type QParams } from './qdq-params.js';
import { matmulAddToGemm } from './matmul-add-gemm.js';
import { flattenChannelsLast } from './nhwc-flatten.js';
import { PAST_LAST_INT8, coreNodes, mixedRangeConcats, planQdq, type PlanOptions } from './qdq-plan.js';
import { applyQdqPlan, commuteReluPastBoundaryPools } from './qdq-rewrite.js';

export interface StaticContext extends PipelineContext {
  /** the CPU to advise about (default: this host) */
  cpu?: HostCpu;
  memoryBudgetBytes?: number;
}

export interface StaticResult {
  passes: PassReport[];
  warnings: string[];
}

/** Rewrites `model` in place (the pipeline hands each step a private copy). */
export async function quantizeStatic(model: OnnxModel, q: QuantizeStep, exclude: PassOptions, ctx: StaticContext = {}): Promise<StaticResult> {
  if (q.bits !== undefined && q.bits !== 8) throw new EdgetuneError('USAGE', `recipe.quantize.bits: static quantization is 8-bit (got ${q.bits}); use weight-only for 4 bits`);
  const report: PassReport = { pass: 'quantize-static', changed: [], skipped: [] };
  const warnings: string[] = [];
  const cpu = ctx.cpu ?? hostCpu();
  // ORT fuses int8 (S8) activations natively only on ARM. On x86 it rewrites S8 pairs to U8, but only where one Q
  // feeds one DQ: a tensor read by two ops (every SiLU) stays unfused (yolox-nano: 3 of 110 convs fused, measured).
  const activationType = q.activationType ?? (cpu.family === 'x86' ? 'uint8' : 'int8');
  if (q.activationType === 'int8' && cpu.family === 'x86') {
    warnings.push('activationType int8 on x86: ONNX Runtime only fuses int8 activations here where a tensor has a single reader; "uint8" fuses everywhere');
  }
  // x86 without VNNI multiplies u8×s8 with vpmaddubsw, whose 16-bit pair sums saturate on full-range weights:
  // 7-bit weights avoid that. The recipe (from the target file) may say otherwise; absent, the CPU decides.
  const noVnni = cpu.family === 'x86' && cpu.isa !== undefined && !cpu.isa.includes('vnni') && !cpu.isa.includes('amx');
  const reduceRange = q.reduceRange ?? noVnni;
  let perChannel = q.perChannel ?? true;

  const from = opsetVersion(model, '');
  if (from < PER_CHANNEL_OPSET) {
    let blocker = upgradeBlocker(model);
    const probe = softmaxInputsToProbe(model);
    let rankOf: RankOf | undefined;
    if (blocker && probe.length) {
      // A pre-13 Softmax means the same at 13 when its axis is the input's last: one run tells the ranks.
      const dims = await probeDims(model, ctx.data ?? generatedSource(model, { shapes: ctx.shapes }), probe, { workDir: ctx.workDir }, ctx);
      rankOf = (t) => dims.get(t)?.length;
      blocker = upgradeBlocker(model, rankOf);
    }
    if (!blocker) {
      const up = upgradeToOpset13(model, rankOf);
      warnings.push(`opset raised from ${from} to ${PER_CHANNEL_OPSET} for per-channel QDQ${up.converted.length ? ` (converted ${up.converted.length} node(s): ${up.converted.slice(0, 3).join(', ')}${up.converted.length > 3 ? ', …' : ''})` : ''}`);
    } else if (from < 10) {
      report.skipped.push({ node: '(model)', op: 'opset', why: `opset ${from} has no QuantizeLinear (needs 10) and cannot be raised safely: ${blocker}` });
      return { passes: [report], warnings: [`static quantization skipped: opset ${from} < 10 and ${blocker}. Re-export the model at opset 13 or newer.`] };
    } else if (perChannel) {
      perChannel = false;
      warnings.push(`per-tensor weights: per-channel QDQ needs opset 13 and this opset-${from} model cannot be raised safely (${blocker})`);
    }
  }

  const g = model.proto.graph!;
  const folded = foldBatchNorms(model);
  if (folded.length) warnings.push(`folded ${folded.length} BatchNormalization(s) into the preceding Conv weights`);
  const base: PlanOptions = {
    perChannel, excludeOps: exclude.excludeOps, excludeNodes: exclude.excludeNodes, depthwise: q.depthwise,
    override: (node) => overrideFor(q, node),
  };
  ctx.onProgress?.({ step: 'static: plan', pct: 2 });
  // Only MatMuls the plan quantizes are merged: one the recipe excludes or keeps fp32 stays a MatMul, so exclusions
  // by op type still find it.
  const quantized = coreNodes(planQdq(g, base));
  const gemms = matmulAddToGemm(g, (n) => quantized.has(n));
  if (gemms.length) warnings.push(`merged ${gemms.length} MatMul + bias Add pair(s) into Gemm (${gemms.slice(0, 3).join(', ')}${gemms.length > 3 ? ', …' : ''}) so ONNX Runtime runs them as QGemm with an int32 bias`);
  // Before calibration, so the new Transpose's output is planned and calibrated like any other tensor.
  const flattened = flattenChannelsLast(g, planQdq(g, base));
  if (flattened.length) warnings.push(`flattened in channels-last order (${flattened.slice(0, 3).join(', ')}${flattened.length > 3 ? ', …' : ''}; the next layer's weights reordered to match), so ONNX Runtime runs the int8 conv output into the FC layer without a Transpose`);
  const first = planQdq(g, base);
  if (!first.nodes.some((p) => p.role === 'core')) {
    report.skipped.push(...first.skipped);
    return { passes: [report], warnings };
  }

  throwIfAborted(ctx.signal, 'static quantization');
  const cal = await calibrate(model, first.activations, q.calibration ?? {}, {
    data: ctx.data, workDir: ctx.workDir, shapes: ctx.shapes, signal: ctx.signal, memoryBudgetBytes: ctx.memoryBudgetBytes,
    onProgress: (p) => ctx.onProgress?.({ ...p, step: `static: ${p.step}`, pct: 5 + 0.85 * p.pct }),
  });
  warnings.push(...cal.warnings, ...cal.notes);

  // Re-plan with the tensors calibration measured; outputs of data-movement ops inherit their input's range.
  const root = (t: string) => { let r = t; while (first.shared.has(r)) r = first.shared.get(r)!; return r; };
  const available = new Set([...cal.ranges.keys(), ...[...first.shared.keys()].filter((t) => cal.ranges.has(root(t)))]);
  const rangeOf = (t: string) => cal.ranges.get(root(t));
  const keepFloat = mixedRangeConcats(planQdq(g, { ...base, available }), rangeOf);
  const plan = planQdq(g, { ...base, available, keepFloat });
  const params = new Map<string, QParams>();
  for (const t of plan.activations) params.set(t, activationParams(cal.ranges.get(t)!, activationType));
  for (const [t, why] of cal.skipped) report.skipped.push({ node: t, op: '(tensor)', why: `not quantized: ${why}` });

  throwIfAborted(ctx.signal, 'static quantization');
  ctx.onProgress?.({ step: 'static: rewrite', pct: 92 });
  const swapped = commuteReluPastBoundaryPools(g, plan);
  if (swapped.length) warnings.push(`Relu moved after ${swapped.length} MaxPool(s) at fp32→int8 boundaries (${swapped.slice(0, 3).join(', ')}), so ONNX Runtime keeps those pools in fp32`);
  const done = applyQdqPlan(model, plan, params, { activationType, reduceRange });
  report.changed.push(...done.changed);
  // Tail ops were left out before calibration, so the final plan never sees them: report them from the first.
  report.skipped.push(...first.skipped.filter((s) => s.why === PAST_LAST_INT8), ...plan.skipped, ...done.skipped);
  warnings.push(`calibrated ${cal.ranges.size} activation(s) with ${cal.method}${cal.method === 'percentile' ? ` ${q.calibration?.percentile ?? 99.999}` : ''} on ${cal.samples} example(s) from ${cal.source}; ${activationType === 'int8' ? 'S8S8' : 'U8S8'}${reduceRange ? ' with 7-bit weights' : ''}`);
  warnings.push(...int8KernelWarnings('static', cpu, { activationType, reduceRange }));
  ctx.onProgress?.({ step: 'static: done', pct: 100 });
  return { passes: [report], warnings };
}
