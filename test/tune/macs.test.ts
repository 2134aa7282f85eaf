import t from 'tap';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { countMacs, probeShapes, probeTensors } from '../../src/tune/macs.js';
import { randomFloats } from '../helpers/ort.js';

function convNet() {
  const b = new GraphBuilder('cnn');
  const x = b.input('x', DT.FLOAT, ['N', 3, 16, 16]);
  const c1 = b.op('Conv', [x, b.initializer('w1', DT.FLOAT, [8, 3, 3, 3], randomFloats(216, 1, 0.2))], { pads: [1, 1, 1, 1], strides: [2, 2] }, 'conv1');
  const r = b.op('Relu', [c1]);
  const f = b.op('Flatten', [r]);
  const g = b.op('Gemm', [f, b.initializer('wg', DT.FLOAT, [512, 10], randomFloats(5120, 2, 0.05))], undefined, 'fc');
  const mm = b.op('MatMul', [g, b.initializer('wm', DT.FLOAT, [10, 4], randomFloats(40, 3, 0.1))], undefined, 'mm');
  b.output(mm, DT.FLOAT, ['N', 4]);
  return buildModel(b.graph);
}

t.test('MACs from weight shapes and activation shapes', async (t) => {
  const model = convNet();
  t.same(probeTensors(model).sort(), ['flatten_2_out0', 'gemm_3_out0', 'x'].sort());
  const shapes = new Map<string, number[]>([['x', [1, 3, 16, 16]], ['flatten_2_out0', [1, 512]], ['gemm_3_out0', [1, 10]]]);
  const c = countMacs(model, shapes);
  // conv: 1·8·(8·8)·(3·3·3) = 13824; gemm 512·10 = 5120; matmul 10·4 = 40
  t.equal(c.macs, 13824 + 5120 + 40);
  t.equal(c.counted, 3);
  t.same(c.uncounted, []);
  const partial = countMacs(model, new Map([['x', [1, 3, 16, 16]]]));
  t.equal(partial.counted, 1, 'only the conv: the rows of the Gemm and MatMul inputs are unknown');
  t.match(partial.uncounted.join(' '), /fc \(Gemm\)/);
  t.equal(countMacs(model, new Map()).macs, undefined, 'nothing countable: unknown, not 0');
});

t.test('the probe reads activation shapes from one ONNX Runtime run', async (t) => {
  const model = convNet();
  const inputs = { x: { dtype: 'float32' as const, dims: [2, 3, 16, 16], data: new Float32Array(2 * 3 * 256) } };
  const shapes = await probeShapes(model, inputs, t.testdir());
  t.same(shapes.get('flatten_2_out0'), [2, 512]);
  t.equal(countMacs(model, shapes).macs, 2 * (13824 + 5120 + 40), 'batch 2 doubles everything');
});
