import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { GraphBuilder, buildModel } from '../../../src/onnx/builder.js';
import { DT } from '../../../src/onnx/dtype.js';
import { saveModel } from '../../../src/onnx/model.js';
import { evaluateModel } from '../../../src/measure/eval/evaluate.js';

const FASHION = 'examples/fashion-mnist';

/**
 * logits[N,3] = per-channel sums of a [N,3,2,2] image × `gain`: the brightest channel wins, so a red picture is
 * class 0, green 1, blue 2.
 */
async function channelClassifier(dir: string, name: string, gain = 1): Promise<string> {
  const g = new GraphBuilder(name);
  g.input('image', DT.FLOAT, ['N', 3, 2, 2]);
  const w = new Float32Array(12 * 3);
  for (let c = 0; c < 3; c++) for (let i = 0; i < 4; i++) w[(c * 4 + i) * 3 + c] = gain;
  g.initializer('W', DT.FLOAT, [12, 3], w);
  const flat = g.op('Flatten', ['image'], { axis: 1 });
  g.node('MatMul', [flat, 'W'], { outputs: ['logits'] });
  g.output('logits', DT.FLOAT, ['N', 3]);
  const path = join(dir, `${name}.onnx`);
  await saveModel(buildModel(g.graph), path);
  return path;
}

function png(rgb: [number, number, number]): Buffer {
  const p = new PNG({ width: 2, height: 2 });
  for (let i = 0; i < 4; i++) p.data.set([...rgb, 255], i * 4);
  return PNG.sync.write(p);
}

/** Folders 0/1/2 of solid pictures; one blue picture is filed under class 1 (a labelling error the model exposes). */
function imageSet(dir: string): string {
  const root = join(dir, 'images');
  const put = (cls: string, name: string, rgb: [number, number, number]) => { mkdirSync(join(root, cls), { recursive: true }); writeFileSync(join(root, cls, name), png(rgb)); };
  put('0', 'r1.png', [200, 10, 10]);
  put('0', 'r2.png', [250, 0, 40]);
  put('1', 'g1.png', [0, 180, 0]);
  put('1', 'oops-blue.png', [0, 0, 220]);
  put('2', 'b1.png', [30, 30, 90]);
  return root;
}

t.test('the example Fashion-MNIST model reproduces its recorded subset accuracy', async (t) => {
  const meta = JSON.parse(readFileSync(join(FASHION, 'meta.json'), 'utf8')) as { subsetAccuracy: { first: number; accuracy: number } };
  const r = await evaluateModel({ model: join(FASHION, 'model.onnx'), data: FASHION, limit: meta.subsetAccuracy.first, batchSize: 250 });
  t.equal(r.n, meta.subsetAccuracy.first);
  t.equal(r.classification?.top1, meta.subsetAccuracy.accuracy, 'same number the training script measured in PyTorch');
  t.equal(r.classification?.classes, 10);
  t.ok(r.classification!.top5! >= r.classification!.top1);
  t.equal(r.quality.accuracy, r.classification?.top1);
  t.equal(r.data.format, 'idx');
  t.equal(r.fidelity, undefined, 'no reference, no fidelity');
});

t.test('image folder with class folders: exact scores', async (t) => {
  const dir = t.testdir({});
  const model = await channelClassifier(dir, 'rgb');
  const r = await evaluateModel({ model, data: imageSet(dir), batchSize: 2 });
  const c = r.classification!;
  t.equal(r.n, 5);
  t.equal(c.top1, 4 / 5);
  // y_true [0,0,1,1,2], y_pred [0,0,1,2,2]: class 1 recall 1/2, class 2 precision 1/2
  t.same(c.perClass.map((s) => [s.precision, s.recall]), [[1, 1], [1, 0.5], [0.5, 1]]);
  t.ok(Math.abs(c.macro.f1 - (1 + 2 / 3 + 2 / 3) / 3) < 1e-12, `macro F1 ${c.macro.f1}`);
  t.same(c.perClass.map((s) => s.name), ['0', '1', '2'], 'class names from the folders');
  t.equal(r.data.format, 'images');
});

t.test('fidelity to a reference, per output, with no labels', async (t) => {
  const dir = t.testdir({});
  const ref = await channelClassifier(dir, 'ref');
  const doubled = await channelClassifier(dir, 'doubled', 2);
  const loose = join(dir, 'loose');
  mkdirSync(loose);
  writeFileSync(join(loose, 'a.png'), png([200, 10, 10]));
  writeFileSync(join(loose, 'b.png'), png([0, 50, 100]));
  const r = await evaluateModel({ model: doubled, reference: ref, data: loose });
  t.equal(r.classification, undefined, 'loose images carry no labels');
  const f = r.fidelity!.logits;
  t.equal(f.top1Agreement, 1, 'doubling every logit never changes the argmax');
  t.ok(Math.abs(f.cosine - 1) < 1e-6, 'same direction');
  t.ok(Math.abs(f.sqnrDb - 0) < 1e-6, 'error as large as the signal: 0 dB');
  // a's logits: 4·(200, 10, 10)/255; doubled minus reference = the reference itself, largest 800/255
  t.ok(Math.abs(f.maxAbsError - 800 / 255) < 1e-4, `max abs error ${f.maxAbsError}`);
  t.equal(r.quality.top1Agreement, 1);
  t.equal(r.reference?.path, ref);
  await t.rejects(evaluateModel({ model: doubled, data: loose }), { code: 'USAGE', message: /has no labels and no --reference/ });
});

t.test('a labels file replaces the dataset labels', async (t) => {
  const dir = t.testdir({ 'labels.txt': '# fixed labels\n0\n0\n1\n2\n2\n', 'names.txt': '0\n0\n1\n2\n1\n', 'bad.txt': '0\nseven\n' });
  const model = await channelClassifier(dir, 'rgb');
  const images = imageSet(dir);
  const fixed = await evaluateModel({ model, data: images, labels: join(dir, 'labels.txt') });
  t.equal(fixed.classification?.top1, 1, 'with the blue picture relabelled, every prediction is right');
  await t.rejects(evaluateModel({ model, data: images, labels: join(dir, 'bad.txt') }), { code: 'DATASET_CORRUPT', message: /bad\.txt:2: label "seven" is not an integer nor one of the classes/ });
  const short = await evaluateModel({ model, data: images, labels: join(dir, 'names.txt'), limit: 3 });
  t.equal(short.n, 3);
  await t.rejects(evaluateModel({ model, data: images, output: 'nope', labels: join(dir, 'labels.txt') }), { code: 'USAGE', message: /--output "nope" is not an output.*logits/ });
});
