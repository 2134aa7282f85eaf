import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { TensorProtoSchema, TensorProto_DataLocation, StringStringEntryProtoSchema, type TensorProto } from 'onnx-buf';
import { DT, allocArray, dtypeInfo, dtypeName, rawByteLength, type TypedArray } from './dtype.js';
import { bfloat16BitsToFloat32, float16BitsToFloat32 } from './half.js';
import { ModelError } from '../errors.js';

/** A tensor's values as a typed array. float16/bfloat16 hold raw bits (Uint16Array); int4/uint4 are unpacked. */
export interface TensorData {
  dtype: number;
  dims: number[];
  data: TypedArray;
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === TensorProto_DataLocation.EXTERNAL;
}

export function externalInfo(t: TensorProto): { location: string; offset: number; length?: number } {
  const kv = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
  if (!kv.location) throw new ModelError('EXTERNAL_DATA', `tensor "${t.name}" is stored externally but names no location`);
  const offset = kv.offset ? Number(kv.offset) : 0;
  const length = kv.length ? Number(kv.length) : undefined;
  // A corrupt offset/length must not reach fs.readSync or a typed-array constructor, which throw RangeErrors.
  for (const [key, v] of [['offset', offset], ['length', length]] as const) {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) {
      throw new ModelError('EXTERNAL_DATA', `tensor "${t.name}": external data ${key} "${kv[key]}" is not a non-negative integer; the model file is corrupt`);
    }
  }
  return { location: kv.location, offset, length };
}

/** The raw little-endian bytes of a tensor, from raw_data or its external file. */
export function tensorRawBytes(t: TensorProto, baseDir?: string): Uint8Array | undefined {
  if (isExternal(t)) {
    const { location, offset, length } = externalInfo(t);
    const norm = normalize(location);
    if (isAbsolute(location) || norm === '..' || norm.startsWith(`..${sep}`) || norm.startsWith('../')) {
      throw new ModelError('EXTERNAL_DATA', `tensor "${t.name}": external data location "${location}" must be a relative path inside the model's folder`);
    }
    if (!baseDir) throw new ModelError('EXTERNAL_DATA', `tensor "${t.name}" uses external data "${location}" but the model's folder is unknown; load the model from a file`);
    const file = join(baseDir, location);
    const want = length ?? rawByteLength(t.dataType, elementCount(t.dims.map(Number)));
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch (e) {
      throw new ModelError('EXTERNAL_DATA', `tensor "${t.name}": cannot open external data file ${file}: ${(e as Error).message}. Keep the data file beside the model.`);
    }
    try {
      // Compare with the file's size before allocating: a corrupt length must not allocate gigabytes.
      const size = fstatSync(fd).size;
      const got = Math.max(0, Math.min(want, size - offset));
      if (got !== want) throw new ModelError('EXTERNAL_DATA', `tensor "${t.name}": external data file ${file} is truncated (wanted ${want} bytes at offset ${offset}, the file holds ${got})`);
      const buf = new Uint8Array(want);
      const read = readSync(fd, buf, 0, want, offset);
      if (read !== want) throw new ModelError('EXTERNAL_DATA', `tensor "${t.name}": external data file ${file} is truncated (wanted ${want} bytes at offset ${offset}, got ${read})`);
      return buf;
    } finally {
      closeSync(fd);
    }
  }
  return t.rawData.length > 0 ? t.rawData : undefined;
}

function view(bytes: Uint8Array, kind: string, n: number): TypedArray {
  // Copy into a fresh, aligned buffer: raw_data may be a view into the whole file at any offset (and a Node
  // Buffer's slice() is a view, not a copy, so never reach for .buffer directly).
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  const out = allocArray(kind as never, n);
  const Ctor = out.constructor as { new (b: ArrayBuffer, o: number, l: number): TypedArray };
  (out as Uint8Array).set(new Ctor(copy.buffer, 0, n) as Uint8Array);
  return out;
}

export function readTensor(t: TensorProto, baseDir?: string): TensorData {
  const info = dtypeInfo(t.dataType);
  const dims = t.dims.map(Number);
  if (!info || info.array === 'string') {
    throw new ModelError('TENSOR_UNSUPPORTED', `tensor "${t.name}" has type ${dtypeName(t.dataType)}, which edgetune cannot read as numbers`);
  }
  // Check the shape before allocating: a corrupt dim must give a ModelError, not a RangeError from a typed array.
  const n = elementCount(dims);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0) || !Number.isSafeInteger(n)) {
    throw new ModelError('MODEL_CORRUPT', `tensor "${t.name}" has an impossible shape [${t.dims.join(',')}]; the model file is corrupt`);
  }
  const raw = tensorRawBytes(t, baseDir);
  if (raw) {
    const need = rawByteLength(t.dataType, n);
    if (raw.length < need) throw new ModelError('MODEL_CORRUPT', `tensor "${t.name}" holds ${raw.length} bytes but its shape [${dims}] of ${info.name} needs ${need}`);
    if (info.bits === 4) return { dtype: t.dataType, dims, data: unpack4(raw, n, t.dataType === DT.INT4) };
    return { dtype: t.dataType, dims, data: view(raw, info.array, n) };
  }
  const field = t[info.field] as ArrayLike<number | bigint>;
  // int4/uint4 in int32_data hold one packed byte (two values) per entry, as onnx.helper writes them.
  const want = info.bits === 4 ? Math.ceil(n / 2) : n;
  if (field.length !== want && n !== 0) {
    throw new ModelError('MODEL_CORRUPT', `tensor "${t.name}" has ${field.length} values in ${info.field} but its shape [${dims}] needs ${want}`);
  }
  if (info.bits === 4) {
    const packed = Uint8Array.from(field as ArrayLike<number>);
    return { dtype: t.dataType, dims, data: unpack4(packed, n, t.dataType === DT.INT4) };
  }
  const out = allocArray(info.array, n);
  for (let i = 0; i < n; i++) {
    const v = field[i];
    (out as unknown as Array<number | bigint>)[i] = out instanceof BigInt64Array || out instanceof BigUint64Array ? BigInt(v) : Number(v);
  }
  return { dtype: t.dataType, dims, data: out };
}

function unpack4(packed: Uint8Array, n: number, signed: boolean): TypedArray {
  const out = signed ? new Int8Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const nib = (packed[i >> 1] >> ((i & 1) * 4)) & 0xf;
    out[i] = signed && nib & 0x8 ? nib - 16 : nib;
  }
  return out;
}

export function pack4(values: ArrayLike<number>): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i++) out[i >> 1] |= (values[i] & 0xf) << ((i & 1) * 4);
  return out;
}

/** A new initializer-style tensor with its values in raw_data. */
export function makeTensor(name: string, dtype: number, dims: readonly number[], data: TypedArray): TensorProto {
  const info = dtypeInfo(dtype);
  if (!info || info.array === 'string') throw new RangeError(`makeTensor: unsupported dtype ${dtypeName(dtype)}`);
  const n = elementCount(dims);
  if (data.length !== n) throw new RangeError(`makeTensor("${name}"): ${data.length} values for shape [${dims}] (needs ${n})`);
  const raw: Uint8Array<ArrayBuffer> = info.bits === 4
    ? pack4(data as ArrayLike<number>)
    : new Uint8Array(data.byteLength);
  if (info.bits !== 4) raw.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return create(TensorProtoSchema, { name, dataType: dtype, dims: dims.map(BigInt), rawData: raw });
}

/** Values as float32, whatever the float dtype (float32, float16, bfloat16, float64) or integer dtype. */
export function toFloat32(t: TensorData): Float32Array {
  const d = t.data;
  if (d instanceof Float32Array) return d;
  const out = new Float32Array(d.length);
  if (t.dtype === DT.FLOAT16) for (let i = 0; i < d.length; i++) out[i] = float16BitsToFloat32(d[i] as number);
  else if (t.dtype === DT.BFLOAT16) for (let i = 0; i < d.length; i++) out[i] = bfloat16BitsToFloat32(d[i] as number);
  else for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
  return out;
}

export function externalEntry(key: string, value: string) {
  return create(StringStringEntryProtoSchema, { key, value });
}
