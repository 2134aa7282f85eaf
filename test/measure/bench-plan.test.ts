import t from 'tap';
import { DEFAULT_BENCH_PLAN, resolvePlan, timedDone, timedFraction, warmupDone } from '../../src/measure/bench-plan.js';
import { blockPlan } from '../../src/measure/bench.js';

t.test('defaults and overrides', async (t) => {
  t.same(resolvePlan(), { warmupRuns: 5, warmupMs: 300, minRuns: 20, minMs: 1000, maxRuns: 500, maxMs: 10_000 });
  t.same(resolvePlan({ minRuns: 3, maxMs: Infinity }), { ...DEFAULT_BENCH_PLAN, minRuns: 3, maxMs: Infinity });
  t.throws(() => resolvePlan({ minRuns: 2.5 }), { code: 'USAGE', message: /minRuns must be a non-negative integer, got 2.5/ });
  t.throws(() => resolvePlan({ warmupMs: -1 }), { code: 'USAGE', message: /warmupMs/ });
  t.throws(() => resolvePlan({ maxRuns: 0 }), { code: 'USAGE', message: /maxRuns must be at least 1/ });
  t.throws(() => resolvePlan({ maxMs: 0 }), { code: 'USAGE', message: /maxMs must be above 0/ });
  t.throws(() => resolvePlan({ minMs: Infinity }), { code: 'USAGE', message: /never end/ });
  t.throws(() => resolvePlan({ warmupRuns: Infinity, warmupMs: Infinity }), { code: 'USAGE', message: /warm-up would never end/ });
  t.throws(() => resolvePlan({ minRuns: NaN }), { code: 'USAGE' });
});

t.test('warm-up ends at the run count or the time, whichever first', async (t) => {
  const p = resolvePlan();
  t.notOk(warmupDone(p, 0, 0));
  t.notOk(warmupDone(p, 4, 299));
  t.ok(warmupDone(p, 5, 10));
  t.ok(warmupDone(p, 1, 300));
  t.ok(warmupDone(resolvePlan({ warmupRuns: 0 }), 0, 0), 'warmupRuns 0 skips warm-up');
});

t.test('timed runs need both minimums, or either maximum', async (t) => {
  const p = resolvePlan();
  t.notOk(timedDone(p, 0, 0));
  t.notOk(timedDone(p, 19, 5000), 'time met but not runs');
  t.notOk(timedDone(p, 400, 999), 'runs met but not time');
  t.ok(timedDone(p, 20, 1000));
  t.ok(timedDone(p, 500, 10), 'maxRuns');
  t.ok(timedDone(p, 1, 10_000), 'maxMs');
  t.notOk(timedDone(resolvePlan({ minRuns: 0, minMs: 0 }), 0, 0), 'never done before one run');
  t.ok(timedDone(resolvePlan({ minRuns: 0, minMs: 0 }), 1, 0));
  t.equal(timedFraction(p, 10, 500), 0.5);
  t.equal(timedFraction(p, 10, 200), 0.2, 'the lagging minimum sets progress');
  t.equal(timedFraction(p, 250, 0), 0.5, 'unless a maximum is nearer');
  t.equal(timedFraction(p, 10_000, 0), 1);
});

t.test('interleaved blocks', async (t) => {
  const p = resolvePlan();
  t.same(blockPlan(p, false, 0, 0), { warmupRuns: 5, warmupMs: 300, minRuns: 1, minMs: 200, maxRuns: 50, maxMs: 200 });
  t.same(blockPlan(p, true, 480, 9950), { warmupRuns: 0, warmupMs: 0, minRuns: 1, minMs: 50, maxRuns: 20, maxMs: 50 }, 'never past what is left');
  t.equal(blockPlan(resolvePlan({ maxRuns: Infinity }), true, 0, 0).maxRuns, Infinity, 'time-only blocks when runs are unbounded');
});
