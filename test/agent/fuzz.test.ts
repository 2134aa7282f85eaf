// Hundreds of malformed job messages through a real broker: the agent never crashes, answers each one REJECTED
// exactly once, runs none of them, and still runs a good job afterwards.
import t from 'tap';
import { Agent } from '../../src/agent/agent.js';
import { memoryLogger } from '../../src/agent/log.js';
import { fuzzCases } from './fuzz.js';
import { observe, startBroker, testConfig, testHandlers, until } from './helpers.js';

const BASE = 'edgetune/test/dev1';

t.test('fuzzed job payloads are each REJECTED once, with a reason; nothing runs; the agent keeps working', async (t) => {
  const { url } = await startBroker(t);
  const counts: Record<string, number> = {};
  const log = memoryLogger();
  const config = await testConfig(t.testdir(), url);
  const agent = new Agent({ config, log, profile: async () => ({ v: 1 } as any), healthProbe: async () => ({ notes: [] }), handlers: testHandlers(counts) });
  t.teardown(() => agent.stop());
  await agent.start();
  await agent.waitConnected();
  const obs = await observe(t, url, `${BASE}/jobs/+/status`);
  const cases = fuzzCases(320, { seed: 7, maxPayloadBytes: config.limits.maxPayloadBytes, types: ['hash', 'wait', 'nodes', 'cancel'] });
  for (const c of cases) await obs.client.publishAsync(`${BASE}/jobs/${c.id}`, c.payload, { qos: 1 });
  // garbage on the transfer topic too: refused, never a crash
  for (const [id, idx] of [['ok', '-1'], ['ok', 'x'], ['bad id!', '0'], ['ok', '9999999']]) await obs.client.publishAsync(`${BASE}/transfer/${id}/${idx}`, Buffer.from('zz'), { qos: 1 });
  await until(() => new Set(obs.msgs.map((m) => m.doc.id)).size >= cases.length, `${cases.length} answers`, 60_000);
  const byId = new Map<string, any[]>();
  for (const m of obs.msgs) byId.set(m.doc.id, [...(byId.get(m.doc.id) ?? []), m.doc]);
  const wrong = cases.filter((c) => byId.get(c.id)?.length !== 1 || byId.get(c.id)![0].state !== 'REJECTED');
  t.same(wrong.map((c) => `${c.id} (${c.breaker}): ${JSON.stringify(byId.get(c.id))}`), [], 'every case REJECTED exactly once');
  t.ok([...byId.values()].every((docs) => docs.every((d) => d.error?.code === 'JOB_INVALID' && /^\/\S*: /.test(d.error.message))), 'each with a `path: message` reason');
  t.same(counts, {}, 'no handler ran');
  // Redelivering the same bad messages is not answered again (never a loop).
  const before = obs.msgs.length;
  for (const c of cases.slice(0, 20)) await obs.client.publishAsync(`${BASE}/jobs/${c.id}`, c.payload, { qos: 1 });
  await obs.client.publishAsync(`${BASE}/jobs/good`, JSON.stringify({ v: 1, id: 'good', type: 'hash', params: { text: 'ok', rounds: 1 } }), { qos: 1 });
  await obs.waitFor((m) => m.doc.id === 'good' && m.doc.state === 'SUCCEEDED', 'a good job still runs');
  t.same(obs.msgs.slice(before).filter((m) => m.doc.id !== 'good'), [], 'no second answer to a redelivered bad message');
  t.equal(log.lines.filter((l) => /transfer chunk refused/.test(l.msg)).length, 4, 'bad transfer chunks refused');
});
