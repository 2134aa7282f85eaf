// Block-wise weight quantization and the byte layouts ONNX Runtime reads it in. Pure functions.
//
// Both contrib ops quantize a [rows, cols] matrix in blocks of `blockSize` consecutive elements of a row:
//   com.microsoft.MatMulNBits: rows = N (output features), cols = K, i.e. the transpose of a MatMul weight [K, N].
//     B uint8 [N, ceil(K/bs), bs*bits/8], codes packed low bits first; scales [N, ceil(K/bs)];
//     zero_points uint8 [N, ceil(ceil(K/bs)*bits/8)], packed the same way, each row starting on a byte.
//     Without zero_points ORT uses 2^(bits-1). A partial last block is padded (we pad with the zero point).
//   com.microsoft.GatherBlockQuantized: rows = vocabulary, cols = embedding width (quantize_axis 1), data uint8
//     [V, ceil(D*bits/8)] (no block padding), scales [V, ceil(D/bs)], zero_points packed like data.
// Checked against onnxruntime-node 1.30 with exact dequantized references (test/compress/weight-only.test.ts).

export type WeightBits = 4 | 8;

export interface BlockQuantOptions {
  bits: WeightBits;
  blockSize: number;
  /** true: one scale per block, zero point fixed at 2^(bits-1); false: min/max with a zero point per block */
  symmetric: boolean;
}

export interface BlockQuantized {
  rows: number;
  cols: number;
  blockSize: number;
  bits: WeightBits;
  nBlocks: number;
  /** unsigned codes, [rows, nBlocks * blockSize]; the padding past `cols` holds the block's zero point */
  codes: Uint8Array;
  /** [rows, nBlocks] */
  scales: Float32Array;
  /** [rows, nBlocks]; all 2^(bits-1) when symmetric */
  zeroPoints: Uint8Array;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Quantizes a row-major [rows, cols] matrix block-wise along each row (round to nearest). */
export function quantizeRowBlocks(w: Float32Array, rows: number, cols: number, opts: BlockQuantOptions): BlockQuantized {
  const { bits, blockSize, symmetric } = opts;
  if (w.length !== rows * cols) throw new RangeError(`quantizeRowBlocks: ${w.length} values for [${rows}, ${cols}]`);
  const nBlocks = Math.ceil(cols / blockSize);
  const levels = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  const codes = new Uint8Array(rows * nBlocks * blockSize);
  const scales = new Float32Array(rows * nBlocks);
  const zeroPoints = new Uint8Array(rows * nBlocks);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nBlocks; b++) {
      const start = r * cols + b * blockSize;
      const len = Math.min(blockSize, cols - b * blockSize);
      let lo = 0, hi = 0; // the range always holds 0, so that 0 stays exact (padding, ReLU-pruned weights)
      for (let i = 0; i < len; i++) {
        const v = w[start + i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      let scale: number, zp: number;
      if (symmetric) {
        // Signed codes span [-mid, mid-1]: the smallest scale that fits both ends uses the extra negative level.
        scale = Math.max(-lo / mid, hi / (mid - 1));
        zp = mid;
      } else {
        scale = (hi - lo) / levels;
        zp = scale > 0 ? Math.min(levels, Math.max(0, Math.round(-lo / scale))) : 0;
      }
      scale = scale > 0 ? Math.fround(scale) : 1;
      const bi = r * nBlocks + b;
      scales[bi] = scale;
      zeroPoints[bi] = zp;
      const out = bi * blockSize;
      for (let i = 0; i < blockSize; i++) {
        if (i >= len) { codes[out + i] = zp; continue; }
        const q = Math.round(w[start + i] / scale) + zp;
        codes[out + i] = q < 0 ? 0 : q > levels ? levels : q;
      }
    }
  }
  return { rows, cols, blockSize, bits, nBlocks, codes, scales, zeroPoints };
}

/** The weights the quantized form stands for, as a row-major [rows, cols] matrix: what ORT computes with. */
export function dequantizeRowBlocks(q: BlockQuantized): Float32Array {
  const out = new Float32Array(q.rows * q.cols);
  for (let r = 0; r < q.rows; r++) {
    for (let c = 0; c < q.cols; c++) {
      const b = Math.floor(c / q.blockSize);
      const bi = r * q.nBlocks + b;
      out[r * q.cols + c] = (q.codes[bi * q.blockSize + (c % q.blockSize)] - q.zeroPoints[bi]) * q.scales[bi];
    }
  }
  return out;
}

/** Packs `rows` rows of `count` unsigned codes (taken every `stride` codes) low bits first; each row starts on a byte. */
export function packRows(codes: Uint8Array, rows: number, stride: number, count: number, bits: WeightBits): { bytes: Uint8Array; rowBytes: number } {
  const rowBytes = Math.ceil((count * bits) / 8);
  const bytes = new Uint8Array(rows * rowBytes);
  for (let r = 0; r < rows; r++) {
    const src = r * stride, dst = r * rowBytes;
    if (bits === 8) { bytes.set(codes.subarray(src, src + count), dst); continue; }
    for (let i = 0; i < count; i++) bytes[dst + (i >> 1)] |= (codes[src + i] & 0xf) << ((i & 1) * 4);
  }
  return { bytes, rowBytes };
}

export interface MatMulNBitsTensors {
  /** uint8 [N, nBlocks, blobSize] */
  b: Uint8Array;
  bDims: [number, number, number];
  /** float32 [N, nBlocks] */
  scales: Float32Array;
  scaleDims: [number, number];
  /** packed uint8 [N, zpRowBytes]; undefined when symmetric (ORT's default zero point is the same) */
  zeroPoints?: Uint8Array;
  zpDims?: [number, number];
}

/** The MatMulNBits inputs for a block-quantized W^T ([N, K], rows = N). */
export function matMulNBitsTensors(q: BlockQuantized, symmetric: boolean): MatMulNBitsTensors {
  const blob = (q.blockSize * q.bits) / 8;
  const b = packRows(q.codes, q.rows * q.nBlocks, q.blockSize, q.blockSize, q.bits).bytes;
  const out: MatMulNBitsTensors = { b, bDims: [q.rows, q.nBlocks, blob], scales: q.scales, scaleDims: [q.rows, q.nBlocks] };
  if (!symmetric) {
    const zp = packRows(q.zeroPoints, q.rows, q.nBlocks, q.nBlocks, q.bits);
    out.zeroPoints = zp.bytes;
    out.zpDims = [q.rows, zp.rowBytes];
  }
  return out;
}

export interface GatherBlockTensors {
  data: Uint8Array;
  dataDims: [number, number];
  scales: Float32Array;
  scaleDims: [number, number];
  zeroPoints?: Uint8Array;
  zpDims?: [number, number];
}

/** The GatherBlockQuantized inputs for a block-quantized embedding table [V, D] (rows = V). */
export function gatherBlockTensors(q: BlockQuantized, symmetric: boolean): GatherBlockTensors {
  const data = packRows(q.codes, q.rows, q.nBlocks * q.blockSize, q.cols, q.bits);
  const out: GatherBlockTensors = { data: data.bytes, dataDims: [q.rows, data.rowBytes], scales: q.scales, scaleDims: [q.rows, q.nBlocks] };
  if (!symmetric) {
    const zp = packRows(q.zeroPoints, q.rows, q.nBlocks, q.nBlocks, q.bits);
    out.zeroPoints = zp.bytes;
    out.zpDims = [q.rows, zp.rowBytes];
  }
  return out;
}

export interface BlockedDqTensors {
  /** [K, N] codes: signed (code − 2^(bits-1)) when symmetric, else unsigned; unpacked (makeTensor packs int4) */
  values: Int8Array | Uint8Array;
  /** float32 [nBlocks, N] */
  scales: Float32Array;
  /** unsigned [nBlocks, N]; undefined when symmetric (the signed form's default zero point, 0, is right) */
  zeroPoints?: Uint8Array;
}

/**
 * The opset-21 blocked DequantizeLinear form (axis 0, block_size along K) for a block-quantized W^T: the tensors come
 * back in the MatMul weight's own [K, N] orientation.
 */
export function blockedDqTensors(q: BlockQuantized, symmetric: boolean): BlockedDqTensors {
  const n = q.rows, k = q.cols, mid = 1 << (q.bits - 1);
  const values = symmetric ? new Int8Array(k * n) : new Uint8Array(k * n);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const code = q.codes[(r * q.nBlocks + Math.floor(c / q.blockSize)) * q.blockSize + (c % q.blockSize)];
      values[c * n + r] = symmetric ? code - mid : code;
    }
  }
  const scales = new Float32Array(q.nBlocks * n);
  const zeroPoints = symmetric ? undefined : new Uint8Array(q.nBlocks * n);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < q.nBlocks; b++) {
      scales[b * n + r] = q.scales[r * q.nBlocks + b];
      if (zeroPoints) zeroPoints[b * n + r] = q.zeroPoints[r * q.nBlocks + b];
    }
  }
  return { values, scales, zeroPoints };
}
