// Running statistics of one activation tensor over calibration batches, in bounded memory: min/max, and (for the
// percentile and entropy methods) a histogram of magnitudes kept separately for positive and negative values.
//
// The histogram covers [0, R] with R a power of two. When a later batch holds a larger magnitude, R doubles as many
// times as needed and each new bin is the exact sum of 2^k old ones, so no value is ever re-binned approximately.
// Values of magnitude >= MASK_MAGNITUDE (the ±3.4e38 "minus infinity" masks exporters put in attention and NMS
// graphs) and non-finite values are counted apart: they would otherwise stretch the range over 38 decades.

export const BINS = 2048;

/** TensorStats as plain data: what the runner child sends back after folding activations where they were computed. */
export interface TensorStatsSnapshot {
  histogram: boolean; min: number; max: number; count: number; masked: number; zeros: number; range: number;
  zerosBeforeRange: number; pos?: Float64Array; neg?: Float64Array;
}
export const MASK_MAGNITUDE = 1e30;

export class TensorStats {
  min = Infinity;
  max = -Infinity;
  /** finite values seen (masks excluded) */
  count = 0;
  /** values of magnitude >= MASK_MAGNITUDE, and NaN/±Infinity */
  masked = 0;
  /** exact zeros (ReLU outputs are half zeros): the quantized grid holds them exactly, whatever the range */
  zeros = 0;
  /** histogram bins of |x| for x >= 0 (pos) and x < 0 (neg), over [0, range]; absent for minmax */
  pos?: Float64Array;
  neg?: Float64Array;
  /** the histogram's upper edge (a power of two), 0 until a non-zero value arrives */
  range = 0;
  private zerosBeforeRange = 0;

  constructor(readonly histogram: boolean) {
    if (histogram) {
      this.pos = new Float64Array(BINS);
      this.neg = new Float64Array(BINS);
    }
  }

  snapshot(): TensorStatsSnapshot {
    const { histogram, min, max, count, masked, zeros, range, zerosBeforeRange, pos, neg } = this;
    return { histogram, min, max, count, masked, zeros, range, zerosBeforeRange, ...(pos ? { pos, neg } : {}) };
  }

  static restore(s: TensorStatsSnapshot): TensorStats {
    const t = new TensorStats(s.histogram);
    Object.assign(t, { min: s.min, max: s.max, count: s.count, masked: s.masked, zeros: s.zeros, range: s.range, zerosBeforeRange: s.zerosBeforeRange });
    if (s.histogram) { t.pos!.set(s.pos!); t.neg!.set(s.neg!); }
    return t;
  }

  add(data: ArrayLike<number>): void {
    let mn = this.min, mx = this.max, absmax = 0, n = 0, masked = 0, zeros = 0;
    // Fast pass: min, max, zeros and NaNs only. Calibration streams every activation through here (Ultraface:
    // 1.6 GB for 64 examples), and a tensor without masks, the usual case, needs nothing more.
    let lo = mn, hi = mx, nan = 0;
    for (let i = 0; i < data.length; i++) {
      const x = data[i];
      if (x < lo) lo = x;
      if (x > hi) hi = x;
      if (x === 0) zeros++;
      else if (x !== x) nan++;
    }
    if (lo > -MASK_MAGNITUDE && hi < MASK_MAGNITUDE) {
      mn = lo; mx = hi; masked = nan; n = data.length - nan;
      absmax = n > 0 ? Math.max(Math.abs(lo), Math.abs(hi)) : 0;
    } else {
      zeros = 0;
      for (let i = 0; i < data.length; i++) {
        const x = data[i];
        if (!(x > -MASK_MAGNITUDE && x < MASK_MAGNITUDE)) { masked++; continue; } // also catches NaN
        if (x < mn) mn = x;
        if (x > mx) mx = x;
        const a = x < 0 ? -x : x;
        if (a > absmax) absmax = a;
        if (a === 0) zeros++;
        n++;
      }
    }
    this.min = mn; this.max = mx; this.count += n; this.masked += masked; this.zeros += zeros;
    if (!this.histogram || n === 0) return;
    if (absmax > this.range) this.grow(absmax);
    if (this.range === 0) { this.zerosBeforeRange += n; return; }
    const pos = this.pos!, neg = this.neg!;
    const k = BINS / this.range;
    for (let i = 0; i < data.length; i++) {
      const x = data[i];
      if (!(x > -MASK_MAGNITUDE && x < MASK_MAGNITUDE)) continue;
      if (x >= 0) pos[Math.min(BINS - 1, Math.floor(x * k))]++;
      else neg[Math.min(BINS - 1, Math.floor(-x * k))]++;
    }
  }

  private grow(absmax: number): void {
    if (this.range === 0) {
      this.range = 2 ** Math.ceil(Math.log2(absmax));
      if (this.range < absmax) this.range *= 2; // log2 rounding at exact powers
      this.pos![0] += this.zerosBeforeRange;
      this.zerosBeforeRange = 0;
      return;
    }
    let f = 1;
    while (this.range * f < absmax) f *= 2;
    for (const h of [this.pos!, this.neg!]) {
      for (let j = 0; j < BINS; j++) {
        let s = 0;
        if (j < BINS / f) for (let q = j * f; q < j * f + f; q++) s += h[q];
        h[j] = s;
      }
    }
    this.range *= f;
  }

  /**
   * |x| histogram: positive and negative counts folded together (for the entropy method). `withoutZeros` leaves
   * exact zeros out: their spike in bin 0 would dominate the divergence and pull the threshold far down.
   */
  absHistogram(withoutZeros = false): Float64Array {
    const out = new Float64Array(BINS);
    if (!this.pos) return out;
    for (let j = 0; j < BINS; j++) out[j] = this.pos[j] + this.neg![j];
    out[0] += this.zerosBeforeRange;
    if (withoutZeros) out[0] = Math.max(0, out[0] - this.zeros);
    return out;
  }

  get binWidth(): number {
    return this.range / BINS;
  }
}
