import t from 'tap';
import { FleetView, parseDeployed, targetMatcher } from '../../src/fleet/view.js';
import { SIM_KINDS, simProfile } from '../../src/fleet/sim/fake.js';
import { allTargets } from './helpers.js';

t.test('retained documents fold into device records; targets come from the profile', async (t) => {
  const v = new FleetView(targetMatcher(await allTargets()));
  v.apply('pi', 'status', { v: 1, state: 'online', session: 3, ts: '2026-11-23T10:00:00Z', version: '0.1.0' });
  v.apply('pi', 'profile', simProfile(SIM_KINDS['raspberry-pi-4'], 'pi'));
  v.apply('pi', 'deployed', { v: 1, model: { sha256: 'b'.repeat(64), path: 'm.onnx' }, recipe: { v: 1, quantize: { mode: 'dynamic', perChannel: true } }, since: 's', previous: { model: { sha256: 'c'.repeat(64) } } });
  t.match(v.get('pi'), { online: true, session: 3, version: '0.1.0', target: 'raspberry-pi-4', deployed: { sha256: 'b'.repeat(64), label: 'int8-dynamic', previousSha256: 'c'.repeat(64) } });
  t.notOk(v.get('pi')?.targetNote);

  t.equal(v.apply('pi', 'status', { v: 1, state: 'offline', session: 2 }), false, 'a late last will of an older session is ignored');
  t.equal(v.get('pi')?.online, true);
  v.apply('pi', 'status', { v: 1, state: 'offline', session: 3 });
  t.equal(v.get('pi')?.online, false, 'offline of the same session counts');
  v.apply('pi', 'status', null);
  t.equal(v.get('pi')?.online, undefined, 'a cleared retained status means unknown, not offline');

  v.apply('odd', 'profile', { v: 1, arch: 'riscv64', cpu: { isa: [], clustersMHz: [] } });
  t.equal(v.get('odd')?.target, undefined, 'no target is made up');
  t.match(v.get('odd')?.targetNote, /no target matches this device/);
  t.same(v.records().map((r) => r.device), ['odd', 'pi']);
});

t.test('deployed documents are read leniently', async (t) => {
  t.same(parseDeployed({ v: 1, sha256: 'x' }), { sha256: 'x' });
  t.equal(parseDeployed('nope'), undefined);
});
