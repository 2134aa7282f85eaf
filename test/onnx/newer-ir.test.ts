// DESIGN.md §6: a model from a newer IR (opset 21, int4/uint4, float16, bfloat16, fields we don't know) must
// survive load → save byte for byte and still run in ONNX Runtime.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { WireType } from '@bufbuild/protobuf/wire';
import { StringStringEntryProtoSchema } from 'onnx-buf';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { float32ToBfloat16Bits, toFloat16Array } from '../../src/onnx/half.js';
import { loadModel, modelBytes, parseModel, saveModel } from '../../src/onnx/model.js';
import { readTensor, toFloat32 } from '../../src/onnx/tensor.js';
import { allTensors } from '../../src/onnx/walk.js';
import { diffRuns, f32, runOrt, sameBytes } from './helpers.js';

const Q = Int8Array.from([-8, -3, 0, 7, 1, 2, -1, 5, 3, -7, 6, 4]); // int4 weight [4,3]
const ZP = 1;
const SCALE = 0.5;
const U = Uint8Array.from([15, 0, 9]); // uint4 bias [3]
const U_SCALE = 0.25;
const H = [0.25, -1.5, 3]; // float16 bias, exactly representable
const BF = [0.5, 2, -0.125]; // bfloat16 bias, exactly representable

function build() {
  const g = new GraphBuilder('newer');
  g.input('x', DT.FLOAT, [2, 4]);
  g.initializer('Wq', DT.INT4, [4, 3], Q);
  g.initializer('Wscale', DT.FLOAT, [], Float32Array.from([SCALE]));
  g.initializer('Wzp', DT.INT4, [], Int8Array.from([ZP]));
  g.initializer('Uq', DT.UINT4, [3], U);
  g.initializer('Uscale', DT.FLOAT, [], Float32Array.from([U_SCALE]));
  g.initializer('H', DT.FLOAT16, [3], toFloat16Array(Float32Array.from(H)));
  g.initializer('BF', DT.BFLOAT16, [3], Uint16Array.from(BF.map(float32ToBfloat16Bits)));
  const w = g.op('DequantizeLinear', ['Wq', 'Wscale', 'Wzp']);
  const u = g.op('DequantizeLinear', ['Uq', 'Uscale']);
  const mm = g.op('MatMul', ['x', w]);
  const a = g.op('Add', [mm, g.op('Cast', ['H'], { to: DT.FLOAT })]);
  const b = g.op('Add', [a, g.op('Cast', ['BF'], { to: DT.FLOAT })]);
  g.node('Add', [b, u], { outputs: ['y'] });
  g.output('y', DT.FLOAT, [2, 4 - 1]);
  const m = buildModel(g.graph, { '': 21 }, 10);
  m.proto.metadataProps.push(create(StringStringEntryProtoSchema, { key: 'edgetune.test', value: 'newer-ir' }));
  m.proto.docString = 'int4 + float16 + bfloat16 at opset 21';
  // A field from an IR newer than our schema: field 99 of GraphProto and of ModelProto, varint 42.
  const unknown = [{ no: 99, wireType: WireType.Varint, data: Uint8Array.from([42]) }];
  m.proto.graph!.$unknown = unknown;
  m.proto.$unknown = unknown;
  return m;
}

/** The model's output computed here, in float64, from the values we put in. */
function expected(x: Float32Array): number[] {
  const y: number[] = [];
  for (let r = 0; r < 2; r++) {
    for (let c = 0; c < 3; c++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += x[r * 4 + k] * (Q[k * 3 + c] - ZP) * SCALE;
      y.push(s + H[c] + BF[c] + U[c] * U_SCALE);
    }
  }
  return y;
}

t.test('opset-21 model with int4, uint4, float16 and bfloat16 initializers round-trips and runs', async (t) => {
  const m = build();
  const bytes = modelBytes(m);
  const parsed = parseModel(bytes, 'newer.onnx');
  t.ok(sameBytes(modelBytes(parsed), bytes), 'parse → serialise is byte-identical');
  t.equal(parsed.proto.irVersion, 10n);
  t.same(parsed.proto.opsetImport.map((o) => [o.domain, o.version]), [['', 21n]]);
  t.same(parsed.proto.$unknown?.map((f) => [f.no, [...f.data]]), [[99, [42]]], 'unknown model field kept');
  t.same(parsed.proto.graph!.$unknown?.map((f) => [f.no, [...f.data]]), [[99, [42]]], 'unknown graph field kept');
  t.same(parsed.proto.metadataProps.map((p) => [p.key, p.value]), [['edgetune.test', 'newer-ir']]);

  const file = join(t.testdir(), 'newer.onnx');
  await saveModel(parsed, file);
  t.ok(sameBytes(readFileSync(file), bytes), 'the saved file holds the same bytes');
  const loaded = await loadModel(file);
  t.ok(sameBytes(modelBytes(loaded), bytes), 'loaded from disk → serialise is byte-identical');

  const byName = Object.fromEntries(allTensors(loaded.proto).map((x) => [x.name, readTensor(x)]));
  t.same([...byName.Wq.data], [...Q], 'int4 weight values intact');
  t.equal(byName.Wq.data.constructor, Int8Array);
  t.equal(loaded.proto.graph!.initializer.find((x) => x.name === 'Wq')!.rawData.length, 6, '12 int4 values pack into 6 bytes');
  t.same([...byName.Wzp.data], [ZP], 'int4 scalar zero point');
  t.same([...byName.Uq.data], [...U], 'uint4 values intact');
  t.same([...toFloat32(byName.H)], H, 'float16 values intact');
  t.same([...toFloat32(byName.BF)], BF, 'bfloat16 values intact');

  const x = f32([2, 4], 21);
  const fromMemory = await runOrt(bytes, { x });
  const fromFile = await runOrt(file, { x });
  t.equal(diffRuns(fromMemory, fromFile), undefined, 'ORT gives bit-identical outputs before and after');
  // ORT fuses int4 DQ + MatMul into MatMulNBits, which may quantise activations; check the plain semantics unfused.
  const plain = await runOrt(file, { x }, { graphOptimizationLevel: 'disabled' });
  const y = plain.y.data as Float32Array;
  const want = expected(x.data as Float32Array);
  t.same(plain.y.dims, [2, 3]);
  t.ok(want.every((v, i) => Math.abs(v - y[i]) < 1e-5), `ORT computes int4 DequantizeLinear + MatMul as expected: [${[...y].map((v) => v.toFixed(5))}] vs [${want.map((v) => v.toFixed(5))}]`);
  const fused = fromFile.y.data as Float32Array;
  t.ok(want.every((v, i) => Math.abs(v - fused[i]) < 0.05), 'the optimised (fused) run is close to it');
});
