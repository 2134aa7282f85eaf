// What the agent keeps across restarts in stateDir: the session counter (so a controller can tell a stale LWT
// from a fresh one) and the job ids already seen (so a redelivered or replayed job never runs twice).
import { mkdir, open, readFile, truncate } from 'node:fs/promises';
import { TOPIC_LEVEL_PATTERN } from '../schema/config.js';
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

/**
 * Job ids already ended or rejected, newest last, capped at `limit`. Each add is an append of one line to
 * seen-jobs.log and an fdatasync (cheap enough for a flood of bad messages); past `limit` new lines the list is
 * compacted into seen-jobs.json (atomic) and the log emptied. A line torn by a power cut is skipped at load.
 */
export class SeenJobs {
  private ids: string[] = [];
  private set = new Set<string>();
  private writes: Promise<void> = Promise.resolve();
  private logLines = 0;
  readonly file: string;
  readonly logFile: string;

  constructor(stateDir: string, private readonly limit: number, private readonly log: Logger) {
    this.file = join(stateDir, 'seen-jobs.json');
    this.logFile = join(stateDir, 'seen-jobs.log');
  }

  async load(): Promise<void> {
    const doc = (await readJson(this.file, this.log)) as { ids?: unknown } | undefined;
    const ids = Array.isArray(doc?.ids) ? doc.ids.filter((x): x is string => typeof x === 'string') : [];
    let lines: string[] = [];
    try {
      lines = (await readFile(this.logFile, 'utf8')).split('\n');
    } catch (e) {
      if (!isENOENT(e)) this.log.warn(`cannot read ${this.logFile}`, { error: errorMessage(e) });
    }
    const fromLog = lines.filter((l) => ID.test(l));
    this.logLines = fromLog.length;
    this.ids = [...new Set([...ids, ...fromLog])].slice(-this.limit);
    this.set = new Set(this.ids);
  }

  has(id: string): boolean {
    return this.set.has(id);
  }

  /** Records the id durably; writes are serialised so appends and compactions never interleave. */
  add(id: string): Promise<void> {
    if (this.set.has(id)) return this.writes;
    this.ids.push(id);
    this.set.add(id);
    while (this.ids.length > this.limit) this.set.delete(this.ids.shift()!);
    const compact = ++this.logLines > this.limit;
    const snapshot = compact ? [...this.ids] : undefined;
    if (compact) this.logLines = 0;
    this.writes = this.writes
      .then(async () => {
        if (snapshot) {
          await writeJsonAtomic(this.file, { v: 1, ids: snapshot });
          await truncate(this.logFile, 0).catch((e) => { if (!isENOENT(e)) throw e; });
          return;
        }
        const fh = await open(this.logFile, 'a');
        try {
          await fh.write(`${id}\n`);
          await fh.datasync();
        } finally {
          await fh.close();
        }
      })
      .catch((e) => this.log.error(`cannot persist seen job ids to ${this.logFile}`, { error: errorMessage(e) }));
    return this.writes;
  }
}

const ID = new RegExp(TOPIC_LEVEL_PATTERN);
