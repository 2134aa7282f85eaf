// Follows jobs the controller sent: folds each device's status and result messages into one entry per
// (device, job id), decides when an entry is finished, and gives up on devices that stay silent past a deadline.
import { systemClock, type Clock } from '../agent/clock.js';
import { TERMINAL_STATES, type JobDoc, type JobError, type JobState } from '../agent/jobs.js';
import { TypedEvents } from '../agent/events.js';
import { CanceledError } from '../errors.js';
import type { FleetMessage } from './link.js';

/** A device job's final verdict: the device's own terminal state, or the controller's. */
export type Verdict = JobState | 'SKIPPED' | 'NO_RESPONSE';

export interface TrackedJob {
  device: string;
  jobId: string;
  type: string;
  timeoutS: number;
  sentAt: number;
  startedAt?: number;
  /** The newest status by seq (QoS 0 progress can overtake QoS 1 states); 'SENT' until the device answers. */
  state: JobState | 'SENT';
  seq: number;
  progress?: { step: string; pct: number; etaS?: number };
  error?: JobError;
  result?: unknown;
  /** Where the controller files it: run id, rollout phase and wave. */
  tags: JobTags;
  verdict?: Verdict;
  finishedAt?: number;
}

export interface JobTags {
  runId?: string;
  /** Rollouts: canary | batch | rollback; distributed tunes: share. */
  phase?: string;
  wave?: number;
}

export type TrackerChange = 'status' | 'progress' | 'result' | 'done';
export type TrackerEvents = { change: [job: TrackedJob, what: TrackerChange] };

const key = (device: string, jobId: string) => `${device}\u0000${jobId}`;

export interface TrackerOptions {
  clock?: Clock;
  /** Added to a job's timeoutS before the controller stops waiting for it. */
  graceS?: number;
  /** How often deadlines are checked. */
  tickMs?: number;
}

export class JobTracker {
  readonly events = new TypedEvents<TrackerEvents>();
  private readonly jobs = new Map<string, TrackedJob>();
  private readonly clock: Clock;

  constructor(private readonly opts: TrackerOptions = {}) {
    this.clock = opts.clock ?? systemClock;
  }

  get(device: string, jobId: string): TrackedJob | undefined {
    return this.jobs.get(key(device, jobId));
  }

  /** Starts following `job` on `device` (call before publishing it, so no early reply is missed). */
  add(device: string, job: JobDoc, defaultTimeoutS: number, tags: JobTags = {}): TrackedJob {
    const t: TrackedJob = { device, jobId: job.id, type: job.type, timeoutS: job.timeoutS ?? defaultTimeoutS, sentAt: this.clock.now(), state: 'SENT', seq: 0, tags };
    this.jobs.set(key(device, job.id), t);
    return t;
  }

  /** A job the controller decided not to send (the device was offline). */
  skip(device: string, job: JobDoc, why: string, tags: JobTags = {}): TrackedJob {
    const t = this.add(device, job, 0, tags);
    this.finish(t, 'SKIPPED', { code: 'SKIPPED', message: why });
    return t;
  }

  forget(entries: TrackedJob[]): void {
    for (const e of entries) this.jobs.delete(key(e.device, e.jobId));
  }

  /** Routes a job status or result message; messages about jobs not followed are ignored. */
  onMessage(msg: FleetMessage): void {
    if (msg.at.kind !== 'jobStatus' && msg.at.kind !== 'jobResult') return;
    const t = this.jobs.get(key(msg.at.device, msg.at.jobId));
    if (!t || t.verdict) return;
    const doc = msg.doc as Record<string, any> | null;
    if (!doc || typeof doc !== 'object') return;
    if (msg.at.kind === 'jobResult') {
      t.result = doc;
      this.events.emit('change', t, 'result');
    } else {
      const seq = typeof doc.seq === 'number' ? doc.seq : 0;
      if (seq <= t.seq && t.state !== 'SENT') return; // an overtaken progress update or a redelivered copy
      const prev = t.state;
      t.seq = seq;
      t.state = doc.state as JobState;
      if (doc.progress && typeof doc.progress === 'object') t.progress = doc.progress;
      if (doc.error) t.error = doc.error as JobError;
      if (t.state === 'IN_PROGRESS' && t.startedAt === undefined) t.startedAt = this.clock.now();
      this.events.emit('change', t, prev === t.state ? 'progress' : 'status');
    }
    this.settle(t);
  }

  /** A job finishes when its state is terminal and, for SUCCEEDED, its result has arrived too. */
  private settle(t: TrackedJob): void {
    if (t.verdict || t.state === 'SENT' || !TERMINAL_STATES.has(t.state)) return;
    if (t.state === 'SUCCEEDED' && t.result === undefined) return;
    this.finish(t, t.state);
  }

  private finish(t: TrackedJob, verdict: Verdict, error?: JobError): void {
    t.verdict = verdict;
    t.finishedAt = this.clock.now();
    if (error) t.error = error;
    this.events.emit('change', t, 'done');
  }

  /** Deadline of a job: its timeout (from when it started, or was sent if it never did) plus the grace. */
  deadline(t: TrackedJob): number {
    return (t.startedAt ?? t.sentAt) + (t.timeoutS + (this.opts.graceS ?? 30)) * 1000;
  }

  /** Gives up on unfinished jobs past their deadline (verdict NO_RESPONSE); returns them. */
  expire(entries: Iterable<TrackedJob> = this.jobs.values()): TrackedJob[] {
    const now = this.clock.now();
    const out: TrackedJob[] = [];
    for (const t of entries) {
      if (t.verdict || now < this.deadline(t)) continue;
      const detail = t.state === 'SUCCEEDED'
        ? 'the device reported SUCCEEDED but its result never arrived'
        : t.state === 'SENT' ? 'the device never acknowledged the job' : `last state ${t.state}${t.progress ? ` (${t.progress.step})` : ''}`;
      this.finish(t, 'NO_RESPONSE', { code: 'NO_RESPONSE', message: `no answer within ${t.timeoutS + (this.opts.graceS ?? 30)} s: ${detail}` });
      out.push(t);
    }
    return out;
  }

  /**
   * Resolves when every entry has a verdict (expiring silent ones on the way), or, when `until` is given, when
   * it says so (it is asked after every finished job and on every tick). Rejects with CanceledError when the
   * signal fires.
   */
  wait(entries: TrackedJob[], opts: { signal?: AbortSignal; until?: () => boolean; onTick?: () => void } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: unknown;
      const done = () => (opts.until ? opts.until() : entries.every((e) => e.verdict));
      const cleanup = () => {
        this.clock.clearTimeout(timer);
        off();
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const check = () => {
        if (!done()) return false;
        cleanup();
        resolve();
        return true;
      };
      const onAbort = () => {
        cleanup();
        reject(new CanceledError('waiting for device jobs'));
      };
      const tick = () => {
        opts.onTick?.();
        this.expire(entries);
        if (!check()) timer = this.clock.setTimeout(tick, this.opts.tickMs ?? 250);
      };
      const off = this.events.on('change', (_t, what) => { if (what === 'done') check(); });
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (!check()) timer = this.clock.setTimeout(tick, this.opts.tickMs ?? 250);
    });
  }
}
