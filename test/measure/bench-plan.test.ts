import t from 'tap';
import { DEFAULT_BENCH_PLAN, capHit, ciRelWidthOf, minimumsMet, resolvePlan, timedDone, timedFraction, timedStop, warmupDone } from '../../src/measure/bench-plan.js';
import { blockPlan } from '../../src/measure/compare.js';

t.test('defaults and overrides', async (t) => {
  t.same(resolvePlan(), { warmupRuns: 5, warmupMs: 300, warmupMaxMs: 3000, minRuns: 20, minMs: 1000, ciRelWidth: 0.02, maxRuns: 10_000, maxMs: 10_000 });
  t.same(resolvePlan({ minRuns: 3, maxMs: Infinity }), { ...DEFAULT_BENCH_PLAN, minRuns: 3, maxMs: Infinity });
  t.throws(() => resolvePlan({ minRuns: 2.5 }), { code: 'USAGE', message: /minRuns must be a non-negative integer, got 2.5/ });
  t.throws(() => resolvePlan({ warmupMs: -1 }), { code: 'USAGE', message: /warmupMs/ });
  t.throws(() => resolvePlan({ ciRelWidth: -0.1 }), { code: 'USAGE', message: /ciRelWidth must be a non-negative fraction/ });
  t.throws(() => resolvePlan({ maxRuns: 0 }), { code: 'USAGE', message: /maxRuns must be at least 1/ });
  t.throws(() => resolvePlan({ maxMs: 0 }), { code: 'USAGE', message: /maxMs must be above 0/ });
  t.throws(() => resolvePlan({ minMs: Infinity }), { code: 'USAGE', message: /never end/ });
  t.throws(() => resolvePlan({ warmupRuns: Infinity, warmupMaxMs: Infinity }), { code: 'USAGE', message: /warm-up would never end/ });
  t.throws(() => resolvePlan({ ciRelWidth: 0, maxRuns: Infinity, maxMs: Infinity }), { code: 'USAGE', message: /can never be met/ });
  t.throws(() => resolvePlan({ minRuns: NaN }), { code: 'USAGE' });
});

t.test('warm-up needs both the run count and the time, and stops at its cap', async (t) => {
  const p = resolvePlan();
  t.notOk(warmupDone(p, 0, 0));
  t.notOk(warmupDone(p, 5, 299), 'count met, time not');
  t.notOk(warmupDone(p, 4, 1000), 'time met, count not');
  t.ok(warmupDone(p, 5, 300));
  t.ok(warmupDone(p, 1, 3000), 'warmupMaxMs cuts a slow model short');
  t.ok(warmupDone(resolvePlan({ warmupRuns: 0, warmupMs: 0 }), 0, 0), 'both 0 skips warm-up');
  t.ok(warmupDone(resolvePlan({ warmupRuns: 3, warmupMs: 0, warmupMaxMs: Infinity }), 3, 0), 'exact count');
});

t.test('timed runs: minimums, then the CI of the median, or a cap', async (t) => {
  const p = resolvePlan();
  t.equal(timedStop(p, 0, 0, 0), undefined, 'never before one run');
  t.equal(timedStop(p, 19, 5000, 0), undefined, 'time met but not runs');
  t.equal(timedStop(p, 400, 999, 0), undefined, 'runs met but not time');
  t.equal(timedStop(p, 20, 1000, 0.05), undefined, 'minimums met, CI too wide: go on');
  t.equal(timedStop(p, 20, 1000, 0.02), 'ci');
  t.equal(timedStop(p, 10_000, 10, 0.5), 'max-runs');
  t.equal(timedStop(p, 1, 10_000, Infinity), 'max-ms');
  t.equal(timedStop(resolvePlan({ ciRelWidth: Infinity }), 20, 1000, Infinity), 'min', 'no CI asked: stop at the minimums');
  t.equal(capHit(p, 5, 5), undefined);
  t.ok(minimumsMet(resolvePlan({ minRuns: 0, minMs: 0 }), 1, 0));
  t.notOk(minimumsMet(resolvePlan({ minRuns: 0, minMs: 0 }), 0, 0));
  t.ok(timedDone(p, 20, 1000, 0.01));
  t.notOk(timedDone(p, 20, 1000), 'without a CI reading the default plan goes on');
});

t.test('CI width of the median, relative to it', async (t) => {
  t.equal(ciRelWidthOf([1, 2, 3, 4, 5]), Infinity, 'no 95 % interval below 6 samples');
  // n = 20: ranks 6 and 15 bound the median; samples 1..20 have median 10.5
  const twenty = Array.from({ length: 20 }, (_, i) => i + 1);
  t.equal(ciRelWidthOf(twenty), (15 - 6) / 10.5);
  t.equal(ciRelWidthOf(new Array(50).fill(2)), 0, 'identical samples: zero width');
  t.equal(ciRelWidthOf(new Array(10).fill(0)), Infinity, 'a zero median has no relative width');
});

t.test('progress: minimums fill the first half, the CI the second', async (t) => {
  const p = resolvePlan();
  t.equal(timedFraction(p, 10, 500), 0.25);
  t.equal(timedFraction(p, 10, 200), 0.1, 'the lagging minimum sets progress');
  t.equal(timedFraction(p, 5000, 0), 0.5, 'unless a maximum is nearer');
  t.equal(timedFraction(p, 20, 1000, 0.04), 0.5 + 0.5 * 0.25, 'CI twice too wide: a quarter of the runs done');
  t.equal(timedFraction(p, 20, 1000, 0.01), 1);
  t.equal(timedFraction(resolvePlan({ ciRelWidth: Infinity }), 10, 500), 0.5);
  t.equal(timedFraction(p, 10_000, 0), 1);
});

t.test('interleaved blocks', async (t) => {
  const p = resolvePlan();
  t.same(blockPlan(p, false, 0, 0), { warmupRuns: 5, warmupMs: 300, warmupMaxMs: 3000, minRuns: 1, minMs: 50, ciRelWidth: Infinity, maxRuns: 500, maxMs: 50 });
  t.same(blockPlan(p, true, 9980, 9990), { warmupRuns: 0, warmupMs: 0, warmupMaxMs: Infinity, minRuns: 1, minMs: 10, ciRelWidth: Infinity, maxRuns: 20, maxMs: 10 }, 'never past what is left');
  t.equal(blockPlan(p, true, 0, 0, 0.2).warmupRuns, 1, 'a cheap model re-warms one run after the other model ran');
  t.equal(blockPlan(p, true, 0, 0, 20).warmupRuns, 0, 'a slow one does not');
  t.equal(blockPlan(resolvePlan({ maxRuns: Infinity }), true, 0, 0).maxRuns, Infinity, 'time-only blocks when runs are unbounded');
});
