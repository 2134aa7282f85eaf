import t from 'tap';
import { join } from 'node:path';
import { compressionKey, distributedTune, splitCandidates } from '../../src/fleet/distributed.js';
import { fleetTuneDistributed, type FleetContext } from '../../src/fleet/api.js';
import { formatDistributed } from '../../src/fleet/format.js';
import { ResultsStore } from '../../src/fleet/store/results.js';
import type { Recipe } from '../../src/types.js';
import { recipeLabel } from '../../src/schema/recipe.js';
import { allTargets, startBroker, startSessionWithSims, startSims } from './helpers.js';

// 12 candidates: 3 formats x 4 thread counts.
const candidates: Recipe[] = (['fp32', 'dynamic', 'fp16'] as const).flatMap((q) => [1, 2, 3, 4].map((th): Recipe => ({
  v: 1, ...(q === 'fp32' ? {} : { quantize: { mode: q, perChannel: q === 'dynamic' } }), session: { intraOpThreads: th },
})));

t.test('splitting: near-equal shares, same-model candidates kept together, every item once', async (t) => {
  t.same(splitCandidates([1, 2, 3, 4, 5, 6, 7], 3), [[1, 2, 3], [4, 5], [6, 7]], 'sizes differ by at most one');
  t.same(splitCandidates([1, 2], 5), [[1], [2]], 'never more shares than items');
  t.same(splitCandidates(['a1', 'b1', 'a2', 'b2', 'c1', 'c2'], 3, (x) => x[0]), [['a1', 'a2'], ['b1', 'b2'], ['c1', 'c2']], 'grouped by key');
  const shares = splitCandidates(candidates, 4, compressionKey);
  t.same(shares.map((s) => s.length), [3, 3, 3, 3], 'the same work on each of 4 devices: a quarter of one device\'s');
});

t.test('four devices measure a quarter each; the merged front and winner are those of all candidates', async (t) => {
  const { session, sim, store } = await startSessionWithSims(t, { count: 4, kinds: ['raspberry-pi-5'], behaviour: { costMs: 30 } });
  const devices = sim.devices.map((d) => d.id);
  const r = await distributedTune(session, { runId: 'dt1', target: 'raspberry-pi-5', devices, model: 'm.onnx', budgetMs: 6, percentile: 90, candidates });
  for (const d of sim.devices) t.equal(d.received.tune, 1, `${d.id} got one share`);
  t.same(r.shares.map((s) => s.candidates.length), [3, 3, 3, 3]);
  t.equal(new Set(r.shares.map((s) => s.device)).size, 4, 'each share measured by a different device');
  t.equal(r.trials.length, 12);
  t.same(r.trials.map((m) => recipeLabel(m.recipe)), candidates.map(recipeLabel), 'trials merged back in candidate order (recipes as the device read them, defaults filled)');
  // The winner by hand: the most accurate trial within 6 ms at p90, across every share.
  const fits = r.trials.filter((m) => m.latencyMs.p90 <= 6);
  const best = Math.max(...fits.map((m) => m.quality.accuracy!));
  t.equal(r.chosen?.quality.accuracy, best);
  t.ok(r.chosen!.latencyMs.p90 <= 6);
  const frontLabels = new Set(r.front.map((m) => m.label));
  for (const m of r.trials) {
    const dominated = r.trials.some((o) => o.latencyMs.p90 <= m.latencyMs.p90 && o.quality.accuracy! >= m.quality.accuracy! && (o.latencyMs.p90 < m.latencyMs.p90 || o.quality.accuracy! > m.quality.accuracy!));
    if (!dominated) t.ok(frontLabels.has(m.label), `${m.label} is on the merged front`);
  }
  t.ok(r.front.some((m) => m.recipe.quantize?.mode === 'dynamic') && r.front.some((m) => !m.recipe.quantize), 'the front mixes trials from different shares');
  t.equal(Number.isFinite(r.trials[0].quality.sqnrDb), false, 'fp32\'s exact SQNR (Infinity, null in JSON) is restored');
  t.same(r.unmeasured, []);
  t.match(formatDistributed(r), /raspberry-pi-5: 12 candidates measured on 4 devices/);
  await store!.flush();
  t.equal(store!.jobs('dt1').filter((j) => j.phase === 'share' && j.state === 'SUCCEEDED').length, 4, 'each share recorded');
});

t.test('a device that drops out mid-share has its share reassigned', async (t) => {
  const { session, sim } = await startSessionWithSims(t, {
    count: 3, kinds: ['x86_64-avx2'], behaviour: { costMs: 40 },
    overrides: { 'sim-x86-0002': { crashOn: { type: 'tune', afterMs: 30 } } },
  });
  const reassigned: string[] = [];
  const r = await distributedTune(session, {
    runId: 'dt2', target: 'x86_64-avx2', devices: sim.devices.map((d) => d.id), model: 'm.onnx', budgetMs: 50, candidates,
    onReassign: (share, from, why) => reassigned.push(`${share}:${from}:${why}`),
  });
  t.same(reassigned, ['1:sim-x86-0002:device went offline']);
  t.equal(r.trials.length, 12, 'every candidate measured anyway');
  const s1 = r.shares[1];
  t.equal(s1.attempts.length, 2);
  t.equal(s1.attempts[0].device, 'sim-x86-0002');
  t.equal(s1.attempts[1].jobId, 'dt2-s1-r1', 'the retry has its own job id');
  t.not(s1.device, 'sim-x86-0002');
  t.ok(r.chosen);
});

t.test('when every device rejects the share, it fails after maxAttempts and its candidates are reported unmeasured', async (t) => {
  const { session, sim } = await startSessionWithSims(t, { count: 2, kinds: ['x86_64-avx2'] });
  const r = await distributedTune(session, {
    runId: 'dt3', target: 'x86_64-avx2', devices: sim.devices.map((d) => d.id), model: 'm.onnx', budgetMs: 50, maxAttempts: 2,
    candidates: [{ v: 1 }, { v: 1, quantize: { mode: 'fp16', perChannel: false, bogus: true } as any }],
  });
  t.equal(r.shares[0].state, 'done');
  t.equal(r.shares[1].state, 'failed');
  t.match(r.shares[1].error, /gave up after 2 attempts: .*REJECTED/);
  t.same(r.unmeasured, ['fp16']);
  t.equal(r.trials.length, 1);
});

t.test('fleet tune --distributed: per target, winner rolled out to every device of the class, front stored', async (t) => {
  const { url } = await startBroker(t);
  const sim = await startSims(t, url, { count: 6, kinds: ['raspberry-pi-4', 'x86_64-avx2'], behaviour: { costMs: 10 } });
  const dir = t.testdir();
  const ctx: FleetContext = { url, fleet: 'ft', db: join(dir, 'f.db'), targets: await allTargets(), settleMs: 150, graceS: 5 };
  const out = await fleetTuneDistributed(ctx, {
    selection: { all: true }, model: 'm.onnx', budgetMs: 30, candidates,
    policy: { canary: { count: 1 }, batch: { percent: 100 }, intervalS: 0, maxFailureRate: 0 },
  });
  t.same(out.tunes.map((x) => [x.target, x.devices.length, x.trials.length]).sort(), [['raspberry-pi-4', 3, 12], ['x86_64-avx2', 3, 12]]);
  t.equal(out.rollouts.length, 2);
  for (const tune of out.tunes) {
    for (const d of tune.devices) {
      t.same(sim.get(d)!.state.deployed?.recipe, tune.chosen!.recipe, `${d} (${tune.target}) runs its class's winner`);
    }
  }
  const store = await ResultsStore.open(ctx.db, { readonly: true });
  t.teardown(() => store.close());
  t.equal(store.fronts().length, 2, 'both merged fronts stored');
  t.equal(store.runs({ kind: 'tune-distributed' }).length, 1);
});
