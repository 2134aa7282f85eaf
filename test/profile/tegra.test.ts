import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNvpmodel, parseNvTegraRelease, parseTegrastats } from '../../src/profile/tegra.js';
import { describeThrottle, isThrottledNow, parseThrottleFlags, parseVcgencmdTemp } from '../../src/profile/throttle.js';

const fx = (device: string, rel: string) => readFileSync(join(import.meta.dirname, '../fixtures/profile', device, rel), 'utf8');

t.test('nv_tegra_release → L4T release', async (t) => {
  t.same(parseNvTegraRelease(fx('jetson-nano', 'etc/nv_tegra_release')), { l4t: '32.7.6', board: 't210ref' });
  t.same(parseNvTegraRelease(fx('jetson-orin-nano', 'etc/nv_tegra_release')), { l4t: '36.4.3', board: 'generic' });
  // R32.5 wrote a bare "REVISION: 5" (quoted in public JetPack 4.5 notes).
  t.same(parseNvTegraRelease('# R32 (release), REVISION: 5, GCID: 25531747, BOARD: t186ref, EABI: aarch64, DATE: Sat Nov 07 23:21:05 UTC 2020'), { l4t: '32.5', board: 't186ref' });
  t.equal(parseNvTegraRelease(''), undefined);
  t.equal(parseNvTegraRelease('jetson-custom-build'), undefined);
});

t.test('nvpmodel -q: the mode survives the NVPM ERROR lines a non-root run adds (jetbot#49)', async (t) => {
  t.same(parseNvpmodel(fx('jetson-nano', 'cmd/nvpmodel-q.txt')), { name: '5W', id: 1 });
  t.same(parseNvpmodel('NV Power Mode: MAXN\n0\n'), { name: 'MAXN', id: 0 });
  t.same(parseNvpmodel('NV Power Mode: MAXN_SUPER\n'), { name: 'MAXN_SUPER' }, 'no id line: id unknown');
  t.equal(parseNvpmodel('NVPM ERROR: failed to read\n'), undefined);
  t.equal(parseNvpmodel(''), undefined);
});

t.test('tegrastats: Nano (JetPack 4, POM rails) and Orin (JetPack 6, mW rails, timestamp, tj)', async (t) => {
  const nano = parseTegrastats(fx('jetson-nano', 'cmd/tegrastats.txt'))!;
  t.same([nano.ramUsedMB, nano.ramTotalMB, nano.swapTotalMB], [613, 3964, 1982]);
  t.same(nano.cpus, [{ loadPct: 2, mhz: 102 }, { loadPct: 1, mhz: 102 }, { loadPct: 0, mhz: 102 }, { loadPct: 0, mhz: 102 }]);
  t.equal(nano.gpuLoadPct, 0);
  t.same(nano.tempsC, { PLL: 39, CPU: 40.5, GPU: 41, AO: 46, thermal: 41 }, 'PMIC@100C is a fixed placeholder, left out');
  t.same(nano.powerMW, { POM_5V_IN: 900, POM_5V_GPU: 0, POM_5V_CPU: 123 });
  const orin = parseTegrastats(fx('jetson-orin-nano', 'cmd/tegrastats.txt'))!;
  t.equal(orin.cpus.length, 6);
  t.equal(orin.tempsC.tj, 45.968);
  t.equal(orin.tempsC.cpu, 44.156);
  t.same(orin.powerMW, { VDD_IN: 5263, VDD_CPU_GPU_CV: 717, VDD_SOC: 1794 });
  // AGX Xavier with the power mode parking four CPUs (DataDog/datadog-agent's Jetson check test sample).
  const xavier = parseTegrastats('RAM 4083/31919MB (lfb 6179x4MB) SWAP 0/15959MB (cached 0MB) CPU [0%@1190,0%@1190,0%@1190,1%@1190,off,off,off,off] EMC_FREQ 0% GR3D_FREQ 0% AO@42C GPU@42C Tdiode@44.75C PMIC@100C AUX@41.5C CPU@42C thermal@41.6C Tboard@41C GPU 0/16 CPU 310/432 SOC 931/953 CV 0/0 VDDRQ 466/488 SYS5V 1522/1559')!;
  t.equal(xavier.cpus.filter((c) => c === 'off').length, 4);
  t.equal(parseTegrastats('tegrastats: command not found'), undefined);
  t.equal(parseTegrastats(''), undefined);
});

t.test('get_throttled bits: recorded Pi outputs', async (t) => {
  // raspberrypi/firmware#615 (a Pi 3 on a weak supply): under-voltage and throttled now, both since boot.
  const weak = parseThrottleFlags('throttled=0x50005\n', 'vcgencmd get_throttled')!;
  t.same([weak.underVoltage, weak.frequencyCapped, weak.throttled, weak.softTempLimit], [true, false, true, false]);
  t.same(weak.occurred, { underVoltage: true, frequencyCapped: false, throttled: true, softTempLimit: false });
  t.equal(isThrottledNow(weak), true);
  t.equal(describeThrottle(weak), 'under-voltage, throttled now; under-voltage, throttling since boot (0x50005 from vcgencmd get_throttled)');
  // raspberrypi/linux#2367 (a Pi 3B+): the soft temperature limit is active now.
  const hot = parseThrottleFlags(fx('raspberry-pi-3', 'cmd/vcgencmd-get_throttled.txt'), 'vcgencmd')!;
  t.equal(hot.softTempLimit, true);
  t.equal(hot.occurred.softTempLimit, true);
  // A Pi that was under-powered earlier but is fine now (harlemsquirrel.github.io, 2019): not throttled now.
  t.equal(isThrottledNow(parseThrottleFlags('throttled=0x50000', 'x')!), false);
  t.equal(isThrottledNow(parseThrottleFlags('0', 'sysfs')!), false);
  t.equal(parseThrottleFlags('50005', 'sysfs')!.raw, '0x50005', 'sysfs prints hex without 0x');
  t.equal(parseThrottleFlags('VCHI initialization failed', 'x'), undefined);
  t.equal(parseThrottleFlags('', 'x'), undefined);
});

t.test('vcgencmd measure_temp', async (t) => {
  t.equal(parseVcgencmdTemp("temp=62.3'C\n"), 62.3);
  t.equal(parseVcgencmdTemp('error=1 error_msg="Command not registered"'), undefined);
});
