import { basename } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { benchShapes, compareModels, type BenchOptions, type BenchResult, type CompareResult } from '../../measure/bench.js';
import { benchTensorRT, type TrtPrecision } from '../../measure/backends/tensorrt.js';
import { openEvalData } from '../../measure/eval/data.js';
import { parseShapeFlag } from '../../measure/inputs.js';
import { loadModel } from '../../onnx/model.js';
import { UsageError } from '../../errors.js';
import type { OpContext } from '../../types.js';
import { formatTable, info, printJson } from '../output.js';
import { progressReporter, signalOnInterrupt } from '../progress.js';

export interface BenchArgs {
  model: string;
  compare?: string;
  backend?: 'onnxruntime' | 'tensorrt';
  precision?: TrtPrecision;
  threads?: number;
  interThreads?: number;
  graphOpt?: 'disabled' | 'basic' | 'extended' | 'all';
  executionMode?: 'sequential' | 'parallel';
  spinning?: boolean;
  shape?: string[];
  data?: string;
  batch?: number;
  runs?: number;
  warmup?: number;
  warmupMs?: number;
  minSeconds?: number;
  maxSeconds?: number;
  ci?: number;
  seed?: number;
  json: boolean;
}

/** What `edgetune bench` measured: one result per shape, or a comparison. */
export type BenchOutput =
  | { kind: 'single'; result: BenchResult }
  | { kind: 'shapes'; results: BenchResult[] }
  | { kind: 'compare'; result: CompareResult };

/**
 * `--shape x=1x8 --shape x=4x8` measures two shape sets: the k-th mention of each input forms set k, and an input
 * named once keeps its size in every set.
 */
export function parseShapeSets(flags: readonly string[]): Array<Record<string, number[]>> {
  const byName = new Map<string, number[][]>();
  for (const f of flags) {
    const { name, dims } = parseShapeFlag(f);
    byName.set(name, [...(byName.get(name) ?? []), dims]);
  }
  const counts = [...byName.values()].map((v) => v.length);
  const sets = Math.max(1, ...counts);
  for (const [name, v] of byName) {
    if (v.length !== 1 && v.length !== sets) {
      throw new UsageError(`--shape names input "${name}" ${v.length} times but another input ${sets} times; give each input once or the same number of times`);
    }
  }
  return Array.from({ length: sets }, (_, k) => Object.fromEntries([...byName].map(([n, v]) => [n, v.length === 1 ? v[0] : v[k]])));
}

/** Turns the flags into BenchOptions; --runs asks for exactly that many timed runs, --warmup for that many warm-ups. */
export function benchOptionsFromArgs(a: Omit<BenchArgs, 'model' | 'json'>): BenchOptions {
  const opts: BenchOptions = {};
  const session: NonNullable<BenchOptions['session']> = {};
  if (a.threads !== undefined) session.intraOpThreads = a.threads;
  if (a.interThreads !== undefined) session.interOpThreads = a.interThreads;
  if (a.graphOpt !== undefined) session.graphOptimizationLevel = a.graphOpt;
  if (a.executionMode !== undefined) session.executionMode = a.executionMode;
  if (a.spinning !== undefined) session.spinning = a.spinning;
  if (Object.keys(session).length) opts.session = session;
  if (a.seed !== undefined) opts.seed = a.seed;
  if (a.batch !== undefined) opts.batch = a.batch;
  if (a.minSeconds !== undefined) {
    if (!(a.minSeconds >= 0)) throw new UsageError(`--min-seconds must be 0 or more, got ${a.minSeconds}`);
    opts.minMs = a.minSeconds * 1000;
  }
  if (a.maxSeconds !== undefined) {
    if (!(a.maxSeconds > 0)) throw new UsageError(`--max-seconds must be above 0, got ${a.maxSeconds}`);
    opts.maxMs = a.maxSeconds * 1000;
  }
  if (a.ci !== undefined) {
    if (!(a.ci >= 0)) throw new UsageError(`--ci must be a percentage of the median (e.g. 2), or 0 to stop at the minimums; got ${a.ci}`);
    opts.ciRelWidth = a.ci === 0 ? Infinity : a.ci / 100;
  }
  if (a.runs !== undefined) {
    if (!Number.isInteger(a.runs) || a.runs < 1) throw new UsageError(`--runs must be a positive integer, got ${a.runs}`);
    Object.assign(opts, { minRuns: a.runs, maxRuns: a.runs, minMs: 0, maxMs: Infinity, ciRelWidth: Infinity });
  }
  if (a.warmup !== undefined) {
    if (!Number.isInteger(a.warmup) || a.warmup < 0) throw new UsageError(`--warmup must be a non-negative integer, got ${a.warmup}`);
    Object.assign(opts, { warmupRuns: a.warmup, warmupMs: 0, warmupMaxMs: Infinity });
  }
  if (a.warmupMs !== undefined) {
    if (!(a.warmupMs >= 0)) throw new UsageError(`--warmup-ms must be 0 or more, got ${a.warmupMs}`);
    opts.warmupMs = a.warmupMs;
    if (a.warmup === undefined) opts.warmupRuns = 0;
    opts.warmupMaxMs = Math.max(a.warmupMs, opts.warmupMaxMs ?? 0);
  }
  return opts;
}

/** Inputs from the first batch of a dataset (`--data`), so dynamic dims take the data's sizes. */
async function inputsFromData(model: string, data: string, batch: number | undefined, ctx: OpContext): Promise<Pick<BenchOptions, 'inputs' | 'inputsFrom'>> {
  const src = await openEvalData(data, await loadModel(model));
  for await (const b of src.batches({ batchSize: batch ?? 1, limit: batch ?? 1, signal: ctx.signal })) {
    const rows = Object.values(b.feeds)[0]?.dims[0] ?? 1;
    return { inputs: b.feeds, inputsFrom: `the first ${rows} example(s) of ${data} (${src.format})` };
  }
  throw new UsageError(`--data ${data}: no examples to take inputs from`);
}

export async function runBench(a: BenchArgs, ctx: OpContext = {}): Promise<BenchOutput> {
  const opts = benchOptionsFromArgs(a);
  const sets = parseShapeSets(a.shape ?? []);
  if (a.backend === 'tensorrt') {
    if (a.compare || sets.length > 1 || a.data) throw new UsageError('--backend tensorrt measures one model at one shape set; drop --compare, --data and repeated --shape');
    return { kind: 'single', result: await benchTensorRT(a.model, { precision: a.precision, shapes: sets[0] }, ctx) };
  }
  if (a.precision) throw new UsageError('--precision applies to --backend tensorrt only; for ONNX Runtime compress the model instead');
  if (a.data) {
    if (a.shape?.length) throw new UsageError('--data gives the input shapes; drop --shape');
    Object.assign(opts, await inputsFromData(a.model, a.data, a.batch, ctx));
  }
  if (a.compare) {
    if (sets.length > 1) throw new UsageError('--compare takes one shape set; measure several shapes without --compare');
    return { kind: 'compare', result: await compareModels(a.model, a.compare, { ...opts, shapes: sets[0] }, ctx) };
  }
  const results = await benchShapes(a.model, sets, opts, ctx);
  return results.length === 1 ? { kind: 'single', result: results[0] } : { kind: 'shapes', results };
}

const dash = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : v);
const pct = (v: number | undefined) => (v === undefined ? '-' : `±${((v * 100) / 2).toFixed(1)}%`);
const yesNo = (t: boolean | null) => (t === null ? '?' : t ? 'YES' : 'no');

export function benchTable(out: BenchOutput): string {
  const results = out.kind === 'single' ? [out.result] : out.kind === 'shapes' ? out.results : [out.result.a, out.result.b];
  const header = ['model', 'shape', 'threads', 'p50 ms', 'CI', 'p90 ms', 'p99 ms', 'mean ms', 'cv', 'load ms', 'first run ms', 'peak RSS MB', 'runs', 'throttled'];
  const rows = results.map((r) => {
    const l = r.latencyMs;
    return [
      basename(r.model.path), r.inputs.map((i) => i.dims.join('x')).join(',') || '-', r.backend === 'tensorrt' ? 'gpu' : r.session.intraOpThreads ?? 'default',
      l.p50, pct(r.timed.ciRelWidth), dash(l.p90), dash(l.p99), dash(l.mean), dash(l.cv), dash(r.loadMs), dash(r.firstRunMs), dash(r.peakRssMB), dash(l.n), yesNo(r.throttled),
    ] as Array<string | number>;
  });
  return formatTable(header, rows);
}

/** The lines printed under the table: the ratio for a comparison, then every distinct note. */
export function benchSummary(out: BenchOutput): string[] {
  const lines: string[] = [];
  if (out.kind === 'compare') {
    const { a, b, ratio } = out.result;
    const verdict = !ratio.significant ? 'no difference beyond noise' : ratio.estimate < 1 ? 'faster' : 'slower';
    lines.push(`${basename(b.model.path)} / ${basename(a.model.path)} = ${ratio.estimate.toFixed(3)}× (95% CI ${ratio.ci95[0].toFixed(3)}-${ratio.ci95[1].toFixed(3)}, ${ratio.pairs} interleaved pairs): ${verdict}`);
  }
  const results = out.kind === 'single' ? [out.result] : out.kind === 'shapes' ? out.results : [out.result.a, out.result.b];
  const notes = [...(out.kind === 'compare' ? out.result.notes : []), ...results.flatMap((r) => r.notes)];
  for (const n of new Set(notes)) lines.push(`note: ${n}`);
  return lines;
}

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: 'bench <model>',
  describe: 'Measure inference latency, load time and memory of an ONNX model on this device',
  builder: (y) => y
    .positional('model', { type: 'string', demandOption: true, describe: '.onnx file to measure' })
    .option('compare', { type: 'string', describe: 'a second .onnx file, measured interleaved with the first (A B A B …)' })
    .option('backend', { choices: ['onnxruntime', 'tensorrt'] as const, default: 'onnxruntime', describe: 'tensorrt: build and time an engine with trtexec (Jetson)' })
    .option('precision', { choices: ['fp32', 'fp16', 'int8', 'best'] as const, describe: 'TensorRT engine precision (default fp16)' })
    .option('threads', { type: 'number', describe: 'ONNX Runtime intra-op threads (default: its own choice)' })
    .option('inter-threads', { type: 'number', describe: 'ONNX Runtime inter-op threads (parallel execution mode)' })
    .option('graph-opt', { choices: ['disabled', 'basic', 'extended', 'all'] as const, describe: 'ONNX Runtime graph optimisation level' })
    .option('execution-mode', { choices: ['sequential', 'parallel'] as const, describe: 'ONNX Runtime execution mode' })
    .option('spinning', { type: 'boolean', describe: 'thread-pool spinning (--no-spinning saves CPU on a busy device)' })
    .option('shape', { type: 'string', array: true, describe: 'size of a dynamic input, name=1x3x224x224; repeat a name to measure several shapes' })
    .option('data', { type: 'string', describe: 'take the inputs from the first batch of this dataset' })
    .option('batch', { type: 'number', describe: 'size of a dynamic batch dim (and of the --data batch)' })
    .option('runs', { type: 'number', describe: 'exactly this many timed runs (default: until the median is known to ±1 %, 1-10 s)' })
    .option('warmup', { type: 'number', describe: 'exactly this many warm-up runs (default: 5 runs and 300 ms)' })
    .option('warmup-ms', { type: 'number', describe: 'warm up for at least this long' })
    .option('min-seconds', { type: 'number', describe: 'time runs for at least this long (default 1)' })
    .option('max-seconds', { type: 'number', describe: 'stop timed runs after this long (default 10)' })
    .option('ci', { type: 'number', describe: 'stop once the 95% CI of the median is this % of it wide (default 2; 0: stop at the minimums)' })
    .option('seed', { type: 'number', describe: 'seed for the generated inputs' })
    .option('json', { type: 'boolean', default: false, describe: 'print the full result, samples included, as JSON' }) as unknown as Argv<BenchArgs>,
  handler: async (a) => {
    const { onProgress, done } = progressReporter({ quiet: a.json });
    const { signal, dispose } = signalOnInterrupt();
    try {
      const out = await runBench(a, { signal, onProgress });
      done();
      if (a.json) {
        printJson(out.kind === 'shapes' ? out.results : out.result);
        return;
      }
      process.stdout.write(benchTable(out) + '\n');
      for (const l of benchSummary(out)) info(l);
    } finally {
      done();
      dispose();
    }
  },
};
