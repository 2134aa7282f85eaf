// The job queue on disk: one file per job that has not ended (`jobs/<id>.json`, written atomically), plus the list
// of ids that have ended or were rejected (seen-jobs.json, see state.ts). A job is recorded before the broker gets
// its PUBACK (transport.ts acks only after the handler returns), so a job the broker handed over is never lost, and
// an id is "seen" from the moment it is recorded, so a redelivered copy never runs twice.
import { mkdir, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, isENOENT } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { JobDoc } from './jobs.js';
import type { Logger } from './log.js';
import { SeenJobs } from './state.js';

/** Where an MQTT 5 requester asked for the answer; persisted with the job so a restart still answers there. */
export interface Reply {
  topic: string;
  correlationData?: Buffer;
}

export interface JobRecord {
  v: 1;
  job: JobDoc;
  reply?: { topic: string; correlationData?: string };
  state: 'QUEUED' | 'IN_PROGRESS';
  /** The seq of the last QoS 1 status published for this job. */
  seq: number;
  /** Runs started (a run the agent died under counts). */
  attempts: number;
  /** Queue order across restarts. */
  order: number;
  receivedAt: string;
  startedAt?: string;
}

export function replyToRecord(r: Reply | undefined): JobRecord['reply'] {
  if (!r) return undefined;
  return { topic: r.topic, ...(r.correlationData ? { correlationData: r.correlationData.toString('base64') } : {}) };
}

export function replyFromRecord(r: JobRecord['reply']): Reply | undefined {
  if (!r) return undefined;
  return { topic: r.topic, ...(r.correlationData !== undefined ? { correlationData: Buffer.from(r.correlationData, 'base64') } : {}) };
}

export class JobStore {
  readonly dir: string;
  private readonly seen: SeenJobs;
  private readonly active = new Map<string, JobRecord>();
  private order = 0;

  constructor(stateDir: string, remember: number, private readonly log: Logger) {
    this.dir = join(stateDir, 'jobs');
    this.seen = new SeenJobs(stateDir, remember, log);
  }

  /** Reads the seen ids and the jobs that had not ended, in queue order. */
  async load(): Promise<JobRecord[]> {
    await mkdir(this.dir, { recursive: true });
    await this.seen.load();
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        await unlink(path).catch(() => {});
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        const rec = JSON.parse(await readFile(path, 'utf8')) as JobRecord;
        if (rec?.v !== 1 || typeof rec.job?.id !== 'string' || `${rec.job.id}.json` !== name) throw new Error('not a job record');
        if (this.seen.has(rec.job.id)) {
          // It ended, and the crash came between recording that and deleting this file.
          await unlink(path).catch(() => {});
          continue;
        }
        this.active.set(rec.job.id, rec);
        this.order = Math.max(this.order, rec.order ?? 0);
      } catch (e) {
        this.log.error(`job record ${path} is unreadable; moved aside`, { error: errorMessage(e) });
        await rename(path, `${path}.corrupt`).catch(() => {});
      }
    }
    return [...this.active.values()].sort((a, b) => a.order - b.order);
  }

  /** True for an id that is queued, running, ended or was rejected. */
  known(id: string): boolean {
    return this.active.has(id) || this.seen.has(id);
  }

  get(id: string): JobRecord | undefined {
    return this.active.get(id);
  }

  nextOrder(): number {
    return ++this.order;
  }

  /** Writes the record durably (temp, fsync, rename). */
  async save(rec: JobRecord): Promise<void> {
    this.active.set(rec.job.id, rec);
    const file = join(this.dir, `${rec.job.id}.json`);
    await writeFileAtomic(file, JSON.stringify(rec)).catch(async (e) => {
      if (!isENOENT(e)) throw e;
      // Someone removed the folder under us (a cleanup script): make it again rather than lose the job.
      await mkdir(this.dir, { recursive: true });
      await writeFileAtomic(file, JSON.stringify(rec));
    });
  }

  /** The job has ended: remember its id, then forget its record. */
  async finish(id: string): Promise<void> {
    await this.seen.add(id);
    this.active.delete(id);
    await unlink(join(this.dir, `${id}.json`)).catch((e) => {
      if (!isENOENT(e)) this.log.warn(`cannot delete job record ${id}`, { error: errorMessage(e) });
    });
  }

  /** An id that never became a job (rejected): only remembered. */
  remember(id: string): Promise<void> {
    return this.seen.add(id);
  }
}
