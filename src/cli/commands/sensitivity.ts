import type { Argv, CommandModule } from 'yargs';
import { runSensitivity, type SensitivityOptions, type SensitivityReport } from '../../compress/sensitivity/index.js';
import { parseShapeFlags } from '../../measure/inputs.js';
import { UsageError } from '../../errors.js';
import type { QuantizeStep } from '../../schema/recipe.js';
import { fmtNum, formatTable, info, printJson } from '../output.js';
import { progressReporter, signalOnInterrupt } from '../progress.js';
import { pruneSensitivity, type PruneSensitivityOptions, type PruneSensitivityResult } from '../../compress/prune/sensitivity.js';
import { openDataSource } from '../../measure/datasets/open.js';
import { loadModel } from '../../onnx/model.js';

export interface SensitivityArgs {
  model: string;
  mode: 'dynamic' | 'weight-only' | 'static';
  data?: string;
  bits?: number;
  blockSize?: number;
  /** undefined: the mode's own default, the same one `compress` uses (per-channel for static, per-tensor for dynamic) */
  perChannel?: boolean;
  samples?: number;
  shape?: string[];
  top?: number;
  json: boolean;
  prune?: boolean;
  ratios?: string;
  target?: number;
  multiple?: number;
  importance?: 'l1' | 'l2';
}

/** The flags as analysis options; each analysis kind gets its own branch here. */
export function sensitivityOptionsFromArgs(a: SensitivityArgs): SensitivityOptions {
  if (a.samples !== undefined && !(Number.isInteger(a.samples) && a.samples > 0)) throw new UsageError(`--samples must be a positive integer, got ${a.samples}`);
  // Left unset unless the flag is given, so that the ranking measures what `compress` with the same mode would do.
  const quantize: QuantizeStep = { mode: a.mode };
  if (a.perChannel !== undefined) quantize.perChannel = a.perChannel;
  if (a.bits !== undefined) quantize.bits = a.bits;
  if (a.blockSize !== undefined) quantize.blockSize = a.blockSize;
  return { kind: 'quant', model: a.model, quantize, data: a.data, samples: a.samples, shapes: a.shape?.length ? parseShapeFlags(a.shape) : undefined };
}

export const sensitivityCommand: CommandModule<object, SensitivityArgs> = {
  command: 'sensitivity <model>',
  describe: 'Quantize one layer at a time and rank the layers by the damage done to the outputs',
  builder: (y) => y
    .positional('model', { type: 'string', demandOption: true, describe: 'input .onnx file' })
    .option('mode', { type: 'string', choices: ['dynamic', 'weight-only', 'static'], default: 'dynamic', describe: 'quantization to apply to each layer' })
    .option('data', { type: 'string', describe: 'examples to run (.npy, .npz, .jsonl, ONNX test data or IDX folder); random inputs when absent' })
    .option('bits', { type: 'number', describe: 'weight-only: 4 or 8' })
    .option('block-size', { type: 'number', describe: 'weight-only: block size along K' })
    .option('per-channel', { type: 'boolean', describe: 'int8: one scale per output channel (default: the mode\'s recipe default, per-channel for static, per-tensor for dynamic)' })
    .option('samples', { type: 'number', describe: 'examples taken from --data (default 64)' })
    .option('shape', { type: 'string', array: true, describe: 'input shape for random inputs, name=1x3x224x224' })
    .option('top', { type: 'number', describe: 'show only the N most damaging layers' })
    .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
    .option('prune', { type: 'boolean', default: false, describe: 'prune channels one layer at a time instead of quantizing' })
    .option('ratios', { type: 'string', describe: 'with --prune: ratios to sweep, e.g. 0.1,0.3,0.5,0.7' })
    .option('target', { type: 'number', describe: 'with --prune: global fraction of channels to remove; prints per-layer ratios for a recipe' })
    .option('multiple', { type: 'number', describe: 'with --prune: kept channel counts rounded to a multiple of this (default 1)' })
    .option('importance', { type: 'string', choices: ['l1', 'l2'], describe: 'with --prune: channel ranking norm (default l1)' }) as unknown as Argv<SensitivityArgs>,
  handler: async (a) => {
    if (a.prune) return pruneSensitivityCommand(a);
    const opts = sensitivityOptionsFromArgs(a);
    const { onProgress, done } = progressReporter({ quiet: a.json });
    const { signal, dispose } = signalOnInterrupt();
    try {
      const report = await runSensitivity(opts, { signal, onProgress });
      done();
      if (a.top !== undefined) report.layers = report.layers.slice(0, Math.max(0, a.top));
      if (a.json) printJson(report);
      else printSensitivity(report);
    } finally {
      done();
      dispose();
    }
  },
};

/** The --prune flags as pruneSensitivity options (the data source is opened separately: it needs the model). */
export function pruneSensitivityOptionsFromArgs(a: SensitivityArgs): PruneSensitivityOptions {
  if (a.samples !== undefined && !(Number.isInteger(a.samples) && a.samples > 0)) throw new UsageError(`--samples must be a positive integer, got ${a.samples}`);
  if (a.multiple !== undefined && !(Number.isInteger(a.multiple) && a.multiple >= 1)) throw new UsageError(`--multiple must be a positive integer, got ${a.multiple}`);
  const ratios = a.ratios?.split(',').map((x) => Number(x.trim()));
  if (ratios?.some((r) => !(r > 0 && r <= 0.95))) throw new UsageError(`--ratios "${a.ratios}": give ratios in (0, 0.95] separated by commas, e.g. 0.1,0.3,0.5`);
  const opts: PruneSensitivityOptions = { ratios, target: a.target, samples: a.samples, multiple: a.multiple, importance: a.importance };
  if (a.shape?.length) opts.shapes = parseShapeFlags(a.shape);
  return opts;
}

async function pruneSensitivityCommand(a: SensitivityArgs): Promise<void> {
  const opts = pruneSensitivityOptionsFromArgs(a);
  if (a.data) opts.data = await openDataSource(a.data, await loadModel(a.model));
  const { onProgress, done } = progressReporter({ quiet: a.json });
  const { signal, dispose } = signalOnInterrupt();
  try {
    const r = await pruneSensitivity(a.model, opts, { signal, onProgress });
    done();
    if (a.json) printJson(r);
    else printPruneSensitivity(r);
  } finally {
    done();
    dispose();
  }
}

export function printPruneSensitivity(r: PruneSensitivityResult): void {
  info(`${r.model}: channel pruning one layer at a time on ${r.examples} examples (${r.source}); damage = ${r.metric === 'accuracy' ? 'top-1 accuracy lost' : '1 - output cosine'}`);
  const ratios = r.layers[0]?.sweep.map((p) => p.ratio) ?? [];
  info(formatTable(['layer', 'channels', ...ratios.map((x) => `damage @${x}`)], r.layers.map((l) => [l.layer, l.channels, ...l.sweep.map((p) => p.damage)])));
  for (const s of r.skipped) info(`left alone: ${s.layer}: ${s.why}`);
  if (r.plan) info(`for ${r.plan.target} of the channels (achieved ${fmtNum(r.plan.achieved)} at damage <= ${fmtNum(r.plan.threshold)}): "prune": ${JSON.stringify(r.plan.recipe)}${r.plan.note ? ` (${r.plan.note})` : ''}`);
  for (const w of r.warnings) info(`warning: ${w}`);
}

export function printSensitivity(r: SensitivityReport): void {
  const opt = (v: number | undefined) => (v === undefined ? '-' : fmtNum(v));
  info(`${r.model}: ${r.mode} quantization, one layer at a time, on ${r.data.examples} examples (${r.data.source})`);
  const all = r.all;
  if (all) info(`all layers together: damage ${fmtNum(all.damage)}, SQNR ${fmtNum(all.sqnrDb)} dB${all.top1Loss !== undefined ? `, top-1 loss ${fmtNum(all.top1Loss)}` : ''}${all.accuracyDrop !== undefined ? `, accuracy drop ${fmtNum(all.accuracyDrop)}` : ''}`);
  const rows = r.layers.map((l, i) => [i + 1, l.node, l.op, l.damage, l.cosine, l.sqnrDb, opt(l.top1Loss), opt(l.accuracyDrop)]);
  info(formatTable(['rank', 'layer', 'op', 'damage', 'cosine', 'SQNR dB', 'top-1 loss', 'acc drop'], rows));
  info(r.metric);
  for (const n of r.notes) info(`note: ${n}`);
}
