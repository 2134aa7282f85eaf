// The robustness list of issue 3 point 7, for every mode: a weight read by two quantizable nodes, a weight that a
// float op and subgraph bodies read too, If and Loop bodies with layers in them, a dynamic weight. Each mode must
// write a model ONNX Runtime loads, with the same outputs as fp32, and report what it left alone and why.
import t from 'tap';
import { GraphBuilder, buildModel } from '../../../src/onnx/builder.js';
import { DT } from '../../../src/onnx/dtype.js';
import { modelBytes } from '../../../src/onnx/model.js';
import { applyRecipe } from '../../../src/compress/pipeline.js';
import type { Recipe } from '../../../src/types.js';
import { cosine, ort, randomFloats, runOnce } from '../../helpers/ort.js';
import { optimizedOps } from '../../helpers/optimized.js';

/**
 * x[N,16] → mm1 (w) → mm2 (w again) → Relu(w) feeds mm3 as a computed weight edgetune does not fold → y
 *           If(cond): then MatMul(y, w) inside the body, else Identity → branch
 *           Loop(2 trips): v ← MatMul(v, w) inside the body → looped
 */
function tricky() {
  const b = new GraphBuilder('tricky');
  const x = b.input('x', DT.FLOAT, ['N', 16]);
  b.initializer('w', DT.FLOAT, [16, 16], randomFloats(256, 1, 0.25));
  const h1 = b.op('MatMul', [x, 'w'], undefined, 'mm1');
  const h2 = b.op('MatMul', [h1, 'w'], undefined, 'mm2_shared_weight');
  const wt = b.op('Relu', ['w'], undefined, 'w_relu');
  b.node('MatMul', [h2, wt], { outputs: ['y'], name: 'mm3_dynamic_weight' });
  b.output('y', DT.FLOAT, ['N', 16]);

  const then = new GraphBuilder('then');
  then.node('MatMul', ['y', 'w'], { outputs: ['then_out'], name: 'mm_in_then' });
  then.output('then_out', DT.FLOAT);
  const els = new GraphBuilder('else');
  els.node('Identity', ['y'], { outputs: ['else_out'] });
  els.output('else_out', DT.FLOAT);
  const cond = b.input('cond', DT.BOOL, []);
  b.node('If', [cond], { outputs: ['branch'], attrs: { then_branch: then.graph, else_branch: els.graph }, name: 'if' });
  b.output('branch', DT.FLOAT);

  const body = new GraphBuilder('body');
  body.input('iter', DT.INT64, []);
  body.input('c_in', DT.BOOL, []);
  body.input('v_in', DT.FLOAT);
  body.node('Identity', ['c_in'], { outputs: ['c_out'] });
  body.node('MatMul', ['v_in', 'w'], { outputs: ['v_out'], name: 'mm_in_loop' });
  body.output('c_out', DT.BOOL);
  body.output('v_out', DT.FLOAT);
  const trips = b.initializer('trips', DT.INT64, [], BigInt64Array.of(2n));
  const keep = b.initializer('keep_going', DT.BOOL, [], Uint8Array.of(1));
  b.node('Loop', [trips, keep, h1], { outputs: ['looped'], attrs: { body: body.graph }, name: 'loop' });
  b.output('looped', DT.FLOAT);
  return buildModel(b.graph, { '': 13 });
}

const feeds = (seed: number) => ({ x: new ort.Tensor('float32', randomFloats(4 * 16, seed), [4, 16]), cond: new ort.Tensor('bool', Uint8Array.of(1), []) });

const MODES: Array<[string, Recipe, number]> = [
  ['dynamic', { v: 1, quantize: { mode: 'dynamic', perChannel: true } }, 0.995],
  ['static', { v: 1, quantize: { mode: 'static', calibration: { method: 'minmax', samples: 16, batch: 4 } } }, 0.99],
  ['weight-only 4-bit', { v: 1, quantize: { mode: 'weight-only', bits: 4, blockSize: 16 } }, 0.98],
  ['weight-only 8-bit', { v: 1, quantize: { mode: 'weight-only', bits: 8, blockSize: 16 } }, 0.995],
  ['fp16 weights', { v: 1, quantize: { mode: 'fp16' } }, 0.999],
  ['fp16 full graph', { v: 1, quantize: { mode: 'fp16', fullGraph: true } }, 0.999],
];

t.test('shared weights, a weight with float and subgraph readers, If/Loop bodies, dynamic weights: every mode', async (t) => {
  const m = tricky();
  const ref = await runOnce(modelBytes(m), feeds(3));
  for (const [label, recipe, floor] of MODES) {
    const res = await applyRecipe(m, recipe, { shapes: { x: [4, 16], cond: [] }, cpu: { family: 'x86', isa: ['avx2', 'vnni'] } } as Parameters<typeof applyRecipe>[2]);
    const pass = res.passes[res.passes.length - 1];
    const why = Object.fromEntries(pass.skipped.map((s) => [s.node, s.why]));
    const changed = pass.changed.map((c) => c.node);
    const g = res.model.proto.graph!;
    if (!label.startsWith('fp16')) {
      t.ok(changed.includes('mm1') && changed.includes('mm2_shared_weight'), `${label}: both readers of the shared weight quantized (${changed})`);
      t.match(why.mm3_dynamic_weight, /computed from constants by Relu "w_relu", which edgetune does not fold/, `${label}: the computed weight is skipped with a reason`);
      t.match(why.if, /1 (\S*\/)?MatMul\S* inside its subgraph bodies stay fp32/, `${label}: the If body is reported`);
      t.match(why.loop, /1 (\S*\/)?MatMul\S* inside its subgraph bodies stay fp32/, `${label}: the Loop body is reported`);
      const low = g.initializer.filter((i) => i.name.startsWith('w_') && [DT.INT8, DT.UINT8, DT.INT4, DT.UINT4].includes(i.dataType) && i.dims.length >= 2);
      t.equal(low.length, 1, `${label}: one low-bit copy of the shared weight (${low.map((i) => i.name)})`);
    }
    // Transpose and both bodies still read the fp32 weight (fp16 keeps the name as the Cast's output).
    t.ok(g.initializer.some((i) => i.name === 'w' && i.dataType === DT.FLOAT) || g.node.some((n) => n.output.includes('w')), `${label}: "w" is still there for its float readers`);
    const out = await runOnce(modelBytes(res.model), feeds(3));
    t.same(Object.keys(out).sort(), Object.keys(ref).sort(), `${label}: same outputs`);
    for (const k of Object.keys(ref)) t.ok(cosine(ref[k], out[k]) > floor, `${label}: ${k} cosine ${cosine(ref[k], out[k])}`);
  }
});

t.test('static: a ConvTranspose stays fp32 (no int8 CPU kernel), the convs around it are quantized, ORT runs it', async (t) => {
  // x → Conv → Relu → ConvTranspose (2× upsampling) → Relu → Conv → Tanh → y (Tanh: zero-centred, so cosine means something)
  const b = new GraphBuilder('deconv');
  const x = b.input('x', DT.FLOAT, [2, 16, 6, 6]);
  const c1 = b.op('Relu', [b.op('Conv', [x, b.initializer('w1', DT.FLOAT, [16, 16, 3, 3], randomFloats(16 * 144, 21, 0.1))], { pads: [1, 1, 1, 1] }, 'conv1')]);
  const up = b.op('ConvTranspose', [c1, b.initializer('wt', DT.FLOAT, [16, 16, 2, 2], randomFloats(16 * 64, 22, 0.2)), b.initializer('bt', DT.FLOAT, [16], randomFloats(16, 23, 0.1))],
    { strides: [2, 2] }, 'deconv');
  const c2 = b.op('Conv', [b.op('Relu', [up]), b.initializer('w2', DT.FLOAT, [8, 16, 3, 3], randomFloats(8 * 144, 24, 0.1))], { pads: [1, 1, 1, 1] }, 'conv2');
  b.output(b.op('Tanh', [c2]), DT.FLOAT);
  const m = buildModel(b.graph, { '': 13 });
  const res = await applyRecipe(m, { v: 1, quantize: { mode: 'static', calibration: { method: 'minmax', samples: 8, batch: 4 } } },
    { cpu: { family: 'x86', isa: ['avx2', 'vnni'] } } as Parameters<typeof applyRecipe>[2]);
  const pass = res.passes[0];
  const why = Object.fromEntries(pass.skipped.map((s) => [s.node, s.why]));
  t.match(why.deconv, /no int8 CPU kernel/, 'the reason is in the report');
  t.same(pass.changed.filter((c) => c.op === 'Conv').map((c) => c.node).sort(), ['conv1', 'conv2'], 'the convs around it are quantized');
  t.notOk(pass.changed.some((c) => c.node === 'deconv'));
  const g = res.model.proto.graph!;
  const deconv = g.node.find((n) => n.name === 'deconv')!;
  t.equal(g.initializer.find((i) => i.name === deconv.input[1])?.dataType, DT.FLOAT, 'its weight is still the fp32 initializer');
  const ops = await optimizedOps(t.testdir(), res.model, 'deconv');
  t.ok(ops.includes('ConvTranspose') && ops.filter((o) => o === 'QLinearConv').length === 2, `ORT loads it: float ConvTranspose between two QLinearConv (${ops.join(' ')})`);
  const feeds = { x: new ort.Tensor('float32', randomFloats(2 * 16 * 36, 25), [2, 16, 6, 6]) };
  const ref = Object.values(await runOnce(modelBytes(m), feeds))[0];
  const out = Object.values(await runOnce(modelBytes(res.model), feeds))[0];
  t.equal(out.length, ref.length);
  t.ok(cosine(ref, out) > 0.99, `cosine ${cosine(ref, out)}`);
});
