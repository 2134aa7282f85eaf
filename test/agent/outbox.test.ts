// Nothing the agent owes the fleet is lost: the outbox on disk, against a real broker whose connection is cut.
import t from 'tap';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { memoryLogger } from '../../src/agent/log.js';
import { Outbox } from '../../src/agent/outbox.js';
import { Transport } from '../../src/agent/transport.js';
import { observe, sha256Rounds, startBroker, tcpProxy, testConfig, testHandlers, until } from './helpers.js';

const BASE = 'edgetune/test/dev1';
const profile = async () => ({ v: 1, id: 'test', arch: process.arch } as any);
const probe = async () => ({ notes: [] });

async function agentAt(t: any, url: string, stateDir: string, counts: Record<string, number> = {}) {
  const log = memoryLogger();
  const config = await testConfig(stateDir, url);
  const agent = new Agent({ config, log, profile, healthProbe: probe, handlers: testHandlers(counts), runner: { progressIntervalMs: 20, abortGraceMs: 500 } });
  t.teardown(() => agent.stop());
  await agent.start();
  await agent.waitConnected(); // the broker keeps jobs for a session only once it has subscribed
  return { agent, log };
}

t.test('outbox: entries persist in order, held ones wait for release, acked ones are deleted', async (t) => {
  const { url } = await startBroker(t);
  const dir = t.testdir();
  const log = memoryLogger();
  const tr = new Transport({ url, clientId: 'ob-test', keepaliveS: 30, protocolVersion: 4, reconnect: { minMs: 50, maxMs: 200 }, log });
  t.teardown(() => tr.stop());
  const obs = await observe(t, url, 'ob/#');
  const ob = new Outbox({ dir, publish: (m) => tr.publish(m.topic, m.doc, { qos: 1 }), connected: () => tr.connected, log });
  t.same(await ob.load(), []);
  const s1 = await ob.add([{ topic: 'ob/a', doc: { v: 1, n: 1 } }]);
  const s2 = await ob.add([{ topic: 'ob/b', doc: { v: 1, n: 2 } }, { topic: 'ob/c', doc: { v: 1, n: 3 } }], { hold: true, tag: { job: 'j', terminal: true } });
  t.same(readdirSync(dir).sort(), [`${String(s1).padStart(12, '0')}.json`, `${String(s2).padStart(12, '0')}.json`], 'on disk before any connection');
  tr.start();
  await tr.waitConnected();
  ob.pump();
  await obs.waitFor((m) => m.topic === 'ob/a', 'a delivered');
  await until(() => ob.size === 1, 'a acked and forgotten');
  t.notOk(obs.msgs.some((m) => m.topic === 'ob/b'), 'held entry not sent');
  // A "crash" now: a new outbox over the same folder sees the held entry (released: the commit is recovery's job).
  const again = new Outbox({ dir, publish: async () => {}, connected: () => false, log });
  t.match(await again.load(), [{ seq: s2, tag: { job: 'j', terminal: true }, messages: [{ topic: 'ob/b' }, { topic: 'ob/c' }] }]);
  ob.release(s2);
  await ob.drained();
  // drained() means the broker acked; the observing client may receive a moment later.
  await obs.waitFor((m) => m.topic === 'ob/c', 'c delivered');
  t.same(obs.msgs.map((m) => m.doc.n), [1, 2, 3], 'in order');
  t.same(readdirSync(dir), [], 'nothing left on disk');
  writeFileSync(join(dir, '000000000009.json'), '{"torn');
  const third = new Outbox({ dir, publish: async () => {}, connected: () => false, log });
  t.same(await third.load(), []);
  t.ok(existsSync(join(dir, '000000000009.json.corrupt')), 'an unreadable entry is moved aside, not resent');
});

t.test('connection cut again and again mid-job: every result and final status arrives', async (t) => {
  const { url, port } = await startBroker(t);
  const proxy = await tcpProxy(t, port);
  const counts: Record<string, number> = {};
  await agentAt(t, `mqtt://127.0.0.1:${proxy.port}`, t.testdir(), counts);
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  const ids = Array.from({ length: 8 }, (_, i) => `cut${i}`);
  for (const id of ids) await obs.client.publishAsync(`${BASE}/jobs/${id}`, JSON.stringify({ v: 1, id, type: 'hash', params: { text: id, rounds: 20000 } }), { qos: 1 });
  let cuts = 0;
  const done = () => ids.every((id) => obs.msgs.some((m) => m.topic === `${BASE}/jobs/${id}/status` && m.doc.state === 'SUCCEEDED'));
  while (!done() && cuts < 200) {
    await new Promise((r) => setTimeout(r, 60 + Math.random() * 120));
    proxy.kill();
    cuts++;
  }
  await until(done, 'all jobs ended', 30_000);
  for (const id of ids) {
    const r = obs.msgs.find((m) => m.topic === `${BASE}/jobs/${id}/result`);
    t.same(r?.doc, { v: 1, digest: sha256Rounds(id, 20000), rounds: 20000 }, `${id} result arrived intact`);
  }
  t.equal(counts.hash, ids.length, 'each job ran once: redelivered jobs were recognised');
  t.ok(cuts >= 3, `the connection was cut ${cuts} times`);
  t.comment(`connection cuts: ${cuts}, reconnects: ${proxy.connections() - 1}`);
});

t.test('results that could not be sent survive an agent restart and are delivered by the next run', async (t) => {
  const { url, port } = await startBroker(t);
  const proxy = await tcpProxy(t, port);
  const stateDir = t.testdir();
  const first = await agentAt(t, `mqtt://127.0.0.1:${proxy.port}`, stateDir);
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  await obs.client.publishAsync(`${BASE}/jobs/offline1`, JSON.stringify({ v: 1, id: 'offline1', type: 'wait', params: { ms: 400 } }), { qos: 1 });
  await obs.waitFor((m) => m.topic === `${BASE}/jobs/offline1/status` && m.doc.state === 'IN_PROGRESS', 'running');
  proxy.down();
  await until(() => first.log.lines.some((l) => l.msg === 'job succeeded' && l.id === 'offline1'), 'job done while offline');
  await first.agent.stop();
  t.ok(readdirSync(join(stateDir, 'outbox')).length >= 1, 'the result waits on disk');
  t.notOk(obs.msgs.some((m) => m.topic === `${BASE}/jobs/offline1/result`), 'not delivered yet');
  await agentAt(t, url, stateDir);
  const res = await obs.waitFor((m) => m.topic === `${BASE}/jobs/offline1/result`, 'result after restart');
  t.same(res.doc, { v: 1, waited: 400 });
  await obs.waitFor((m) => m.topic === `${BASE}/jobs/offline1/status` && m.doc.state === 'SUCCEEDED', 'final status after restart');
  await until(() => readdirSync(join(stateDir, 'outbox')).length === 0, 'outbox empty once acknowledged');
});
