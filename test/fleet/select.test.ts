import t from 'tap';
import { globToRegExp, newRunId, selectDevices } from '../../src/fleet/select.js';
import type { DeviceRecord } from '../../src/fleet/view.js';

const recs: DeviceRecord[] = [
  { device: 'rpi4-b', target: 'raspberry-pi-4', online: true },
  { device: 'rpi4-a', target: 'raspberry-pi-4', online: false },
  { device: 'x86-1', target: 'x86_64-avx2', online: true },
  { device: 'x86.2', target: 'x86_64-avx2', online: true },
];
const ids = (r: { selected: DeviceRecord[] }) => r.selected.map((d) => d.device);

t.test('ids, globs, lists, targets and all', async (t) => {
  t.same(ids(selectDevices(recs, { all: true })), ['rpi4-a', 'rpi4-b', 'x86-1', 'x86.2'], 'sorted by id');
  t.same(ids(selectDevices(recs, { target: 'x86_64-avx2' })), ['x86-1', 'x86.2']);
  t.same(ids(selectDevices(recs, { devices: ['rpi4-*'] })), ['rpi4-a', 'rpi4-b']);
  t.same(ids(selectDevices(recs, { devices: ['x86-1,rpi4-b', 'x86-1'] })), ['rpi4-b', 'x86-1'], 'comma lists, repeats once');
  t.same(ids(selectDevices(recs, { devices: ['x86?2'] })), ['x86.2'], '? is one character');
  t.same(ids(selectDevices(recs, { devices: ['x86.*'] })), ['x86.2'], 'a dot is literal');
  t.same(selectDevices(recs, { devices: ['ghost', 'gh*'] }).unknown, ['ghost'], 'a plain id nobody has is reported; a glob matching nothing is not');
});

t.test('exactly one way of naming devices', async (t) => {
  t.throws(() => selectDevices(recs, {}), /exactly one of --devices <ids\|glob>, --target <name> or --all \(got none\)/);
  t.throws(() => selectDevices(recs, { all: true, target: 'x' }), /got --target and --all/);
});

t.test('run ids are topic levels and differ', async (t) => {
  const a = newRunId('f', new Date('2026-11-23T09:08:07.123Z'));
  t.match(a, /^f20261123-090807-[0-9a-f]{6}$/);
  t.ok(globToRegExp('*').test(a));
  t.not(newRunId(), newRunId());
});
