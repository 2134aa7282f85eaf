// `shapes` (the CLI's --shape) on tune, compress and bench jobs: a model with dynamic dims and no data can be tuned,
// statically quantized and measured over MQTT; a bad shape is REJECTED naming the field.
import t from 'tap';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { memoryLogger } from '../../src/agent/log.js';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { loadModel, saveModel } from '../../src/onnx/model.js';
import type { TuneOutcome } from '../../src/tune/options.js';
import type { Measurement } from '../../src/types.js';
import { randomFloats } from '../helpers/ort.js';
import { observe, startBroker, testConfig } from './helpers.js';

/** x[1,16,H,W] → Conv 3×3 → Relu → GlobalAveragePool: nothing can run it without a size for H and W. */
async function dynamicModel(dir: string): Promise<void> {
  const b = new GraphBuilder('dyn');
  const x = b.input('x', DT.FLOAT, [1, 16, 'H', 'W']);
  const conv = b.op('Relu', [b.op('Conv', [x, b.initializer('w', DT.FLOAT, [32, 16, 3, 3], randomFloats(32 * 16 * 9, 5, 0.2))], { pads: [1, 1, 1, 1] }, 'conv')]);
  b.output(b.node('GlobalAveragePool', [conv], { outputs: ['y'] })[0], DT.FLOAT);
  await saveModel(buildModel(b.graph), join(dir, 'dyn.onnx'));
}

t.test('tune, compress and bench jobs with shapes on a dynamic-dim model and no data; bad shapes refused', { timeout: 300_000 }, async (t) => {
  const { url } = await startBroker(t);
  const stateDir = t.testdir();
  await dynamicModel(stateDir);
  const agent = new Agent({ config: await testConfig(stateDir, url), log: memoryLogger() });
  t.teardown(() => agent.stop());
  await agent.start();
  await agent.waitConnected();
  const obs = await observe(t, url, 'edgetune/test/dev1/jobs/#');
  const send = (id: string, type: string, params: object) => obs.client.publishAsync(`edgetune/test/dev1/jobs/${id}`, JSON.stringify({ v: 1, id, type, params }), { qos: 1 });
  const ended = (id: string) => obs.waitFor((m) => m.topic === `edgetune/test/dev1/jobs/${id}/status` && ['SUCCEEDED', 'FAILED', 'REJECTED'].includes(m.doc.state), `job ${id} to end`, 280_000);
  const result = async (id: string) => (await obs.waitFor((m) => m.topic === `edgetune/test/dev1/jobs/${id}/result`, `the result of ${id}`)).doc;
  const space = { v: 1, quant: ['static'], threads: [1], prune: [], lowrankEnergy: [], graphOptimizationLevel: ['all'], spinning: [true] };

  await send('bad-shape', 'tune', { model: 'dyn.onnx', budgetMs: 1000, space, shapes: { x: [1, 16, 0, 12] } });
  const bad = await ended('bad-shape');
  t.equal(bad.doc.state, 'REJECTED');
  t.match(JSON.stringify(bad.doc.error), /shapes/, 'the error names the field');

  await send('dyn-tune', 'tune', { model: 'dyn.onnx', budgetMs: 1000, strategy: 'exhaustive', space, shapes: { x: [1, 16, 12, 12] } });
  t.equal((await ended('dyn-tune')).doc.state, 'SUCCEEDED');
  const r = (await result('dyn-tune')) as TuneOutcome;
  t.same(r.trials.map((m) => m.label).sort(), ['fp32 t1', 'int8-static t1'], 'static int8 was built from generated inputs of the given shape');

  await send('dyn-compress', 'compress', { model: 'dyn.onnx', output: 'dyn.int8.onnx', recipe: { v: 1, quantize: { mode: 'static' } }, shapes: { x: [1, 16, 12, 12] } });
  const c = await ended('dyn-compress');
  t.equal(c.doc.state, 'SUCCEEDED', JSON.stringify(c.doc.error ?? {}));
  const ops = (await loadModel(join(stateDir, 'dyn.int8.onnx'))).proto.graph!.node.map((n) => n.opType);
  t.ok(ops.includes('QuantizeLinear') && ops.includes('DequantizeLinear'), `static int8 written (${ops.join(' ')})`);

  // Without shapes the bench cannot make inputs (and says which dim); with them it measures.
  await send('dyn-bench-none', 'bench', { model: 'dyn.onnx', maxS: 2 });
  const none = await ended('dyn-bench-none');
  t.equal(none.doc.state, 'FAILED');
  t.match(JSON.stringify(none.doc.error), /dim 2 \(\\"H\\"\) is dynamic/, 'the failure names the dynamic dim');
  await send('dyn-bench', 'bench', { model: 'dyn.onnx', maxS: 2, shapes: { x: [1, 16, 20, 24] } });
  t.equal((await ended('dyn-bench')).doc.state, 'SUCCEEDED');
  const m = (await result('dyn-bench')) as Measurement;
  t.ok(m.latencyMs.n > 0 && m.latencyMs.p50 > 0, `measured: ${m.latencyMs.n} runs, p50 ${m.latencyMs.p50} ms`);
});
