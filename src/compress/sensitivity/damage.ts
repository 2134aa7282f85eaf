// How much a change to a model hurts, summed over many batches: the same metrics as measure/fidelity.ts, but
// accumulated so that cosine and SQNR are over the whole evaluation set rather than averaged per batch. Pure.
import { toNumbers, type PlainTensor } from '../../measure/plain-tensor.js';

export interface Damage {
  /** 1 − cosine similarity of the outputs with the reference's (worst output); 0 = unchanged */
  damage: number;
  cosine: number;
  /** 10·log10(Σref² / Σ(ref − test)²), worst output; Infinity when identical */
  sqnrDb: number;
  /** 1 − fraction of rows whose argmax agrees (first output, when its last dim is > 1) */
  top1Loss?: number;
  /** reference accuracy − this model's accuracy, when the data has labels */
  accuracyDrop?: number;
}

interface OutputSums { dot: number; rr: number; tt: number; err2: number; bad: number }

/** Accumulates reference/test output pairs batch by batch; `result()` gives the Damage so far. */
export class DamageAccumulator {
  private readonly sums = new Map<string, OutputSums>();
  private rows = 0;
  private sameTop1 = 0;
  private labelled = 0;
  private refCorrect = 0;
  private testCorrect = 0;

  /** `first` names the output used for top-1 and accuracy (the model's first output). */
  constructor(private readonly first?: string) {}

  add(ref: Record<string, PlainTensor>, test: Record<string, PlainTensor>, labels?: ArrayLike<number>): void {
    for (const [name, r] of Object.entries(ref)) {
      const t = test[name];
      if (!t) throw new RangeError(`output "${name}" is missing from the changed model's outputs`);
      const a = toNumbers(r), b = toNumbers(t);
      if (a.length !== b.length) throw new RangeError(`output "${name}": ${a.length} values in the reference, ${b.length} in the changed model`);
      const s = this.sums.get(name) ?? { dot: 0, rr: 0, tt: 0, err2: 0, bad: 0 };
      for (let i = 0; i < a.length; i++) {
        const x = a[i], y = b[i];
        if (!Number.isFinite(x) || !Number.isFinite(y)) { if (!(Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y)))) s.bad++; continue; }
        s.dot += x * y; s.rr += x * x; s.tt += y * y; s.err2 += (x - y) ** 2;
      }
      this.sums.set(name, s);
      if (name === (this.first ?? Object.keys(ref)[0])) this.addRows(a, b, r.dims[r.dims.length - 1], labels);
    }
  }

  private addRows(a: Float64Array, b: Float64Array, width: number | undefined, labels?: ArrayLike<number>): void {
    if (!width || width < 2 || a.length % width !== 0) return;
    const rows = a.length / width;
    for (let r = 0; r < rows; r++) {
      const pa = argmax(a, r * width, width), pb = argmax(b, r * width, width);
      this.rows++;
      if (pa === pb) this.sameTop1++;
      if (labels && r < labels.length) {
        this.labelled++;
        if (pa === labels[r]) this.refCorrect++;
        if (pb === labels[r]) this.testCorrect++;
      }
    }
  }

  result(): Damage {
    let cosine = 1, sqnrDb = Infinity;
    for (const s of this.sums.values()) {
      const c = s.bad > 0 ? 0 : s.err2 === 0 ? 1 : s.rr === 0 || s.tt === 0 ? 0 : Math.max(-1, Math.min(1, s.dot / Math.sqrt(s.rr * s.tt)));
      const q = s.bad > 0 ? -Infinity : s.err2 === 0 ? Infinity : 10 * Math.log10(s.rr / s.err2);
      cosine = Math.min(cosine, c);
      sqnrDb = Math.min(sqnrDb, q);
    }
    const d: Damage = { damage: 1 - cosine, cosine, sqnrDb };
    if (this.rows > 0) d.top1Loss = 1 - this.sameTop1 / this.rows;
    if (this.labelled > 0) d.accuracyDrop = (this.refCorrect - this.testCorrect) / this.labelled;
    return d;
  }
}

function argmax(a: Float64Array, start: number, len: number): number {
  let best = start;
  for (let i = start + 1; i < start + len; i++) if (a[i] > a[best]) best = i;
  return best - start;
}
