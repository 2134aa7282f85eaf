import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import initSqlJs from 'sql.js';
import { ResultsStore, parseSince } from '../../src/fleet/store/results.js';
import { LATEST_SCHEMA, MIGRATIONS, migrate, schemaVersion } from '../../src/fleet/store/migrations.js';

const measurement = (label: string, p90: number, accuracy: number) => ({
  v: 1, recipe: { v: 1 }, label, model: { sha256: 'a'.repeat(64), bytes: 10 },
  latencyMs: { p50: p90 * 0.9, p90, p95: p90, p99: p90, mean: p90, std: 0, cv: 0, n: 10, ci95p50: [p90, p90] },
  loadMs: 1, firstRunMs: 1, peakRssMB: 10, throttled: null, quality: { accuracy, sqnrDb: null },
});

t.test('a new database gets every migration in order, and the file is written atomically after a batch', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'f.db');
  const store = await ResultsStore.open(file, { flushMs: 20 });
  t.ok(existsSync(file), 'migrations are persisted at once');
  t.ok(existsSync(`${file}.lock`), 'a writer holds the lock');
  store.recordRun({ id: 'r1', kind: 'bench', fleet: 'f', selection: 'all devices', params: { model: 'm' }, createdAt: '2026-01-01T00:00:00.000Z' });
  const added = store.recordResults([
    { device: 'd1', jobId: 'r1', runId: 'r1', type: 'bench', receivedAt: '2026-01-01T00:00:01.000Z', doc: measurement('int8', 3.5, 0.91) },
    { device: 'd2', jobId: 'r1', runId: 'r1', type: 'bench', receivedAt: '2026-01-01T00:00:02.000Z', doc: measurement('fp32', 5, 0.92) },
    { device: 'd1', jobId: 'r1', runId: 'r1', type: 'bench', receivedAt: '2026-01-01T00:00:03.000Z', doc: measurement('dup', 1, 1) },
  ]);
  t.equal(added, 2, 'a redelivered (device, job) is not stored twice');
  store.recordJobs([{ device: 'd1', jobId: 'r1', runId: 'r1', type: 'bench', state: 'SUCCEEDED', updatedAt: 'x', phase: 'canary', wave: 0 }]);
  store.recordJobs([{ device: 'd1', jobId: 'r1', type: 'bench', state: 'FAILED', errorCode: 'E', errorMessage: 'boom', updatedAt: 'y' }]);
  await store.close();
  t.notOk(existsSync(`${file}.lock`), 'close releases the lock');

  const again = await ResultsStore.open(file, { readonly: true });
  t.teardown(() => again.close());
  const rows = again.results();
  t.same(rows.map((r) => [r.device, r.label, r.latencyP90, r.accuracy, r.sqnrDb]), [['d1', 'int8', 3.5, 0.91, undefined], ['d2', 'fp32', 5, 0.92, undefined]]);
  t.same(again.jobs('r1'), [{ device: 'd1', jobId: 'r1', runId: 'r1', type: 'bench', state: 'FAILED', errorCode: 'E', errorMessage: 'boom', phase: 'canary', wave: 0, updatedAt: 'y' }],
    'an upsert keeps run, phase and wave it did not restate');
  t.same(again.results({ since: '2026-01-01T00:00:02.000Z' }).map((r) => r.device), ['d2']);
  t.equal(again.latestByDevice().get('d1')?.label, 'int8');
  t.equal(again.runs()[0].id, 'r1');
  t.throws(() => again.recordRun({ id: 'x', kind: 'k', fleet: 'f', selection: 's', params: {}, createdAt: 'now' }), /read-only/);
});

t.test('an old database is migrated forward; one from a newer edgetune is refused; garbage is named', async (t) => {
  const dir = t.testdir();
  const SQL = await initSqlJs();
  const db = new SQL.Database();
  t.same(migrate(db, 'old.db', 1), [1], 'a v1 database, as an older edgetune left it');
  db.run("INSERT INTO results (device, job_id, type, received_at, doc) VALUES ('d', 'j', 'bench', '2026', '{}')");
  writeFileSync(join(dir, 'old.db'), db.export());
  const store = await ResultsStore.open(join(dir, 'old.db'));
  t.equal(store.count('results'), 1, 'data survives the migration');
  store.recordFront({ runId: 'r', target: 't', createdAt: 'now', percentile: 90, front: [] });
  t.equal(store.count('fronts'), 1, 'migration 3 created fronts');
  await store.close();
  const check = new SQL.Database(readFileSync(join(dir, 'old.db')));
  t.equal(schemaVersion(check), LATEST_SCHEMA);
  t.same(check.exec('SELECT version FROM schema_version ORDER BY version')[0].values.flat(), MIGRATIONS.map((m) => m.version));

  check.run("INSERT INTO schema_version VALUES (99, 'from the future', 'now')");
  writeFileSync(join(dir, 'new.db'), check.export());
  await t.rejects(ResultsStore.open(join(dir, 'new.db')), { code: 'CONFIG_INVALID', message: /schema version 99, newer than this edgetune knows/ });
  t.notOk(existsSync(join(dir, 'new.db.lock')), 'a refused open leaves no lock behind');

  writeFileSync(join(dir, 'junk.db'), 'this is not sqlite at all, not even close to it'.repeat(10));
  await t.rejects(ResultsStore.open(join(dir, 'junk.db')), { message: /junk\.db/ });
  await t.rejects(ResultsStore.open(join(dir, 'missing.db'), { readonly: true }), { message: /missing\.db does not exist/ });
});

t.test('a failing migration rolls back and names itself', async (t) => {
  const SQL = await initSqlJs();
  const db = new SQL.Database();
  const bad = [...MIGRATIONS.slice(0, 1), { version: 2, name: 'broken on purpose', sql: 'CREATE TABLE x (a INT); ALTER TABLE nope ADD COLUMN b INT;' }];
  t.throws(() => migrate(db, 'b.db', 2, bad), /migration 2 \(broken on purpose\) failed/);
  t.equal(schemaVersion(db), 1);
  t.same(db.exec("SELECT name FROM sqlite_master WHERE name = 'x'"), [], 'the half-applied migration left nothing');
});

t.test('one writer per file: a second writer is refused while the first holds the lock; a dead holder\'s lock is taken over', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'w.db');
  const first = await ResultsStore.open(file);
  await t.rejects(ResultsStore.open(file), { message: new RegExp(`being written by process ${process.pid}`) });
  const reader = await ResultsStore.open(file, { readonly: true });
  await reader.close();
  await first.close();
  writeFileSync(`${file}.lock`, '999999999');
  const second = await ResultsStore.open(file);
  t.equal(readFileSync(`${file}.lock`, 'utf8'), String(process.pid));
  await second.close();
});

t.test('--since takes durations and dates', async (t) => {
  const now = Date.parse('2026-11-23T12:00:00Z');
  t.equal(parseSince('30m', now), '2026-11-23T11:30:00.000Z');
  t.equal(parseSince('2h', now), '2026-11-23T10:00:00.000Z');
  t.equal(parseSince('7d', now), '2026-11-16T12:00:00.000Z');
  t.equal(parseSince('2026-11-01', now), '2026-11-01T00:00:00.000Z');
  t.throws(() => parseSince('yesterday', now), /give a duration like 30m/);
});
