// The search loop and the strategy on a synthetic device: latency and quality are made up, so these run without ORT.
import t from 'tap';
import type { Measurement } from '../../src/types.js';
import { replay, type JournalEntry, type JournalState } from '../../src/tune/journal.js';
import { targetPriors } from '../../src/tune/latency-model.js';
import { runSearch, type SearchCandidate, type SearchInput } from '../../src/tune/search.js';
import { nextStep, type CandidateView } from '../../src/tune/strategy.js';
import type { TuneLimits } from '../../src/tune/decide.js';

const QUANT = { fp32: { speed: 1, acc: 0.92, size: 4 }, fp16: { speed: 1, acc: 0.92, size: 2 }, int8: { speed: 0.45, acc: 0.915, size: 1 } } as const;
const PRUNE = { 0: { speed: 1, acc: 0 }, 0.25: { speed: 0.7, acc: -0.004 }, 0.5: { speed: 0.45, acc: -0.012 } } as const;
const THREADS = { 1: 1.5, 2: 1 } as const;

function cands(): SearchCandidate[] {
  const out: SearchCandidate[] = [];
  for (const q of Object.keys(QUANT) as Array<keyof typeof QUANT>)
    for (const pr of [0, 0.25, 0.5] as const)
      for (const th of [1, 2] as const) {
        const modelKey = `${q}|${pr}`;
        out.push({
          c: { id: `${modelKey}|${th}`, label: `${q} p${pr} t${th}`, point: { quant: 'fp32', threads: th }, recipe: { v: 1 }, modelKey, stemKey: String(pr) },
          record: { key: modelKey, status: 'ok', sha256: modelKey, bytes: Math.round(QUANT[q].size * 1e6 * (1 - pr)), quality: { accuracy: QUANT[q].acc + PRUNE[pr].acc, cosine: 1 } },
          features: { macsRatio: 1 - pr, levels: { quant: q, threads: String(th) } },
          qualityOk: true,
        });
      }
  return out;
}

const latencyOf = (x: SearchCandidate) => {
  const [q, pr] = x.c.modelKey.split('|');
  return 10 * QUANT[q as keyof typeof QUANT].speed * PRUNE[Number(pr) as keyof typeof PRUNE].speed * THREADS[x.c.id.endsWith('|1') ? 1 : 2];
};

function measurement(x: SearchCandidate, ms: number): Measurement {
  return {
    v: 1, recipe: x.c.recipe, label: x.c.label, model: { sha256: x.record.sha256!, bytes: x.record.bytes! },
    latencyMs: { p50: ms * 0.95, p90: ms, p95: ms, p99: ms, mean: ms, std: 0, cv: 0, n: 20, ci95p50: [ms, ms] },
    loadMs: 1, firstRunMs: 1, peakRssMB: 80, throttled: null, quality: x.record.quality!,
  };
}

const empty = (): JournalState => replay([]);

/** `clock`: a fake time that each measurement advances by `msPerTrial`, with a deadline on it. */
async function search(budgetMs: number, strategy: 'adaptive' | 'exhaustive', o: { replay?: JournalState; slowConfirm?: string; clock?: { msPerTrial: number; deadline: number } } = {}) {
  const all = cands();
  const entries: JournalEntry[] = [];
  let measured = 0;
  let now = 0;
  const input: SearchInput = {
    cands: all, baseline: all.find((x) => x.c.id === 'fp32|0|2')!, baselineIsTrial: true,
    limits: { latencyMs: budgetMs, percentile: 90, maxAccuracyDrop: 1 } as TuneLimits, baselineAccuracy: 0.92,
    strategy, priors: targetPriors({ int8Gain: 'high' }), replay: o.replay ?? empty(),
    ...(o.clock ? { deadline: o.clock.deadline, now: () => now } : {}),
  };
  const out = await runSearch(input, {
    measure: async (x, kind) => {
      measured++;
      now += o.clock?.msPerTrial ?? 0;
      return measurement(x, latencyOf(x) * (kind === 'confirm' && x.c.id === o.slowConfirm ? 1.5 : 1));
    },
    log: async (e) => { entries.push(e); },
  });
  return { out, entries, measured, total: all.length };
}

t.test('adaptive makes the same choice as exhaustive with fewer trials', async (t) => {
  for (const budget of [20, 9, 4.6, 3, 1]) {
    const ex = await search(budget, 'exhaustive');
    const ad = await search(budget, 'adaptive');
    t.equal(ad.out.chosen?.label ?? null, ex.out.chosen?.label ?? null, `budget ${budget}: same choice (${ad.out.chosen?.label ?? 'none'})`);
    t.equal(ex.out.trials.length, ex.total, 'exhaustive measures everything');
    t.ok(ad.out.trials.length < ex.total * 0.5, `budget ${budget}: adaptive measured ${ad.out.trials.length} of ${ex.total}`);
    t.ok(ad.out.stopReason.length > 0);
  }
});

t.test('a restart replays the journal and measures nothing again', async (t) => {
  const first = await search(4.6, 'adaptive');
  t.ok(first.measured > 2);
  const again = await search(4.6, 'adaptive', { replay: replay(first.entries) });
  t.equal(again.measured, 0, 'no measurement at all');
  t.equal(again.out.replayed, first.out.log.length);
  t.equal(again.out.chosen?.label, first.out.chosen?.label);
  // Half a journal: the finished trials are kept, the rest is measured.
  const half = first.entries.slice(0, 2);
  const resumed = await search(4.6, 'adaptive', { replay: replay(half) });
  t.equal(resumed.out.replayed, 2);
  t.equal(resumed.measured, first.measured - 2);
});

t.test('a winner that misses in the confirmation run is replaced', async (t) => {
  const plain = await search(9, 'adaptive');
  const winner = cands().find((x) => x.c.label === plain.out.chosen!.label)!;
  const r = await search(9, 'adaptive', { slowConfirm: winner.c.id });
  t.equal(r.out.confirmations[0].held, false);
  t.ok(r.out.chosen, 'another candidate was chosen');
  t.not(r.out.chosen!.label, winner.c.label);
  t.ok(r.out.chosen!.latencyMs.p90 <= 9);
});

t.test('nothing feasible: the likeliest candidate is tried once, then the search stops', async (t) => {
  const r = await search(0.5, 'adaptive');
  t.equal(r.out.chosen, null);
  t.ok(r.out.trials.length <= 6, `${r.out.trials.length} trials`);
  t.ok(r.out.log.some((l) => /most likely to fit/.test(l.why)));
  t.match(r.out.decision.infeasible?.reason, /no candidate meets the budget/);
});

t.test('the strategy never measures what cannot beat the incumbent or breaks the quality floor', async (t) => {
  const v = (id: string, score: number, bytes: number, extra: Partial<CandidateView> = {}): CandidateView =>
    ({ id, label: id, features: { levels: {} }, score, bytes, qualityOk: true, ...extra });
  const views = [
    v('inc', 0.9, 100, { measured: { latencyMs: 1, feasible: true } }),
    v('worse', 0.8, 50),
    v('same-bigger', 0.9, 200),
    v('bad', 0.95, 10, { qualityOk: false }),
  ];
  const s = nextStep(views, undefined, { strategy: 'adaptive', budgetMs: 2 });
  t.equal(s.kind, 'stop');
  const s2 = nextStep([...views, v('better', 0.95, 100)], undefined, { strategy: 'adaptive', budgetMs: 2 });
  t.same(s2.kind === 'measure' && s2.id, 'better');
});

t.test('the time limit stops the search early, and it still decides with what was measured', async (t) => {
  const free = await search(4.6, 'adaptive');
  t.ok(free.out.trials.length >= 4, `without a limit: ${free.out.trials.length} trials`);
  t.equal(free.out.timedOut, false);
  // Each measurement takes 1 s on the fake clock; the limit passes during the third one.
  const r = await search(4.6, 'adaptive', { clock: { msPerTrial: 1000, deadline: 2500 } });
  t.equal(r.out.timedOut, true, 'says it timed out');
  t.equal(r.out.stopReason, 'the time limit was reached');
  t.equal(r.out.trials.length, 3, 'no measurement started after the deadline');
  t.ok(r.out.trials.length < free.out.trials.length, 'fewer trials than the unlimited search');
  const feasible = r.out.trials.filter((m) => m.latencyMs.p90 <= 4.6);
  t.ok(feasible.length > 0, 'something measured before the deadline fits');
  t.ok(r.out.chosen, 'a choice is made from what was measured');
  t.ok(r.out.trials.some((m) => m.label === r.out.chosen!.label), `the choice (${r.out.chosen!.label}) is one of the measured trials`);
  t.ok(r.out.chosen!.latencyMs.p90 <= 4.6);
  const best = Math.max(...feasible.map((m) => m.quality.accuracy!));
  t.equal(r.out.chosen!.quality.accuracy, best, 'the most accurate of the measured feasible trials');

  // A deadline already past when the search starts: only the baseline, and the verdict still comes.
  const none = await search(4.6, 'adaptive', { clock: { msPerTrial: 1000, deadline: 500 } });
  t.equal(none.out.timedOut, true);
  t.equal(none.out.trials.length, 1, 'only the baseline');
  t.equal(none.out.chosen, null, 'fp32 misses 4.6 ms');
  t.match(none.out.decision.infeasible?.reason, /no candidate meets the budget; the closest, fp32 p0 t2/);
});

t.test('far over budget, the first pick is a NetAdapt-style progressive step toward it', async (t) => {
  // fp32 t2 takes 10 ms; 4.6 ms is more than 2× below, so the strategy first aims halfway (in log): √(10·4.6) ≈ 6.8 ms.
  const r = await search(4.6, 'adaptive');
  const steps = r.out.log.filter((l) => /^progressive step/.test(l.why));
  t.ok(steps.length >= 1, `a progressive step was taken (log: ${r.out.log.map((l) => l.why.slice(0, 40)).join(' | ')})`);
  t.equal(r.out.log[1].why, steps[0].why, 'right after the baseline');
  t.match(steps[0].why, /under 6\.782 ms \(halfway in log from the best so far, 10\.000 ms, to the budget\)/);
  t.ok(steps[0].predictedMs! > 4.6 && steps[0].predictedMs! <= 6.782, `it aims between the budget and the halfway target (predicted ${steps[0].predictedMs} ms)`);
  t.ok(r.out.chosen && r.out.chosen.latencyMs.p90 <= 4.6, 'and the search still ends on a feasible choice');
  // Close to the budget (less than 2× over), there is no intermediate target.
  const near = await search(5.5, 'adaptive');
  t.notOk(near.out.log.some((l) => /^progressive step/.test(l.why)), 'no progressive step within 2× of the budget');
});
