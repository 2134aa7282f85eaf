// A latency model fitted on this device from the trials measured so far, to rank what has not been measured yet.
// Pure.
//
// log(latency) = intercept + slope·log(MACs / baseline MACs) + one effect per non-baseline level of each axis
// (quantization mode, threads, prune ratio, low-rank energy, graph optimisation, spinning, execution mode).
// Bayesian linear regression with a Gaussian prior on every coefficient: with two trials it still predicts (from the
// priors: the target's expected int8 gain, latency roughly following MACs) and every trial pulls the coefficients
// toward what this device actually does. The predictive spread (coefficient uncertainty + measurement noise) gives
// each candidate a probability of meeting the budget.
import { Matrix, inverse } from 'ml-matrix';

export interface LatencyFeatures {
  /** the candidate's MACs over the baseline's; undefined when either is unknown */
  macsRatio?: number;
  /** axis → level, e.g. { quant: 'dynamic', threads: '2', prune: '0.25' } */
  levels: Record<string, string>;
}

export interface Gaussian { mean: number; sd: number }

export interface LatencyPriors {
  /** prior on the effect (log ratio to the reference level) per `axis:level`, e.g. 'quant:dynamic' */
  effects?: Record<string, Gaussian>;
  /** default prior on an effect with no entry in `effects` (per axis, else `*`) */
  axisDefault?: Record<string, Gaussian>;
  /** log-latency per log-MACs */
  macsSlope?: Gaussian;
  /** measurement noise of one log-latency, beyond what the features explain */
  noiseSd?: number;
}

export interface Prediction {
  /** median predicted latency */
  ms: number;
  /** sd of the predicted log-latency (coefficients and noise) */
  logSd: number;
}

export interface LatencyModel {
  columns: string[];
  coef: number[];
  n: number;
  predict(f: LatencyFeatures): Prediction;
}

const DEFAULT_AXIS: Gaussian = { mean: 0, sd: 0.5 };

/**
 * Prior effects from a target's `int8Gain` prior ('none' | 'low' | 'medium' | 'high'): what int8 kernels are expected
 * to buy over fp32 there. fp16 storage runs fp32 kernels (≈ no change). Spreads stay wide: a prior orders the first
 * trials, measurements decide.
 */
export function targetPriors(priors: Record<string, number | string>): LatencyPriors {
  const gain: Record<string, number> = { none: 1, low: 0.9, medium: 0.7, high: 0.5 };
  const g = typeof priors.int8Gain === 'string' ? gain[priors.int8Gain] : undefined;
  const int8: Gaussian = { mean: Math.log(g ?? 0.8), sd: g === undefined ? 0.6 : 0.5 };
  return {
    effects: {
      'quant:dynamic': int8, 'quant:static': int8, 'quant:fp16': { mean: 0, sd: 0.2 },
      'quant:weight-only-4': { mean: 0, sd: 0.5 }, 'quant:weight-only-8': { mean: 0, sd: 0.5 },
    },
  };
}

function columnsFor(universe: LatencyFeatures[], reference: LatencyFeatures): string[] {
  const cols = new Set<string>();
  for (const f of universe) {
    for (const [axis, level] of Object.entries(f.levels)) if (reference.levels[axis] !== level) cols.add(`${axis}:${level}`);
  }
  return ['(intercept)', '(log MACs)', ...[...cols].sort()];
}

function rowOf(f: LatencyFeatures, columns: string[]): number[] {
  const on = new Set(Object.entries(f.levels).map(([a, l]) => `${a}:${l}`));
  const lm = f.macsRatio !== undefined && f.macsRatio > 0 ? Math.log(f.macsRatio) : 0;
  return columns.map((c, i) => (i === 0 ? 1 : i === 1 ? lm : on.has(c) ? 1 : 0));
}

function priorOf(column: string, priors: LatencyPriors, anchor: number, macsKnown: boolean): Gaussian {
  if (column === '(intercept)') return { mean: anchor, sd: 3 };
  if (column === '(log MACs)') return priors.macsSlope ?? { mean: 0.7, sd: 0.4 };
  const explicit = priors.effects?.[column];
  if (explicit) return explicit;
  const axis = column.slice(0, column.indexOf(':'));
  const d = priors.axisDefault?.[axis] ?? priors.axisDefault?.['*'];
  if (d) return d;
  // With MACs known, prune and low-rank effects are mostly in the MACs term: what is left is a small correction.
  if ((axis === 'prune' || axis === 'lowrank') && macsKnown) return { mean: 0, sd: 0.2 };
  return DEFAULT_AXIS;
}

/**
 * Fits the model to `observed` trials. `universe` lists the features of every candidate that may be predicted (it
 * fixes the columns); `reference` is the baseline, whose levels are the zero of every effect.
 */
export function fitLatencyModel(
  observed: ReadonlyArray<{ f: LatencyFeatures; ms: number }>, universe: readonly LatencyFeatures[], reference: LatencyFeatures, priors: LatencyPriors = {},
): LatencyModel {
  for (const o of observed) if (!(o.ms > 0 && Number.isFinite(o.ms))) throw new RangeError(`fitLatencyModel: latency ${o.ms} ms is not a positive number`);
  const columns = columnsFor([...universe, ...observed.map((o) => o.f)], reference);
  const macsKnown = universe.some((f) => f.macsRatio !== undefined);
  const anchor = observed.length ? observed.reduce((s, o) => s + Math.log(o.ms), 0) / observed.length : 0;
  const prior = columns.map((c) => priorOf(c, priors, anchor, macsKnown));
  const noise2 = (priors.noiseSd ?? 0.1) ** 2;
  const k = columns.length;
  const A = Matrix.zeros(k, k);
  const b = new Array<number>(k).fill(0);
  prior.forEach((p, i) => { A.set(i, i, 1 / (p.sd * p.sd)); b[i] = p.mean / (p.sd * p.sd); });
  for (const o of observed) {
    const x = rowOf(o.f, columns);
    const y = Math.log(o.ms);
    for (let i = 0; i < k; i++) {
      if (x[i] === 0) continue;
      b[i] += (x[i] * y) / noise2;
      for (let j = 0; j < k; j++) if (x[j] !== 0) A.set(i, j, A.get(i, j) + (x[i] * x[j]) / noise2);
    }
  }
  const S = inverse(A);
  const coef = S.mmul(Matrix.columnVector(b)).to1DArray();
  return {
    columns, coef, n: observed.length,
    predict(f: LatencyFeatures): Prediction {
      const x = rowOf(f, columns);
      let mu = 0;
      for (let i = 0; i < k; i++) mu += x[i] * coef[i];
      let v = noise2;
      for (let i = 0; i < k; i++) {
        if (x[i] === 0) continue;
        for (let j = 0; j < k; j++) if (x[j] !== 0) v += x[i] * S.get(i, j) * x[j];
      }
      return { ms: Math.exp(mu), logSd: Math.sqrt(Math.max(v, 0)) };
    },
  };
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 via erf; error < 1.5e-7). */
export function normalCdf(z: number): number {
  if (z === Infinity) return 1;
  if (z === -Infinity) return 0;
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/** Probability that the candidate's measured latency comes out at or under `ms`. */
export function probAtMost(p: Prediction, ms: number): number {
  if (!(ms > 0)) return 0;
  if (p.logSd === 0) return p.ms <= ms ? 1 : 0;
  return normalCdf((Math.log(ms) - Math.log(p.ms)) / p.logSd);
}
