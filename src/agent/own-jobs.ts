// `edgetune agent --once` sends a job to its own device through the broker, exactly as a controller would, and
// waits for the answer to come back the same way. This keeps track of those jobs.
import { CanceledError, errorMessage } from '../errors.js';
import { TERMINAL_STATES, type JobDoc, type JobStatus } from './jobs.js';
import type { Logger } from './log.js';
import { topics } from './topics.js';
import type { Transport } from './transport.js';

type JobWatcher = { status?: JobStatus; result?: unknown; onChange: () => void };

export class OwnJobs {
  private readonly watchers = new Map<string, JobWatcher>();

  constructor(private readonly log: Logger) {}

  async submit(t: Transport, base: string, job: JobDoc, signal?: AbortSignal): Promise<{ status: JobStatus; result?: unknown }> {
    const filter = `${topics.job(base, job.id)}/+`;
    const watcher: JobWatcher = { onChange: () => {} };
    this.watchers.set(job.id, watcher);
    try {
      await t.subscribe(filter, 1);
      const done = new Promise<{ status: JobStatus; result?: unknown }>((resolve, reject) => {
        const onAbort = () => reject(new CanceledError(`waiting for job ${job.id}`));
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        watcher.onChange = () => {
          const s = watcher.status;
          // The result is published before SUCCEEDED; wait for both.
          if (s && TERMINAL_STATES.has(s.state) && (s.state !== 'SUCCEEDED' || watcher.result !== undefined)) {
            signal?.removeEventListener('abort', onAbort);
            resolve({ status: s, result: watcher.result });
          }
        };
      });
      await t.publish(topics.job(base, job.id), job, { qos: 1 });
      return await done;
    } finally {
      this.watchers.delete(job.id);
      await t.unsubscribe(filter).catch(() => {});
    }
  }

  /** A message on a watched job's status or result topic; anything else is ignored. */
  onMessage(topic: string, payload: Buffer): void {
    const m = /\/jobs\/([^/]+)\/(status|result)$/.exec(topic);
    const watcher = m && this.watchers.get(m[1]);
    if (!m || !watcher) return;
    try {
      const doc = JSON.parse(payload.toString('utf8'));
      if (m[2] === 'status') {
        // QoS 0 progress can overtake; keep the newest by seq.
        if (!watcher.status || doc.seq > watcher.status.seq) watcher.status = doc as JobStatus;
      } else watcher.result = doc;
      watcher.onChange();
    } catch (e) {
      this.log.warn('unreadable message on a watched job topic', { topic, error: errorMessage(e) });
    }
  }
}
