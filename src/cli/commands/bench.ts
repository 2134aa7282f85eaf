import { basename } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { benchModel, compareModels, type BenchOptions, type BenchResult, type CompareResult } from '../../measure/bench.js';
import { parseShapeFlags } from '../../measure/inputs.js';
import { UsageError } from '../../errors.js';
import type { OpContext } from '../../types.js';
import { formatTable, info, printJson } from '../output.js';
import { progressReporter, signalOnInterrupt } from '../progress.js';

export interface BenchArgs {
  model: string;
  compare?: string;
  threads?: number;
  shape?: string[];
  runs?: number;
  warmup?: number;
  maxSeconds?: number;
  seed?: number;
  json: boolean;
}

/** What `edgetune bench` measured: one result, or two and the ratio of their medians. */
export type BenchOutput = { kind: 'single'; result: BenchResult } | { kind: 'compare'; result: CompareResult };

/** Turns the flags into BenchOptions; --runs asks for exactly that many timed runs, --warmup for that many warm-ups. */
export function benchOptionsFromArgs(a: Omit<BenchArgs, 'model' | 'json'>): BenchOptions {
  const opts: BenchOptions = {};
  if (a.threads !== undefined) opts.session = { intraOpThreads: a.threads };
  if (a.shape?.length) opts.shapes = parseShapeFlags(a.shape);
  if (a.seed !== undefined) opts.seed = a.seed;
  if (a.runs !== undefined) {
    if (!Number.isInteger(a.runs) || a.runs < 1) throw new UsageError(`--runs must be a positive integer, got ${a.runs}`);
    Object.assign(opts, { minRuns: a.runs, maxRuns: a.runs, minMs: 0, maxMs: Infinity });
  }
  if (a.warmup !== undefined) {
    if (!Number.isInteger(a.warmup) || a.warmup < 0) throw new UsageError(`--warmup must be a non-negative integer, got ${a.warmup}`);
    Object.assign(opts, { warmupRuns: a.warmup, warmupMs: Infinity });
  }
  if (a.maxSeconds !== undefined) {
    if (!(a.maxSeconds > 0)) throw new UsageError(`--max-seconds must be above 0, got ${a.maxSeconds}`);
    opts.maxMs = a.maxSeconds * 1000;
  }
  return opts;
}

export async function runBench(a: BenchArgs, ctx: OpContext = {}): Promise<BenchOutput> {
  const opts = benchOptionsFromArgs(a);
  if (a.compare) return { kind: 'compare', result: await compareModels(a.model, a.compare, opts, ctx) };
  return { kind: 'single', result: await benchModel(a.model, opts, ctx) };
}

export function benchTable(out: BenchOutput): string {
  const results = out.kind === 'single' ? [out.result] : [out.result.a, out.result.b];
  const header = ['model', 'threads', 'p50 ms', 'p90 ms', 'p99 ms', 'mean ms', 'std ms', 'load ms', 'first run ms', 'peak RSS MB', 'runs'];
  if (out.kind === 'compare') header.push('p50 ×');
  const rows = results.map((r, i) => {
    const l = r.latencyMs;
    const row: Array<string | number> = [
      basename(r.model.path), r.session.intraOpThreads ?? 'default', l.p50, l.p90, l.p99, l.mean, l.std, r.loadMs, r.firstRunMs, r.peakRssMB, l.n,
    ];
    if (out.kind === 'compare') row.push(i === 0 ? 1 : out.result.ratioP50);
    return row;
  });
  return formatTable(header, rows);
}

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: 'bench <model>',
  describe: 'Measure inference latency, load time and memory of an ONNX model on this device',
  builder: (y) => y
    .positional('model', { type: 'string', demandOption: true, describe: '.onnx file to measure' })
    .option('compare', { type: 'string', describe: 'a second .onnx file, measured interleaved with the first' })
    .option('threads', { type: 'number', describe: 'ONNX Runtime intra-op threads (default: its own choice)' })
    .option('shape', { type: 'string', array: true, describe: 'size of a dynamic input, name=1x3x224x224 (repeatable)' })
    .option('runs', { type: 'number', describe: 'exactly this many timed runs (default: 20-500 runs, 1-10 s)' })
    .option('warmup', { type: 'number', describe: 'exactly this many warm-up runs (default: 5 runs or 300 ms)' })
    .option('max-seconds', { type: 'number', describe: 'stop timed runs after this long' })
    .option('seed', { type: 'number', describe: 'seed for the generated inputs' })
    .option('json', { type: 'boolean', default: false, describe: 'print the full result, samples included, as JSON' }) as unknown as Argv<BenchArgs>,
  handler: async (a) => {
    const { onProgress, done } = progressReporter({ quiet: a.json });
    const { signal, dispose } = signalOnInterrupt();
    try {
      const out = await runBench(a, { signal, onProgress });
      done();
      if (a.json) {
        printJson(out.result);
        return;
      }
      process.stdout.write(benchTable(out) + '\n');
      const notes = out.kind === 'single' ? out.result.notes : [...out.result.a.notes, ...out.result.b.notes];
      for (const n of new Set(notes)) info(`note: ${n}`);
      if (out.kind === 'compare') {
        const r = out.result.ratioP50;
        info(`${basename(out.result.b.model.path)} median is ${r.toFixed(3)}× ${basename(out.result.a.model.path)}'s (${r < 1 ? 'faster' : r > 1 ? 'slower' : 'same'})`);
      }
    } finally {
      done();
      dispose();
    }
  },
};
