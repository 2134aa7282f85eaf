// Runs accepted jobs one at a time (they are heavy: tuning owns the CPU), publishing each state change through
// a sink. Duplicates are dropped, bad documents rejected, timeouts and cancels abort the handler's signal.
import { EdgetuneError, errorMessage } from '../errors.js';
import type { Progress } from '../types.js';
import { systemClock, type Clock } from './clock.js';
import { parseJob, type HandlerMap, type JobDoc, type JobError, type JobState, type JobStatus } from './jobs.js';
import type { Logger } from './log.js';
import type { SeenJobs } from './state.js';
import type { VersionedDoc } from './transport.js';

/** Where the runner's output goes (the agent publishes it over MQTT). `meta` is what receive() was given. */
export interface JobSink {
  status(status: JobStatus, qos: 0 | 1, meta: unknown): void;
  result(job: JobDoc, doc: VersionedDoc, meta: unknown): void;
}

export interface RunnerContext {
  handlers: HandlerMap;
  sink: JobSink;
  seen: SeenJobs;
  log: Logger;
  limits: { maxPayloadBytes: number; maxQueuedJobs: number };
  clock?: Clock;
  /** Minimum gap between QoS 0 progress updates of one job. */
  progressIntervalMs?: number;
  /** How long an aborted handler may take to return before the runner gives up on it and moves on. */
  abortGraceMs?: number;
}

export type ReceiveOutcome = 'queued' | 'rejected' | 'duplicate' | 'handled' | 'stopped';

type AbortState = 'CANCELED' | 'TIMED_OUT';

interface Entry {
  job: JobDoc;
  meta: unknown;
  seq: number;
  ac: AbortController;
  aborted?: { state: AbortState; error: JobError };
  lastProgressAt: number;
  timers: unknown[];
  abandon?: () => void;
}

export class JobRunner {
  private readonly clock: Clock;
  private readonly queue: Entry[] = [];
  private running: Entry | undefined;
  private runDone: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly ctx: RunnerContext) {
    this.clock = ctx.clock ?? systemClock;
  }

  /** The job running now and the ids waiting, for health reports. */
  snapshot(): { running?: { id: string; type: string }; queued: string[] } {
    const r = this.running;
    return { running: r && { id: r.job.id, type: r.job.type }, queued: this.queue.map((e) => e.job.id) };
  }

  /** Takes one raw job message. `topicId` is the id from the topic it arrived on. */
  async receive(payload: Uint8Array, topicId: string | undefined, meta?: unknown): Promise<ReceiveOutcome> {
    const { log } = this.ctx;
    if (this.stopped) {
      log.warn('agent stopping; job message ignored', { topic: topicId });
      return 'stopped';
    }
    const parsed = parseJob(payload, topicId, { maxPayloadBytes: this.ctx.limits.maxPayloadBytes, handlers: this.ctx.handlers });
    const id = parsed.ok ? parsed.job.id : parsed.id;
    if (id === undefined) {
      log.warn('job dropped: no usable id in the payload or the topic, so nowhere to reply', { reason: parsed.ok ? '' : parsed.reason });
      return 'rejected';
    }
    if (this.ctx.seen.has(id)) {
      // QoS 1 redelivery or a replay; the first copy already got its answer.
      log.info('job id seen before; not running it again', { id });
      return 'duplicate';
    }
    await this.ctx.seen.add(id);
    if (!parsed.ok) {
      log.warn('job rejected', { id, reason: parsed.reason });
      this.publishStatus(this.entry({ v: 1, id, type: '?', params: {} }, meta), 'REJECTED', { code: 'JOB_INVALID', message: parsed.reason });
      return 'rejected';
    }
    const job = parsed.job;
    if (job.type === 'cancel') {
      this.cancel(job, meta);
      return 'handled';
    }
    const entry = this.entry(job, meta);
    if (this.queue.length >= this.ctx.limits.maxQueuedJobs) {
      const message = `queue full: ${this.queue.length} jobs waiting (limits.maxQueuedJobs); resend later with a new id`;
      this.publishStatus(entry, 'REJECTED', { code: 'JOB_INVALID', message });
      return 'rejected';
    }
    this.queue.push(entry);
    log.info('job queued', { id, type: job.type, position: this.queue.length });
    this.publishStatus(entry, 'QUEUED', undefined, { step: 'queued', pct: 0 });
    this.pump();
    return 'queued';
  }

  /** Cancels queued jobs, aborts the running one and waits for it to finish (bounded by the abort grace). */
  async stop(reason = 'agent stopping'): Promise<void> {
    this.stopped = true;
    for (const e of this.queue.splice(0)) {
      this.publishStatus(e, 'CANCELED', { code: 'CANCELED', message: `${reason} before the job ran; resend it with a new id` });
    }
    if (this.running) this.abort(this.running, 'CANCELED', { code: 'CANCELED', message: reason });
    await this.runDone;
  }

  private entry(job: JobDoc, meta: unknown): Entry {
    return { job, meta, seq: 0, ac: new AbortController(), lastProgressAt: this.clock.now(), timers: [] };
  }

  private pump(): void {
    if (this.running || this.stopped) return;
    const next = this.queue.shift();
    if (!next) return;
    this.running = next;
    this.runDone = this.run(next).finally(() => {
      this.running = undefined;
      for (const t of next.timers) this.clock.clearTimeout(t);
      this.pump();
    });
  }

  private async run(entry: Entry): Promise<void> {
    const { job } = entry;
    const { log } = this.ctx;
    const spec = this.ctx.handlers[job.type];
    log.info('job started', { id: job.id, type: job.type });
    entry.lastProgressAt = this.clock.now();
    this.publishStatus(entry, 'IN_PROGRESS', undefined, { step: 'starting', pct: 0 });
    if (job.timeoutS !== undefined) {
      const ms = job.timeoutS * 1000;
      entry.timers.push(this.clock.setTimeout(() => {
        this.abort(entry, 'TIMED_OUT', { code: 'TIMEOUT', message: `job ran longer than its timeoutS (${job.timeoutS} s)` });
      }, ms));
    }
    const abandoned = new Promise<{ abandoned: true }>((resolve) => (entry.abandon = () => resolve({ abandoned: true })));
    const handled = Promise.resolve()
      .then(() => spec.run(job.params, { signal: entry.ac.signal, onProgress: (p) => this.progress(entry, p) }))
      .then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
    const outcome = await Promise.race([handled, abandoned]);

    if (entry.aborted) {
      if ('abandoned' in outcome) log.warn(`handler for job ${job.id} ignored its abort signal; moving on without it`, { id: job.id });
      log.info('job aborted', { id: job.id, state: entry.aborted.state });
      this.publishStatus(entry, entry.aborted.state, entry.aborted.error);
    } else if ('abandoned' in outcome) {
      return; // unreachable: abandon is only armed by abort()
    } else if (outcome.ok) {
      this.ctx.sink.result(job, versioned(outcome.value), entry.meta);
      log.info('job succeeded', { id: job.id });
      this.publishStatus(entry, 'SUCCEEDED', undefined, { step: 'done', pct: 100 });
    } else {
      const error = toJobError(outcome.error);
      log.warn('job failed', { id: job.id, ...error });
      this.publishStatus(entry, 'FAILED', error);
    }
  }

  private abort(entry: Entry, state: AbortState, error: JobError): void {
    if (entry.aborted) return;
    entry.aborted = { state, error };
    entry.ac.abort(new EdgetuneError(state === 'TIMED_OUT' ? 'TIMEOUT' : 'CANCELED', error.message));
    const grace = this.ctx.abortGraceMs ?? 5000;
    entry.timers.push(this.clock.setTimeout(() => entry.abandon?.(), grace));
  }

  private cancel(cancelJob: JobDoc, meta: unknown): void {
    const target = (cancelJob.params as { id: string }).id;
    const me = this.entry(cancelJob, meta);
    const error = { code: 'CANCELED', message: `canceled by job ${cancelJob.id}` };
    let previousState: JobState | undefined;
    const qi = this.queue.findIndex((e) => e.job.id === target);
    if (qi >= 0) {
      const [e] = this.queue.splice(qi, 1);
      previousState = 'QUEUED';
      this.publishStatus(e, 'CANCELED', error);
    } else if (this.running?.job.id === target && !this.running.aborted) {
      previousState = 'IN_PROGRESS';
      this.abort(this.running, 'CANCELED', error);
    }
    if (!previousState) {
      this.publishStatus(me, 'FAILED', { code: 'JOB_INVALID', message: `/params/id: no queued or running job '${target}'` });
      return;
    }
    this.ctx.log.info('job canceled', { id: target, by: cancelJob.id, previousState });
    this.ctx.sink.result(cancelJob, { v: 1, canceled: target, previousState }, meta);
    this.publishStatus(me, 'SUCCEEDED', undefined, { step: 'done', pct: 100 });
  }

  private progress(entry: Entry, p: Progress): void {
    if (entry !== this.running || entry.aborted) return;
    const now = this.clock.now();
    if (now - entry.lastProgressAt < (this.ctx.progressIntervalMs ?? 1000)) return;
    entry.lastProgressAt = now;
    this.publishStatus(entry, 'IN_PROGRESS', undefined, p, 0);
  }

  private publishStatus(entry: Entry, state: JobState, error?: JobError, p?: Progress, qos: 0 | 1 = 1): void {
    const pct = Math.max(0, Math.min(100, Number.isFinite(p?.pct) ? p!.pct : 0));
    const progress: JobStatus['progress'] = { step: p?.step ?? state.toLowerCase(), pct };
    if (p?.etaS !== undefined && Number.isFinite(p.etaS)) progress.etaS = Math.max(0, Math.round(p.etaS));
    const status: JobStatus = { v: 1, id: entry.job.id, state, progress, seq: ++entry.seq, ts: new Date(this.clock.now()).toISOString() };
    if (error) status.error = error;
    this.ctx.sink.status(status, qos, entry.meta);
  }
}

/** Results go out as versioned documents; a handler that returns a bare value gets wrapped. */
function versioned(value: unknown): VersionedDoc {
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as VersionedDoc).v === 'number') {
    return value as VersionedDoc;
  }
  return { v: 1, value: value ?? null };
}

export function toJobError(e: unknown): JobError {
  if (e instanceof EdgetuneError) return { code: e.code, message: e.message };
  return { code: 'HANDLER_ERROR', message: errorMessage(e) };
}
