import t from 'tap';
import { latencyStats, mean, median, medianCiRanks, pairedRatio, percentile, percentileSorted, std } from '../../src/measure/stats.js';
import { normalFrom, seededRandom } from '../../src/measure/inputs.js';

const uniform1000 = Array.from({ length: 1000 }, (_, i) => i + 1);
// Shuffled copy: the functions must not depend on input order.
const shuffled = [...uniform1000].sort((a, b) => ((a * 7919) % 1000) - ((b * 7919) % 1000));

t.test('percentiles interpolate linearly between closest ranks', async (t) => {
  t.equal(percentile([1, 2, 3, 4], 50), 2.5);
  t.equal(percentile([1, 2, 3, 4], 25), 1.75);
  t.equal(percentile([4, 1, 3, 2], 0), 1);
  t.equal(percentile([4, 1, 3, 2], 100), 4);
  t.equal(percentile([7], 90), 7);
  t.equal(percentileSorted([10, 20], 10), 11);
});

t.test('uniform 1..1000 gives the exact textbook values', async (t) => {
  const s = latencyStats(shuffled);
  t.equal(s.n, 1000);
  t.equal(s.p50, 500.5);
  t.ok(Math.abs(s.p90 - 900.1) < 1e-9, `p90 ${s.p90}`);
  t.ok(Math.abs(s.p95 - 950.05) < 1e-9, `p95 ${s.p95}`);
  t.ok(Math.abs(s.p99 - 990.01) < 1e-9, `p99 ${s.p99}`);
  t.equal(s.mean, 500.5);
  // sample std of 1..n is sqrt(n(n+1)/12)
  t.ok(Math.abs(s.std - Math.sqrt((1000 * 1001) / 12)) < 1e-9, `std ${s.std}`);
  t.ok(Math.abs(s.cv - s.std / 500.5) < 1e-12);
  // order statistics 469 and 532 bound the median of 1000 samples at >= 95 %
  t.same(s.ci95p50, [469, 532]);
});

t.test('median CI ranks match exact binomial tables', async (t) => {
  t.same(medianCiRanks(10), { lo: 2, hi: 9, coverage: 1 - 2 * (11 / 1024) });
  t.match(medianCiRanks(20), { lo: 6, hi: 15 });
  t.match(medianCiRanks(100), { lo: 40, hi: 61 });
  t.match(medianCiRanks(5000), { lo: 2431, hi: 2570 });
  const big = medianCiRanks(200_000);
  t.ok(big.coverage >= 0.95 && big.coverage < 0.951, `no underflow at large n (coverage ${big.coverage})`);
  // 5 samples cannot reach 95 %: the full range, and the coverage says it falls short
  t.same(medianCiRanks(5), { lo: 1, hi: 5, coverage: 0.9375 });
  t.same(medianCiRanks(6), { lo: 1, hi: 6, coverage: 1 - 2 / 64 });
  t.same(medianCiRanks(1), { lo: 1, hi: 1, coverage: 0 });
  t.throws(() => medianCiRanks(0), RangeError);
});

t.test('a seeded normal sample has the standard normal quantiles', async (t) => {
  const normal = normalFrom(seededRandom(42));
  const xs = Array.from({ length: 100_000 }, () => normal());
  const s = latencyStats(xs);
  t.ok(Math.abs(s.mean) < 0.02, `mean ${s.mean}`);
  t.ok(Math.abs(s.std - 1) < 0.01, `std ${s.std}`);
  t.ok(Math.abs(s.p50) < 0.02, `p50 ${s.p50}`);
  t.ok(Math.abs(s.p90 - 1.2816) < 0.02, `p90 ${s.p90}`);
  t.ok(Math.abs(s.p99 - 2.3263) < 0.05, `p99 ${s.p99}`);
  t.ok(s.ci95p50[0] < 0 && s.ci95p50[1] > 0, `CI ${s.ci95p50} holds the true median 0`);
  t.ok(s.ci95p50[1] - s.ci95p50[0] < 0.03, 'and is narrow at n = 100k');
});

t.test('ordering and degenerate samples', async (t) => {
  const s = latencyStats([3, 1, 2, 100]);
  t.ok(s.p50 <= s.p90 && s.p90 <= s.p95 && s.p95 <= s.p99);
  const one = latencyStats([5]);
  t.match(one, { p50: 5, p99: 5, mean: 5, std: 0, cv: 0, n: 1, ci95p50: [5, 5] });
  t.equal(std([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7));
  t.equal(mean([1, 2]), 1.5);
  t.same(latencyStats([0, 0]).cv, 0);
});

t.test('bad samples are rejected with a message naming the problem', async (t) => {
  t.throws(() => latencyStats([]), { name: 'RangeError', message: /at least one sample/ });
  t.throws(() => latencyStats([1, NaN]), { message: /sample 1 is NaN/ });
  t.throws(() => percentile([1], 101), { message: /0\.\.100/ });
  t.throws(() => mean([Infinity]), RangeError);
});

t.test('paired ratio: median of pair ratios with an order-statistic CI', async (t) => {
  // 20 pairs, b = 1.5 a with a drifting baseline: the drift cancels within each pair
  const a = Array.from({ length: 20 }, (_, i) => 10 + i);
  const b = a.map((x, i) => x * (1.5 + (i % 2 ? 0.01 : -0.01)));
  const r = pairedRatio(a, b);
  t.equal(r.pairs, 20);
  t.ok(Math.abs(r.estimate - 1.5) < 1e-12, `estimate ${r.estimate}`);
  t.same(r.ci95, [1.49, 1.51], 'ranks 6 and 15 of the sorted ratios');
  t.ok(r.coverage >= 0.95);
  t.equal(r.significant, true, 'the CI excludes 1: b is slower beyond noise');
  const same = pairedRatio(a, a.map((x, i) => x * (i % 2 ? 1.02 : 0.98)));
  t.equal(same.significant, false, 'a CI that holds 1 is no difference');
  const few = pairedRatio([1, 1, 1], [2, 2, 2]);
  t.ok(few.coverage < 0.95, 'three pairs cannot give 95 %');
  t.equal(few.significant, false, 'so they never claim a difference');
  t.throws(() => pairedRatio([1, 2], [1]), RangeError);
  t.throws(() => pairedRatio([0, 1], [1, 1]), /positive/);
  t.equal(median([3, 1, 2, 10]), 2.5);
});
