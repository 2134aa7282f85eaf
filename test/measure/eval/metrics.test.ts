import t from 'tap';
import { ClassificationMetrics } from '../../../src/measure/eval/metrics.js';

/** One-hot-ish score rows: the predicted class gets 1, others 0. */
const rows = (preds: number[], classes: number) => preds.flatMap((p) => Array.from({ length: classes }, (_, c) => (c === p ? 1 : 0)));

t.test('three classes, checked against scikit-learn by hand', async (t) => {
  // y_true = [0,0,1,1,2,2], y_pred = [0,1,1,1,2,0]
  // sklearn: accuracy 4/6; precision per class [1/2, 2/3, 1]; recall [1/2, 1, 1/2]; f1 [1/2, 4/5, 2/3]
  const m = new ClassificationMetrics(3);
  m.add(rows([0, 1, 1], 3), [0, 0, 1]);
  m.add(rows([1, 2, 0], 3), [1, 2, 2], 3);
  const r = m.result();
  t.equal(r.n, 6);
  t.equal(r.correct, 4);
  t.equal(r.top1, 4 / 6);
  t.same(r.perClass.map((c) => [c.precision, c.recall, c.support, c.predicted]), [[1 / 2, 1 / 2, 2, 2], [2 / 3, 1, 2, 3], [1, 1 / 2, 2, 1]]);
  t.ok(Math.abs(r.macro.precision - (1 / 2 + 2 / 3 + 1) / 3) < 1e-12);
  t.ok(Math.abs(r.macro.recall - (1 / 2 + 1 + 1 / 2) / 3) < 1e-12);
  t.ok(Math.abs(r.macro.f1 - (1 / 2 + 4 / 5 + 2 / 3) / 3) < 1e-12);
  t.same(r.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]]);
  t.equal(r.binary, undefined, 'three classes: no binary scores');
  t.equal(r.top5, undefined, 'top-5 needs more than 5 classes');
});

t.test('binary: two score columns, or one score and a threshold', async (t) => {
  // y_true = [1,1,1,0,0], y_pred = [1,0,1,1,0]: tp 2, fn 1, fp 1, tn 1 → precision 2/3, recall 2/3
  const two = new ClassificationMetrics(2);
  two.add(rows([1, 0, 1, 1, 0], 2), [1, 1, 1, 0, 0]);
  t.match(two.result().binary, { positive: 1, tp: 2, fp: 1, fn: 1, tn: 1, precision: 2 / 3, recall: 2 / 3 });
  const one = new ClassificationMetrics(1, 0.5);
  one.add([0.9, 0.2, 0.7, 0.6, 0.5], [1, 1, 1, 0, 0]);
  t.same(one.result().binary, two.result().binary, 'a single score above 0.5 is the positive class');
  const logits = new ClassificationMetrics(1, 0);
  logits.add([2, -1], [1, 0]);
  t.equal(logits.result().top1, 1, 'threshold 0 for logits');
});

t.test('top-5 and undefined scores', async (t) => {
  const m = new ClassificationMetrics(8);
  const scores = [
    [8, 7, 6, 5, 4, 3, 2, 1], // label 4 is 5th best: in top-5
    [8, 7, 6, 5, 4, 3, 2, 1], // label 5 is 6th: out
  ].flat();
  m.add(scores, [4, 5]);
  const r = m.result();
  t.equal(r.top1, 0);
  t.equal(r.top5, 0.5);
  const c4 = r.perClass[4];
  t.equal(c4.precision, undefined, 'never predicted: precision unknown');
  t.equal(c4.recall, 0);
  t.equal(r.perClass[7].support + r.perClass[7].predicted, 0);
  t.equal(r.macro.precision, 0, 'classes seen: 0 (predicted twice, precision 0), 4 and 5 (never predicted, counted 0)');
});

t.test('bad labels and shapes', async (t) => {
  const m = new ClassificationMetrics(3);
  t.throws(() => m.add(rows([0], 3), [3], 40), { code: 'DATASET_CORRUPT', message: /example 40: label 3 is outside the model's 3 classes/ });
  t.throws(() => m.add([1, 2], [0]), RangeError);
  t.throws(() => new ClassificationMetrics(0), RangeError);
});
