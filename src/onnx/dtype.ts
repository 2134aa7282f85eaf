import { TensorProto_DataType as DT } from 'onnx-buf';

export { DT };

export type TypedArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

interface DtypeInfo {
  name: string;
  /** bits per element in raw_data */
  bits: number;
  /** the typed array we expose the values in (float16/bfloat16 as their raw uint16 bits; int4 unpacked) */
  array: 'f32' | 'f64' | 'i8' | 'u8' | 'i16' | 'u16' | 'i32' | 'u32' | 'i64' | 'u64' | 'string';
  /** which typed field of TensorProto holds it when raw_data is not used */
  field: 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data' | 'stringData';
}

const INFO: Partial<Record<DT, DtypeInfo>> = {
  [DT.FLOAT]: { name: 'float32', bits: 32, array: 'f32', field: 'floatData' },
  [DT.DOUBLE]: { name: 'float64', bits: 64, array: 'f64', field: 'doubleData' },
  [DT.FLOAT16]: { name: 'float16', bits: 16, array: 'u16', field: 'int32Data' },
  [DT.BFLOAT16]: { name: 'bfloat16', bits: 16, array: 'u16', field: 'int32Data' },
  [DT.INT8]: { name: 'int8', bits: 8, array: 'i8', field: 'int32Data' },
  [DT.UINT8]: { name: 'uint8', bits: 8, array: 'u8', field: 'int32Data' },
  [DT.INT16]: { name: 'int16', bits: 16, array: 'i16', field: 'int32Data' },
  [DT.UINT16]: { name: 'uint16', bits: 16, array: 'u16', field: 'int32Data' },
  [DT.INT32]: { name: 'int32', bits: 32, array: 'i32', field: 'int32Data' },
  [DT.UINT32]: { name: 'uint32', bits: 32, array: 'u32', field: 'uint64Data' },
  [DT.INT64]: { name: 'int64', bits: 64, array: 'i64', field: 'int64Data' },
  [DT.UINT64]: { name: 'uint64', bits: 64, array: 'u64', field: 'uint64Data' },
  [DT.BOOL]: { name: 'bool', bits: 8, array: 'u8', field: 'int32Data' },
  [DT.INT4]: { name: 'int4', bits: 4, array: 'i8', field: 'int32Data' },
  [DT.UINT4]: { name: 'uint4', bits: 4, array: 'u8', field: 'int32Data' },
  [DT.FLOAT8E4M3FN]: { name: 'float8e4m3fn', bits: 8, array: 'u8', field: 'int32Data' },
  [DT.FLOAT8E4M3FNUZ]: { name: 'float8e4m3fnuz', bits: 8, array: 'u8', field: 'int32Data' },
  [DT.FLOAT8E5M2]: { name: 'float8e5m2', bits: 8, array: 'u8', field: 'int32Data' },
  [DT.FLOAT8E5M2FNUZ]: { name: 'float8e5m2fnuz', bits: 8, array: 'u8', field: 'int32Data' },
  [DT.STRING]: { name: 'string', bits: 0, array: 'string', field: 'stringData' },
};

export function dtypeInfo(dt: number): DtypeInfo | undefined {
  return INFO[dt as DT];
}

export function dtypeName(dt: number): string {
  return INFO[dt as DT]?.name ?? `dtype#${dt}`;
}

/** Bytes a tensor of `count` elements takes in raw_data (int4 packs two per byte). */
export function rawByteLength(dt: number, count: number): number {
  const info = INFO[dt as DT];
  if (!info || info.bits === 0) return 0;
  return Math.ceil((count * info.bits) / 8);
}

export function allocArray(kind: DtypeInfo['array'], n: number): TypedArray {
  switch (kind) {
    case 'f32': return new Float32Array(n);
    case 'f64': return new Float64Array(n);
    case 'i8': return new Int8Array(n);
    case 'u8': return new Uint8Array(n);
    case 'i16': return new Int16Array(n);
    case 'u16': return new Uint16Array(n);
    case 'i32': return new Int32Array(n);
    case 'u32': return new Uint32Array(n);
    case 'i64': return new BigInt64Array(n);
    case 'u64': return new BigUint64Array(n);
    case 'string': throw new RangeError('string tensors have no typed array');
  }
}
