// An embedded SQLite database (sql.js: SQLite compiled to WebAssembly) kept in memory and written to its file
// atomically after each batch of writes. sql.js is imported on first use: only fleet commands need it.
// One process writes a database file at a time (a lock file next to it says which); readers need no lock.
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Database, SqlJsStatic } from 'sql.js';
import { EdgetuneError, errorMessage, isENOENT } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { migrate } from './migrations.js';

let sqlJs: Promise<SqlJsStatic> | undefined;

/** Loads the SQLite WebAssembly module once per process (it is immutable, so sharing it hides no state). */
function loadSqlJs(): Promise<SqlJsStatic> {
  sqlJs ??= import('sql.js').then((m) => (m.default as unknown as (c?: object) => Promise<SqlJsStatic>)());
  return sqlJs;
}

export interface OpenDbOptions {
  /** Open for reading only: no lock, no migrations written back, no flushes. */
  readonly?: boolean;
  /** Quiet time after the last write before the file is written (the batch window). */
  flushMs?: number;
  /** Called when a background flush fails (the next write retries). */
  onFlushError?: (e: unknown) => void;
}

export class SqliteFile {
  private dirty = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly db: Database,
    /** undefined: in memory only */
    readonly file: string | undefined,
    private readonly opts: OpenDbOptions,
    private readonly lockFile: string | undefined,
  ) {}

  /** Opens (or creates) the database at `file` and brings its schema up to date; `undefined` = in memory. */
  static async open(file: string | undefined, opts: OpenDbOptions = {}): Promise<SqliteFile> {
    const SQL = await loadSqlJs();
    let bytes: Uint8Array | undefined;
    if (file) {
      try {
        bytes = await readFile(file);
      } catch (e) {
        if (!isENOENT(e)) throw new EdgetuneError('CONFIG_INVALID', `cannot read results database ${file}: ${errorMessage(e)}`);
        if (opts.readonly) throw new EdgetuneError('CONFIG_INVALID', `results database ${file} does not exist; run a fleet command (or a collector) with --db ${file} first`);
      }
    }
    let db: Database;
    try {
      db = new SQL.Database(bytes);
    } catch (e) {
      throw new EdgetuneError('CONFIG_INVALID', `results database ${file} is not an SQLite database (${errorMessage(e)}); move it away or pass another --db`);
    }
    try {
      // sql.js only notices a file that is not SQLite at the first statement.
      db.exec('SELECT count(*) FROM sqlite_master');
    } catch (e) {
      db.close();
      throw new EdgetuneError('CONFIG_INVALID', `results database ${file} is not an SQLite database (${errorMessage(e)}); move it away or pass another --db`);
    }
    let lockFile: string | undefined;
    try {
      if (file && !opts.readonly) {
        await mkdir(dirname(file), { recursive: true });
        lockFile = await takeLock(file);
      }
      const applied = migrate(db, file ?? ':memory:');
      const f = new SqliteFile(db, file, opts, lockFile);
      if (applied.length && file && !opts.readonly) {
        f.dirty = true;
        await f.flush();
      }
      return f;
    } catch (e) {
      db.close();
      if (lockFile) await unlink(lockFile).catch(() => {});
      throw e;
    }
  }

  /** Runs `fn` in one transaction, then schedules a write of the file (many calls in a burst: one write). */
  transaction<T>(fn: (db: Database) => T): T {
    if (this.closed) throw new Error('results database is closed');
    if (this.opts.readonly) throw new Error(`results database ${this.file} is open read-only`);
    this.db.run('BEGIN');
    let out: T;
    try {
      out = fn(this.db);
      this.db.run('COMMIT');
    } catch (e) {
      this.db.run('ROLLBACK');
      throw e;
    }
    this.markDirty();
    return out;
  }

  /** Rows of a query as plain objects. */
  all<T = Record<string, unknown>>(sql: string, params: Array<string | number | null> = []): T[] {
    const st = this.db.prepare(sql);
    try {
      st.bind(params);
      const rows: T[] = [];
      while (st.step()) rows.push(st.getAsObject() as T);
      return rows;
    } finally {
      st.free();
    }
  }

  private markDirty(): void {
    this.dirty = true;
    if (!this.file || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().catch((e) => this.opts.onFlushError?.(e));
    }, this.opts.flushMs ?? 200);
  }

  /** Writes the file now if anything changed (temp file, fsync, rename). Calls are serialised. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.writing = this.writing.catch(() => {}).then(async () => {
      if (!this.dirty || !this.file || this.opts.readonly) return;
      this.dirty = false;
      try {
        await writeFileAtomic(this.file, this.db.export());
      } catch (e) {
        this.dirty = true;
        throw new EdgetuneError('CONFIG_INVALID', `cannot write results database ${this.file}: ${errorMessage(e)}`);
      }
    });
    return this.writing;
  }

  /** Flushes, releases the lock and frees the database. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      this.db.close();
      if (this.lockFile) await unlink(this.lockFile).catch(() => {});
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `<file>.lock` holding our pid; a lock left by a dead process is taken over. */
async function takeLock(file: string): Promise<string> {
  const lock = `${file}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(lock, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
        throw new EdgetuneError('CONFIG_INVALID', `results database ${file} is being written by process ${pid} (lock ${lock}); stop it, or give this command another --db`);
      }
      await unlink(lock).catch(() => {});
    }
  }
  throw new EdgetuneError('CONFIG_INVALID', `cannot take the lock ${lock} for results database ${file}`);
}
