// Which QDQ groups ONNX Runtime really turns into integer kernels, read from its optimized-model output (level
// "all"). static.test.ts checks Conv/Add/Concat/Gemm/GlobalAveragePool/MatMul; this file the linking ops.
import t from 'tap';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { modelBytes } from '../../src/onnx/model.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import type { StaticContext } from '../../src/compress/quantize/static.js';
import { cosine, ort, randomFloats, runOnce } from '../helpers/ort.js';
import { optimizedNodes } from '../helpers/optimized.js';

const ctx: StaticContext = { cpu: { family: 'x86', isa: ['avx2', 'vnni'] } };

/**
 * x → conv1 → SiLU (Sigmoid + Mul) → conv2 → LeakyRelu → AveragePool → Resize (nearest, 2×) → conv3 → GAP → Flatten
 * → Gemm → y
 */
function linking() {
  const b = new GraphBuilder('linking');
  const x = b.input('x', DT.FLOAT, ['N', 16, 12, 12]);
  const conv = (inp: string, name: string, seed: number) =>
    b.op('Conv', [inp, b.initializer(`${name}_w`, DT.FLOAT, [16, 16, 3, 3], randomFloats(16 * 144, seed, 0.1))], { pads: [1, 1, 1, 1] }, name);
  const c1 = conv(x, 'conv1', 1);
  const silu = b.op('Mul', [c1, b.op('Sigmoid', [c1], undefined, 'sigmoid')], undefined, 'silu_mul');
  const leaky = b.op('LeakyRelu', [conv(silu, 'conv2', 2)], { alpha: { float: 0.1 } }, 'leaky');
  const pool = b.op('AveragePool', [leaky], { kernel_shape: [2, 2], strides: [2, 2] }, 'avgpool');
  const up = b.op('Resize', [pool, '', b.initializer('scales', DT.FLOAT, [4], Float32Array.of(1, 1, 2, 2))], { mode: 'nearest' }, 'resize');
  const f = b.op('Flatten', [b.op('GlobalAveragePool', [conv(up, 'conv3', 3)], undefined, 'gap')]);
  b.node('Gemm', [f, b.initializer('fc_w', DT.FLOAT, [10, 16], randomFloats(160, 4, 0.3))], { outputs: ['y'], attrs: { transB: 1 }, name: 'fc' });
  b.output('y', DT.FLOAT, ['N', 10]);
  return buildModel(b.graph, { '': 13 });
}

t.test('Mul, Sigmoid, LeakyRelu, AveragePool and Resize inside an int8 region: what ORT runs', async (t) => {
  const m = linking();
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'static', calibration: { method: 'minmax', samples: 8, batch: 4 } } }, ctx);
  const changed = new Set(res.passes[0].changed.map((c) => c.node));
  for (const n of ['conv1', 'sigmoid', 'silu_mul', 'conv2', 'leaky', 'avgpool', 'conv3', 'gap', 'fc']) t.ok(changed.has(n), `${n} got QDQ`);
  const nodes = await optimizedNodes(t.testdir(), res.model, 'linking');
  const ops = nodes.map((n) => n.opType);
  const seen = ops.join(' ');
  t.comment(`ORT optimized graph: ${seen}`);
  for (const op of ['QLinearConv', 'QLinearSigmoid', 'QLinearMul', 'QLinearLeakyRelu', 'QLinearAveragePool', 'QLinearGlobalAveragePool', 'QGemm']) {
    t.ok(ops.includes(op), `${op} in ${seen}`);
  }
  for (const op of ['Conv', 'Sigmoid', 'Mul', 'LeakyRelu', 'AveragePool', 'GlobalAveragePool', 'Gemm']) t.notOk(ops.includes(op), `no float ${op} left`);
  // Resize has no QLinear form: ORT drops the Q/DQ pair around it and resizes the int8 tensor itself.
  const producer = new Map(nodes.flatMap((n) => n.output.map((o) => [o, n.opType] as const)));
  const resize = nodes.find((n) => n.opType === 'Resize');
  t.ok(resize, 'Resize is still there');
  t.equal(producer.get(resize!.input[0]), 'QLinearAveragePool', 'Resize reads the int8 pool output directly');
  const after = nodes.find((n) => n.input.includes(resize!.output[0]))!;
  t.equal(after.opType, 'QLinearConv', 'and feeds the int8 conv directly');
  t.equal(ops.filter((o) => o === 'DequantizeLinear').length, 0, `no DequantizeLinear inside the int8 region (${seen})`);
  const feeds = { x: new ort.Tensor('float32', randomFloats(4 * 16 * 144, 9), [4, 16, 12, 12]) };
  const ref = await runOnce(modelBytes(m), feeds);
  const out = await runOnce(modelBytes(res.model), feeds);
  t.ok(cosine(ref.y, out.y) > 0.99, `cosine ${cosine(ref.y, out.y)}`);
});
