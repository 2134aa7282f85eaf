// The `config` job: read the effective config, change the few remote-settable fields, persist them.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { memoryLogger } from '../../src/agent/log.js';
import { RemotePatchSchema } from '../../src/agent/remote-config.js';
import { observe, startBroker, testConfig } from './helpers.js';

const BASE = 'edgetune/test/dev1';

t.test('the remote-settable part of the schema holds no paths, keys, broker settings or limits', async (t) => {
  const flat = JSON.stringify(RemotePatchSchema);
  for (const banned of ['stateDir', 'broker', 'publicKey', 'maxPayloadBytes', 'deploy', 'limits', 'x-path']) t.notOk(flat.includes(banned), banned);
  t.ok(flat.includes('groups') && flat.includes('intervalS') && flat.includes('progressIntervalMs'));
});

t.test('config job: get (redacted), set groups live and persisted, refuse what may not change, reset', async (t) => {
  const { url } = await startBroker(t);
  const stateDir = t.testdir();
  const mk = async () => {
    const config = await testConfig(stateDir, url, { broker: { username: 'dev1', password: 'hunter2' } });
    const agent = new Agent({ config, log: memoryLogger(), profile: async () => ({ v: 1 } as any), healthProbe: async () => ({ notes: [] }) });
    t.teardown(() => agent.stop());
    await agent.start();
    await agent.waitConnected();
    return agent;
  };
  const a = await mk();
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  const run = async (id: string, params: unknown) => {
    await obs.client.publishAsync(`${BASE}/jobs/${id}`, JSON.stringify({ v: 1, id, type: 'config', params }), { qos: 1 });
    const st = await obs.waitFor((m) => m.topic === `${BASE}/jobs/${id}/status` && ['SUCCEEDED', 'FAILED', 'REJECTED'].includes(m.doc.state), id);
    return { status: st.doc, result: obs.msgs.find((m) => m.topic === `${BASE}/jobs/${id}/result`)?.doc };
  };
  const get = await run('g1', {});
  t.equal(get.status.state, 'SUCCEEDED');
  t.match(get.result, { v: 1, config: { fleet: 'test', deviceId: 'dev1', broker: { username: 'dev1', password: '(set)' } }, remote: {} });
  t.notOk(JSON.stringify(get.result).includes('hunter2'), 'the password never leaves the device');

  const set = await run('s1', { set: { groups: ['lab'], heartbeat: { intervalS: 30 } } });
  t.equal(set.status.state, 'SUCCEEDED', JSON.stringify(set.status.error));
  t.match(set.result.config, { groups: ['lab'], heartbeat: { intervalS: 30, minGapS: 10 } });
  t.same(a.config.groups, ['lab'], 'applied to the running agent');
  t.ok(existsSync(join(stateDir, 'remote-config.json')));
  // the new group subscription is live: a job for group lab reaches the device
  await obs.client.publishAsync('edgetune/test/group/lab/jobs/viagroup', JSON.stringify({ v: 1, id: 'viagroup', type: 'config', params: {} }), { qos: 1 });
  await obs.waitFor((m) => m.topic === `${BASE}/jobs/viagroup/status` && m.doc.state === 'SUCCEEDED', 'group job served');

  const banned = await run('s2', { set: { broker: { url: 'mqtt://evil:1883' } } });
  t.match(banned.status, { state: 'REJECTED', error: { message: /\/params\/set\/broker: Unexpected property/ } });
  const path = await run('s3', { set: { stateDir: '/tmp' } });
  t.match(path.status, { state: 'REJECTED', error: { message: /\/params\/set\/stateDir/ } });
  const low = await run('s4', { set: { heartbeat: { intervalS: 1 } } });
  t.match(low.status, { state: 'REJECTED', error: { message: /\/params\/set\/heartbeat\/intervalS/ } });

  // persisted: a restarted agent still has the group
  await a.stop();
  const b = await mk();
  t.same(b.config.groups, ['lab'], 'remote changes survive a restart');
  const reset = await run('r1', { reset: true });
  t.equal(reset.status.state, 'SUCCEEDED');
  t.same(b.config.groups, [], 'reset drops them');
  t.same(JSON.parse(readFileSync(join(stateDir, 'remote-config.json'), 'utf8')), { v: 1, set: {} });
});
