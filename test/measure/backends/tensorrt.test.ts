import t from 'tap';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, buildModel } from '../../../src/onnx/builder.js';
import { DT } from '../../../src/onnx/dtype.js';
import { saveModel } from '../../../src/onnx/model.js';
import { benchTensorRT, findTrtexec, trtexecArgs } from '../../../src/measure/backends/tensorrt.js';

const FIX = new URL('../../fixtures/measure/trtexec/', import.meta.url).pathname;

async function relu(dir: string): Promise<string> {
  const g = new GraphBuilder('relu');
  g.input('x', DT.FLOAT, ['batch', 8]);
  g.node('Relu', ['x'], { outputs: ['y'] });
  g.output('y', DT.FLOAT, ['batch', 8]);
  const path = join(dir, 'relu.onnx');
  await saveModel(buildModel(g.graph), path);
  return path;
}

t.test('trtexec command line', async (t) => {
  const args = trtexecArgs('/m/a.onnx', '/w/a.engine', '/w/times.json', { precision: 'int8', shapes: { x: [4, 8], y: [1, 3] }, durationS: 2 });
  t.same(args, [
    '--onnx=/m/a.onnx', '--saveEngine=/w/a.engine', '--exportTimes=/w/times.json', '--int8', '--shapes=x:4x8,y:1x3',
    '--warmUp=500', '--duration=2', '--iterations=20', '--useSpinWait',
  ]);
  t.notOk(trtexecArgs('/m', '/e', '/t', { precision: 'fp32' }).some((a) => /^--(fp16|int8|best|fp32)$/.test(a)), 'fp32 is trtexec\'s default: no flag');
  t.ok(trtexecArgs('/m', '/e', '/t').includes('--fp16'), 'fp16 by default');
});

t.test('absent trtexec: found nowhere, and bench says what to do', async (t) => {
  const dir = t.testdir({});
  t.equal(await findTrtexec({ PATH: dir, TRTEXEC: join(dir, 'nope') }), existsSync('/usr/src/tensorrt/bin/trtexec') ? '/usr/src/tensorrt/bin/trtexec' : undefined);
  const present = await findTrtexec();
  if (present) { t.comment(`trtexec at ${present}: the absent case cannot be shown here`); return; }
  const model = await relu(dir);
  await t.rejects(benchTensorRT(model, { env: false }), { code: 'BENCH_FAILED', message: /needs TensorRT's trtexec.*\/usr\/src\/tensorrt\/bin.*TRTEXEC=/ });
});

t.test('found through $TRTEXEC and PATH', async (t) => {
  const dir = t.testdir({ bin: { trtexec: '#!/bin/sh\nexit 0\n' }, other: { trtexec: '#!/bin/sh\nexit 0\n' } });
  chmodSync(join(dir, 'bin/trtexec'), 0o755);
  chmodSync(join(dir, 'other/trtexec'), 0o755);
  t.equal(await findTrtexec({ PATH: `/nonexistent:${join(dir, 'bin')}` }), join(dir, 'bin/trtexec'));
  t.equal(await findTrtexec({ PATH: join(dir, 'bin'), TRTEXEC: join(dir, 'other/trtexec') }), join(dir, 'other/trtexec'), '$TRTEXEC wins');
});

// A stand-in executable that replays a recorded trtexec log and writes a per-run times file where --exportTimes
// asks (`times`: a file to copy, or 'none' to write nothing like a trtexec without --exportTimes): it exercises the
// process handling, parsing and result assembly without a GPU.
function replayTrtexec(dir: string, log: string, exitCode = 0, times: string = join(FIX, 'times-constructed.json')): string {
  const script = join(dir, 'trtexec');
  const body = [
    '#!/bin/sh',
    ...(times === 'none' ? [] : ['for a in "$@"; do case "$a" in --exportTimes=*) cp "' + times + '" "${a#--exportTimes=}";; esac; done']),
    `cat "${log}"`,
    `exit ${exitCode}`,
  ].join('\n');
  writeFileSync(script, body + '\n');
  chmodSync(script, 0o755);
  return script;
}

t.test('a replayed trtexec run becomes a BenchResult', async (t) => {
  const dir = t.testdir({});
  const model = await relu(dir);
  const trtexec = replayTrtexec(dir, join(FIX, 'jetson-nano-trt8-fp16.log'));
  const r = await benchTensorRT(model, { trtexec, shapes: { x: [2, 8] }, env: false });
  t.equal(r.backend, 'tensorrt');
  t.same(r.samplesMs, [90.338, 89.592, 91.492]);
  t.equal(r.latencyMs.p50, 90.338);
  t.equal(r.latencyMs.n, 3);
  t.same(r.inputs, [{ name: 'x', dtype: 'float32', dims: [2, 8] }]);
  t.equal(r.firstRunMs, undefined, 'trtexec does not report a first run: unknown, not 0');
  t.equal(r.loadMs, undefined, 'no deserialisation line in this log');
  t.equal(r.throttled, null);
  t.match(r.notes.join('\n'), /fp16 engine built by trtexec; samples are trtexec's latencyMs/);
  t.match(r.notes.join('\n'), /first-run time unknown/);
  t.match(r.notes.join('\n'), /trtexec's own median latency is 101\.092 ms against 90\.338 ms/, 'the constructed times disagree with the log: said');
});

t.test('no per-run times: the summaries of the recorded logs fill the same result shape, flagged', async (t) => {
  const dir = t.testdir({});
  const model = await relu(dir);
  const cases: Array<{ log: string; row: string; stats: Partial<Record<'p50' | 'p90' | 'p95' | 'p99' | 'mean', number>>; nan: string[] }> = [
    // TensorRT 8 one-line rows: median, mean and p99 printed; no p90/p95, no query count.
    { log: 'jetson-nano-trt8-fp16.log', row: 'Latency', stats: { p50: 101.092, p99: 104.225, mean: 101.425 }, nan: ['p90', 'p95', 'std', 'cv', 'n'] },
    // TensorRT 10 (8.6+) prints p90 and p95 too.
    { log: 'jetson-agx-orin-trt10.log', row: 'Latency', stats: { p50: 76.3436, p90: 76.4209, p95: 76.446, p99: 76.4476, mean: 76.3344 }, nan: ['std', 'cv', 'n'] },
    // TensorRT 7 block layout ("Host Latency" header).
    { log: 'jetson-agx-xavier-trt7.log', row: 'Latency', stats: { p50: 6.60986, p99: 8.90259, mean: 6.84532 }, nan: ['p90', 'p95', 'std'] },
    // Only Enqueue and GPU Compute blocks were posted: GPU compute is what there is.
    { log: 'rtx2080-trt7-gpu-compute.log', row: 'GPU Compute Time', stats: { p50: 9.17056, p99: 9.88184, mean: 9.19428 }, nan: ['p90', 'p95'] },
    { log: 'jetson-xavier-agx-trt84.log', row: 'Latency', stats: { p50: 0.401947, p99: 0.420288, mean: 0.402238 }, nan: ['p90'] },
    { log: 'jetson-pasted-summary.log', row: 'Latency', stats: { p50: 6.02185, p99: 6.17407, mean: 5.93288 }, nan: ['p95'] },
  ];
  for (const c of cases) {
    await t.test(c.log, async (t) => {
      const trtexec = replayTrtexec(t.testdir({}), join(FIX, c.log), 0, 'none');
      const r = await benchTensorRT(model, { trtexec, env: false });
      t.equal(r.backend, 'tensorrt');
      t.same(r.samplesMs, [], 'no per-run samples exist');
      t.match(r.latencyMs, c.stats);
      for (const k of c.nan) t.ok(Number.isNaN(r.latencyMs[k as 'p90']), `${k} is not in the summary: NaN, not a made-up number`);
      t.ok(Number.isNaN(r.latencyMs.ci95p50[0]) && Number.isNaN(r.latencyMs.ci95p50[1]), 'no CI of the median without samples');
      t.equal(r.timed.ciRelWidth, undefined);
      const notes = r.notes.join('\n');
      t.match(notes, new RegExp(`only summary percentiles were available: latency is trtexec's printed "${c.row}" summary`));
      t.match(notes, /wrote no per-run times to .*times\.json \(this trtexec may not support --exportTimes\); fell back to the log's summary, which does not give .*std, cv, ci95p50/);
      t.notMatch(notes, /own median latency/, 'no cross-check against samples that do not exist');
    });
  }
});

t.test('an unreadable times file falls back too, and says why', async (t) => {
  const dir = t.testdir({ 'bad.json': '[{"latencyMs": 90.3}, {"latencyMs": ' });
  const model = await relu(dir);
  const trtexec = replayTrtexec(dir, join(FIX, 'jetson-nano-trt8-fp16.log'), 0, join(dir, 'bad.json'));
  const r = await benchTensorRT(model, { trtexec, env: false });
  t.equal(r.latencyMs.p50, 101.092);
  t.match(r.notes.join('\n'), /times\.json: not JSON .*; fell back to the log's summary/);
});

t.test('neither times nor a summary: BENCH_FAILED naming both', async (t) => {
  const dir = t.testdir({ 'bare.log': '&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec\n&&&& PASSED TensorRT.trtexec [TensorRT v8201] # trtexec\n' });
  const model = await relu(dir);
  const trtexec = replayTrtexec(dir, join(dir, 'bare.log'), 0, 'none');
  await t.rejects(benchTensorRT(model, { trtexec, env: false }), { code: 'BENCH_FAILED', message: /no latency to report: trtexec wrote no per-run times .* and the log has no performance summary/ });
});

t.test('a failing trtexec gives BENCH_FAILED with its error lines', async (t) => {
  const dir = t.testdir({ 'fail.log': '&&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec\n[E] [TRT] ModelImporter.cpp:773: While parsing node number 0 [FooOp]\n&&&& FAILED TensorRT.trtexec [TensorRT v8201] # trtexec\n' });
  const model = await relu(dir);
  const trtexec = replayTrtexec(dir, join(dir, 'fail.log'), 1);
  await t.rejects(benchTensorRT(model, { trtexec, env: false }), { code: 'BENCH_FAILED', message: /trtexec failed \(exit code 1\): .*While parsing node number 0 \[FooOp\]/ });
});

t.test('live trtexec', { skip: existsSync('/usr/src/tensorrt/bin/trtexec') ? false : 'trtexec is not installed here (JetPack puts it in /usr/src/tensorrt/bin)' }, async (t) => {
  const model = await relu(t.testdir({}));
  const r = await benchTensorRT(model, { shapes: { x: [1, 8] }, durationS: 1 });
  t.ok(r.latencyMs.n > 0);
  t.ok(readFileSync(model).length > 0);
});
