// The heavy job types a controller sends, each through a real agent over a real broker (aedes over TCP), with the
// real handlers: work processes, the compression pipeline and ONNX Runtime on the bundled example model.
// (profile and tune: handlers.test.ts; deploy and rollback: deploy.test.ts; cancel: agent.test.ts; config:
// remote-config.test.ts; MQTT 5 response topics: test/integration/mqtt5.test.ts against Mosquitto.)
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { realHandlers } from '../../src/agent/handlers.js';
import { parseJob } from '../../src/agent/jobs.js';
import { memoryLogger } from '../../src/agent/log.js';
import { profileDevice } from '../../src/profile/index.js';
import { packageRoot } from '../../src/util/paths.js';
import { observe, startBroker, testConfig } from './helpers.js';

const BASE = 'edgetune/test/dev1';
const MODEL = 'examples/fashion-mnist/model.onnx';
const skip = existsSync(join(packageRoot(), MODEL)) ? false : `${MODEL} is not in this checkout`;
const TERMINAL = ['SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELED', 'TIMED_OUT'];

t.test('compress then bench, sent back to back: both run for real, one after the other', { skip }, async (t) => {
  const { url } = await startBroker(t);
  const stateDir = t.testdir();
  const config = await testConfig(stateDir, url);
  const agent = new Agent({ config, log: memoryLogger(), profile: () => profileDevice({ skipSystemInformation: true }), runner: { progressIntervalMs: 100 } });
  t.teardown(() => agent.stop());
  await agent.start();
  await agent.waitConnected();
  const obs = await observe(t, url, `${BASE}/jobs/#`);
  const send = (id: string, type: string, params: unknown) =>
    obs.client.publishAsync(`${BASE}/jobs/${id}`, JSON.stringify({ v: 1, id, type, params, timeoutS: 300 }), { qos: 1 });
  await send('c1', 'compress', { model: MODEL, recipe: { v: 1, quantize: { mode: 'dynamic', perChannel: true } } });
  await send('b1', 'bench', { model: MODEL, recipe: { v: 1, quantize: { mode: 'fp16' } }, maxS: 1 });
  const end = (id: string) => obs.waitFor((m) => m.topic === `${BASE}/jobs/${id}/status` && TERMINAL.includes(m.doc.state), `end of ${id}`, 120_000);
  const c1 = await end('c1');
  const b1 = await end('b1');
  t.equal(c1.doc.state, 'SUCCEEDED', JSON.stringify(c1.doc.error));
  t.equal(b1.doc.state, 'SUCCEEDED', JSON.stringify(b1.doc.error));

  const report = obs.msgs.find((m) => m.topic === `${BASE}/jobs/c1/result`)!.doc;
  t.match(report, { v: 1, recipe: { quantize: { mode: 'dynamic' } }, input: { sha256: /^[0-9a-f]{64}$/ }, output: { path: String, sha256: /^[0-9a-f]{64}$/ } });
  t.ok(report.output.path.startsWith(join(stateDir, 'compressed')), 'the output goes under stateDir');
  const written = readFileSync(report.output.path);
  t.equal(createHash('sha256').update(written).digest('hex'), report.output.sha256, 'the file on disk is the one reported');
  t.ok(written.length < report.input.bytes / 2, 'int8 weights: a much smaller file');
  const cosines = Object.values(report.fidelity as Record<string, { cosine: number }>).map((f) => f.cosine);
  t.ok(cosines.length > 0 && cosines.every((c) => c > 0.99), 'compared with the original in ONNX Runtime');

  const m = obs.msgs.find((x) => x.topic === `${BASE}/jobs/b1/result`)!.doc;
  t.match(m, { v: 1, recipe: { quantize: { mode: 'fp16' } }, latencyMs: { p50: Number, p90: Number, n: Number }, model: { sha256: /^[0-9a-f]{64}$/ } });
  t.ok(m.latencyMs.n > 0 && m.latencyMs.p50 > 0, 'a real measurement');

  // One heavy job at a time: b1 waited in the queue until c1 had ended.
  const statuses = obs.msgs.filter((x) => x.topic.endsWith('/status')).map((x) => `${x.doc.id}:${x.doc.state}`);
  const at = (s: string) => statuses.indexOf(s);
  t.ok(at('b1:QUEUED') >= 0 && at('b1:QUEUED') < at('c1:SUCCEEDED'), 'b1 was queued while c1 ran');
  t.ok(at('b1:IN_PROGRESS') > at('c1:SUCCEEDED'), 'b1 started only after c1 ended');
  const c1Progress = obs.msgs.filter((x) => x.topic === `${BASE}/jobs/c1/status` && x.doc.state === 'IN_PROGRESS');
  t.ok(c1Progress.length >= 2, 'progress was reported');
  const seqs = obs.msgs.filter((x) => x.topic === `${BASE}/jobs/c1/status`).map((x) => x.doc.seq);
  t.same(seqs, [...seqs].sort((a, b) => a - b), 'seq grows with every status of the job');
});

t.test('tune params: a share is a non-empty list of valid recipes; a bad one is REJECTED naming it', async (t) => {
  const handlers = realHandlers({ stateDir: t.testdir(), deviceId: 'd', log: memoryLogger(), profile: async () => undefined });
  const parse = (params: unknown) => parseJob(Buffer.from(JSON.stringify({ v: 1, id: 'x', type: 'tune', params })), 'x', { maxPayloadBytes: 65536, handlers });
  t.match(parse({ model: MODEL, budgetMs: 5, candidates: [{ v: 1 }, { v: 1, quantize: { mode: 'dynamic' } }] }), { ok: true, job: { params: { candidates: [{ v: 1 }, { v: 1, quantize: { mode: 'dynamic', symmetricWeights: true } }] } } }, 'defaults filled as the controller fills them');
  t.match(parse({ model: MODEL, budgetMs: 5, candidates: [] }), { ok: false, reason: /^\/params\/candidates: Expected array length to be greater or equal to 1/ });
  t.match(parse({ model: MODEL, budgetMs: 5, candidates: [{ v: 1, quantize: { mode: 'int3' } }] }), { ok: false, reason: /^\/params\/candidates\/0\/quantize\/mode/ });
});
