// How closely a compressed model's outputs follow the reference model's on the same inputs. Pure functions.
import { EdgetuneError } from '../errors.js';
import type { Quality } from '../types.js';
import { toNumbers, type PlainTensor } from './plain-tensor.js';

export interface OutputFidelity {
  /** cosine similarity of the flattened outputs: 1 = same direction */
  cosine: number;
  maxAbsError: number;
  /** 10·log10(Σref² / Σ(ref − test)²); Infinity when identical */
  sqnrDb: number;
  /** fraction of rows whose argmax over the last axis agrees; only when the last dim is > 1 */
  top1Agreement?: number;
  /** elements where one side is NaN/±Infinity and the other is not; any makes the output count as broken */
  nonFiniteMismatches: number;
  n: number;
}

/**
 * Compares each output of `ref` with the same-named output of `test`. Dtypes may differ (a float16 model against its
 * float32 reference); dims must not. Throws COMPRESS_FIDELITY when an output is missing or reshaped.
 */
export function compareOutputs(ref: Record<string, PlainTensor>, test: Record<string, PlainTensor>): Record<string, OutputFidelity> {
  const out: Record<string, OutputFidelity> = {};
  for (const [name, r] of Object.entries(ref)) {
    const t = test[name];
    if (!t) {
      throw new EdgetuneError('COMPRESS_FIDELITY', `output "${name}" is missing from the compressed model's outputs (it has: ${Object.keys(test).join(', ') || 'none'})`);
    }
    if (r.dims.length !== t.dims.length || r.dims.some((d, i) => d !== t.dims[i])) {
      throw new EdgetuneError('COMPRESS_FIDELITY', `output "${name}": the reference has dims [${r.dims.join(',')}] but the compressed model gives [${t.dims.join(',')}]`);
    }
    out[name] = compareArrays(toNumbers(r), toNumbers(t), r.dims[r.dims.length - 1]);
  }
  return out;
}

/** The metrics for two equal-length flat arrays; `lastDim` (when > 1) enables top-1 agreement over rows of that size. */
export function compareArrays(ref: ArrayLike<number>, test: ArrayLike<number>, lastDim?: number): OutputFidelity {
  const acc = new FidelityAccumulator();
  acc.add(ref, test, lastDim);
  return acc.result();
}

/**
 * The same metrics over a stream of batches: sums are kept, not arrays, so a dataset of any size takes constant
 * memory. The result equals compareArrays over the concatenated batches.
 */
export class FidelityAccumulator {
  private dot = 0; private rr = 0; private tt = 0; private err2 = 0; private maxAbs = 0; private bad = 0; private n = 0;
  private rows = 0; private sameRows = 0; private topOk = true;

  add(ref: ArrayLike<number>, test: ArrayLike<number>, lastDim?: number): void {
    if (ref.length !== test.length) throw new RangeError(`compareArrays: lengths differ (${ref.length} vs ${test.length})`);
    const n = ref.length;
    for (let i = 0; i < n; i++) {
      const a = ref[i], b = test[i];
      if (!Number.isFinite(a) || !Number.isFinite(b)) {
        // Equal non-finite values (both NaN, same infinity) agree; they carry no magnitude to compare.
        if (!(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)))) this.bad++;
        continue;
      }
      const d = a - b;
      this.dot += a * b; this.rr += a * a; this.tt += b * b; this.err2 += d * d;
      if (Math.abs(d) > this.maxAbs) this.maxAbs = Math.abs(d);
    }
    this.n += n;
    if (lastDim !== undefined && lastDim > 1 && n > 0 && n % lastDim === 0) {
      const rows = n / lastDim;
      this.rows += rows;
      this.sameRows += top1(ref, test, lastDim) * rows;
    } else if (n > 0) {
      this.topOk = false;
    }
  }

  result(): OutputFidelity {
    const bad = this.bad;
    const result: OutputFidelity = {
      cosine: bad > 0 ? 0 : cosineOf(this.dot, this.rr, this.tt, this.err2),
      maxAbsError: bad > 0 ? Infinity : this.maxAbs,
      sqnrDb: bad > 0 ? -Infinity : this.err2 === 0 ? Infinity : 10 * Math.log10(this.rr / this.err2),
      nonFiniteMismatches: bad,
      n: this.n,
    };
    if (this.topOk && this.rows > 0) result.top1Agreement = Math.round(this.sameRows) / this.rows;
    return result;
  }
}

function cosineOf(dot: number, rr: number, tt: number, err2: number): number {
  if (err2 === 0) return 1; // identical, including both all-zero
  if (rr === 0 || tt === 0) return 0; // one side is all zeros: no shared direction
  return Math.max(-1, Math.min(1, dot / Math.sqrt(rr * tt)));
}

function argmax(a: ArrayLike<number>, start: number, len: number): number {
  let best = start;
  for (let i = start + 1; i < start + len; i++) if (a[i] > a[best]) best = i;
  return best - start;
}

function top1(ref: ArrayLike<number>, test: ArrayLike<number>, lastDim: number): number {
  const rows = ref.length / lastDim;
  let same = 0;
  for (let r = 0; r < rows; r++) if (argmax(ref, r * lastDim, lastDim) === argmax(test, r * lastDim, lastDim)) same++;
  return same / rows;
}

/** The worst case over all outputs, as the Quality a Measurement carries; fields no output has stay undefined. */
export function summarizeFidelity(perOutput: Record<string, OutputFidelity>): Quality {
  const all = Object.values(perOutput);
  const q: Quality = {};
  if (all.length === 0) return q;
  q.cosine = Math.min(...all.map((f) => f.cosine));
  q.sqnrDb = Math.min(...all.map((f) => f.sqnrDb));
  q.maxAbsError = Math.max(...all.map((f) => f.maxAbsError));
  const top = all.flatMap((f) => (f.top1Agreement === undefined ? [] : [f.top1Agreement]));
  if (top.length) q.top1Agreement = Math.min(...top);
  return q;
}
