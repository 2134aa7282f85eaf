import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fleetReport } from '../../src/fleet/api.js';
import { renderReport, reportData, writeReport } from '../../src/fleet/report.js';
import { ResultsStore, type FrontRow, type ResultRow } from '../../src/fleet/store/results.js';
import { SIM_KINDS, simMeasurement } from '../../src/fleet/sim/fake.js';
import { ticks } from '../../src/fleet/svg.js';

const pi = SIM_KINDS['raspberry-pi-4'];
const int8 = { v: 1 as const, quantize: { mode: 'dynamic' as const, perChannel: true }, session: { intraOpThreads: 4 } };
const fp32 = { v: 1 as const, session: { intraOpThreads: 4 } };
const json = (x: unknown) => JSON.parse(JSON.stringify(x));

function row(device: string, type: string, at: string, doc: unknown, target = 'raspberry-pi-4'): ResultRow {
  return { device, jobId: `${type}-${at}`, type, target, receivedAt: at, simulated: true, doc: json(doc), label: type === 'deploy' ? 'int8-dynamic t4' : undefined };
}

t.test('per target: devices with their deployed recipe and latest measurement, the merged front as a line', async (t) => {
  const results = [
    row('pi-1', 'bench', '2026-01-01T00:00:01Z', simMeasurement(pi, fp32, 'pi-1', 'm')),
    row('pi-1', 'deploy', '2026-01-01T00:00:02Z', { v: 1, deployed: { recipe: int8 } }),
    row('pi-1', 'bench', '2026-01-01T00:00:03Z', simMeasurement(pi, int8, 'pi-1', 'm')),
    row('pi-2', 'bench', '2026-01-01T00:00:04Z', simMeasurement(pi, fp32, 'pi-2', 'm')),
    row('gw-1', 'bench', '2026-01-01T00:00:05Z', { v: 1, recipe: fp32, label: 'fp32 t4', latencyMs: { p50: 1, p90: 1.2 }, quality: { sqnrDb: 41.5 } }, 'x86_64-avx2'),
  ];
  const front = [simMeasurement(pi, fp32, 'pi-3', 'm'), simMeasurement(pi, int8, 'pi-3', 'm')].map(json);
  const fronts: FrontRow[] = [{ runId: 'run-1', target: 'raspberry-pi-4', createdAt: '2026-01-01T00:00:00Z', percentile: 90, winner: front[1], front }];
  const data = reportData(results, fronts, { title: 'fleet <test> & co', now: new Date('2026-01-02T00:00:00Z') });
  t.same(data.targets.map((x) => x.target), ['raspberry-pi-4', 'x86_64-avx2']);
  const piT = data.targets[0];
  t.same(piT.devices.map((d) => [d.device, d.deployed, d.measured?.label]), [['pi-1', 'int8-dynamic t4', 'sim:int8-dynamic t4'], ['pi-2', undefined, 'sim:fp32 t4']],
    'the latest measurement wins; deploys set the deployed recipe');
  const html = renderReport(data);
  t.match(html, /<title>fleet &lt;test&gt; &amp; co<\/title>/, 'text is escaped');
  t.notMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'no scripts, no network assets');
  const sections = html.split('<section>').slice(1);
  t.equal(sections.length, 2);
  t.equal((sections[0].match(/class="point"/g) ?? []).length, 2, 'one circle per measured Pi');
  t.equal((sections[0].match(/class="front-point"/g) ?? []).length, 2, 'one square per front point');
  t.match(sections[0], /<polyline class="front"/);
  t.match(sections[0], /aria-label="raspberry-pi-4: deployed recipes and merged Pareto fronts"/);
  t.match(sections[0], />accuracy<\/text>/, 'accuracy axis when every figure has accuracy');
  t.match(sections[1], /SQNR to fp32/, 'SQNR axis when accuracy is unknown');
  t.match(sections[0], /winner sim:int8-dynamic t4/);
  t.match(html, /simulated<\/span> marks results from fleet-sim devices/);
});

t.test('an empty store gives a page that says so; writeReport writes the file', async (t) => {
  const dir = t.testdir();
  const store = await ResultsStore.open(join(dir, 'f.db'));
  t.teardown(() => store.close());
  const data = await writeReport(store, join(dir, 'r.html'));
  t.same(data.targets, []);
  t.match(readFileSync(join(dir, 'r.html'), 'utf8'), /No results recorded yet/);
});

t.test('fleetReport over several databases (one per collector): every device once, every front once', async (t) => {
  const dir = t.testdir();
  const front = [simMeasurement(pi, fp32, 'pi-3', 'm'), simMeasurement(pi, int8, 'pi-3', 'm')].map(json);
  const f: FrontRow = { runId: 'run-1', target: 'raspberry-pi-4', createdAt: '2026-01-01T00:00:00Z', percentile: 90, winner: front[1], front };
  const pi1 = row('pi-1', 'bench', '2026-01-01T00:00:01Z', simMeasurement(pi, fp32, 'pi-1', 'm'));
  const fill = async (file: string, rows: ResultRow[]) => {
    const s = await ResultsStore.open(join(dir, file));
    s.recordResults(rows);
    s.recordFront(f);
    await s.close();
  };
  // The same result and the same front in both files (a collector restarted onto another group member, say).
  await fill('a.db', [pi1]);
  await fill('b.db', [pi1, row('pi-2', 'bench', '2026-01-01T00:00:04Z', simMeasurement(pi, int8, 'pi-2', 'm')),
    row('gw-1', 'bench', '2026-01-01T00:00:05Z', { v: 1, recipe: fp32, label: 'fp32 t4', latencyMs: { p50: 1, p90: 1.2 }, quality: { sqnrDb: 41.5 } }, 'x86_64-avx2')]);
  const data = await fleetReport([join(dir, 'a.db'), join(dir, 'b.db')], join(dir, 'r.html'), { title: 'merged' });
  t.same(data.targets.map((x) => [x.target, x.devices.map((d) => d.device), x.fronts.length]), [['raspberry-pi-4', ['pi-1', 'pi-2'], 1], ['x86_64-avx2', ['gw-1'], 0]]);
  const html = readFileSync(join(dir, 'r.html'), 'utf8');
  t.match(html, /<title>merged<\/title>/);
  t.equal((html.match(/class="front-point"/g) ?? []).length, 2, 'the front stored twice is drawn once');
  const one = await fleetReport([join(dir, 'a.db')], join(dir, 'a.html'));
  t.same(one.targets.map((x) => x.devices.length), [1], 'one database alone has only its own devices');
});

t.test('axis ticks are round numbers inside the range', async (t) => {
  t.same(ticks(0, 10), [0, 2, 4, 6, 8, 10]);
  t.same(ticks(0.9, 0.92, 4), [0.9, 0.905, 0.91, 0.915, 0.92]);
  t.same(ticks(3, 3), [3]);
});
