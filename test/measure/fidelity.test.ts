import t from 'tap';
import { FidelityAccumulator, compareArrays, compareOutputs, summarizeFidelity } from '../../src/measure/fidelity.js';
import { toFloat16Array } from '../../src/onnx/half.js';
import type { PlainTensor } from '../../src/measure/plain-tensor.js';

const f32 = (dims: number[], xs: number[]): PlainTensor => ({ dtype: 'float32', dims, data: new Float32Array(xs) });
const close = (a: number, b: number, eps = 1e-9) => Math.abs(a - b) < eps;

t.test('identical outputs', async (t) => {
  const r = compareArrays([1, 0, 0, 0], [1, 0, 0, 0], 4);
  t.match(r, { cosine: 1, maxAbsError: 0, sqnrDb: Infinity, top1Agreement: 1, nonFiniteMismatches: 0, n: 4 });
});

t.test('hand-computed vectors', async (t) => {
  // ref (3,4), test (3,3): dot 21, |ref| 5, |test| √18; error (0,1)
  const a = compareArrays([3, 4], [3, 3]);
  t.ok(close(a.cosine, 21 / (5 * Math.sqrt(18))), `cosine ${a.cosine}`);
  t.equal(a.maxAbsError, 1);
  t.ok(close(a.sqnrDb, 10 * Math.log10(25)), `sqnr ${a.sqnrDb}`);
  t.equal(a.top1Agreement, undefined, 'no last dim given: no top-1');

  // 2 rows of 2: row 0 agrees (argmax 1), row 1 flips (1 vs 0); Σref² 30, Σerr² 2
  const b = compareOutputs({ y: f32([2, 2], [1, 2, 3, 4]) }, { y: f32([2, 2], [1, 2, 4, 3]) }).y;
  t.equal(b.top1Agreement, 0.5);
  t.ok(close(b.cosine, 29 / 30, 1e-7), `cosine ${b.cosine}`);
  t.ok(close(b.sqnrDb, 10 * Math.log10(15), 1e-6), `sqnr ${b.sqnrDb}`);
  t.equal(b.maxAbsError, 1);

  const c = compareArrays([1, 0], [-1, 0], 2);
  t.equal(c.cosine, -1);
  t.ok(close(c.sqnrDb, 10 * Math.log10(1 / 4)), `sqnr ${c.sqnrDb}`);
  t.equal(c.maxAbsError, 2);
  t.equal(c.top1Agreement, 0, 'argmax 0 vs argmax 1');
});

t.test('zeros, last dim 1, and non-finite values', async (t) => {
  t.match(compareArrays([0, 0], [0, 0]), { cosine: 1, sqnrDb: Infinity, maxAbsError: 0 });
  t.match(compareArrays([0, 0], [1, 0]), { cosine: 0, sqnrDb: -Infinity, maxAbsError: 1 });
  t.equal(compareOutputs({ p: f32([3, 1], [1, 2, 3]) }, { p: f32([3, 1], [1, 2, 3]) }).p.top1Agreement, undefined, 'last dim 1: no top-1');
  t.match(compareArrays([NaN, 1], [NaN, 1]), { cosine: 1, nonFiniteMismatches: 0, sqnrDb: Infinity }, 'NaN in both places agrees');
  t.match(compareArrays([1, 2], [NaN, 2]), { cosine: 0, maxAbsError: Infinity, sqnrDb: -Infinity, nonFiniteMismatches: 1 });
  t.match(compareArrays([Infinity], [-Infinity]), { nonFiniteMismatches: 1 });
});

t.test('dtypes may differ: float16 and int64 against float32', async (t) => {
  const half: PlainTensor = { dtype: 'float16', dims: [2], data: toFloat16Array(new Float32Array([0.5, -2])) };
  t.match(compareOutputs({ y: f32([2], [0.5, -2]) }, { y: half }).y, { cosine: 1, maxAbsError: 0 });
  const ints: PlainTensor = { dtype: 'int64', dims: [1, 3], data: new BigInt64Array([1n, 5n, 2n]) };
  t.match(compareOutputs({ y: f32([1, 3], [1, 5, 3]) }, { y: ints }).y, { maxAbsError: 1, top1Agreement: 1 });
});

t.test('missing and reshaped outputs are errors naming the output', async (t) => {
  t.throws(() => compareOutputs({ y: f32([1], [1]) }, { z: f32([1], [1]) }), { code: 'COMPRESS_FIDELITY', message: /output "y" is missing .*it has: z/ });
  t.throws(() => compareOutputs({ y: f32([2, 1], [1, 2]) }, { y: f32([1, 2], [1, 2]) }), { code: 'COMPRESS_FIDELITY', message: /output "y".*\[2,1\].*\[1,2\]/ });
  t.throws(() => compareArrays([1, 2], [1]), RangeError);
});

t.test('summarizeFidelity takes the worst output', async (t) => {
  const per = compareOutputs(
    { a: f32([1, 2], [3, 4]), b: f32([2, 2], [1, 2, 3, 4]), c: f32([2, 1], [1, 1]) },
    { a: f32([1, 2], [3, 3.5]), b: f32([2, 2], [1, 2, 4, 3]), c: f32([2, 1], [1, 1]) },
  );
  const q = summarizeFidelity(per);
  t.equal(q.cosine, Math.min(per.a.cosine, per.b.cosine));
  t.equal(q.cosine, per.b.cosine, 'b (29/30) is below a (0.998)');
  t.equal(q.sqnrDb, per.b.sqnrDb, 'b has the lower SQNR (11.8 dB vs 20 dB)');
  t.equal(q.maxAbsError, 1);
  t.equal(q.top1Agreement, 0.5, 'b disagrees on one row of two; a agrees');
  t.equal(q.accuracy, undefined);
  t.same(summarizeFidelity({}), {});
  t.notOk('top1Agreement' in summarizeFidelity({ c: per.c }), 'no output with a last dim > 1: no top-1');
});

t.test('FidelityAccumulator over batches equals compareArrays over the whole', async (t) => {
  const ref = Float32Array.from({ length: 60 }, (_, i) => Math.sin(i) * 3);
  const test = ref.map((v, i) => v + (i % 7 === 0 ? 0.5 : -0.01));
  const whole = compareArrays(ref, test, 6);
  const acc = new FidelityAccumulator();
  acc.add(ref.subarray(0, 18), test.subarray(0, 18), 6);
  acc.add(ref.subarray(18, 42), test.subarray(18, 42), 6);
  acc.add(ref.subarray(42), test.subarray(42), 6);
  const streamed = acc.result();
  t.equal(streamed.n, 60);
  t.equal(streamed.maxAbsError, whole.maxAbsError);
  t.equal(streamed.top1Agreement, whole.top1Agreement);
  t.ok(Math.abs(streamed.cosine - whole.cosine) < 1e-12 && Math.abs(streamed.sqnrDb - whole.sqnrDb) < 1e-9, `${streamed.cosine} vs ${whole.cosine}`);
  const mixed = new FidelityAccumulator();
  mixed.add([1, 2], [1, 2], 2);
  mixed.add([3], [3], 1);
  t.equal(mixed.result().top1Agreement, undefined, 'a batch without rows makes top-1 agreement unknown, not partial');
});
