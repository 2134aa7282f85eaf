// Heavy work runs in a child process: real compress and tune runs, progress across the process boundary,
// error codes kept, and cancel kills the work.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTask, WorkError } from '../../../src/agent/work/worker.js';
import { GraphBuilder, buildModel } from '../../../src/onnx/builder.js';
import { DT } from '../../../src/onnx/dtype.js';
import { saveModel } from '../../../src/onnx/model.js';
import type { Progress } from '../../../src/types.js';
import { packageRoot } from '../../../src/util/paths.js';

async function matmul(dir: string): Promise<string> {
  const g = new GraphBuilder('mm');
  g.input('x', DT.FLOAT, [1, 16]);
  g.initializer('w', DT.FLOAT, [16, 8], Float32Array.from({ length: 128 }, (_, i) => Math.sin(i)));
  g.node('MatMul', ['x', 'w'], { outputs: ['y'] });
  g.output('y', DT.FLOAT, [1, 8]);
  const path = join(dir, 'mm.onnx');
  await saveModel(buildModel(g.graph), path);
  return path;
}

t.test('compress runs in a child: the model is written, progress crosses over, the report comes back', async (t) => {
  const dir = t.testdir();
  const input = await matmul(dir);
  const output = join(dir, 'mm.fp16.onnx');
  const progress: Progress[] = [];
  const report = await runTask<any>('compress', { input, output, recipe: { v: 1, quantize: { mode: 'fp16' } } }, { onProgress: (p) => progress.push(p) });
  t.match(report, { v: 1, output: { path: output, sha256: /^[0-9a-f]{64}$/ } });
  t.ok(existsSync(output));
  t.ok(readFileSync(output).length < readFileSync(input).length, 'fp16 weights are smaller');
  t.ok(progress.length > 0 && progress.every((p) => typeof p.step === 'string' && p.pct >= 0), 'progress arrived');
});

t.test('errors keep their code; a missing input is MODEL_NOT_FOUND', async (t) => {
  const dir = t.testdir();
  await t.rejects(runTask('compress', { input: join(dir, 'none.onnx'), output: join(dir, 'o.onnx'), recipe: { v: 1 } }), { code: 'MODEL_NOT_FOUND', message: /none\.onnx/ });
  await t.rejects(runTask('nope' as any, {}), WorkError);
});

const example = join(packageRoot(), 'examples', 'fashion-mnist', 'model.onnx');
t.test('cancel: the tune in the child stops and the call rejects CANCELED', { skip: existsSync(example) ? false : 'no example model' }, async (t) => {
  const dir = t.testdir();
  const ac = new AbortController();
  const p = runTask('tune', { model: example, output: join(dir, 'out.onnx'), budgetMs: 5, percentile: 90, device: { id: 't' } }, {
    signal: ac.signal,
    onProgress: () => ac.abort(new Error('test cancel')),
  }, { graceMs: 3000 });
  await t.rejects(p, { code: 'CANCELED' });
  t.notOk(existsSync(join(dir, 'out.onnx')), 'no output from a canceled tune');
});
