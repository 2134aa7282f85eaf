import t from 'tap';
import { join } from 'node:path';
import { allocate, pruneSensitivity, type LayerSensitivity } from '../../src/compress/prune/sensitivity.js';
import { loadIdxClassification } from '../../src/measure/datasets/idx.js';
import type { DataSource } from '../../src/measure/datasets/source.js';
import { applyRecipe } from '../../src/compress/pipeline.js';
import { loadModel } from '../../src/onnx/model.js';

const layer = (name: string, channels: number, damage: number[]): LayerSensitivity => ({
  layer: name, nodes: [name], channels,
  sweep: [0.25, 0.5, 0.75].map((ratio, i) => ({ ratio, kept: channels - Math.round(ratio * channels), cosine: 1 - damage[i], damage: damage[i] })),
});

t.test('allocation: the lowest damage threshold that meets the target, robust layers pruned hardest', async (t) => {
  const layers = [layer('robust', 100, [0.001, 0.002, 0.004]), layer('fragile', 100, [0.05, 0.2, 0.5])];
  const p = allocate(layers, 0.35);
  t.same(p.perLayer, { robust: 0.75 }, '75 of 200 channels from the robust layer alone');
  t.equal(p.threshold, 0.004);
  t.equal(p.achieved, 0.375);
  t.same(p.recipe, { method: 'channel', ratio: 0, perLayer: { robust: 0.75 }, importance: 'l1', multiple: 1 });
  const q = allocate(layers, 0.5);
  t.same(q.perLayer, { robust: 0.75, fragile: 0.25 });
  // Two alike layers: the threshold alone would take both to 0.5 (50%); stepping one back meets 30% closer.
  const twins = allocate([layer('a', 100, [0.001, 0.002, 0.003]), layer('b', 100, [0.001, 0.002, 0.003])], 0.3);
  t.same(twins.perLayer, { a: 0.25, b: 0.5 }, 'the overshoot is trimmed one grid step at a time');
  t.equal(twins.achieved, 0.375);
  const r = allocate(layers, 0.9);
  t.match(r.note, /only 75\.0% of the channels/, 'an unreachable target says so');
});

t.test('the example CNN: a labelled sweep, per-layer ratios that prune through a recipe', async (t) => {
  const dir = 'examples/fashion-mnist';
  const set = await loadIdxClassification(join(dir, 't10k-images-idx3-ubyte.gz'), join(dir, 't10k-labels-idx1-ubyte.gz'), { limit: 128 });
  const data: DataSource = {
    name: 'fashion-mnist t10k[0..128)', count: 128,
    async *batches(o = {}) {
      for (const b of set.batches(o.batchSize ?? 64)) yield { feeds: { input: { dtype: 'float32', dims: b.dims, data: b.input } }, labels: b.labels };
    },
  };
  const steps: string[] = [];
  const res = await pruneSensitivity(join(dir, 'model.onnx'), { ratios: [0.3, 0.7], target: 0.3, data, samples: 128, excludeNodes: ['/conv1/Conv'] }, { onProgress: (p) => steps.push(p.step) });
  t.equal(res.metric, 'accuracy');
  t.ok(res.baselineAccuracy! > 0.85, `baseline ${res.baselineAccuracy}`);
  t.same(res.layers.map((l) => l.layer), ['/conv2/Conv', '/fc1/Gemm']);
  const why = Object.fromEntries(res.skipped.map((s) => [s.layer, s.why]));
  t.match(why['/conv1/Conv'], /excluded by the recipe/);
  t.match(why['/fc2/Gemm'], /model output/, 'fc2 feeds the output');
  for (const l of res.layers) {
    t.equal(l.sweep.length, 2);
    t.ok(l.sweep[1].kept < l.sweep[0].kept, `${l.layer}: more pruned at 0.7`);
    for (const p of l.sweep) t.ok(Math.abs(p.damage - (res.baselineAccuracy! - p.accuracy!)) < 1e-12);
  }
  t.ok(res.layers.some((l) => l.sweep[1].damage > 0.01), 'pruning 70% of some layer costs accuracy');
  t.ok(res.plan && res.plan.achieved >= 0.3, `plan removes ${(100 * res.plan!.achieved).toFixed(1)}% at damage ≤ ${res.plan!.threshold}`);
  t.ok(steps.includes('prune sensitivity'));
  const pruned = await applyRecipe(await loadModel(join(dir, 'model.onnx')), { v: 1, prune: res.plan!.recipe });
  t.equal(pruned.passes[0].changed.length, Object.keys(res.plan!.perLayer).length, 'the plan is a working recipe');
});
