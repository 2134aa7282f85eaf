// From a tensor's running statistics to the range its 8-bit quantization should cover. Pure functions.
//   minmax      the observed extremes: nothing clips, but one outlier coarsens every step
//   percentile  cut each tail so that at most (100 - p)% of values saturate (default p = 99.999)
//   entropy     the clipping threshold whose 8-bit histogram loses least information (KL divergence), the method
//               TensorRT published for int8 calibration
import { BINS, type TensorStats } from './histogram.js';

export type CalibrationMethod = 'minmax' | 'percentile' | 'entropy';

export interface Range {
  min: number;
  max: number;
}

export const DEFAULT_PERCENTILE = 99.999;

/** The range for one tensor, or undefined when it held no finite value. */
export function rangeOf(stats: TensorStats, method: CalibrationMethod, opts: { percentile?: number } = {}): Range | undefined {
  if (stats.count === 0) return undefined;
  const full = { min: stats.min, max: stats.max };
  if (method === 'minmax' || !stats.histogram || stats.range === 0) return full;
  if (method === 'percentile') return percentileRange(stats, opts.percentile ?? DEFAULT_PERCENTILE);
  const oneSided = stats.min >= 0 || stats.max <= 0;
  const t = entropyThreshold(stats.absHistogram(true), stats.binWidth, oneSided ? 255 : 128);
  return { min: Math.max(stats.min, -t), max: Math.min(stats.max, t) };
}

function percentileRange(stats: TensorStats, p: number): Range {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
  const tail = (stats.count * (100 - p)) / 100;
  const w = stats.binWidth;
  const edge = (h: Float64Array): number | undefined => {
    let acc = 0;
    for (let j = BINS - 1; j >= 0; j--) {
      acc += h[j];
      if (acc > tail) return (j + 1) * w;
    }
    return undefined;
  };
  const up = edge(stats.pos!);
  const down = edge(stats.neg!);
  return {
    min: down === undefined ? stats.min : Math.max(stats.min, -down),
    max: up === undefined ? stats.max : Math.min(stats.max, up),
  };
}

/**
 * The magnitude threshold minimising KL(P‖Q), where P is the histogram clipped at the threshold (the clipped mass
 * lands in its last bin) and Q is P squeezed into `levels` bins and spread back over P's non-empty bins.
 */
export function entropyThreshold(hist: Float64Array, binWidth: number, levels: number): number {
  let last = hist.length - 1;
  while (last > 0 && hist[last] === 0) last--;
  const used = last + 1;
  if (used <= levels) return used * binWidth; // fewer bins than levels: nothing needs clipping
  const suffix = new Float64Array(hist.length + 1);
  for (let j = hist.length - 1; j >= 0; j--) suffix[j] = suffix[j + 1] + hist[j];
  const stride = Math.max(1, Math.ceil((used - levels) / 256));
  let best = Infinity;
  let bestI = used;
  const p = new Float64Array(used);
  const q = new Float64Array(used);
  for (let i = levels; i <= used; i += stride) {
    for (let k = 0; k < i; k++) p[k] = hist[k];
    p[i - 1] += suffix[i];
    // Q from the unclipped bins: what the quantized tensor can represent inside the threshold.
    for (let b = 0; b < levels; b++) {
      const s = Math.floor((b * i) / levels);
      const e = Math.max(s + 1, Math.floor(((b + 1) * i) / levels));
      let total = 0, nonzero = 0;
      for (let k = s; k < e; k++) { total += hist[k]; if (hist[k] > 0) nonzero++; }
      for (let k = s; k < e; k++) q[k] = hist[k] > 0 ? total / nonzero : 0;
    }
    const kl = klDivergence(p, q, i);
    if (kl < best) { best = kl; bestI = i; }
  }
  return bestI * binWidth;
}

function klDivergence(p: Float64Array, q: Float64Array, n: number): number {
  let sp = 0, sq = 0;
  for (let k = 0; k < n; k++) { sp += p[k]; sq += q[k]; }
  if (sp === 0) return 0;
  // Q may be empty where P is not (only P's last bin holds the clipped mass): a small floor keeps log finite.
  const eps = 1e-10;
  let kl = 0;
  for (let k = 0; k < n; k++) {
    if (p[k] === 0) continue;
    const pk = p[k] / sp;
    const qk = sq > 0 ? Math.max(q[k] / sq, eps) : eps;
    kl += pk * Math.log(pk / qk);
  }
  return kl;
}
