// The fleet controller with REAL agents (not simulators): two agents in this process, each with its real job
// handlers, work processes and ONNX Runtime, on a real broker (aedes over TCP). A distributed tune sends each its
// share of the candidates; each measures exactly its share on the bundled example model; the controller merges
// the trials and rolls the winner out, and the agents compress, check and activate it.
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { memoryLogger } from '../../src/agent/log.js';
import { fleetDeploy, fleetTuneDistributed, type FleetContext } from '../../src/fleet/api.js';
import { deployParams } from '../../src/fleet/deploy-params.js';
import { prepareTransfer, transferParams } from '../../src/fleet/transfer.js';
import { distributedTune } from '../../src/fleet/distributed.js';
import { formatDistributed } from '../../src/fleet/format.js';
import { profileDevice } from '../../src/profile/index.js';
import { recipeLabel } from '../../src/schema/recipe.js';
import { latencyAt, qualityScore, violations } from '../../src/tune/decide.js';
import type { Recipe } from '../../src/types.js';
import { packageRoot } from '../../src/util/paths.js';
import { testConfig } from '../agent/helpers.js';
import { allTargets, startBroker, startSession, until } from './helpers.js';

const MODEL = 'examples/fashion-mnist/model.onnx';
const modelFile = join(packageRoot(), MODEL);
const skip = existsSync(modelFile) ? false : `${MODEL} is not in this checkout`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// Listed out of the order the controller groups them in, with fp32 not first: the devices' trials come back in
// their own order and must still be merged by recipe.
const candidates: Recipe[] = [
  { v: 1, quantize: { mode: 'dynamic', perChannel: true }, session: { intraOpThreads: 1 } },
  { v: 1, quantize: { mode: 'fp16' }, session: { intraOpThreads: 1 } },
  { v: 1, session: { intraOpThreads: 1 } },
  { v: 1, quantize: { mode: 'dynamic', perChannel: true }, session: { intraOpThreads: 2 } },
];

/** `dir`: the test's one t.testdir() (a second call would wipe the first). */
async function startAgents(t: any, url: string, dir: string, ids: string[]) {
  const agents = new Map<string, { agent: Agent; stateDir: string; log: ReturnType<typeof memoryLogger> }>();
  for (const id of ids) {
    const stateDir = join(dir, id);
    const config = await testConfig(stateDir, url, { fleet: 'ft', deviceId: id, deploy: { benchMaxS: 0.5 }, limits: { maxPayloadBytes: 262144 } });
    const log = memoryLogger();
    const agent = new Agent({ config, log, profile: () => profileDevice({ skipSystemInformation: true }), runner: { progressIntervalMs: 200 } });
    t.teardown(() => agent.stop());
    await agent.start();
    agents.set(id, { agent, stateDir, log });
  }
  await Promise.all([...agents.values()].map((a) => a.agent.waitConnected()));
  return agents;
}

t.test('distributed tune over two real agents: each measures exactly its share; the merged winner is rolled out', { skip }, async (t) => {
  const { url } = await startBroker(t);
  const dir = t.testdir();
  const agents = await startAgents(t, url, dir, ['real-a', 'real-b']);
  const { session } = await startSession(t, url, { store: false });
  await until(() => ['real-a', 'real-b'].every((d) => session.view.get(d)?.online === true && session.view.get(d)?.target !== undefined), 'both agents online with a profile', 30_000);
  const target = session.view.get('real-a')!.target!;
  t.equal(session.view.get('real-b')!.target, target, 'one target: the same machine');
  await session.stop();

  const ctx: FleetContext = { url, fleet: 'ft', db: join(dir, 'fleet.db'), targets: await allTargets(), settleMs: 200, graceS: 10 };
  const out = await fleetTuneDistributed(ctx, {
    selection: { all: true }, model: MODEL, budgetMs: 1000, candidates, timeoutS: 600,
    policy: { canary: { count: 1 }, batch: { percent: 100 }, intervalS: 0, maxFailureRate: 0 },
  });
  t.equal(out.tunes.length, 1);
  const r = out.tunes[0];
  t.comment(formatDistributed(r));
  t.equal(r.target, target);
  t.same(r.shares.map((s) => s.state), ['done', 'done']);
  t.same(new Set(r.shares.map((s) => s.device)), new Set(['real-a', 'real-b']), 'each real agent measured one share');
  for (const s of r.shares) t.equal(s.attempts.length, 1, `share ${s.index}: no reassignment`);
  t.same(r.trials.map((m) => recipeLabel(m.recipe)), candidates.map(recipeLabel), 'every candidate measured once, merged back in the order given');
  t.same(r.unmeasured, []);
  t.same(r.skipped, []);
  for (const m of r.trials) {
    t.ok(m.latencyMs.p90 > 0 && m.latencyMs.n > 0, `${m.label}: a real latency`);
    t.ok(m.quality.accuracy !== undefined || m.quality.cosine !== undefined, `${m.label}: a real quality figure`);
  }
  t.equal(r.modelSha256, sha(readFileSync(modelFile)), 'the devices reported the sha256 of the file they measured');
  t.ok(r.budget.minFidelity !== undefined || r.budget.maxAccuracyDrop !== undefined, 'the devices\' quality floor is part of the merged decision');
  // The winner by hand: feasible, and no feasible trial scores higher.
  t.ok(r.chosen, 'a 1000 ms budget is met');
  const feasible = r.trials.filter((m) => violations(m, r.budget, r.trials[2].quality.accuracy).length === 0);
  t.ok(feasible.includes(r.chosen!));
  t.equal(qualityScore(r.chosen!), Math.max(...feasible.map(qualityScore)));
  t.ok(latencyAt(r.chosen!, 90) <= 1000);

  // The rollout: both agents compressed (or kept) the model with the winning recipe, checked it and activated it.
  t.equal(out.rollouts.length, 1);
  const roll = out.rollouts[0];
  t.equal(roll.status, 'completed', roll.reason ?? '');
  t.same(roll.deploys.map((d) => d.verdict), ['SUCCEEDED', 'SUCCEEDED']);
  for (const [id, a] of agents) {
    const cur = JSON.parse(readFileSync(join(a.stateDir, 'models', 'current.json'), 'utf8'));
    t.same(cur.active?.recipe, r.chosen!.recipe, `${id} runs the winning recipe`);
    t.ok(existsSync(join(a.stateDir, 'models', 'active.onnx')), `${id}: the active model link exists`);
    t.notOk(existsSync(join(a.stateDir, 'tuned', 'model.tuned.onnx')), `${id}: a share writes no model`);
    t.same(readdirSync(join(a.stateDir, 'tuned')), [], `${id}: a finished share leaves no files behind`);
  }
});

t.test('a real agent that stops in the middle of its share: the share goes to the other agent', { skip }, async (t) => {
  const { url } = await startBroker(t);
  const agents = await startAgents(t, url, t.testdir(), ['real-c', 'real-d']);
  const { session } = await startSession(t, url, { store: false, graceS: 10 });
  await until(() => ['real-c', 'real-d'].every((d) => session.view.get(d)?.online === true && session.view.get(d)?.target !== undefined), 'both agents online with a profile', 30_000);
  const target = session.view.get('real-c')!.target!;
  const reassigned: string[] = [];
  let stopped = false;
  const r = await distributedTune(session, {
    runId: 'drop1', target, devices: ['real-c', 'real-d'], model: MODEL, budgetMs: 1000, timeoutS: 600,
    candidates: [candidates[2], candidates[0]],
    onChange: (job, what) => {
      // real-d goes away (SIGTERM-like stop: offline retained) as soon as it works on its share.
      if (!stopped && job.device === 'real-d' && what === 'status' && job.state === 'IN_PROGRESS') {
        stopped = true;
        void agents.get('real-d')!.agent.stop('test: device leaves mid-share');
      }
    },
    onReassign: (share, from, why) => reassigned.push(`${share}:${from}:${why}`),
  });
  t.ok(stopped, 'real-d was stopped mid-share');
  t.equal(reassigned.length, 1);
  t.match(reassigned[0], /:real-d:device went offline$/);
  t.same(r.shares.map((s) => s.device), ['real-c', 'real-c'], 'real-c measured both shares');
  t.same(r.trials.map((m) => recipeLabel(m.recipe)), ['fp32 t1', 'int8-dynamic t1'], 'both candidates measured');
  t.same(r.unmeasured, []);
  t.ok(r.chosen);
});

t.test('deploy --transfer: a real agent gets the model as MQTT chunks, checks the sha256 and activates it', { skip }, async (t) => {
  const { url } = await startBroker(t);
  const dir = t.testdir();
  const agents = await startAgents(t, url, dir, ['real-t']);
  const { session } = await startSession(t, url, { store: false });
  await until(() => session.view.get('real-t')?.online === true, 'the agent online', 30_000);
  await session.stop();

  const tx = await prepareTransfer(modelFile, 65_536);
  t.equal(tx.sha256, sha(readFileSync(modelFile)));
  t.equal(tx.chunks.length, Math.ceil(readFileSync(modelFile).length / 65_536), 'cut into 64 KiB chunks');
  t.ok(tx.chunks.length > 1);
  const { params } = await deployParams({ transfer: { ...transferParams(tx), sha256: tx.sha256 }, name: 'over-mqtt' });
  t.same(params.transfer, { id: tx.id, chunks: tx.chunks.length, bytes: tx.bytes });
  t.notOk('model' in params || 'url' in params, 'the job names no path and no URL');

  const ctx: FleetContext = { url, fleet: 'ft', db: join(dir, 'fleet.db'), targets: await allTargets(), settleMs: 200, graceS: 10 };
  const sent: string[] = [];
  const r = await fleetDeploy(ctx, {
    selection: { devices: ['real-t'] }, spec: { type: 'deploy', params, timeoutS: 300 }, transfer: tx, onTransferred: (d) => sent.push(d),
    policy: { canary: { count: 0 }, batch: { percent: 100 }, intervalS: 0, maxFailureRate: 0 },
  });
  t.same(sent, ['real-t'], 'every chunk acknowledged before the job went out');
  t.equal(r.status, 'completed', r.reason ?? '');
  t.equal(r.deploys[0].verdict, 'SUCCEEDED', `the deploy succeeded ${JSON.stringify(r.deploys[0].error ?? '')}`);
  const doc = r.deploys[0].result as { deployed: { model: { sha256: string } }; unchanged?: boolean };
  t.equal(doc.deployed.model.sha256, tx.sha256, 'the device reports the sha256 of the file sent');
  t.notOk(doc.unchanged);
  const a = agents.get('real-t')!;
  t.equal(JSON.parse(readFileSync(join(a.stateDir, 'models', 'current.json'), 'utf8')).active?.sha256, tx.sha256, 'and runs it');
  t.equal(sha(readFileSync(join(a.stateDir, 'models', 'active.onnx'))), tx.sha256, 'the active model is byte for byte the file sent');
  await until(() => !existsSync(join(a.stateDir, 'transfers', tx.id)), 'the transfer folder removed after use');

  // Seen from a fresh controller: the retained deployed document names the same file.
  const { session: s2 } = await startSession(t, url, { store: false });
  await until(() => s2.view.get('real-t')?.deployed?.sha256 === tx.sha256, 'the deployed sha256 in the fleet view', 10_000);
  t.pass('fleet view shows the transferred model as deployed');

  // The same file again: the device already runs it, so it gets no chunks (they would sit unread in its transfer slots).
  const again: string[] = [];
  const r2 = await fleetDeploy(ctx, {
    selection: { devices: ['real-t'] }, spec: { type: 'deploy', params, timeoutS: 300 }, transfer: tx, onTransferred: (d) => again.push(d),
    policy: { canary: { count: 0 }, batch: { percent: 100 }, intervalS: 0, maxFailureRate: 0 },
  });
  t.same(again, [], 'no chunks sent to a device that holds the file');
  t.match(r2.deploys[0], { verdict: 'SUCCEEDED', result: { unchanged: true } });
  t.notOk(existsSync(join(a.stateDir, 'transfers', tx.id)), 'no transfer left open on the device');
});
