// Tensors as plain data: what crosses the process boundary to the runner child (advanced IPC serialization carries
// typed arrays) and what the fidelity metrics read. Names follow onnxruntime's Tensor.Type, so the child can hand
// them to `new ort.Tensor(dtype, data, dims)` unchanged.
import { DT } from '../onnx/dtype.js';
import { float16BitsToFloat32 } from '../onnx/half.js';

export interface PlainDtypeMap {
  float32: Float32Array;
  float64: Float64Array;
  /** raw IEEE half bits, as onnxruntime-node takes them */
  float16: Uint16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  int16: Int16Array;
  uint16: Uint16Array;
  int32: Int32Array;
  uint32: Uint32Array;
  int64: BigInt64Array;
  uint64: BigUint64Array;
  /** one byte per element, 0 or 1 */
  bool: Uint8Array;
}
export type PlainDtype = keyof PlainDtypeMap;
export type PlainData = PlainDtypeMap[PlainDtype];

export interface PlainTensor {
  dtype: PlainDtype;
  dims: number[];
  data: PlainData;
}

const FROM_ONNX: Partial<Record<number, PlainDtype>> = {
  [DT.FLOAT]: 'float32',
  [DT.DOUBLE]: 'float64',
  [DT.FLOAT16]: 'float16',
  [DT.INT8]: 'int8',
  [DT.UINT8]: 'uint8',
  [DT.INT16]: 'int16',
  [DT.UINT16]: 'uint16',
  [DT.INT32]: 'int32',
  [DT.UINT32]: 'uint32',
  [DT.INT64]: 'int64',
  [DT.UINT64]: 'uint64',
  [DT.BOOL]: 'bool',
};

/** The plain dtype for an ONNX element type, or undefined when onnxruntime-node cannot feed it (string, bfloat16, float8, int4). */
export function plainDtypeOf(onnxElemType: number): PlainDtype | undefined {
  return FROM_ONNX[onnxElemType];
}

const ALLOC: { [K in PlainDtype]: (n: number) => PlainDtypeMap[K] } = {
  float32: (n) => new Float32Array(n),
  float64: (n) => new Float64Array(n),
  float16: (n) => new Uint16Array(n),
  int8: (n) => new Int8Array(n),
  uint8: (n) => new Uint8Array(n),
  int16: (n) => new Int16Array(n),
  uint16: (n) => new Uint16Array(n),
  int32: (n) => new Int32Array(n),
  uint32: (n) => new Uint32Array(n),
  int64: (n) => new BigInt64Array(n),
  uint64: (n) => new BigUint64Array(n),
  bool: (n) => new Uint8Array(n),
};

export function allocPlain<K extends PlainDtype>(dtype: K, n: number): PlainDtypeMap[K] {
  return ALLOC[dtype](n);
}

export function isPlainDtype(s: string): s is PlainDtype {
  return Object.hasOwn(ALLOC, s);
}

export function elementCountOf(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** The values as float64 numbers, decoding float16 bits and widening 64-bit integers (precision beyond 2^53 is lost). */
export function toNumbers(t: PlainTensor): Float64Array {
  const n = t.data.length;
  const out = new Float64Array(n);
  if (t.dtype === 'float16') {
    const d = t.data as Uint16Array;
    for (let i = 0; i < n; i++) out[i] = float16BitsToFloat32(d[i]);
  } else if (t.data instanceof BigInt64Array || t.data instanceof BigUint64Array) {
    const d = t.data;
    for (let i = 0; i < n; i++) out[i] = Number(d[i]);
  } else {
    out.set(t.data as ArrayLike<number>);
  }
  return out;
}
