import t from 'tap';
import { healthProbe, parseLoadavg } from '../../src/profile/health.js';

t.test('a recorded tree: temperature, load, memory and the Pi throttle bits', async (t) => {
  const root = t.testdir({
    proc: { loadavg: '1.25 0.80 0.51 2/301 4711\n', meminfo: 'MemTotal:  3882988 kB\nMemAvailable:  3412232 kB\n' },
    sys: {
      class: { thermal: { thermal_zone0: { type: 'cpu-thermal\n', temp: '61234\n' } } },
      devices: { platform: { soc: { 'soc:firmware': { get_throttled: '50005\n' } } } },
    },
  });
  const h = await healthProbe({ root, now: () => new Date('2025-01-02T03:04:05Z') });
  t.same({ ...h, costMs: 0 }, { v: 1, ts: '2025-01-02T03:04:05.000Z', tempC: 61.2, load1: 1.25, memAvailableMB: 3332, throttled: true, notes: [], costMs: 0 });
  t.type(h.costMs, 'number');
});

t.test('missing or malformed files: absent fields with notes, never zeros', async (t) => {
  const root = t.testdir({ proc: { loadavg: 'garbage\n', meminfo: 'MemTotal: 1000 kB\n' } });
  const h = await healthProbe({ root });
  t.equal(h.tempC, undefined);
  t.equal(h.load1, undefined);
  t.equal(h.memAvailableMB, undefined);
  t.equal(h.throttled, undefined);
  t.equal(h.notes.length, 4);
  t.equal(parseLoadavg(''), undefined);
  t.equal(parseLoadavg('0.00 0.01 0.05 1/2 3'), 0, 'a real idle 0 is kept');
});

t.test('this machine, live: load and memory known, cost recorded', async (t) => {
  const h = await healthProbe();
  t.equal(h.v, 1);
  t.type(h.load1, 'number');
  t.ok(h.memAvailableMB! > 0);
  t.type(h.costMs, 'number');
  t.ok(Date.parse(h.ts) > 0);
});
