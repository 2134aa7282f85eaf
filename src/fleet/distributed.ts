// Distributed tuning: one tune's candidate list split across the online devices of one hardware target. Each
// device measures its share (a `tune` job with params.candidates), the controller merges the trials into one
// Pareto front and one decision, exactly as a single device would have decided over all of them. A device that
// drops out (goes offline, or ends its share without a result) has its share handed to another device.
import { CanceledError, errorMessage } from '../errors.js';
import { decide, paretoFront, type TuneLimits } from '../tune/decide.js';
import { buildCandidates, targetFromSpace, tuneAxes } from '../tune/space.js';
import { RecipeSchema, recipeLabel } from '../schema/recipe.js';
import { parseWithSchema } from '../schema/validate.js';
import type { Measurement, Recipe, Target, TuneBudget, TuneResult } from '../types.js';
import { cancelJobs, jobDoc, timeoutFor, type FleetJobSpec } from './dispatch.js';
import { isTuneResult, restoreMeasurement } from './result-doc.js';
import type { FleetSession } from './session.js';
import type { TrackedJob, TrackerChange } from './tracker.js';

/** The recipes a single device of this target would try (the tuner's own grid), fp32 first. */
export function targetCandidates(target: Target | undefined, cores: number): Recipe[] {
  const t = target ?? targetFromSpace(undefined);
  return buildCandidates(t, tuneAxes(t, cores)).candidates.map((c) => c.recipe);
}

/**
 * `parts` shares of near-equal size (sizes differ by at most one). Items with the same key (the same compressed
 * model, differing only in session settings) are kept next to each other, so a share mostly holds whole groups and a
 * device compresses each model once; a group is cut only where a share boundary falls.
 */
export function splitCandidates<T>(items: T[], parts: number, keyOf: (item: T) => string = () => ''): T[][] {
  const n = Math.max(1, Math.min(parts, items.length));
  const groups = new Map<string, T[]>();
  for (const it of items) {
    const k = keyOf(it);
    groups.set(k, [...(groups.get(k) ?? []), it]);
  }
  const ordered = [...groups.values()].flat();
  const base = Math.floor(ordered.length / n);
  const extra = ordered.length % n;
  const out: T[][] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const size = base + (i < extra ? 1 : 0);
    out.push(ordered.slice(at, at + size));
    at += size;
  }
  return out;
}

/** What decides the compressed model of a recipe: everything but its session settings. */
export function compressionKey(r: Recipe): string {
  const { session: _session, ...rest } = r;
  return JSON.stringify(rest);
}

export interface ShareReport {
  index: number;
  candidates: string[];
  state: 'done' | 'failed';
  /** Who measured it (the device whose result was used). */
  device?: string;
  /** Every job sent for this share, in order: more than one means it was reassigned. */
  attempts: Array<{ device: string; jobId: string; verdict?: string; error?: string }>;
  error?: string;
}

export interface DistributedTuneResult {
  v: 1;
  runId: string;
  target: string;
  model: string;
  /** The budget plus the quality floor the devices applied (their TuneResults' budget), used for the decision. */
  budget: TuneLimits;
  /** sha256 of the model file the devices measured (from their TuneResults); the rollout names it. */
  modelSha256?: string;
  devices: string[];
  shares: ShareReport[];
  trials: Measurement[];
  front: Measurement[];
  chosen: Measurement | null;
  infeasible?: { reason: string; best: Measurement };
  /** Candidates no device could measure (their share failed on every device tried). */
  unmeasured: string[];
  /** Candidates of a finished share that the device's tuner skipped or could not run (it says why). */
  skipped: Array<{ label: string; device: string; why: string }>;
  notes: string[];
  wallS: number;
}

export interface DistributedTuneOptions {
  runId: string;
  target: string;
  /** Online devices of that target; the work is split across them. */
  devices: string[];
  model: string;
  budgetMs: number;
  percentile?: TuneBudget['percentile'];
  memoryMB?: number;
  candidates: Recipe[];
  timeoutS?: number;
  /** Jobs per share before it is given up (default 3). */
  maxAttempts?: number;
  signal?: AbortSignal;
  onChange?: (t: TrackedJob, what: TrackerChange) => void;
  onReassign?: (share: number, from: string, why: string) => void;
}

interface Share {
  index: number;
  recipes: Recipe[];
  /** Position of each recipe in the full candidate list (to merge trials back in order). */
  positions: number[];
  attempts: TrackedJob[];
  tried: Set<string>;
  current?: TrackedJob;
  trials?: Measurement[];
  result?: TuneResult;
  device?: string;
  error?: string;
}

export async function distributedTune(session: FleetSession, opts: DistributedTuneOptions): Promise<DistributedTuneResult> {
  const started = session.clock.now();
  const percentile = opts.percentile ?? 90;
  const budget: TuneBudget = { latencyMs: opts.budgetMs, percentile, ...(opts.memoryMB !== undefined ? { memoryMB: opts.memoryMB } : {}) };
  if (!opts.candidates.length) throw new RangeError('distributed tune: the candidate list is empty');
  if (!opts.devices.length) throw new RangeError(`distributed tune: no online device of target ${opts.target}`);
  const maxAttempts = opts.maxAttempts ?? 3;
  // With the schema's defaults filled in, a recipe reads exactly as the device will read it (and report it back).
  const indexed = opts.candidates.map((r, i) => {
    const parsed = parseWithSchema(RecipeSchema, r);
    return { r: parsed.ok ? parsed.value : r, i };
  });
  const shares: Share[] = splitCandidates(indexed, opts.devices.length, (x) => compressionKey(x.r)).map((part, index) => ({
    index, recipes: part.map((p) => p.r), positions: part.map((p) => p.i), attempts: [], tried: new Set(),
  }));
  const busy = new Map<string, Share>();
  const dropped = new Set<string>();
  const specOf = (s: Share): FleetJobSpec => ({
    type: 'tune',
    params: { model: opts.model, budgetMs: opts.budgetMs, percentile, ...(opts.memoryMB !== undefined ? { memoryMB: opts.memoryMB } : {}), candidates: s.recipes },
    ...(opts.timeoutS !== undefined ? { timeoutS: opts.timeoutS } : {}),
  });

  const finished = (s: Share) => s.trials !== undefined || s.error !== undefined;
  const online = (d: string) => session.view.get(d)?.online === true && !dropped.has(d);

  /** Sends a share to a device: `s<share>` the first time, `s<share>-r<n>` for each reassignment. */
  const assign = (s: Share, device: string) => {
    const n = s.attempts.length;
    const job = jobDoc(`${opts.runId}-s${s.index}${n ? `-r${n}` : ''}`, specOf(s));
    const t = session.tracker.add(device, job, timeoutFor(specOf(s)), { runId: opts.runId, phase: 'share', wave: s.index });
    s.attempts.push(t);
    s.tried.add(device);
    s.current = t;
    busy.set(device, s);
    session.link.publishJob(device, job).catch((e) => session.log.warn('could not publish a share', { device, error: errorMessage(e) }));
  };

  /** Idle online devices take waiting shares, preferring devices that have not tried that share yet. */
  const schedule = () => {
    for (const s of shares) {
      if (finished(s) || s.current) continue;
      if (s.attempts.length >= maxAttempts) {
        s.error = `gave up after ${s.attempts.length} attempts: ${s.attempts.map((a) => `${a.device} ${a.verdict ?? 'dropped'}${a.error ? ` (${a.error.message})` : ''}`).join('; ')}`;
        continue;
      }
      const idle = opts.devices.filter((d) => online(d) && !busy.has(d));
      const pick = idle.find((d) => !s.tried.has(d)) ?? idle[0];
      if (pick) assign(s, pick);
    }
    // Nobody left to run what is waiting: fail it now rather than wait forever.
    if (busy.size === 0) {
      for (const s of shares) if (!finished(s) && !s.current) s.error ??= `no online device of target ${opts.target} left to measure it`;
    }
  };

  const release = (s: Share, t: TrackedJob, why?: string) => {
    if (s.current === t) s.current = undefined;
    if (busy.get(t.device) === s) busy.delete(t.device);
    if (why) opts.onReassign?.(s.index, t.device, why);
  };

  const shareOf = (t: TrackedJob) => shares.find((s) => s.attempts.includes(t));

  const onTracker = (t: TrackedJob, what: TrackerChange) => {
    const s = shareOf(t);
    if (!s) return;
    opts.onChange?.(t, what);
    if (what !== 'done') return;
    const trials = t.verdict === 'SUCCEEDED' && isTuneResult(t.result) ? t.result.trials.map(restoreMeasurement) : undefined;
    if (trials && !finished(s)) {
      // A late answer from a device the share was taken from still counts if it is the first.
      s.trials = trials;
      s.result = t.result as TuneResult;
      s.device = t.device;
      const other = s.current && s.current !== t ? s.current : undefined;
      release(s, t);
      if (other) {
        release(s, other);
        void cancelJobs(session, [other]);
      }
    } else {
      const why = trials ? undefined : t.verdict === 'SUCCEEDED' ? 'its result is not a TuneResult' : `${t.verdict}${t.error ? `: ${t.error.message}` : ''}`;
      release(s, t, finished(s) ? undefined : why);
    }
    schedule();
  };

  const onDevice = () => {
    for (const [device, s] of [...busy]) {
      if (session.view.get(device)?.online === false && s.current?.device === device) {
        dropped.add(device);
        release(s, s.current, 'device went offline');
      }
    }
    // A device that comes back online may take work again.
    for (const d of [...dropped]) if (session.view.get(d)?.online === true && !busy.has(d)) dropped.delete(d);
    schedule();
  };

  const offTracker = session.tracker.events.on('change', onTracker);
  const offDevice = session.events.on('device', (_r, kind) => { if (kind === 'status') onDevice(); });
  try {
    schedule();
    await session.tracker.wait([], {
      signal: opts.signal,
      until: () => {
        session.tracker.expire(shares.flatMap((s) => (s.current ? [s.current] : [])));
        return shares.every(finished);
      },
    });
  } catch (e) {
    if (e instanceof CanceledError) await cancelJobs(session, shares.flatMap((s) => (s.current ? [s.current] : [])));
    throw e;
  } finally {
    offTracker();
    offDevice();
  }

  const { trials, skipped } = mergeTrials(shares);
  const done = shares.filter((s) => s.result);
  const notes: string[] = [];
  const first = done[0]?.result;
  const limits: TuneLimits = { ...budget, ...qualityFloorOf(first?.budget) };
  const floors = new Set(done.map((s) => JSON.stringify(qualityFloorOf(s.result!.budget))));
  if (floors.size > 1) notes.push(`the devices applied different quality floors (${[...floors].join(' vs ')}); the first share's is used`);
  const fp32 = trials.find((m) => !m.recipe.quantize && !m.recipe.prune && !m.recipe.lowrank);
  const outcome = first as (TuneResult & { quality?: { baselineAccuracy?: unknown } }) | undefined;
  const baselineAccuracy = num(outcome?.quality?.baselineAccuracy) ?? (limits.maxAccuracyDrop !== undefined ? num(first?.baseline?.quality?.accuracy) : undefined) ?? fp32?.quality.accuracy;
  const decision = trials.length ? decide(trials, limits, baselineAccuracy) : { chosen: null };
  const shas = new Set(done.map((s) => s.result!.model?.sha256).filter((x): x is string => typeof x === 'string'));
  if (shas.size > 1) notes.push(`the devices hold different files at ${opts.model} (sha256 ${[...shas].map((x) => x.slice(0, 12)).join(', ')}); the front mixes them and no winner can be rolled out`);
  return {
    v: 1,
    runId: opts.runId,
    target: opts.target,
    model: opts.model,
    budget: limits,
    ...(shas.size === 1 ? { modelSha256: [...shas][0] } : {}),
    devices: opts.devices,
    shares: shares.map((s) => ({
      index: s.index,
      candidates: s.recipes.map(recipeLabel),
      state: s.trials ? 'done' : 'failed',
      ...(s.device ? { device: s.device } : {}),
      attempts: s.attempts.map((a) => ({ device: a.device, jobId: a.jobId, ...(a.verdict ? { verdict: a.verdict } : {}), ...(a.error ? { error: a.error.message } : {}) })),
      ...(s.error && !s.trials ? { error: s.error } : {}),
    })),
    trials,
    front: paretoFront(trials, percentile),
    chosen: decision.chosen,
    ...('infeasible' in decision && decision.infeasible ? { infeasible: decision.infeasible } : {}),
    unmeasured: shares.filter((s) => !s.trials).flatMap((s) => s.recipes.map(recipeLabel)),
    skipped,
    notes,
    wallS: (session.clock.now() - started) / 1000,
  };
}

/**
 * The shares' trials back in candidate order. Trials are matched to candidates by recipe, not by position: a
 * device measures its fp32 baseline first and leaves out a candidate it cannot build, so the order of its trials
 * need not be the order of its share. Candidates of a finished share without a trial are returned with the reason
 * the device's tuner gave.
 */
function mergeTrials(shares: Share[]): { trials: Measurement[]; skipped: DistributedTuneResult['skipped'] } {
  const placed: Array<{ pos: number; m: Measurement }> = [];
  const skipped: DistributedTuneResult['skipped'] = [];
  for (const s of shares) {
    if (!s.trials) continue;
    const keys = s.recipes.map(canonicalJson);
    const used = new Set<number>();
    for (const m of s.trials) {
      const k = canonicalJson(m.recipe);
      const i = keys.findIndex((x, j) => x === k && !used.has(j));
      if (i < 0) continue; // not one of the share's candidates (a device that measured more than it was asked)
      used.add(i);
      placed.push({ pos: s.positions[i] ?? Infinity, m });
    }
    for (const [j, r] of s.recipes.entries()) {
      if (!used.has(j)) skipped.push({ label: recipeLabel(r), device: s.device ?? '?', why: skipReason(s.result, recipeLabel(r)) });
    }
  }
  return { trials: placed.sort((a, b) => a.pos - b.pos).map((p) => p.m), skipped };
}

/** What the device's tuner said about a candidate it did not report (TuneOutcome's space.skipped / search.log). */
function skipReason(result: unknown, label: string): string {
  const r = result as { space?: { skipped?: Array<{ label?: unknown; why?: unknown }> }; search?: { log?: Array<{ label?: unknown; failed?: unknown }> } } | undefined;
  const sk = Array.isArray(r?.space?.skipped) ? r.space.skipped.find((x) => x?.label === label) : undefined;
  if (typeof sk?.why === 'string') return sk.why;
  const failed = Array.isArray(r?.search?.log) ? r.search.log.find((x) => x?.label === label && typeof x.failed === 'string') : undefined;
  if (failed) return `measurement failed: ${String(failed.failed)}`;
  return 'the device reported no trial for it';
}

/** The quality floor a device's tuner applied (its TuneResult's budget): a cosine floor or an accuracy drop. */
function qualityFloorOf(b: unknown): Pick<TuneLimits, 'minFidelity' | 'maxAccuracyDrop'> {
  const o = (typeof b === 'object' && b !== null ? b : {}) as Record<string, unknown>;
  const minFidelity = num(o.minFidelity);
  const maxAccuracyDrop = num(o.maxAccuracyDrop);
  return { ...(minFidelity !== undefined ? { minFidelity } : {}), ...(maxAccuracyDrop !== undefined ? { maxAccuracyDrop } : {}) };
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** JSON with object keys sorted at every level, so equal recipes compare equal whatever order their keys came in. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x));
}
