// Pruning sensitivity: prune one layer (channel space) at a time at each ratio of a sweep, run the result in ONNX
// Runtime on a few examples, and measure the damage: lost top-1 accuracy when the data has labels, else 1 − cosine of
// the outputs against the original model's. A global target then becomes per-layer ratios: the smallest damage
// threshold whose per-layer ratios (largest swept ratio under the threshold) remove enough channels.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { throwIfAborted, UsageError } from '../../errors.js';
import type { DataBatch, DataSource } from '../../measure/datasets/source.js';
import type { PlainTensor } from '../../measure/plain-tensor.js';
import { ModelRunner, type SessionSettings } from '../../measure/runner.js';
import { dropValueInfo } from '../../onnx/graph.js';
import { cloneModel, loadModel, saveModel, type OnnxModel } from '../../onnx/model.js';
import type { PruneStep } from '../../schema/recipe.js';
import type { OpContext } from '../../types.js';
import type { PassOptions } from '../pass.js';
import { AgreementSums } from './agreement.js';
import { calibration } from './calib.js';
import { pruneChannels } from './channel.js';

export interface PruneSensitivityOptions extends PassOptions {
  /** ratios swept per layer (default 0.1 … 0.7) */
  ratios?: number[];
  /** a global fraction of the prunable channels to remove: turns the sweep into per-layer ratios */
  target?: number;
  importance?: 'l1' | 'l2';
  multiple?: number;
  /** examples; with labels the damage is lost accuracy, otherwise 1 − output cosine */
  data?: DataSource;
  /** examples to evaluate on (default 64; 8 for large inputs) */
  samples?: number;
  batchSize?: number;
  /** sizes for dynamic input dims when no data is given */
  shapes?: Record<string, number[]>;
  session?: SessionSettings;
  workDir?: string;
}

export interface SweepPoint {
  ratio: number;
  kept: number;
  cosine: number;
  top1Agreement?: number;
  accuracy?: number;
  /** what the allocation minimises: accuracy lost (labels) or 1 − cosine */
  damage: number;
}

export interface LayerSensitivity {
  /** the first node producing the channels: the key of recipe.prune.perLayer */
  layer: string;
  nodes: string[];
  channels: number;
  sweep: SweepPoint[];
}

export interface PruneSensitivityResult {
  v: 1;
  model: string;
  metric: 'accuracy' | 'cosine';
  examples: number;
  source: string;
  baselineAccuracy?: number;
  layers: LayerSensitivity[];
  skipped: Array<{ layer: string; why: string }>;
  plan?: {
    target: number;
    /** fraction of the swept layers' channels the plan removes */
    achieved: number;
    /** the damage each chosen layer stays under */
    threshold: number;
    perLayer: Record<string, number>;
    recipe: PruneStep;
    note?: string;
  };
  warnings: string[];
}

const DEFAULT_RATIOS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];

export async function pruneSensitivity(modelPath: string, opts: PruneSensitivityOptions = {}, ctx: OpContext = {}): Promise<PruneSensitivityResult> {
  const ratios = [...new Set(opts.ratios ?? DEFAULT_RATIOS)].sort((a, b) => a - b);
  if (!ratios.length || ratios.some((r) => !(r > 0 && r <= 0.95))) throw new UsageError(`prune sensitivity ratios must be in (0, 0.95], got [${ratios}]`);
  if (opts.target !== undefined && !(opts.target > 0 && opts.target < 1)) throw new UsageError(`prune sensitivity target must be in (0, 1), got ${opts.target}`);
  const model = await loadModel(modelPath);
  const exclude = { excludeOps: opts.excludeOps, excludeNodes: opts.excludeNodes };
  const probe = pruneChannels(cloneModel(model), { ...exclude, ratio: 0 });
  const free = probe.spaces.filter((s) => !s.pins.length && s.channels >= 2);
  const skipped = probe.spaces.filter((s) => s.pins.length).map((s) => ({ layer: s.leader, why: s.pins.join('; ') }));
  const cal = calibration(model, { data: opts.data, samples: opts.samples ?? 64, batchSize: opts.batchSize, shapes: opts.shapes });
  const batches: DataBatch[] = [];
  for await (const b of cal.batches(ctx.signal)) batches.push(b);
  const session = opts.session ?? { intraOpThreads: 1 };
  const dir = await mkdtemp(join(opts.workDir ?? tmpdir(), 'edgetune-prune-sensitivity-'));
  try {
    const reference = await runAll(modelPath, batches, session, ctx);
    const labelled = batches.every((b) => b.labels);
    const baselineAccuracy = labelled ? accuracy(reference, batches) : undefined;
    const layers: LayerSensitivity[] = [];
    const total = free.length * ratios.length;
    let done = 0;
    for (const space of free) {
      const sweep: SweepPoint[] = [];
      for (const ratio of ratios) {
        throwIfAborted(ctx.signal, 'prune sensitivity');
        ctx.onProgress?.({ step: 'prune sensitivity', pct: (100 * done++) / total, detail: `${space.leader} at ${ratio}` });
        sweep.push(await measure(model, space.leader, ratio, { ...opts, ...exclude }, { dir, batches, reference, baselineAccuracy, session }, ctx));
      }
      layers.push({ layer: space.leader, nodes: space.nodes, channels: space.channels, sweep });
    }
    const result: PruneSensitivityResult = {
      v: 1, model: model.path ?? modelPath, metric: labelled ? 'accuracy' : 'cosine', examples: cal.samples, source: cal.source,
      baselineAccuracy, layers, skipped, warnings: cal.warning ? [cal.warning] : [],
    };
    if (opts.target !== undefined) result.plan = allocate(layers, opts.target, opts);
    ctx.onProgress?.({ step: 'prune sensitivity', pct: 100 });
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Shared { dir: string; batches: DataBatch[]; reference: Array<Record<string, PlainTensor>>; baselineAccuracy?: number; session: SessionSettings }

async function measure(model: OnnxModel, layer: string, ratio: number, opts: PruneSensitivityOptions, sh: Shared, ctx: OpContext): Promise<SweepPoint> {
  const m = cloneModel(model);
  const res = pruneChannels(m, { ratio: 0, perLayer: { [layer]: ratio }, importance: opts.importance, multiple: opts.multiple, excludeOps: opts.excludeOps, excludeNodes: opts.excludeNodes });
  const choice = res.spaces.find((s) => s.leader === layer)!;
  const kept = choice.keep?.length ?? choice.channels;
  if (kept === choice.channels) return { ratio, kept, cosine: 1, top1Agreement: 1, accuracy: sh.baselineAccuracy, damage: 0 };
  dropValueInfo(m.proto.graph!);
  const path = join(sh.dir, 'candidate.onnx');
  await saveModel(m, path);
  const outs = await runAll(path, sh.batches, sh.session, ctx);
  const agree = new AgreementSums();
  outs.forEach((o, i) => agree.add(sh.reference[i], o));
  const a = agree.summary()!;
  const acc = sh.baselineAccuracy !== undefined ? accuracy(outs, sh.batches) : undefined;
  return { ratio, kept, cosine: a.cosine, top1Agreement: a.top1Agreement, accuracy: acc, damage: acc !== undefined ? sh.baselineAccuracy! - acc : 1 - a.cosine };
}

async function runAll(path: string, batches: DataBatch[], session: SessionSettings, ctx: OpContext): Promise<Array<Record<string, PlainTensor>>> {
  const r = await ModelRunner.start(path, session, ctx);
  try {
    const out: Array<Record<string, PlainTensor>> = [];
    for (const b of batches) out.push(await r.run(b.feeds, ctx));
    return out;
  } finally {
    await r.close();
  }
}

/** Top-1 of the first output against the labels. */
function accuracy(outs: Array<Record<string, PlainTensor>>, batches: DataBatch[]): number {
  let right = 0, n = 0;
  outs.forEach((o, i) => {
    const t = Object.values(o)[0];
    const labels = batches[i].labels!;
    const classes = t.dims[t.dims.length - 1];
    const d = t.data as Float32Array;
    for (let r = 0; r < labels.length; r++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (d[r * classes + c] > d[r * classes + best]) best = c;
      if (best === labels[r]) right++;
      n++;
    }
  });
  return n ? right / n : NaN;
}

/** Per-layer ratios for a global target: the lowest damage threshold that removes enough channels. */
export function allocate(layers: LayerSensitivity[], target: number, opts: { importance?: 'l1' | 'l2'; multiple?: number } = {}): NonNullable<PruneSensitivityResult['plan']> {
  const total = layers.reduce((a, l) => a + l.channels, 0);
  const pickAt = (tau: number) => layers.map((l) => {
    const ok = l.sweep.filter((p) => p.damage <= tau);
    return ok.length ? ok.reduce((a, b) => (b.ratio > a.ratio ? b : a)) : undefined;
  });
  const removedAt = (tau: number) => pickAt(tau).reduce((a, p, i) => a + (p ? layers[i].channels - p.kept : 0), 0);
  const taus = [...new Set(layers.flatMap((l) => l.sweep.map((p) => p.damage)))].sort((a, b) => a - b);
  let tau = taus.find((t) => removedAt(t) >= target * total);
  let note: string | undefined;
  if (tau === undefined) {
    tau = taus[taus.length - 1] ?? 0;
    note = `even the largest swept ratios remove only ${(100 * removedAt(tau) / Math.max(1, total)).toFixed(1)}% of the channels`;
  }
  // The threshold's picks overshoot the target by up to a grid step per layer: step the most damaged layers back
  // down the sweep (to the next smaller ratio, or none) for as long as the target still holds.
  const picks = pickAt(tau);
  const removed = () => picks.reduce((a, p, i) => a + (p ? layers[i].channels - p.kept : 0), 0);
  if (note === undefined) {
    const order = picks.map((_, i) => i).sort((a, b) => (picks[b]?.damage ?? -1) - (picks[a]?.damage ?? -1));
    for (const i of order) {
      for (;;) {
        const cur = picks[i];
        if (!cur) break;
        const lower = layers[i].sweep.filter((p) => p.ratio < cur.ratio && p.damage <= tau).sort((a, b) => b.ratio - a.ratio)[0];
        picks[i] = lower;
        if (removed() < target * total) { picks[i] = cur; break; }
      }
    }
  }
  const perLayer: Record<string, number> = {};
  picks.forEach((p, i) => { if (p && p.kept < layers[i].channels) perLayer[layers[i].layer] = p.ratio; });
  const recipe: PruneStep = { method: 'channel', ratio: 0, perLayer, importance: opts.importance ?? 'l1', multiple: opts.multiple ?? 1 };
  return { target, achieved: total ? removed() / total : 0, threshold: tau, perLayer, recipe, note };
}
