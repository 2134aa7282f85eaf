// Quantization parameters and weight/bias quantization for QDQ graphs. Pure math, no graph.
//   activations: asymmetric 8-bit, int8 (S8S8, the default) or uint8 (U8S8), zero exactly representable
//   weights:     symmetric int8, per output channel or per tensor; [-127, 127], or [-63, 63] with reduce-range
//   bias:        int32 with scale = input scale × weight scale and zero point 0, as QLinearConv/QGemm require
import type { Range } from '../calibrate/ranges.js';

export type ActivationType = 'int8' | 'uint8';

export interface QParams {
  scale: number;
  zeroPoint: number;
}

/** Scales below this would make x/scale overflow float32 for ordinary activations. */
const MIN_SCALE = 1e-12;

export function activationBounds(type: ActivationType): [number, number] {
  return type === 'int8' ? [-128, 127] : [0, 255];
}

/** Scale and zero point covering `range` (widened to include 0, so zero padding and ReLU floors stay exact). */
export function activationParams(range: Range, type: ActivationType): QParams {
  const [qmin, qmax] = activationBounds(type);
  const lo = Math.min(range.min, 0);
  const hi = Math.max(range.max, 0);
  if (!(hi > lo)) return { scale: 1, zeroPoint: 0 }; // all zeros: any scale represents them
  const scale = Math.max((hi - lo) / (qmax - qmin), MIN_SCALE);
  const zp = Math.round(qmin - lo / scale);
  return { scale: Math.fround(scale), zeroPoint: Math.min(qmax, Math.max(qmin, zp)) };
}

export interface QuantizedWeights {
  q: Int8Array;
  /** one per channel along `axis`, or one */
  scale: Float32Array;
}

/**
 * Symmetric int8 of a row-major tensor with `dims`, one scale per index of `axis` (or one for all when axis is
 * undefined). reduceRange keeps 7 bits, for x86 CPUs without VNNI whose u8×s8 instruction saturates.
 */
export function quantizeWeights(w: Float32Array, dims: readonly number[], axis: number | undefined, reduceRange = false): QuantizedWeights {
  const qmax = reduceRange ? 63 : 127;
  const channels = axis === undefined ? 1 : dims[axis];
  // Elements of one channel repeat every `inner` elements in blocks of `inner`, every `channels * inner`.
  const inner = axis === undefined ? w.length : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const chanOf = (i: number) => (axis === undefined ? 0 : Math.floor(i / inner) % channels);
  const absmax = new Float32Array(channels);
  for (let i = 0; i < w.length; i++) {
    const a = Math.abs(w[i]);
    const c = chanOf(i);
    if (a > absmax[c]) absmax[c] = a;
  }
  const scale = new Float32Array(channels);
  for (let c = 0; c < channels; c++) scale[c] = absmax[c] > 0 ? Math.max(absmax[c] / qmax, MIN_SCALE) : 1;
  const q = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const v = Math.round(w[i] / scale[chanOf(i)]);
    q[i] = v > qmax ? qmax : v < -qmax ? -qmax : v;
  }
  return { q, scale };
}

/** int32 bias for an op whose input has scale `inputScale` and whose weights have `weightScale` (per channel or one). */
export function quantizeBias(b: Float32Array, inputScale: number, weightScale: Float32Array): { q: Int32Array; scale: Float32Array; clipped: number } {
  const scale = new Float32Array(b.length);
  const q = new Int32Array(b.length);
  let clipped = 0;
  for (let i = 0; i < b.length; i++) {
    const s = inputScale * weightScale[weightScale.length === 1 ? 0 : i];
    scale[i] = s;
    const v = Math.round(b[i] / s);
    if (v > 2147483647 || v < -2147483648 || !Number.isFinite(v)) clipped++;
    q[i] = Math.max(-2147483648, Math.min(2147483647, Number.isFinite(v) ? v : 0));
  }
  return { q, scale, clipped };
}

/** Asymmetric per-tensor parameters for a constant operand of Add/Mul/Concat (its exact min/max). */
export function constantParams(values: Float32Array, type: ActivationType): QParams {
  let mn = Infinity, mx = -Infinity;
  for (let i = 0; i < values.length; i++) { if (values[i] < mn) mn = values[i]; if (values[i] > mx) mx = values[i]; }
  return activationParams({ min: mn, max: mx }, type);
}

/** Quantizes values with per-tensor parameters into the activation type's array. */
export function quantizeWith(values: Float32Array, p: QParams, type: ActivationType): Int8Array | Uint8Array {
  const [qmin, qmax] = activationBounds(type);
  const out = type === 'int8' ? new Int8Array(values.length) : new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = Math.round(values[i] / p.scale) + p.zeroPoint;
    out[i] = v < qmin ? qmin : v > qmax ? qmax : v;
  }
  return out;
}
