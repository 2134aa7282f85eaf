import t from 'tap';
import { baselineOf, buildCandidates, candidatesFromRecipes, fitDepthwiseAxis, targetFromSpace, tuneAxes, modelKeyOf } from '../../src/tune/space.js';
import { parseDuration, parseSpaceFile, confirmPlan, tunePaths } from '../../src/tune/options.js';
import type { Target } from '../../src/types.js';

const target: Target = {
  v: 1, name: 't', match: {}, notes: '', defaults: { threads: 'all', graphOptimizationLevel: 'all' },
  space: { quant: ['fp32', 'dynamic', 'fp16'], threads: [1, 'all'], prune: [0.5], spinning: [true, false], graphOptimizationLevel: ['extended', 'all'] },
  priors: {}, sources: ['x'],
};

t.test('axes come from the target; a space file replaces axes and adds fallback', async (t) => {
  const a = tuneAxes(target, 4);
  t.same(a.quant, ['fp32', 'dynamic', 'fp16']);
  t.same(a.threads, [1, 4]);
  t.same(a.prune, [0, 0.5]);
  t.same(a.fallback, [0]);
  const b = tuneAxes(target, 4, { v: 1, quant: ['dynamic'], threads: [2, 'all'], fallback: [2], prune: [] });
  t.same(b.quant, ['fp32', 'dynamic'], 'fp32 is always kept');
  t.same(b.threads, [2, 4]);
  t.same(b.fallback, [0, 2]);
  t.same(b.prune, [0]);
});

t.test('the grid drops useless combinations and says why', async (t) => {
  const axes = tuneAxes(target, 2, { v: 1, fallback: [1] });
  const { candidates, skipped } = buildCandidates(target, axes);
  // 3 quant × 2 prune × 2 fallback × 2 opt × 2 spin × 2 threads = 96 points
  t.equal(candidates.length + skipped.length, 96);
  t.ok(skipped.some((s) => /quantizes nothing/.test(s.why)), 'fallback on fp32/fp16 is useless');
  t.ok(skipped.some((s) => /no thread pool/.test(s.why)), 'spinning at one thread is useless');
  t.notOk(candidates.some((c) => c.point.quant === 'fp16' && c.point.fallback), 'no fp16 fallback candidate kept');
  t.equal(new Set(candidates.map((c) => c.id)).size, candidates.length, 'ids are unique');
  t.equal(new Set(candidates.map((c) => c.label)).size, candidates.length, 'labels are unique');
  const dyn = candidates.find((c) => c.point.quant === 'dynamic' && c.point.fallback === 1)!;
  t.same(dyn.recipe.quantize?.fallback, { worstK: 1 });
  t.equal(candidates[0].point.quant, 'fp32', 'fp32 first');
  const same = candidates.filter((c) => c.modelKey === dyn.modelKey);
  t.ok(same.length > 1 && same.every((c) => c.recipe.quantize?.mode === 'dynamic'), 'session variants share one model');
  t.throws(() => buildCandidates(target, axes, { max: 10 }), /restrict it with a --space file/);
});

t.test('depthwise axis: static int8 twice (depthwise int8 and fp32), other modes once, keys and labels distinct', async (t) => {
  const tgt: Target = { ...target, space: { quant: ['fp32', 'dynamic'], staticInt8: true, threads: [1] } };
  const axes = tuneAxes(tgt, 1, { v: 1, depthwise: [true, false] });
  t.same(axes.depthwise, [true, false]);
  const { candidates, skipped } = buildCandidates(tgt, axes);
  const statics = candidates.filter((c) => c.point.quant === 'static');
  t.equal(statics.length, 2);
  const dw = statics.find((c) => c.point.depthwise === false)!;
  t.equal(dw.recipe.quantize?.depthwise, false, 'the recipe keeps depthwise convs fp32');
  t.equal(statics.find((c) => c !== dw)!.recipe.quantize?.depthwise, undefined, 'the other one quantizes them');
  t.match(dw.label, /-dwfp32/);
  t.not(dw.modelKey, statics.find((c) => c !== dw)!.modelKey, 'two different models');
  t.equal(modelKeyOf({ quant: 'static', threads: 1 }), 'static|p0|lr-|fb0', 'keys without the axis are unchanged (old journals)');
  t.equal(skipped.filter((s) => /no int8 depthwise convs/.test(s.why)).length, 2, 'fp32 and dynamic have no depthwise variant');
  t.same(candidatesFromRecipes([dw.recipe])[0].point.depthwise, false, 'a recipe with depthwise false maps back to the point');
  t.equal(tuneAxes(tgt, 1).depthwise?.length, 1, 'without a space file: one value');
});

t.test('the depthwise axis fits the model: added for depthwise models, dropped without them, a space file decides', async (t) => {
  const tgt: Target = { ...target, space: { quant: ['fp32', 'dynamic'], staticInt8: true, threads: [1] } };
  const plain = tuneAxes(tgt, 1);
  const added = fitDepthwiseAxis(plain, 11, false);
  t.same(added.axes.depthwise, [true, false]);
  t.match(added.note, /11 depthwise conv\(s\): static int8 is also tried with them kept fp32/);
  t.equal(buildCandidates(tgt, added.axes).candidates.filter((c) => c.point.quant === 'static').length, 2, 'two static candidates');
  t.same(fitDepthwiseAxis(plain, 0, false), { axes: plain }, 'no depthwise convs: nothing to add, no note');
  const both = tuneAxes(tgt, 1, { v: 1, depthwise: [true, false] });
  const dropped = fitDepthwiseAxis(both, 0, true);
  t.same(dropped.axes.depthwise, [true]);
  t.match(dropped.note, /no depthwise convs/);
  const only = fitDepthwiseAxis(tuneAxes(tgt, 1, { v: 1, depthwise: [false] }), 0, true);
  t.same(only.axes.depthwise, [true], 'asked for only the fp32 form: static int8 as usual');
  t.same(fitDepthwiseAxis(tuneAxes(tgt, 1, { v: 1, depthwise: [true] }), 11, true).axes.depthwise, [true], 'a space file that says [true] is obeyed');
  const noStatic: Target = { ...target, space: { quant: ['fp32', 'dynamic'], threads: [1] } };
  t.same(fitDepthwiseAxis(tuneAxes(noStatic, 1), 11, false).note, undefined, 'no static int8 in the space: nothing to fit');
});

t.test('pruning is reconstructed when asked (there is data)', async (t) => {
  const axes = tuneAxes(target, 1);
  const a = buildCandidates(target, axes, { reconstruct: true }).candidates.find((c) => c.recipe.prune)!;
  t.equal(a.recipe.prune?.reconstruct, true);
  const b = buildCandidates(target, axes).candidates.find((c) => c.recipe.prune)!;
  t.notOk(b.recipe.prune?.reconstruct);
});

t.test('the baseline is fp32 with the target default session', async (t) => {
  const { candidates } = buildCandidates(target, tuneAxes(target, 2));
  const b = baselineOf(candidates, target, 2)!;
  t.equal(b.point.quant, 'fp32');
  t.equal(b.point.threads, 2);
  t.equal(b.point.graphOptimizationLevel, 'all');
  t.equal(b.modelKey, modelKeyOf({ quant: 'fp32', threads: 1 }));
});

t.test('explicit recipes keep their order and share models across session blocks', async (t) => {
  const c = candidatesFromRecipes([
    { v: 1, quantize: { mode: 'dynamic' }, session: { intraOpThreads: 1 } },
    { v: 1, quantize: { mode: 'dynamic' }, session: { intraOpThreads: 2 } },
    { v: 1 },
  ]);
  t.equal(c[0].modelKey, c[1].modelKey);
  t.not(c[0].id, c[1].id);
  t.equal(c[2].modelKey, modelKeyOf({ quant: 'fp32', threads: 1 }));
  t.equal(c[1].point.threads, 2);
  t.equal(c[0].point.quant, 'dynamic');
});

t.test('a bare space becomes a usable target', async (t) => {
  const tg = targetFromSpace({ quant: ['fp32', 'dynamic'], threads: [1] });
  t.same(tuneAxes(tg, 4).quant, ['fp32', 'dynamic']);
});

t.test('space files, durations, paths and the confirmation plan', async (t) => {
  t.throws(() => parseSpaceFile({ v: 1, quant: ['int3'] }, 'f.json'), /f\.json is not a valid search space:\n {2}\/quant/);
  t.same(parseSpaceFile({ quant: ['static'] }).quant, ['static']);
  t.equal(parseDuration('10m'), 600);
  t.equal(parseDuration('1h30m'), 5400);
  t.equal(parseDuration('45'), 45);
  t.throws(() => parseDuration('ten minutes'), /--time-limit/);
  const p = tunePaths({ model: '/a/m.onnx' });
  t.equal(p.output, '/a/m.tuned.onnx');
  t.equal(p.result, '/a/m.tuned.tune.json');
  t.equal(p.report, '/a/m.tuned.tune.html');
  t.equal(p.journal, '/a/m.tuned.tune-journal.jsonl');
  t.equal(tunePaths({ model: '/a/m.onnx', reportPath: false }).report, undefined);
  t.throws(() => tunePaths({ model: '/a/m.onnx', output: '/a/m.onnx' }), /is the input model/);
  t.same(confirmPlan({ minRuns: 10, minMs: 100, maxMs: 1000 }), { minRuns: 30, minMs: 300, maxMs: 3000, ciRelWidth: 0.015 });
});
