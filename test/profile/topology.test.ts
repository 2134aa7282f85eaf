import t from 'tap';
import { cachesFromSysfs, groupClusters, parseCpuList, parseSysfsSize, probeTopology } from '../../src/profile/topology.js';
import { cpuTemperature, parseCompatibleSoc, probeDisk, probeThermalZones, tensorrtVersion } from '../../src/profile/device.js';

t.test('clusters: big.LITTLE groups by core type and top frequency, in CPU order', async (t) => {
  const cpus = [0, 1, 2, 3].map((cpu) => ({ cpu, coreType: 'Cortex-A55', maxMHz: 1800, governor: 'schedutil' }))
    .concat([4, 5, 6, 7].map((cpu) => ({ cpu, coreType: 'Cortex-A76', maxMHz: cpu < 6 ? 2352 : 2400, governor: 'schedutil' })));
  t.same(groupClusters(cpus.reverse()), [
    { cpus: [0, 1, 2, 3], coreType: 'Cortex-A55', maxMHz: 1800, governor: 'schedutil' },
    { cpus: [4, 5], coreType: 'Cortex-A76', maxMHz: 2352, governor: 'schedutil' },
    { cpus: [6, 7], coreType: 'Cortex-A76', maxMHz: 2400, governor: 'schedutil' },
  ]);
  t.same(groupClusters([{ cpu: 0 }, { cpu: 1 }]), [{ cpus: [0, 1] }], 'nothing known: one group, no made-up MHz');
});

t.test('cpu lists and sysfs sizes', async (t) => {
  t.same(parseCpuList('0-3,6,8-9\n'), [0, 1, 2, 3, 6, 8, 9]);
  t.same(parseCpuList('3-1'), []);
  t.same(parseCpuList('x'), []);
  t.equal(parseSysfsSize('266240K\n'), 266240);
  t.equal(parseSysfsSize('2M'), 2048);
  t.equal(parseSysfsSize('big'), undefined);
});

t.test('caches from sysfs: instances are distinct sharing sets', async (t) => {
  const e = (cpu: number, level: string, type: string, size: string, shared: string) => ({ level, type, size, sharedCpuList: shared, cpu });
  const entries = [0, 1, 2, 3].flatMap((c) => [
    e(c, '1', 'Data', '64K', String(c)),
    e(c, '2', 'Unified', '512K', String(c)),
    e(c, '3', 'Unified', '2048K', '0-3'),
  ]);
  t.same(cachesFromSysfs(entries), [
    { level: 1, type: 'data', sizeKB: 64, instances: 4, sharedBy: 1 },
    { level: 2, type: 'unified', sizeKB: 512, instances: 4, sharedBy: 1 },
    { level: 3, type: 'unified', sizeKB: 2048, instances: 1, sharedBy: 4 },
  ]);
  t.same(cachesFromSysfs([e(0, 'x', 'Data', '64K', '0'), e(0, '1', 'Weird', '64K', '0'), e(0, '1', 'Data', '?', '0')]), [], 'junk entries skipped');
});

t.test('probeTopology reads a big.LITTLE tree (SYNTHETIC: shaped like an RK3588 sysfs, values from its lscpu)', async (t) => {
  const cpu = (khz: number, gov: string) => ({ cpufreq: { cpuinfo_max_freq: `${khz}\n`, scaling_governor: `${gov}\n` } });
  const root = t.testdir({
    sys: { devices: { system: { cpu: {
      cpu0: cpu(1800000, 'schedutil'), cpu1: cpu(1800000, 'schedutil'), cpu2: cpu(1800000, 'schedutil'), cpu3: cpu(1800000, 'schedutil'),
      cpu4: cpu(2400000, 'performance'), cpu5: cpu(2400000, 'performance'), cpufreq: {},
    } } } },
  });
  const types = ['Cortex-A55', 'Cortex-A55', 'Cortex-A55', 'Cortex-A55', 'Cortex-A76', 'Cortex-A76'];
  const { clusters, caches } = await probeTopology(root, types, 6);
  t.same(clusters, [
    { cpus: [0, 1, 2, 3], coreType: 'Cortex-A55', maxMHz: 1800, governor: 'schedutil' },
    { cpus: [4, 5], coreType: 'Cortex-A76', maxMHz: 2400, governor: 'performance' },
  ]);
  t.same(caches, []);
  const bare = await probeTopology(t.testdir({}), [], 2);
  t.same(bare.clusters, [{ cpus: [0, 1] }], 'no sysfs: CPUs from cpuinfo, nothing invented');
});

t.test('SoC from the device-tree compatible list (upstream dts strings)', async (t) => {
  t.equal(parseCompatibleSoc('raspberrypi,5-model-b\0brcm,bcm2712\0'), 'BCM2712');
  t.equal(parseCompatibleSoc('nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0'), 'Tegra234');
  t.equal(parseCompatibleSoc('radxa,rock-5b\0rockchip,rk3588\0'), 'RK3588');
  t.equal(parseCompatibleSoc('acme,widget\0'), 'acme widget');
  t.equal(parseCompatibleSoc(''), undefined);
  t.equal(parseCompatibleSoc('\0\0'), undefined);
});

t.test('thermal zones: all of them, the CPU one picked, unreadable ones kept without a temperature', async (t) => {
  const root = t.testdir({ sys: { class: { thermal: {
    thermal_zone0: { type: 'AO-therm\n', temp: '31500\n' },
    thermal_zone1: { type: 'CPU-therm\n', temp: '33000\n' },
    thermal_zone2: { type: 'GPU-therm\n', temp: 'garbage\n' },
    thermal_zone10: { type: 'PMIC-Die\n' },
  } } } });
  const zones = await probeThermalZones(root);
  t.same(zones.map((z) => z.zone), ['thermal_zone0', 'thermal_zone1', 'thermal_zone2', 'thermal_zone10']);
  t.same(zones[2], { zone: 'thermal_zone2', type: 'GPU-therm' });
  t.equal(cpuTemperature(zones), 33);
  t.equal(cpuTemperature([]), undefined);
});

t.test('TensorRT version from library names; free disk of the state folder', async (t) => {
  t.equal(tensorrtVersion(['libnvinfer.so', 'libnvinfer.so.10', 'libnvinfer.so.10.3.0']), '10.3.0');
  t.equal(tensorrtVersion(['libnvinfer.so']), undefined);
  const dir = t.testdir({ state: {} });
  const d = await probeDisk(`${dir}/state`);
  t.ok(d.disk!.freeMB >= 0 && d.disk!.totalMB > 0);
  t.ok(d.disk!.freeMB <= d.disk!.totalMB);
  const later = await probeDisk(`${dir}/not/yet/created`);
  t.equal(later.disk?.path, `${dir}/not/yet/created`, 'a state folder not created yet is measured on its parent filesystem');
});

t.test('arm64 auxv HWCAP words → ISA (bit numbers from the kernel UAPI hwcap.h)', async (t) => {
  const { isaFromHwcaps, parseAuxv } = await import('../../src/profile/auxv.js');
  // A Cortex-A76-like set: fp, asimd, fphp, asimdhp, asimddp.
  const hw = (1n << 0n) | (1n << 1n) | (1n << 9n) | (1n << 10n) | (1n << 20n);
  t.same(isaFromHwcaps(hw).isa, ['neon', 'dotprod', 'fp16']);
  t.same(isaFromHwcaps(hw, (1n << 13n) | (1n << 14n)).isa, ['neon', 'dotprod', 'i8mm', 'fp16', 'bf16']);
  const buf = new Uint8Array(64);
  const v = new DataView(buf.buffer);
  v.setBigUint64(0, 6n, true); v.setBigUint64(8, 4096n, true); // AT_PAGESZ
  v.setBigUint64(16, 16n, true); v.setBigUint64(24, hw, true); // AT_HWCAP
  v.setBigUint64(32, 26n, true); v.setBigUint64(40, 1n << 13n, true); // AT_HWCAP2
  t.same(parseAuxv(buf), { hwcap: hw, hwcap2: 1n << 13n });
  t.same(parseAuxv(new Uint8Array(7)), {}, 'a truncated vector gives nothing');
});
