import t from 'tap';
import { parseAmount, planRollout, runRollout, type RolloutPolicy } from '../../src/fleet/rollout.js';
import { formatRollout } from '../../src/fleet/format.js';
import { startSessionWithSims } from './helpers.js';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `d${i}`);

t.test('planning: canary by count or percentage, then batches', async (t) => {
  const base: RolloutPolicy = { canary: { count: 1 }, batch: { count: 4 }, intervalS: 0, maxFailureRate: 0 };
  t.same(planRollout(ids(10), base).map((w) => [w.phase, w.devices.length]), [['canary', 1], ['batch', 4], ['batch', 4], ['batch', 1]]);
  t.same(planRollout(ids(10), { ...base, canary: { percent: 25 }, batch: { percent: 50 } }).map((w) => w.devices.length), [3, 5, 2], '25% of 10 rounds up');
  t.same(planRollout(ids(3), { ...base, canary: { count: 0 }, batch: { percent: 100 } }).map((w) => [w.phase, w.devices]), [['batch', ['d0', 'd1', 'd2']]]);
  t.same(planRollout(ids(2), { ...base, canary: { count: 5 } }).map((w) => w.devices.length), [2], 'a canary larger than the fleet is the fleet');
  t.same(planRollout([], base), []);
  t.same(parseAmount('10%', 'x'), { percent: 10 });
  t.same(parseAmount('3', 'x'), { count: 3 });
  t.throws(() => parseAmount('1.5', '--canary'), /--canary '1.5': a count must be a whole number/);
  t.throws(() => parseAmount('150%', '--batch'), /at most 100/);
  t.throws(() => planRollout(ids(2), { ...base, maxFailureRate: 2 }), /between 0 and 1/);
});

t.test('a healthy rollout: canary, then batches; every device deployed and recorded with its wave', async (t) => {
  const { session, store, sim } = await startSessionWithSims(t, { count: 5 });
  const devices = sim.devices.map((d) => d.id).sort();
  const waves: string[] = [];
  const r = await runRollout(session, {
    runId: 'roll1', devices, deploy: { type: 'deploy', params: { model: 'new.onnx', sha256: 'a'.repeat(64), recipe: { v: 1, quantize: { mode: 'dynamic', perChannel: true } } } },
    policy: { canary: { count: 1 }, batch: { count: 2 }, intervalS: 0.05, maxFailureRate: 0.2 },
    onWave: (w, rate) => waves.push(`${w.phase}:${w.devices.length}:${w.succeeded}:${rate}`),
  });
  t.equal(r.status, 'completed');
  t.same(waves, ['canary:1:1:0', 'batch:2:2:0', 'batch:2:2:0']);
  t.same(r.rollbacks, []);
  // The devices republish their retained deployed document; the controller's view follows.
  await new Promise((res) => setTimeout(res, 200));
  t.ok(devices.every((d) => session.view.get(d)?.deployed?.label === 'int8-dynamic'), 'every device shows the new recipe as deployed');
  await store!.flush();
  t.same(store!.jobs('roll1').map((j) => [j.phase, j.wave, j.state]), [['canary', 0, 'SUCCEEDED'], ['batch', 1, 'SUCCEEDED'], ['batch', 1, 'SUCCEEDED'], ['batch', 2, 'SUCCEEDED'], ['batch', 2, 'SUCCEEDED']]);
  t.equal(store!.results({ runId: 'roll1' }).filter((x) => x.type === 'deploy' && x.label === 'int8-dynamic').length, 5);
});

t.test('past the failure threshold the rollout stops and the devices it changed are rolled back', async (t) => {
  // Devices 3 and 4 (in id order: the second batch) fail their deploy.
  const { session, store, sim } = await startSessionWithSims(t, {
    count: 8, kinds: ['raspberry-pi-4'],
    overrides: { 'sim-rpi4-0003': { failDeploy: true }, 'sim-rpi4-0004': { failDeploy: true } },
  });
  const devices = sim.devices.map((d) => d.id).sort();
  const first = await runRollout(session, { runId: 'base', devices, deploy: { type: 'deploy', params: { model: 'v1.onnx', sha256: '1'.repeat(64) } }, policy: { canary: { count: 0 }, batch: { percent: 100 }, intervalS: 0, maxFailureRate: 1 } });
  t.equal(first.deploys.filter((d) => d.verdict === 'SUCCEEDED').length, 6, 'a first version everywhere it works');
  const r = await runRollout(session, {
    runId: 'roll2', devices, deploy: { type: 'deploy', params: { model: 'v2.onnx', sha256: '2'.repeat(64) } },
    policy: { canary: { count: 2 }, batch: { count: 3 }, intervalS: 0, maxFailureRate: 0.25 },
  });
  t.equal(r.status, 'aborted');
  t.match(r.reason, /failure rate 40\.0% \(2 of 5\) after the batch \(wave 1\) is above the 25\.0% threshold/);
  t.same(r.waves.map((w) => [w.phase, w.succeeded, w.failed]), [['canary', 2, 0], ['batch', 1, 2]]);
  t.same(r.notReached, devices.slice(5), 'the last batch never got the deploy');
  t.same(r.rollbacks.map((x) => [x.device, x.verdict]).sort(), [['sim-rpi4-0001', 'SUCCEEDED'], ['sim-rpi4-0002', 'SUCCEEDED'], ['sim-rpi4-0005', 'SUCCEEDED']], 'only devices that took v2 roll back');
  for (const d of ['sim-rpi4-0001', 'sim-rpi4-0002', 'sim-rpi4-0005']) t.equal(sim.get(d)!.state.deployed?.model.path, 'v1.onnx', `${d} runs v1 again`);
  t.equal(sim.get('sim-rpi4-0008')!.state.deployed?.model.path, 'v1.onnx', 'a device never reached still runs v1');
  t.equal(sim.get('sim-rpi4-0008')!.received.deploy, 1, '…and only ever got the first deploy');
  await store!.flush();
  const rows = store!.jobs('roll2');
  t.same(rows.filter((j) => j.phase === 'rollback').length, 3, 'each rollback recorded');
  t.same(rows.filter((j) => j.state === 'FAILED').map((j) => j.device), ['sim-rpi4-0003', 'sim-rpi4-0004']);
  t.match(formatRollout(r), /rollout roll2 ABORTED: .*; 3 devices rolled back \(3 confirmed\), 3 never reached/);
});

t.test('an abort does not roll back devices that already ran the new model (their deploy answered unchanged)', async (t) => {
  // Device 3 fails every deploy; device 1 already runs v1 before the rollout of v1.
  const { session, sim } = await startSessionWithSims(t, {
    count: 3, kinds: ['raspberry-pi-4'], overrides: { 'sim-rpi4-0003': { failDeploy: true } },
    deployed: { v: 1, model: { sha256: '0'.repeat(64), path: 'v0.onnx' }, since: '2026-01-01T00:00:00Z' },
  });
  const v1 = { type: 'deploy', params: { model: 'v1.onnx', sha256: '1'.repeat(64) } };
  const early = await runRollout(session, { runId: 'early', devices: ['sim-rpi4-0001'], deploy: v1, policy: { canary: { count: 0 }, batch: { percent: 100 }, intervalS: 0, maxFailureRate: 1 } });
  t.equal(early.deploys[0].verdict, 'SUCCEEDED');
  t.equal(sim.get('sim-rpi4-0001')!.state.deployed?.model.path, 'v1.onnx', 'device 1 runs v1 before the rollout');

  const r = await runRollout(session, {
    runId: 'roll3', devices: sim.devices.map((d) => d.id).sort(), deploy: v1,
    policy: { canary: { count: 0 }, batch: { percent: 100 }, intervalS: 0, maxFailureRate: 0.2 },
  });
  t.equal(r.status, 'aborted');
  const d1 = r.deploys.find((e) => e.device === 'sim-rpi4-0001')!;
  t.equal(d1.verdict, 'SUCCEEDED');
  t.match(d1.result, { unchanged: true }, 'device 1 answered that v1 was already active');
  t.same(r.rollbacks.map((x) => x.device), ['sim-rpi4-0002'], 'only the device the rollout changed is rolled back');
  t.equal(sim.get('sim-rpi4-0001')!.received.rollback, undefined, 'device 1 got no rollback');
  t.equal(sim.get('sim-rpi4-0001')!.state.deployed?.model.path, 'v1.onnx', 'device 1 still runs v1, not the older v0');
  t.equal(sim.get('sim-rpi4-0002')!.state.deployed?.model.path, 'v0.onnx', 'device 2 is back on v0');
});
