import t from 'tap';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel } from '../../src/onnx/model.js';
import { compareModels } from '../../src/measure/compare.js';
import { compareModels as viaBench } from '../../src/measure/bench.js';

async function dense(dir: string, name: string, relu: boolean): Promise<string> {
  const g = new GraphBuilder(name);
  g.input('x', DT.FLOAT, ['batch', 16]);
  g.initializer('W', DT.FLOAT, [16, 16], Float32Array.from({ length: 256 }, (_, i) => ((i * 37) % 11) / 10 - 0.5));
  const mm = g.op('MatMul', ['x', 'W']);
  g.node(relu ? 'Relu' : 'Identity', [mm], { outputs: ['y'] });
  g.output('y', DT.FLOAT, ['batch', 16]);
  const path = join(dir, `${name}.onnx`);
  await saveModel(buildModel(g.graph), path);
  return path;
}

t.test('compareModels interleaves two warm runners and pairs their blocks', async (t) => {
  t.equal(viaBench, compareModels, 'still importable from bench.js');
  const dir = t.testdir();
  const a = await dense(dir, 'plain', false);
  const b = await dense(dir, 'relu', true);
  const details: Array<[number, number]> = [];
  const c = await compareModels(a, b, { minRuns: 40, minMs: 0, maxRuns: 40, warmupRuns: 2, warmupMs: 0, session: { intraOpThreads: 1 } }, {
    onProgress: (p) => {
      const m = /^(\d+) \+ (\d+) runs$/.exec(p.detail ?? '');
      if (m) details.push([Number(m[1]), Number(m[2])]);
    },
  });
  t.equal(c.v, 1);
  t.equal(c.a.model.path, a);
  t.equal(c.b.model.path, b);
  t.equal(c.a.latencyMs.n, 40);
  t.equal(c.b.latencyMs.n, 40);
  t.equal(c.stopReason, 'max-runs');
  t.equal(c.ratioP50, c.b.latencyMs.p50 / c.a.latencyMs.p50);
  t.equal(c.ratio.pairs, 20, 'blocks of 2 runs each (a twentieth of maxRuns): 20 pairs');
  t.ok(c.ratio.ci95[0] <= c.ratio.estimate && c.ratio.estimate <= c.ratio.ci95[1], `the estimate ${c.ratio.estimate} lies in its CI ${c.ratio.ci95}`);
  t.ok(c.ratio.coverage >= 0.95);
  t.equal(c.ratio.significant, c.ratio.ci95[0] > 1 || c.ratio.ci95[1] < 1);
  t.same(c.a.inputs, c.b.inputs, 'same specs, same inputs');
  t.ok(c.a.peakRssMB! > 0 && c.b.peakRssMB! > 0);
  t.ok(c.env, 'conditions read around the whole comparison');
  t.equal(c.a.env, c.env);
  t.equal(c.throttled, c.env!.throttled);
  t.equal(details.length, 20, 'one progress report per pair');
  t.same(details[0], [2, 2], 'A block then B block, before A runs again');
  t.ok(details.every(([x, y]) => x === y), 'the two sides advance together');
});

t.test('the comparison stops when the ratio CI is narrow enough', async (t) => {
  const dir = t.testdir();
  const a = await dense(dir, 'plain', false);
  const c = await compareModels(a, a, { minRuns: 1, minMs: 0, warmupRuns: 1, warmupMs: 0, ciRelWidth: 10, maxMs: 20_000, env: false });
  t.equal(c.stopReason, 'ci', 'a 1000 % width is met as soon as there are 6 pairs');
  t.equal(c.ratio.pairs, 6);
  t.equal(c.env, undefined);
  t.equal(c.throttled, null);
});
