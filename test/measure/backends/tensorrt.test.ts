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

// A stand-in executable that replays a recorded trtexec log (Jetson Nano, TensorRT 8) and writes the per-run
// times file where --exportTimes asks: it exercises the process handling, parsing and result assembly without a GPU.
function replayTrtexec(dir: string, log: string, exitCode = 0): string {
  const script = join(dir, 'trtexec');
  const body = [
    '#!/bin/sh',
    'for a in "$@"; do case "$a" in --exportTimes=*) cp "' + join(FIX, 'times-constructed.json') + '" "${a#--exportTimes=}";; esac; done',
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
