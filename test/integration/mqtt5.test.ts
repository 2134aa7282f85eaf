// MQTT 5 against Mosquitto: response topic and correlation data honoured, the session (and jobs queued in it)
// kept while the agent is away, the last will published when the agent process is killed.
import t from 'tap';
import { join } from 'node:path';
import { agentEnv, controller, mosquitto, skip, startAgent, TERMINAL } from './harness.js';

const BASE = 'edgetune/it/m5';

t.test('request/response: the reply goes to the response topic with the correlation data', { skip }, async (t) => {
  const dir = t.testdir();
  const mq = await mosquitto(t, join(dir, 'mq'));
  const agent = startAgent(t, agentEnv(mq.url, join(dir, 'state'), 'm5'));
  const ctl = await controller(t, mq.url, [`${BASE}/#`, 'replies/#']);
  await ctl.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'online', 'online');
  const corr = Buffer.from('req-42-\u00e9', 'utf8');
  await ctl.client.publishAsync(`${BASE}/jobs/rr1`, JSON.stringify({ v: 1, id: 'rr1', type: 'config', params: {} }), {
    qos: 1, properties: { responseTopic: 'replies/ctl', correlationData: corr },
  });
  const reply = await ctl.waitFor((m) => m.topic === 'replies/ctl', 'reply');
  t.match(reply.doc, { v: 1, id: 'rr1', state: 'SUCCEEDED', data: { v: 1, config: { deviceId: 'm5' } } });
  t.ok(Buffer.from(reply.props?.correlationData ?? []).equals(corr), 'correlation data echoed byte for byte');
  // a bad job answers REJECTED on the response topic too
  await ctl.client.publishAsync(`${BASE}/jobs/rr2`, '{"v":1,', { qos: 1, properties: { responseTopic: 'replies/ctl', correlationData: Buffer.from('two') } });
  const rej = await ctl.waitFor((m) => m.topic === 'replies/ctl' && m.doc.id === 'rr2', 'reply to a bad job');
  t.match(rej.doc, { state: 'REJECTED', data: null, error: { code: 'JOB_INVALID' } });
  // a wildcard response topic is ignored, the job still runs
  await ctl.client.publishAsync(`${BASE}/jobs/rr3`, JSON.stringify({ v: 1, id: 'rr3', type: 'config', params: {} }), { qos: 1, properties: { responseTopic: 'replies/#' } });
  await ctl.waitFor((m) => m.topic === `${BASE}/jobs/rr3/status` && m.doc.state === 'SUCCEEDED', 'rr3 ran');
  t.notOk(ctl.msgs.some((m) => m.topic.startsWith('replies/') && m.doc.id === 'rr3'));
  await agent.kill('SIGTERM');
});

t.test('MQTT 5 session: jobs sent while the agent is away run when it returns; SIGKILL shows the last will', { skip }, async (t) => {
  const dir = t.testdir();
  const mq = await mosquitto(t, join(dir, 'mq'));
  const env = agentEnv(mq.url, join(dir, 'state'), 'm5');
  const a1 = startAgent(t, env);
  const ctl = await controller(t, mq.url, [`${BASE}/#`]);
  const online = await ctl.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'online', 'online');
  await a1.kill('SIGKILL');
  const will = await ctl.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'offline', 'last will', 20_000);
  t.equal(will.doc.session, online.doc.session, 'the will carries the session of the killed run');
  await ctl.client.publishAsync(`${BASE}/jobs/away1`, JSON.stringify({ v: 1, id: 'away1', type: 'config', params: {} }), { qos: 1 });
  const a2 = startAgent(t, env);
  const done = await ctl.waitFor((m) => m.topic === `${BASE}/jobs/away1/status` && TERMINAL.includes(m.doc.state), 'queued job ran');
  t.equal(done.doc.state, 'SUCCEEDED');
  const back = await ctl.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'online' && m.doc.session > online.doc.session, 'online again');
  t.equal(back.doc.session, online.doc.session + 1);
  await a2.kill('SIGTERM');
  t.equal(await a2.exited, 0, 'SIGTERM: clean exit');
});
