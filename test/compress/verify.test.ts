import t from 'tap';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel } from '../../src/onnx/model.js';
import { verifyAgainst } from '../../src/compress/verify.js';
import type { DataSource } from '../../src/measure/datasets/source.js';

/** y = x (+ 1 in the "compressed" one): the two agree in direction exactly where x is not all zero. */
function model(plusOne: boolean) {
  const b = new GraphBuilder('v');
  const x = b.input('x', DT.FLOAT, ['N', 4]);
  if (plusOne) b.node('Add', [x, b.initializer('one', DT.FLOAT, [1], Float32Array.of(1))], { outputs: ['y'] });
  else b.node('Identity', [x], { outputs: ['y'] });
  b.output('y', DT.FLOAT, ['N', 4]);
  return buildModel(b.graph);
}

/** 20 examples: the first 5 all zeros (the ones that "calibrated"), the rest all ones; batches of 16 straddle the 5. */
const rows: DataSource = {
  name: 'rows', count: 20,
  async *batches(o = {}) {
    const size = o.batchSize ?? 16, limit = Math.min(o.limit ?? 20, 20);
    for (let s = 0; s < limit; s += size) {
      const n = Math.min(size, limit - s);
      const data = new Float32Array(n * 4).map((_, i) => (s + Math.floor(i / 4) < 5 ? 0 : 1));
      yield { feeds: { x: { dtype: 'float32', dims: [n, 4], data } } };
    }
  },
};

t.test('verification on data compares exactly the examples after the skipped ones', async (t) => {
  const dir = t.testdir();
  const a = join(dir, 'a.onnx'), b = join(dir, 'b.onnx');
  const original = model(false);
  await saveModel(original, a);
  await saveModel(model(true), b);
  const held = await verifyAgainst(a, original, b, { data: rows, samples: 15, skip: 5 });
  t.same(held.on, { source: 'rows', examples: 15 });
  t.ok(Math.abs(held.fidelity['y'].cosine - 1) < 1e-9, 'only the all-ones rows: same direction');
  const all = await verifyAgainst(a, original, b, { data: rows, samples: 20 });
  t.equal(all.on.examples, 20);
  t.ok(all.fidelity['y'].cosine < 0.99, 'the zero rows count when not skipped');
  const tooFew = await verifyAgainst(a, original, b, { data: rows, samples: 8, skip: 40 });
  t.equal(tooFew.on.examples, 8, 'a set too small to skip is compared from its start');
  const gen = await verifyAgainst(a, original, b, { shapes: { x: [3, 4] } });
  t.same(gen.on, { source: 'generated inputs', examples: 3 });
});
