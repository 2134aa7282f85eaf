// Infinite numbers in written documents: "identical outputs" (SQNR = Infinity) must not read back as "missing".
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../../src/util/atomic.js';
import { infinityAsString, numberOrInfinity } from '../../src/util/json.js';
import { restoreMeasurement } from '../../src/fleet/result-doc.js';
import type { Measurement } from '../../src/types.js';

t.test('writeJsonAtomic with infinityAsString keeps ±Infinity apart from missing', async (t) => {
  const dir = t.testdir();
  const doc = { exact: { sqnrDb: Infinity, cosine: 1 }, lossy: { sqnrDb: 31.5 }, worst: -Infinity, unknown: NaN, label: 'Infinity' };
  await writeJsonAtomic(join(dir, 'plain.json'), doc);
  await writeJsonAtomic(join(dir, 'kept.json'), doc, infinityAsString);
  const plain = JSON.parse(await readFile(join(dir, 'plain.json'), 'utf8'));
  t.equal(plain.exact.sqnrDb, null, 'the default still loses it (why the replacer exists)');
  const text = await readFile(join(dir, 'kept.json'), 'utf8');
  t.match(text, /"sqnrDb": "Infinity"/);
  const kept = JSON.parse(text);
  t.same(kept, { exact: { sqnrDb: 'Infinity', cosine: 1 }, lossy: { sqnrDb: 31.5 }, worst: '-Infinity', unknown: null, label: 'Infinity' });
  t.equal(numberOrInfinity(kept.exact.sqnrDb), Infinity);
  t.equal(numberOrInfinity(kept.worst), -Infinity);
  t.equal(numberOrInfinity(kept.lossy.sqnrDb), 31.5);
  t.equal(numberOrInfinity(kept.unknown), undefined, 'NaN (unknown) reads as missing');
  t.equal(numberOrInfinity(kept.nothing), undefined);
  t.equal(numberOrInfinity('12'), undefined, 'other strings are not numbers');
});

t.test('the fleet restores an exact SQNR from either encoding', async (t) => {
  const m = (sqnrDb: unknown) => ({ v: 1, recipe: { v: 1 }, quality: { cosine: 1, sqnrDb } }) as unknown as Measurement;
  t.equal(restoreMeasurement(m(null)).quality.sqnrDb, Infinity, 'MQTT: null');
  t.equal(restoreMeasurement(m('Infinity')).quality.sqnrDb, Infinity, 'file / --json: "Infinity"');
  t.equal(restoreMeasurement(m(30)).quality.sqnrDb, 30);
  t.notOk('sqnrDb' in restoreMeasurement(m('garbage')).quality, 'an unreadable string is dropped, not kept as a string');
});
