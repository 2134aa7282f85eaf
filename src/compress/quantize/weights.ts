// Pure weight-quantization math. Symmetric int8 uses [-127, 127] so that -x and x quantize alike.

export interface QuantizedWeight {
  q: Int8Array;
  /** one scale (per tensor) or one per output column */
  scale: Float32Array;
}

/** Transposes a row-major [rows, cols] matrix. */
export function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
  return out;
}

/** Symmetric int8 of a [K, N] weight, per tensor or per output column (axis 1). */
export function quantizeSymmetricInt8(w: Float32Array, k: number, n: number, perChannel: boolean): QuantizedWeight {
  const groups = perChannel ? n : 1;
  const absmax = new Float32Array(groups);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < n; j++) {
      const a = Math.abs(w[i * n + j]);
      const g = perChannel ? j : 0;
      if (a > absmax[g]) absmax[g] = a;
    }
  }
  const scale = new Float32Array(groups);
  for (let g = 0; g < groups; g++) scale[g] = absmax[g] > 0 ? absmax[g] / 127 : 1;
  const q = new Int8Array(k * n);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < n; j++) {
      const s = scale[perChannel ? j : 0];
      const v = Math.round(w[i * n + j] / s);
      q[i * n + j] = v > 127 ? 127 : v < -127 ? -127 : v;
    }
  }
  return { q, scale };
}

export function hasNonFinite(w: Float32Array): boolean {
  for (let i = 0; i < w.length; i++) if (!Number.isFinite(w[i])) return true;
  return false;
}
