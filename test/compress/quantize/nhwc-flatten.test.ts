// The channels-last flatten rewrite (src/compress/quantize/nhwc-flatten.ts): it must compute exactly what the graph
// computed before (checked in ONNX Runtime), fire only where the conv and the FC layer both go int8, and leave a
// weight that another node reads alone.
import t from 'tap';
import { GraphBuilder, buildModel } from '../../../src/onnx/builder.js';
import { DT } from '../../../src/onnx/dtype.js';
import { modelBytes, cloneModel, type OnnxModel } from '../../../src/onnx/model.js';
import { readTensor } from '../../../src/onnx/tensor.js';
import { flattenChannelsLast } from '../../../src/compress/quantize/nhwc-flatten.js';
import { planQdq } from '../../../src/compress/quantize/qdq-plan.js';
import { applyRecipe } from '../../../src/compress/pipeline.js';
import type { StaticContext } from '../../../src/compress/quantize/static.js';
import { cosine, ort, randomFloats, runOnce } from '../../helpers/ort.js';
import { optimizedNodes } from '../../helpers/optimized.js';

const ctx: StaticContext = { cpu: { family: 'x86', isa: ['avx2', 'vnni'] } };

/** x[N,8,8,8] → Conv(16) → Relu → MaxPool 2×2 → flatten (Flatten or Reshape [0,-1]) → Gemm(transB) or MatMul → y */
function head(kind: 'flatten-gemm' | 'reshape-matmul' | 'shared-weight') {
  const b = new GraphBuilder(kind);
  const x = b.input('x', DT.FLOAT, ['N', 8, 8, 8]);
  const c = b.op('Conv', [x, b.initializer('cw', DT.FLOAT, [16, 8, 3, 3], randomFloats(16 * 72, 1, 0.2)), b.initializer('cb', DT.FLOAT, [16], randomFloats(16, 2, 0.1))],
    { pads: [1, 1, 1, 1] }, 'conv');
  const p = b.op('MaxPool', [b.op('Relu', [c], undefined, 'relu')], { kernel_shape: [2, 2], strides: [2, 2] }, 'pool');
  const k = 16 * 4 * 4;
  if (kind === 'reshape-matmul') {
    const f = b.op('Reshape', [p, b.initializer('shape', DT.INT64, [2], BigInt64Array.of(0n, -1n))], undefined, 'flat');
    b.node('MatMul', [f, b.initializer('fw', DT.FLOAT, [k, 10], randomFloats(k * 10, 3, 0.1))], { outputs: ['y'], name: 'fc' });
  } else {
    const f = b.op('Flatten', [p], undefined, 'flat');
    const w = b.initializer('fw', DT.FLOAT, [10, k], randomFloats(k * 10, 3, 0.1));
    b.node('Gemm', [f, w, b.initializer('fb', DT.FLOAT, [10], randomFloats(10, 4, 0.1))], { outputs: ['y'], attrs: { transB: 1 }, name: 'fc' });
    if (kind === 'shared-weight') b.node('Gemm', [f, w], { outputs: ['y2'], attrs: { transB: 1 }, name: 'fc_twin' });
  }
  b.output('y', DT.FLOAT, ['N', 10]);
  if (kind === 'shared-weight') b.output('y2', DT.FLOAT, ['N', 10]);
  return buildModel(b.graph, { '': 13 });
}

const feeds = () => ({ x: new ort.Tensor('float32', randomFloats(3 * 8 * 64, 9), [3, 8, 8, 8]) });
const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

function rewrite(m: OnnxModel, opts: Parameters<typeof planQdq>[1] = { perChannel: true }): { model: OnnxModel; changed: string[] } {
  const model = cloneModel(m);
  const g = model.proto.graph!;
  return { model, changed: flattenChannelsLast(g, planQdq(g, opts)) };
}

for (const kind of ['flatten-gemm', 'reshape-matmul'] as const) {
  t.test(`${kind}: same outputs in ONNX Runtime, Transpose inserted, weights reordered along K`, async (t) => {
    const m = head(kind);
    const { model, changed } = rewrite(m);
    t.same(changed, ['flat']);
    const g = model.proto.graph!;
    const tr = g.node.find((n) => n.opType === 'Transpose');
    t.ok(tr, 'a Transpose was added');
    t.same(tr!.attribute[0].ints.map(Number), [0, 2, 3, 1]);
    t.equal(g.node[g.node.indexOf(tr!) + 1].name, 'flat', 'right before the flatten');
    const before = readTensor(m.proto.graph!.initializer.find((i) => i.name === 'fw')!).data as Float32Array;
    const after = readTensor(g.initializer.find((i) => i.name === 'fw')!).data as Float32Array;
    t.not(maxAbsDiff(before, after), 0, 'the FC weight changed');
    t.same([...after].sort(), [...before].sort(), 'by a permutation');
    const f = feeds();
    const ref = await runOnce(modelBytes(m), f);
    const out = await runOnce(modelBytes(model), f);
    t.ok(maxAbsDiff(ref.y, out.y) < 1e-4, `max |Δ| ${maxAbsDiff(ref.y, out.y)}`);
  });
}

t.test('left alone: a weight read by two layers, a conv that stays fp32, a 1×1 spatial map', async (t) => {
  t.same(rewrite(head('shared-weight')).changed, [], 'shared FC weight');
  t.same(rewrite(head('flatten-gemm'), { perChannel: true, excludeNodes: ['conv'] }).changed, [], 'conv excluded from quantization');
  t.same(rewrite(head('flatten-gemm'), { perChannel: true, excludeNodes: ['fc'] }).changed, [], 'FC layer excluded');
  const b = new GraphBuilder('gap');
  const x = b.input('x', DT.FLOAT, ['N', 8, 8, 8]);
  const c = b.op('Conv', [x, b.initializer('cw', DT.FLOAT, [16, 8, 3, 3], randomFloats(16 * 72, 1, 0.2))], { pads: [1, 1, 1, 1] }, 'conv');
  const f = b.op('Flatten', [b.op('MaxPool', [c], { kernel_shape: [8, 8] }, 'pool')], undefined, 'flat');
  b.node('Gemm', [f, b.initializer('fw', DT.FLOAT, [10, 16], randomFloats(160, 3, 0.1))], { outputs: ['y'], attrs: { transB: 1 }, name: 'fc' });
  b.output('y', DT.FLOAT, ['N', 10]);
  t.same(rewrite(buildModel(b.graph, { '': 13 })).changed, [], 'H×W = 1: both orders are the same');
});

t.test('through static quantization: ORT runs the int8 pool straight into QGemm, outputs match fp32', async (t) => {
  const m = head('flatten-gemm');
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'static', calibration: { method: 'minmax', samples: 8, batch: 4 } } }, ctx);
  t.match(res.warnings.join('\n'), /flattened in channels-last order \(flat;/);
  const nodes = await optimizedNodes(t.testdir(), res.model);
  const ops = nodes.map((n) => n.opType);
  t.comment(`ORT optimized graph: ${ops.join(' ')}`);
  t.ok(ops.includes('QLinearConv') && ops.includes('QGemm'), 'conv and FC run int8');
  const producer = new Map(nodes.flatMap((n) => n.output.map((o) => [o, n.opType] as const)));
  const flat = nodes.find((n) => n.opType === 'Flatten')!;
  t.equal(producer.get(flat.input[0]), 'NhwcMaxPool', 'no Transpose between the int8 pool and the flatten');
  const f = feeds();
  const ref = await runOnce(modelBytes(m), f);
  const out = await runOnce(modelBytes(res.model), f);
  t.ok(cosine(ref.y, out.y) > 0.99, `cosine vs fp32 ${cosine(ref.y, out.y)}`);
});
