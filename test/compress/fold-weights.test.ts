// Weights that reach their layer through shape ops or a Cast (fp16-stored models, Reshaped or Transposed weights):
// folded before the passes, checked in ONNX Runtime against the unfolded graph, and fp16 storage kept where it can be.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { GraphIndex } from '../../src/onnx/graph.js';
import { toFloat16Array } from '../../src/onnx/half.js';
import { cloneModel, loadModel, modelBytes } from '../../src/onnx/model.js';
import { foldConstantWeights, restoreFp16Storage, transposeData, whyNotConstant } from '../../src/compress/fold-weights.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import type { StaticContext } from '../../src/compress/quantize/static.js';
import { cosine, ort, randomFloats, runOnce } from '../helpers/ort.js';
import { packageRoot } from '../../src/util/paths.js';

const ctx: StaticContext = { cpu: { family: 'x86', isa: ['avx2', 'vnni'] } };
const i64 = (...v: number[]) => BigInt64Array.from(v.map(BigInt));

t.test('transposeData matches index arithmetic for every permutation of a 3-D tensor, and int64 data', async (t) => {
  const dims = [2, 3, 4];
  const data = Float32Array.from({ length: 24 }, (_, i) => i);
  for (const perm of [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], []]) {
    const p = perm.length ? perm : [2, 1, 0];
    const out = transposeData({ dtype: DT.FLOAT, dims, data }, perm);
    t.same(out.dims, p.map((a) => dims[a]), `perm [${perm}] dims`);
    const od = out.dims;
    let ok = true;
    for (let a = 0; a < od[0]; a++) for (let b = 0; b < od[1]; b++) for (let c = 0; c < od[2]; c++) {
      const src = [0, 0, 0];
      [a, b, c].forEach((v, k) => { src[p[k]] = v; });
      if (out.data[(a * od[1] + b) * od[2] + c] !== data[(src[0] * 3 + src[1]) * 4 + src[2]]) ok = false;
    }
    t.ok(ok, `perm [${perm}] values`);
  }
  t.same(Array.from(transposeData({ dtype: DT.INT64, dims: [2, 2], data: i64(1, 2, 3, 4) }, [1, 0]).data as BigInt64Array, Number), [1, 3, 2, 4]);
});

/** x[N,24] → MatMul(w) with w = Unsqueeze/Squeeze/Reshape(Transpose(Cast(fp16 constant [10,4,6]))) → y[N,10] */
function castChain() {
  const b = new GraphBuilder('chain');
  const x = b.input('x', DT.FLOAT, ['N', 24]);
  const w16 = b.constant('w16', DT.FLOAT16, [10, 4, 6], toFloat16Array(randomFloats(240, 5, 0.3)));
  const cast = b.op('Cast', [w16], { to: DT.FLOAT }, 'w_cast');
  const tr = b.op('Transpose', [cast], { perm: [1, 2, 0] }, 'w_t');
  const un = b.op('Unsqueeze', [tr, b.initializer('ax', DT.INT64, [1], i64(0))], undefined, 'w_un');
  const sq = b.op('Squeeze', [un, b.initializer('ax0', DT.INT64, [1], i64(0))], undefined, 'w_sq');
  const w = b.op('Reshape', [sq, b.initializer('shape', DT.INT64, [2], i64(24, -1))], undefined, 'w_reshape');
  b.node('MatMul', [x, w], { outputs: ['y'], name: 'fc' });
  b.output('y', DT.FLOAT, ['N', 10]);
  return buildModel(b.graph, { '': 13 });
}

t.test('a Cast + Transpose + Unsqueeze + Squeeze + Reshape chain folds into one float32 weight: same outputs in ORT', async (t) => {
  const m = castChain();
  const f = cloneModel(m);
  const res = foldConstantWeights(f.proto.graph!);
  const w = m.proto.graph!.node.find((n) => n.opType === 'MatMul')!.input[1];
  t.same(res, [{ weight: w, ops: ['Cast', 'Transpose', 'Unsqueeze', 'Squeeze', 'Reshape'], fromDtype: DT.FLOAT16 }]);
  const g = f.proto.graph!;
  t.same(g.node.map((n) => n.opType), ['MatMul'], 'the chain and its Constant are gone');
  t.same(g.initializer.map((i) => [i.name, i.dataType, i.dims.map(Number)]), [[w, DT.FLOAT, [24, 10]]], 'its parameters too');
  const feeds = { x: new ort.Tensor('float32', randomFloats(3 * 24, 9), [3, 24]) };
  t.same((await runOnce(modelBytes(f), feeds)).y, (await runOnce(modelBytes(m), feeds)).y, 'bit-identical outputs');

  // Left alone: a Transpose whose output is a graph output, integer shape arithmetic, a Cast to int.
  const b = new GraphBuilder('left');
  const x = b.input('x', DT.FLOAT, [2, 3]);
  b.node('Transpose', [b.initializer('c', DT.FLOAT, [3, 2], randomFloats(6, 1))], { outputs: ['ct'], attrs: { perm: [1, 0] } });
  const shape = b.op('Unsqueeze', [b.initializer('n', DT.INT64, [], i64(6)), b.initializer('a0', DT.INT64, [1], i64(0))]);
  const flat = b.op('Reshape', [b.op('Add', [x, 'ct']), shape]);
  const asInt = b.op('Cast', [b.initializer('k', DT.FLOAT, [6], randomFloats(6, 2))], { to: DT.INT64 });
  b.node('Mul', [flat, b.op('Cast', [asInt], { to: DT.FLOAT })], { outputs: ['y'] });
  b.output('ct', DT.FLOAT, [2, 3]);
  b.output('y', DT.FLOAT, [6]);
  const left = buildModel(b.graph, { '': 13 });
  const before = left.proto.graph!.node.map((n) => n.opType);
  t.same(foldConstantWeights(left.proto.graph!), []);
  t.same(left.proto.graph!.node.map((n) => n.opType), before, 'nothing changed');
});

t.test('an intermediate value another node reads stays: both it and the chain end become initializers', async (t) => {
  const b = new GraphBuilder('shared');
  const x = b.input('x', DT.FLOAT, [1, 6]);
  const cast = b.op('Cast', [b.initializer('w16', DT.FLOAT16, [6, 4], toFloat16Array(randomFloats(24, 3)))], { to: DT.FLOAT });
  const y1 = b.op('MatMul', [x, cast]);
  const wt = b.op('Transpose', [cast], { perm: [1, 0] });
  b.node('MatMul', [y1, wt], { outputs: ['y'] });
  b.output('y', DT.FLOAT, [1, 6]);
  const m = buildModel(b.graph, { '': 13 });
  const f = cloneModel(m);
  t.same(foldConstantWeights(f.proto.graph!).map((r) => r.ops), [['Cast'], ['Cast', 'Transpose']]);
  t.same(f.proto.graph!.node.map((n) => n.opType), ['MatMul', 'MatMul']);
  const feeds = { x: new ort.Tensor('float32', randomFloats(6, 4), [1, 6]) };
  t.same((await runOnce(modelBytes(f), feeds)).y, (await runOnce(modelBytes(m), feeds)).y);
  t.equal(restoreFp16Storage(f.proto.graph!, foldConstantWeights(cloneModel(m).proto.graph!), new Set()), 2, 'both stored fp16 again');
  t.same(f.proto.graph!.initializer.map((i) => i.dataType), [DT.FLOAT16, DT.FLOAT16]);
  t.same((await runOnce(modelBytes(f), feeds)).y, (await runOnce(modelBytes(m), feeds)).y, 'still the same outputs');
});

t.test('skip reasons name what produces a weight that is not a constant', async (t) => {
  const b = new GraphBuilder('why');
  const x = b.input('x', DT.FLOAT, [1, 4]);
  const wIn = b.input('w_in', DT.FLOAT, [4, 4]);
  const dq = b.op('DequantizeLinear', [b.initializer('q', DT.INT8, [4, 4], new Int8Array(16).fill(3)), b.initializer('s', DT.FLOAT, [], Float32Array.of(0.1))], undefined, 'w_dq');
  const relu = b.op('Relu', [wIn], undefined, 'w_relu');
  const asInt = b.op('Cast', [b.initializer('k', DT.INT64, [4, 4], new BigInt64Array(16).fill(2n))], { to: DT.FLOAT16 }, 'w_cast16');
  const y1 = b.op('MatMul', [x, dq]);
  const y2 = b.op('MatMul', [y1, wIn]);
  const y3 = b.op('MatMul', [y2, relu]);
  b.node('MatMul', [b.op('Cast', [y3], { to: DT.FLOAT16 }), asInt], { outputs: ['y'] });
  b.output('y', DT.FLOAT16, [1, 4]);
  const idx = new GraphIndex(buildModel(b.graph, { '': 13 }).proto.graph!);
  t.match(whyNotConstant(dq, idx), /already quantized \(it comes from DequantizeLinear "w_dq"\)/);
  t.match(whyNotConstant(wIn, idx), /is a graph input, supplied at run time/);
  t.match(whyNotConstant(relu, idx), /computed at run time by Relu "w_relu"/);
  t.match(whyNotConstant(asInt, idx), /computed from a constant by Cast "w_cast16" in a form edgetune does not fold/);
});

t.test('an fp16-stored model (edgetune fp16 output) quantizes like its fp32 original; weights left alone stay fp16', async (t) => {
  const original = await loadModel(join(packageRoot(), 'examples/fashion-mnist/model.onnx'));
  const fp16 = (await applyRecipe(original, { v: 1, quantize: { mode: 'fp16' } })).model;
  const calibration = { method: 'minmax' as const, samples: 16, batch: 8 };
  const fromFp32 = await applyRecipe(original, { v: 1, quantize: { mode: 'static', calibration } }, ctx);
  const fromFp16 = await applyRecipe(fp16, { v: 1, quantize: { mode: 'static', calibration } }, ctx);
  const changed = (r: typeof fromFp32) => r.passes[0].changed.map((c) => c.node).sort();
  t.ok(changed(fromFp16).includes('/fc1/Gemm') && changed(fromFp16).includes('/conv2/Conv'), changed(fromFp16).join(' '));
  t.same(changed(fromFp16), changed(fromFp32), 'the same layers as from the fp32 model');
  t.match(fromFp16.warnings.join('\n'), /folded \d+ weight\(s\) computed from constants by Cast into initializers .* float weight\(s\) of the result stored as float16, as in the input/);
  // conv1 stays fp32 compute (too shallow for int8), and its weight stays stored as fp16 as in the input.
  const g = fromFp16.model.proto.graph!;
  const conv1 = g.node.find((n) => n.name === '/conv1/Conv')!;
  const cast = g.node.find((n) => n.output[0] === conv1.input[1]);
  t.equal(cast?.opType, 'Cast', 'conv1 reads its weight through a Cast');
  t.equal(g.initializer.find((i) => i.name === cast!.input[0])?.dataType, DT.FLOAT16, 'from an fp16 initializer');
  const size = (r: typeof fromFp32) => modelBytes(r.model).length;
  t.ok(size(fromFp16) <= size(fromFp32), `file ${size(fromFp16)} B, from fp32 ${size(fromFp32)} B`);
  const x = new ort.Tensor('float32', randomFloats(784 * 4, 11, 0.5).map(Math.abs), [4, 1, 28, 28]);
  const ref = (await runOnce(modelBytes(original), { input: x })).logits;
  const out = (await runOnce(modelBytes(fromFp16.model), { input: x })).logits;
  t.ok(cosine(ref, out) > 0.999, `cosine vs fp32 ${cosine(ref, out)}`);
});

t.test('channel pruning and low-rank on an fp16-stored model write their new weights as fp16, as the input stored them', async (t) => {
  const original = await loadModel(join(packageRoot(), 'examples/fashion-mnist/model.onnx'));
  const fp16 = (await applyRecipe(original, { v: 1, quantize: { mode: 'fp16' } })).model;
  const x = new ort.Tensor('float32', randomFloats(784 * 4, 12, 0.5).map(Math.abs), [4, 1, 28, 28]);
  for (const recipe of [{ v: 1 as const, prune: { method: 'channel' as const, ratio: 0.25 } }, { v: 1 as const, lowrank: { ratio: 0.25 } }]) {
    const label = recipe.prune ? 'channel pruning' : 'low-rank';
    const a = await applyRecipe(original, recipe);
    const b = await applyRecipe(fp16, recipe);
    t.ok(b.passes[0].changed.length > 0 && b.passes[0].changed.length === a.passes[0].changed.length, `${label}: the same layers changed as from fp32`);
    const g = b.model.proto.graph!;
    const bigFloat = g.initializer.filter((i) => i.dataType === DT.FLOAT && i.dims.reduce((p, d) => p * Number(d), 1) >= 16);
    t.same(bigFloat.map((i) => i.name), [], `${label}: no float32 weight left`);
    const ratio = modelBytes(b.model).length / modelBytes(a.model).length;
    t.ok(ratio > 0.45 && ratio < 0.55, `${label}: file ${ratio.toFixed(3)}× of the same step on the fp32 model`);
    const ya = (await runOnce(modelBytes(a.model), { input: x })).logits;
    const yb = (await runOnce(modelBytes(b.model), { input: x })).logits;
    t.ok(cosine(ya, yb) > 0.9999, `${label}: outputs match the fp32 path (cosine ${cosine(ya, yb)})`);
  }
});

const ultraface = join(import.meta.dirname, '../../../shared/corpus/models/Ultraface_version-RFB-320.onnx');
t.test('a real detector stored in fp16 (Ultraface RFB-320 through edgetune fp16) quantizes the same layers as its fp32 file', { skip: existsSync(ultraface) ? false : `${ultraface} is absent (the shared corpus is not here)` }, async (t) => {
  const original = await loadModel(ultraface);
  const fp16 = (await applyRecipe(original, { v: 1, quantize: { mode: 'fp16' } })).model;
  const recipe = { v: 1 as const, quantize: { mode: 'static' as const, calibration: { method: 'minmax' as const, samples: 4, batch: 2 } } };
  const a = await applyRecipe(original, recipe, ctx);
  const b = await applyRecipe(fp16, recipe, ctx);
  const layers = (r: typeof a) => r.passes[0].changed.map((c) => c.node).sort();
  const convs = a.passes[0].changed.filter((c) => c.op === 'Conv').length;
  t.ok(convs >= 40, `${convs} convs (${layers(a).length} nodes) quantized from fp32`);
  t.same(layers(b), layers(a), 'the same nodes from the fp16-stored file');
  const size = (r: typeof a) => modelBytes(r.model).length;
  t.ok(Math.abs(size(b) / size(a) - 1) < 0.02, `file ${size(b)} B against ${size(a)} B`);
});
