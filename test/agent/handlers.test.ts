import t from 'tap';
import { existsSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { formatJobResult, realHandlers, resolveJobPath } from '../../src/agent/handlers.js';
import { parseJob } from '../../src/agent/jobs.js';
import { parseSpaceFile } from '../../src/tune/options.js';
import type { TuneTaskArgs } from '../../src/agent/work/tasks.js';
import { memoryLogger } from '../../src/agent/log.js';
import { runOnce } from '../../src/agent/once.js';
import type { TuneResult } from '../../src/types.js';
import { packageRoot } from '../../src/util/paths.js';
import { observe, startBroker, testConfig } from './helpers.js';

const examples = join(packageRoot(), 'examples');
const exampleModel = join(examples, 'fashion-mnist', 'model.onnx');
const haveTune = existsSync(join(packageRoot(), 'src', 'tune', 'tune.ts')) && existsSync(exampleModel);

t.test('job paths are confined to examples/ and stateDir', async (t) => {
  const roots = { examples, stateDir: '/var/lib/edgetune' };
  t.same(resolveJobPath('examples/fashion-mnist/model.onnx', roots), { ok: true, path: exampleModel });
  t.same(resolveJobPath('models/m.onnx', roots), { ok: true, path: '/var/lib/edgetune/models/m.onnx' });
  t.same(resolveJobPath('/var/lib/edgetune/x.onnx', roots), { ok: true, path: '/var/lib/edgetune/x.onnx' });
  for (const bad of ['/etc/passwd', '../../etc/passwd', 'examples/../package.json', '/var/lib/edgetune-other/x.onnx', '/var/lib/edgetune/../x']) {
    const r = resolveJobPath(bad, roots);
    t.equal(r.ok, false, bad);
    if (!r.ok) t.match(r.reason, /outside the folders jobs may use/);
  }
});

t.test('a tune job pointing outside the allowed folders is REJECTED before it queues', async (t) => {
  const handlers = realHandlers({ stateDir: t.testdir(), deviceId: 'd', log: memoryLogger(), profile: async () => undefined });
  const r = parseJob(Buffer.from(JSON.stringify({ v: 1, id: 'x', type: 'tune', params: { model: '/etc/passwd', budgetMs: 5, output: '/tmp/o.onnx' } })), 'x', { maxPayloadBytes: 4096, handlers });
  t.equal(r.ok, false);
  if (!r.ok) {
    t.match(r.reason, /^\/params\/model: '\/etc\/passwd' is outside/);
    t.match(r.reason, /\/params\/output: '\/tmp\/o\.onnx' is outside/);
  }
  const ok = parseJob(Buffer.from(JSON.stringify({ v: 1, id: 'y', type: 'tune', params: { model: 'examples/fashion-mnist/model.onnx', budgetMs: 5 } })), 'y', { maxPayloadBytes: 4096, handlers });
  t.match(ok, { ok: true, job: { params: { percentile: 90 } } }, 'percentile defaults to 90');
  const bad = parseJob(Buffer.from(JSON.stringify({ v: 1, id: 'z', type: 'tune', params: { model: 'examples/a.onnx', budgetMs: 0, percentile: 80 } })), 'z', { maxPayloadBytes: 4096, handlers });
  t.match(bad, { ok: false, reason: /\/params\/budgetMs: Expected number to be greater than 0.*\/params\/percentile/ });
});

t.test('tune params mirror the CLI: quality floors, data, samples, time limit, strategy and an inline space', async (t) => {
  const handlers = realHandlers({ stateDir: t.testdir(), deviceId: 'd', log: memoryLogger(), profile: async () => undefined });
  const parse = (params: Record<string, unknown>) => parseJob(Buffer.from(JSON.stringify({ v: 1, id: 'j', type: 'tune', params: { model: 'examples/fashion-mnist/model.onnx', budgetMs: 5, ...params } })), 'j', { maxPayloadBytes: 4096, handlers });
  const all = { maxAccuracyDrop: 0.5, minFidelity: 0.98, data: 'examples/fashion-mnist', evalSamples: 100, timeLimitS: 60, strategy: 'exhaustive', space: { quant: ['dynamic'], threads: [1, 'all'], prune: [0.25] } };
  t.match(parse(all), { ok: true, job: { params: { ...all, space: { v: 1, quant: ['dynamic'] } } } }, 'all accepted; the space gets its v');

  const reasonOf = (params: Record<string, unknown>) => { const r = parse(params); return r.ok ? 'accepted' : r.reason; };
  t.match(reasonOf({ space: { quant: ['int3'] } }), /^\/params\/space\/quant\/0: /, 'a bad quantization mode names the field');
  t.match(reasonOf({ space: { threads: [0] } }), /^\/params\/space\/threads\/0: /);
  t.match(reasonOf({ space: { v: 1, prune: [0.99] } }), /^\/params\/space\/prune\/0: Expected number to be less or equal to 0\.95/);
  t.match(reasonOf({ space: { quant: ['fp32'], pruning: [0.5] } }), /\/params\/space.*pruning|\/params\/space\/pruning/, 'an unknown axis is refused, not ignored');
  t.match(reasonOf({ strategy: 'random' }), /^\/params\/strategy: /);
  t.match(reasonOf({ evalSamples: 0 }), /^\/params\/evalSamples: /);
  t.match(reasonOf({ timeLimitS: 0 }), /^\/params\/timeLimitS: /);
  t.match(reasonOf({ minFidelity: 2 }), /^\/params\/minFidelity: /);
  t.match(reasonOf({ maxAccuracyDrop: -1 }), /^\/params\/maxAccuracyDrop: /);
  t.match(reasonOf({ data: '/etc' }), /^\/params\/data: '\/etc' is outside the folders jobs may use/, 'data is confined like model and output');
  t.match(reasonOf({ candidates: [{ v: 1 }], space: { quant: ['dynamic'] }, strategy: 'adaptive' }), /\/params\/space: a share .* would do nothing there; \/params\/strategy: a share/);

  // The same schema as `edgetune tune --space`: a space the job refuses, the CLI refuses for the same field.
  t.throws(() => parseSpaceFile({ v: 1, quant: ['int3'] }), { code: 'USAGE', message: /\/quant\/0: / });
});

t.test('the tune job hands every setting to the tuner, with data confined to a real path', async (t) => {
  let seen: TuneTaskArgs | undefined;
  const stateDir = t.testdir({ sets: { 'meta.json': '{}' } });
  const handlers = realHandlers({
    stateDir, deviceId: 'd', log: memoryLogger(), profile: async () => undefined,
    work: async <T,>(task: string, args: unknown) => { t.equal(task, 'tune'); seen = args as TuneTaskArgs; return {} as T; },
  });
  const space = { v: 1 as const, quant: ['dynamic' as const], threads: [1] };
  await handlers.tune.run({ model: 'examples/fashion-mnist/model.onnx', budgetMs: 5, percentile: 90, data: 'sets', maxAccuracyDrop: 0.5, minFidelity: 0.98, evalSamples: 64, timeLimitS: 30, strategy: 'exhaustive', space }, {});
  t.match(seen, { model: exampleModel, budgetMs: 5, data: join(stateDir, 'sets'), maxAccuracyDrop: 0.5, minFidelity: 0.98, evalSamples: 64, timeLimitS: 30, strategy: 'exhaustive', space });
  await handlers.tune.run({ model: 'examples/fashion-mnist/model.onnx', budgetMs: 5, percentile: 90 }, {});
  t.same(Object.keys(seen!).sort(), ['budgetMs', 'device', 'model', 'output', 'percentile'], 'nothing unset is passed on');
});

t.test('a symlink in stateDir that leads elsewhere is refused when the job runs', async (t) => {
  const dir = t.testdir({ elsewhere: { 'm.onnx': 'not a model' }, state: {} });
  const inside = join(dir, 'state');
  symlinkSync(join(dir, 'elsewhere', 'm.onnx'), join(inside, 'link.onnx'));
  const handlers = realHandlers({ stateDir: inside, deviceId: 'd', log: memoryLogger(), profile: async () => undefined });
  await t.rejects(handlers.tune.run({ model: 'link.onnx', budgetMs: 5, percentile: 90 }, {}), { code: 'JOB_INVALID', message: /\/params\/model: .* leads outside/ });
});

t.test('agent --once path: the real tune job on the bundled example, over the embedded broker', { skip: haveTune ? false : 'src/tune/tune.ts or examples/fashion-mnist/model.onnx not present yet' }, async (t) => {
  const stateDir = t.testdir();
  const config = await testConfig(stateDir, undefined); // no url: embedded broker on a free port
  const log = memoryLogger();
  const out = await runOnce({ config, log });
  const started = log.lines.find((l) => /^no broker configured: started embedded MQTT broker on 127\.0\.0\.1:\d+$/.test(l.msg));
  t.ok(started, 'says it started the embedded broker');
  t.equal(out.status.state, 'SUCCEEDED');
  const r = out.result as TuneResult;
  t.match(r, { v: 1, device: { id: 'dev1' }, budget: { latencyMs: 5, percentile: 90 }, baseline: { latencyMs: { p90: Number } } });
  t.ok(r.trials.length >= 2, 'several candidates measured');
  t.equal(r.model.path, exampleModel);
  if (r.chosen) t.ok(r.output?.startsWith(join(stateDir, 'tuned')), 'the chosen model goes to stateDir, not the package');
  const table = await formatJobResult('tune', r);
  t.match(table, /candidate[\s\S]*baseline fp32/);
  t.equal(await formatJobResult('profile', {}), undefined);
  t.ok(log.lines.some((l) => l.msg === 'agent stopped'), 'stopped cleanly');
  t.ok(log.lines.some((l) => l.msg === 'job started' && l.type === 'tune'), 'the job went through the runner');
});

t.test('real profile job over MQTT returns the profile and refreshes the retained one', async (t) => {
  const { url } = await startBroker(t);
  const config = await testConfig(t.testdir(), url);
  const { Agent } = await import('../../src/agent/agent.js');
  const agent = new Agent({ config, log: memoryLogger() });
  t.teardown(() => agent.stop());
  await agent.start();
  await agent.waitConnected();
  const obs = await observe(t, url, 'edgetune/test/dev1/#');
  await obs.client.publishAsync('edgetune/test/dev1/jobs/prof1', JSON.stringify({ v: 1, id: 'prof1', type: 'profile', params: {} }), { qos: 1 });
  const res = await obs.waitFor((m) => m.topic === 'edgetune/test/dev1/jobs/prof1/result', 'profile result');
  t.match(res.doc, { v: 1, arch: process.arch, cpu: { cores: Number }, runtime: { node: process.versions.node } });
  await obs.waitFor((m) => m.topic === 'edgetune/test/dev1/jobs/prof1/status' && m.doc.state === 'SUCCEEDED', 'SUCCEEDED');
  // (The profile taken at start may also arrive live: it runs in the background.)
  const fresh = await obs.waitFor((m) => m.topic === 'edgetune/test/dev1/profile' && !m.retain && obs.msgs.indexOf(m) > obs.msgs.indexOf(res), 'profile republished live after the result');
  t.equal(fresh.doc.id, res.doc.id);
});
