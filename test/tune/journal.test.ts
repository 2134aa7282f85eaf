import t from 'tap';
import { readFile, writeFile, appendFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Journal, encodeLine, parseJournal, replay, type JournalHeader } from '../../src/tune/journal.js';
import type { Measurement } from '../../src/types.js';

const header: JournalHeader = { kind: 'header', v: 1, model: 'aaa', space: 'sss', settings: 'xxx' };
const m = (label: string): Measurement => ({
  v: 1, recipe: { v: 1 }, label, model: { sha256: 'h', bytes: 1 },
  latencyMs: { p50: 1, p90: 2, p95: 2, p99: 3, mean: 1, std: 0, cv: 0, n: 10, ci95p50: [1, 1] },
  loadMs: NaN, firstRunMs: 1, peakRssMB: 5, throttled: null, quality: { sqnrDb: Infinity, cosine: 1 },
});

t.test('replay keeps Infinity and NaN, and the latest entry per key', async (t) => {
  const text = encodeLine(header) + encodeLine({ kind: 'trial', id: 'a', m: m('first') }) + encodeLine({ kind: 'trial', id: 'a', m: m('second') }) +
    encodeLine({ kind: 'model', record: { key: 'k', status: 'skipped', reason: 'no' } }) + encodeLine({ kind: 'failed', id: 'b', reason: 'crash' });
  const p = parseJournal(text, header);
  t.ok(p.match);
  const s = replay(p.entries);
  t.equal(s.trials.get('a')?.m.label, 'second');
  t.equal(s.trials.get('a')?.m.quality.sqnrDb, Infinity);
  t.ok(Number.isNaN(s.trials.get('a')?.m.loadMs));
  t.equal(s.models.get('k')?.reason, 'no');
  t.equal(s.failed.get('b'), 'crash');
});

t.test('a torn last line is dropped; another tune\'s journal does not match', async (t) => {
  const good = encodeLine(header) + encodeLine({ kind: 'trial', id: 'a', m: m('x') });
  const torn = parseJournal(good + '{"kind":"trial","id":"b","m":{"v"', header);
  t.equal(torn.entries.length, 1);
  t.match(torn.notes[0], /torn/);
  t.equal(parseJournal(good, { ...header, model: 'other' }).match, false);
  t.match(parseJournal(good, { ...header, space: 'other' }).notes[0], /search space changed/);
  t.match(parseJournal(good, { ...header, settings: 'other' }).notes[0], /settings changed/);
  const mid = parseJournal(encodeLine(header) + 'garbage\n' + encodeLine({ kind: 'failed', id: 'c', reason: 'r' }), header);
  t.equal(mid.entries.length, 0);
  t.match(mid.notes[0], /unreadable: it and the 1 line/);
});

t.test('the journal file: appends survive a reopen, a torn tail is cut, a foreign journal is set aside', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'j.jsonl');
  const a = await Journal.open(path, header);
  t.equal(a.resumed, false);
  await a.journal.append({ kind: 'trial', id: 'a', m: m('x') });
  await a.journal.append({ kind: 'failed', id: 'b', reason: 'r' });
  await a.journal.close();
  await a.journal.close(); // twice is fine
  await appendFile(path, '{"kind":"tri');
  const b = await Journal.open(path, header);
  t.equal(b.resumed, true);
  t.equal(b.state.trials.size, 1);
  t.equal(b.state.failed.size, 1);
  t.match(b.notes.join(' '), /torn/);
  await b.journal.append({ kind: 'confirm', id: 'a', m: m('x') });
  await b.journal.close();
  const lines = (await readFile(path, 'utf8')).trim().split('\n');
  t.equal(lines.length, 4, 'header, 2 entries, the new one; the torn line is gone');
  const c = await Journal.open(path, { ...header, model: 'changed' });
  t.equal(c.resumed, false);
  t.equal(c.state.trials.size, 0);
  t.ok(await stat(`${path}.stale`), 'the old journal was kept aside');
  await c.journal.close();
  await writeFile(path, '');
  const d = await Journal.open(path, header);
  t.equal(d.resumed, false);
  await d.journal.close();
});
