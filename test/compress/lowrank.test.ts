import t from 'tap';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { loadModel, modelBytes, type OnnxModel } from '../../src/onnx/model.js';
import { chooseRank, truncatedFactors } from '../../src/compress/lowrank/svd.js';
import { lowrankFactorize } from '../../src/compress/lowrank/index.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import { cloneModel } from '../../src/onnx/model.js';
import { join } from 'node:path';
import { loadIdxClassification } from '../../src/measure/datasets/idx.js';
import { cosine, ort, randomFloats, runOnce } from '../helpers/ort.js';

/** A K×N matrix of exact rank r (product of random K×r and r×N factors). */
function lowRank(k: number, n: number, r: number, seed: number): Float32Array {
  const a = randomFloats(k * r, seed), b = randomFloats(r * n, seed + 1);
  const w = new Float32Array(k * n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) for (let p = 0; p < r; p++) w[i * n + j] += a[i * r + p] * b[p * n + j];
  return w;
}

t.test('rank choice by energy and by ratio', async (t) => {
  t.equal(chooseRank([3, 2, 1, 0], { energy: 0.9 }), 2, '9+4 = 13 of 14 ≥ 0.9');
  t.equal(chooseRank([3, 2, 1, 0], { energy: 1 }), 3);
  t.equal(chooseRank([4, 3, 2, 1], { ratio: 0.5 }), 2);
  t.equal(chooseRank([4, 3, 2, 1], { energy: 1, ratio: 0.25 }), 1, 'both: the smaller rank');
  t.equal(chooseRank([0, 0], { energy: 0.9 }), 1, 'an all-zero matrix still gets rank 1');
});

t.test('truncated SVD factors reproduce an exactly low-rank matrix', async (t) => {
  const k = 40, n = 24, r = 4;
  const w = lowRank(k, n, r, 1);
  const f = truncatedFactors(w, k, n, { energy: 0.999999 });
  t.equal(f.rank, r);
  t.ok(f.energyKept > 0.999999);
  let err = 0, scale = 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) {
    let v = 0;
    for (let p = 0; p < r; p++) v += f.left[i * r + p] * f.right[p * n + j];
    err = Math.max(err, Math.abs(v - w[i * n + j])); scale = Math.max(scale, Math.abs(w[i * n + j]));
  }
  t.ok(err < 1e-4 * scale, `max error ${err} (scale ${scale})`);
  t.throws(() => truncatedFactors(Float32Array.of(1, NaN, 0, 1), 2, 2, { energy: 0.9 }), /inf or NaN/);
});

/** MatMul (initializer), Gemm (Constant node, transB, alpha, bias), 1×1 Conv with stride and padding, and a small MatMul. */
function model(): OnnxModel {
  const b = new GraphBuilder('lr');
  const x = b.input('x', DT.FLOAT, ['N', 64]);
  const h = b.op('Relu', [b.op('MatMul', [x, b.initializer('w1', DT.FLOAT, [64, 48], lowRank(64, 48, 6, 1))], undefined, 'fc1')]);
  const w2 = lowRank(40, 48, 5, 3); // stored [N, K] for transB
  const y = b.node('Gemm', [h, b.constant('w2', DT.FLOAT, [40, 48], w2), b.initializer('b2', DT.FLOAT, [40], randomFloats(40, 4))], { outputs: ['y'], attrs: { transB: 1, alpha: { float: 0.5 } }, name: 'fc2' })[0];
  b.output(y, DT.FLOAT, ['N', 40]);
  const img = b.input('img', DT.FLOAT, ['N', 32, 6, 6]);
  const c = b.node('Conv', [img, b.initializer('wc', DT.FLOAT, [24, 32, 1, 1], lowRank(24, 32, 3, 5)), b.initializer('bc', DT.FLOAT, [24], randomFloats(24, 6))],
    { outputs: ['conv_out'], attrs: { kernel_shape: [1, 1], strides: [2, 2], pads: [1, 1, 0, 0] }, name: 'pw' })[0];
  b.output(c, DT.FLOAT);
  const tiny = b.node('MatMul', [x, b.initializer('wt', DT.FLOAT, [64, 2], randomFloats(128, 7))], { outputs: ['tiny'], name: 'tiny' })[0];
  b.output(tiny, DT.FLOAT);
  return buildModel(b.graph, { '': 13 });
}

t.test('MatMul, Gemm and 1×1 Conv are factored; outputs match; what saves nothing is skipped', async (t) => {
  const m = model();
  const fm = cloneModel(m);
  const report = lowrankFactorize(fm, { energy: 0.9999, conv1x1: true });
  const by = Object.fromEntries(report.changed.map((c) => [c.node, c.what]));
  t.match(by.fc1, /^rank 6 of 48/);
  t.match(by.fc2, /^rank 5 of 40/);
  t.match(by.pw, /^rank 3 of 24/);
  t.match(report.skipped.find((s) => s.node === 'tiny')!.why, /would not save anything/);
  t.equal(fm.proto.graph!.node.filter((n) => n.opType === 'Gemm').length, 2);
  t.equal(fm.proto.graph!.node.find((n) => n.opType === 'Gemm' && n.name === 'fc2')!.attribute.some((a) => a.name === 'transB'), false);
  t.ok(fm.proto.graph!.node.some((n) => n.opType === 'Constant' && n.output[0].startsWith('w2_lowrank')), 'a Constant-node weight is factored into Constant nodes');
  t.ok(modelBytes(fm).length < modelBytes(m).length * 0.5, 'fewer weights');
  const feeds = { x: new ort.Tensor('float32', randomFloats(3 * 64, 9), [3, 64]), img: new ort.Tensor('float32', randomFloats(2 * 32 * 36, 10), [2, 32, 6, 6]) };
  const a = await runOnce(modelBytes(m), feeds), b = await runOnce(modelBytes(fm), feeds);
  for (const k of ['y', 'conv_out', 'tiny']) {
    t.equal(b[k].length, a[k].length, `${k}: same size`);
    t.ok(cosine(a[k], b[k]) > 0.99999, `${k}: cosine ${cosine(a[k], b[k])}`);
  }
  const r2 = lowrankFactorize(cloneModel(m), {});
  t.ok(r2.changed.length >= 2, 'an empty step uses the default energy');
  t.notOk(r2.changed.some((c) => c.node === 'pw'), '1×1 convs only on request');
});

/** Float weights of a model: initializers and Constant-node tensors, counted in elements. */
function floatParams(m: OnnxModel): number {
  const g = m.proto.graph!;
  const count = (dims: bigint[]) => dims.reduce((n, d) => n * Number(d), 1);
  let n = 0;
  for (const i of g.initializer) if (i.dataType === DT.FLOAT) n += count(i.dims);
  for (const c of g.node) if (c.opType === 'Constant') for (const a of c.attribute) if (a.t?.dataType === DT.FLOAT) n += count(a.t.dims);
  return n;
}

/** Logits of the example CNN on the first `n` test images, one array per model. */
async function exampleLogits(models: OnnxModel[], n: number): Promise<Float32Array[]> {
  const dir = 'examples/fashion-mnist';
  const set = await loadIdxClassification(join(dir, 't10k-images-idx3-ubyte.gz'), join(dir, 't10k-labels-idx1-ubyte.gz'), { limit: n });
  const feeds = { input: new ort.Tensor('float32', set.images, [n, 1, 28, 28]) };
  const out: Float32Array[] = [];
  for (const m of models) out.push((await runOnce(modelBytes(m), feeds)).logits);
  return out;
}

function argmaxAgreement(a: Float32Array, b: Float32Array, classes: number): number {
  let same = 0;
  const rows = a.length / classes;
  const arg = (v: Float32Array, r: number) => { let k = 0; for (let c = 1; c < classes; c++) if (v[r * classes + c] > v[r * classes + k]) k = c; return k; };
  for (let r = 0; r < rows; r++) if (arg(a, r) === arg(b, r)) same++;
  return same / rows;
}

t.test('the example CNN at energy 0.99: fc1 factored (fc2 would save nothing), fewer parameters, logits close on real images', async (t) => {
  const m = await loadModel('examples/fashion-mnist/model.onnx');
  const fm = cloneModel(m);
  const report = lowrankFactorize(fm, { energy: 0.99 });
  t.ok(report.changed.some((c) => c.node === '/fc1/Gemm'), `fc1 factored: ${report.changed.map((c) => `${c.node} ${c.what}`).join('; ')}`);
  const [before, after] = [floatParams(m), floatParams(fm)];
  t.ok(after < before, `parameters ${before} → ${after}`);
  const [a, b] = await exampleLogits([m, fm], 500);
  t.ok(cosine(a, b) > 0.999, `logits cosine ${cosine(a, b)} on 500 test images`);
  t.ok(argmaxAgreement(a, b, 10) >= 0.98, `top-1 agreement ${argmaxAgreement(a, b, 10)}`);
});

t.test('prune → lowrank → quantize compose in one recipe, each step keeping its report', async (t) => {
  const m = await loadModel('examples/fashion-mnist/model.onnx');
  const r = await applyRecipe(m, { v: 1, prune: { method: 'channel', ratio: 0.3 }, lowrank: { ratio: 0.25 }, quantize: { mode: 'dynamic', perChannel: true } });
  t.same(r.passes.map((p) => p.pass), ['prune-channel', 'lowrank', 'quantize-dynamic']);
  t.match(r.passes[1].changed.find((c) => c.node === '/fc1/Gemm')?.what, /^rank 45 of 179/, 'fc1 (pruned to 1078×179) factored at a quarter of its rank');
  t.ok(r.passes[2].changed.length >= 3, 'the factored Gemms are quantized');
  const feeds = { input: new ort.Tensor('float32', randomFloats(4 * 784, 4, 0.5).map((v) => v + 0.5), [4, 1, 28, 28]) };
  const out = await runOnce(modelBytes(r.model), feeds);
  t.same(Object.keys(out), ['logits']);
  t.equal(out.logits.length, 40);
});
