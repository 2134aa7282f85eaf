import t from 'tap';
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema } from 'onnx-buf';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import { nodeKey, overrideFor, withSkips } from '../../src/compress/quantize/overrides.js';
import { randomFloats } from '../helpers/ort.js';

const mm = (name: string, opType = 'MatMul') => create(NodeProtoSchema, { name, opType, output: [`${name || 'anon'}_out`] });

t.test('overrideFor: node entries win over op entries; skip and bits 32 keep fp32', async (t) => {
  const q = {
    overrides: { fc1: { bits: 8 }, fc2: { skip: true }, fc3: { bits: 32 }, anon_out: { skip: true }, fc5: {} },
    opOverrides: { MatMul: { bits: 4 }, Gemm: { skip: true } },
  };
  t.same(overrideFor(q, mm('fc1')), { skip: false, bits: 8, why: '8 bits by recipe.quantize.overrides["fc1"]' });
  t.same(overrideFor(q, mm('fc2')).skip, true);
  t.match(overrideFor(q, mm('fc2')).why, /kept fp32 by recipe.quantize.overrides\["fc2"\]/);
  t.same(overrideFor(q, mm('fc3')).skip, true, 'bits 32 means fp32');
  t.same(overrideFor(q, mm('fc4')), { skip: false, bits: 4, why: '4 bits by recipe.quantize.opOverrides["MatMul"]' });
  t.same(overrideFor(q, mm('fc4', 'Gemm')).skip, true, 'op entry applies to nodes without their own');
  t.same(overrideFor(q, mm('fc5', 'Gemm')), { skip: false }, 'an empty node entry still wins over the op entry');
  t.equal(nodeKey(mm('')), 'anon_out', 'an unnamed node is known by its first output');
  t.same(overrideFor(q, mm('')).skip, true);
  t.same(overrideFor({}, mm('x')), { skip: false }, 'no overrides, no change');
  t.same(overrideFor({ overrides: { toString: { skip: true } } }, mm('constructor')), { skip: false }, 'no prototype lookups');
});

t.test('withSkips adds skip entries without touching the original step', async (t) => {
  const q = { mode: 'dynamic' as const, overrides: { a: { bits: 8 } } };
  const r = withSkips(q, ['b', 'a']);
  t.same(r.overrides, { a: { skip: true }, b: { skip: true } });
  t.same(q.overrides, { a: { bits: 8 } });
});

/** x → MatMul fc1 → Relu → Gemm fc2 → y */
function mlp() {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', DT.FLOAT, ['N', 32]);
  b.initializer('w1', DT.FLOAT, [32, 16], randomFloats(512, 1));
  b.initializer('w2', DT.FLOAT, [16, 4], randomFloats(64, 2));
  const h = b.op('Relu', [b.op('MatMul', [x, 'w1'], undefined, 'fc1')]);
  b.node('Gemm', [h, 'w2'], { outputs: ['y'], name: 'fc2' });
  b.output('y', DT.FLOAT, ['N', 4]);
  return buildModel(b.graph);
}

t.test('dynamic int8 honours overrides and opOverrides', async (t) => {
  const byOp = await applyRecipe(mlp(), { v: 1, quantize: { mode: 'dynamic', opOverrides: { MatMul: { skip: true } } } });
  t.same(byOp.passes[0].changed.map((c) => c.node), ['fc2']);
  t.match(byOp.passes[0].skipped.find((s) => s.node === 'fc1')?.why, /kept fp32 by recipe.quantize.opOverrides\["MatMul"\]/);

  const nodeWins = await applyRecipe(mlp(), { v: 1, quantize: { mode: 'dynamic', opOverrides: { MatMul: { skip: true } }, overrides: { fc1: { bits: 8 } } } });
  t.same(nodeWins.passes[0].changed.map((c) => c.node).sort(), ['fc1', 'fc2']);

  const wrongBits = await applyRecipe(mlp(), { v: 1, quantize: { mode: 'dynamic', overrides: { fc2: { bits: 4 } } } });
  t.same(wrongBits.passes[0].changed.map((c) => c.node), ['fc1']);
  t.match(wrongBits.passes[0].skipped.find((s) => s.node === 'fc2')?.why, /int8 only: kept fp32/);
  t.equal(wrongBits.model.proto.graph!.node.filter((n) => n.opType === 'Gemm').length, 1, 'fc2 is still a float Gemm');
});
