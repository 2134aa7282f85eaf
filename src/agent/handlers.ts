// The job types this device runs for a controller: `profile` and `tune`. Tuning runs its measurements in child
// processes (src/measure), so nothing here puts ONNX Runtime on the agent's event loop. The heavy modules are
// imported on first use so that an agent that never tunes never loads them.
import { mkdir, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { JobError } from '../errors.js';
import type { DeviceProfile, TuneResult } from '../types.js';
import { packageRoot } from '../util/paths.js';
import type { HandlerMap } from './jobs.js';
import type { Logger } from './log.js';

export interface HandlerDeps {
  stateDir: string;
  deviceId: string;
  log: Logger;
  /** The profile taken at start (undefined when profiling failed); tune uses it to pick a target's space. */
  profile: () => Promise<DeviceProfile | undefined>;
  /** Folder of bundled example models; defaults to <package>/examples. */
  examplesDir?: string;
}

export const ProfileParamsSchema = Type.Object({}, { additionalProperties: false });

export const TuneParamsSchema = Type.Object(
  {
    model: Type.String({ minLength: 1, description: "'examples/…' = the package's examples; other relative paths are under stateDir" }),
    budgetMs: Type.Number({ exclusiveMinimum: 0 }),
    percentile: Type.Union([Type.Literal(50), Type.Literal(90), Type.Literal(95), Type.Literal(99)], { default: 90 }),
    memoryMB: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    output: Type.Optional(Type.String({ minLength: 1, description: 'where the chosen model goes; default <stateDir>/tuned/<model>.tuned.onnx' })),
  },
  { additionalProperties: false },
);
export type TuneParams = Static<typeof TuneParamsSchema>;

export interface AllowedRoots {
  examples: string;
  stateDir: string;
}

/**
 * Where a remote job may point: the package's examples/ folder and the agent's stateDir, nothing else, so a
 * controller (or whoever can publish to the job topic) cannot read or overwrite arbitrary files. Relative paths
 * starting with `examples/` mean the bundled examples; any other relative path is under stateDir.
 */
export function resolveJobPath(p: string, roots: AllowedRoots): { ok: true; path: string } | { ok: false; reason: string } {
  const norm = p.replace(/\\/g, '/');
  const abs = isAbsolute(p) ? resolve(p) : norm.startsWith('examples/') ? resolve(dirname(roots.examples), norm) : resolve(roots.stateDir, p);
  if (within(roots.examples, abs) || within(roots.stateDir, abs)) return { ok: true, path: abs };
  return { ok: false, reason: `'${p}' is outside the folders jobs may use (${roots.examples}, ${roots.stateDir})` };
}

function within(root: string, p: string): boolean {
  const rel = relative(resolve(root), p);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && rel.split(sep)[0] !== '..');
}

/** The same rule after following symlinks, for a path that exists (or whose parent exists, for outputs). */
async function confineReal(path: string, roots: AllowedRoots, field: string, existing: boolean): Promise<string> {
  const real = async (p: string) => realpath(p).catch(() => resolve(p));
  const target = existing ? await real(path) : join(await real(dirname(path)), basename(path));
  const realRoots = { examples: await real(roots.examples), stateDir: await real(roots.stateDir) };
  if (within(realRoots.examples, target) || within(realRoots.stateDir, target)) return path;
  throw new JobError(`/params/${field}: '${path}' leads outside the folders jobs may use (through a symlink)`);
}

export function realHandlers(deps: HandlerDeps): HandlerMap {
  const roots: AllowedRoots = { examples: deps.examplesDir ?? join(packageRoot(), 'examples'), stateDir: deps.stateDir };
  return {
    profile: {
      params: ProfileParamsSchema,
      run: async () => {
        const { profileDevice } = await import('../profile/index.js');
        return profileDevice();
      },
    },
    tune: {
      params: TuneParamsSchema,
      validate: (params) => {
        const p = params as TuneParams;
        const issues: string[] = [];
        const m = resolveJobPath(p.model, roots);
        if (!m.ok) issues.push(`/params/model: ${m.reason}`);
        if (p.output !== undefined) {
          const o = resolveJobPath(p.output, roots);
          if (!o.ok) issues.push(`/params/output: ${o.reason}`);
        }
        return issues;
      },
      run: async (params, ctx) => {
        const p = params as TuneParams;
        const model = await confineReal(unwrap(resolveJobPath(p.model, roots), 'model'), roots, 'model', true);
        const output = p.output !== undefined
          ? unwrap(resolveJobPath(p.output, roots), 'output')
          : join(deps.stateDir, 'tuned', `${basename(model, '.onnx')}.tuned.onnx`);
        await mkdir(dirname(output), { recursive: true });
        await confineReal(output, roots, 'output', false);
        const target = await matchedTarget(deps);
        const { tune } = await import('../tune/tune.js');
        return tune(
          {
            model,
            budgetMs: p.budgetMs,
            percentile: p.percentile,
            ...(p.memoryMB !== undefined ? { memoryMB: p.memoryMB } : {}),
            output,
            device: { id: deps.deviceId, target: target?.name ?? 'unknown' },
            ...(target ? { space: target.space } : {}),
          },
          ctx,
        );
      },
    },
  };
}

function unwrap(r: ReturnType<typeof resolveJobPath>, field: string): string {
  if (!r.ok) throw new JobError(`/params/${field}: ${r.reason}`);
  return r.path;
}

/** The target matching this device, or undefined (with a log line saying why) so tuning still runs. */
async function matchedTarget(deps: HandlerDeps) {
  const profile = await deps.profile();
  if (!profile) {
    deps.log.warn('no device profile; tuning with the default search space');
    return undefined;
  }
  try {
    const [{ loadTargets }, { matchTarget }] = await Promise.all([import('../targets/load.js'), import('../targets/match.js')]);
    const m = matchTarget(profile, await loadTargets());
    deps.log.info(`tuning for target ${m.target.name}`, { reasons: m.reasons });
    return m.target;
  } catch (e) {
    deps.log.warn('no hardware target matched; tuning with the default search space', { error: (e as Error).message });
    return undefined;
  }
}

/** The human rendering of a job's result, when there is one (the tune table); undefined means print JSON. */
export async function formatJobResult(type: string, result: unknown): Promise<string | undefined> {
  if (type !== 'tune') return undefined;
  const { formatTuneTable } = await import('../tune/format.js');
  return formatTuneTable(result as TuneResult);
}
