// The fleet controller against a real Mosquitto: shared subscriptions split the results between collectors, and a
// broker restart in the middle of a fleet job loses no result. Runs with EDGETUNE_INTEGRATION=1 (npm run
// test:integration) and the mosquitto binary; otherwise it skips and says why.
import t from 'tap';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { memoryLogger } from '../../src/agent/log.js';
import { Collector } from '../../src/fleet/collector.js';
import { countOutcomes, dispatch } from '../../src/fleet/dispatch.js';
import { fleetResults } from '../../src/fleet/api.js';
import { FleetSession } from '../../src/fleet/session.js';
import { SimFleet } from '../../src/fleet/sim/fleet.js';
import { LocalMosquitto, findMosquitto } from '../../src/fleet/sim/mosquitto.js';
import { ResultsStore } from '../../src/fleet/store/results.js';
import { loadTargets } from '../../src/targets/load.js';
import { packageRoot } from '../../src/util/paths.js';
import { agentEnv, startAgent } from './harness.js';

const skip = process.env.EDGETUNE_INTEGRATION !== '1'
  ? 'fleet integration: run with `npm run test:integration` (EDGETUNE_INTEGRATION=1)'
  : !findMosquitto() ? 'fleet integration: mosquitto is not installed (apt-get install mosquitto)' : false;

async function setup(t: any, count: number, costMs: number) {
  const dir = t.testdir();
  const mq = new LocalMosquitto({ dir: join(dir, 'mq') });
  await mq.start();
  t.teardown(() => mq.stop());
  const targets = await loadTargets();
  const sim = new SimFleet({ url: mq.url, fleet: 'it', count, stateRoot: join(dir, 'sims'), behaviour: { costMs }, targets, reconnect: { minMs: 100, maxMs: 1000 } });
  t.teardown(() => sim.stop());
  await sim.start();
  const log = memoryLogger();
  const session = new FleetSession({ url: mq.url, fleet: 'it', targets, settleMs: 300, graceS: 30, log });
  t.teardown(() => session.stop());
  await session.start();
  return { dir, mq, sim, session, targets, log };
}

const until = async (pred: () => boolean, what: string, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

t.test('two collectors in one $share group split the results; together they have every one, once', { skip }, async (t) => {
  const { dir, mq, sim, session, targets } = await setup(t, 24, 50);
  const cols = await Promise.all([1, 2].map(async (i) => {
    const store = await ResultsStore.open(join(dir, `c${i}.db`));
    const c = new Collector({ url: mq.url, fleet: 'it', store, targets, shareGroup: 'edgetune', clientId: `it-col-${i}`, batchMs: 20 });
    await c.start();
    return { c, store };
  }));
  t.match(cols[0].c.filters(), ['$share/edgetune/edgetune/it/+/jobs/+/result', '$share/edgetune/edgetune/it/+/jobs/+/status']);
  const entries = await dispatch(session, { jobId: 'share1', devices: sim.devices.map((d) => d.id), spec: { type: 'bench', params: { model: 'm' } } });
  t.equal(countOutcomes(entries).succeeded, 24);
  await until(() => cols[0].c.stats.results + cols[1].c.stats.results === 24, '24 results across the collectors');
  for (const { c, store } of cols) {
    await c.stop();
    await store.close();
  }
  const [a, b] = cols.map((x) => x.c.stats.results);
  const dupes = cols[0].c.stats.duplicates + cols[1].c.stats.duplicates;
  t.comment(`FAULTS fleet/shared-collectors: results=${a + b} of 24 (collector-1 ${a}, collector-2 ${b}) lost=${24 - a - b} duplicates=${dupes}`);
  t.ok(a > 0 && b > 0, `both collectors took a share of the load (${a} + ${b})`);
  t.equal(cols[0].c.stats.duplicates + cols[1].c.stats.duplicates, 0, 'no message went to both');
  const rows = await fleetResults([join(dir, 'c1.db'), join(dir, 'c2.db')]);
  t.equal(rows.length, 24);
  t.equal(new Set(rows.map((r) => r.device)).size, 24);
});

t.test('a broker restart in the middle of a fleet job: every device\'s result still arrives', { skip }, async (t) => {
  const { mq, sim, session, log } = await setup(t, 40, 1500);
  const p = dispatch(session, { jobId: 'restart1', devices: sim.devices.map((d) => d.id), spec: { type: 'bench', params: { model: 'm' }, timeoutS: 60 } });
  await until(() => sim.devices.every((d) => session.tracker.get(d.id, 'restart1')?.state === 'IN_PROGRESS'), 'every device working');
  await mq.restart(300);
  t.comment('mosquitto restarted while 40 devices were mid-job');
  const entries = await p;
  const withResult = entries.filter((e) => e.result !== undefined).length;
  const resends = log.lines.filter((l) => /sending the job again/.test(l.msg)).length;
  const deliveries = sim.devices.reduce((n, d) => n + (d.received.bench ?? 0), 0);
  t.comment(`FAULTS fleet/broker-restart: broker restarts=1 devices=40 results=${withResult} lost=${40 - withResult} no-response=${countOutcomes(entries).byVerdict.NO_RESPONSE ?? 0} job-resends-by-controller=${resends} duplicate-job-deliveries=${deliveries - 40}`);
  t.same(countOutcomes(entries).byVerdict, { SUCCEEDED: 40 }, 'no result lost, none left without an answer');
  t.ok(entries.every((e) => e.result !== undefined));
  await until(() => session.view.records().every((r) => r.online), 'every device back online in the controller\'s view');
});

/** `edgetune fleet …` as a user runs it, from the package root (so examples/… is also a file here). */
function fleetCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const root = packageRoot();
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(root, 'src', 'cli', 'main.ts'), 'fleet', ...args], {
    cwd: root, env: { ...process.env, EDGETUNE_DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

t.test('the fleet commands with two real agent processes on Mosquitto: signed deploys, a distributed tune, a rollback', { skip }, async (t) => {
  const dir = t.testdir();
  const mq = new LocalMosquitto({ dir: join(dir, 'mq') });
  await mq.start();
  t.teardown(() => mq.stop());
  const keys = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'fleet.key'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'fleet.pub'), keys.publicKey.export({ type: 'spki', format: 'pem' }));
  const agents = ['it-real-a', 'it-real-b'].map((id) => startAgent(t, agentEnv(mq.url, join(dir, id), id, { EDGETUNE_DEPLOY_PUBLIC_KEY: join(dir, 'fleet.pub') })));
  const common = ['--broker', mq.url, '--fleet', 'it', '--db', join(dir, 'fleet.db'), '--settle-ms', '300', '-q'];
  const model = 'examples/fashion-mnist/model.onnx';
  await until(() => agents.every((a) => a.logs.some((l) => l.msg === 'agent started')), 'both agents started');

  // Profiles come from work processes a moment after connect: wait until the controller sees both with a target.
  let devices: any[] = [];
  const start = Date.now();
  while (Date.now() - start < 60_000) {
    const r = await fleetCli(['devices', '--json', ...common]);
    devices = r.code === 0 ? JSON.parse(r.stdout).devices : [];
    if (devices.length === 2 && devices.every((d) => d.online && d.target)) break;
  }
  t.same(devices.map((d) => [d.device, d.online]), [['it-real-a', true], ['it-real-b', true]]);

  const unsigned = await fleetCli(['deploy', '--all', '--model', model, '--canary', '0', ...common]);
  t.equal(unsigned.code, 4, 'devices with a public key refuse an unsigned model');
  t.match(unsigned.stdout, /it-real-a\s+REJECTED\s+JOB_INVALID: \/params\/signature/);

  const signed = await fleetCli(['deploy', '--all', '--model', model, '--sign-key', join(dir, 'fleet.key'), '--canary', '1', ...common]);
  t.equal(signed.code, 0, signed.stdout + signed.stderr);
  t.match(signed.stdout, /it-real-a\s+SUCCEEDED[\s\S]*it-real-b\s+SUCCEEDED/);

  writeFileSync(join(dir, 'c.json'), JSON.stringify([
    { v: 1, session: { intraOpThreads: 1 } },
    { v: 1, quantize: { mode: 'dynamic', perChannel: true }, session: { intraOpThreads: 1 } },
  ]));
  const tune = await fleetCli(['tune', '--all', '--distributed', '--model', model, '--budget-ms', '1000', '--candidates', join(dir, 'c.json'), '--sign-key', join(dir, 'fleet.key'), '--json', ...common]);
  t.equal(tune.code, 0, tune.stderr);
  const out = JSON.parse(tune.stdout);
  t.equal(out.tunes.length, 1);
  const reassigned = out.tunes[0].shares.reduce((n: number, s: any) => n + Math.max(0, s.attempts.length - 1), 0);
  t.comment(`FAULTS fleet/distributed-real-agents: shares=${out.tunes[0].shares.length} reassigned=${reassigned} unmeasured=${out.tunes[0].unmeasured.length}`);
  t.same(out.tunes[0].shares.map((s: any) => s.state), ['done', 'done']);
  t.same(new Set(out.tunes[0].shares.map((s: any) => s.device)), new Set(['it-real-a', 'it-real-b']), 'one share per real agent');
  t.equal(out.tunes[0].trials.length, 2);
  t.ok(out.tunes[0].chosen);
  t.equal(out.rollouts[0].status, 'completed');
  t.same(out.rollouts[0].deploys.map((d: any) => d.verdict), ['SUCCEEDED', 'SUCCEEDED'], 'the signed winner is taken by both');

  const after = JSON.parse((await fleetCli(['devices', '--json', ...common])).stdout).devices;
  for (const d of after) t.ok(d.deployed?.sha256, `${d.device} reports a deployed model`);

  const rb = await fleetCli(['rollback', '--all', ...common]);
  t.equal(rb.code, 0, rb.stdout + rb.stderr);
  t.match(rb.stdout, /2 devices: 2 SUCCEEDED/);
  for (const a of agents) {
    await a.kill('SIGTERM');
    t.equal(await a.exited, 0);
  }
});
