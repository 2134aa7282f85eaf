import t from 'tap';
import { loadTargets } from '../../src/targets/load.js';
import { peakThroughput } from '../../src/targets/priors.js';
import { enumerateSpace, gridSize, recipeFor, spaceAxes } from '../../src/targets/space.js';
import { RecipeSchema } from '../../src/schema/recipe.js';
import { parseWithSchema } from '../../src/schema/validate.js';

const targets = await loadTargets();
const byName = (n: string) => targets.find((x) => x.name === n)!;

t.test('every built-in target: every point of its space is a valid recipe', async (t) => {
  for (const target of targets) {
    const axes = spaceAxes(target, 4);
    t.equal(axes.quant[0], 'fp32', `${target.name}: the baseline comes first`);
    const all = enumerateSpace(target, 4, 10_000);
    t.equal(all.length, gridSize(axes));
    for (const { recipe } of all) {
      const v = parseWithSchema(RecipeSchema, recipe);
      if (!v.ok) t.fail(`${target.name}: ${JSON.stringify(recipe)}: ${v.errors.join('; ')}`);
      if (recipe.quantize?.mode === 'fp16') t.notOk(recipe.quantize.fullGraph, 'fp16 is storage only on CPUs');
    }
  }
});

t.test('x86 without VNNI: U8S8 with reduce-range; with VNNI: no reduce-range', async (t) => {
  const avx2 = byName('x86_64-avx2');
  t.same(recipeFor(avx2, { quant: 'dynamic', threads: 2 }).quantize, { mode: 'dynamic', perChannel: true, activationType: 'uint8', reduceRange: true });
  t.same(recipeFor(avx2, { quant: 'static', threads: 2 }).quantize, { mode: 'static', perChannel: true, activationType: 'uint8', reduceRange: true });
  t.equal(recipeFor(byName('x86_64-vnni'), { quant: 'dynamic', threads: 2 }).quantize?.reduceRange, false);
  t.equal(recipeFor(byName('generic-x86_64'), { quant: 'dynamic', threads: 2 }).quantize?.reduceRange, true);
});

t.test('boards without dot products try no static int8; dot-product boards do, with int8 weight-only compute', async (t) => {
  for (const n of ['raspberry-pi-3', 'raspberry-pi-4', 'jetson-nano']) {
    t.notOk(spaceAxes(byName(n), 4).quant.includes('static'), n);
    t.same(spaceAxes(byName(n), 4).quant, ['fp32', 'dynamic', 'fp16', 'weight-only-4'], n);
  }
  const pi5 = byName('raspberry-pi-5');
  t.ok(spaceAxes(pi5, 4).quant.includes('static'));
  t.same(recipeFor(pi5, { quant: 'weight-only-4', threads: 4 }).quantize, { mode: 'weight-only', bits: 4, accuracyLevel: 4 });
});

t.test('axes: threads resolved to the device, pruning and low-rank points, session settings', async (t) => {
  const orin = byName('jetson-orin-nano');
  t.same(spaceAxes(orin, 4).threads, [2, 4], 'a 6-thread setting is dropped on a 4-core device');
  t.same(spaceAxes(byName('x86_64-vnni'), 2).threads, [1, 2], "'all' and 4 collapse to the 2 cores there");
  const r = recipeFor(orin, { quant: 'dynamic', threads: 4, prune: 0.25, lowrankEnergy: 0.99, spinning: false });
  t.same(r.prune, { method: 'channel', ratio: 0.25 });
  t.same(r.lowrank, { energy: 0.99 });
  t.same(r.session, { intraOpThreads: 4, spinning: false });
  t.same(recipeFor(orin, { quant: 'fp32', threads: 6 }), { v: 1, session: { intraOpThreads: 6 } });
  t.throws(() => spaceAxes(orin, 0), RangeError);
  t.throws(() => enumerateSpace(orin, 6, 10), /full grid has \d+ points \(more than 10\)/);
});

t.test('peak throughput from sourced priors; unknown stays unknown', async (t) => {
  const pi5 = peakThroughput(byName('raspberry-pi-5'));
  t.equal(pi5.fp32Gflops, 153.6, '16 FLOP/cycle x 4 cores x 2.4 GHz');
  t.equal(pi5.int8Gops, 614.4);
  t.equal(pi5.int8OverFp32, 4);
  t.equal(peakThroughput(byName('jetson-orin-nano'), { cores: 6, maxMHz: 1728 }).fp32Gflops, 165.9);
  const pi4 = peakThroughput(byName('raspberry-pi-4'));
  t.equal(pi4.fp32Gflops, undefined);
  t.match(pi4.notes.join(), /no fp32FlopsPerCycle prior/);
});

t.test('every target cites sources and the facts the issue asks for are encoded', async (t) => {
  for (const target of targets) t.ok(target.sources.length >= 2, `${target.name} has sources`);
  t.equal(byName('raspberry-pi-4').priors.int8Gain, 'low');
  t.equal(byName('jetson-nano').priors.int8Gain, 'low');
  t.equal(byName('raspberry-pi-5').priors.int8Gain, 'high');
  t.equal(byName('raspberry-pi-5').priors.fp16ComputeSlowdown, 4);
  t.equal(byName('jetson-orin-nano').priors.int8Gain, 'high');
  t.same(byName('x86_64-avx2').match.isaNone, ['vnni']);
});
