import type { Argv, CommandModule } from 'yargs';
import { runSensitivity, type SensitivityOptions, type SensitivityReport } from '../../compress/sensitivity/index.js';
import { parseShapeFlags } from '../../measure/inputs.js';
import { UsageError } from '../../errors.js';
import type { QuantizeStep } from '../../schema/recipe.js';
import { fmtNum, formatTable, info, printJson } from '../output.js';
import { progressReporter, signalOnInterrupt } from '../progress.js';

export interface SensitivityArgs {
  model: string;
  mode: 'dynamic' | 'weight-only' | 'static';
  data?: string;
  bits?: number;
  blockSize?: number;
  perChannel: boolean;
  samples?: number;
  shape?: string[];
  top?: number;
  json: boolean;
}

/** The flags as analysis options; each analysis kind gets its own branch here. */
export function sensitivityOptionsFromArgs(a: SensitivityArgs): SensitivityOptions {
  if (a.samples !== undefined && !(Number.isInteger(a.samples) && a.samples > 0)) throw new UsageError(`--samples must be a positive integer, got ${a.samples}`);
  const quantize: QuantizeStep = { mode: a.mode, perChannel: a.perChannel };
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
    .option('per-channel', { type: 'boolean', default: false, describe: 'int8: one scale per output channel' })
    .option('samples', { type: 'number', describe: 'examples taken from --data (default 64)' })
    .option('shape', { type: 'string', array: true, describe: 'input shape for random inputs, name=1x3x224x224' })
    .option('top', { type: 'number', describe: 'show only the N most damaging layers' })
    .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' }) as unknown as Argv<SensitivityArgs>,
  handler: async (a) => {
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
