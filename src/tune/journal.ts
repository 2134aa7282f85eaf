// The trial journal: one JSON line per finished piece of work (a compressed model and its proxies, a measured
// trial, a confirmation), appended and fsynced before the tuner moves on, so a restarted tune replays it instead of
// measuring again. The header names the model (sha256) and the space/settings (hashes): a journal written for
// anything else is set aside, never mixed in. A power cut can only tear the last line, which replay drops.
import { open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isENOENT } from '../errors.js';
import { fsyncDir } from '../util/atomic.js';
import type { Measurement, Quality } from '../types.js';

export interface JournalHeader {
  kind: 'header';
  v: 1;
  /** sha256 of the input model */
  model: string;
  /** hash of the candidate list */
  space: string;
  /** hash of everything else that changes a measurement (data, samples, bench plan, shapes) */
  settings: string;
  created?: string;
}

/** What compressing one model key gave: the file's identity and the cheap proxies, or why there is no file. */
export interface ModelRecord {
  key: string;
  status: 'ok' | 'skipped' | 'duplicate';
  sha256?: string;
  bytes?: number;
  /** multiply-accumulates of Conv/MatMul/Gemm; undefined when they could not be counted */
  macs?: number;
  quality?: Quality;
  /** what each pass did ("quantize-dynamic: 2 changed, 0 skipped") and what it warned about */
  warnings?: string[];
  reason?: string;
  duplicateOf?: string;
}

export interface StepNote { why: string; predictedMs?: number; pBudget?: number }

export type JournalEntry =
  | { kind: 'model'; record: ModelRecord }
  | { kind: 'trial'; id: string; m: Measurement; step?: StepNote }
  | { kind: 'failed'; id: string; reason: string }
  | { kind: 'confirm'; id: string; m: Measurement };

// JSON has no Infinity/NaN (an exact model's SQNR is Infinity): encode them so replay gives back the same numbers.
function replacer(_k: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? { $n: String(v) } : v;
}
function reviver(_k: string, v: unknown): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === '$n') return Number((v as { $n: string }).$n);
  }
  return v;
}

export function encodeLine(v: JournalHeader | JournalEntry): string {
  return JSON.stringify(v, replacer) + '\n';
}

function sameHeader(a: JournalHeader, b: JournalHeader): boolean {
  return a.v === b.v && a.model === b.model && a.space === b.space && a.settings === b.settings;
}

/**
 * Replays a journal's text for `header`. `match` is false when it belongs to another model, space or settings
 * (then no entries are returned). An unreadable line ends the replay there, with a note.
 */
export function parseJournal(text: string, header: JournalHeader): { match: boolean; entries: JournalEntry[]; notes: string[] } {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const notes: string[] = [];
  if (!lines.length) return { match: false, entries: [], notes: ['the journal is empty'] };
  let head: JournalHeader;
  try {
    head = JSON.parse(lines[0], reviver) as JournalHeader;
  } catch {
    return { match: false, entries: [], notes: ['the journal header is unreadable'] };
  }
  if (head?.kind !== 'header' || !sameHeader(head, header)) {
    const what = head?.kind !== 'header' ? 'it has no header' : head.model !== header.model ? 'the model changed' : head.space !== header.space ? 'the search space changed' : 'the measurement settings changed';
    return { match: false, entries: [], notes: [`the journal was for another tune (${what})`] };
  }
  const entries: JournalEntry[] = [];
  for (let i = 1; i < lines.length; i++) {
    try {
      const e = JSON.parse(lines[i], reviver) as JournalEntry;
      if (!e || typeof e !== 'object' || !['model', 'trial', 'failed', 'confirm'].includes(e.kind)) throw new Error('unknown entry');
      entries.push(e);
    } catch {
      notes.push(i === lines.length - 1
        ? `journal line ${i + 1} was torn (interrupted while writing): dropped`
        : `journal line ${i + 1} is unreadable: it and the ${lines.length - 1 - i} line(s) after it were ignored`);
      break;
    }
  }
  return { match: true, entries, notes };
}

/** What a replay knows: the latest entry of each kind per key. */
export interface JournalState {
  models: Map<string, ModelRecord>;
  trials: Map<string, { m: Measurement; step?: StepNote }>;
  failed: Map<string, string>;
  confirms: Map<string, Measurement>;
}

export function replay(entries: readonly JournalEntry[]): JournalState {
  const s: JournalState = { models: new Map(), trials: new Map(), failed: new Map(), confirms: new Map() };
  for (const e of entries) {
    if (e.kind === 'model') s.models.set(e.record.key, e.record);
    else if (e.kind === 'trial') s.trials.set(e.id, { m: e.m, ...(e.step ? { step: e.step } : {}) });
    else if (e.kind === 'failed') s.failed.set(e.id, e.reason);
    else s.confirms.set(e.id, e.m);
  }
  return s;
}

/** An open journal file. Appends are serialised and each is fsynced before it resolves. */
export class Journal {
  private tail: Promise<void> = Promise.resolve();
  private closed = false;
  private constructor(readonly path: string, private readonly fh: FileHandle) {}

  /**
   * Opens `path` for `header`: replays a matching journal and appends to it; sets a journal for another tune aside
   * as `<path>.stale` and starts a new one.
   */
  static async open(path: string, header: JournalHeader): Promise<{ journal: Journal; state: JournalState; notes: string[]; resumed: boolean }> {
    let text: string | undefined;
    try { text = await readFile(path, 'utf8'); } catch (e) { if (!isENOENT(e)) throw e; }
    const notes: string[] = [];
    let entries: JournalEntry[] = [];
    let fresh = text === undefined;
    if (text !== undefined) {
      const parsed = parseJournal(text, header);
      notes.push(...parsed.notes);
      if (parsed.match) {
        entries = parsed.entries;
        // A torn or unreadable tail must not stay in front of new lines: rewrite the good part.
        if (parsed.notes.length) await rewrite(path, header, entries);
      } else {
        await rename(path, `${path}.stale`);
        notes.push(`set it aside as ${path}.stale and started afresh`);
        fresh = true;
      }
    }
    if (fresh) await rewrite(path, { ...header, created: new Date().toISOString() }, []);
    const fh = await open(path, 'a');
    return { journal: new Journal(path, fh), state: replay(entries), notes, resumed: entries.length > 0 };
  }

  append(e: JournalEntry): Promise<void> {
    const line = encodeLine(e);
    const next = this.tail.then(async () => {
      await this.fh.write(line);
      await this.fh.sync();
    });
    this.tail = next.catch(() => {});
    return next;
  }

  /** Waits for pending appends and closes the file; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    await this.fh.close();
  }
}

async function rewrite(path: string, header: JournalHeader, entries: JournalEntry[]): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.write(encodeLine(header) + entries.map(encodeLine).join(''));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}
