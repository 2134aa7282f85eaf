import t from 'tap';
import { Agent } from '../../src/agent/agent.js';
import { memoryLogger } from '../../src/agent/log.js';
import { profileDevice } from '../../src/profile/index.js';
import { observe, sha256Rounds, startBroker, tcpProxy, testConfig, testHandlers, until } from './helpers.js';

const profile = () => profileDevice({ skipSystemInformation: true });
const BASE = 'edgetune/test/dev1';

async function startAgent(tt: any, url: string, opts: { stateDir?: string; counts?: Record<string, number>; extra?: Record<string, any> } = {}) {
  const log = memoryLogger();
  const config = await testConfig(opts.stateDir ?? tt.testdir(), url, opts.extra);
  const agent = new Agent({ config, log, profile, handlers: testHandlers(opts.counts), runner: { progressIntervalMs: 20, abortGraceMs: 500 } });
  tt.teardown(() => agent.stop());
  await agent.start();
  await agent.waitConnected();
  return { agent, log, config };
}

const pub = (client: any, id: string, doc: unknown) => client.publishAsync(`${BASE}/jobs/${id}`, typeof doc === 'string' ? doc : JSON.stringify(doc), { qos: 1 });
const states = (msgs: any[], id: string) => msgs.filter((m) => m.topic === `${BASE}/jobs/${id}/status`).map((m) => m.doc.state);

t.test('birth: retained online status, profile and health reach a client that subscribes later', async (t) => {
  const { url } = await startBroker(t);
  const { agent } = await startAgent(t, url);
  // Profiling runs in the background after connecting; wait until it was published at all.
  const first = await observe(t, url, `${BASE}/#`);
  await first.waitFor((m) => m.topic === `${BASE}/profile`, 'profile published');
  const obs = await observe(t, url, `${BASE}/#`);
  const status = await obs.waitFor((m) => m.topic === `${BASE}/status`, 'retained status');
  t.equal(status.retain, true, 'status is retained');
  t.match(status.doc, { v: 1, state: 'online', session: agent.session, version: String });
  t.ok(!Number.isNaN(Date.parse(status.doc.ts)), 'ts is a date');
  const prof = await obs.waitFor((m) => m.topic === `${BASE}/profile`, 'retained profile');
  t.equal(prof.retain, true);
  t.match(prof.doc, { v: 1, arch: process.arch, cpu: { cores: Number } });
  const health = await obs.waitFor((m) => m.topic === `${BASE}/health`, 'retained health');
  t.equal(health.retain, true);
  t.match(health.doc, { v: 1, session: agent.session, job: null, queued: 0, outbox: Number, agentRssMB: Number, notes: Array });
  t.ok(health.doc.agentRssMB > 10, 'the agent reports its own memory');
});

t.test('LWT: a dropped socket shows offline with the same session, then the agent reconnects and is online again', async (t) => {
  const { url, port } = await startBroker(t);
  const proxy = await tcpProxy(t, port);
  const { agent } = await startAgent(t, `mqtt://127.0.0.1:${proxy.port}`);
  const obs = await observe(t, url, `${BASE}/status`);
  await obs.waitFor((m) => m.doc.state === 'online', 'online');
  proxy.kill();
  const off = await obs.waitFor((m) => m.doc.state === 'offline', 'LWT offline');
  t.equal(off.doc.session, agent.session, 'the will carries the session number');
  const n = obs.msgs.indexOf(off);
  await obs.waitFor((m) => obs.msgs.indexOf(m) > n && m.doc.state === 'online', 'online again after backoff');
  t.pass('republished online after reconnect');
});

t.test('a restarted broker (which lost retained state) gets status and profile again, and jobs still run', async (t) => {
  const first = await startBroker(t);
  const { log } = await startAgent(t, first.url);
  await until(() => log.lines.some((l) => l.msg === 'agent started'), 'started');
  const early = await observe(t, first.url, `${BASE}/profile`);
  await early.waitFor(() => true, 'profile taken');
  await first.broker.stop();
  const second = await startBroker(t, first.port);
  const connects = () => log.lines.filter((l) => l.msg === 'connected to MQTT broker').length;
  await until(() => connects() >= 2, 'agent reconnected to the new broker');
  const live = await observe(t, second.url, `${BASE}/#`);
  await live.waitFor((m) => m.topic === `${BASE}/health`, 'birth done (health is published last)');
  // A client that arrives after the reconnect only sees what the agent republished, as retained messages.
  const obs = await observe(t, second.url, `${BASE}/#`);
  await obs.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'online' && m.retain, 'retained online on the new broker');
  await obs.waitFor((m) => m.topic === `${BASE}/profile` && m.retain, 'retained profile on the new broker');
  await pub(obs.client, 'after-restart', { v: 1, id: 'after-restart', type: 'hash', params: { text: 'x', rounds: 10 } });
  await obs.waitFor((m) => m.topic === `${BASE}/jobs/after-restart/status` && m.doc.state === 'SUCCEEDED', 'job done');
});

t.test('job in → QUEUED, IN_PROGRESS, SUCCEEDED → result out; a duplicate id is not run again', async (t) => {
  const { url } = await startBroker(t);
  const counts: Record<string, number> = {};
  const stateDir = t.testdir();
  await startAgent(t, url, { counts, stateDir });
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  await pub(obs.client, 'j1', { v: 1, id: 'j1', type: 'hash', params: { text: 'edge', rounds: 60000 } });
  const result = await obs.waitFor((m) => m.topic === `${BASE}/jobs/j1/result`, 'result');
  t.same(result.doc, { v: 1, digest: sha256Rounds('edge', 60000), rounds: 60000 }, 'the result is the real digest');
  await obs.waitFor((m) => m.topic === `${BASE}/jobs/j1/status` && m.doc.state === 'SUCCEEDED', 'SUCCEEDED');
  // QoS 0 progress may overtake QoS 1 statuses in the broker; `seq` is how a controller restores the order.
  const st = obs.msgs.filter((m) => m.topic === `${BASE}/jobs/j1/status`).map((m) => m.doc).sort((a, b) => a.seq - b.seq);
  t.same([st[0].state, st[1].state, st.at(-1).state], ['QUEUED', 'IN_PROGRESS', 'SUCCEEDED']);
  t.same(st.map((s) => s.seq), st.map((_, i) => i + 1), 'seq counts up from 1 with no gaps or repeats');
  t.ok(st.length > 3, 'progress updates were published between IN_PROGRESS and SUCCEEDED');
  t.ok(st.slice(2, -1).every((s) => s.state === 'IN_PROGRESS' && s.progress.step === 'hashing'), 'progress carries the step');
  t.ok(st.every((s) => s.v === 1 && s.id === 'j1' && typeof s.progress.pct === 'number'), 'every status is a full document');
  t.equal(st.at(-1).progress.pct, 100);
  t.notOk(obs.msgs.some((m) => m.topic === `${BASE}/jobs/j1/status` && m.retain), 'job statuses are not retained');

  const before = obs.msgs.length;
  await pub(obs.client, 'j1', { v: 1, id: 'j1', type: 'hash', params: { text: 'edge', rounds: 60000 } });
  await pub(obs.client, 'j2', { v: 1, id: 'j2', type: 'hash', params: { text: 'marker', rounds: 1 } });
  await obs.waitFor((m) => m.topic === `${BASE}/jobs/j2/status` && m.doc.state === 'SUCCEEDED', 'marker job done');
  t.equal(counts.hash, 2, 'j1 ran once, j2 once');
  t.notOk(obs.msgs.slice(before).some((m) => m.topic.includes('/jobs/j1/')), 'nothing published for the duplicate');
});

t.test('seen job ids survive a restart; the session number goes up', async (t) => {
  const { url } = await startBroker(t);
  const stateDir = t.testdir();
  const counts: Record<string, number> = {};
  const a = await startAgent(t, url, { counts, stateDir });
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  await pub(obs.client, 'p1', { v: 1, id: 'p1', type: 'hash', params: { text: 'a', rounds: 1 } });
  await obs.waitFor((m) => m.topic === `${BASE}/jobs/p1/status` && m.doc.state === 'SUCCEEDED', 'first run');
  const s1 = a.agent.session!;
  await a.agent.stop();
  const b = await startAgent(t, url, { counts, stateDir });
  t.equal(b.agent.session, s1 + 1);
  await pub(obs.client, 'p1', { v: 1, id: 'p1', type: 'hash', params: { text: 'a', rounds: 1 } });
  await pub(obs.client, 'p2', { v: 1, id: 'p2', type: 'hash', params: { text: 'b', rounds: 1 } });
  await obs.waitFor((m) => m.topic === `${BASE}/jobs/p2/status` && m.doc.state === 'SUCCEEDED', 'marker');
  t.equal(counts.hash, 2, 'p1 was not run by the restarted agent');
  t.ok(b.log.lines.some((l) => l.msg.includes('seen before') && l.id === 'p1'), 'the skip is logged');
});

t.test('malformed jobs are REJECTED with a reason naming the field, never run', async (t) => {
  const { url } = await startBroker(t);
  const counts: Record<string, number> = {};
  await startAgent(t, url, { counts });
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  const cases: Array<[string, unknown, RegExp]> = [
    ['bad-json', '{"v":1, "id": "bad-json", ', /^\/: not valid JSON/],
    ['no-type', { v: 1, id: 'no-type', params: {} }, /^\/type: Expected required property$/],
    ['unknown', { v: 1, id: 'unknown', type: 'launch-rockets', params: {} }, /\/type: unknown job type 'launch-rockets'.*hash/],
    ['bad-param', { v: 1, id: 'bad-param', type: 'hash', params: { text: 1 } }, /\/params\/text: Expected string/],
    ['extra', { v: 1, id: 'extra', type: 'hash', params: { text: 'a', bogus: true } }, /\/params\/bogus/],
    ['big', JSON.stringify({ v: 1, id: 'big', type: 'hash', params: { text: 'x'.repeat(5000) } }), /5\d{3} bytes, over the 4096-byte limit/],
    ['mismatch', { v: 1, id: 'other', type: 'hash', params: { text: 'a' } }, /\/id: 'other' differs from the id in the topic \('mismatch'\)/],
    ['old-v', { v: 2, id: 'old-v', type: 'hash', params: { text: 'a' } }, /\/v: Expected 1/],
    ['neg-timeout', { v: 1, id: 'neg-timeout', type: 'hash', params: { text: 'a' }, timeoutS: -1 }, /\/timeoutS/],
  ];
  for (const [id, doc] of cases) await pub(obs.client, id, doc);
  for (const [id, , reason] of cases) {
    const m = await obs.waitFor((x) => x.topic === `${BASE}/jobs/${id}/status`, `status of ${id}`);
    t.equal(m.doc.state, 'REJECTED', `${id} rejected`);
    t.equal(m.doc.error.code, 'JOB_INVALID');
    t.match(m.doc.error.message, reason, `${id}: ${m.doc.error.message}`);
  }
  t.same(counts, {}, 'no handler ran');
});

t.test('timeoutS → TIMED_OUT and the next job runs', async (t) => {
  const { url } = await startBroker(t);
  await startAgent(t, url);
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  await pub(obs.client, 'slow', { v: 1, id: 'slow', type: 'wait', params: { ms: 60000 }, timeoutS: 0.3 });
  await pub(obs.client, 'next', { v: 1, id: 'next', type: 'wait', params: { ms: 1 } });
  const m = await obs.waitFor((x) => x.topic === `${BASE}/jobs/slow/status` && x.doc.state === 'TIMED_OUT', 'TIMED_OUT');
  t.match(m.doc.error, { code: 'TIMEOUT', message: /timeoutS \(0.3 s\)/ });
  await obs.waitFor((x) => x.topic === `${BASE}/jobs/next/status` && x.doc.state === 'SUCCEEDED', 'next job');
  t.same(states(obs.msgs, 'next'), ['QUEUED', 'IN_PROGRESS', 'SUCCEEDED'], 'next waited its turn');
  t.notOk(obs.msgs.some((x) => x.topic === `${BASE}/jobs/slow/result`), 'no result for a timed-out job');
});

t.test('a handler that ignores its abort is abandoned after the grace period', async (t) => {
  const { url } = await startBroker(t);
  const { log } = await startAgent(t, url);
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  await pub(obs.client, 'stub', { v: 1, id: 'stub', type: 'stubborn', params: { ms: 5000 }, timeoutS: 0.1 });
  await pub(obs.client, 'after', { v: 1, id: 'after', type: 'wait', params: { ms: 1 } });
  await obs.waitFor((x) => x.topic === `${BASE}/jobs/stub/status` && x.doc.state === 'TIMED_OUT', 'TIMED_OUT');
  await obs.waitFor((x) => x.topic === `${BASE}/jobs/after/status` && x.doc.state === 'SUCCEEDED', 'queue moved on', 4000);
  t.ok(log.lines.some((l) => l.level === 'warn' && /ignored its abort signal/.test(l.msg)));
});

t.test('cancel: a running job and a queued job end CANCELED; canceling nothing fails', async (t) => {
  const { url } = await startBroker(t);
  await startAgent(t, url);
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  await pub(obs.client, 'long', { v: 1, id: 'long', type: 'wait', params: { ms: 60000 } });
  await pub(obs.client, 'queued', { v: 1, id: 'queued', type: 'wait', params: { ms: 60000 } });
  await obs.waitFor((x) => x.topic === `${BASE}/jobs/long/status` && x.doc.state === 'IN_PROGRESS', 'long running');
  await obs.waitFor((x) => x.topic === `${BASE}/jobs/queued/status` && x.doc.state === 'QUEUED', 'queued');
  await pub(obs.client, 'c1', { v: 1, id: 'c1', type: 'cancel', params: { id: 'queued' } });
  await pub(obs.client, 'c2', { v: 1, id: 'c2', type: 'cancel', params: { id: 'long' } });
  await pub(obs.client, 'c3', { v: 1, id: 'c3', type: 'cancel', params: { id: 'nope' } });
  const q = await obs.waitFor((x) => x.topic === `${BASE}/jobs/queued/status` && x.doc.state === 'CANCELED', 'queued canceled');
  t.match(q.doc.error, { code: 'CANCELED', message: /canceled by job c1/ });
  const l = await obs.waitFor((x) => x.topic === `${BASE}/jobs/long/status` && x.doc.state === 'CANCELED', 'long canceled');
  t.match(l.doc.error, { code: 'CANCELED', message: /c2/ });
  const r1 = await obs.waitFor((x) => x.topic === `${BASE}/jobs/c1/result`, 'c1 result');
  const r2 = await obs.waitFor((x) => x.topic === `${BASE}/jobs/c2/result`, 'c2 result');
  t.same([r1.doc.previousState, r2.doc.previousState], ['QUEUED', 'IN_PROGRESS']);
  const c3 = await obs.waitFor((x) => x.topic === `${BASE}/jobs/c3/status`, 'c3 status');
  t.match(c3.doc, { state: 'FAILED', error: { message: /\/params\/id: no queued or running job 'nope'/ } });
  t.same(states(obs.msgs, 'queued'), ['QUEUED', 'CANCELED'], 'the queued job never started');
});

t.test('fleet-wide and group job topics are served; replies go to the device topics', async (t) => {
  const { url } = await startBroker(t);
  await startAgent(t, url, { extra: { groups: ['pi4'] } });
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  await obs.client.publishAsync('edgetune/test/all/jobs/fleet1', JSON.stringify({ v: 1, id: 'fleet1', type: 'hash', params: { text: 'f', rounds: 1 } }), { qos: 1 });
  await obs.client.publishAsync('edgetune/test/group/pi4/jobs/grp1', JSON.stringify({ v: 1, id: 'grp1', type: 'hash', params: { text: 'g', rounds: 1 } }), { qos: 1 });
  await obs.waitFor((x) => x.topic === `${BASE}/jobs/fleet1/status` && x.doc.state === 'SUCCEEDED', 'fleet job');
  await obs.waitFor((x) => x.topic === `${BASE}/jobs/grp1/status` && x.doc.state === 'SUCCEEDED', 'group job');
  t.pass();
});

t.test('a failing handler → FAILED with its error code', async (t) => {
  const { url } = await startBroker(t);
  await startAgent(t, url);
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  await pub(obs.client, 'f1', { v: 1, id: 'f1', type: 'nodes', params: { path: '/nonexistent-edgetune-dir/missing.onnx' } });
  const f = await obs.waitFor((x) => x.topic === `${BASE}/jobs/f1/status` && x.doc.state === 'FAILED', 'FAILED');
  t.match(f.doc.error, { code: 'MODEL_NOT_FOUND', message: /missing\.onnx/ });
  t.notOk(obs.msgs.some((x) => x.topic === `${BASE}/jobs/f1/result`), 'no result for a failed job');
});

t.test('a job left retained on the broker is not run when the agent (re)subscribes', async (t) => {
  const { url } = await startBroker(t);
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  await obs.client.publishAsync(`${BASE}/jobs/ret1`, JSON.stringify({ v: 1, id: 'ret1', type: 'hash', params: { text: 'r' } }), { qos: 1, retain: true });
  const counts: Record<string, number> = {};
  const { log } = await startAgent(t, url, { counts });
  await until(() => log.lines.some((l) => /retained message on a job topic/.test(l.msg)), 'retained warning');
  await pub(obs.client, 'fresh', { v: 1, id: 'fresh', type: 'hash', params: { text: 'r', rounds: 1 } });
  await obs.waitFor((x) => x.topic === `${BASE}/jobs/fresh/status` && x.doc.state === 'SUCCEEDED', 'marker');
  t.equal(counts.hash, 1, 'only the fresh job ran');
  t.notOk(obs.msgs.some((x) => x.topic === `${BASE}/jobs/ret1/status`), 'no status for the retained job');
});

t.test('stop: the running job is interrupted, offline is retained with the same session, and the job runs again at the next start', async (t) => {
  const { url } = await startBroker(t);
  const stateDir = t.testdir();
  const counts: Record<string, number> = {};
  const { agent } = await startAgent(t, url, { stateDir, counts });
  const obs = await observe(t, url, `${BASE}/#`);
  await pub(obs.client, 'run', { v: 1, id: 'run', type: 'wait', params: { ms: 1500 } });
  await obs.waitFor((x) => x.topic === `${BASE}/jobs/run/status` && x.doc.state === 'IN_PROGRESS', 'running');
  await agent.stop('test stop');
  const off = await obs.waitFor((x) => x.topic === `${BASE}/status` && x.doc.state === 'offline', 'offline');
  t.equal(off.doc.session, agent.session);
  t.notOk(obs.msgs.some((x) => x.topic === `${BASE}/jobs/run/status` && ['CANCELED', 'FAILED', 'SUCCEEDED'].includes(x.doc.state)), 'no end published for an interrupted job');
  const late = await observe(t, url, `${BASE}/status`);
  const retained = await late.waitFor(() => true, 'retained status');
  t.match(retained, { retain: true, doc: { state: 'offline' } }, 'offline is what a late subscriber sees');
  await startAgent(t, url, { stateDir, counts });
  const done = await obs.waitFor((x) => x.topic === `${BASE}/jobs/run/status` && x.doc.state === 'SUCCEEDED', 'run finished after the restart');
  t.ok(done.doc.seq > 1_000_000, 'seq jumped past the first run');
  t.equal(counts.wait, 2, 'started twice: interrupted once, then to the end');
});

t.test('a job published while the agent is down runs when it comes back (persistent session)', async (t) => {
  const { url } = await startBroker(t);
  const stateDir = t.testdir();
  const a = await startAgent(t, url, { stateDir });
  await a.agent.stop();
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  await pub(obs.client, 'while-down', { v: 1, id: 'while-down', type: 'hash', params: { text: 'q', rounds: 1 } });
  await startAgent(t, url, { stateDir });
  const done = await obs.waitFor((m) => m.topic === `${BASE}/jobs/while-down/status` && m.doc.state === 'SUCCEEDED', 'queued job ran');
  t.ok(done);
});
