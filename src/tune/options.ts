// What `tune` takes and gives, the defaults, and where its files go. Pure apart from reading a --space file.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError, isENOENT } from '../errors.js';
import type { BenchPlanOptions } from '../measure/bench-plan.js';
import { parseWithSchema } from '../schema/validate.js';
import type { Quality, Recipe, Target, TuneBudget, TuneResult } from '../types.js';
import type { TuneLimits } from './decide.js';
import type { ModelRecord } from './journal.js';
import type { Confirmation, SearchRecord } from './search.js';
import { SpaceFileSchema, type QuantOption, type SkippedCandidate, type SpaceFile } from './space.js';
import type { StrategyName } from './strategy.js';

export interface TuneOptions {
  model: string;
  budgetMs: number;
  percentile?: TuneBudget['percentile'];
  memoryMB?: number;
  /** accuracy mode: largest accepted drop in points vs fp32 (default 1) */
  maxAccuracyDrop?: number;
  /** fidelity mode: lowest accepted cosine to fp32 (default 0.99); with labels it applies on top of the drop */
  minFidelity?: number;
  /** where the chosen model goes (default: `<model>.tuned.onnx` beside the input) */
  output?: string;
  /** where the TuneResult JSON goes (default: `<output>.tune.json`) */
  resultPath?: string;
  /** the HTML report (default `<output>.tune.html`; false: none) */
  reportPath?: string | false;
  /** the trial journal (default `<output>.tune-journal.jsonl`) */
  journalPath?: string;
  /** the device this runs on; defaults keep the tuner usable without a profile */
  device?: { id: string; target: string };
  /** the matched target (its defaults and priors are used); else `space` alone */
  target?: Target;
  space?: Target['space'];
  /** a --space file (path or parsed) replacing axes of the target's space */
  spaceFile?: string | SpaceFile;
  /** shorthands that restrict two axes (the CLI's --quant/--threads) */
  quant?: QuantOption[];
  threads?: number[];
  /** measure exactly these recipes (a fleet share): exhaustive, and no model is written */
  candidates?: Recipe[];
  strategy?: StrategyName;
  /** labelled examples (or unlabelled: fidelity on real inputs); default: a set next to the model named by meta.json */
  data?: string;
  /** examples to evaluate quality on (default 1000 from data, 16 generated) */
  evalSamples?: number;
  shapes?: Record<string, number[]>;
  /** benchmark per trial; the defaults suit models of a few ms */
  bench?: BenchPlanOptions;
  /** the winner's longer benchmark (default: 3× the trial's minimums and caps) */
  confirmBench?: BenchPlanOptions;
  /** stop starting new work after this many seconds, then decide with what was measured */
  timeLimitS?: number;
  /** smallest predicted chance of meeting the budget worth a trial (default 0.1) */
  pMin?: number;
  cores?: number;
  /** keep compressed candidates in the work folder after a finished tune */
  keepWork?: boolean;
}

export interface TuneOutcome extends TuneResult {
  budget: TuneLimits;
  strategy: StrategyName;
  quality: { metric: 'accuracy' | 'fidelity'; from: string; examples: number; baselineAccuracy?: number };
  space: { target: string; candidates: number; models: number; skipped: SkippedCandidate[] };
  search: {
    measured: number; replayed: number; stopReason: string; timedOut: boolean;
    log: SearchRecord[]; confirmations: Confirmation[];
    /** never measured: the final latency model's prediction and the model's quality */
    unmeasured: Array<{ label: string; predictedMs: number; quality: Quality }>;
  };
  models: ModelRecord[];
  resultPath: string;
  report?: string;
  journal: { path: string; resumed: boolean; notes: string[] };
  notes: string[];
}

export const SEARCH_BENCH: BenchPlanOptions = { warmupRuns: 5, warmupMs: 200, minRuns: 20, minMs: 400, ciRelWidth: 0.03, maxMs: 3000 };
/** `tune --quick` (and bench:tune --quick): half the trial's minimums and caps, for a first look; applied over SEARCH_BENCH. */
export const QUICK_BENCH: BenchPlanOptions = { warmupRuns: 3, minRuns: 10, minMs: 200, maxMs: 1500 };

/** The confirmation plan: 3× the trial plan's minimums and caps, a tighter CI, unless given. */
export function confirmPlan(search: BenchPlanOptions, given?: BenchPlanOptions): BenchPlanOptions {
  if (given) return given;
  const x3 = (v: number | undefined) => (v === undefined ? undefined : v * 3);
  return {
    ...search,
    ...(search.minRuns !== undefined ? { minRuns: x3(search.minRuns) } : {}),
    ...(search.minMs !== undefined ? { minMs: x3(search.minMs) } : {}),
    ...(search.maxRuns !== undefined ? { maxRuns: x3(search.maxRuns) } : {}),
    ...(search.maxMs !== undefined ? { maxMs: x3(search.maxMs) } : {}),
    ciRelWidth: Math.min(search.ciRelWidth ?? 0.02, 0.015),
  };
}

export interface TunePaths { input: string; output: string; result: string; report?: string; journal: string; work: string }

export function tunePaths(o: Pick<TuneOptions, 'model' | 'output' | 'resultPath' | 'reportPath' | 'journalPath'>): TunePaths {
  const input = resolve(o.model);
  const output = resolve(o.output ?? join(dirname(input), `${basename(input, '.onnx')}.tuned.onnx`));
  if (output === input) throw new UsageError(`output ${o.output} is the input model; choose another path with -o`);
  const stem = output.replace(/\.onnx$/, '');
  return {
    input, output,
    result: resolve(o.resultPath ?? `${stem}.tune.json`),
    ...(o.reportPath === false ? {} : { report: resolve(o.reportPath ?? `${stem}.tune.html`) }),
    journal: resolve(o.journalPath ?? `${stem}.tune-journal.jsonl`),
    work: `${stem}.tune-work`,
  };
}

/** Reads and checks a --space file; errors name the file and each field at fault. */
export async function readSpaceFile(path: string): Promise<SpaceFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(isENOENT(e) ? `--space ${path}: no such file` : `--space ${path}: cannot read it (${(e as Error).message})`);
  }
  let json: unknown;
  try { json = JSON.parse(text); } catch (e) { throw new UsageError(`--space ${path} is not valid JSON: ${(e as Error).message}`); }
  return parseSpaceFile(json, `--space ${path}`);
}

export function parseSpaceFile(value: unknown, source = 'space'): SpaceFile {
  const r = parseWithSchema(SpaceFileSchema, value);
  if (!r.ok) throw new UsageError(`${source} is not a valid search space:\n  ${r.errors.join('\n  ')}\n(see docs/tuning.md for the fields)`);
  return r.value;
}

/** A --space file with the --quant/--threads shorthands applied over it. */
export async function spaceFileOf(o: Pick<TuneOptions, 'spaceFile' | 'quant' | 'threads'>): Promise<SpaceFile | undefined> {
  const base = typeof o.spaceFile === 'string' ? await readSpaceFile(o.spaceFile) : o.spaceFile;
  if (!base && !o.quant && !o.threads) return undefined;
  return { v: 1, ...base, ...(o.quant ? { quant: o.quant } : {}), ...(o.threads ? { threads: o.threads } : {}) };
}

export function checkOptions(o: TuneOptions): void {
  if (!(o.budgetMs > 0 && Number.isFinite(o.budgetMs))) throw new UsageError(`--budget-ms must be a positive number of milliseconds (got ${o.budgetMs})`);
  if (o.memoryMB !== undefined && !(o.memoryMB > 0)) throw new UsageError(`--memory-mb must be positive (got ${o.memoryMB})`);
  if (o.maxAccuracyDrop !== undefined && !(o.maxAccuracyDrop >= 0)) throw new UsageError(`--max-accuracy-drop must be 0 or more points (got ${o.maxAccuracyDrop})`);
  if (o.minFidelity !== undefined && !(o.minFidelity >= -1 && o.minFidelity <= 1)) throw new UsageError(`--min-fidelity is a cosine between -1 and 1 (got ${o.minFidelity})`);
  if (o.timeLimitS !== undefined && !(o.timeLimitS > 0)) throw new UsageError(`--time-limit must be positive (got ${o.timeLimitS} s)`);
  if (o.evalSamples !== undefined && !(Number.isInteger(o.evalSamples) && o.evalSamples >= 1)) throw new UsageError(`--eval-samples must be a positive integer (got ${o.evalSamples})`);
  if (o.candidates && o.candidates.length === 0) throw new UsageError('the candidate list is empty');
}

/** "10m", "90s", "1h", "1h30m" or plain seconds → seconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)\s*(h|m|s)/gy;
  let total = 0, m: RegExpExecArray | null, end = 0;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
    end = re.lastIndex;
  }
  if (end !== t.length || total <= 0) throw new UsageError(`--time-limit "${text}": use e.g. 90s, 10m, 1h30m or a number of seconds`);
  return total;
}
