import t from 'tap';
import { fitLatencyModel, normalCdf, probAtMost, targetPriors, type LatencyFeatures } from '../../src/tune/latency-model.js';

const f = (quant: string, threads: number, macsRatio = 1): LatencyFeatures => ({ macsRatio, levels: { quant, threads: String(threads) } });
const ref = f('fp32', 2);
const universe = ['fp32', 'dynamic', 'weight-only-4'].flatMap((q) => [1, 2].flatMap((th) => [1, 0.5].map((r) => f(q, th, r))));
// A device where int8 is 0.4×, one thread is 1.6× and latency follows MACs^0.9.
const truth = (x: LatencyFeatures) => 10 * (x.levels.quant === 'dynamic' ? 0.4 : 1) * (x.levels.threads === '1' ? 1.6 : 1) * (x.macsRatio ?? 1) ** 0.9;

t.test('with only the baseline, predictions come from the priors with a wide spread', async (t) => {
  const m = fitLatencyModel([{ f: ref, ms: 10 }], universe, ref, targetPriors({ int8Gain: 'high' }));
  const p = m.predict(f('dynamic', 2));
  t.ok(Math.abs(p.ms - 5) < 0.5, `high int8 gain prior: about half (${p.ms})`);
  t.ok(p.logSd > 0.4, 'still uncertain');
  t.ok(Math.abs(m.predict(ref).ms - 10) < 0.5, 'the measured point is reproduced');
  t.ok(m.predict(f('fp32', 2, 0.5)).ms < 8, 'fewer MACs predict faster');
});

t.test('measurements pull the effects to what the device does', async (t) => {
  const seen = [f('fp32', 2), f('dynamic', 2), f('fp32', 1), f('fp32', 2, 0.5)];
  const m = fitLatencyModel(seen.map((x) => ({ f: x, ms: truth(x) })), universe, ref, targetPriors({ int8Gain: 'low' }));
  const target = f('dynamic', 1, 0.5); // never measured: a combination of learned effects
  const p = m.predict(target);
  t.ok(Math.abs(Math.log(p.ms / truth(target))) < 0.15, `predicted ${p.ms.toFixed(2)} vs true ${truth(target).toFixed(2)}`);
  t.ok(p.logSd < 0.3, `spread shrank (${p.logSd})`);
  t.ok(m.predict(f('weight-only-4', 2)).logSd > p.logSd, 'an unmeasured level stays less certain');
});

t.test('probabilities of meeting a budget', async (t) => {
  t.ok(Math.abs(normalCdf(0) - 0.5) < 1e-7);
  t.ok(Math.abs(normalCdf(1.96) - 0.975) < 1e-3);
  t.equal(probAtMost({ ms: 5, logSd: 0.2 }, 5).toFixed(3), '0.500');
  t.ok(probAtMost({ ms: 5, logSd: 0.2 }, 10) > 0.99);
  t.ok(probAtMost({ ms: 5, logSd: 0.2 }, 2.5) < 0.01);
  t.equal(probAtMost({ ms: 5, logSd: 0 }, 4), 0);
  t.throws(() => fitLatencyModel([{ f: ref, ms: 0 }], universe, ref), /not a positive number/);
});
