// Thousands of malformed job messages through Mosquitto at the real agent process: it never crashes, answers
// every one REJECTED with a reason, runs none, and still serves a good job afterwards.
import t from 'tap';
import { join } from 'node:path';
import { fuzzCases } from '../agent/fuzz.js';
import { agentEnv, controller, mosquitto, skip, sleep, startAgent } from './harness.js';

const BASE = 'edgetune/it/fz';
const N = 3000;

t.test(`${N} fuzzed payloads: no crash, each REJECTED`, { skip }, async (t) => {
  const dir = t.testdir();
  const mq = await mosquitto(t, join(dir, 'mq'), [], { durable: false });
  const agent = startAgent(t, agentEnv(mq.url, join(dir, 'state'), 'fz'));
  const ctl = await controller(t, mq.url, [`${BASE}/jobs/+/status`, `${BASE}/status`]);
  await ctl.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'online', 'online', 60_000);
  const cases = fuzzCases(N, { seed: 2024, maxPayloadBytes: 262144, types: ['profile', 'compress', 'bench', 'tune', 'deploy', 'rollback', 'config', 'cancel'] });
  const published = Date.now();
  // a window of publishes in flight: fast, and below Mosquitto's receive maximum
  for (let i = 0; i < cases.length; i += 16) {
    await Promise.all(cases.slice(i, i + 16).map((c) => ctl.client.publishAsync(`${BASE}/jobs/${c.id}`, c.payload, { qos: 1 })));
  }
  const answered = () => new Set(ctl.msgs.filter((m) => m.topic.endsWith('/status') && m.doc.id?.startsWith('fz')).map((m) => m.doc.id)).size;
  const start = Date.now();
  t.comment(`published ${N} in ${((start - published) / 1000).toFixed(1)} s`);
  while (answered() < N && Date.now() - start < 120_000) await sleep(200);
  const byId = new Map<string, any[]>();
  for (const m of ctl.msgs) if (m.topic.endsWith('/status') && m.doc.id?.startsWith('fz')) byId.set(m.doc.id, [...(byId.get(m.doc.id) ?? []), m.doc]);
  const unanswered = cases.filter((c) => !byId.has(c.id));
  const notRejected = cases.filter((c) => byId.get(c.id)?.some((d) => d.state !== 'REJECTED'));
  t.same(unanswered.map((c) => `${c.id} (${c.breaker})`), [], 'every payload answered');
  t.same(notRejected.map((c) => `${c.id} (${c.breaker}): ${JSON.stringify(byId.get(c.id))}`), [], 'every answer is REJECTED');
  t.ok([...byId.values()].every((d) => /^\/\S*: /.test(d[0].error?.message ?? '')), 'each with a `path: message` reason');
  t.equal(agent.child.exitCode, null, 'the agent process is alive');
  t.notOk(agent.logs.some((l) => l.msg === 'job started'), 'no job ran');
  await ctl.client.publishAsync(`${BASE}/jobs/good`, JSON.stringify({ v: 1, id: 'good', type: 'config', params: {} }), { qos: 1 });
  await ctl.waitFor((m) => m.topic === `${BASE}/jobs/good/status` && m.doc.state === 'SUCCEEDED', 'a good job after the storm');
  const duplicates = [...byId.values()].reduce((n, d) => n + d.length - 1, 0);
  const breakers = new Set(cases.map((c) => c.breaker)).size;
  t.comment(`FAULTS fuzz: payloads=${N} kinds=${breakers} rejected=${byId.size} other-states=${notRejected.length} duplicate-answers=${duplicates} agent-crashes=0 in ${((Date.now() - start) / 1000).toFixed(1)} s`);
  await agent.kill('SIGTERM');
  t.equal(await agent.exited, 0);
});
