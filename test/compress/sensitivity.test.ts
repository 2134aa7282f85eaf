import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { loadModel, modelBytes, saveModel } from '../../src/onnx/model.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import { DamageAccumulator } from '../../src/compress/sensitivity/damage.js';
import { pickFallback } from '../../src/compress/sensitivity/fallback.js';
import { quantSensitivity, type LayerDamage } from '../../src/compress/sensitivity/quant.js';
import { openDataSource } from '../../src/measure/datasets/open.js';
import type { PlainTensor } from '../../src/measure/plain-tensor.js';
import { cosine, ort, randomFloats, runOnce } from '../helpers/ort.js';

const f32 = (data: number[], dims = [1, data.length]): PlainTensor => ({ dtype: 'float32', dims, data: Float32Array.from(data) });

t.test('damage accumulates over batches: cosine, SQNR, top-1 and accuracy', async (t) => {
  const same = new DamageAccumulator('y');
  same.add({ y: f32([1, 2, 3]) }, { y: f32([1, 2, 3]) });
  t.same(same.result(), { damage: 0, cosine: 1, sqnrDb: Infinity, top1Loss: 0 });

  const acc = new DamageAccumulator('y');
  acc.add({ y: f32([1, 0, 0, 1], [2, 2]) }, { y: f32([1, 0, 1, 0], [2, 2]) }, [0, 1]); // row 2 flips, and is then wrong
  acc.add({ y: f32([3, 4], [1, 2]) }, { y: f32([3, 4], [1, 2]) }, [0]); // ref and test agree, both wrong
  const r = acc.result();
  // Σref·test = 1 + 0 + 9 + 16 = 26; Σref² = 1 + 1 + 25 = 27 = Σtest²; Σerr² = 2
  t.ok(Math.abs(r.cosine - 26 / 27) < 1e-12, `cosine over all batches ${r.cosine}`);
  t.ok(Math.abs(r.sqnrDb - 10 * Math.log10(27 / 2)) < 1e-9);
  t.ok(Math.abs(r.top1Loss! - 1 / 3) < 1e-12, 'one row of three changed its argmax');
  t.ok(Math.abs(r.accuracyDrop! - 1 / 3) < 1e-12, 'reference 2/3 right, test 1/3');

  const nan = new DamageAccumulator();
  nan.add({ y: f32([1, 2]) }, { y: f32([1, NaN]) });
  t.equal(nan.result().cosine, 0, 'a NaN where the reference has a number is total damage');
});

const layer = (node: string, damage: number): LayerDamage => ({ node, op: 'MatMul', what: '', damage, cosine: 1 - damage, sqnrDb: 0 });

t.test('fallback picks the worst K and/or everything above the threshold, with reasons', async (t) => {
  const ranked = [layer('a', 0.3), layer('b', 0.02), layer('c', 0.001)];
  t.same(pickFallback(ranked, { worstK: 2 }).map((p) => p.layer.node), ['a', 'b']);
  t.same(pickFallback(ranked, { threshold: 0.01 }).map((p) => p.layer.node), ['a', 'b']);
  t.same(pickFallback(ranked, { threshold: 0.1 }).map((p) => p.layer.node), ['a']);
  t.same(pickFallback(ranked, { worstK: 0, threshold: 1 }), []);
  const both = pickFallback(ranked, { worstK: 1, threshold: 0.01 });
  t.match(both[0].why, /rank 1 of 3\), among the worst 1 and above the threshold 0.01/);
  t.match(both[1].why, /rank 2 of 3\), above the threshold 0.01: kept fp32/);
});

/** Three MatMul layers; "fragile" has one huge weight, so per-tensor int8 flattens all its other weights to zero. */
function fragileNet() {
  const b = new GraphBuilder('fragile');
  const x = b.input('x', DT.FLOAT, [4, 32]);
  const fragile = randomFloats(32 * 32, 2, 0.05);
  fragile[7] = 100;
  b.initializer('w0', DT.FLOAT, [32, 32], randomFloats(32 * 32, 1, 0.3));
  b.initializer('w1', DT.FLOAT, [32, 32], fragile);
  b.initializer('w2', DT.FLOAT, [32, 8], randomFloats(32 * 8, 3, 0.3));
  const h0 = b.op('Tanh', [b.op('MatMul', [x, 'w0'], undefined, 'first')]);
  const h1 = b.op('Tanh', [b.op('MatMul', [h0, 'w1'], undefined, 'fragile')]);
  b.node('MatMul', [h1, 'w2'], { outputs: ['y'], name: 'last' });
  b.output('y', DT.FLOAT, [4, 8]);
  return buildModel(b.graph);
}

t.test('one layer at a time: the fragile layer ranks first; progress and the layer list are reported', async (t) => {
  const steps: string[] = [];
  const r = await quantSensitivity(fragileNet(), { mode: 'dynamic' }, { onProgress: (p) => steps.push(p.step), generated: 3 });
  t.same(r.layers.map((l) => l.node).sort(), ['first', 'fragile', 'last']);
  t.equal(r.layers[0].node, 'fragile', `ranking: ${r.layers.map((l) => `${l.node} ${l.damage.toExponential(2)}`).join(', ')}`);
  t.ok(r.layers[0].damage > 10 * r.layers[1].damage, 'by a wide margin');
  t.ok(r.all!.damage >= r.layers[2].damage, 'all layers together hurt at least as much as the gentlest one');
  t.equal(r.data.source, 'generated');
  t.equal(r.data.examples, 12, '3 random batches of 4');
  t.match(r.notes.join('\n'), /random inputs/);
  t.ok(steps.includes('sensitivity: one layer at a time') && steps.at(-1) === 'sensitivity: done');
  await t.rejects(quantSensitivity(fragileNet(), { mode: 'fp16' }), { code: 'USAGE' });
  const b = new GraphBuilder('nothing');
  b.output(b.op('Relu', [b.input('x', DT.FLOAT, [1, 4])]), DT.FLOAT);
  const none = await quantSensitivity(buildModel(b.graph), { mode: 'dynamic' }, { generated: 1 });
  t.same(none.layers, []);
  t.match(none.notes.join('\n'), /quantizes no layer/);
});

t.test('recipe fallback keeps the worst layer fp32, says why, and gets closer to fp32', async (t) => {
  const m = fragileNet();
  const plain = await applyRecipe(m, { v: 1, quantize: { mode: 'dynamic' } });
  // pickFallback's rules are tested above; one real run shows the wiring (it starts a runner per layer).
  {
    const steps: string[] = [];
    const res = await applyRecipe(m, { v: 1, quantize: { mode: 'dynamic', fallback: { threshold: 0.01 } } }, { onProgress: (p) => steps.push(p.step) });
    t.equal(res.passes.length, 1, 'one quantize pass');
    const fb = res.passes[0];
    t.same(fb.skipped.map((s) => s.node), ['fragile'], 'the threshold picks the fragile layer');
    t.ok(steps.includes('quantize fallback: sensitivity: one layer at a time'), 'progress goes through');
    t.match(fb.skipped[0].why, /rank 1 of 3.*kept fp32 by recipe.quantize.fallback/);
    t.same(fb.changed.map((c) => c.node).sort(), ['first', 'last']);
    t.match(res.warnings.join('\n'), /kept 1 of 3 layers fp32: fragile/);
    const feeds = { x: new ort.Tensor('float32', randomFloats(4 * 32, 9), [4, 32]) };
    const ref = (await runOnce(modelBytes(m), feeds)).y;
    const with_ = cosine(ref, (await runOnce(modelBytes(res.model), feeds)).y);
    const without = cosine(ref, (await runOnce(modelBytes(plain.model), feeds)).y);
    t.ok(with_ > without, `cosine ${with_} with fallback vs ${without} without`);
  }
});

/**
 * Three MatMul → Relu layers for static int8. "first" writes one channel about 100× larger than the others and
 * "fragile" reads that channel with a tiny weight: the fp32 output hardly depends on it, but the one int8 scale of
 * fragile's input must cover it, which crushes the channels that matter. Per-channel weights do not help there.
 */
function activationFragileNet() {
  const b = new GraphBuilder('act_fragile');
  const x = b.input('x', DT.FLOAT, [4, 32]);
  const w0 = randomFloats(32 * 32, 11, 0.3);
  for (let k = 0; k < 32; k++) w0[k * 32 + 5] *= 100;
  const w1 = randomFloats(32 * 32, 12, 0.3);
  for (let n = 0; n < 32; n++) w1[5 * 32 + n] *= 0.001;
  const h0 = b.op('Relu', [b.op('MatMul', [x, b.initializer('w0', DT.FLOAT, [32, 32], w0)], undefined, 'first')]);
  const h1 = b.op('Relu', [b.op('MatMul', [h0, b.initializer('w1', DT.FLOAT, [32, 32], w1)], undefined, 'fragile')]);
  b.node('MatMul', [h1, b.initializer('w2', DT.FLOAT, [32, 8], randomFloats(32 * 8, 13, 0.3))], { outputs: ['y'], name: 'last' });
  b.output('y', DT.FLOAT, [4, 8]);
  return buildModel(b.graph);
}
const staticStep = { mode: 'static' as const, calibration: { method: 'minmax' as const, samples: 16, batch: 4 } };

t.test('static mode: one layer at a time with calibration; the layer reading an outlier channel ranks first', async (t) => {
  const r = await quantSensitivity(activationFragileNet(), staticStep, { generated: 4 });
  t.equal(r.mode, 'static');
  t.same(r.layers.map((l) => l.node).sort(), ['first', 'fragile', 'last']);
  for (const l of r.layers) t.match(l.what, /int8 QDQ, per-channel weights/, `${l.node}: the recipe default (per-channel) is what is ranked`);
  t.equal(r.layers[0].node, 'fragile', `ranking: ${r.layers.map((l) => `${l.node} ${l.damage.toExponential(2)}`).join(', ')}`);
  t.ok(r.layers[0].damage > 5 * r.layers[1].damage, 'by a wide margin');
  t.ok(r.all!.damage > 0 && r.all!.damage >= r.layers[2].damage);
});

t.test('static mode fallback: the worst layer stays fp32 and the result gets closer to fp32', async (t) => {
  const m = activationFragileNet();
  const plain = await applyRecipe(m, { v: 1, quantize: staticStep });
  const res = await applyRecipe(m, { v: 1, quantize: { ...staticStep, fallback: { worstK: 1 } } });
  t.same(res.passes.map((p) => p.pass), plain.passes.map((p) => p.pass), 'the same static pass, with overrides');
  const pass = res.passes[0];
  const fb = pass.skipped.filter((s) => /recipe.quantize.fallback/.test(s.why));
  t.same(fb.map((s) => s.node), ['fragile']);
  t.match(fb[0].why, /rank 1 of 3\), among the worst 1: kept fp32/);
  t.same(pass.changed.filter((c) => c.op === 'MatMul').map((c) => c.node).sort(), ['first', 'last']);
  t.match(res.warnings.join('\n'), /kept 1 of 3 layers fp32: fragile/);
  t.equal(res.model.proto.graph!.node.find((n) => n.name === 'fragile')!.input[1], 'w1', 'fragile still reads its fp32 weight');
  const feeds = { x: new ort.Tensor('float32', randomFloats(4 * 32, 19), [4, 32]) };
  const ref = (await runOnce(modelBytes(m), feeds)).y;
  const with_ = cosine(ref, (await runOnce(modelBytes(res.model), feeds)).y);
  const without = cosine(ref, (await runOnce(modelBytes(plain.model), feeds)).y);
  t.ok(with_ > without, `cosine ${with_} with fallback vs ${without} without`);
});

t.test('cancellation stops the analysis', async (t) => {
  const ac = new AbortController();
  const run = quantSensitivity(fragileNet(), { mode: 'dynamic' }, {
    generated: 1, signal: ac.signal,
    onProgress: (p) => { if (p.step === 'sensitivity: all layers quantized') ac.abort(); },
  });
  await t.rejects(run, { code: 'CANCELED' });
});

const example = 'examples/fashion-mnist';
t.test('labelled data (the example set): accuracy drop per layer', async (t) => {
  const m = await loadModel(`${example}/model.onnx`);
  const data = await openDataSource(example, m);
  const r = await quantSensitivity(m, { mode: 'weight-only', bits: 4 }, { data, samples: 32, measureAll: false });
  t.ok(r.data.labelled, 'labels found');
  t.equal(r.data.examples, 32);
  t.ok(r.layers.length >= 1, `${r.layers.length} layers ranked`);
  for (const l of r.layers) t.ok(l.accuracyDrop !== undefined && l.top1Loss !== undefined, `${l.node}: accuracy drop ${l.accuracyDrop}`);
  t.notMatch(r.notes.join('\n'), /random inputs/);
});

t.test('edgetune sensitivity --json --top 1', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'fragile.onnx');
  const b = new GraphBuilder('two');
  const x = b.input('x', DT.FLOAT, [2, 16]);
  b.initializer('w0', DT.FLOAT, [16, 16], randomFloats(256, 4, 0.3));
  const w1 = randomFloats(16 * 4, 5, 0.05);
  w1[3] = 50;
  b.initializer('w1', DT.FLOAT, [16, 4], w1);
  b.node('MatMul', [b.op('MatMul', [x, 'w0'], undefined, 'gentle'), 'w1'], { outputs: ['y'], name: 'fragile' });
  b.output('y', DT.FLOAT, [2, 4]);
  await saveModel(buildModel(b.graph), path);
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'sensitivity', path, '--json', '--top', '1'], { cwd: process.cwd() });
  const r = JSON.parse(stdout);
  t.equal(r.kind, 'quant');
  t.equal(r.mode, 'dynamic');
  t.same(r.layers.map((l: LayerDamage) => l.node), ['fragile'], 'only the worst layer, as asked');
  t.equal(r.model, path);
});
