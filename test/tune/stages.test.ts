import t from 'tap';
import { boundOf, selectStage, stageOf } from '../../src/tune/stages.js';
import { modelKeyOf, tuneAxes, targetFromSpace } from '../../src/tune/space.js';

const axes = tuneAxes(targetFromSpace({ quant: ['fp32', 'dynamic'], threads: [1], prune: [0.25, 0.5], lowrankEnergy: [0.99] }), 1, { v: 1, fallback: [1] });

t.test('stages count structural steps; parents are one step less compressed', async (t) => {
  const s0 = stageOf({ quant: 'dynamic', threads: 1 }, axes, modelKeyOf);
  t.equal(s0.stage, 0);
  t.same(s0.parents, []);
  const s2 = stageOf({ quant: 'dynamic', threads: 1, prune: 0.25, lowrankEnergy: 0.99 }, axes, modelKeyOf);
  t.equal(s2.stage, 2);
  t.same(s2.parents.sort(), [modelKeyOf({ quant: 'dynamic', threads: 1, lowrankEnergy: 0.99 }), modelKeyOf({ quant: 'dynamic', threads: 1, prune: 0.25 })].sort());
  const p5 = stageOf({ quant: 'dynamic', threads: 1, prune: 0.5 }, axes, modelKeyOf);
  t.equal(p5.stage, 2);
  t.same(p5.parents, [modelKeyOf({ quant: 'dynamic', threads: 1, prune: 0.25 })]);
  const fb = stageOf({ quant: 'dynamic', threads: 1, fallback: 1 }, axes, modelKeyOf);
  t.equal(fb.stage, 1);
  t.same(fb.parents, [modelKeyOf({ quant: 'fp32', threads: 1 })], 'a fallback is bounded by fp32 of the same stem');
});

t.test('a stage opens only for models whose parents score above the incumbent', async (t) => {
  const a = { key: 'a', stage: 1, parents: ['p'] };
  const b = { key: 'b', stage: 1, parents: ['q'] };
  const c = { key: 'c', stage: 1, parents: ['p', 'r'] };
  const known = new Map([['p', 0.9], ['q', 0.95]]);
  t.equal(boundOf(a, known), 0.9);
  t.equal(boundOf(c, known), undefined, 'an unknown parent: nothing known');
  const s = selectStage([a, b, c], known, 0.92);
  t.same(s.prepare.map((k) => k.key), ['b', 'c']);
  t.same(s.bounded.map((x) => [x.k.key, x.bound]), [['a', 0.9]]);
  t.same(selectStage([a, b, c], known, undefined).prepare.length, 3, 'nothing feasible yet: everything');
  t.same(selectStage([a], known, 0.9).prepare.length, 0, 'equal is not above');
});
