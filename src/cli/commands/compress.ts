import type { Argv, CommandModule } from 'yargs';
import { compressFile } from '../../compress/compress.js';
import { QUANT_SHORTHANDS, readRecipeFile, recipeFromQuantFlag } from '../../compress/recipe-file.js';
import { parseShapeFlag } from '../../measure/inputs.js';
import { EdgetuneError } from '../../errors.js';
import { fmtBytes, fmtNum, formatTable, info, printJson } from '../output.js';
import { progressReporter, signalOnInterrupt } from '../progress.js';
import type { CompressReport } from '../../types.js';

interface Args {
  model: string; quant?: string; recipe?: string; output: string; perChannel?: boolean; calibration?: 'minmax' | 'percentile' | 'entropy'; samples?: number; blockSize?: number;
  json: boolean; force: boolean; minCosine: number; shape?: string[]; verbose: boolean; data?: string; verifySamples?: number }

export const compressCommand: CommandModule<object, Args> = {
  command: 'compress <model>',
  describe: 'Compress an ONNX model (a --quant shorthand or a --recipe file), verify it in ONNX Runtime, write it',
  builder: (y) => y
    .positional('model', { type: 'string', demandOption: true, describe: 'input .onnx file' })
    .option('quant', {
      type: 'string', choices: [...QUANT_SHORTHANDS],
      describe: 'int8-dynamic (MatMul/Gemm), int8-static (QDQ, calibrated: give --data), int8-weight / int4 (weight-only MatMulNBits), fp16 (weights), fp16-full (whole graph)',
    })
    .option('recipe', { type: 'string', describe: 'recipe JSON file (DESIGN.md §4)' })
    .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'output .onnx file' })
    .option('per-channel', { type: 'boolean', describe: 'int8: one scale per output channel (default: on for int8-static, off for int8-dynamic)' })
    .option('calibration', { type: 'string', choices: ['minmax', 'percentile', 'entropy'], describe: 'int8-static: how activation ranges are chosen (default percentile 99.999)' })
    .option('samples', { type: 'number', describe: 'int8-static: calibration examples taken from --data (default 128)' })
    .option('block-size', { type: 'number', describe: 'int4 / int8-weight: weights per scale along K, 16..256 (default 32)' })
    .option('min-cosine', { type: 'number', default: 0.99, describe: 'refuse to write below this output cosine similarity' })
    .option('force', { type: 'boolean', default: false, describe: 'write even below --min-cosine' })
    .option('data', { type: 'string', describe: 'real examples for calibration, pruning reconstruction and verification (.npy, .npz, .jsonl, ONNX test data or IDX folder); random inputs when absent' })
    .option('verify-samples', { type: 'number', describe: 'examples from --data the verification compares on (default 64)' })
    .option('shape', { type: 'string', array: true, describe: 'input shape for random inputs (calibration and verification without --data), name=1x3x224x224' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'list every change and skip' })
    .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
    .check((a) => {
      if (!a.quant === !a.recipe) throw new EdgetuneError('USAGE', 'give exactly one of --quant or --recipe');
      const vs = a.verifySamples as number | undefined;
      if (vs !== undefined && !(Number.isInteger(vs) && vs > 0)) throw new EdgetuneError('USAGE', `--verify-samples must be a positive integer, got ${vs}`);
      return true;
    }) as unknown as Argv<Args>,
  handler: async (a) => {
    if (a.recipe && (a.perChannel !== undefined || a.calibration || a.samples !== undefined || a.blockSize !== undefined)) {
      throw new EdgetuneError('USAGE', '--per-channel, --calibration, --samples and --block-size go with --quant; with --recipe set them in the recipe file');
    }
    const recipe = a.recipe ? await readRecipeFile(a.recipe) : recipeFromQuantFlag(a.quant!, a.perChannel, { calibration: a.calibration, samples: a.samples, blockSize: a.blockSize });
    const shapes = Object.fromEntries((a.shape ?? []).map(parseShapeFlag).map((s) => [s.name, s.dims]));
    const { onProgress, done } = progressReporter({ quiet: a.json });
    const { signal, dispose } = signalOnInterrupt();
    try {
      const report = await compressFile({ input: a.model, output: a.output, recipe, minCosine: a.minCosine, force: a.force, shapes, data: a.data, verifySamples: a.verifySamples }, { signal, onProgress });
      done();
      if (a.json) printJson(report);
      else printCompressReport(report, a.verbose);
    } finally {
      done();
      dispose();
    }
  },
};

export function printCompressReport(r: CompressReport, verbose: boolean): void {
  info(`${r.input.path} (${fmtBytes(r.input.bytes)}) → ${r.output.path} (${fmtBytes(r.output.bytes)}, ${fmtNum(r.output.bytes / r.input.bytes)}× size)`);
  for (const p of r.passes) {
    info(`${p.pass}: ${p.changed.length} changed, ${p.skipped.length} skipped`);
    const show = verbose ? p.changed : p.changed.slice(0, 5);
    for (const c of show) info(`  ✓ ${c.node} (${c.op}): ${c.what}`);
    if (show.length < p.changed.length) info(`  … ${p.changed.length - show.length} more (--verbose)`);
    const sk = verbose ? p.skipped : p.skipped.slice(0, 5);
    for (const s of sk) info(`  – ${s.node} (${s.op}): ${s.why}`);
    if (sk.length < p.skipped.length) info(`  … ${p.skipped.length - sk.length} more skipped (--verbose)`);
  }
  const rows = Object.entries(r.fidelity).map(([k, f]) => [k, f.cosine, f.maxAbsError, f.sqnrDb, f.top1Agreement ?? '-']);
  const on = r.verifiedOn;
  info(`fidelity vs the original on ${on ? `${on.examples} example(s) from ${on.source}` : 'generated inputs'}:`);
  info(formatTable(['output', 'cosine', 'max abs err', 'SQNR dB', 'top-1 agree'], rows));
  for (const w of r.warnings) info(`warning: ${w}`);
}
