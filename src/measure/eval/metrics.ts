// Classification metrics over a stream of predictions: a confusion matrix and top-k counts are all that is kept,
// so memory does not grow with the dataset. Definitions follow scikit-learn (precision = tp/(tp+fp), recall =
// tp/(tp+fn), F1 their harmonic mean; macro = unweighted mean over the classes seen in labels or predictions).
import { DatasetError } from '../../errors.js';

export interface PrfScores {
  /** undefined when the class was never predicted (tp + fp = 0) */
  precision?: number;
  /** undefined when the class never occurs in the labels (tp + fn = 0) */
  recall?: number;
  f1?: number;
}

export interface ClassScores extends PrfScores {
  label: number;
  name?: string;
  /** examples whose label is this class */
  support: number;
  predicted: number;
}

export interface ClassificationResult {
  n: number;
  classes: number;
  correct: number;
  /** top-1 accuracy */
  top1: number;
  /** top-5 accuracy, when there are more than 5 classes */
  top5?: number;
  /** unweighted means over the classes seen; an undefined per-class score counts as 0, as scikit-learn's default */
  macro: { precision: number; recall: number; f1: number };
  /** for two classes or a single score: precision/recall/F1 of the positive class */
  binary?: { positive: number; precision?: number; recall?: number; f1?: number; tp: number; fp: number; fn: number; tn: number };
  perClass: ClassScores[];
  /** confusion[true][predicted] */
  confusion: number[][];
}

function prf(tp: number, fp: number, fn: number): PrfScores {
  const out: PrfScores = {};
  if (tp + fp > 0) out.precision = tp / (tp + fp);
  if (tp + fn > 0) out.recall = tp / (tp + fn);
  if (out.precision !== undefined && out.recall !== undefined) {
    out.f1 = out.precision + out.recall === 0 ? 0 : (2 * out.precision * out.recall) / (out.precision + out.recall);
  }
  return out;
}

export class ClassificationMetrics {
  private readonly confusion: Float64Array;
  private n = 0;
  private top5 = 0;

  /**
   * `classes` is the width of the score rows (≥ 2), or 1 for a single score compared with `threshold` (positive
   * above it), which is scored as two classes.
   */
  constructor(readonly classes: number, readonly threshold = 0.5, readonly names?: readonly string[]) {
    if (!(Number.isInteger(classes) && classes >= 1)) throw new RangeError(`classes must be a positive integer, got ${classes}`);
    const k = Math.max(2, classes);
    this.confusion = new Float64Array(k * k);
  }

  private get k(): number { return Math.max(2, this.classes); }

  /** Adds `rows` examples: `scores` holds rows × classes values, `labels` one class per row. `first` is the index of the batch's first example, for messages. */
  add(scores: ArrayLike<number>, labels: ArrayLike<number>, first = 0): void {
    const rows = labels.length;
    if (scores.length !== rows * this.classes) {
      throw new RangeError(`${scores.length} scores for ${rows} labels; expected ${this.classes} per example`);
    }
    const k = this.k;
    for (let r = 0; r < rows; r++) {
      const label = labels[r];
      if (!(Number.isInteger(label) && label >= 0 && label < k)) {
        throw new DatasetError('DATASET_CORRUPT', `example ${first + r}: label ${label} is outside the model's ${k} classes (0..${k - 1})`);
      }
      let pred: number;
      if (this.classes === 1) {
        pred = scores[r] > this.threshold ? 1 : 0;
      } else {
        const off = r * this.classes;
        pred = 0;
        for (let c = 1; c < this.classes; c++) if (scores[off + c] > scores[off + pred]) pred = c;
        // Top-5: the label is among the 5 best when fewer than 5 classes score strictly higher.
        let higher = 0;
        for (let c = 0; c < this.classes && higher < 5; c++) if (scores[off + c] > scores[off + label]) higher++;
        if (higher < 5) this.top5++;
      }
      this.confusion[label * k + pred]++;
      this.n++;
    }
  }

  result(): ClassificationResult {
    const k = this.k;
    const cm = this.confusion;
    let correct = 0;
    for (let c = 0; c < k; c++) correct += cm[c * k + c];
    const perClass: ClassScores[] = [];
    for (let c = 0; c < k; c++) {
      let support = 0, predicted = 0;
      for (let j = 0; j < k; j++) { support += cm[c * k + j]; predicted += cm[j * k + c]; }
      const tp = cm[c * k + c];
      perClass.push({ label: c, ...(this.names?.[c] ? { name: this.names[c] } : {}), support, predicted, ...prf(tp, predicted - tp, support - tp) });
    }
    const seen = perClass.filter((s) => s.support > 0 || s.predicted > 0);
    const avg = (f: (s: ClassScores) => number | undefined) => (seen.length ? seen.reduce((a, s) => a + (f(s) ?? 0), 0) / seen.length : NaN);
    const result: ClassificationResult = {
      n: this.n, classes: this.classes, correct, top1: this.n ? correct / this.n : NaN,
      macro: { precision: avg((s) => s.precision), recall: avg((s) => s.recall), f1: avg((s) => s.f1) },
      perClass,
      confusion: Array.from({ length: k }, (_, i) => Array.from(cm.subarray(i * k, (i + 1) * k))),
    };
    if (this.classes > 5) result.top5 = this.n ? this.top5 / this.n : NaN;
    if (k === 2) {
      const tp = cm[3], fp = cm[1], fn = cm[2], tn = cm[0];
      result.binary = { positive: 1, ...prf(tp, fp, fn), tp, fp, fn, tn };
    }
    return result;
  }
}
