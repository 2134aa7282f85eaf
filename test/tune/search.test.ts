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

async function search(budgetMs: number, strategy: 'adaptive' | 'exhaustive', o: { replay?: JournalState; slowConfirm?: string } = {}) {
  const all = cands();
  const entries: JournalEntry[] = [];
  let measured = 0;
  const input: SearchInput = {
    cands: all, baseline: all.find((x) => x.c.id === 'fp32|0|2')!, baselineIsTrial: true,
    limits: { latencyMs: budgetMs, percentile: 90, maxAccuracyDrop: 1 } as TuneLimits, baselineAccuracy: 0.92,
    strategy, priors: targetPriors({ int8Gain: 'high' }), replay: o.replay ?? empty(),
  };
  const out = await runSearch(input, {
    measure: async (x, kind) => {
      measured++;
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
