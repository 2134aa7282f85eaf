import t from 'tap';
import { decide, paretoFront, qualityScore, qualityViolations, violations } from '../../src/tune/decide.js';
import type { Measurement } from '../../src/types.js';

function m(label: string, p90: number, sqnrDb: number, bytes: number, rss = 50, extra: Measurement['quality'] = {}): Measurement {
  return {
    v: 1, label, recipe: { v: 1 }, model: { sha256: label, bytes },
    latencyMs: { p50: p90 * 0.9, p90, p95: p90 * 1.05, p99: p90 * 1.1, mean: p90, std: 0.1, cv: 0.01, n: 30, ci95p50: [p90 * 0.85, p90 * 0.95] },
    loadMs: 5, firstRunMs: 2, peakRssMB: rss, throttled: null, quality: { sqnrDb, cosine: 1, ...extra },
  };
}

t.test('decide picks the most faithful feasible candidate', async (t) => {
  const fp32 = m('fp32', 10, Infinity, 4000);
  const int8 = m('int8', 4, 30, 1000);
  const fp16 = m('fp16', 9, 60, 2000);
  t.equal(decide([fp32, int8, fp16], { latencyMs: 12, percentile: 90 }).chosen, fp32, 'all feasible: fp32 is exact');
  t.equal(decide([fp32, int8, fp16], { latencyMs: 9.5, percentile: 90 }).chosen, fp16, 'fp32 over budget: next most faithful');
  t.equal(decide([fp32, int8, fp16], { latencyMs: 5, percentile: 90 }).chosen, int8);
  t.equal(decide([fp32, int8, fp16], { latencyMs: 5, percentile: 90, memoryMB: 40 }).chosen, null, 'memory limit applies');
  t.equal(decide([fp32, int8, fp16], { latencyMs: 9.5, percentile: 50 }).chosen, fp32, 'the percentile named by the budget is the one compared');
});

t.test('accuracy beats fidelity when measured, and the accuracy floor applies', async (t) => {
  const a = m('a', 5, 40, 2000, 50, { accuracy: 0.91 });
  const b = m('b', 5, 20, 2000, 50, { accuracy: 0.92 });
  t.equal(qualityScore(b), 0.92);
  t.equal(decide([a, b], { latencyMs: 10, percentile: 90 }).chosen, b, 'higher accuracy wins over higher SQNR');
  const worse = m('worse', 1, 10, 10, 50, { accuracy: 0.80 });
  const d = decide([worse], { latencyMs: 10, percentile: 90, maxAccuracyDrop: 1 }, 0.9);
  t.equal(d.chosen, null, 'a 10-point drop breaks a 1-point floor');
  t.match(d.infeasible?.reason, /accuracy drop 10\.00 points is over the 1-point limit by 9\.00/);
  t.same(qualityViolations({ cosine: 0.98 }, { latencyMs: 1, percentile: 90, minFidelity: 0.99 }).map((v) => v.constraint), ['fidelity']);
  t.same(qualityViolations({}, { latencyMs: 1, percentile: 90, minFidelity: 0.99 }).map((v) => v.constraint), ['fidelity'], 'unknown cosine fails a floor');
  t.same(qualityViolations({ cosine: 0.995 }, { latencyMs: 1, percentile: 90, minFidelity: 0.99 }), []);
});

t.test('ties go to the smaller model, then the faster one', async (t) => {
  const a = m('a', 5, 40, 2000), b = m('b', 6, 40, 1000), c = m('c', 4, 40, 1000);
  t.equal(decide([a, b, c], { latencyMs: 10, percentile: 90 }).chosen, c);
});

t.test('infeasible: the closest acceptable candidate and by how much it misses', async (t) => {
  const d = decide([m('slow', 20, Infinity, 10), m('less slow', 12, 20, 5)], { latencyMs: 10, percentile: 90 });
  t.equal(d.chosen, null);
  t.equal(d.infeasible?.best.label, 'less slow');
  t.match(d.infeasible?.reason, /p90 latency 12\.000 ms is over the 10 ms budget by 2\.000 ms \(20%\)/);
  t.same(violations(m('x', 12, 1, 1, 100), { latencyMs: 10, percentile: 90, memoryMB: 64 }).map((v) => v.constraint), ['latency', 'memory']);
  // A fast candidate with broken quality is not "closest" while an acceptable one exists.
  const fastBad = m('fast but wrong', 9, 5, 1, 50, { cosine: 0.5 });
  const slowOk = m('slow but right', 30, 50, 1, 50, { cosine: 0.999 });
  const e = decide([fastBad, slowOk], { latencyMs: 8, percentile: 90, minFidelity: 0.99 });
  t.equal(e.infeasible?.best.label, 'slow but right');
});

t.test('pareto front keeps only undominated trials, sorted by latency', async (t) => {
  const fast = m('fast', 2, 20, 1), exact = m('exact', 10, Infinity, 1), dominated = m('dominated', 11, 30, 1), mid = m('mid', 5, 40, 1);
  t.same(paretoFront([exact, dominated, fast, mid], 90).map((x) => x.label), ['fast', 'mid', 'exact']);
});
