// What the agent keeps across restarts in stateDir: the session counter (so a controller can tell a stale LWT
// from a fresh one) and the job ids already seen (so a redelivered or replayed job never runs twice).
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../util/atomic.js';
import { errorMessage, isENOENT } from '../errors.js';
import type { Logger } from './log.js';

async function readJson(path: string, log: Logger): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    if (isENOENT(e)) return undefined;
    // Atomic writes make this unlikely; if it happens the file is evidence, so say where it is.
    log.warn(`cannot read ${path}; starting from scratch`, { error: errorMessage(e) });
    return undefined;
  }
}

/** Increments and persists the session counter; returns the new value (1 on a fresh device). */
export async function nextSession(stateDir: string, log: Logger): Promise<number> {
  await mkdir(stateDir, { recursive: true });
  const file = join(stateDir, 'session.json');
  const prev = (await readJson(file, log)) as { session?: unknown } | undefined;
  const last = typeof prev?.session === 'number' && Number.isInteger(prev.session) && prev.session >= 0 ? prev.session : 0;
  const session = last + 1;
  await writeJsonAtomic(file, { v: 1, session });
  return session;
}

/** Job ids already received, newest last, capped at `limit`; each add is persisted before it returns. */
export class SeenJobs {
  private ids: string[] = [];
  private set = new Set<string>();
  private writes: Promise<void> = Promise.resolve();
  readonly file: string;

  constructor(stateDir: string, private readonly limit: number, private readonly log: Logger) {
    this.file = join(stateDir, 'seen-jobs.json');
  }

  async load(): Promise<void> {
    const doc = (await readJson(this.file, this.log)) as { ids?: unknown } | undefined;
    const ids = Array.isArray(doc?.ids) ? doc.ids.filter((x): x is string => typeof x === 'string') : [];
    this.ids = ids.slice(-this.limit);
    this.set = new Set(this.ids);
  }

  has(id: string): boolean {
    return this.set.has(id);
  }

  /** Records the id; writes are serialised so a burst of jobs cannot interleave two renames. */
  add(id: string): Promise<void> {
    if (this.set.has(id)) return this.writes;
    this.ids.push(id);
    this.set.add(id);
    while (this.ids.length > this.limit) this.set.delete(this.ids.shift()!);
    const snapshot = [...this.ids];
    this.writes = this.writes
      .then(() => writeJsonAtomic(this.file, { v: 1, ids: snapshot }))
      .catch((e) => this.log.error(`cannot persist seen job ids to ${this.file}`, { error: errorMessage(e) }));
    return this.writes;
  }
}
