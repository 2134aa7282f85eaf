// recipe.quantize.fallback: measure each layer's sensitivity, keep the worst K (or all above a damage threshold) in
// fp32, quantize the rest. The report names every layer kept back and why.
import type { OnnxModel } from '../../onnx/model.js';
import type { QuantizeStep } from '../../schema/recipe.js';
import type { PassReport } from '../../types.js';
import type { PassOptions } from '../pass.js';
import type { PipelineContext } from '../pipeline.js';
import { withSkips } from '../quantize/overrides.js';
import { quantSensitivity, type LayerDamage } from './quant.js';

type Fallback = NonNullable<QuantizeStep['fallback']>;
type Step = (model: OnnxModel, q: QuantizeStep, exclude: PassOptions, ctx: PipelineContext) => Promise<{ passes: PassReport[]; warnings: string[] }>;

export function fallbackRequested(q: QuantizeStep): boolean {
  return Boolean(q.fallback && ((q.fallback.worstK ?? 0) > 0 || q.fallback.threshold !== undefined));
}

/** The layers to keep fp32, from a ranking (worst first): the worst K and/or every layer above the threshold. */
export function pickFallback(ranked: LayerDamage[], f: Fallback): Array<{ layer: LayerDamage; why: string }> {
  const out: Array<{ layer: LayerDamage; why: string }> = [];
  ranked.forEach((layer, i) => {
    const reasons: string[] = [];
    if (f.worstK !== undefined && i < f.worstK) reasons.push(`among the worst ${f.worstK}`);
    if (f.threshold !== undefined && layer.damage > f.threshold) reasons.push(`above the threshold ${f.threshold}`);
    if (reasons.length) out.push({ layer, why: `damage ${layer.damage.toExponential(2)} (rank ${i + 1} of ${ranked.length}), ${reasons.join(' and ')}: kept fp32 by recipe.quantize.fallback` });
  });
  return out;
}

/** Runs `step` with skip overrides for the layers the sensitivity analysis picks. */
export async function quantizeWithFallback(model: OnnxModel, q: QuantizeStep, exclude: PassOptions, ctx: PipelineContext, step: Step): Promise<{ passes: PassReport[]; warnings: string[] }> {
  const base: QuantizeStep = { ...q, fallback: undefined };
  const report = await quantSensitivity(model, base, {
    ...ctx, exclude, measureAll: false,
    onProgress: (p) => ctx.onProgress?.({ ...p, step: `quantize fallback: ${p.step}` }),
  });
  const picked = pickFallback(report.layers, q.fallback!);
  const r = await step(model, withSkips(base, picked.map((p) => p.layer.node)), exclude, ctx);
  // The pass reports these layers as skipped by an override; say the real reason instead.
  const why = new Map(picked.map((p) => [p.layer.node, p.why]));
  for (const pass of r.passes) for (const s of pass.skipped) s.why = why.get(s.node) ?? s.why;
  const summary = picked.length
    ? `sensitivity fallback kept ${picked.length} of ${report.layers.length} layers fp32: ${picked.map((p) => `${p.layer.node} (${p.layer.damage.toExponential(2)})`).join(', ')}`
    : `sensitivity fallback: no layer of ${report.layers.length} met the fallback rule; all quantized`;
  return { passes: r.passes, warnings: [...r.warnings, summary, ...report.notes] };
}
