import t from 'tap';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { Collector } from '../../src/fleet/collector.js';
import { dispatch } from '../../src/fleet/dispatch.js';
import { ResultsStore } from '../../src/fleet/store/results.js';
import { fleetResults } from '../../src/fleet/api.js';
import { allTargets, startBroker, startSession, startSims, until } from './helpers.js';

t.test('a collector records results of jobs sent by someone else, in batches, with each device\'s target', async (t) => {
  const { url } = await startBroker(t);
  const sim = await startSims(t, url, { count: 4 });
  const file = join(t.testdir(), 'collector.db');
  const store = await ResultsStore.open(file);
  // aedes has no shared subscriptions: the plain filters (shareGroup unset) are used here; see test/integration.
  const c = new Collector({ url, fleet: 'ft', store, targets: await allTargets(), clientId: 'col-1', batchMs: 20 });
  t.same(c.filters(), ['edgetune/ft/+/jobs/+/result', 'edgetune/ft/+/jobs/+/status']);
  await c.start();
  const { session } = await startSession(t, url, { store: false });
  const entries = await dispatch(session, { jobId: 'cj1', devices: sim.devices.map((d) => d.id), spec: { type: 'bench', params: { model: 'm' } } });
  t.equal(entries.filter((e) => e.verdict === 'SUCCEEDED').length, 4);
  await until(() => c.stats.results === 4 && c.stats.statuses === 4, 'collector saw 4 results and 4 final statuses');

  // A redelivered copy (at-least-once delivery) is not stored twice.
  const raw = await connectAsync(url, { clientId: 'replayer', reconnectPeriod: 0 });
  await raw.publishAsync(`edgetune/ft/${sim.devices[0].id}/jobs/cj1/result`, JSON.stringify(entries[0].result), { qos: 1 });
  await raw.endAsync();
  await until(() => c.stats.duplicates === 1, 'the duplicate counted');
  await c.stop();
  await store.close();

  const rows = await fleetResults([file]);
  t.equal(rows.length, 4);
  t.ok(rows.every((r) => r.jobId === 'cj1' && r.type === 'bench' && r.target && r.simulated));
  t.same(new Set(rows.map((r) => r.target)), new Set(['raspberry-pi-4', 'raspberry-pi-5', 'jetson-orin-nano', 'x86_64-avx2']));
});

t.test('results from several collectors\' databases read as one, duplicates dropped', async (t) => {
  const dir = t.testdir();
  const doc = { v: 1, recipe: { v: 1 }, label: 'fp32', latencyMs: { p50: 1, p90: 2 }, quality: {} };
  const a = await ResultsStore.open(join(dir, 'a.db'));
  a.recordResults([{ device: 'd1', jobId: 'j', receivedAt: '2026-01-01T00:00:01Z', doc }, { device: 'd2', jobId: 'j', receivedAt: '2026-01-01T00:00:03Z', doc }]);
  await a.close();
  const b = await ResultsStore.open(join(dir, 'b.db'));
  b.recordResults([{ device: 'd3', jobId: 'j', receivedAt: '2026-01-01T00:00:02Z', doc }, { device: 'd1', jobId: 'j', receivedAt: '2026-01-01T00:00:05Z', doc }]);
  await b.close();
  const rows = await fleetResults([join(dir, 'a.db'), join(dir, 'b.db')]);
  t.same(rows.map((r) => r.device), ['d1', 'd3', 'd2'], 'merged in time order, the second d1/j copy dropped');
});
