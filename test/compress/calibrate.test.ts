import t from 'tap';
import { BINS, TensorStats } from '../../src/compress/calibrate/histogram.js';
import { entropyThreshold, rangeOf } from '../../src/compress/calibrate/ranges.js';
import { collectStats, planGroups } from '../../src/compress/calibrate/collect.js';
import { calibrate } from '../../src/compress/calibrate/index.js';
import { activationParams, quantizeBias, quantizeWeights } from '../../src/compress/quantize/qdq-params.js';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import type { DataSource } from '../../src/measure/datasets/source.js';
import { randomFloats, seededRandom } from '../helpers/ort.js';

function normals(n: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - r(), v = r();
    const m = Math.sqrt(-2 * Math.log(u));
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

t.test('histogram: growing the range re-bins exactly and keeps every count', async (t) => {
  const s = new TensorStats(true);
  s.add(Float32Array.of(0, 0.1, -0.2, 0.3));
  t.equal(s.range, 0.5, 'first range: the next power of two above 0.3');
  const before = s.absHistogram().reduce((a, b) => a + b, 0);
  s.add(Float32Array.of(3.5, -7.9));
  t.equal(s.range, 8);
  const h = s.absHistogram();
  t.equal(h.reduce((a, b) => a + b, 0), before + 2, 'no value lost when the range grew 16x');
  t.equal(h[Math.floor(0.3 * BINS / 8)] >= 1, true, '0.3 lands in its new bin');
  t.equal(s.min, Math.fround(-7.9));
  t.equal(s.max, Math.fround(3.5));
  const z = new TensorStats(true);
  z.add(new Float32Array(5));
  z.add(Float32Array.of(1));
  t.equal(z.absHistogram()[0], 5, 'zeros seen before any range are kept');
});

t.test('masks and non-finite values are counted apart, never stretch the range', async (t) => {
  const s = new TensorStats(true);
  s.add(Float32Array.of(1, -2, -3.4e38, 3.4e38, NaN, Infinity, 0.5));
  t.equal(s.masked, 4);
  t.equal(s.count, 3);
  t.same([s.min, s.max], [-2, 1]);
  t.equal(s.range, 2);
  t.same(rangeOf(s, 'entropy'), { min: -2, max: 1 }, 'entropy over the finite values is finite');
});

t.test('the fast pass (no masks) and the masked pass count alike; a snapshot restores every statistic', async (t) => {
  const s = new TensorStats(true);
  s.add(Float32Array.of(0, 0, NaN, 2, -1));
  t.same([s.min, s.max, s.count, s.masked, s.zeros], [-1, 2, 4, 1, 2], 'zeros and NaN counted on the fast pass');
  const m = new TensorStats(true);
  m.add(Float32Array.of(0, 0, NaN, 2, -1, 3.4e38));
  t.same([m.min, m.max, m.count, m.masked, m.zeros], [-1, 2, 4, 2, 2], 'the same values plus a mask, on the slow pass');
  t.same(Array.from(m.absHistogram()), Array.from(s.absHistogram()), 'same histogram either way');
  const back = TensorStats.restore(structuredClone(s.snapshot()));
  for (const x of [s, back]) x.add(Float32Array.of(5, -0.25));
  t.same([back.min, back.max, back.count, back.masked, back.zeros, back.range], [s.min, s.max, s.count, s.masked, s.zeros, s.range]);
  t.same(Array.from(back.absHistogram(true)), Array.from(s.absHistogram(true)), 'restored stats go on growing like the original');
  const mm = TensorStats.restore(new TensorStats(false).snapshot());
  t.equal(mm.pos, undefined, 'a minmax snapshot carries no histogram');
});

t.test('minmax, percentile and entropy on a long-tailed tensor', async (t) => {
  const s = new TensorStats(true);
  const x = normals(200_000, 3);
  x[17] = 60; // one outlier
  s.add(x);
  const mm = rangeOf(s, 'minmax')!;
  t.equal(mm.max, 60);
  const p = rangeOf(s, 'percentile', { percentile: 99.99 })!;
  t.ok(p.max > 3 && p.max < 6, `percentile max ${p.max} cuts the outlier, keeps the bulk`);
  t.ok(p.min < -3 && p.min > -6, `percentile min ${p.min}`);
  const e = rangeOf(s, 'entropy')!;
  t.ok(e.max < 20 && e.max > 2, `entropy threshold ${e.max} well below the outlier`);
  t.ok(Math.abs(e.min + e.max) < 1e-9 || e.min === s.min, 'symmetric threshold on a symmetric tensor');
  const relu = new TensorStats(true);
  relu.add(x.map((v) => Math.max(0, v)));
  t.equal(rangeOf(relu, 'entropy')!.min, 0, 'a non-negative tensor keeps min 0');
  // Half the values are exact zeros: left in, their spike pulls the threshold down to ~1/3 of the range.
  t.equal(relu.zeros, x.filter((v) => v <= 0).length, 'exact zeros are counted');
  const keep = rangeOf(relu, 'entropy')!.max;
  t.ok(keep > 2.5, `ReLU entropy threshold ${keep} is not dragged down by the zeros`);
  // A histogram narrower than the levels needs no clipping.
  t.equal(entropyThreshold(Float64Array.from({ length: 64 }, () => 1), 0.5, 128), 32);
});

t.test('activation parameters: zero is exact, ranges map onto the 8-bit grid', async (t) => {
  for (const type of ['int8', 'uint8'] as const) {
    for (const r of [{ min: -1, max: 3 }, { min: 0, max: 6 }, { min: 0.5, max: 2 }, { min: -4, max: -1 }]) {
      const p = activationParams(r, type);
      const [qmin, qmax] = type === 'int8' ? [-128, 127] : [0, 255];
      t.ok(p.zeroPoint >= qmin && p.zeroPoint <= qmax && Number.isInteger(p.zeroPoint));
      const lo = (qmin - p.zeroPoint) * p.scale, hi = (qmax - p.zeroPoint) * p.scale;
      t.ok(lo <= Math.min(r.min, 0) + p.scale && hi >= Math.max(r.max, 0) - p.scale, `${type} ${JSON.stringify(r)} → [${lo}, ${hi}]`);
    }
    t.equal(activationParams({ min: 0, max: 6 }, type).zeroPoint, type === 'int8' ? -128 : 0, 'a ReLU range starts at the bottom code');
  }
  t.same(activationParams({ min: 0, max: 0 }, 'int8'), { scale: 1, zeroPoint: 0 }, 'an all-zero tensor gets a valid scale');
});

t.test('weights: per-channel along any axis, reduce-range, int32 bias', async (t) => {
  const w = Float32Array.from([1, -2, 0.5, 4, 0, 0, 0, 0]); // [2, 2, 2]
  const q0 = quantizeWeights(w, [2, 2, 2], 0);
  t.same([...q0.scale], [Math.fround(4 / 127), 1], 'an all-zero channel gets scale 1');
  t.same([...q0.q.slice(0, 4)], [32, -64, 16, 127]);
  const q1 = quantizeWeights(w, [2, 2, 2], 1);
  t.equal(q1.scale.length, 2);
  t.ok(Math.abs(q1.scale[0] - 2 / 127) < 1e-7, 'axis 1 groups elements 0,1 and 4,5');
  const r = quantizeWeights(w, [2, 2, 2], undefined, true);
  t.equal(Math.max(...Array.from(r.q, Math.abs)), 63, 'reduce-range keeps 7 bits');
  const b = quantizeBias(Float32Array.of(0.5, -1e12), 0.01, Float32Array.of(0.1, 0.1));
  t.equal(b.q[0], 500);
  t.equal(b.clipped, 1, 'a bias beyond int32 is clipped and counted');
});

t.test('planGroups splits tensors to fit the budget and lowers the batch for a huge one', async (t) => {
  const g = planGroups([{ name: 'a', bytes: 100 }, { name: 'b', bytes: 100 }, { name: 'c', bytes: 100 }], 4, 1000);
  t.same(g, { groups: [['a', 'b'], ['c']], batch: 4 });
  const h = planGroups([{ name: 'big', bytes: 600 }], 4, 1000);
  t.same(h, { groups: [['big']], batch: 1 });
});

/** x[N,16] → MatMul → Relu → MatMul → y, with the hidden tensors to observe. */
function mlp(batch: number | string = 'N') {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', DT.FLOAT, [batch, 16]);
  const h = b.node('MatMul', [x, b.initializer('w1', DT.FLOAT, [16, 32], randomFloats(512, 1, 0.5))], { outputs: ['h'] })[0];
  const r = b.node('Relu', [h], { outputs: ['r'] })[0];
  const s = b.node('Shape', [r], { outputs: ['shape'] })[0];
  b.output(b.node('MatMul', [r, b.initializer('w2', DT.FLOAT, [32, 4], randomFloats(128, 2, 0.5))], { outputs: ['y'] })[0], DT.FLOAT);
  b.output(s, DT.INT64);
  return buildModel(b.graph);
}

/** The same examples whatever the batch size. */
function source(n: number): DataSource {
  const all = randomFloats(n * 16, 100, 2);
  return {
    name: 'test data', count: n,
    async *batches(o = {}) {
      const limit = Math.min(n, o.limit ?? n);
      for (let s = 0; s < limit; s += o.batchSize ?? 8) {
        const k = Math.min(o.batchSize ?? 8, limit - s);
        yield { feeds: { x: { dtype: 'float32', dims: [k, 16], data: all.slice(s * 16, (s + k) * 16) } } };
      }
    },
  };
}

t.test('collectStats runs ORT with the tensors as outputs; grouping under a tight budget gives the same statistics', async (t) => {
  const m = mlp();
  const opts = { tensors: ['x', 'h', 'r', 'shape'], histogram: true, samples: 32, batch: 8 };
  const one = await collectStats(m, source(32), opts);
  t.equal(one.groups, 1);
  t.equal(one.samples, 32);
  t.equal(one.dtypes.get('shape'), 'int64', 'dtype comes from the run');
  t.notOk(one.stats.has('shape'), 'non-float tensors get no statistics');
  t.equal(one.stats.get('x')!.count, 32 * 16, 'graph inputs are observed from the feeds');
  t.ok(one.stats.get('r')!.min >= 0, 'Relu output is non-negative');
  // Folded in the runner child, then handed over: the same as folding the feeds here.
  const here = new TensorStats(true);
  for await (const b of source(32).batches({ batchSize: 8 })) here.add(b.feeds.x.data as Float32Array);
  const x = one.stats.get('x')!;
  t.same([x.min, x.max, x.count, x.range], [here.min, here.max, here.count, here.range]);
  t.same(Array.from(x.absHistogram()), Array.from(here.absHistogram()), 'x: the child\'s histogram is the in-process one');
  // h and r take 128 bytes per example (x is a feed, free): 200 bytes allow one example and one of them per run.
  const split = await collectStats(m, source(32), { ...opts, memoryBudgetBytes: 200 });
  t.equal(split.groups, 2);
  t.match(split.notes.join('\n'), /lowered from 8 to 1/);
  for (const name of ['x', 'h', 'r']) {
    const a = one.stats.get(name)!, b = split.stats.get(name)!;
    t.same([b.min, b.max, b.count], [a.min, a.max, a.count], `${name}: same min/max/count`);
    t.same(Array.from(b.absHistogram()), Array.from(a.absHistogram()), `${name}: same histogram`);
  }
});

t.test('a model with a fixed batch of 1 is planned for what it is fed, not for the batch asked', async (t) => {
  const m = mlp(1);
  // h and r take 256 bytes per example: batch 8 would need 2 KB, but the model only ever takes one example.
  const r = await collectStats(m, source(6), { tensors: ['h', 'r'], histogram: false, samples: 6, batch: 8, memoryBudgetBytes: 300 });
  t.equal(r.groups, 1, 'one group');
  t.equal(r.samples, 6);
  t.same(r.notes, [], 'no lowered-batch note');
});

t.test('calibrate: ranges per tensor, reasons for the rest, a warning without data', async (t) => {
  const m = mlp();
  const r = await calibrate(m, ['h', 'r', 'shape'], { method: 'percentile', samples: 16 });
  t.ok(r.ranges.has('h') && r.ranges.has('r'));
  t.match(r.skipped.get('shape'), /int64/);
  t.match(r.warnings.join('\n'), /generated random inputs/);
  const withData = await calibrate(m, ['h'], { method: 'minmax', samples: 16 }, { data: source(16) });
  t.equal(withData.warnings.length, 0, withData.warnings.join('; '));
  t.equal(withData.source, 'test data');
  const ac = new AbortController();
  ac.abort();
  await t.rejects(calibrate(m, ['h'], {}, { data: source(16), signal: ac.signal }), { code: 'CANCELED' });
});
