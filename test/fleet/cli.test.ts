// `edgetune fleet …` as a user runs it: real processes against a real broker with simulated devices.
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { fleetResults } from '../../src/fleet/api.js';
import { parseSince } from '../../src/fleet/store/results.js';
import { startBroker, startSims } from './helpers.js';

const root = packageRoot();
const tsx = join(root, 'node_modules', '.bin', 'tsx');
const main = join(root, 'src', 'cli', 'main.ts');

function run(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(tsx, [main, 'fleet', ...args], { cwd, env: { ...process.env, EDGETUNE_DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

t.test('devices, then a rollout that aborts (exit 4) and is recorded', async (t) => {
  const { url } = await startBroker(t);
  const sim = await startSims(t, url, { count: 4, kinds: ['raspberry-pi-4', 'x86_64-avx2'], overrides: { 'sim-x86-0004': { failDeploy: true } },
    deployed: { v: 1, model: { sha256: '0'.repeat(64), path: 'v0.onnx' }, since: '2026-01-01T00:00:00Z' } });
  const dir = t.testdir();
  const common = ['--broker', url, '--fleet', 'ft', '--db', join(dir, 'f.db'), '--settle-ms', '150'];

  const dev = await run(['devices', '--json', ...common], dir);
  t.equal(dev.code, 0, dev.stderr);
  const doc = JSON.parse(dev.stdout);
  t.same(doc.devices.map((d: any) => [d.device, d.target, d.online]), [
    ['sim-rpi4-0001', 'raspberry-pi-4', true], ['sim-rpi4-0003', 'raspberry-pi-4', true], ['sim-x86-0002', 'x86_64-avx2', true], ['sim-x86-0004', 'x86_64-avx2', true],
  ]);

  const dep = await run(['deploy', '--devices', 'sim-x86-*', '--model', 'm.onnx', '--sha256', 'ab'.repeat(32), '--canary', '1', '--max-failure-rate', '0', ...common], dir);
  t.equal(dep.code, 4, 'a failed or aborted rollout exits 4');
  t.match(dep.stdout, /sim-x86-0002\s+SUCCEEDED/);
  t.match(dep.stdout, /sim-x86-0004\s+FAILED\s+JOB_FAILED: SIMULATED deploy failure/);
  t.match(dep.stdout, /ABORTED: failure rate 50\.0% \(1 of 2\)/);
  t.match(dep.stderr, /sim-x86-0004 +\S+ +QUEUED/, 'live progress lines on stderr');
  t.equal(sim.get('sim-x86-0002')!.received.rollback, 1, 'the canary succeeded, the batch after it failed: the canary is rolled back');
  t.equal(sim.get('sim-x86-0002')!.state.deployed?.model.path, 'v0.onnx', 'and runs the old model again');
  t.equal(sim.get('sim-x86-0004')!.received.rollback, undefined, 'the failed device changed nothing and is not rolled back');

  // What the command recorded, read the way `fleet results` reads it.
  const rows = await fleetResults([join(dir, 'f.db')], { since: parseSince('1h') });
  t.same(rows.map((r: any) => [r.device, r.type]).sort(), [['sim-x86-0002', 'deploy'], ['sim-x86-0002', 'rollback']], 'the deploy and the rollback results were recorded');

});
