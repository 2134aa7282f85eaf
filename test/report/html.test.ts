import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderTuneReport, writeTuneReport } from '../../src/report/html.js';
import { niceTicks, scatterSvg } from '../../src/report/svg.js';
import type { Measurement, TuneResult } from '../../src/types.js';

function m(label: string, p90: number, accuracy: number, bytes: number): Measurement {
  return {
    v: 1, label, recipe: { v: 1 }, model: { sha256: label, bytes },
    latencyMs: { p50: p90 * 0.9, p90, p95: p90, p99: p90, mean: p90, std: 0, cv: 0, n: 30, ci95p50: [p90, p90] },
    loadMs: 1, firstRunMs: 1, peakRssMB: 90, throttled: null, quality: { accuracy, sqnrDb: 30, cosine: 0.999 },
  };
}

const base = m('fp32 t2', 10, 0.92, 4000);
const int8 = m('int8 <t2> & "x"', 4, 0.915, 1000);
const pruned = m('pruned', 3, 0.80, 800);
const result: TuneResult = {
  v: 1, device: { id: 'dev-1', target: 'x86_64-vnni' }, model: { path: '/m/model.onnx', sha256: 'f'.repeat(64), bytes: 4000 },
  budget: { latencyMs: 5, percentile: 90, maxAccuracyDrop: 1 }, baseline: base, chosen: int8, front: [pruned, int8, base],
  trials: [base, int8, pruned], wallS: 12.5, output: '/m/out.onnx',
};

t.test('the report is one self-contained page with the chart, the budget and the chosen point', async (t) => {
  const html = renderTuneReport(result);
  t.match(html, /^<!doctype html>/);
  t.match(html, /<svg[^>]*viewBox/);
  t.match(html, /class="budget"/, 'budget line');
  t.match(html, /budget 5 ms/);
  t.match(html, /<g class="chosen">/, 'chosen point');
  t.match(html, /class="front"/, 'front polyline');
  t.match(html, /accuracy floor \(−1 pt\)/);
  t.match(html, /Chosen: int8 &lt;t2&gt; &amp; &quot;x&quot;/, 'labels are escaped');
  t.notMatch(html, /<script|src=["']?https?:|href=["']?https?:|@import|url\(/i, 'nothing fetched, nothing run');
  t.match(html, /<tr class="miss"><td>pruned/, 'the trial breaking the accuracy floor is marked');
  const dir = t.testdir();
  await writeTuneReport(result, join(dir, 'r.html'));
  t.equal(await readFile(join(dir, 'r.html'), 'utf8'), html);
});

t.test('candidates never measured are drawn hollow at their predicted latency', async (t) => {
  const html = renderTuneReport({ ...result, search: { measured: 3, replayed: 0, stopReason: 'done', timedOut: false, log: [], confirmations: [], unmeasured: [{ label: 'never', predictedMs: 2, quality: { accuracy: 0.9 } }] } });
  t.match(html, /<circle class="predicted"[^>]*><title>never \(not measured\)/);
  t.notMatch(renderTuneReport(result), /class="predicted"/);
});

t.test('an unmet budget says so, with the reason', async (t) => {
  const html = renderTuneReport({ ...result, chosen: null, output: undefined, infeasible: { reason: 'no candidate meets the budget; the closest, pruned: too slow', best: pruned } });
  t.match(html, /Budget not met/);
  t.match(html, /the closest, pruned: too slow/);
  t.notMatch(html, /<g class="chosen">/);
});

t.test('fidelity axis draws exact copies at the top, and ticks are round', async (t) => {
  const exact = { ...base, quality: { sqnrDb: Infinity, cosine: 1 } };
  const q = { ...int8, quality: { sqnrDb: 35, cosine: 0.999 } };
  const html = renderTuneReport({ ...result, budget: { latencyMs: 5, percentile: 90 }, baseline: exact, trials: [exact, q], front: [q, exact], chosen: q });
  t.match(html, /SQNR/);
  t.match(html, /exact/);
  t.same(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  t.same(niceTicks(3, 3), [3]);
  const svg = scatterSvg([{ x: NaN, y: 1, label: 'bad' }], { xLabel: 'x', yLabel: 'y' });
  t.notMatch(svg, /NaN/, 'non-finite points are left out');
});

t.test('trials measured while throttled are marked in the table and explained above it', async (t) => {
  const hot = { ...int8, throttled: true };
  const cool = { ...base, throttled: false };
  const html = renderTuneReport({ ...result, baseline: cool, chosen: hot, trials: [cool, hot, pruned], front: [pruned, hot, cool] });
  t.match(html, /<th>throttled<\/th>/, 'a throttled column');
  const row = (label: RegExp) => html.split('\n').find((l) => /^<tr/.test(l) && label.test(l)) ?? '';
  t.match(row(/fp32 t2/), /<td>no<\/td>/, 'a cool trial says no');
  t.match(row(/int8 &lt;t2&gt;/), /<td class="hot"[^>]*>⚠ yes<\/td>/, 'the throttled trial is marked');
  t.match(row(/pruned/), /<td title="this device cannot tell">\?<\/td>/, 'unknown is "?", not "no"');
  t.match(html, /1 of 3 trial\(s\) were measured while the CPU was throttled or changed frequency \(int8 &lt;t2&gt;/);
  t.match(html, /Its confirmation ran while the CPU was throttled/, 'the verdict warns when the chosen one was');
  const calm = renderTuneReport(result);
  t.notMatch(calm, /⚠ yes|were measured while the CPU was throttled/, 'nothing marked when nothing throttled');
  t.match(calm, /cannot tell whether it throttled/, 'a device that cannot tell says so once');
});
