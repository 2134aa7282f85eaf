import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel } from '../../src/onnx/model.js';
import { benchOptionsFromArgs, benchSummary, benchTable, parseShapeSets, runBench } from '../../src/cli/commands/bench.js';
import { latencyStats, pairedRatio } from '../../src/measure/stats.js';
import type { BenchResult } from '../../src/measure/bench.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', import.meta.resolve('tsx'), MAIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function tiny(dir: string, name: string): Promise<string> {
  const g = new GraphBuilder(name);
  g.input('x', DT.FLOAT, ['batch', 8]);
  g.node('Relu', ['x'], { outputs: ['y'] });
  g.output('y', DT.FLOAT, ['batch', 8]);
  const path = join(dir, `${name}.onnx`);
  await saveModel(buildModel(g.graph), path);
  return path;
}

t.test('flags map to bench options', async (t) => {
  t.same(benchOptionsFromArgs({}), {});
  t.same(benchOptionsFromArgs({ threads: 2, interThreads: 1, graphOpt: 'basic', executionMode: 'parallel', spinning: false, seed: 9, runs: 30, warmup: 3, maxSeconds: 2 }), {
    session: { intraOpThreads: 2, interOpThreads: 1, graphOptimizationLevel: 'basic', executionMode: 'parallel', spinning: false }, seed: 9,
    minRuns: 30, maxRuns: 30, minMs: 0, maxMs: Infinity, ciRelWidth: Infinity, warmupRuns: 3, warmupMs: 0, warmupMaxMs: Infinity,
  }, '--runs wins over --max-seconds: exactly that many runs');
  t.same(benchOptionsFromArgs({ ci: 5, minSeconds: 2, maxSeconds: 20 }), { ciRelWidth: 0.05, minMs: 2000, maxMs: 20_000 });
  t.equal(benchOptionsFromArgs({ ci: 0 }).ciRelWidth, Infinity, '--ci 0 stops at the minimums');
  t.same(benchOptionsFromArgs({ warmupMs: 5000 }), { warmupMs: 5000, warmupRuns: 0, warmupMaxMs: 5000 });
  t.throws(() => benchOptionsFromArgs({ runs: 0 }), { code: 'USAGE', message: /--runs/ });
  t.throws(() => benchOptionsFromArgs({ warmup: -1 }), { code: 'USAGE', message: /--warmup/ });
  t.throws(() => benchOptionsFromArgs({ maxSeconds: 0 }), { code: 'USAGE', message: /--max-seconds/ });
  t.throws(() => benchOptionsFromArgs({ ci: -1 }), { code: 'USAGE', message: /--ci/ });
});

t.test('repeated --shape makes shape sets', async (t) => {
  t.same(parseShapeSets([]), [{}]);
  t.same(parseShapeSets(['x=1x8', 'x=4x8', 'mask=1x8']), [{ x: [1, 8], mask: [1, 8] }, { x: [4, 8], mask: [1, 8] }]);
  t.throws(() => parseShapeSets(['x=1', 'x=2', 'y=1', 'y=2', 'y=3']), { code: 'USAGE', message: /"x" 2 times but another input 3 times/ });
});

t.test('table and summary layout', async (t) => {
  const r = (path: string, p50: number, throttled: boolean | null): BenchResult => ({
    v: 1, backend: 'onnxruntime', model: { path, sha256: 'x', bytes: 1 }, session: { intraOpThreads: 2 }, inputs: [{ name: 'x', dtype: 'float32', dims: [1, 8] }],
    latencyMs: latencyStats([p50, p50]), samplesMs: [p50, p50], loadMs: 12.5, firstRunMs: 3, peakRssMB: 100, warmupRuns: 5,
    timed: { wallMs: 10, stopReason: 'ci', ciRelWidth: 0.02, ciTarget: 0.02 }, throttled, notes: ['warning: hot'],
  });
  const single = benchTable({ kind: 'single', result: r('/m/a.onnx', 2, null) }).split('\n');
  t.match(single[0], /^model\s+shape\s+threads\s+p50 ms\s+CI\s+p90 ms\s+p99 ms\s+mean ms\s+cv\s+load ms\s+first run ms\s+peak RSS MB\s+runs\s+throttled$/);
  t.match(single[2], /^a\.onnx\s+1x8\s+2\s+2\s+±1\.0%\s+2\s+2\s+2\s+0\s+12\.50\s+3\s+100\s+2\s+\?$/);
  const trt = { ...r('/m/a.onnx', 2, true), backend: 'tensorrt' as const, firstRunMs: undefined, loadMs: undefined };
  t.match(benchTable({ kind: 'single', result: trt }).split('\n')[2], /^a\.onnx\s+1x8\s+gpu\s.*\s-\s+-\s+100\s+2\s+YES$/, 'unknown values print as -');
  const ratio = pairedRatio([1, 1, 1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
  const cmp = { kind: 'compare' as const, result: { v: 1 as const, a: r('/m/a.onnx', 2, false), b: r('/m/b.onnx', 1, false), ratioP50: 0.5, ratio, stopReason: 'ci' as const, throttled: false, notes: ['spin off'] } };
  t.equal(benchTable(cmp).split('\n').length, 4);
  t.same(benchSummary(cmp), ['b.onnx / a.onnx = 0.500× (95% CI 0.500-0.500, 6 interleaved pairs): faster', 'note: spin off', 'note: warning: hot']);
});

t.test('edgetune bench --json', async (t) => {
  const path = await tiny(t.testdir(), 'relu');
  const r = await cli(['bench', path, '--json', '--runs', '7', '--warmup', '1', '--shape', 'x=3x8', '--threads', '1', '--no-spinning']);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as BenchResult;
  t.equal(out.samplesMs.length, 7);
  t.equal(out.latencyMs.n, 7);
  t.equal(out.warmupRuns, 1);
  t.same(out.inputs, [{ name: 'x', dtype: 'float32', dims: [3, 8] }]);
  t.same(out.session, { intraOpThreads: 1, spinning: false });
  t.equal(out.timed.stopReason, 'max-runs');
  t.ok('throttled' in out && out.env, 'conditions are in the JSON');
});

t.test('edgetune bench --data takes the inputs from the dataset', async (t) => {
  // The example model's input is [N,1,28,28]: N comes from --batch, which also sizes the --data batch.
  const model = 'examples/fashion-mnist/model.onnx';
  const r = await cli(['bench', model, '--data', 'examples/fashion-mnist', '--batch', '3', '--json', '--runs', '4', '--warmup', '1', '--threads', '1']);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as BenchResult;
  t.same(out.inputs, [{ name: 'input', dtype: 'float32', dims: [3, 1, 28, 28] }], 'three examples of the IDX set, 28x28 from its images');
  t.same(out.notes.filter((n) => n.startsWith('inputs')), ['inputs: the first 3 example(s) of examples/fashion-mnist (idx)'], 'the report names the dataset as the source');
  t.notOk(out.notes.some((n) => /batch default|generated|random/.test(n)), 'nothing was generated');
  t.equal(out.latencyMs.n, 4);
  const shaped = await cli(['bench', model, '--data', 'examples/fashion-mnist', '--shape', 'input=2x1x28x28']);
  t.equal(shaped.code, 2, 'the dataset gives the shapes: --shape is refused');
  t.match(shaped.stderr, /--data gives the input shapes; drop --shape/);

  // A model whose image dims are dynamic: only the dataset can size them (generated inputs are refused).
  const g = new GraphBuilder('images');
  g.input('x', DT.FLOAT, ['N', 'h', 'w']);
  g.node('Relu', ['x'], { outputs: ['y'] });
  g.output('y', DT.FLOAT, ['N', 'h', 'w']);
  const dynamic = join(t.testdir(), 'dynamic.onnx');
  await saveModel(buildModel(g.graph), dynamic);
  const fromData = await cli(['bench', dynamic, '--data', 'examples/fashion-mnist', '--batch', '2', '--json', '--runs', '3', '--warmup', '1']);
  t.equal(fromData.code, 0, fromData.stderr);
  t.same((JSON.parse(fromData.stdout) as BenchResult).inputs[0].dims, [2, 28, 28], 'h and w are the IDX images\' 28x28');
  const generated = await cli(['bench', dynamic, '--batch', '2', '--runs', '3']);
  t.equal(generated.code, 2);
  t.match(generated.stderr, /input "x" dim 1 \("h"\) is dynamic and has no default/);
});

t.test('edgetune bench: two shapes, then a comparison', async (t) => {
  const dir = t.testdir();
  const a = await tiny(dir, 'first');
  const b = await tiny(dir, 'second');
  const shapes = await cli(['bench', a, '--runs', '5', '--warmup', '1', '--shape', 'x=1x8', '--shape', 'x=4x8']);
  t.equal(shapes.code, 0, shapes.stderr);
  const rows = shapes.stdout.trim().split('\n');
  t.match(rows[2], /^first\.onnx\s+1x8\s/);
  t.match(rows[3], /^first\.onnx\s+4x8\s/);
  const r = await cli(['bench', a, '--compare', b, '--runs', '20', '--warmup', '1']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.match(lines[2], /^first\.onnx\s+1x8\s+default\s/);
  t.match(lines[3], /^second\.onnx\s+1x8\s+default\s/);
  t.match(r.stderr, /note: input "x" dim 0 \("batch"\) = 1 \(batch default\)/);
  t.match(r.stderr, /second\.onnx \/ first\.onnx = \d+\.\d{3}× \(95% CI \d+\.\d{3}-\d+\.\d{3}, 20 interleaved pairs\)/);
  t.match(r.stderr, /thread-pool spinning off for the comparison/);
});

t.test('usage errors exit 2 and name the input or flag', async (t) => {
  const path = await tiny(t.testdir(), 'relu');
  const r = await cli(['bench', path, '--shape', 'x=1x9']);
  t.equal(r.code, 2);
  t.match(r.stderr, /input "x" dim 1: --shape gives 9 but the model fixes it at 8/);
  t.equal(r.stdout, '');
  await t.rejects(runBench({ model: path, precision: 'int8', json: false }), { code: 'USAGE', message: /--precision applies to --backend tensorrt only/ });
  await t.rejects(runBench({ model: path, backend: 'tensorrt', compare: path, json: false }), { code: 'USAGE', message: /drop --compare/ });
  const missing = await cli(['bench', join(t.testdir(), 'none.onnx')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /none\.onnx: no such file/);
});
