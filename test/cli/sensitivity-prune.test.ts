// edgetune sensitivity --prune through the CLI: a labelled sweep on the example's IDX set whose plan is a recipe
// that edgetune compress accepts as it is.
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pruneSensitivityOptionsFromArgs, type SensitivityArgs } from '../../src/cli/commands/sensitivity.js';
import type { PruneSensitivityResult } from '../../src/compress/prune/sensitivity.js';
import type { CompressReport } from '../../src/types.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const example = 'examples/fashion-mnist/model.onnx';
const data = 'examples/fashion-mnist';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', import.meta.resolve('tsx'), MAIN, ...args], { timeout: 150_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

t.test('--prune flags map to sweep options and bad ones are refused by name', async (t) => {
  const base: SensitivityArgs = { model: 'm.onnx', mode: 'dynamic', perChannel: false, json: false, prune: true };
  t.same(pruneSensitivityOptionsFromArgs({ ...base, ratios: '0.2, 0.4', target: 0.3, samples: 32, multiple: 8, importance: 'l2', shape: ['x=1x3x8x8'] }), {
    ratios: [0.2, 0.4], target: 0.3, samples: 32, multiple: 8, importance: 'l2', shapes: { x: [1, 3, 8, 8] },
  });
  t.throws(() => pruneSensitivityOptionsFromArgs({ ...base, ratios: '0.2,1.5' }), { code: 'USAGE', message: /--ratios "0.2,1.5"/ });
  t.throws(() => pruneSensitivityOptionsFromArgs({ ...base, ratios: '0.2,x' }), { code: 'USAGE', message: /--ratios/ });
  t.throws(() => pruneSensitivityOptionsFromArgs({ ...base, multiple: 0 }), { code: 'USAGE', message: /--multiple/ });
  t.throws(() => pruneSensitivityOptionsFromArgs({ ...base, samples: 1.5 }), { code: 'USAGE', message: /--samples/ });
});

t.test('edgetune sensitivity --prune on the example with labels; its plan compresses as a recipe', async (t) => {
  const r = await cli(['sensitivity', example, '--prune', '--data', data, '--samples', '128', '--ratios', '0.3,0.7', '--target', '0.3', '--multiple', '4', '--json']);
  t.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as PruneSensitivityResult;
  t.equal(res.metric, 'accuracy', 'labels from the IDX set: damage is lost top-1');
  t.equal(res.examples, 128);
  t.same(res.layers.map((l) => l.layer), ['/conv1/Conv', '/conv2/Conv', '/fc1/Gemm']);
  t.match(res.skipped.find((s) => s.layer === '/fc2/Gemm')?.why, /model output/);
  for (const l of res.layers) for (const p of l.sweep) t.equal(p.kept % 4, 0, `${l.layer} @${p.ratio}: ${p.kept} kept, a multiple of 4`);
  const plan = res.plan!;
  t.ok(plan.achieved >= 0.3, `plan removes ${(100 * plan.achieved).toFixed(1)}% at damage ≤ ${plan.threshold}`);
  t.equal(plan.recipe.multiple, 4);

  const dir = t.testdir();
  const recipe = join(dir, 'plan.json');
  await writeFile(recipe, JSON.stringify({ v: 1, prune: { ...plan.recipe, reconstruct: true } }));
  const c = await cli(['compress', example, '--recipe', recipe, '--data', data, '--force', '-o', join(dir, 'p.onnx'), '--json']);
  t.equal(c.code, 0, c.stderr);
  const report = JSON.parse(c.stdout) as CompressReport;
  t.same(report.passes[0].changed.map((x) => x.node).sort(), Object.keys(plan.perLayer).sort(), 'exactly the planned layers are pruned');
  t.ok(report.fidelity.logits.cosine > 0.98, `held-out cosine ${report.fidelity.logits.cosine.toFixed(4)}`);

  const bad = await cli(['sensitivity', example, '--prune', '--ratios', '0,0.5']);
  t.not(bad.code, 0);
  t.match(bad.stderr, /--ratios "0,0.5"/);
});
