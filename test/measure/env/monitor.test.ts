import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EnvMonitor, assessEnv } from '../../../src/measure/env/monitor.js';
import { readSnapshot, type ExecFn } from '../../../src/measure/env/probe.js';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/measure/env/${name}`, import.meta.url), 'utf8');

/** A /sys tree in the kernel's formats: four CPUs at `khz` (cap `capKhz`, hardware max 1800 MHz) and one CPU thermal zone. */
type Tree = { [name: string]: string | Tree };

function sysTree(khz: number, capKhz = 1_800_000, milliC = 45_000): Tree {
  const cpu = (): Tree => ({ cpufreq: { scaling_cur_freq: `${khz}\n`, scaling_max_freq: `${capKhz}\n`, cpuinfo_max_freq: '1800000\n' } });
  return {
    proc: { loadavg: '0.52 0.58 0.59 1/467 12345\n' },
    sys: {
      devices: { system: { cpu: { cpu0: cpu(), cpu1: cpu(), cpu2: cpu(), cpu3: cpu(), online: '0-3\n' } } },
      class: { thermal: { thermal_zone0: { type: 'cpu-thermal\n', temp: `${milliC}\n` } } },
    },
  };
}

/** Plays recorded tool outputs: `outputs[cmd]` is a queue, the last entry repeats; a missing tool gives undefined. */
function replay(outputs: Record<string, string[]>): ExecFn {
  return async (cmd, args) => {
    const key = [cmd, ...args].join(' ');
    const q = outputs[key];
    if (!q) return undefined;
    return q.length > 1 ? q.shift() : q[0];
  };
}

const setFreq = (root: string, khz: number) => {
  for (let c = 0; c < 4; c++) writeFileSync(join(root, `sys/devices/system/cpu/cpu${c}/cpufreq/scaling_cur_freq`), `${khz}\n`);
};

t.test('a full reading from /sys and the tools', async (t) => {
  const root = t.testdir(sysTree(1_500_000));
  const s = await readSnapshot(0, true, { root, exec: replay({ 'vcgencmd get_throttled': [fixture('rpi3bplus-vcgencmd-0x80008.txt')], 'vcgencmd measure_clock arm': [fixture('rpi-measure-clock-temp-throttled.txt')] }) });
  t.same(s.freqMHz, [1500, 1500, 1500, 1500]);
  t.same(s.capMHz, [1800, 1800, 1800, 1800]);
  t.same(s.hwMaxMHz, [1800, 1800, 1800, 1800]);
  t.equal(s.tempC, 45);
  t.equal(s.armClockMHz, 1400);
  t.equal(s.throttle?.raw, 0x80008);
  t.equal(s.throttleSource, 'vcgencmd get_throttled');
  t.equal(s.loadAvg1, 0.52);
  t.equal(s.cpus, 4);
  const cheap = await readSnapshot(5, false, { root, exec: async () => { throw new Error('a sample must not spawn tools'); } });
  t.same(Object.keys(cheap).sort(), ['freqMHz', 't', 'tempC']);
});

t.test('the firmware sysfs node when vcgencmd is absent', async (t) => {
  const tree = sysTree(1_500_000);
  const devices = (tree.sys as Tree).devices as Tree;
  devices.platform = { 'soc@107c000000': { 'soc@107c000000:firmware': { get_throttled: '50005\n' } } };
  const s = await readSnapshot(0, true, { root: t.testdir(tree), exec: replay({}) });
  t.same(s.throttle?.now, ['under-voltage', 'throttled'], 'Pi 5 address-named node');
  t.match(s.throttleSource, /soc@107c000000:firmware\/get_throttled$/);
});

t.test('steady clocks: not throttled', async (t) => {
  const root = t.testdir(sysTree(1_800_000));
  const m = await EnvMonitor.start({ root, exec: replay({}), intervalMs: 0 });
  m.markTimed();
  await m.sample();
  await m.sample();
  const r = await m.stop();
  t.equal(r.throttled, false);
  t.same(r.warnings, []);
  t.equal(r.freqMHzMin, 1800);
  t.equal(r.freqMHzMax, 1800);
  t.equal(r.samples, 2);
  t.equal(r.tempCBefore, 45);
});

t.test('a clock drop during the timed runs is flagged; one during warm-up is not', async (t) => {
  const root = t.testdir(sysTree(600_000));
  const m = await EnvMonitor.start({ root, exec: replay({}), intervalMs: 0 });
  await m.sample(); // warm-up: the governor still ramping up from 600 MHz
  setFreq(root, 1_800_000);
  m.markTimed();
  await m.sample();
  setFreq(root, 1_200_000);
  await m.sample();
  const r = await m.stop();
  t.equal(r.throttled, true);
  t.equal(r.freqMHzMin, 1200);
  t.equal(r.freqMHzMax, 1800);
  t.match(r.warnings, [/CPU frequency changed during the timed runs \(1200-1800 MHz\)/]);
});

t.test('Raspberry Pi bits before and after, from recorded outputs', async (t) => {
  const root = t.testdir(sysTree(1_400_000, 1_400_000));
  // before: 0x50000 (happened earlier, fine now); after: 0x50005 (under-voltage and throttled now)
  const exec = replay({ 'vcgencmd get_throttled': [fixture('rpi3-vcgencmd-0x50000.txt'), fixture('rpi3-vcgencmd-0x50005.txt')] });
  const m = await EnvMonitor.start({ root, exec, intervalMs: 0 });
  await m.sample();
  const r = await m.stop();
  t.equal(r.throttled, true);
  t.same(r.throttledFlags, ['under-voltage', 'throttled']);
  t.same(r.throttledRaw, { before: '0x50000', after: '0x50005', source: 'vcgencmd get_throttled' });
  t.match(r.warnings, [/firmware reports under-voltage, throttled/]);
  t.match(r.notes, [/capped at 1400 of 1800 MHz/]);
});

t.test('a sticky bit that appears during the run means it happened during the run', async (t) => {
  const after = { t: 1, throttle: { raw: 0x80000, now: [], sinceBoot: ['soft-temperature-limit'] } };
  const r = assessEnv({ t: 0, throttle: { raw: 0, now: [], sinceBoot: [] } }, [], after);
  t.equal(r.throttled, true);
  t.same(r.throttledFlags, ['soft-temperature-limit']);
  const old = assessEnv({ t: 0, throttle: { raw: 0x80000, now: [], sinceBoot: ['soft-temperature-limit'] } }, [], after);
  t.equal(old.throttled, false, 'already set before: an old event, not this run');
});

t.test('cap lowered, power mode changed, heat', async (t) => {
  const r = assessEnv(
    { t: 0, capMHz: [1500, 1500], hwMaxMHz: [1500, 1500], tempC: 50, powerMode: { name: 'MAXN', id: 0 } },
    [{ t: 1, tempC: 62 }],
    { t: 2, capMHz: [1200, 1500], tempC: 61, powerMode: { name: '5W', id: 1 } },
  );
  t.equal(r.throttled, true);
  t.match(r.warnings, [/cap fell from 1500 to 1200 MHz/, /power mode changed during the run \(MAXN → 5W\)/]);
  t.equal(r.tempCMax, 62);
  t.match(r.notes.join('\n'), /temperature rose from 50 to 62 °C/);
  t.same(r.powerMode, { name: 'MAXN', id: 0 });
});

t.test('a device that exposes nothing: unknown, and says so', async (t) => {
  const m = await EnvMonitor.start({ root: t.testdir({}), exec: replay({}), intervalMs: 0 });
  await m.sample();
  const r = await m.stop();
  t.equal(r.throttled, null);
  t.match(r.notes, [/CPU frequency unknown/, /temperature unknown/, /throttling unknown/]);
  t.equal(r.freqMHzBefore, undefined, 'unknown stays undefined, never 0');
});

t.test('the timer samples by itself and stops on dispose', async (t) => {
  const root = t.testdir(sysTree(1_000_000));
  const m = await EnvMonitor.start({ root, exec: replay({}), intervalMs: 20 });
  await new Promise((r) => setTimeout(r, 150));
  const r = await m.stop();
  t.ok(r.samples >= 2, `${r.samples} samples in 150 ms`);
  const d = await EnvMonitor.start({ root, exec: replay({}), intervalMs: 20 });
  d.dispose();
  t.pass('dispose clears the timer (the test would hang otherwise)');
});

t.test('a busy device is a warning, not throttling', async (t) => {
  const busy = assessEnv({ t: 0, loadAvg1: 5.3, cpus: 4, freqMHz: [1500] }, [{ t: 1, freqMHz: [1500] }], { t: 2 });
  t.equal(busy.throttled, false);
  t.match(busy.warnings, [/busy before the run \(load average 5\.3 on 4 CPUs\)/]);
  t.equal(busy.loadAvgBefore, 5.3);
  const idle = assessEnv({ t: 0, loadAvg1: 0.5, cpus: 4 }, [], { t: 2 });
  t.same(idle.warnings, []);
});
