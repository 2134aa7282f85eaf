import t from 'tap';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel, loadModel } from '../../src/onnx/model.js';
import { tune } from '../../src/tune/tune.js';
import { latencyAt } from '../../src/tune/decide.js';
import { randomFloats } from '../helpers/ort.js';
import type { TuneResult } from '../../src/types.js';

const quickBench = { warmupRuns: 2, minRuns: 10, minMs: 50, maxRuns: 60, maxMs: 400 };

async function mlpFile(dir: string): Promise<string> {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', DT.FLOAT, [1, 256]);
  const h = b.op('Relu', [b.op('MatMul', [x, b.initializer('w1', DT.FLOAT, [256, 256], randomFloats(65536, 1, 0.1))])]);
  b.output(b.node('MatMul', [h, b.initializer('w2', DT.FLOAT, [256, 10], randomFloats(2560, 2, 0.1))], { outputs: ['y'] })[0], DT.FLOAT, [1, 10]);
  const p = join(dir, 'mlp.onnx');
  await saveModel(buildModel(b.graph), p);
  return p;
}

t.test('tune measures every candidate, meets a generous budget with fp32, writes model and TuneResult', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  const progress: number[] = [];
  const r = await tune({ model, budgetMs: 1000, threads: [1], bench: quickBench, output: join(dir, 'out.onnx') }, { onProgress: (p) => progress.push(p.pct) });
  t.same(r.trials.map((m) => m.label).sort(), ['fp16 t1', 'fp32 t1', 'int8-dynamic t1']);
  t.equal(r.chosen?.label, 'fp32 t1', 'the exact model wins when everything fits');
  t.ok(latencyAt(r.chosen!, 90) <= 1000);
  const written = await readFile(join(dir, 'out.onnx'));
  t.equal(written.length, r.chosen!.model.bytes, 'the chosen file is what was written');
  const json = JSON.parse(await readFile(join(dir, 'out.tune.json'), 'utf8')) as TuneResult;
  t.equal(json.v, 1);
  t.equal(json.trials.length, 3);
  t.ok(progress.at(-1) === 100 && progress.length >= 3, 'progress reported');
  const int8 = r.trials.find((m) => m.label.startsWith('int8'))!;
  t.ok(int8.model.bytes < r.baseline.model.bytes / 3, 'int8 file is smaller');
  t.ok(int8.quality.cosine! > 0.99, `int8 cosine ${int8.quality.cosine}`);
  t.ok(int8.latencyMs.n >= 10 && int8.latencyMs.p50 <= int8.latencyMs.p90 && int8.peakRssMB > 0);
});

t.test('a budget set between the fastest and the slowest trial is met by a feasible candidate', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  const first = await tune({ model, budgetMs: 1000, threads: [1], bench: quickBench, output: join(dir, 'a.onnx') });
  const lat = first.trials.map((m) => latencyAt(m, 90)).sort((a, b) => a - b);
  // Re-tune with a budget above the fastest trial: whatever is chosen must be within budget when measured.
  const r = await tune({ model, budgetMs: lat.at(-1)! * 3, threads: [1], bench: quickBench, output: join(dir, 'b.onnx') });
  t.ok(r.chosen, 'something is chosen');
  t.ok(latencyAt(r.chosen!, 90) <= r.budget.latencyMs, 'the chosen candidate is within the budget');
});

t.test('an impossible budget says so plainly, with the closest candidate', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  const r = await tune({ model, budgetMs: 0.000001, threads: [1], quant: ['fp32', 'dynamic'], bench: quickBench, output: join(dir, 'x.onnx') });
  t.equal(r.chosen, null);
  t.match(r.infeasible?.reason, /no candidate meets the budget/);
  await t.rejects(stat(join(dir, 'x.onnx')), 'no model written');
  t.ok(await stat(join(dir, 'x.tune.json')), 'the result is still written');
});

t.test('tune can be canceled', async (t) => {
  const dir = t.testdir();
  const model = await mlpFile(dir);
  const ac = new AbortController();
  const p = tune({ model, budgetMs: 10, threads: [1], bench: { ...quickBench, minMs: 2000, maxMs: 3000 } }, { signal: ac.signal, onProgress: (e) => { if (e.pct > 0) ac.abort(); } });
  await t.rejects(p, { code: 'CANCELED' });
  await loadModel(model); // input untouched
});
