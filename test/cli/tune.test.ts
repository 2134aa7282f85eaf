// `edgetune tune` as a user runs it: a real process on the bundled example, real ONNX Runtime measurements.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { packageRoot } from '../../src/util/paths.js';
import type { TuneResult } from '../../src/types.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const MODEL = join(packageRoot(), 'examples', 'fashion-mnist', 'model.onnx');

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', import.meta.resolve('tsx'), MAIN, ...args], { timeout: 170_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

// fp32 and dynamic int8 with one thread and nothing else: the target's other axes are pinned to one value each.
const SPACE = { v: 1, prune: [], lowrankEnergy: [], graphOptimizationLevel: ['all'], spinning: [true] };
const common = (dir: string) => ['tune', MODEL, '--quant', 'fp32', 'dynamic', '--threads', '1', '--space', join(dir, 'space.json'), '--eval-samples', '200', '--quick'];

t.test('tune on the example: the chosen model, the TuneResult and the HTML report; exit 3 when nothing fits', { skip: existsSync(MODEL) ? false : 'examples/fashion-mnist/model.onnx is missing' }, async (t) => {
  const dir = t.testdir();
  await writeFile(join(dir, 'space.json'), JSON.stringify(SPACE));
  const out = join(dir, 'out.onnx');
  const ok = await cli([...common(dir), '--budget-ms', '1000', '-o', out]);
  t.equal(ok.code, 0, `exit 0 (stderr: ${ok.stderr.slice(-800)})`);
  t.match(ok.stderr, /chosen: .* ≤ 1000 ms budget \(confirmed\)/, 'the verdict is printed');
  t.match(ok.stderr, /\(fallback: no specific target matched\)|→ target \S+/, 'names the matched target');

  // The chosen model is a real ONNX model that ONNX Runtime loads and runs.
  const session = await ort.InferenceSession.create(out, { intraOpNumThreads: 1 });
  try {
    const input = session.inputNames[0];
    const y = await session.run({ [input]: new ort.Tensor('float32', new Float32Array(28 * 28), [1, 1, 28, 28]) });
    t.same(y[session.outputNames[0]].dims, [1, 10], 'it runs: ten class scores');
  } finally {
    await session.release();
  }

  const result = JSON.parse(await readFile(join(dir, 'out.tune.json'), 'utf8')) as TuneResult & { strategy: string; space: { candidates: number } };
  t.equal(result.v, 1);
  t.match(result, { budget: { latencyMs: 1000, percentile: 90 }, baseline: { latencyMs: { p90: Number } }, chosen: { latencyMs: { p90: Number } } });
  t.ok(Array.isArray(result.front) && result.front.length >= 1, 'a Pareto front');
  t.ok(Array.isArray(result.trials) && result.trials.length >= 1 && result.trials.length <= 2, `${result.trials.length} trial(s) of 2 candidates`);
  t.equal(result.space.candidates, 2, 'the space is fp32 and dynamic at one thread: two candidates');
  t.ok(result.trials.every((m) => /^(fp32|int8-dynamic) t1$/.test(m.label ?? '')), `only the asked quantization modes: ${result.trials.map((m) => m.label).join(', ')}`);
  t.equal(result.output, out);
  t.ok(result.chosen!.latencyMs.n >= result.trials[0].latencyMs.n, 'the chosen one was confirmed with the longer benchmark');

  const html = await readFile(join(dir, 'out.tune.html'), 'utf8');
  t.match(html, /^<!doctype html>/);
  t.match(html, /<svg[^>]*viewBox/, 'an inline SVG chart');
  t.match(html, /budget 1000 ms/);

  // An impossible budget: exit code 3, the closest candidate and the failed constraint by how much; no model written.
  const none = join(dir, 'none.onnx');
  const bad = await cli([...common(dir), '--budget-ms', '0.0001', '-o', none]);
  t.equal(bad.code, 3, `exit 3 (stderr: ${bad.stderr.slice(-800)})`);
  t.match(bad.stderr, /NOT MET: no candidate meets the budget; the closest, (fp32|int8-dynamic) t1: p90 latency [\d.]+ ms is over the 0\.0001 ms budget by [\d.]+ ms/);
  await t.rejects(stat(none), 'no model is written when nothing fits');
  const r2 = JSON.parse(await readFile(join(dir, 'none.tune.json'), 'utf8')) as TuneResult;
  t.equal(r2.chosen, null);
  t.match(r2.infeasible, { reason: /the closest/, best: { label: /t1$/ } });
});
