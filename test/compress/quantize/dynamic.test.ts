import t from 'tap';
import { GraphBuilder, buildModel } from '../../../src/onnx/builder.js';
import { DT } from '../../../src/onnx/dtype.js';
import { cloneModel, modelBytes } from '../../../src/onnx/model.js';
import { readTensor } from '../../../src/onnx/tensor.js';
import { dynamicStep } from '../../../src/compress/quantize/dynamic.js';
import { int8KernelWarnings } from '../../../src/compress/quantize/qdq-isa.js';
import { cosine, ort, randomFloats, runOnce } from '../../helpers/ort.js';

/** x[1,4,8,8] → Conv(8, bias) → Relu → Flatten → Gemm(bias) → y */
function convNet(opset = 13) {
  const b = new GraphBuilder('c');
  const x = b.input('x', DT.FLOAT, [1, 4, 8, 8]);
  const w = b.initializer('w', DT.FLOAT, [8, 4, 3, 3], randomFloats(288, 1, 0.3));
  const cb = b.initializer('cb', DT.FLOAT, [8], randomFloats(8, 2, 0.2));
  const h = b.op('Flatten', [b.op('Relu', [b.op('Conv', [x, w, cb], { pads: [1, 1, 1, 1] }, 'conv')])]);
  const wf = b.initializer('wf', DT.FLOAT, [512, 10], randomFloats(5120, 3, 0.05));
  const bf = b.initializer('bf', DT.FLOAT, [10], randomFloats(10, 4, 0.1));
  b.output(b.node('Gemm', [h, wf, bf], { outputs: ['y'], name: 'fc' })[0], DT.FLOAT);
  return buildModel(b.graph, { '': opset });
}
const cpu = { family: 'x86' as const, isa: ['avx2' as const, 'vnni' as const] };
const feeds = { x: new ort.Tensor('float32', randomFloats(256, 5), [1, 4, 8, 8]) };

t.test('convs stay fp32 unless asked; then ConvInteger with uint8 weights and a loud warning', async (t) => {
  const m = convNet();
  const ref = await runOnce(modelBytes(m), feeds);
  const plain = cloneModel(m);
  const r0 = dynamicStep(plain, { mode: 'dynamic', perChannel: true }, {}, cpu);
  t.same(r0.passes.map((p) => p.changed.map((c) => c.node)), [['fc']], 'Gemm with bias quantized');
  t.match(r0.warnings.join('\n'), /1 Conv layer\(s\) stay fp32/);
  for (const perChannel of [false, true]) {
    const q = cloneModel(m);
    const r = dynamicStep(q, { mode: 'dynamic', convInteger: true, perChannel }, {}, cpu);
    t.same(r.passes.map((p) => p.pass), ['quantize-dynamic', 'quantize-dynamic-conv']);
    t.match(r.passes[1].changed[0].what, new RegExp(`ConvInteger, uint8 ${perChannel ? 'per-channel' : 'per-tensor'}`));
    t.match(r.warnings.join('\n'), /ConvInteger has no fast kernel/);
    const g = q.proto.graph!;
    t.ok(g.node.some((n) => n.opType === 'ConvInteger') && !g.node.some((n) => n.opType === 'Conv'));
    const wq = g.initializer.find((i) => i.name.endsWith('_quantized') && i.dims.length === 4)!;
    t.equal(wq.dataType, DT.UINT8, 'ConvInteger weights are uint8');
    const vals = readTensor(wq).data as Uint8Array;
    t.ok(Math.min(...vals) >= 1 && Math.max(...vals) <= 255);
    const out = await runOnce(modelBytes(q), feeds);
    t.ok(cosine(ref.y, out.y) > 0.995, `cosine ${cosine(ref.y, out.y)} (perChannel ${perChannel})`);
  }
});

t.test('ConvInteger is skipped with a reason below opset 10', async (t) => {
  const m = convNet(9);
  const r = dynamicStep(m, { mode: 'dynamic', convInteger: true }, {}, cpu);
  t.match(r.passes[1].skipped[0].why, /ConvInteger needs opset 10; the model is opset 9/);
});

t.test('CPU advice: where int8 has no fast kernel', async (t) => {
  t.match(int8KernelWarnings('dynamic', { family: 'arm', isa: ['neon'] }).join(), /no int8 dot-product instructions/);
  t.same(int8KernelWarnings('dynamic', { family: 'arm', isa: ['neon', 'dotprod'] }), []);
  t.match(int8KernelWarnings('static', { family: 'x86', isa: ['avx'] }).join(), /no AVX2/);
  t.match(int8KernelWarnings('static', { family: 'x86', isa: ['avx2'] }).join(), /no VNNI.*reduceRange/);
  t.same(int8KernelWarnings('static', { family: 'x86', isa: ['avx2'] }, { activationType: 'uint8', reduceRange: true }), []);
  t.same(int8KernelWarnings('static', { family: 'x86', isa: ['avx2', 'vnni'] }), []);
  t.match(int8KernelWarnings('dynamic', {}).join(), /CPU features unknown/);
});
