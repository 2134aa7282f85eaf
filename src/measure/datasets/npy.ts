// NumPy's .npy and .npz files (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html).
//
// .npy: the magic "\x93NUMPY", a version (1.0 / 2.0 / 3.0), a little-endian header length (uint16, or uint32 from
// 2.0), then a Python dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (128, 1, 28, 28), }
// and the raw elements. .npz is a zip archive of .npy files, one per array, named `<key>.npy`.
// A .npy is read row by row from disk (C order: one row = one example), so a large set never sits in memory.
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { unzipSync } from 'fflate';
import { DatasetError, isENOENT } from '../../errors.js';
import { allocPlain, elementCountOf, type PlainDtype, type PlainTensor } from '../plain-tensor.js';

export interface NpyHeader {
  dtype: PlainDtype;
  /** numpy's descr, for messages: '<f4', '>i8', '|b1' */
  descr: string;
  dims: number[];
  /** bytes before the first element */
  dataOffset: number;
  bigEndian: boolean;
  fortranOrder: boolean;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

// numpy kind + item size → our dtype. float16 stays as raw bits, like everywhere else in edgetune.
const DESCR: Record<string, PlainDtype> = {
  f4: 'float32', f8: 'float64', f2: 'float16',
  i1: 'int8', i2: 'int16', i4: 'int32', i8: 'int64',
  u1: 'uint8', u2: 'uint16', u4: 'uint32', u8: 'uint64',
  b1: 'bool',
};
const ITEM_BYTES: Record<PlainDtype, number> = {
  float32: 4, float64: 8, float16: 2, int8: 1, int16: 2, int32: 4, int64: 8, uint8: 1, uint16: 2, uint32: 4, uint64: 8, bool: 1,
};

export function itemBytes(dtype: PlainDtype): number {
  return ITEM_BYTES[dtype];
}

/** Parses the header of a .npy held in `bytes` (at least the first few hundred bytes of the file). */
export function parseNpyHeader(bytes: Uint8Array, name = '<buffer>'): NpyHeader {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new DatasetError('DATASET_CORRUPT', `${name}: not a .npy file (no \\x93NUMPY magic at the start); save arrays with numpy.save`);
  }
  const major = bytes[6];
  if (major < 1 || major > 3) throw new DatasetError('DATASET_CORRUPT', `${name}: .npy format version ${major}.${bytes[7]} is not supported (1.0-3.0 are)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) throw new DatasetError('DATASET_CORRUPT', `${name}: truncated .npy header`);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = 8 + lenBytes;
  if (bytes.length < start + headerLen) throw new DatasetError('DATASET_CORRUPT', `${name}: truncated .npy header (${headerLen} bytes announced)`);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const descrM = /'descr'\s*:\s*'([<>|=])?([a-zA-Z])(\d+)'/.exec(text);
  const fortranM = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shapeM = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descrM || !fortranM || !shapeM) {
    throw new DatasetError('DATASET_CORRUPT', `${name}: cannot read the .npy header ${JSON.stringify(text.trim())}; structured or object arrays are not supported`);
  }
  const [, order = '<', kind, size] = descrM;
  const dtype = DESCR[`${kind}${size}`];
  if (!dtype) {
    throw new DatasetError('DATASET_CORRUPT', `${name}: numpy dtype '${order}${kind}${size}' is not supported; convert with arr.astype(numpy.float32) (or an integer type) before saving`);
  }
  const dims = shapeM[1].split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    const d = Number(s.replace(/L$/, ''));
    if (!Number.isSafeInteger(d) || d < 0) throw new DatasetError('DATASET_CORRUPT', `${name}: bad dimension "${s}" in the .npy shape`);
    return d;
  });
  return {
    dtype, descr: `${order}${kind}${size}`, dims, dataOffset: start + headerLen,
    // '=' is the writer's native order; every platform numpy runs on today is little-endian.
    bigEndian: order === '>' && ITEM_BYTES[dtype] > 1,
    fortranOrder: fortranM[1] === 'True',
  };
}

/** Elements from little- or big-endian bytes into a fresh typed array. */
function decode(bytes: Uint8Array, dtype: PlainDtype, count: number, bigEndian: boolean): PlainTensor['data'] {
  const size = ITEM_BYTES[dtype];
  const copy = new Uint8Array(count * size);
  copy.set(bytes.subarray(0, count * size));
  if (bigEndian) {
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  const out = allocPlain(dtype, count);
  const Ctor = out.constructor as new (b: ArrayBuffer, o: number, n: number) => PlainTensor['data'];
  (out as Uint8Array).set(new Ctor(copy.buffer, 0, count) as Uint8Array);
  return out;
}

/** Reorders a Fortran-order (column-major) array into C order. */
function fortranToC(t: PlainTensor): PlainTensor {
  const dims = t.dims;
  const n = t.data.length;
  if (dims.length < 2) return t;
  const out = allocPlain(t.dtype, n) as unknown as { [i: number]: number | bigint };
  const src = t.data as unknown as { [i: number]: number | bigint };
  const idx = new Array(dims.length).fill(0);
  for (let c = 0; c < n; c++) {
    // c walks C order; the same element in Fortran order has the first index varying fastest.
    let f = 0;
    for (let k = dims.length - 1; k >= 0; k--) f = f * dims[k] + idx[k];
    out[c] = src[f];
    for (let k = dims.length - 1; k >= 0; k--) {
      if (++idx[k] < dims[k]) break;
      idx[k] = 0;
    }
  }
  return { dtype: t.dtype, dims, data: out as unknown as PlainTensor['data'] };
}

/** Decodes a whole .npy held in memory. */
export function parseNpy(bytes: Uint8Array, name = '<buffer>'): PlainTensor {
  const h = parseNpyHeader(bytes, name);
  const count = elementCountOf(h.dims);
  const need = count * ITEM_BYTES[h.dtype];
  const have = bytes.length - h.dataOffset;
  if (have < need) {
    throw new DatasetError('DATASET_CORRUPT', `${name}: truncated: shape (${h.dims.join(', ')}) of ${h.descr} needs ${need} data bytes, the file has ${have}`);
  }
  const t: PlainTensor = { dtype: h.dtype, dims: h.dims, data: decode(bytes.subarray(h.dataOffset), h.dtype, count, h.bigEndian) };
  return h.fortranOrder ? fortranToC(t) : t;
}

/**
 * A .npy file (version 1.0, little-endian, C order) as numpy.save writes it: the header is padded so the data
 * starts on a 64-byte boundary. Benchmarks use it to hand the same examples to Python tools.
 */
export function encodeNpy(t: PlainTensor): Uint8Array {
  const code = Object.entries(DESCR).find(([, d]) => d === t.dtype)![0];
  const descr = `${ITEM_BYTES[t.dtype] === 1 ? '|' : '<'}${code}`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${t.dims.join(', ')}${t.dims.length === 1 ? ',' : ''}), }`;
  const header = dict + ' '.repeat((64 - ((10 + dict.length + 1) % 64)) % 64) + '\n';
  const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([...MAGIC, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(data, 10 + header.length);
  return out;
}

async function readAll(path: string, signal?: AbortSignal): Promise<Uint8Array> {
  try {
    return await readFile(path, { signal });
  } catch (e) {
    if (isENOENT(e)) throw new DatasetError('DATASET_NOT_FOUND', `${path}: no such file`);
    throw new DatasetError('DATASET_NOT_FOUND', `${path}: cannot read the file (${(e as Error).message})`, { cause: e });
  }
}

/** Every array of a .npz archive, by key (the member name without `.npy`). */
export async function readNpz(path: string, opts: { signal?: AbortSignal } = {}): Promise<Record<string, PlainTensor>> {
  const bytes = await readAll(path, opts.signal);
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(bytes);
  } catch (e) {
    throw new DatasetError('DATASET_CORRUPT', `${path}: not a readable .npz (zip) archive (${(e as Error).message}); save it with numpy.savez`, { cause: e });
  }
  const out: Record<string, PlainTensor> = {};
  for (const [member, data] of Object.entries(members)) {
    if (!member.endsWith('.npy')) continue;
    out[member.slice(0, -4)] = parseNpy(data, `${path}:${member}`);
  }
  if (Object.keys(out).length === 0) throw new DatasetError('DATASET_CORRUPT', `${path}: the archive holds no .npy members`);
  return out;
}

/**
 * A .npy file opened for reading rows (slices along dim 0) on demand. Close it when done. Fortran-order files
 * have no contiguous rows, so they are read whole on open.
 */
export class NpyFile {
  private constructor(readonly path: string, readonly header: NpyHeader, private readonly fh: FileHandle | undefined, private readonly whole?: PlainTensor) {}

  static async open(path: string): Promise<NpyFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if (isENOENT(e)) throw new DatasetError('DATASET_NOT_FOUND', `${path}: no such file`);
      throw new DatasetError('DATASET_NOT_FOUND', `${path}: cannot open the file (${(e as Error).message})`, { cause: e });
    }
    try {
      const head = new Uint8Array(4096);
      const { bytesRead } = await fh.read(head, 0, head.length, 0);
      let h = parseNpyHeader(head.subarray(0, bytesRead), path);
      const size = (await fh.stat()).size;
      const need = elementCountOf(h.dims) * ITEM_BYTES[h.dtype];
      if (size - h.dataOffset < need) {
        throw new DatasetError('DATASET_CORRUPT', `${path}: truncated: shape (${h.dims.join(', ')}) of ${h.descr} needs ${need} data bytes, the file has ${size - h.dataOffset}`);
      }
      if (h.fortranOrder) {
        const whole = parseNpy(await readFile(path), path);
        await fh.close();
        h = { ...h, fortranOrder: false };
        return new NpyFile(path, h, undefined, whole);
      }
      return new NpyFile(path, h, fh);
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  /** Number of rows (dim 0); a 0-d array counts as one row. */
  get rows(): number {
    return this.header.dims.length === 0 ? 1 : this.header.dims[0];
  }

  /** Rows [start, start + count) as one array of dims [count, ...rest]. */
  async readRows(start: number, count: number): Promise<PlainTensor> {
    const rest = this.header.dims.slice(1);
    const rowElems = elementCountOf(rest);
    const n = Math.max(0, Math.min(count, this.rows - start));
    const dims = this.header.dims.length === 0 ? [] : [n, ...rest];
    if (this.whole) {
      const data = (this.whole.data as Uint8Array).slice(start * rowElems, (start + n) * rowElems) as unknown as PlainTensor['data'];
      return { dtype: this.header.dtype, dims, data };
    }
    const size = ITEM_BYTES[this.header.dtype];
    const elems = this.header.dims.length === 0 ? 1 : n * rowElems;
    const buf = new Uint8Array(elems * size);
    const { bytesRead } = await this.fh!.read(buf, 0, buf.length, this.header.dataOffset + start * rowElems * size);
    if (bytesRead !== buf.length) throw new DatasetError('DATASET_CORRUPT', `${this.path}: short read at row ${start}; the file changed or is truncated`);
    return { dtype: this.header.dtype, dims, data: decode(buf, this.header.dtype, elems, this.header.bigEndian) };
  }

  async close(): Promise<void> {
    await this.fh?.close();
  }
}
