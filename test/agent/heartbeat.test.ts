import t from 'tap';
import { Heartbeat, isNews, type HealthDoc, type HealthReading } from '../../src/agent/heartbeat.js';
import { memoryLogger } from '../../src/agent/log.js';
import { healthProbe } from '../../src/profile/health.js';
import { ManualClock, until } from './helpers.js';

function rig(settings = { intervalS: 60, minGapS: 10, tempDeltaC: 3 }) {
  const clock = new ManualClock();
  const sent: HealthDoc[] = [];
  let reading: HealthReading = { tempC: 50, load1: 0.1, memAvailableMB: 1000, notes: [] };
  let job: { id: string; type: string } | undefined;
  const hb = new Heartbeat({
    settings,
    // The probe is the real one's shape; the test sets the readings to drive the throttle.
    probe: async () => reading,
    facts: () => ({ session: 3, ...(job ? { job } : {}), queued: 0, outbox: 0, rssMB: 40, uptimeS: Math.round(clock.now() / 1000) }),
    publish: async (d) => { sent.push(d); },
    clock,
    log: memoryLogger(),
  });
  return { clock, sent, hb, set: (r: Partial<HealthReading>) => { reading = { ...reading, ...r }; }, setJob: (j?: { id: string; type: string }) => { job = j; } };
}

const settle = () => new Promise((r) => setImmediate(r));

t.test('a full report every intervalS; news no more often than minGapS', async (t) => {
  const { clock, sent, hb, set, setJob } = rig();
  hb.start();
  clock.advance(0);
  await until(() => sent.length === 1, 'first report at start');
  t.match(sent[0], { v: 1, session: 3, tempC: 50, job: null, agentRssMB: 40 });
  for (let i = 0; i < 5; i++) { clock.advance(10_000); await settle(); }
  t.equal(sent.length, 1, 'nothing new within the interval: quiet');
  clock.advance(10_000);
  await until(() => sent.length === 2, 'heartbeat due at 60 s');
  set({ tempC: 51 });
  clock.advance(10_000);
  await settle();
  t.equal(sent.length, 2, 'a 1 °C change is not news');
  set({ tempC: 55 });
  clock.advance(10_000);
  await until(() => sent.length === 3, 'a 5 °C change is');
  setJob({ id: 'j1', type: 'tune' });
  hb.poke();
  await settle();
  t.equal(sent.length, 3, 'a job start within minGapS waits');
  clock.advance(10_000);
  await until(() => sent.length === 4, 'and goes out at the next tick');
  t.match(sent[3], { job: { id: 'j1', type: 'tune' } });
  await hb.publishNow();
  t.equal(sent.length, 5, 'publishNow ignores the throttle (used on every connect)');
  hb.stop();
  t.same(clock.pending(), [], 'stop clears the timer');
});

t.test('isNews: throttling flips and unknown temperatures count', async (t) => {
  const base = { v: 1, ts: '', job: null, queued: 0, outbox: 0, agentRssMB: 1, uptimeS: 1, notes: [] } as HealthDoc;
  t.ok(isNews(undefined, base, 3));
  t.notOk(isNews(base, { ...base, load1: 3 }, 3), 'load alone is not news');
  t.ok(isNews({ ...base, throttled: false }, { ...base, throttled: true }, 3));
  t.ok(isNews({ ...base, tempC: 40 }, base, 3), 'temperature became unknown');
});

t.test('the real light probe on this machine: known values present, unknown ones absent with a note', async (t) => {
  const h = await healthProbe();
  t.ok(h.memAvailableMB === undefined || h.memAvailableMB > 0);
  t.ok(h.load1 === undefined || h.load1 >= 0);
  if (h.tempC === undefined) t.ok(h.notes.some((n) => /temperature unknown/.test(n)), 'missing temperature is explained');
});
