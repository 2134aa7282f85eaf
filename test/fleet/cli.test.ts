// `edgetune fleet …` as a user runs it: real processes against a real broker with simulated devices.
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { fleetResults } from '../../src/fleet/api.js';
import { parseSince } from '../../src/fleet/store/results.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { startBroker, startSims, until } from './helpers.js';

const root = packageRoot();
const tsx = join(root, 'node_modules', '.bin', 'tsx');
const main = join(root, 'src', 'cli', 'main.ts');

type Ran = { code: number | null; stdout: string; stderr: string };

/** `edgetune fleet <args>` in the background: its output so far, and its exit. */
function start(args: string[], cwd: string): { out: Ran; done: Promise<Ran>; kill: () => void } {
  const child = spawn(tsx, [main, 'fleet', ...args], { cwd, env: { ...process.env, EDGETUNE_DEBUG: '', EDGETUNE_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Ran = { code: null, stdout: '', stderr: '' };
  child.stdout.on('data', (d) => { out.stdout += d; });
  child.stderr.on('data', (d) => { out.stderr += d; });
  const done = new Promise<Ran>((resolve) => child.on('close', (code) => resolve({ ...out, code })));
  return { out, done, kill: () => { if (child.exitCode === null) child.kill('SIGKILL'); } };
}

function run(args: string[], cwd: string): Promise<Ran> {
  return start(args, cwd).done;
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

t.test('bench, a plain tune that meets no budget (exit 3), results --since, a bounded collector and report -o', async (t) => {
  const { url } = await startBroker(t);
  await startSims(t, url, { count: 4, kinds: ['raspberry-pi-4', 'x86_64-avx2'] });
  const dir = t.testdir();
  const db = join(dir, 'f.db');
  const common = ['--broker', url, '--fleet', 'ft', '--settle-ms', '150'];

  // A collector started first (plain subscription: aedes has no shared ones), stopping by itself after 4 results.
  const col = start(['collect', '--no-share', '--count', '4', '--duration', '120', '--db', join(dir, 'c.db'), ...common], dir);
  t.teardown(col.kill);
  await until(() => /collecting /.test(col.out.stderr) || col.out.code !== null, 'the collector to listen', 60_000);
  t.match(col.out.stderr, /collecting edgetune\/ft\/\+\/jobs\/\+\/result, edgetune\/ft\/\+\/jobs\/\+\/status from mqtt:\/\/.* stopping after 4 results or 120 s/, '--no-share: no $share prefix');

  const bench = await run(['bench', '--all', '--model', 'm.onnx', '--db', db, ...common], dir);
  t.equal(bench.code, 0, bench.stderr);
  for (const d of ['sim-rpi4-0001', 'sim-x86-0002', 'sim-rpi4-0003', 'sim-x86-0004']) t.match(bench.stdout, new RegExp(`${d}\\s+SUCCEEDED\\s+\\S.* p90 [\\d.]+ ms .*\\[simulated\\]`), `${d} measured`);
  t.match(bench.stdout, /4 devices: 4 SUCCEEDED\nrun \S+/);

  const collected = await col.done;
  t.equal(collected.code, 0, collected.stderr);
  t.match(collected.stderr, /collected 4 results \(0 duplicates ignored\)/, 'the collector stopped after --count results');
  const inCollector = await fleetResults([join(dir, 'c.db')]);
  t.same(inCollector.map((r) => [r.type, r.target]).sort(), [['bench', 'raspberry-pi-4'], ['bench', 'raspberry-pi-4'], ['bench', 'x86_64-avx2'], ['bench', 'x86_64-avx2']], 'the collector recorded every bench result with its target');

  const mid = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  const candidates = [{ v: 1 }, { v: 1, quantize: { mode: 'dynamic', perChannel: true } }];
  const tune = await run(['tune', '--target', 'raspberry-pi-4', '--model', 'm.onnx', '--budget-ms', '0.001', '--params', JSON.stringify({ candidates }), '--db', db, ...common], dir);
  t.equal(tune.code, 3, 'every device answered, none met the budget: exit 3');
  t.match(tune.stdout, /sim-rpi4-0001\s+SUCCEEDED\s+.*budget NOT met/);
  t.match(tune.stdout, /2 devices: 2 SUCCEEDED/);
  t.notMatch(tune.stdout, /sim-x86/, '--target picks only that target\'s devices');

  const all = JSON.parse((await run(['results', '--json', '--since', '1h', '--db', db], dir)).stdout);
  t.same(all.results.map((r: any) => r.type).sort(), ['bench', 'bench', 'bench', 'bench', 'tune', 'tune']);
  const since = await run(['results', '--json', '--since', mid, '--db', db], dir);
  t.equal(since.code, 0, since.stderr);
  const recent = JSON.parse(since.stdout);
  t.equal(recent.v, 1);
  t.same(recent.results.map((r: any) => [r.device, r.type, r.simulated]).sort(), [['sim-rpi4-0001', 'tune', true], ['sim-rpi4-0003', 'tune', true]], '--since leaves out the earlier bench results');
  t.ok(recent.results.every((r: any) => !r.doc.chosen && Array.isArray(r.doc.trials) && r.doc.trials.length === 2), 'each with its full TuneResult');

  const html = join(dir, 'fleet.html');
  const rep = await run(['report', '-o', html, '--title', 'CLI report', '--db', db], dir);
  t.equal(rep.code, 0, rep.stderr);
  t.match(rep.stderr, /wrote .*fleet\.html: 2 targets, 4 devices/);
  const page = readFileSync(html, 'utf8');
  t.match(page, /<title>CLI report<\/title>/);
  for (const s of ['raspberry-pi-4', 'x86_64-avx2', 'sim-x86-0004', '<svg']) t.ok(page.includes(s), `the page shows ${s}`);
  t.notMatch(page, /<script|https?:\/\/(?!www\.w3\.org)/, 'no scripts, no network assets');
});

t.test('deploy --transfer: the chunks go to each device of the wave before its job; --file is required', async (t) => {
  const { url } = await startBroker(t);
  const sim = await startSims(t, url, { count: 2, kinds: ['raspberry-pi-4'] });
  const dir = t.testdir();
  writeFileSync(join(dir, 'm.onnx'), Buffer.alloc(3000, 1));
  const common = ['--broker', url, '--fleet', 'ft', '--db', join(dir, 'f.db'), '--settle-ms', '150'];
  const noFile = await run(['deploy', '--all', '--transfer', ...common], dir);
  t.equal(noFile.code, 2, 'a usage error');
  t.match(noFile.stderr, /--transfer sends a file from this machine: give it with --file/);
  const dep = await run(['deploy', '--all', '--transfer', '--file', 'm.onnx', '--chunk-bytes', '1024', '--canary', '1', ...common], dir);
  t.equal(dep.code, 0, dep.stderr);
  t.match(dep.stderr, /sending m\.onnx \(3000 bytes\) over MQTT in 3 chunks to each device, transfer m-[0-9a-f]{32}-1024/);
  t.match(dep.stderr, /sim-rpi4-0001: 3 chunks acknowledged by the broker[\s\S]*sim-rpi4-0002: 3 chunks acknowledged by the broker/, 'wave by wave: the canary first');
  t.match(dep.stdout, /rollout \S+ completed/i);
  for (const d of sim.devices) t.match(d.state.deployed?.model.path, /^transfer:m-/, `${d.id} deployed from the transfer`);
});
