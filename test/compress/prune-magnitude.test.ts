import t from 'tap';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { GraphIndex } from '../../src/onnx/graph.js';
import { loadModel, modelBytes, type OnnxModel } from '../../src/onnx/model.js';
import { readTensor, toFloat32 } from '../../src/onnx/tensor.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import { gzipSize, pruneMagnitude } from '../../src/compress/prune/magnitude.js';
import { cloneModel } from '../../src/onnx/model.js';
import { cosine, ort, randomFloats, runOnce } from '../helpers/ort.js';

function zeros(model: OnnxModel, name: string): { zero: number; n: number } {
  const idx = new GraphIndex(model.proto.graph!);
  const w = toFloat32(readTensor(idx.constantTensor(name)!.tensor));
  return { zero: w.reduce((a, v) => a + (v === 0 ? 1 : 0), 0), n: w.length };
}

function mlp(): OnnxModel {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', DT.FLOAT, ['N', 64]);
  const h = b.op('Relu', [b.op('MatMul', [x, b.initializer('w1', DT.FLOAT, [64, 32], randomFloats(2048, 1, 0.3))], undefined, 'fc1')]);
  const y = b.node('Gemm', [h, b.constant('w2', DT.FLOAT, [10, 32], randomFloats(320, 2, 3)), b.initializer('b2', DT.FLOAT, [10], randomFloats(10, 3))], { outputs: ['y'], attrs: { transB: 1 }, name: 'fc2' });
  b.output(y[0], DT.FLOAT, ['N', 10]);
  return buildModel(b.graph);
}

t.test('per-layer magnitude pruning zeroes exactly the smallest fraction of each weight', async (t) => {
  const m = cloneModel(mlp());
  const report = pruneMagnitude(m, { ratio: 0.4 });
  t.same(report.changed.map((c) => c.node), ['fc1', 'fc2']);
  t.same(zeros(m, 'w1'), { zero: Math.floor(0.4 * 2048), n: 2048 });
  t.same(zeros(m, 'w2'), { zero: 128, n: 320 }, 'a Constant-node weight too');
  // The survivors are the largest: every kept magnitude ≥ every removed one.
  const orig = toFloat32(readTensor(new GraphIndex(mlp().proto.graph!).constantTensor('w1')!.tensor));
  const now = toFloat32(readTensor(new GraphIndex(m.proto.graph!).constantTensor('w1')!.tensor));
  const kept = Math.min(...Array.from(now).filter((v) => v !== 0).map(Math.abs));
  const dropped = Math.max(...Array.from(orig).filter((_, i) => now[i] === 0).map(Math.abs));
  t.ok(kept >= dropped, `smallest kept ${kept} ≥ largest dropped ${dropped}`);
  const r2 = pruneMagnitude(cloneModel(mlp()), { ratio: 0.4, perLayer: { fc2: 0.9 }, excludeNodes: ['fc1'] });
  t.same(r2.changed.map((c) => c.node), ['fc2']);
  t.match(r2.skipped[0].why, /excluded/);
});

t.test('a global threshold prunes layers of small weights harder', async (t) => {
  const m = cloneModel(mlp());
  pruneMagnitude(m, { ratio: 0.5, scope: 'global' });
  const a = zeros(m, 'w1'), b = zeros(m, 'w2');
  t.equal(a.zero + b.zero, Math.floor(0.5 * (2048 + 320)), 'half of all weights');
  t.ok(a.zero / a.n > 0.5 && b.zero / b.n < 0.1, `w1 (scale 0.3) ${(a.zero / a.n).toFixed(2)}, w2 (scale 3) ${(b.zero / b.n).toFixed(2)}`);
});

t.test('the recipe step reports the gzip win and says plainly there is no speed-up', async (t) => {
  const model = await loadModel('examples/fashion-mnist/model.onnx');
  const r = await applyRecipe(model, { v: 1, prune: { method: 'magnitude', ratio: 0.7 } });
  t.equal(r.passes[0].pass, 'prune-magnitude');
  t.equal(r.passes[0].changed.length, 4);
  const typo = await applyRecipe(model, { v: 1, prune: { method: 'magnitude', ratio: 0.5, perLayer: { fc9: 0.1 } } });
  t.match(typo.warnings.join('\n'), /perLayer: "fc9" names no Conv\/Gemm\/MatMul layer in this model/);
  const w = r.warnings.find((x) => x.startsWith('unstructured sparsity'))!;
  t.match(w, /no sparse kernels, so it runs no faster/);
  const [, before, after] = w.match(/gzipped model (\d+) → (\d+) bytes/)!.map(Number);
  t.equal(before, gzipSize(model));
  t.ok(after < before * 0.6, `gzip ${before} → ${after}`);
  t.ok(Math.abs(modelBytes(r.model).length - modelBytes(model).length) < 1024, 'the .onnx file itself is no smaller');
  const feeds = { input: new ort.Tensor('float32', randomFloats(4 * 784, 4, 0.5).map((v) => v + 0.5), [4, 1, 28, 28]) };
  const a = await runOnce(modelBytes(model), feeds), b = await runOnce(modelBytes(r.model), feeds);
  t.ok(cosine(a.logits, b.logits) > 0.9, `outputs stay close at 70% sparsity (cosine ${cosine(a.logits, b.logits).toFixed(4)})`);
});
