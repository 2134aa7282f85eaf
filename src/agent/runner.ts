// Runs accepted jobs: heavy ones one at a time (they own the CPU), light ones (cancel, config) at once. Every job
// is on disk (jobstore.ts) from the moment it is accepted until its end is in the outbox, so a crash never loses
// one: after a restart, queued jobs run, and a job that was running runs again or, after `maxAttempts` runs the
// agent died under, ends FAILED with the reason. Duplicates are dropped, bad documents REJECTED (once: the id is
// remembered, so a redelivery is a duplicate, never a loop), timeouts and cancels abort the handler's signal.
import { EdgetuneError, errorMessage } from '../errors.js';
import type { Progress } from '../types.js';
import { systemClock, type Clock } from './clock.js';
import { parseJob, type HandlerMap, type JobDoc, type JobError, type JobState, type JobStatus } from './jobs.js';
import { replyFromRecord, replyToRecord, type JobRecord, type JobStore, type Reply } from './jobstore.js';
import type { Logger } from './log.js';
import type { VersionedDoc } from './transport.js';

/** Where the runner's output goes (the agent persists it in the outbox and publishes it). */
export interface JobSink {
  /** A status that does not end the job. A QoS 1 one must be on disk when the returned promise settles. */
  status(status: JobStatus, qos: 0 | 1, reply: Reply | undefined): Promise<void> | void;
  /**
   * The end of a job: its result (when it succeeded), terminal status and reply. The sink persists them, calls
   * `commit` (which records the job as ended) and only then lets them be sent.
   */
  terminal(job: JobDoc, status: JobStatus, result: VersionedDoc | undefined, reply: Reply | undefined, commit: () => Promise<void>): Promise<void>;
}

export interface RunnerSettings {
  /** Minimum gap between QoS 0 progress updates of one job. */
  progressIntervalMs: number;
  /** Timeout of a job that names no timeoutS. */
  defaultTimeoutS: number;
}

export interface RunnerContext {
  handlers: HandlerMap;
  sink: JobSink;
  store: JobStore;
  log: Logger;
  limits: { maxPayloadBytes: number; maxQueuedJobs: number };
  clock?: Clock;
  settings?: Partial<RunnerSettings>;
  /** Runs of one job the agent may die under before it ends FAILED. */
  maxAttempts?: number;
  /** How long an aborted handler may take to return before the runner gives up on it and moves on. */
  abortGraceMs?: number;
  /** @deprecated use settings.progressIntervalMs */
  progressIntervalMs?: number;
}

export type ReceiveOutcome = 'queued' | 'rejected' | 'duplicate' | 'handled';

/** After a restart a resumed job's seq jumps this far, past any progress published before the crash. */
export const RESTART_SEQ_STEP = 1_000_000;

type AbortState = 'CANCELED' | 'TIMED_OUT' | 'STOPPED';

interface Entry {
  rec: JobRecord;
  job: JobDoc;
  reply?: Reply;
  light: boolean;
  ac: AbortController;
  aborted?: { state: AbortState; error: JobError };
  lastProgressAt: number;
  timers: unknown[];
  abandon?: () => void;
}

/** A job error with a code outside EdgetuneError's set (e.g. DEPLOY_REFUSED). */
export class AgentJobError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'AgentJobError';
  }
}

export class JobRunner {
  private readonly clock: Clock;
  private readonly queue: Entry[] = [];
  private heavy: Entry | undefined;
  private readonly lights = new Set<Entry>();
  private readonly runs = new Set<Promise<void>>();
  private stopped = false;
  private settings: RunnerSettings;

  constructor(private readonly ctx: RunnerContext) {
    this.clock = ctx.clock ?? systemClock;
    this.settings = {
      progressIntervalMs: ctx.settings?.progressIntervalMs ?? ctx.progressIntervalMs ?? 1000,
      defaultTimeoutS: ctx.settings?.defaultTimeoutS ?? 6 * 3600,
    };
  }

  /** Changes settings that a `config` job may change while the agent runs. */
  configure(s: Partial<RunnerSettings>): void {
    this.settings = { ...this.settings, ...s };
  }

  /** The jobs running now and the ids waiting, for health reports. */
  snapshot(): { running?: { id: string; type: string }; light: string[]; queued: string[] } {
    const r = this.heavy;
    return { running: r && { id: r.job.id, type: r.job.type }, light: [...this.lights].map((e) => e.job.id), queued: this.queue.map((e) => e.job.id) };
  }

  /**
   * Takes the jobs a previous run left on disk: queued ones queue again; one that was running runs again (its
   * handler must be idempotent) or ends FAILED when it may not or has used its attempts.
   */
  async restore(records: JobRecord[]): Promise<void> {
    const maxAttempts = this.ctx.maxAttempts ?? 2;
    for (const rec of records) {
      const entry = this.entry(rec);
      const spec = this.ctx.handlers[rec.job.type];
      // Progress published before the crash used seq numbers the record never saw.
      rec.seq += RESTART_SEQ_STEP;
      if (!spec) {
        await this.end(entry, 'FAILED', { code: 'JOB_INVALID', message: `/type: this agent no longer runs '${rec.job.type}' jobs` });
        continue;
      }
      if (rec.state === 'IN_PROGRESS') {
        const why = `the agent stopped while this job ran (crash, kill or power loss) during attempt ${rec.attempts}`;
        if (spec.resumable === false) {
          await this.end(entry, 'FAILED', { code: 'AGENT_RESTARTED', message: `${why}; '${rec.job.type}' jobs are not re-run: resend with a new id` });
          continue;
        }
        if (rec.attempts >= maxAttempts) {
          await this.end(entry, 'FAILED', { code: 'AGENT_RESTARTED', message: `${why} of ${maxAttempts} (jobs.maxAttempts); not run again` });
          continue;
        }
        this.ctx.log.warn('resuming a job interrupted by an agent restart', { id: rec.job.id, attempt: rec.attempts + 1 });
      }
      if (entry.light) this.start(entry);
      else this.queue.push(entry);
    }
    this.pump();
  }

  /** Takes one raw job message. `topicId` is the id from the topic it arrived on. Resolves once it is on disk. */
  async receive(payload: Uint8Array, topicId: string | undefined, reply?: Reply): Promise<ReceiveOutcome> {
    const { log, store } = this.ctx;
    const parsed = parseJob(payload, topicId, { maxPayloadBytes: this.ctx.limits.maxPayloadBytes, handlers: this.ctx.handlers });
    const id = parsed.ok ? parsed.job.id : parsed.id;
    if (id === undefined) {
      log.warn('job dropped: no usable id in the payload or the topic, so nowhere to reply', { reason: parsed.ok ? '' : parsed.reason });
      return 'rejected';
    }
    if (store.known(id)) {
      // QoS 1 redelivery or a replay; the first copy already got (or will get) its answer.
      log.info('job id seen before; not running it again', { id });
      return 'duplicate';
    }
    const job: JobDoc = parsed.ok ? parsed.job : { v: 1, id, type: '?', params: {} };
    const entry = this.entry(this.newRecord(job, reply));
    if (!parsed.ok) {
      log.warn('job rejected', { id, reason: parsed.reason });
      await this.end(entry, 'REJECTED', { code: 'JOB_INVALID', message: parsed.reason }, undefined, () => store.remember(id));
      return 'rejected';
    }
    if (job.type === 'cancel') {
      await this.cancel(entry);
      return 'handled';
    }
    if (!entry.light && this.queue.length >= this.ctx.limits.maxQueuedJobs) {
      const message = `queue full: ${this.queue.length} jobs waiting (limits.maxQueuedJobs); resend later with a new id`;
      await this.end(entry, 'REJECTED', { code: 'JOB_INVALID', message }, undefined, () => store.remember(id));
      return 'rejected';
    }
    await store.save(entry.rec);
    await this.publish(entry, 'QUEUED', undefined, { step: 'queued', pct: 0 });
    log.info('job queued', { id, type: job.type, position: entry.light ? 0 : this.queue.length + 1 });
    if (entry.light) this.start(entry);
    else {
      this.queue.push(entry);
      this.pump();
    }
    return 'queued';
  }

  /**
   * Stops taking work: running jobs are aborted and stay on disk as running, so the next start runs them again
   * (this interruption does not count as an attempt); queued jobs stay queued. Nothing terminal is published.
   */
  async stop(reason = 'agent stopping'): Promise<void> {
    this.stopped = true;
    for (const e of [this.heavy, ...this.lights]) if (e) this.abort(e, 'STOPPED', { code: 'CANCELED', message: reason });
    await Promise.all([...this.runs]);
  }

  private newRecord(job: JobDoc, reply: Reply | undefined): JobRecord {
    return {
      v: 1, job, ...(reply ? { reply: replyToRecord(reply) } : {}), state: 'QUEUED', seq: 0, attempts: 0,
      order: this.ctx.store.nextOrder(), receivedAt: new Date(this.clock.now()).toISOString(),
    };
  }

  private entry(rec: JobRecord): Entry {
    const light = this.ctx.handlers[rec.job.type]?.light === true;
    return { rec, job: rec.job, reply: replyFromRecord(rec.reply), light, ac: new AbortController(), lastProgressAt: this.clock.now(), timers: [] };
  }

  private pump(): void {
    if (this.heavy || this.stopped) return;
    const next = this.queue.shift();
    if (next) this.start(next);
  }

  private start(entry: Entry): void {
    if (this.stopped) return;
    if (entry.light) this.lights.add(entry);
    else this.heavy = entry;
    const done: Promise<void> = this.run(entry)
      .catch((e) => this.ctx.log.error(`job ${entry.job.id}: the runner failed around it`, { error: errorMessage(e) }))
      .finally(() => {
        this.runs.delete(done);
        for (const t of entry.timers) this.clock.clearTimeout(t);
        if (entry.light) this.lights.delete(entry);
        else this.heavy = undefined;
        this.pump();
      });
    this.runs.add(done);
  }

  private async run(entry: Entry): Promise<void> {
    const { job, rec } = entry;
    const { log, store } = this.ctx;
    const spec = this.ctx.handlers[job.type];
    rec.attempts++;
    rec.state = 'IN_PROGRESS';
    rec.startedAt = new Date(this.clock.now()).toISOString();
    await store.save(rec);
    log.info('job started', { id: job.id, type: job.type, attempt: rec.attempts });
    entry.lastProgressAt = this.clock.now();
    const step = rec.attempts > 1 ? `resuming after an agent restart (attempt ${rec.attempts})` : 'starting';
    await this.publish(entry, 'IN_PROGRESS', undefined, { step, pct: 0 });
    const timeoutS = job.timeoutS ?? this.settings.defaultTimeoutS;
    entry.timers.push(this.clock.setTimeout(() => {
      this.abort(entry, 'TIMED_OUT', { code: 'TIMEOUT', message: `job ran longer than its timeoutS (${timeoutS} s)` });
    }, timeoutS * 1000));
    const abandoned = new Promise<{ abandoned: true }>((resolve) => (entry.abandon = () => resolve({ abandoned: true })));
    const handled = Promise.resolve()
      .then(() => spec.run(job.params, { signal: entry.ac.signal, onProgress: (p) => this.progress(entry, p), jobId: job.id, attempt: rec.attempts }))
      .then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
    const outcome = await Promise.race([handled, abandoned]);

    if (entry.aborted) {
      if ('abandoned' in outcome) log.warn(`handler for job ${job.id} ignored its abort signal; moving on without it`, { id: job.id });
      if (entry.aborted.state === 'STOPPED') {
        // Not the job's fault: the next start runs it again without spending an attempt.
        rec.attempts--;
        await store.save(rec);
        log.info('job interrupted by stop; it runs again at the next start', { id: job.id });
        return;
      }
      log.info('job aborted', { id: job.id, state: entry.aborted.state });
      await this.end(entry, entry.aborted.state, entry.aborted.error);
    } else if ('abandoned' in outcome) {
      return; // unreachable: abandon is only armed by abort()
    } else if (outcome.ok) {
      log.info('job succeeded', { id: job.id });
      await this.end(entry, 'SUCCEEDED', undefined, versioned(outcome.value));
    } else {
      const error = toJobError(outcome.error);
      log.warn('job failed', { id: job.id, ...error });
      await this.end(entry, 'FAILED', error);
    }
  }

  private abort(entry: Entry, state: AbortState, error: JobError): void {
    if (entry.aborted) return;
    entry.aborted = { state, error };
    entry.ac.abort(new EdgetuneError(state === 'TIMED_OUT' ? 'TIMEOUT' : 'CANCELED', error.message));
    const grace = this.ctx.abortGraceMs ?? 5000;
    entry.timers.push(this.clock.setTimeout(() => entry.abandon?.(), grace));
  }

  private async cancel(me: Entry): Promise<void> {
    const target = (me.job.params as { id: string }).id;
    const error = { code: 'CANCELED', message: `canceled by job ${me.job.id}` };
    let previousState: JobState | undefined;
    const qi = this.queue.findIndex((e) => e.job.id === target);
    const running = [this.heavy, ...this.lights].find((e) => e?.job.id === target && !e.aborted);
    if (qi >= 0) {
      const [e] = this.queue.splice(qi, 1);
      previousState = 'QUEUED';
      await this.end(e, 'CANCELED', error);
    } else if (running) {
      previousState = 'IN_PROGRESS';
      this.abort(running, 'CANCELED', error);
    }
    const remember = () => this.ctx.store.remember(me.job.id);
    if (!previousState) {
      await this.end(me, 'FAILED', { code: 'JOB_INVALID', message: `/params/id: no queued or running job '${target}'` }, undefined, remember);
      return;
    }
    this.ctx.log.info('job canceled', { id: target, by: me.job.id, previousState });
    await this.end(me, 'SUCCEEDED', undefined, { v: 1, canceled: target, previousState }, remember);
  }

  private progress(entry: Entry, p: Progress): void {
    if (entry.aborted || !(entry === this.heavy || this.lights.has(entry))) return;
    const now = this.clock.now();
    if (now - entry.lastProgressAt < this.settings.progressIntervalMs) return;
    entry.lastProgressAt = now;
    void this.publish(entry, 'IN_PROGRESS', undefined, p, 0);
  }

  /** Ends a job: terminal status (and result) persisted, the job recorded as ended, then sent. */
  private async end(entry: Entry, state: JobState, error?: JobError, result?: VersionedDoc, commit?: () => Promise<void>): Promise<void> {
    const p = state === 'SUCCEEDED' ? { step: 'done', pct: 100 } : undefined;
    const status = this.status(entry, state, error, p);
    const finish = commit ?? (() => this.ctx.store.finish(entry.job.id));
    await this.ctx.sink.terminal(entry.job, status, result, entry.reply, finish);
  }

  private async publish(entry: Entry, state: JobState, error?: JobError, p?: Progress, qos: 0 | 1 = 1): Promise<void> {
    const status = this.status(entry, state, error, p);
    await this.ctx.sink.status(status, qos, entry.reply);
  }

  private status(entry: Entry, state: JobState, error?: JobError, p?: Progress): JobStatus {
    const pct = Math.max(0, Math.min(100, Number.isFinite(p?.pct) ? p!.pct : 0));
    const progress: JobStatus['progress'] = { step: p?.step ?? state.toLowerCase(), pct };
    if (p?.etaS !== undefined && Number.isFinite(p.etaS)) progress.etaS = Math.max(0, Math.round(p.etaS));
    const status: JobStatus = { v: 1, id: entry.job.id, state, progress, seq: ++entry.rec.seq, ts: new Date(this.clock.now()).toISOString() };
    if (error) status.error = error;
    return status;
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
  if (e instanceof EdgetuneError || e instanceof AgentJobError) return { code: e.code, message: e.message };
  const code = (e as { code?: unknown })?.code;
  // Errors from a worker process keep their code (see worker.ts).
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code)) return { code, message: errorMessage(e) };
  return { code: 'HANDLER_ERROR', message: errorMessage(e) };
}
