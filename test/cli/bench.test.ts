import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel } from '../../src/onnx/model.js';
import { benchOptionsFromArgs, benchTable } from '../../src/cli/commands/bench.js';
import { latencyStats } from '../../src/measure/stats.js';
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
  t.same(benchOptionsFromArgs({ threads: 2, shape: ['x=4x8'], seed: 9, runs: 30, warmup: 3, maxSeconds: 2 }), {
    session: { intraOpThreads: 2 }, shapes: { x: [4, 8] }, seed: 9,
    minRuns: 30, maxRuns: 30, minMs: 0, maxMs: 2000, warmupRuns: 3, warmupMs: Infinity,
  });
  t.equal(benchOptionsFromArgs({ runs: 30 }).maxMs, Infinity, '--runs alone is not cut short by time');
  t.throws(() => benchOptionsFromArgs({ runs: 0 }), { code: 'USAGE', message: /--runs/ });
  t.throws(() => benchOptionsFromArgs({ warmup: -1 }), { code: 'USAGE', message: /--warmup/ });
  t.throws(() => benchOptionsFromArgs({ maxSeconds: 0 }), { code: 'USAGE', message: /--max-seconds/ });
});

t.test('table layout', async (t) => {
  const r = (path: string, p50: number): BenchResult => ({
    v: 1, model: { path, sha256: 'x', bytes: 1 }, session: { intraOpThreads: 2 }, inputs: [], latencyMs: latencyStats([p50, p50]),
    samplesMs: [p50, p50], loadMs: 12.5, firstRunMs: 3, peakRssMB: 100, warmupRuns: 5, notes: [],
  });
  const single = benchTable({ kind: 'single', result: r('/m/a.onnx', 2) }).split('\n');
  t.match(single[0], /^model\s+threads\s+p50 ms\s+p90 ms\s+p99 ms\s+mean ms\s+std ms\s+load ms\s+first run ms\s+peak RSS MB\s+runs$/);
  t.match(single[2], /^a\.onnx\s+2\s+2\s+2\s+2\s+2\s+0\s+12\.50\s+3\s+100\s+2$/);
  const cmp = benchTable({ kind: 'compare', result: { v: 1, a: r('/m/a.onnx', 2), b: r('/m/b.onnx', 1), ratioP50: 0.5 } }).split('\n');
  t.match(cmp[0], /p50 ×$/);
  t.match(cmp[2], /^a\.onnx .* 1$/);
  t.match(cmp[3], /^b\.onnx .* 0\.5000$/);
});

t.test('edgetune bench --json', async (t) => {
  const path = await tiny(t.testdir(), 'relu');
  const r = await cli(['bench', path, '--json', '--runs', '7', '--warmup', '1', '--shape', 'x=3x8', '--threads', '1']);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as BenchResult;
  t.equal(out.samplesMs.length, 7);
  t.equal(out.latencyMs.n, 7);
  t.equal(out.warmupRuns, 1);
  t.same(out.inputs, [{ name: 'x', dtype: 'float32', dims: [3, 8] }]);
  t.same(out.session, { intraOpThreads: 1 });
});

t.test('edgetune bench --compare prints a table with the ratio', async (t) => {
  const dir = t.testdir();
  const a = await tiny(dir, 'first');
  const b = await tiny(dir, 'second');
  const r = await cli(['bench', a, '--compare', b, '--runs', '20', '--warmup', '1']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.match(lines[0], /p50 ×$/);
  t.match(lines[2], /^first\.onnx\s+default\s/);
  t.match(lines[3], /^second\.onnx\s+default\s/);
  t.match(r.stderr, /note: input "x" dim 0 \("batch"\) = 1 \(batch default\)/);
  t.match(r.stderr, /second\.onnx median is \d+\.\d{3}× first\.onnx's/);
});

t.test('usage errors exit 2 and name the input', async (t) => {
  const path = await tiny(t.testdir(), 'relu');
  const r = await cli(['bench', path, '--shape', 'x=1x9']);
  t.equal(r.code, 2);
  t.match(r.stderr, /input "x" dim 1: --shape gives 9 but the model fixes it at 8/);
  t.equal(r.stdout, '');
  const missing = await cli(['bench', join(t.testdir(), 'none.onnx')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /none\.onnx: no such file/);
});
