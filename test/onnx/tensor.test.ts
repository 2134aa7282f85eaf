// Tensors as typed arrays: every dtype, raw_data and the typed fields other exporters write, 4-bit packing,
// half-precision conversions, and external data files.
import t, { type Test } from 'tap';
import { mkdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { TensorProtoSchema, TensorProto_DataLocation, type TensorProto } from 'onnx-buf';
import { DT, rawByteLength, type TypedArray } from '../../src/onnx/dtype.js';
import { externalEntry, makeTensor, pack4, readTensor, tensorRawBytes, toFloat32 } from '../../src/onnx/tensor.js';
import {
  bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits, fromFloat16Array, toFloat16Array,
} from '../../src/onnx/half.js';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { loadModel, modelBytes, saveModel } from '../../src/onnx/model.js';
import { allTensors } from '../../src/onnx/walk.js';
import { ModelError } from '../../src/errors.js';
import { diffRuns, f32, runOrt, sameBytes } from './helpers.js';

/** Asserts `fn` throws a ModelError whose message names `who` and matches `re`. */
function throwsModelError(t: Test, fn: () => unknown, who: string, re: RegExp, what: string): void {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  t.ok(err instanceof ModelError && err.message.includes(who) && re.test(err.message), `${what}${err instanceof Error ? ` (${err.name}: ${err.message})` : ': nothing thrown'}`);
}

/** Through protobuf bytes and back, as a tensor read from a file would be. */
function viaBytes(tp: TensorProto): TensorProto {
  return fromBinary(TensorProtoSchema, toBinary(TensorProtoSchema, tp));
}

const cases: Array<{ dt: DT; data: TypedArray }> = [
  { dt: DT.FLOAT, data: Float32Array.from([1.5, -2, 3.25e-3, -0, NaN, Infinity]) },
  { dt: DT.DOUBLE, data: Float64Array.from([1e300, -0.1, 5e-324]) },
  { dt: DT.FLOAT16, data: Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7e00]) },
  { dt: DT.BFLOAT16, data: Uint16Array.from([0x3f80, 0xc000, 0x7f80]) },
  { dt: DT.INT8, data: Int8Array.from([-128, 127, 0, -1]) },
  { dt: DT.UINT8, data: Uint8Array.from([0, 255, 7]) },
  { dt: DT.INT16, data: Int16Array.from([-32768, 32767, -2]) },
  { dt: DT.UINT16, data: Uint16Array.from([65535, 1]) },
  { dt: DT.INT32, data: Int32Array.from([-2147483648, 2147483647, 0]) },
  { dt: DT.UINT32, data: Uint32Array.from([4294967295, 0, 12]) },
  { dt: DT.INT64, data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, -1n]) },
  { dt: DT.UINT64, data: BigUint64Array.from([2n ** 64n - 1n, 0n]) },
  { dt: DT.BOOL, data: Uint8Array.from([1, 0, 1]) },
  { dt: DT.INT4, data: Int8Array.from([-8, 7, -1, 0, 3]) },
  { dt: DT.UINT4, data: Uint8Array.from([15, 0, 9]) },
  { dt: DT.FLOAT8E4M3FN, data: Uint8Array.from([0x38, 0xff, 0]) },
];

t.test('every dtype survives makeTensor → protobuf bytes → readTensor', async (t) => {
  for (const { dt, data } of cases) {
    const tp = viaBytes(makeTensor(`t${dt}`, dt, [data.length], data));
    t.equal(tp.rawData.length, rawByteLength(dt, data.length), `${DT[dt]} raw_data has ${rawByteLength(dt, data.length)} bytes`);
    const back = readTensor(tp);
    t.equal(back.dtype, dt);
    t.same(back.dims, [data.length]);
    t.equal(back.data.constructor, data.constructor, `${DT[dt]} reads as ${data.constructor.name}`);
    t.ok(sameBytes(back.data, data), `${DT[dt]} values are bit-identical`);
  }
});

t.test('raw_data is little-endian and 4-bit values pack low nibble first', async (t) => {
  t.same([...makeTensor('a', DT.INT16, [1], Int16Array.from([-2])).rawData], [0xfe, 0xff]);
  t.same([...makeTensor('b', DT.FLOAT, [1], Float32Array.from([1])).rawData], [0, 0, 0x80, 0x3f]);
  t.same([...makeTensor('c', DT.INT4, [3], Int8Array.from([1, -1, 7])).rawData], [0xf1, 0x07], 'odd count: last byte half-filled');
  t.same([...makeTensor('d', DT.UINT4, [3], Uint8Array.from([0xa, 0xb, 0xc])).rawData], [0xba, 0x0c]);
  t.same([...pack4([1])], [0x01]);
  t.same([...readTensor(create(TensorProtoSchema, { name: 'u', dataType: DT.UINT4, dims: [3n], rawData: Uint8Array.from([0xba, 0xfc]) })).data], [0xa, 0xb, 0xc],
    'the unused high nibble of an odd count is ignored');
  t.same([...readTensor(create(TensorProtoSchema, { name: 's', dataType: DT.INT4, dims: [2, 2].map(BigInt), rawData: Uint8Array.from([0x78, 0x9f]) })).data], [-8, 7, -1, -7]);
});

t.test('raw_data at an unaligned offset (as protobuf decoding hands it out) reads correctly', async (t) => {
  const buf = new Uint8Array(13);
  buf.set(new Uint8Array(Float32Array.from([1, -2, 0.5]).buffer), 1);
  const tp = create(TensorProtoSchema, { name: 'odd', dataType: DT.FLOAT, dims: [3n], rawData: buf.subarray(1, 13) });
  t.same([...readTensor(tp).data], [1, -2, 0.5]);
  const big = new Uint8Array(17);
  big.set(new Uint8Array(BigInt64Array.from([-3n, 2n ** 40n]).buffer), 1);
  t.same([...readTensor(create(TensorProtoSchema, { name: 'i64', dataType: DT.INT64, dims: [2n], rawData: big.subarray(1) })).data], [-3n, 2n ** 40n]);
});

t.test('typed fields as other exporters write them', async (t) => {
  const typed = (dataType: DT, dims: number[], fields: MessageInitShape<typeof TensorProtoSchema>) =>
    readTensor(viaBytes(create(TensorProtoSchema, { name: `f${dataType}`, dataType, dims: dims.map(BigInt), ...fields })));
  t.same([...typed(DT.FLOAT, [2], { floatData: [1.5, -2] }).data], [1.5, -2], 'float_data');
  const h = typed(DT.FLOAT16, [2], { int32Data: [0x3c00, 0xc000] });
  t.ok(h.data instanceof Uint16Array, 'float16 in int32_data gives raw bits');
  t.same([...toFloat32(h)], [1, -2], 'float16 bits in int32_data');
  t.same([...toFloat32(typed(DT.BFLOAT16, [1], { int32Data: [0x3f80] }))], [1], 'bfloat16 bits in int32_data');
  const i8 = typed(DT.INT8, [3], { int32Data: [-5, 100, -128] });
  t.ok(i8.data instanceof Int8Array);
  t.same([...i8.data], [-5, 100, -128], 'int8 in int32_data keeps its sign');
  t.same([...typed(DT.UINT8, [1], { int32Data: [200] }).data], [200]);
  t.same([...typed(DT.INT16, [1], { int32Data: [-300] }).data], [-300]);
  t.same([...typed(DT.BOOL, [3], { int32Data: [1, 0, 1] }).data], [1, 0, 1], 'bool in int32_data');
  t.same([...typed(DT.INT32, [2], { int32Data: [-7, 2147483647] }).data], [-7, 2147483647]);
  t.same([...typed(DT.INT64, [2], { int64Data: [-(2n ** 40n), 5n] }).data], [-(2n ** 40n), 5n], 'int64_data');
  t.same([...typed(DT.DOUBLE, [2], { doubleData: [0.1, -1e300] }).data], [0.1, -1e300], 'double_data');
  t.same([...typed(DT.UINT32, [1], { uint64Data: [4000000000n] }).data], [4000000000], 'uint32 in uint64_data');
  t.same([...typed(DT.UINT64, [1], { uint64Data: [2n ** 64n - 1n] }).data], [2n ** 64n - 1n], 'uint64_data');
  t.same([...typed(DT.INT4, [3], { int32Data: [0xf1, 0x07] }).data], [1, -1, 7], 'int4: one packed byte per int32_data entry');
  t.same([...typed(DT.FLOAT, [], { floatData: [4] }).data], [4], 'a scalar has one element');
  t.same([...typed(DT.FLOAT, [0, 3], {}).data], [], 'an empty tensor has none');
});

t.test('malformed tensors give ModelError naming the tensor', async (t) => {
  const bad: Array<[string, MessageInitShape<typeof TensorProtoSchema>, RegExp]> = [
    ['short raw', { dataType: DT.FLOAT, dims: [4n], rawData: new Uint8Array(8) }, /holds 8 bytes.*needs 16/],
    ['few floats', { dataType: DT.FLOAT, dims: [3n], floatData: [1, 2] }, /2 values in floatData.*needs 3/],
    ['no data', { dataType: DT.INT64, dims: [2n] }, /0 values in int64Data/],
    ['few int4', { dataType: DT.INT4, dims: [5n], int32Data: [1, 2] }, /needs 3/],
    ['negative dim', { dataType: DT.FLOAT, dims: [-2n], floatData: [] }, /impossible shape/],
    ['huge dims', { dataType: DT.FLOAT, dims: [2n ** 40n, 2n ** 40n], floatData: [1] }, /impossible shape/],
    ['huge typed', { dataType: DT.FLOAT, dims: [2n ** 33n], floatData: [1] }, /needs 8589934592/],
    ['strings', { dataType: DT.STRING, dims: [1n], stringData: [new Uint8Array([65])] }, /cannot read as numbers/],
  ];
  for (const [name, fields, msg] of bad) {
    throwsModelError(t, () => readTensor(create(TensorProtoSchema, { name, ...fields })), `"${name}"`, msg, name);
  }
  t.throws(() => makeTensor('n', DT.FLOAT, [2, 2], new Float32Array(3)), RangeError, 'makeTensor checks the count');
  t.throws(() => makeTensor('s', DT.STRING, [1], new Uint8Array(1)), RangeError, 'makeTensor refuses strings');
});

t.test('float16 conversions are exact, with round-to-nearest-even', async (t) => {
  const toHalf: Array<[number, number, string]> = [
    [1, 0x3c00, 'one'], [-2, 0xc000, 'minus two'], [65504, 0x7bff, 'largest finite'],
    [65519, 0x7bff, 'just under the overflow midpoint'], [65520, 0x7c00, 'the midpoint rounds to inf'],
    [0, 0x0000, 'zero'], [-0, 0x8000, 'negative zero'],
    [2 ** -14, 0x0400, 'smallest normal'], [1023 * 2 ** -24, 0x03ff, 'largest subnormal'], [2 ** -24, 0x0001, 'smallest subnormal'],
    [2 ** -25, 0x0000, 'half the smallest subnormal ties to even (zero)'], [3 * 2 ** -25, 0x0002, '1.5 ulp ties to even (2)'],
    [1.5 * 2 ** -25 * 1.01, 0x0001, 'just over half rounds up'], [2 ** -26, 0x0000, 'underflow'],
    [Infinity, 0x7c00, 'inf'], [-Infinity, 0xfc00, '-inf'],
    [1 + 2 ** -11, 0x3c00, 'tie between 1 and next: to even (down)'], [1 + 3 * 2 ** -11, 0x3c02, 'tie: to even (up)'],
    [1 + 2 ** -11 + 2 ** -20, 0x3c01, 'just over a tie rounds up'], [0.1, 0x2e66, '0.1'], [-65504, 0xfbff, 'most negative'],
  ];
  for (const [v, bits, what] of toHalf) t.equal(float32ToFloat16Bits(v), bits, `${what}: ${v} → 0x${bits.toString(16)}`);
  const nan = float32ToFloat16Bits(NaN);
  t.ok((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0, 'NaN stays NaN');
  const fromHalf: Array<[number, number]> = [
    [0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14],
    [0x7c00, Infinity], [0xfc00, -Infinity], [0x3555, 0.333251953125],
  ];
  for (const [bits, v] of fromHalf) t.equal(float16BitsToFloat32(bits), v, `0x${bits.toString(16)} → ${v}`);
  t.ok(Object.is(float16BitsToFloat32(0x8000), -0), '0x8000 is -0');
  t.ok(Number.isNaN(float16BitsToFloat32(0x7e00)), '0x7e00 is NaN');
  // every finite half survives half → float → half
  let bad = 0;
  for (let h = 0; h < 0x10000; h++) if ((h & 0x7c00) !== 0x7c00 && float32ToFloat16Bits(float16BitsToFloat32(h)) !== h) bad++;
  t.equal(bad, 0, 'all 63488 finite float16 values round-trip exactly');
  t.same([...fromFloat16Array(toFloat16Array(Float32Array.from([1, -2, 0.5])))], [1, -2, 0.5]);
});

t.test('bfloat16 conversions are exact, with round-to-nearest-even', async (t) => {
  const cases: Array<[number, number, string]> = [
    [1, 0x3f80, 'one'], [-2, 0xc000, 'minus two'], [1 + 2 ** -8, 0x3f80, 'tie to even (down)'],
    [1 + 3 * 2 ** -8, 0x3f82, 'tie to even (up)'], [1 + 2 ** -8 + 2 ** -20, 0x3f81, 'just over a tie'],
    [Infinity, 0x7f80, 'inf'], [-Infinity, 0xff80, '-inf'], [3.4028234663852886e38, 0x7f80, 'float32 max rounds to inf'],
    [2 ** -133, 0x0001, 'a float32 subnormal stays subnormal'], [-0, 0x8000, 'negative zero'],
  ];
  for (const [v, bits, what] of cases) t.equal(float32ToBfloat16Bits(v), bits, `${what}: 0x${bits.toString(16)}`);
  const nan = float32ToBfloat16Bits(NaN);
  t.ok((nan & 0x7f80) === 0x7f80 && (nan & 0x7f) !== 0, 'NaN stays NaN');
  t.equal(bfloat16BitsToFloat32(0x3f80), 1);
  t.equal(bfloat16BitsToFloat32(0xc049), -3.140625);
  t.equal(bfloat16BitsToFloat32(0xff80), -Infinity);
});

/** y = x * W + Cast(B): W float32 and B float16, both stored in weights.bin beside the model. */
async function externalModel(dir: string): Promise<{ file: string; w: Float32Array; b: Uint16Array }> {
  mkdirSync(dir, { recursive: true });
  const w = Float32Array.from([1, -2, 3, 0.5, 4, -1]);
  const b = toFloat16Array(Float32Array.from([0.25, -1, 2]));
  const g = new GraphBuilder('ext');
  g.input('x', DT.FLOAT, [2, 3]);
  g.initializer('W', DT.FLOAT, [2, 3], w);
  g.initializer('B', DT.FLOAT16, [3], b);
  const bf = g.op('Cast', ['B'], { to: DT.FLOAT });
  g.node('Add', [g.op('Mul', ['x', 'W']), bf], { outputs: ['y'] });
  g.output('y', DT.FLOAT, [2, 3]);
  const m = buildModel(g.graph);
  const [W, B] = m.proto.graph!.initializer;
  // B first, at offset 0; W after a gap, to prove offsets are honoured.
  const data = new Uint8Array(6 + 10 + 24);
  data.set(B.rawData, 0);
  data.set(W.rawData, 16);
  const ext = (tp: TensorProto, offset: number, length: number) => {
    tp.rawData = new Uint8Array(0);
    tp.dataLocation = TensorProto_DataLocation.EXTERNAL;
    tp.externalData = [externalEntry('location', 'weights.bin'), externalEntry('offset', String(offset)), externalEntry('length', String(length))];
  };
  ext(B, 0, 6);
  ext(W, 16, 24);
  writeFileSync(join(dir, 'weights.bin'), data);
  const file = join(dir, 'model.onnx');
  writeFileSync(file, modelBytes(m));
  return { file, w, b };
}

t.test('external data: loads, saves into one data file, reloads from another folder, runs in ORT', async (t) => {
  const root = t.testdir();
  const { file, w, b } = await externalModel(join(root, 'a'));
  const m = await loadModel(file);
  const [W, B] = m.proto.graph!.initializer;
  t.equal(W.rawData.length, 0, 'W has no inline bytes');
  t.same([...readTensor(W, m.dir).data], [...w], 'W reads from weights.bin at offset 16');
  t.same([...readTensor(B, m.dir).data], [...b], 'B reads from weights.bin at offset 0');
  const x = () => ({ x: f32([2, 3], 1) });
  const before = await runOrt(file, x());

  mkdirSync(join(root, 'b'));
  await saveModel(m, join(root, 'b', 'saved.onnx'));
  t.same(readFileSync(join(root, 'b', 'saved.onnx.data')).length, 30, 'both tensors packed into saved.onnx.data');
  t.equal(m.proto.graph!.initializer[0].externalData[0].value, 'weights.bin', 'saving does not change the in-memory model');
  renameSync(join(root, 'b'), join(root, 'c'));
  rmSync(join(root, 'a'), { recursive: true });
  const moved = await loadModel(join(root, 'c', 'saved.onnx'));
  const tensors = allTensors(moved.proto);
  t.same(tensors.map((x) => x.externalData.find((e) => e.key === 'location')?.value), ['saved.onnx.data', 'saved.onnx.data']);
  t.same([...readTensor(tensors[0], moved.dir).data], [...w], 'W reads back from the moved folder');
  t.same([...readTensor(tensors[1], moved.dir).data], [...b], 'B reads back from the moved folder');
  t.equal(diffRuns(before, await runOrt(join(root, 'c', 'saved.onnx'), x())), undefined, 'ORT runs the moved copy with the same outputs');
});

t.test('external data: missing or truncated files and escaping locations are refused with names', async (t) => {
  const dir = t.testdir();
  const { file } = await externalModel(dir);
  const m = await loadModel(file);
  const W = m.proto.graph!.initializer[0];

  truncateSync(join(dir, 'weights.bin'), 30);
  throwsModelError(t, () => readTensor(W, m.dir), '"W"', /weights\.bin is truncated \(wanted 24 bytes at offset 16/, 'truncated data file');
  rmSync(join(dir, 'weights.bin'));
  throwsModelError(t, () => readTensor(W, m.dir), '"W"', /cannot open external data file .*weights\.bin/, 'missing data file');
  await t.rejects(saveModel(m, join(dir, 'copy.onnx')), { code: 'EXTERNAL_DATA' }, 'saving a model whose data is gone fails cleanly');
  throwsModelError(t, () => readTensor(W), '"W"', /folder is unknown/, 'a model parsed from bytes has no folder');

  for (const location of ['/etc/passwd', '../weights.bin', 'sub/../../weights.bin', '..']) {
    W.externalData[0] = externalEntry('location', location);
    throwsModelError(t, () => tensorRawBytes(W, dir), '"W"', /must be a relative path inside the model's folder/, `location "${location}" is refused`);
  }
  writeFileSync(join(dir, '..weights.bin'), new Uint8Array(40));
  W.externalData[0] = externalEntry('location', '..weights.bin');
  t.equal(tensorRawBytes(W, dir)?.length, 24, 'a file name that merely starts with ".." is fine');
  for (const [key, value] of [['offset', '-4'], ['offset', 'abc'], ['length', '1e400']]) {
    W.externalData = [externalEntry('location', '..weights.bin'), externalEntry(key, value)];
    throwsModelError(t, () => tensorRawBytes(W, dir), '"W"', new RegExp(`${key} "${value}" is not a non-negative integer`), `${key} ${value} is refused`);
  }
  W.externalData = [externalEntry('location', '..weights.bin'), externalEntry('length', String(2 ** 40))];
  throwsModelError(t, () => tensorRawBytes(W, dir), '"W"', /truncated \(wanted 1099511627776 bytes/, 'a huge length is checked against the file size before allocating');
});
