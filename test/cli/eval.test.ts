import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { evalOptionsFromArgs, evalReport } from '../../src/cli/commands/eval.js';
import type { EvalResult } from '../../src/measure/eval/evaluate.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const FASHION = 'examples/fashion-mnist';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', import.meta.resolve('tsx'), MAIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

t.test('flags map to eval options', async (t) => {
  t.same(evalOptionsFromArgs({ model: 'm.onnx', data: 'd', json: false }), { model: 'm.onnx', data: 'd' });
  t.same(evalOptionsFromArgs({ model: 'm', data: 'd', labels: 'l.txt', reference: 'r', output: 'o', batch: 8, limit: 100, threshold: 0, imageSize: '224x200', layout: 'NHWC', mean: '0.485,0.456,0.406', std: '0.229, 0.224, 0.225', threads: 2, json: true }), {
    model: 'm', data: 'd', labels: 'l.txt', reference: 'r', output: 'o', batchSize: 8, limit: 100, threshold: 0, session: { intraOpThreads: 2 },
    image: { size: [224, 200], layout: 'NHWC', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  });
  t.throws(() => evalOptionsFromArgs({ model: 'm', data: 'd', imageSize: '224', json: false }), { code: 'USAGE', message: /--image-size "224": expected HxW/ });
  t.throws(() => evalOptionsFromArgs({ model: 'm', data: 'd', mean: '0.5,x', json: false }), { code: 'USAGE', message: /--mean "0.5,x"/ });
  t.throws(() => evalOptionsFromArgs({ model: 'm', data: 'd', limit: 0, json: false }), { code: 'USAGE', message: /--limit/ });
});

t.test('report layout', async (t) => {
  const r: EvalResult = {
    v: 1, model: { path: '/m/small.onnx', sha256: 'x', bytes: 1 }, reference: { path: '/m/fp32.onnx', sha256: 'y', bytes: 2 },
    data: { path: '/d', format: 'npz', count: 4 }, n: 4,
    classification: {
      output: 'logits', n: 4, classes: 2, correct: 3, top1: 0.75, macro: { precision: 0.75, recall: 0.75, f1: 0.75 },
      binary: { positive: 1, precision: 1, recall: 0.5, f1: 2 / 3, tp: 1, fp: 0, fn: 1, tn: 2 }, perClass: [], confusion: [[2, 0], [1, 1]],
    },
    fidelity: { logits: { cosine: 0.999, sqnrDb: 30, maxAbsError: 0.01, top1Agreement: 1, nonFiniteMismatches: 0, n: 8 } },
    quality: {}, notes: [], wallS: 1.5,
  };
  const text = evalReport(r);
  t.match(text, /^small\.onnx on 4 examples \(npz: \/d\)/);
  t.match(text, /top-1 accuracy\s+0\.7500/);
  t.match(text, /recall \(class 1\)\s+0\.5000/);
  t.match(text, /output vs fp32\.onnx\s+cosine\s+SQNR dB\s+max abs err\s+top-1 agree\s+values\n[- ]+\nlogits\s+0\.9990\s+30\s/);
});

t.test('edgetune eval on the example model and its IDX test set', async (t) => {
  const r = await cli(['eval', join(FASHION, 'model.onnx'), '--data', FASHION, '--limit', '500', '--json']);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as EvalResult;
  t.equal(out.n, 500);
  t.equal(out.classification?.classes, 10);
  t.ok(out.classification!.top1 > 0.8, `top-1 ${out.classification!.top1} (the model scores 0.9056 on all 10,000)`);
  t.equal(out.quality.accuracy, out.classification!.top1);
  const none = await cli(['eval', join(FASHION, 'model.onnx'), '--data', join(FASHION, 'missing')]);
  t.equal(none.code, 1);
  t.match(none.stderr, /missing: no such file or folder/);
});
