// A tune job's search settings reach the real tuner: over the in-process broker, in the agent's work process.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { memoryLogger } from '../../src/agent/log.js';
import type { TuneOutcome } from '../../src/tune/options.js';
import { packageRoot } from '../../src/util/paths.js';
import { observe, startBroker, testConfig } from './helpers.js';

const exampleModel = join(packageRoot(), 'examples', 'fashion-mnist', 'model.onnx');

t.test('strategy exhaustive with an inline two-point space: exactly the grid is measured', { skip: existsSync(exampleModel) ? false : 'examples/fashion-mnist/model.onnx is missing', timeout: 300_000 }, async (t) => {
  const { url } = await startBroker(t);
  const stateDir = t.testdir();
  const agent = new Agent({ config: await testConfig(stateDir, url), log: memoryLogger() });
  t.teardown(() => agent.stop());
  await agent.start();
  await agent.waitConnected();
  const obs = await observe(t, url, 'edgetune/test/dev1/jobs/#');
  // Every axis named, so the grid does not depend on which target this machine matches: fp32 and dynamic, one thread.
  const space = { v: 1, quant: ['fp32', 'dynamic'], threads: [1], prune: [], lowrankEnergy: [], graphOptimizationLevel: ['all'], spinning: [true] };
  const params = { model: 'examples/fashion-mnist/model.onnx', budgetMs: 1000, strategy: 'exhaustive', space, data: 'examples/fashion-mnist', evalSamples: 50, maxAccuracyDrop: 2, timeLimitS: 600 };
  await obs.client.publishAsync('edgetune/test/dev1/jobs/tune-x', JSON.stringify({ v: 1, id: 'tune-x', type: 'tune', params }), { qos: 1 });
  const end = await obs.waitFor((m) => m.topic === 'edgetune/test/dev1/jobs/tune-x/status' && ['SUCCEEDED', 'FAILED', 'REJECTED'].includes(m.doc.state), 'the tune job to end', 280_000);
  t.equal(end.doc.state, 'SUCCEEDED', JSON.stringify(end.doc.error ?? {}));
  const r = (await obs.waitFor((m) => m.topic === 'edgetune/test/dev1/jobs/tune-x/result', 'the result')).doc as TuneOutcome;
  t.equal(r.strategy, 'exhaustive', 'the strategy reached the tuner');
  t.equal(r.space.candidates, 2, 'the inline space replaced the target\'s: a 2-point grid');
  t.equal(r.trials.length, 2, 'exhaustive measured the whole grid');
  t.same(r.trials.map((m) => m.label).sort(), ['fp32 t1', 'int8-dynamic t1']);
  t.equal(r.quality.metric, 'accuracy', 'the data is labelled');
  t.equal(r.quality.examples, 50, 'evalSamples reached the tuner');
  t.equal(r.budget.maxAccuracyDrop, 2, 'maxAccuracyDrop reached the tuner');
  t.notOk(r.notes.some((n) => /next to the model/.test(n)), 'the data came from the job, not found beside the model');
});
