// What the controller and the collectors remember: runs, each device's job outcome (with its rollout wave),
// result documents with the figures tables need, and the merged Pareto fronts of distributed tunes.
import { SqliteFile, type OpenDbOptions } from './db.js';
import { summarizeResult } from '../result-doc.js';
import type { Measurement } from '../../types.js';

export interface RunRow {
  id: string;
  kind: string;
  fleet: string;
  selection: string;
  params: unknown;
  createdAt: string;
  finishedAt?: string;
  summary?: unknown;
}

export interface JobRow {
  device: string;
  jobId: string;
  runId?: string;
  type: string;
  /** A JobState, or the controller's own verdicts: SKIPPED (offline, not sent), NO_RESPONSE (nothing came back). */
  state: string;
  errorCode?: string;
  errorMessage?: string;
  /** Rollouts: canary | batch | rollback. */
  phase?: string;
  wave?: number;
  updatedAt: string;
}

export interface ResultRow {
  device: string;
  jobId: string;
  runId?: string;
  type: string;
  target?: string;
  receivedAt: string;
  label?: string;
  latencyP50?: number;
  latencyP90?: number;
  accuracy?: number;
  sqnrDb?: number;
  simulated: boolean;
  doc: unknown;
}

export interface FrontRow {
  runId: string;
  target: string;
  createdAt: string;
  percentile: number;
  winner?: Measurement;
  front: Measurement[];
}

export interface ResultQuery {
  /** ISO time; only results received at or after it. */
  since?: string;
  device?: string;
  type?: string;
  runId?: string;
  limit?: number;
}

const opt = <T>(v: T | null | undefined): T | undefined => (v === null ? undefined : v);

export class ResultsStore {
  private constructor(private readonly f: SqliteFile) {}

  /** `file` undefined keeps everything in memory (tests, or `--db :memory:`). */
  static async open(file: string | undefined, opts: OpenDbOptions = {}): Promise<ResultsStore> {
    return new ResultsStore(await SqliteFile.open(file === ':memory:' ? undefined : file, opts));
  }

  get file(): string | undefined {
    return this.f.file;
  }

  recordRun(r: RunRow): void {
    this.f.transaction((db) => db.run(
      'INSERT OR REPLACE INTO runs (id, kind, fleet, selection, params, created_at, finished_at, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [r.id, r.kind, r.fleet, r.selection, JSON.stringify(r.params ?? null), r.createdAt, r.finishedAt ?? null, r.summary === undefined ? null : JSON.stringify(r.summary)],
    ));
  }

  finishRun(id: string, summary: unknown, at = new Date().toISOString()): void {
    this.f.transaction((db) => db.run('UPDATE runs SET finished_at = ?, summary = ? WHERE id = ?', [at, JSON.stringify(summary ?? null), id]));
  }

  /** Upserts device job outcomes (one transaction, one file write for the batch). */
  recordJobs(rows: JobRow[]): void {
    if (!rows.length) return;
    this.f.transaction((db) => {
      const st = db.prepare(`INSERT INTO jobs (device, job_id, run_id, type, state, error_code, error_message, phase, wave, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (device, job_id) DO UPDATE SET state = excluded.state, error_code = excluded.error_code,
          error_message = excluded.error_message, updated_at = excluded.updated_at,
          run_id = COALESCE(excluded.run_id, jobs.run_id), phase = COALESCE(excluded.phase, jobs.phase), wave = COALESCE(excluded.wave, jobs.wave)`);
      try {
        for (const r of rows) {
          st.run([r.device, r.jobId, r.runId ?? null, r.type, r.state, r.errorCode ?? null, r.errorMessage ?? null, r.phase ?? null, r.wave ?? null, r.updatedAt]);
        }
      } finally {
        st.free();
      }
    });
  }

  /** Stores result documents; a (device, job) already stored is kept as is (a redelivered QoS 1 copy). Returns how many were new. */
  recordResults(rows: Array<{ device: string; jobId: string; runId?: string; type?: string; target?: string; receivedAt?: string; doc: unknown }>): number {
    if (!rows.length) return 0;
    return this.f.transaction((db) => {
      const st = db.prepare(`INSERT OR IGNORE INTO results (device, job_id, run_id, type, target, received_at, label, latency_p50, latency_p90, accuracy, sqnr_db, simulated, doc)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
      let added = 0;
      try {
        for (const r of rows) {
          const s = summarizeResult(r.doc);
          st.run([r.device, r.jobId, r.runId ?? null, r.type ?? s.kind, r.target ?? null, r.receivedAt ?? new Date().toISOString(),
            s.label ?? null, s.latencyP50 ?? null, s.latencyP90 ?? null, s.accuracy ?? null, s.sqnrDb ?? null, s.simulated ? 1 : 0, JSON.stringify(r.doc)]);
          added += db.getRowsModified();
        }
      } finally {
        st.free();
      }
      return added;
    });
  }

  recordFront(r: FrontRow): void {
    this.f.transaction((db) => db.run(
      'INSERT OR REPLACE INTO fronts (run_id, target, created_at, percentile, winner, front) VALUES (?, ?, ?, ?, ?, ?)',
      [r.runId, r.target, r.createdAt, r.percentile, r.winner ? JSON.stringify(r.winner) : null, JSON.stringify(r.front)],
    ));
  }

  results(q: ResultQuery = {}): ResultRow[] {
    const where: string[] = [];
    const params: Array<string | number> = [];
    if (q.since) { where.push('received_at >= ?'); params.push(q.since); }
    if (q.device) { where.push('device = ?'); params.push(q.device); }
    if (q.type) { where.push('type = ?'); params.push(q.type); }
    if (q.runId) { where.push('run_id = ?'); params.push(q.runId); }
    const sql = `SELECT * FROM results${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY received_at, device, job_id${q.limit ? ` LIMIT ${Math.floor(q.limit)}` : ''}`;
    return this.f.all<Record<string, any>>(sql, params).map(toResultRow);
  }

  /** The newest result of each device (by time received). */
  latestByDevice(): Map<string, ResultRow> {
    const rows = this.f.all<Record<string, any>>(`SELECT r.* FROM results r JOIN (SELECT device, MAX(received_at) AS t FROM results GROUP BY device) m
      ON r.device = m.device AND r.received_at = m.t ORDER BY r.device, r.job_id`);
    const out = new Map<string, ResultRow>();
    for (const r of rows) out.set(r.device, toResultRow(r));
    return out;
  }

  jobs(runId: string): JobRow[] {
    return this.f.all<Record<string, any>>('SELECT * FROM jobs WHERE run_id = ? ORDER BY wave, device, job_id', [runId]).map((r) => ({
      device: r.device, jobId: r.job_id, runId: opt(r.run_id), type: r.type, state: r.state,
      errorCode: opt(r.error_code), errorMessage: opt(r.error_message), phase: opt(r.phase), wave: opt(r.wave), updatedAt: r.updated_at,
    }));
  }

  runs(q: { since?: string; kind?: string } = {}): RunRow[] {
    const where: string[] = [];
    const params: string[] = [];
    if (q.since) { where.push('created_at >= ?'); params.push(q.since); }
    if (q.kind) { where.push('kind = ?'); params.push(q.kind); }
    return this.f.all<Record<string, any>>(`SELECT * FROM runs${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at`, params).map((r) => ({
      id: r.id, kind: r.kind, fleet: r.fleet, selection: r.selection, params: JSON.parse(r.params), createdAt: r.created_at,
      finishedAt: opt(r.finished_at), summary: r.summary === null ? undefined : JSON.parse(r.summary),
    }));
  }

  fronts(q: { since?: string } = {}): FrontRow[] {
    const rows = this.f.all<Record<string, any>>(`SELECT * FROM fronts${q.since ? ' WHERE created_at >= ?' : ''} ORDER BY created_at, target`, q.since ? [q.since] : []);
    return rows.map((r) => ({
      runId: r.run_id, target: r.target, createdAt: r.created_at, percentile: r.percentile,
      winner: r.winner === null ? undefined : JSON.parse(r.winner), front: JSON.parse(r.front),
    }));
  }

  count(table: 'results' | 'jobs' | 'runs' | 'fronts'): number {
    return Number(this.f.all<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`)[0].n);
  }

  flush(): Promise<void> {
    return this.f.flush();
  }

  close(): Promise<void> {
    return this.f.close();
  }
}

function toResultRow(r: Record<string, any>): ResultRow {
  return {
    device: r.device, jobId: r.job_id, runId: opt(r.run_id), type: r.type, target: opt(r.target), receivedAt: r.received_at,
    label: opt(r.label), latencyP50: opt(r.latency_p50), latencyP90: opt(r.latency_p90), accuracy: opt(r.accuracy), sqnrDb: opt(r.sqnr_db),
    simulated: r.simulated === 1, doc: JSON.parse(r.doc),
  };
}

/** `--since`: a duration back from now (`90s`, `30m`, `2h`, `7d`) or a date/time → ISO string. */
export function parseSince(s: string, now = Date.now()): string {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/.exec(s.trim());
  if (m) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now - Number(m[1]) * unit).toISOString();
  }
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new RangeError(`--since '${s}': give a duration like 30m, 2h or 7d, or a date like 2026-11-23T08:00:00Z`);
  return new Date(t).toISOString();
}
