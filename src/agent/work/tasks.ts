// What a work process can do: each task calls an exported function of the pipeline (compress, measure, tune,
// profile). Loaded only in the child (worker-child.ts); arguments were validated by the job handler in the agent.
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeviceProfile, LatencyStats, Measurement, OpContext, Recipe, SessionSettings, TuneBudget } from '../../types.js';
import type { TaskName } from './protocol.js';
import type { SpaceFile } from '../../tune/space.js';
import type { StrategyName } from '../../tune/strategy.js';

export interface CompressTaskArgs {
  input: string;
  output: string;
  recipe: Recipe;
  minCosine?: number;
  force?: boolean;
  /** input shapes for dynamic dims (the --shape flag) */
  shapes?: Record<string, number[]>;
}

export interface BenchTaskArgs {
  model: string;
  recipe?: Recipe;
  /** Where a recipe's temporary model goes (inside the agent's state folder). */
  workDir: string;
  maxMs?: number;
  /** input shapes for dynamic dims (the --shape flag) */
  shapes?: Record<string, number[]>;
}

export interface TuneTaskArgs {
  model: string;
  output: string;
  budgetMs: number;
  percentile: TuneBudget['percentile'];
  memoryMB?: number;
  device: { id: string };
  profile?: DeviceProfile;
  /** A distributed share: measure exactly these (exhaustively, no model written, no HTML report). */
  candidates?: Recipe[];
  maxAccuracyDrop?: number;
  minFidelity?: number;
  /** already confined to examples/ or stateDir by the handler */
  data?: string;
  evalSamples?: number;
  timeLimitS?: number;
  strategy?: StrategyName;
  /** validated against SpaceFileSchema with the job's params */
  space?: SpaceFile;
  /** input shapes for dynamic dims (the --shape flag) */
  shapes?: Record<string, number[]>;
}

export interface CheckModelArgs {
  path: string;
  budget?: { latencyMs: number; percentile: TuneBudget['percentile'] };
  maxMs: number;
  session?: SessionSettings;
}

export interface CheckModelResult {
  loadMs?: number;
  firstRunMs?: number;
  latencyMs: LatencyStats;
  peakRssMB?: number;
  /** The percentile the budget names, measured; undefined without a budget. */
  measuredMs?: number;
  meetsBudget?: boolean;
}

type Task = (args: any, ctx: OpContext) => Promise<unknown>;

export const TASKS: Record<TaskName, Task> = {
  profile: async (args: { stateDir?: string }) => {
    const { profileDevice } = await import('../../profile/index.js');
    return profileDevice({ stateDir: args?.stateDir });
  },

  compress: async (a: CompressTaskArgs, ctx) => {
    const { compressFile } = await import('../../compress/compress.js');
    return compressFile({ input: a.input, output: a.output, recipe: a.recipe, minCosine: a.minCosine, force: a.force, shapes: a.shapes }, ctx);
  },

  bench: async (a: BenchTaskArgs, ctx): Promise<Measurement> => {
    const [{ benchModel, toMeasurement }, { compressFile }] = await Promise.all([import('../../measure/bench.js'), import('../../compress/compress.js')]);
    let file = a.model;
    const work = a.recipe ? await mkdtemp(join(a.workDir, 'bench-')) : undefined;
    try {
      if (a.recipe && work) {
        file = join(work, 'candidate.onnx');
        await compressFile({ input: a.model, output: file, recipe: a.recipe, force: true, shapes: a.shapes }, {
          signal: ctx.signal,
          onProgress: (p) => ctx.onProgress?.({ ...p, step: `compress: ${p.step}`, pct: p.pct * 0.4 }),
        });
      }
      const r = await benchModel(file, { ...(a.maxMs ? { maxMs: a.maxMs } : {}), ...(a.shapes ? { shapes: a.shapes } : {}) }, {
        signal: ctx.signal,
        onProgress: (p) => ctx.onProgress?.({ ...p, step: `bench: ${p.step}`, pct: (a.recipe ? 40 : 0) + p.pct * (a.recipe ? 0.6 : 1) }),
      });
      return toMeasurement(r, a.recipe ?? { v: 1 });
    } finally {
      if (work) await rm(work, { recursive: true, force: true });
    }
  },

  tune: async (a: TuneTaskArgs, ctx) => {
    const { tune } = await import('../../tune/tune.js');
    const target = a.profile ? await matchedTarget(a.profile) : undefined;
    return tune(
      {
        model: a.model,
        budgetMs: a.budgetMs,
        percentile: a.percentile,
        ...(a.memoryMB !== undefined ? { memoryMB: a.memoryMB } : {}),
        output: a.output,
        device: { id: a.device.id, target: target?.name ?? 'unknown' },
        ...(target ? { target } : {}),
        ...(a.candidates ? { candidates: a.candidates, reportPath: false as const } : {}),
        ...(a.maxAccuracyDrop !== undefined ? { maxAccuracyDrop: a.maxAccuracyDrop } : {}),
        ...(a.minFidelity !== undefined ? { minFidelity: a.minFidelity } : {}),
        ...(a.data !== undefined ? { data: a.data } : {}),
        ...(a.evalSamples !== undefined ? { evalSamples: a.evalSamples } : {}),
        ...(a.timeLimitS !== undefined ? { timeLimitS: a.timeLimitS } : {}),
        ...(a.strategy !== undefined ? { strategy: a.strategy } : {}),
        ...(a.space !== undefined ? { spaceFile: a.space } : {}),
        ...(a.shapes !== undefined ? { shapes: a.shapes } : {}),
      },
      ctx,
    );
  },

  'check-model': async (a: CheckModelArgs, ctx): Promise<CheckModelResult> => {
    const { benchModel } = await import('../../measure/bench.js');
    const r = await benchModel(a.path, { maxMs: a.maxMs, minMs: Math.min(1000, a.maxMs / 2), warmupMaxMs: Math.min(3000, a.maxMs / 4), env: false, ...(a.session ? { session: a.session } : {}) }, ctx);
    const key = a.budget ? (`p${a.budget.percentile}` as keyof LatencyStats) : undefined;
    const measured = key ? (r.latencyMs[key] as number) : undefined;
    return {
      ...(r.loadMs !== undefined ? { loadMs: r.loadMs } : {}),
      ...(r.firstRunMs !== undefined ? { firstRunMs: r.firstRunMs } : {}),
      latencyMs: r.latencyMs,
      ...(r.peakRssMB !== undefined ? { peakRssMB: r.peakRssMB } : {}),
      ...(measured !== undefined ? { measuredMs: measured, meetsBudget: measured <= a.budget!.latencyMs } : {}),
    };
  },
};

/** The hardware target matching this device, or undefined so tuning still runs with the default space. */
async function matchedTarget(profile: DeviceProfile) {
  try {
    const [{ loadTargets }, { matchTarget }] = await Promise.all([import('../../targets/load.js'), import('../../targets/match.js')]);
    return matchTarget(profile, await loadTargets()).target;
  } catch {
    return undefined;
  }
}
