// The fleet controller against a real Mosquitto: shared subscriptions split the results between collectors, and a
// broker restart in the middle of a fleet job loses no result. Runs with EDGETUNE_INTEGRATION=1 (npm run
// test:integration) and the mosquitto binary; otherwise it skips and says why.
import t from 'tap';
import { join } from 'node:path';
import { Collector } from '../../src/fleet/collector.js';
import { countOutcomes, dispatch } from '../../src/fleet/dispatch.js';
import { fleetResults } from '../../src/fleet/api.js';
import { FleetSession } from '../../src/fleet/session.js';
import { SimFleet } from '../../src/fleet/sim/fleet.js';
import { LocalMosquitto, findMosquitto } from '../../src/fleet/sim/mosquitto.js';
import { ResultsStore } from '../../src/fleet/store/results.js';
import { loadTargets } from '../../src/targets/load.js';

const skip = process.env.EDGETUNE_INTEGRATION !== '1'
  ? 'fleet integration: run with `npm run test:integration` (EDGETUNE_INTEGRATION=1)'
  : !findMosquitto() ? 'fleet integration: mosquitto is not installed (apt-get install mosquitto)' : false;

async function setup(t: any, count: number, costMs: number) {
  const dir = t.testdir();
  const mq = new LocalMosquitto({ dir: join(dir, 'mq') });
  await mq.start();
  t.teardown(() => mq.stop());
  const targets = await loadTargets();
  const sim = new SimFleet({ url: mq.url, fleet: 'it', count, stateRoot: join(dir, 'sims'), behaviour: { costMs }, targets, reconnect: { minMs: 100, maxMs: 1000 } });
  t.teardown(() => sim.stop());
  await sim.start();
  const session = new FleetSession({ url: mq.url, fleet: 'it', targets, settleMs: 300, graceS: 30 });
  t.teardown(() => session.stop());
  await session.start();
  return { dir, mq, sim, session, targets };
}

const until = async (pred: () => boolean, what: string, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

t.test('two collectors in one $share group split the results; together they have every one, once', { skip }, async (t) => {
  const { dir, mq, sim, session, targets } = await setup(t, 24, 50);
  const cols = await Promise.all([1, 2].map(async (i) => {
    const store = await ResultsStore.open(join(dir, `c${i}.db`));
    const c = new Collector({ url: mq.url, fleet: 'it', store, targets, shareGroup: 'edgetune', clientId: `it-col-${i}`, batchMs: 20 });
    await c.start();
    return { c, store };
  }));
  t.match(cols[0].c.filters(), ['$share/edgetune/edgetune/it/+/jobs/+/result', '$share/edgetune/edgetune/it/+/jobs/+/status']);
  const entries = await dispatch(session, { jobId: 'share1', devices: sim.devices.map((d) => d.id), spec: { type: 'bench', params: { model: 'm' } } });
  t.equal(countOutcomes(entries).succeeded, 24);
  await until(() => cols[0].c.stats.results + cols[1].c.stats.results === 24, '24 results across the collectors');
  for (const { c, store } of cols) {
    await c.stop();
    await store.close();
  }
  const [a, b] = cols.map((x) => x.c.stats.results);
  t.ok(a > 0 && b > 0, `both collectors took a share of the load (${a} + ${b})`);
  t.equal(cols[0].c.stats.duplicates + cols[1].c.stats.duplicates, 0, 'no message went to both');
  const rows = await fleetResults([join(dir, 'c1.db'), join(dir, 'c2.db')]);
  t.equal(rows.length, 24);
  t.equal(new Set(rows.map((r) => r.device)).size, 24);
});

t.test('a broker restart in the middle of a fleet job: every device\'s result still arrives', { skip }, async (t) => {
  const { mq, sim, session } = await setup(t, 40, 1500);
  const p = dispatch(session, { jobId: 'restart1', devices: sim.devices.map((d) => d.id), spec: { type: 'bench', params: { model: 'm' }, timeoutS: 60 } });
  await until(() => sim.devices.every((d) => session.tracker.get(d.id, 'restart1')?.state === 'IN_PROGRESS'), 'every device working');
  await mq.restart(300);
  t.comment('mosquitto restarted while 40 devices were mid-job');
  const entries = await p;
  t.same(countOutcomes(entries).byVerdict, { SUCCEEDED: 40 }, 'no result lost, none left without an answer');
  t.ok(entries.every((e) => e.result !== undefined));
  await until(() => session.view.records().every((r) => r.online), 'every device back online in the controller\'s view');
});
