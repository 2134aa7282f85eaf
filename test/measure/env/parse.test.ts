import t from 'tap';
import { readFileSync } from 'node:fs';
import { decodeThrottled, formatThrottled, parseKHz, parseLoadAvg, parseMeasureClock, parseMeasureTemp, parseNvpmodel } from '../../../src/measure/env/parse.js';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/measure/env/${name}`, import.meta.url), 'utf8');

t.test('get_throttled words recorded on real Raspberry Pis', async (t) => {
  const occurred = decodeThrottled(fixture('rpi3-vcgencmd-0x50000.txt'))!;
  t.same(occurred, { raw: 0x50000, now: [], sinceBoot: ['under-voltage', 'throttled'] }, '0x50000: happened before, not now');
  const now = decodeThrottled(fixture('rpi3-vcgencmd-0x50005.txt'))!;
  t.same(now.now, ['under-voltage', 'throttled'], '0x50005: under-voltage and throttled now');
  t.same(now.sinceBoot, ['under-voltage', 'throttled']);
  const soft = decodeThrottled(fixture('rpi3bplus-vcgencmd-0x80008.txt'))!;
  t.same(soft, { raw: 0x80008, now: ['soft-temperature-limit'], sinceBoot: ['soft-temperature-limit'] });
  t.equal(formatThrottled(soft), '0x80008');
  t.same(decodeThrottled(fixture('rpi3bplus-sysfs-get_throttled.txt')), { raw: 0, now: [], sinceBoot: [] }, 'the sysfs node: hex without 0x');
  t.same(decodeThrottled(fixture('rpi-measure-clock-temp-throttled.txt')), { raw: 0, now: [], sinceBoot: [] }, 'found among other vcgencmd lines');
  t.same(decodeThrottled('throttled=0xe0000')!.sinceBoot, ['arm-frequency-capped', 'throttled', 'soft-temperature-limit'], 'Pi 4 over-temperature history');
  t.equal(decodeThrottled('VCHI initialization failed'), undefined, 'an error message is not a word');
  t.equal(decodeThrottled(''), undefined);
});

t.test('vcgencmd clock and temperature', async (t) => {
  const text = fixture('rpi-measure-clock-temp-throttled.txt');
  t.equal(parseMeasureClock(text), 1400);
  t.equal(parseMeasureTemp(text), 62.3);
  t.equal(parseMeasureTemp(fixture('rpi3-vcgencmd-0x50000.txt')), 39.2, 'the first reading');
  t.equal(parseMeasureClock('frequency(48)=0'), undefined, 'a zero clock is no reading');
  t.equal(parseMeasureTemp('error=2'), undefined);
});

t.test('nvpmodel -q recorded on Jetsons', async (t) => {
  t.same(parseNvpmodel(fixture('jetson-nano-nvpmodel-q.txt')), { name: '5W', id: 1 });
  t.same(parseNvpmodel(fixture('jetson-nano-nvpmodel-q-nonroot.txt')), { name: '5W', id: 1 }, 'NVPM ERROR lines without root are ignored');
  t.same(parseNvpmodel(fixture('jetson-thor-nvpmodel-q.txt')), { name: 'MAXN', id: 0 });
  t.same(parseNvpmodel('NV Power Mode: MODE_15W_2CORE\n'), { name: 'MODE_15W_2CORE' }, 'no id line: name only');
  t.equal(parseNvpmodel('nvpmodel: command not found'), undefined);
});

t.test('cpufreq kHz files', async (t) => {
  t.equal(parseKHz('1500000\n'), 1500);
  t.equal(parseKHz('<unknown>'), undefined);
  t.equal(parseKHz('0'), undefined);
  t.equal(parseLoadAvg('0.52 0.58 0.59 1/467 12345\n'), 0.52);
  t.equal(parseLoadAvg('garbage'), undefined);
});
