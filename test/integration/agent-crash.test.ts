// The agent process SIGKILLed in the middle of work: a tune resumes (or ends FAILED with the reason once its
// attempts are used up), and a deploy killed at random points leaves the old or the new model active, never a
// broken one. After every kill, every file the agent keeps is checked.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ort } from '../helpers/ort.js';
import { agentEnv, controller, mosquitto, skip, sleep, startAgent, tinyModel, TERMINAL } from './harness.js';

const BASE = 'edgetune/it/kc';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every JSON file parses, every model blob matches its name, the active model loads in ONNX Runtime. */
async function checkState(t: any, stateDir: string, allowed: string[]): Promise<string | undefined> {
  const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
  const bad: string[] = [];
  for (const f of walk(stateDir)) {
    if (f.endsWith('.corrupt')) bad.push(`${f} (set aside as corrupt)`);
    if (f.endsWith('.json')) {
      try { JSON.parse(readFileSync(f, 'utf8')); } catch { bad.push(`${f} does not parse`); }
    }
  }
  const blobs = join(stateDir, 'models', 'blobs');
  if (existsSync(blobs)) for (const b of readdirSync(blobs)) if (!b.startsWith('.') && sha(readFileSync(join(blobs, b))) !== b.replace('.onnx', '')) bad.push(`blob ${b} does not match its hash`);
  t.same(bad, [], 'no corrupt file in the state folder');
  const link = join(stateDir, 'models', 'active.onnx');
  if (!existsSync(link)) return undefined;
  const active = sha(readFileSync(link));
  t.ok(allowed.includes(active), `active model is one of the known good ones (${active.slice(0, 12)})`);
  const s = await ort.InferenceSession.create(link);
  await s.release();
  return active;
}

t.test('agent SIGKILLed mid-tune: the tune runs again to the end; killed on every attempt it ends FAILED with the reason', { skip }, async (t) => {
  const dir = t.testdir();
  const stateDir = join(dir, 'state');
  await tinyModel(join(stateDir, 'inbox'), 'tunable', 64);
  const mq = await mosquitto(t, join(dir, 'mq'));
  const env = agentEnv(mq.url, stateDir, 'kc');
  const ctl = await controller(t, mq.url, [`${BASE}/jobs/+/+`, `${BASE}/status`]);
  const statuses = (id: string) => ctl.msgs.filter((m) => m.topic === `${BASE}/jobs/${id}/status`).map((m) => m.doc);
  // Each job its own output, so its own journal: tune2 must not finish by replaying what tune1 measured.
  const tuneJob = (id: string) => JSON.stringify({ v: 1, id, type: 'tune', params: { model: 'inbox/tunable.onnx', budgetMs: 50, output: `tuned/${id}.onnx` } });
  let kills = 0;

  let agent = startAgent(t, env);
  await ctl.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'online', 'online', 60_000);
  await ctl.client.publishAsync(`${BASE}/jobs/tune1`, tuneJob('tune1'), { qos: 1 });
  await ctl.waitFor((m) => m.topic === `${BASE}/jobs/tune1/status` && m.doc.state === 'IN_PROGRESS', 'tune1 running', 60_000);
  await sleep(1000 + Math.random() * 2000);
  await agent.kill('SIGKILL');
  kills++;
  await checkState(t, stateDir, []);
  agent = startAgent(t, env);
  const end1 = await ctl.waitFor((m) => m.topic === `${BASE}/jobs/tune1/status` && TERMINAL.includes(m.doc.state), 'tune1 ended', 120_000);
  t.equal(end1.doc.state, 'SUCCEEDED', JSON.stringify(end1.doc.error));
  t.ok(statuses('tune1').some((s) => /resuming after an agent restart \(attempt 2\)/.test(s.progress.step)), 'it said it resumed');
  const result = ctl.msgs.find((m) => m.topic === `${BASE}/jobs/tune1/result`);
  t.match(result?.doc, { v: 1, budget: { latencyMs: 50 }, trials: Array });
  if (result?.doc.chosen) {
    const s = await ort.InferenceSession.create(result.doc.output);
    await s.release();
    t.pass('the tuned model loads');
  }

  await ctl.client.publishAsync(`${BASE}/jobs/tune2`, tuneJob('tune2'), { qos: 1 });
  for (let attempt = 1; attempt <= 2; attempt++) {
    await ctl.waitFor((m) => m.topic === `${BASE}/jobs/tune2/status` && m.doc.state === 'IN_PROGRESS' && (attempt === 1 || m.doc.seq > 1_000_000), `tune2 attempt ${attempt} running`, 60_000);
    // The second attempt resumes from the first one's journal, so it has less left: kill it before its work process
    // (which alone takes longer to start) can have finished.
    await sleep(attempt === 1 ? 500 + Math.random() * 1000 : Math.random() * 300);
    await agent.kill('SIGKILL');
    kills++;
    await checkState(t, stateDir, []);
    agent = startAgent(t, env);
  }
  const end2 = await ctl.waitFor((m) => m.topic === `${BASE}/jobs/tune2/status` && TERMINAL.includes(m.doc.state), 'tune2 ended', 60_000);
  t.match(end2.doc, { state: 'FAILED', error: { code: 'AGENT_RESTARTED', message: /during attempt 2 of 2/ } });
  t.comment(`FAULTS agent-crash/tune: agent SIGKILLs=${kills} resumed-and-succeeded=1 failed-after-max-attempts=1`);
  await agent.kill('SIGTERM');
});

t.test('deploy interrupted at random points: always the old or the new model, never a broken one', { skip }, async (t) => {
  const dir = t.testdir();
  const stateDir = join(dir, 'state');
  const a = await tinyModel(join(stateDir, 'inbox'), 'model-a', 32);
  const b = await tinyModel(join(stateDir, 'inbox'), 'model-b', 48);
  const mq = await mosquitto(t, join(dir, 'mq'));
  const env = agentEnv(mq.url, stateDir, 'kc', { EDGETUNE_JOBS_PROGRESS_INTERVAL_MS: '100' });
  const ctl = await controller(t, mq.url, [`${BASE}/jobs/+/+`, `${BASE}/status`]);
  const deploy = (id: string, m: typeof a) => ctl.client.publishAsync(`${BASE}/jobs/${id}`, JSON.stringify({ v: 1, id, type: 'deploy', params: { model: `inbox/model-${m === a ? 'a' : 'b'}.onnx`, sha256: m.sha256 } }), { qos: 1 });
  const endOf = (id: string, ms = 90_000) => ctl.waitFor((m) => m.topic === `${BASE}/jobs/${id}/status` && TERMINAL.includes(m.doc.state), `${id} ended`, ms);

  let agent = startAgent(t, env);
  await ctl.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'online', 'online', 60_000);
  await deploy('d0', a);
  const d0end = await endOf('d0');
  t.equal(d0end.doc.state, 'SUCCEEDED');
  // How long a deploy takes here, so the kills can land anywhere in one.
  const d0start = ctl.msgs.find((m) => m.topic === `${BASE}/jobs/d0/status` && m.doc.state === 'IN_PROGRESS')!.at;
  const span = Math.max(500, d0end.at - d0start);
  let active = a.sha256;
  const outcomes: Record<string, number> = {};
  // The last progress step seen lags the kill (progress is rate-limited), so the offset into a deploy is kept too.
  const offsets: number[] = [];
  const rounds = 4;
  for (let i = 1; i <= rounds; i++) {
    const target = active === a.sha256 ? b : a;
    const id = `d${i}`;
    await deploy(id, target);
    await ctl.waitFor((m) => m.topic === `${BASE}/jobs/${id}/status` && m.doc.state === 'IN_PROGRESS', `${id} running`, 60_000);
    // anywhere from the fetch to just past the commit
    const delay = Math.random() * span * 1.1;
    offsets.push(Math.round((delay / span) * 100));
    await sleep(delay);
    await agent.kill('SIGKILL');
    const atKill = await checkState(t, stateDir, [a.sha256, b.sha256]);
    const step = ctl.msgs.filter((m) => m.topic === `${BASE}/jobs/${id}/status`).at(-1)?.doc;
    const where = TERMINAL.includes(step?.state) ? 'after the end' : step?.progress?.step?.split(':')[0] ?? 'queued';
    outcomes[where] = (outcomes[where] ?? 0) + 1;
    agent = startAgent(t, env);
    const end = await endOf(id);
    t.equal(end.doc.state, 'SUCCEEDED', `${id} completed after the restart (${JSON.stringify(end.doc.error)})`);
    active = (await checkState(t, stateDir, [a.sha256, b.sha256]))!;
    t.equal(active, target.sha256, `${id}: the new model is active`);
    t.ok(atKill === undefined || [a.sha256, b.sha256].includes(atKill), 'at the kill it was the old or the new one');
  }
  t.comment(`FAULTS agent-crash/deploy: agent SIGKILLs=${rounds} killed-during=${JSON.stringify(outcomes)} at-%-of-a-deploy=${offsets.join(',')} broken-models=0`);
  await agent.kill('SIGTERM');
});
