// Latency statistics. Pure functions over samples in milliseconds.
import type { LatencyStats } from '../types.js';

function checkSamples(samples: readonly number[], what: string): void {
  if (samples.length === 0) throw new RangeError(`${what}: needs at least one sample, got none`);
  for (let i = 0; i < samples.length; i++) {
    if (!Number.isFinite(samples[i])) throw new RangeError(`${what}: sample ${i} is ${samples[i]}; samples must be finite numbers`);
  }
}

export function sortedCopy(samples: readonly number[]): number[] {
  return [...samples].sort((a, b) => a - b);
}

/**
 * The p-th percentile (0..100) of an ascending array by linear interpolation between closest ranks
 * (Hyndman & Fan type 7, numpy's default), so p50 of an even-sized sample is the mean of the middle two.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile: p must be within 0..100, got ${p}`);
  const n = sorted.length;
  if (n === 0) throw new RangeError('percentile: needs at least one sample, got none');
  const h = ((n - 1) * p) / 100;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

export function percentile(samples: readonly number[], p: number): number {
  checkSamples(samples, 'percentile');
  return percentileSorted(sortedCopy(samples), p);
}

export function mean(samples: readonly number[]): number {
  checkSamples(samples, 'mean');
  let s = 0;
  for (const x of samples) s += x;
  return s / samples.length;
}

/** Sample standard deviation (n − 1 in the denominator); 0 for a single sample, which shows no spread. */
export function std(samples: readonly number[]): number {
  const m = mean(samples);
  const n = samples.length;
  if (n < 2) return 0;
  let ss = 0;
  for (const x of samples) ss += (x - m) ** 2;
  return Math.sqrt(ss / (n - 1));
}

/**
 * 1-based ranks [lo, hi] of the order statistics that bound the median with at least `level` confidence, from the
 * Binomial(n, ½) law of how many samples fall below the true median; holds for any continuous distribution.
 * `coverage` is the exact confidence of that pair. Below n = 6 no pair reaches 95 %: the result is then the full
 * range [1, n] and `coverage` says how far short it falls.
 */
export function medianCiRanks(n: number, level = 0.95): { lo: number; hi: number; coverage: number } {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`medianCiRanks: n must be a positive integer, got ${n}`);
  if (!(level > 0 && level < 1)) throw new RangeError(`medianCiRanks: level must be within (0, 1), got ${level}`);
  const tail = (1 - level) / 2;
  // Walk the binomial CDF from k = 0 in log space, so large n does not underflow 0.5^n.
  let logPmf = -n * Math.LN2;
  let cdf = 0;
  let lo = 0; // the largest l with P(B ≤ l − 1) ≤ tail, 0 when even l = 1 fails
  let cdfBelowLo = 0;
  for (let k = 0; k <= Math.floor(n / 2); k++) {
    cdf += Math.exp(logPmf);
    if (cdf > tail) break;
    lo = k + 1;
    cdfBelowLo = cdf;
    logPmf += Math.log(n - k) - Math.log(k + 1);
  }
  if (lo === 0) {
    return { lo: 1, hi: n, coverage: 1 - 2 * Math.exp(-n * Math.LN2) };
  }
  return { lo, hi: n - lo + 1, coverage: 1 - 2 * cdfBelowLo };
}

/** Summary statistics of latency samples (ms). Throws RangeError on no samples or a non-finite one. */
export function latencyStats(samples: readonly number[]): LatencyStats {
  checkSamples(samples, 'latencyStats');
  const sorted = sortedCopy(samples);
  const m = mean(samples);
  const s = std(samples);
  const { lo, hi } = medianCiRanks(sorted.length);
  return {
    p50: percentileSorted(sorted, 50),
    p90: percentileSorted(sorted, 90),
    p95: percentileSorted(sorted, 95),
    p99: percentileSorted(sorted, 99),
    mean: m,
    std: s,
    // A zero mean only happens with all-zero samples, which have no spread either.
    cv: m === 0 ? 0 : s / m,
    n: sorted.length,
    ci95p50: [sorted[lo - 1], sorted[hi - 1]],
  };
}

/** The median of samples (any order). */
export function median(samples: readonly number[]): number {
  checkSamples(samples, 'median');
  return percentileSorted(sortedCopy(samples), 50);
}

export interface RatioEstimate {
  /** median of the per-pair ratios b/a */
  estimate: number;
  /** distribution-free 95 % CI of that median (order statistics of the pair ratios) */
  ci95: [number, number];
  /** exact confidence of ci95; below 0.95 when there are fewer than 6 pairs */
  coverage: number;
  pairs: number;
  /** the CI excludes 1: b is faster (below 1) or slower (above 1) than a beyond noise */
  significant: boolean;
}

/**
 * How much slower b is than a, from paired measurements taken close in time (an A block then a B block): each pair
 * gives a ratio, so slow drift (heat, a background job) cancels within the pair. The CI is that of the median of
 * the pair ratios, which needs no assumption about their distribution.
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): RatioEstimate {
  if (a.length !== b.length) throw new RangeError(`pairedRatio: ${a.length} a-values but ${b.length} b-values; they must pair up`);
  checkSamples(a, 'pairedRatio');
  checkSamples(b, 'pairedRatio');
  const ratios = a.map((x, i) => {
    if (!(x > 0)) throw new RangeError(`pairedRatio: a-value ${i} is ${x}; ratios need positive times`);
    return b[i] / x;
  });
  const sorted = sortedCopy(ratios);
  const { lo, hi, coverage } = medianCiRanks(sorted.length);
  const ci95: [number, number] = [sorted[lo - 1], sorted[hi - 1]];
  return {
    estimate: percentileSorted(sorted, 50), ci95, coverage, pairs: sorted.length,
    significant: coverage >= 0.95 && (ci95[1] < 1 || ci95[0] > 1),
  };
}
