// The job types this device runs for a controller. The work itself (profiling, compressing, benchmarking, tuning,
// checking a model) runs in a child process (work/worker.ts), so nothing here puts graph rewriting or ONNX Runtime
// on the agent's event loop. Handlers only validate parameters, confine paths and compose.
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { DeviceProfile, OpContext, TuneResult } from '../types.js';
import { packageRoot } from '../util/paths.js';
import { deployHandlers, type DeployDeps } from './deploy/deploy.js';
import type { HandlerMap } from './jobs.js';
import type { Logger } from './log.js';
import { BenchParamsSchema, CompressParamsSchema, ProfileParamsSchema, SHARE_IGNORES, TuneParamsSchema, type BenchParams, type CompressParams, type TuneParams } from './params.js';
import { confineReal, jobPath, pathIssues, type AllowedRoots } from './paths.js';
import { configHandler, type ConfigJobDeps } from './remote-config.js';
import { runTask, type Work } from './work/worker.js';
import type { BenchTaskArgs, CompressTaskArgs, TuneTaskArgs } from './work/tasks.js';
import type { TaskName } from './work/protocol.js';

export { resolveJobPath, type AllowedRoots } from './paths.js';

export interface HandlerDeps {
  stateDir: string;
  deviceId: string;
  log: Logger;
  /** The profile taken at start (undefined when profiling failed); tune uses it to pick a target's space. */
  profile: () => Promise<DeviceProfile | undefined>;
  /** Folder of bundled example models; defaults to <package>/examples. */
  examplesDir?: string;
  /** Runs heavy work; default: a child process per task. */
  work?: Work;
  /** How long a work process may take to stop after a cancel. */
  graceMs?: number;
  /** Model store and friends; without them there are no deploy and rollback jobs. */
  deploy?: Omit<DeployDeps, 'roots' | 'log' | 'work'>;
  /** Without it there is no config job. */
  config?: ConfigJobDeps;
}

export { BenchParamsSchema, CompressParamsSchema, ProfileParamsSchema, TuneParamsSchema, type TuneParams } from './params.js';

export function realHandlers(deps: HandlerDeps): HandlerMap {
  const roots: AllowedRoots = { examples: deps.examplesDir ?? join(packageRoot(), 'examples'), stateDir: deps.stateDir };
  const work = deps.work ?? runTask;
  const opts = { graceMs: deps.graceMs };
  const handlers: HandlerMap = {
    profile: {
      params: ProfileParamsSchema,
      run: (_p, ctx) => work('profile', { stateDir: deps.stateDir }, ctx, opts),
    },
    tune: {
      params: TuneParamsSchema,
      validate: (params) => {
        const p = params as TuneParams;
        const shareIssues = p.candidates ? SHARE_IGNORES.filter((k) => p[k] !== undefined).map((k) => `/params/${k}: a share (candidates) measures exactly its recipes; ${k} would do nothing there`) : [];
        return [...pathIssues({ model: p.model, output: p.output, data: p.data }, roots), ...shareIssues];
      },
      run: async (params, ctx) => {
        const p = params as TuneParams;
        const model = await confineReal(jobPath(p.model, roots, 'model'), roots, 'model', true);
        // A share writes no model, only its TuneResult and journal; one name per job keeps concurrent runs apart and
        // lets a share interrupted by a crash resume from its own journal.
        const stem = p.candidates ? `${basename(model, '.onnx')}.${ctx.jobId ?? 'share'}.share` : `${basename(model, '.onnx')}.tuned`;
        const output = p.output !== undefined ? jobPath(p.output, roots, 'output') : join(deps.stateDir, 'tuned', `${stem}.onnx`);
        await mkdir(dirname(output), { recursive: true });
        await confineReal(output, roots, 'output', false);
        const data = p.data !== undefined ? await confineReal(jobPath(p.data, roots, 'data'), roots, 'data', true) : undefined;
        const profile = await deps.profile();
        if (!profile) deps.log.warn('no device profile; tuning with the default search space');
        const args: TuneTaskArgs = {
          model, output, budgetMs: p.budgetMs, percentile: p.percentile, device: { id: deps.deviceId },
          ...(p.memoryMB !== undefined ? { memoryMB: p.memoryMB } : {}), ...(profile ? { profile } : {}),
          ...(p.candidates ? { candidates: p.candidates } : {}),
          ...(data !== undefined ? { data } : {}),
          ...pick(p, ['maxAccuracyDrop', 'minFidelity', 'evalSamples', 'timeLimitS', 'strategy', 'space', 'shapes']),
        };
        const result = await work('tune', args, ctx, opts);
        if (p.candidates && p.output === undefined) {
          // A share's files are per job id and only serve a resume: once its result exists they would only pile up.
          const stemPath = output.replace(/\.onnx$/, '');
          await Promise.all([`${stemPath}.tune.json`, `${stemPath}.tune-journal.jsonl`].map((f) => rm(f, { force: true })));
        }
        return result;
      },
    },
    compress: {
      params: CompressParamsSchema,
      validate: (params) => pathIssues({ model: (params as CompressParams).model, output: (params as CompressParams).output }, roots),
      run: async (params, ctx) => {
        const p = params as CompressParams;
        const input = await confineReal(jobPath(p.model, roots, 'model'), roots, 'model', true);
        const output = p.output !== undefined ? jobPath(p.output, roots, 'output') : join(deps.stateDir, 'compressed', `${basename(input, '.onnx')}.${ctx.jobId ?? 'out'}.onnx`);
        await mkdir(dirname(output), { recursive: true });
        await confineReal(output, roots, 'output', false);
        const args: CompressTaskArgs = { input, output, recipe: p.recipe, ...(p.minCosine !== undefined ? { minCosine: p.minCosine } : {}), ...(p.force ? { force: true } : {}), ...pick(p, ['shapes']) };
        return work('compress', args, ctx, opts);
      },
    },
    bench: {
      params: BenchParamsSchema,
      validate: (params) => pathIssues({ model: (params as BenchParams).model }, roots),
      run: async (params, ctx) => {
        const p = params as BenchParams;
        const model = await confineReal(jobPath(p.model, roots, 'model'), roots, 'model', true);
        const workDir = join(deps.stateDir, 'work');
        await mkdir(workDir, { recursive: true });
        const args: BenchTaskArgs = { model, workDir, ...(p.recipe ? { recipe: p.recipe } : {}), ...(p.maxS ? { maxMs: p.maxS * 1000 } : {}), ...pick(p, ['shapes']) };
        return work('bench', args, ctx, opts);
      },
    },
  };
  if (deps.deploy) Object.assign(handlers, deployHandlers({ ...deps.deploy, roots, log: deps.log, work: <T,>(t: TaskName, a: unknown, c?: OpContext) => work<T>(t, a, c, opts) }));
  if (deps.config) handlers.config = configHandler(deps.config);
  return handlers;
}

/** The fields of `o` named in `keys` that the job set: the task's arguments carry nothing else. */
function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** The human rendering of a job's result, when there is one (the tune table); undefined means print JSON. */
export async function formatJobResult(type: string, result: unknown): Promise<string | undefined> {
  if (type !== 'tune') return undefined;
  const { formatTuneTable } = await import('../tune/format.js');
  return formatTuneTable(result as TuneResult);
}
