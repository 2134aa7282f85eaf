// Rollouts: deploy to a canary group first, then to the rest in batches at a set pace; after every wave the
// failure rate so far is checked, and past the threshold the rollout stops and every device it changed is rolled
// back. Planning is pure; running it is dispatch() wave by wave. Each device's outcome is tagged with its phase
// and wave, so the results store keeps the whole story.
import { sleep } from '../agent/clock.js';
import { UsageError } from '../errors.js';
import { dispatch, FAILED_VERDICTS, type FleetJobSpec } from './dispatch.js';
import type { FleetSession } from './session.js';
import type { TrackedJob, TrackerChange } from './tracker.js';

/** A number of devices, or a share of them (`{ percent: 10 }`). */
export type Amount = { count: number } | { percent: number };

export interface RolloutPolicy {
  canary: Amount;
  /** Devices per batch after the canary. */
  batch: Amount;
  /** Pause between waves (after the canary too), seconds. */
  intervalS: number;
  /** 0..1: stop and roll back when failed / answered, over every wave so far, goes above this. */
  maxFailureRate: number;
}

export const DEFAULT_POLICY: RolloutPolicy = { canary: { count: 1 }, batch: { percent: 100 }, intervalS: 0, maxFailureRate: 0.05 };

/** `3` → 3 devices, `10%` → a tenth of them. */
export function parseAmount(s: string | number, what: string): Amount {
  const text = String(s).trim();
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text);
  if (!m) throw new UsageError(`${what} '${text}': give a device count (5) or a percentage (10%)`);
  const n = Number(m[1]);
  if (m[2]) {
    if (n <= 0 || n > 100) throw new UsageError(`${what} '${text}': a percentage must be above 0 and at most 100`);
    return { percent: n };
  }
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${what} '${text}': a count must be a whole number ≥ 0`);
  return { count: n };
}

function resolveAmount(a: Amount, total: number): number {
  return 'count' in a ? Math.min(a.count, total) : Math.min(total, Math.max(1, Math.ceil((total * a.percent) / 100)));
}

export interface Wave {
  index: number;
  phase: 'canary' | 'batch';
  devices: string[];
}

/** Devices → waves: the canary group (when the policy asks for one), then batches of the batch size. */
export function planRollout(devices: string[], policy: RolloutPolicy): Wave[] {
  if (!(policy.maxFailureRate >= 0 && policy.maxFailureRate <= 1)) throw new UsageError(`max failure rate ${policy.maxFailureRate}: give a fraction between 0 and 1`);
  const waves: Wave[] = [];
  const canary = resolveAmount(policy.canary, devices.length);
  if (canary > 0) waves.push({ index: 0, phase: 'canary', devices: devices.slice(0, canary) });
  const size = Math.max(1, resolveAmount(policy.batch, devices.length));
  for (let i = canary; i < devices.length; i += size) waves.push({ index: waves.length, phase: 'batch', devices: devices.slice(i, i + size) });
  return waves;
}

export interface WaveOutcome extends Wave {
  succeeded: number;
  failed: number;
  skipped: number;
}

export interface RolloutResult {
  runId: string;
  status: 'completed' | 'aborted';
  /** Why the rollout stopped early (the failure rate and the threshold). */
  reason?: string;
  waves: WaveOutcome[];
  /** Devices of waves never started because the rollout stopped. */
  notReached: string[];
  deploys: TrackedJob[];
  rollbacks: TrackedJob[];
  /** Devices whose deploy never answered: their state is unknown and they were not rolled back. */
  unknown: string[];
}

export interface RolloutOptions {
  runId: string;
  devices: string[];
  deploy: FleetJobSpec;
  policy: RolloutPolicy;
  rollback?: FleetJobSpec;
  includeOffline?: boolean;
  signal?: AbortSignal;
  onChange?: (t: TrackedJob, what: TrackerChange) => void;
  onWave?: (w: WaveOutcome, rate: number) => void;
  /** Runs before a wave's deploy jobs go out, with its devices (e.g. to send them the model over MQTT). */
  beforeWave?: (devices: string[]) => Promise<void>;
}

export async function runRollout(session: FleetSession, opts: RolloutOptions): Promise<RolloutResult> {
  const waves = planRollout(opts.devices, opts.policy);
  const deploys: TrackedJob[] = [];
  const done: WaveOutcome[] = [];
  let failed = 0;
  let answered = 0;
  let reason: string | undefined;
  for (const w of waves) {
    if (w.index > 0 && opts.policy.intervalS > 0) await sleep(session.clock, opts.policy.intervalS * 1000, opts.signal);
    await opts.beforeWave?.(w.devices);
    const entries = await dispatch(session, {
      jobId: opts.runId, devices: w.devices, spec: opts.deploy, includeOffline: opts.includeOffline,
      tags: { runId: opts.runId, phase: w.phase, wave: w.index }, signal: opts.signal, onChange: opts.onChange,
    });
    deploys.push(...entries);
    const f = entries.filter((e) => e.verdict && FAILED_VERDICTS.has(e.verdict)).length;
    const ok = entries.filter((e) => e.verdict === 'SUCCEEDED').length;
    failed += f;
    answered += f + ok;
    const outcome: WaveOutcome = { ...w, succeeded: ok, failed: f, skipped: entries.length - f - ok };
    done.push(outcome);
    const rate = answered ? failed / answered : 0;
    opts.onWave?.(outcome, rate);
    if (rate > opts.policy.maxFailureRate) {
      reason = `failure rate ${(rate * 100).toFixed(1)}% (${failed} of ${answered}) after the ${w.phase}${w.phase === 'batch' ? ` (wave ${w.index})` : ''} is above the ${(opts.policy.maxFailureRate * 100).toFixed(1)}% threshold`;
      break;
    }
  }
  const notReached = waves.slice(done.length).flatMap((w) => w.devices);
  let rollbacks: TrackedJob[] = [];
  if (reason) {
    // Only devices that reported the new deployment are rolled back: a failed deploy left the old one running,
    // and one that answered `unchanged` already ran this model before the rollout, so a rollback would move it
    // to an older model than it had.
    const changed = deploys.filter((e) => e.verdict === 'SUCCEEDED' && !wasUnchanged(e)).map((e) => e.device);
    if (changed.length) {
      rollbacks = await dispatch(session, {
        jobId: `${opts.runId}-rb`, devices: changed, spec: opts.rollback ?? { type: 'rollback', params: { reason } },
        includeOffline: true, tags: { runId: opts.runId, phase: 'rollback' }, onChange: opts.onChange,
      });
    }
  }
  return {
    runId: opts.runId,
    status: reason ? 'aborted' : 'completed',
    ...(reason ? { reason } : {}),
    waves: done,
    notReached,
    deploys,
    rollbacks,
    unknown: deploys.filter((e) => e.verdict === 'NO_RESPONSE').map((e) => e.device),
  };
}

/** The device already ran the model it was sent (the agent answers `unchanged: true` and changes nothing). */
function wasUnchanged(e: TrackedJob): boolean {
  const r = e.result as { unchanged?: unknown } | undefined;
  return typeof r === 'object' && r !== null && r.unchanged === true;
}
