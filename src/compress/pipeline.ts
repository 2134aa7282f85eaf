import { cloneModel, type OnnxModel } from '../onnx/model.js';
import { dropValueInfo } from '../onnx/graph.js';
import { DT } from '../onnx/dtype.js';
import { EdgetuneError, throwIfAborted } from '../errors.js';
import type { DataSource } from '../measure/datasets/source.js';
import type { OpContext, PassReport, Recipe } from '../types.js';
import { runQuantize, type StepResult } from './quantize/index.js';
import { runPrune } from './prune/index.js';
import { runLowrank } from './lowrank/index.js';
import { foldConstantWeights, restoreFp16Storage } from './fold-weights.js';

export interface PipelineResult {
  model: OnnxModel;
  passes: PassReport[];
  warnings: string[];
}

export interface PipelineContext extends OpContext {
  /** examples for steps that need data: calibration (static quantization), reconstruction (pruning) */
  data?: DataSource;
  /** the input model's file, for steps that run it in ONNX Runtime (calibration, reconstruction) */
  modelPath?: string;
  /** a scratch folder for intermediate files */
  workDir?: string;
  /** input shapes for generated inputs when the model's dims are dynamic and there is no data */
  shapes?: Record<string, number[]>;
}

type Step = { name: string; run: (model: OnnxModel) => Promise<StepResult> };

/**
 * Applies a recipe's steps in the fixed order prune → lowrank → quantize to a copy of the model; the input model is
 * never modified. Graph rewriting is pure; steps that need data (calibration, reconstruction) run ONNX Runtime in
 * child processes through ctx.
 */
export async function applyRecipe(input: OnnxModel, recipe: Recipe, ctx: PipelineContext = {}): Promise<PipelineResult> {
  const model = cloneModel(input);
  const exclude = { excludeOps: recipe.exclude?.ops, excludeNodes: recipe.exclude?.nodes };
  const steps: Step[] = [];
  const pr = recipe.prune, lr = recipe.lowrank;
  if (pr) steps.push({ name: `prune (${pr.method})`, run: (m) => runPrune(m, pr, exclude, ctx) });
  if (lr) steps.push({ name: 'lowrank', run: (m) => runLowrank(m, lr, exclude) });
  const q = recipe.quantize;
  if (q) steps.push({ name: `quantize (${q.mode})`, run: (m) => runQuantize(m, q, exclude, ctx) });

  const passes: PassReport[] = [];
  const warnings: string[] = [];
  const inputFloat = new Set(model.proto.graph!.initializer.filter((t) => t.dataType === DT.FLOAT).map((t) => t.name));
  const folded = steps.length ? foldConstantWeights(model.proto.graph!, model.dir) : [];
  for (const [i, step] of steps.entries()) {
    throwIfAborted(ctx.signal, 'compress');
    ctx.onProgress?.({ step: step.name, pct: (100 * i) / steps.length });
    const r = await step.run(model);
    passes.push(...r.passes);
    warnings.push(...r.warnings);
  }
  if (folded.length) warnings.unshift(foldNote(folded, restoreFp16Storage(model.proto.graph!, folded, inputFloat)));
  // Shapes recorded by the exporter may no longer hold after a rewrite; ORT re-infers them.
  if (folded.length || passes.some((p) => p.changed.length > 0)) dropValueInfo(model.proto.graph!);
  for (const p of passes) {
    if (p.changed.length === 0) warnings.push(`${p.pass}: nothing in this model was changed (${p.skipped.length} candidates skipped)`);
  }
  ctx.onProgress?.({ step: 'compressed', pct: 100 });
  return { model, passes, warnings };
}

function foldNote(folded: ReturnType<typeof foldConstantWeights>, restored: number): string {
  const ops = [...new Set(folded.flatMap((f) => f.ops))].join('/');
  const names = folded.slice(0, 3).map((f) => f.weight).join(', ') + (folded.length > 3 ? ', …' : '');
  const back = restored ? `; ${restored} float weight(s) of the result stored as float16, as in the input` : '';
  return `folded ${folded.length} weight(s) computed from constants by ${ops} into initializers (${names}) so their layers can be compressed${back}`;
}
