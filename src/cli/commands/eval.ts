import { basename } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../errors.js';
import { evaluateModel, type EvalOptions, type EvalResult } from '../../measure/eval/evaluate.js';
import type { OpContext } from '../../types.js';
import { fmtNum, formatTable, info, printJson } from '../output.js';
import { progressReporter, signalOnInterrupt } from '../progress.js';

export interface EvalArgs {
  model: string;
  data: string;
  labels?: string;
  reference?: string;
  output?: string;
  batch?: number;
  limit?: number;
  threshold?: number;
  imageSize?: string;
  layout?: 'NCHW' | 'NHWC';
  mean?: string;
  std?: string;
  threads?: number;
  json: boolean;
}

function numbers(flag: string, text: string): number[] {
  const v = text.split(',').map((s) => Number(s.trim()));
  if (v.length === 0 || v.some((x) => !Number.isFinite(x))) throw new UsageError(`--${flag} "${text}": expected numbers separated by commas, e.g. 0.485,0.456,0.406`);
  return v;
}

/** Flags → EvalOptions; throws UsageError naming the flag at fault. */
export function evalOptionsFromArgs(a: EvalArgs): EvalOptions {
  const o: EvalOptions = { model: a.model, data: a.data };
  if (a.labels) o.labels = a.labels;
  if (a.reference) o.reference = a.reference;
  if (a.output) o.output = a.output;
  if (a.batch !== undefined) o.batchSize = a.batch;
  if (a.limit !== undefined) {
    if (!(Number.isInteger(a.limit) && a.limit > 0)) throw new UsageError(`--limit must be a positive integer, got ${a.limit}`);
    o.limit = a.limit;
  }
  if (a.threshold !== undefined) o.threshold = a.threshold;
  if (a.threads !== undefined) o.session = { intraOpThreads: a.threads };
  const image: NonNullable<EvalOptions['image']> = {};
  if (a.imageSize) {
    const m = /^(\d+)[x,](\d+)$/i.exec(a.imageSize.trim());
    if (!m) throw new UsageError(`--image-size "${a.imageSize}": expected HxW, e.g. 224x224`);
    image.size = [Number(m[1]), Number(m[2])];
  }
  if (a.layout) image.layout = a.layout;
  if (a.mean) image.mean = numbers('mean', a.mean);
  if (a.std) image.std = numbers('std', a.std);
  if (Object.keys(image).length) o.image = image;
  return o;
}

export function runEval(a: EvalArgs, ctx: OpContext = {}): Promise<EvalResult> {
  return evaluateModel(evalOptionsFromArgs(a), ctx);
}

const opt = (v: number | undefined) => (v === undefined ? '-' : v);

/** The human-readable report: scores, then fidelity per output. */
export function evalReport(r: EvalResult): string {
  const parts: string[] = [`${basename(r.model.path)} on ${r.n} examples (${r.data.format}: ${r.data.path})`];
  const c = r.classification;
  if (c) {
    const rows: Array<Array<string | number>> = [['top-1 accuracy', c.top1]];
    if (c.top5 !== undefined) rows.push(['top-5 accuracy', c.top5]);
    rows.push(['macro precision', c.macro.precision], ['macro recall', c.macro.recall], ['macro F1', c.macro.f1]);
    if (c.binary) rows.push(['precision (class 1)', opt(c.binary.precision)], ['recall (class 1)', opt(c.binary.recall)], ['F1 (class 1)', opt(c.binary.f1)]);
    parts.push(formatTable([`metric (output "${c.output}", ${Math.max(2, c.classes)} classes)`, 'value'], rows));
  }
  if (r.fidelity) {
    const rows = Object.entries(r.fidelity).map(([name, f]) => [name, f.cosine, f.sqnrDb, f.maxAbsError, f.top1Agreement ?? '-', f.n] as Array<string | number>);
    parts.push(formatTable([`output vs ${basename(r.reference!.path)}`, 'cosine', 'SQNR dB', 'max abs err', 'top-1 agree', 'values'], rows));
  }
  parts.push(`wall time ${fmtNum(r.wallS)} s`);
  return parts.join('\n\n');
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval <model>',
  describe: 'Score a model on a dataset: accuracy/precision/recall/F1 with labels, fidelity to a reference model without',
  builder: (y) => y
    .positional('model', { type: 'string', demandOption: true, describe: '.onnx file to evaluate' })
    .option('data', { type: 'string', demandOption: true, describe: 'image folder (class sub-folders), ONNX test-data folder, .npy/.npz, .jsonl or IDX folder' })
    .option('labels', { type: 'string', describe: 'labels file, one per example (.npy, IDX, or text lines)' })
    .option('reference', { type: 'string', describe: 'reference .onnx (e.g. the fp32 original) for fidelity per output' })
    .option('output', { type: 'string', describe: 'the classifier output (default: the first output)' })
    .option('batch', { type: 'number', describe: 'examples per run (default 32, or the model\'s fixed batch)' })
    .option('limit', { type: 'number', describe: 'score only the first N examples' })
    .option('threshold', { type: 'number', describe: 'single-score outputs: positive above this (default 0.5)' })
    .option('image-size', { type: 'string', describe: 'image folders: resize to HxW (default: the model input\'s size)' })
    .option('layout', { choices: ['NCHW', 'NHWC'] as const, describe: 'image folders: tensor layout (default: from the model input)' })
    .option('mean', { type: 'string', describe: 'image folders: per-channel mean after scaling to 0..1, e.g. 0.485,0.456,0.406' })
    .option('std', { type: 'string', describe: 'image folders: per-channel std, e.g. 0.229,0.224,0.225' })
    .option('threads', { type: 'number', describe: 'ONNX Runtime intra-op threads' })
    .option('json', { type: 'boolean', default: false, describe: 'print the full result as JSON' }) as unknown as Argv<EvalArgs>,
  handler: async (a) => {
    const { onProgress, done } = progressReporter({ quiet: a.json });
    const { signal, dispose } = signalOnInterrupt();
    try {
      const r = await runEval(a, { signal, onProgress });
      done();
      if (a.json) {
        printJson(r);
        return;
      }
      process.stdout.write(evalReport(r) + '\n');
      for (const n of r.notes) info(`note: ${n}`);
    } finally {
      done();
      dispose();
    }
  },
};
