// Two weight forms real exports use that hid layers from the quantizer: a weight Reshaped inside the graph
// (folded by compress/fold-weights.ts; its other forms are tested in test/compress/fold-weights.test.ts) and MatMul + bias Add, which ORT fuses into a float Gemm before it looks for QDQ groups
// (matmul-add-gemm.ts). Checked in ONNX Runtime: same outputs, and the int8 kernels it really runs.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../../src/onnx/builder.js';
import { DT } from '../../../src/onnx/dtype.js';
import { cloneModel, loadModel, modelBytes } from '../../../src/onnx/model.js';
import { foldConstantWeights, reshapedDims } from '../../../src/compress/fold-weights.js';
import { matmulAddToGemm } from '../../../src/compress/quantize/matmul-add-gemm.js';
import { applyRecipe } from '../../../src/compress/pipeline.js';
import type { StaticContext } from '../../../src/compress/quantize/static.js';
import { generateInputs, inputSpecs } from '../../../src/measure/inputs.js';
import { cosine, ort, randomFloats, runOnce } from '../../helpers/ort.js';
import { optimizedOps } from '../../helpers/optimized.js';

const ctx: StaticContext = { cpu: { family: 'x86', isa: ['avx2', 'vnni'] } };
const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** x[N,32] → MatMul(Reshape(w[4,4,2,10], shape)) → Add(bias) → y */
function reshapedWeight(shape: bigint[], bias = true) {
  const b = new GraphBuilder('rw');
  const x = b.input('x', DT.FLOAT, ['N', 32]);
  const w = b.op('Reshape', [b.initializer('w4', DT.FLOAT, [4, 4, 2, 10], randomFloats(320, 1, 0.2)), b.initializer('shape', DT.INT64, [shape.length], BigInt64Array.from(shape))], undefined, 'w_reshape');
  const mm = b.op('MatMul', [b.op('Flatten', [x]), w], undefined, 'fc');
  if (bias) b.node('Add', [mm, b.initializer('bias', DT.FLOAT, [10], randomFloats(10, 2, 0.1))], { outputs: ['y'], name: 'fc_bias' });
  else b.node('Identity', [mm], { outputs: ['y'] });
  b.output('y', DT.FLOAT, ['N', 10]);
  return buildModel(b.graph, { '': 13 });
}

const feeds = () => ({ x: new ort.Tensor('float32', randomFloats(4 * 32, 7), [4, 32]) });

t.test('reshapedDims follows ONNX Reshape: 0 copies, -1 infers, a misfit is refused', async (t) => {
  t.same(reshapedDims([16, 4, 4, 10], [256, 10], false), [256, 10]);
  t.same(reshapedDims([16, 4, 4, 10], [-1, 10], false), [256, 10]);
  t.same(reshapedDims([16, 4, 4, 10], [0, -1], false), [16, 160]);
  t.same(reshapedDims([16, 4, 4, 10], [0, -1], true), undefined, 'allowzero: a real 0 leaves nothing for -1');
  t.same(reshapedDims([16, 4, 4, 10], [3, -1], false), undefined);
  t.same(reshapedDims([16, 4, 4, 10], [-1, -1], false), undefined);
  t.same(reshapedDims([16, 4, 4, 10], [100, 10], false), undefined);
});

t.test('a weight Reshaped in the graph is folded: same outputs, the layer gets quantized, the old weight is gone', async (t) => {
  for (const shape of [[32n, 10n], [-1n, 10n]]) {
    const m = reshapedWeight(shape);
    const folded = cloneModel(m);
    const wName = m.proto.graph!.node.find((n) => n.opType === 'MatMul')!.input[1];
    t.same(foldConstantWeights(folded.proto.graph!).map((f) => [f.weight, f.ops]), [[wName, ['Reshape']]], 'the weight the MatMul reads is folded');
    const g = folded.proto.graph!;
    t.notOk(g.node.some((n) => n.opType === 'Reshape'), 'the Reshape is gone');
    t.notOk(g.initializer.some((i) => i.name === 'w4' || i.name === 'shape'), 'and its inputs, which nothing else reads');
    t.same(g.initializer.find((i) => i.name === g.node.find((n) => n.opType === 'MatMul')!.input[1])!.dims.map(Number), [32, 10]);
    const f = feeds();
    t.equal(maxAbsDiff((await runOnce(modelBytes(m), f)).y, (await runOnce(modelBytes(folded), f)).y), 0, `shape [${shape}]: exactly the same outputs`);
  }
  const res = await applyRecipe(reshapedWeight([32n, 10n], false), { v: 1, quantize: { mode: 'dynamic' } }, ctx);
  t.equal(res.passes[0].changed.length, 1, 'dynamic int8 now converts the MatMul');
  t.match(res.warnings.join('\n'), /folded 1 weight\(s\) computed from constants by Reshape/);
});

t.test('MatMul + bias Add on a 2-D input becomes one Gemm: ORT runs QGemm, no float Gemm, close to fp32', async (t) => {
  const m = reshapedWeight([32n, 10n]);
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'static', calibration: { method: 'minmax', samples: 8, batch: 4 } } }, ctx);
  t.match(res.warnings.join('\n'), /merged 1 MatMul \+ bias Add pair\(s\) into Gemm \(fc\)/);
  const fc = res.passes[0].changed.find((c) => c.node === 'fc');
  t.match(fc?.what, /int32 bias/, 'the bias is quantized with the layer');
  const ops = await optimizedOps(t.testdir(), res.model);
  t.ok(ops.includes('QGemm'), ops.join(' '));
  t.notOk(ops.includes('Gemm') || ops.includes('MatMul'), `no float Gemm/MatMul left (${ops.join(' ')})`);
  const f = feeds();
  const ref = (await runOnce(modelBytes(m), f)).y;
  t.ok(cosine(ref, (await runOnce(modelBytes(res.model), f)).y) > 0.99);

  // Excluded by op type or kept fp32 by an override: the MatMul stays a MatMul (and fp32).
  for (const r of [{ v: 1 as const, exclude: { ops: ['MatMul'], nodes: [] } }, { v: 1 as const, quantize: { mode: 'static' as const, overrides: { fc: { skip: true } } } }]) {
    const kept = await applyRecipe(m, { ...r, quantize: { mode: 'static', calibration: { method: 'minmax', samples: 8, batch: 4 }, ...(r.quantize ?? {}) } }, ctx);
    t.ok(kept.model.proto.graph!.node.some((n) => n.opType === 'MatMul' && n.name === 'fc'), `MatMul kept with ${JSON.stringify(r)}`);
    t.notOk(kept.passes[0].changed.some((c) => c.node === 'fc'), 'and not quantized');
  }

  // Not 2-D (a 3-D activation): a Gemm cannot take it, so it stays as it was.
  const b = new GraphBuilder('3d');
  const x = b.input('x', DT.FLOAT, ['N', 5, 32]);
  const mm = b.op('MatMul', [x, b.initializer('w', DT.FLOAT, [32, 10], randomFloats(320, 3, 0.2))], undefined, 'mm');
  b.node('Add', [mm, b.initializer('bias', DT.FLOAT, [10], randomFloats(10, 4, 0.1))], { outputs: ['y'] });
  b.output('y', DT.FLOAT);
  t.same(matmulAddToGemm(buildModel(b.graph).proto.graph!), []);
});

const mnist = join(import.meta.dirname, '../../../../shared/corpus/models/mnist-12.onnx');
t.test('mnist-12 (a CNTK export whose MatMul weight is Reshaped in the graph): quantized and fused in ORT', { skip: existsSync(mnist) ? false : `${mnist} is absent (the shared corpus is not here)` }, async (t) => {
  const m = await loadModel(mnist);
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'static', calibration: { method: 'minmax', samples: 8, batch: 1 } } }, ctx);
  t.match(res.passes[0].changed.find((c) => c.node === 'Times212')?.what, /int8 QDQ.*int32 bias/);
  const ops = await optimizedOps(t.testdir(), res.model, 'mnist');
  t.ok(ops.includes('QGemm') && ops.includes('QLinearConv'), ops.join(' '));
  t.notOk(ops.includes('Gemm'), 'no float Gemm (ORT would otherwise dequantize the weight on every run)');
  // Scored on the calibration distribution (generated inputs) with another seed: fidelity, not accuracy.
  const gen = generateInputs(inputSpecs(m), { seed: 4242 }).tensors.Input3;
  const f = { Input3: new ort.Tensor('float32', gen.data as Float32Array, gen.dims) };
  const ref = await runOnce(modelBytes(m), f);
  const out = await runOnce(modelBytes(res.model), f);
  t.ok(cosine(ref.Plus214_Output_0, out.Plus214_Output_0) > 0.99, `cosine ${cosine(ref.Plus214_Output_0, out.Plus214_Output_0)}`);
});
