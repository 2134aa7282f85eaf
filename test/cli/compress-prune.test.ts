// edgetune compress --recipe with a prune step, end to end through the CLI: reconstruction reads --data, and
// prune → lowrank → quantize compose in one recipe with every step's report kept.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
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

async function recipeFile(dir: string, name: string, recipe: object): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, JSON.stringify(recipe));
  return p;
}

t.test('compress --recipe prune.json --data: reconstruction refits from the dataset and wins back the fidelity', async (t) => {
  const dir = t.testdir();
  const prune = (reconstruct: boolean) => ({ v: 1, prune: { method: 'channel', ratio: 0.3, multiple: 4, reconstruct } });
  const plain = await recipeFile(dir, 'plain.json', prune(false));
  const rec = await recipeFile(dir, 'rec.json', prune(true));

  // Without reconstruction, 30% of the channels cost too much fidelity for the default --min-cosine 0.99.
  const refused = await cli(['compress', example, '--recipe', plain, '--data', data, '-o', join(dir, 'refused.onnx')]);
  t.not(refused.code, 0);
  t.match(refused.stderr, /cosine similarity 0\.\d+ with the original, below 0\.99; nothing was written/);
  t.same((await readdir(dir)).sort(), ['plain.json', 'rec.json'], 'nothing written');

  const forced = await cli(['compress', example, '--recipe', plain, '--data', data, '--force', '-o', join(dir, 'plain.onnx'), '--json']);
  t.equal(forced.code, 0, forced.stderr);
  const without = JSON.parse(forced.stdout) as CompressReport;
  t.same(without.passes.map((p) => p.pass), ['prune-channel']);

  const done = await cli(['compress', example, '--recipe', rec, '--data', data, '-o', join(dir, 'rec.onnx'), '--json']);
  t.equal(done.code, 0, done.stderr);
  const withRec = JSON.parse(done.stdout) as CompressReport;
  t.same(withRec.passes.map((p) => p.pass), ['prune-channel', 'prune-reconstruct'], 'both reports kept');
  t.same(withRec.passes[1].changed.map((c) => c.node).sort(), ['/conv2/Conv', '/fc1/Gemm', '/fc2/Gemm'], 'every layer that lost input channels is refitted');
  const note = withRec.warnings.find((w) => w.startsWith('reconstruction on'))!;
  t.match(note, /^reconstruction on 256 calibration examples \([^)]*fashion-mnist\): output cosine [\d.]+, top-1 agreement [\d.]+% without → [\d.]+, top-1 agreement [\d.]+% with$/, note);
  const f = withRec.passes[1].fidelity!;
  t.ok(f && f.examples === 256 && f.withReconstruction.cosine > f.withoutReconstruction.cosine, `--json carries the fidelity fields: ${JSON.stringify(f)}`);
  t.notMatch(withRec.warnings.join('\n'), /random inputs/, 'the dataset was used, not generated inputs');
  // Verification compares on examples 256..320, which reconstruction never read.
  t.equal(withRec.verifiedOn?.examples, 64);
  const [cw, cr] = [without.fidelity.logits.cosine, withRec.fidelity.logits.cosine];
  t.ok(cr > 0.99 && cr > cw, `held-out output cosine: ${cw.toFixed(4)} without reconstruction → ${cr.toFixed(4)} with`);
  t.ok(Math.abs(withRec.output.bytes - without.output.bytes) < 0.01 * without.output.bytes, `reconstruction changes weights, not shapes: ${without.output.bytes} vs ${withRec.output.bytes} bytes`);
});

t.test('prune (reconstructed) → lowrank → static int8 in one compress --recipe --data, each report kept', async (t) => {
  const dir = t.testdir();
  const recipe = await recipeFile(dir, 'all.json', {
    v: 1,
    prune: { method: 'channel', ratio: 0.3, multiple: 4, reconstruct: true },
    lowrank: { energy: 0.95 },
    quantize: { mode: 'static', calibration: { method: 'minmax', samples: 64 } },
  });
  const out = join(dir, 'all.onnx');
  const r = await cli(['compress', example, '--recipe', recipe, '--data', data, '-o', out, '--json']);
  t.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as CompressReport;
  t.same(report.passes.map((p) => p.pass), ['prune-channel', 'prune-reconstruct', 'lowrank', 'quantize-static']);
  for (const p of report.passes) t.ok(p.changed.length > 0, `${p.pass}: ${p.changed.length} changed`);
  t.match(report.passes[2].changed.find((c) => c.node === '/fc1/Gemm')?.what, /^rank \d+ of \d+/, 'the pruned fc1 is factored');
  t.ok(report.output.bytes < report.input.bytes * 0.25, `${report.input.bytes} → ${report.output.bytes} bytes`);
  t.ok(report.fidelity.logits.cosine > 0.99, `held-out cosine ${report.fidelity.logits.cosine.toFixed(4)} (written, so above --min-cosine 0.99)`);
  const s = await ort.InferenceSession.create(out);
  t.same([...s.inputNames], ['input']);
  t.same([...s.outputNames], ['logits']);
  const y = await s.run({ input: new ort.Tensor('float32', new Float32Array(3 * 784).fill(0.5), [3, 1, 28, 28]) });
  t.same(y.logits.dims, [3, 10], 'same output shape');
  await s.release();
});
