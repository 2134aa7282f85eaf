import t from 'tap';
import { clustersFromMaxFreqs, parseDeviceTreeModel, parseMeminfo, parseMilliCelsius, parseOsRelease, parseThrottled } from '../../src/profile/sysfs.js';
import { deviceId } from '../../src/profile/id.js';

t.test('device-tree model: the trailing NUL goes, an empty string is no model', async (t) => {
  t.equal(parseDeviceTreeModel('Raspberry Pi 5 Model B Rev 1.0\0'), 'Raspberry Pi 5 Model B Rev 1.0');
  t.equal(parseDeviceTreeModel('NVIDIA Jetson Orin Nano Developer Kit\0\0'), 'NVIDIA Jetson Orin Nano Developer Kit');
  t.equal(parseDeviceTreeModel('\0'), undefined);
  t.equal(parseDeviceTreeModel(''), undefined);
});

t.test('cpufreq: kHz per CPU → distinct MHz in CPU order, junk skipped', async (t) => {
  t.same(clustersFromMaxFreqs(['1800000\n', '1800000\n', '1800000\n', '1800000\n']), [1800]);
  t.same(clustersFromMaxFreqs(['1800000', '1800000', '2352000', '2352000']), [1800, 2352]);
  t.same(clustersFromMaxFreqs(['1510400']), [1510]);
  t.same(clustersFromMaxFreqs(['', 'garbage', '0', '-5']), []);
  t.same(clustersFromMaxFreqs([]), []);
});

t.test('meminfo: kB → MB; a missing MemAvailable stays undefined', async (t) => {
  t.same(parseMeminfo('MemTotal:        3882988 kB\nMemFree:         1742228 kB\nMemAvailable:    3412232 kB\n'), { totalMB: 3792, availableMB: 3332 });
  t.same(parseMeminfo('MemTotal:        1024000 kB\nMemFree:          512000 kB\n'), { totalMB: 1000 });
  t.same(parseMeminfo(''), {});
});

t.test('os-release: PRETTY_NAME, else NAME VERSION', async (t) => {
  t.equal(parseOsRelease('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\n'), 'Debian GNU/Linux 13 (trixie)');
  t.equal(parseOsRelease("NAME='Ubuntu'\nVERSION='22.04.4 LTS (Jammy Jellyfish)'\n"), 'Ubuntu 22.04.4 LTS (Jammy Jellyfish)');
  t.equal(parseOsRelease('# nothing\n'), undefined);
});

t.test('thermal zone millidegrees; impossible readings are unknown', async (t) => {
  t.equal(parseMilliCelsius('47250\n'), 47.3);
  t.equal(parseMilliCelsius('-273150'), undefined);
  t.equal(parseMilliCelsius(''), undefined);
  t.equal(parseMilliCelsius('n/a'), undefined);
});

t.test('Raspberry Pi get_throttled: only the "now" bits count', async (t) => {
  t.equal(parseThrottled('0\n'), false);
  t.equal(parseThrottled('50000'), false, 'bits 16/18: happened since boot, not now');
  t.equal(parseThrottled('50005'), true, 'under-voltage and throttled now');
  t.equal(parseThrottled('0x8'), true, 'soft temperature limit now');
  t.equal(parseThrottled('throttled=0x0'), false, 'vcgencmd form');
  t.equal(parseThrottled('nope'), undefined);
});

t.test('device id: machine-id hashed, then board serial, then hostname', async (t) => {
  const a = deviceId({ machineId: '3d1219c7c4c5404aaa1f6d2a48adfda4\n', serial: 'abc', hostname: 'pi' });
  t.match(a.id, /^m-[0-9a-f]{16}$/);
  t.notMatch(a.id, /3d1219c7/, 'machine-id is not exposed raw');
  t.equal(a.note, undefined);
  t.equal(deviceId({ machineId: '3D1219C7C4C5404AAA1F6D2A48ADFDA4' }).id, a.id, 'stable across case');
  t.not(deviceId({ machineId: '00000000000000000000000000000001' }).id, a.id);
  const s = deviceId({ machineId: 'not-an-id', serial: '100000000fe69593', hostname: 'raspberrypi' });
  t.match(s.id, /^s-[0-9a-f]{16}$/);
  t.match(s.note, /board serial/);
  t.same(deviceId({ serial: '0000000000000000', hostname: 'raspberrypi' }).id, 'h-raspberrypi', 'an all-zero serial identifies nothing');
  t.match(deviceId({ hostname: 'raspberrypi' }).note, /other devices may share/);
  t.equal(deviceId({}).id, 'unknown');
});
