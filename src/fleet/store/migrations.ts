// The results database's schema, as an ordered list of migrations. A database records every migration applied
// to it in schema_version; opening it applies the missing ones in order, each in its own transaction. Never edit
// a released migration: add the next one.
import type { Database } from 'sql.js';
import { EdgetuneError, errorMessage } from '../../errors.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'runs, device jobs and results',
    sql: `
      CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        fleet TEXT NOT NULL,
        selection TEXT NOT NULL,
        params TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        summary TEXT
      );
      CREATE TABLE jobs (
        device TEXT NOT NULL,
        job_id TEXT NOT NULL,
        run_id TEXT,
        type TEXT NOT NULL,
        state TEXT NOT NULL,
        error_code TEXT,
        error_message TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (device, job_id)
      );
      CREATE INDEX jobs_run ON jobs(run_id);
      CREATE TABLE results (
        device TEXT NOT NULL,
        job_id TEXT NOT NULL,
        run_id TEXT,
        type TEXT NOT NULL,
        target TEXT,
        received_at TEXT NOT NULL,
        label TEXT,
        latency_p50 REAL,
        latency_p90 REAL,
        accuracy REAL,
        sqnr_db REAL,
        simulated INTEGER NOT NULL DEFAULT 0,
        doc TEXT NOT NULL,
        PRIMARY KEY (device, job_id)
      );
      CREATE INDEX results_received ON results(received_at);
    `,
  },
  {
    version: 2,
    name: 'rollout waves and phases per device job',
    sql: `
      ALTER TABLE jobs ADD COLUMN phase TEXT;
      ALTER TABLE jobs ADD COLUMN wave INTEGER;
    `,
  },
  {
    version: 3,
    name: 'merged Pareto fronts of distributed tunes',
    sql: `
      CREATE TABLE fronts (
        run_id TEXT NOT NULL,
        target TEXT NOT NULL,
        created_at TEXT NOT NULL,
        percentile INTEGER NOT NULL,
        winner TEXT,
        front TEXT NOT NULL,
        PRIMARY KEY (run_id, target)
      );
    `,
  },
];

export const LATEST_SCHEMA = MIGRATIONS[MIGRATIONS.length - 1].version;

export function schemaVersion(db: Database): number {
  db.run('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  const r = db.exec('SELECT MAX(version) FROM schema_version');
  const v = r[0]?.values[0]?.[0];
  return typeof v === 'number' ? v : 0;
}

/**
 * Brings `db` up to `upTo` (default: the latest). Returns the versions applied. A database from a newer
 * edgetune is refused rather than written with an older idea of its tables.
 */
export function migrate(db: Database, file: string, upTo = LATEST_SCHEMA, migrations: readonly Migration[] = MIGRATIONS): number[] {
  const current = schemaVersion(db);
  const known = migrations[migrations.length - 1]?.version ?? 0;
  if (current > known) {
    throw new EdgetuneError('CONFIG_INVALID', `results database ${file} has schema version ${current}, newer than this edgetune knows (${known}); upgrade edgetune or use another --db`);
  }
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= current || m.version > upTo) continue;
    try {
      db.run('BEGIN');
      db.run(m.sql);
      db.run('INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, new Date().toISOString()]);
      db.run('COMMIT');
      applied.push(m.version);
    } catch (e) {
      try { db.run('ROLLBACK'); } catch { /* nothing open */ }
      throw new EdgetuneError('CONFIG_INVALID', `results database ${file}: migration ${m.version} (${m.name}) failed: ${errorMessage(e)}`);
    }
  }
  return applied;
}
