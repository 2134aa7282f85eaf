// IDX files (the MNIST / Fashion-MNIST container: http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"), plain or
// gzipped, and image-classification sets made of an images file and a labels file.
//
// Layout: two zero bytes, a type byte, a dimension count byte, one big-endian uint32 per dimension, then the
// elements in row-major order. Only the unsigned-byte type (0x08) is read: it is what every MNIST-style image and
// label file uses, and returning it as Uint8Array keeps a 10,000-image set at 7.8 MB until a batch is needed.
import { readFile } from 'node:fs/promises';
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { DatasetError, UsageError, isENOENT, throwIfAborted } from '../../errors.js';

const gunzipAsync = promisify(gunzip);

/** One IDX array: its dimensions and its elements (unsigned bytes), row-major. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const IDX_TYPES: Record<number, string> = {
  0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64',
};

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Decodes the bytes of an (already decompressed) IDX file. `name` names the file in errors. The returned `data`
 * is a view into `bytes`, not a copy.
 */
export function parseIdx(bytes: Uint8Array, name = '<buffer>'): IdxArray {
  if (bytes.length < 4) {
    throw new DatasetError('DATASET_CORRUPT', `${name}: ${bytes.length} bytes is too short for an IDX header; the file is truncated or is not IDX`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0 || !(bytes[2] in IDX_TYPES) || bytes[3] === 0) {
    const magic = Buffer.from(bytes.subarray(0, 4)).toString('hex');
    throw new DatasetError('DATASET_CORRUPT', `${name}: bad IDX magic number 0x${magic} (expected 0x0000 then a type byte and a dimension count, e.g. 0x00000803 for images); this is not an IDX file`);
  }
  if (bytes[2] !== 0x08) {
    throw new DatasetError('DATASET_CORRUPT', `${name}: IDX element type ${IDX_TYPES[bytes[2]]} (0x${bytes[2].toString(16)}) is not supported; only unsigned-byte (0x08) files are read`);
  }
  const ndim = bytes[3];
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) {
    throw new DatasetError('DATASET_CORRUPT', `${name}: truncated IDX header: ${ndim} dimensions need ${headerBytes} header bytes, the file has ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const expected = dims.reduce((a, d) => a * d, 1);
  const found = bytes.length - headerBytes;
  if (found !== expected) {
    const what = found < expected ? 'truncated' : 'has trailing bytes';
    throw new DatasetError('DATASET_CORRUPT', `${name}: ${what}: dims [${dims.join(', ')}] need ${expected} data bytes, the file has ${found}. Re-download or re-copy it.`);
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Reads an IDX file, gzipped (detected by content, not by name) or not. */
export async function readIdx(path: string, opts: { signal?: AbortSignal } = {}): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path, { signal: opts.signal });
  } catch (e) {
    throwIfAborted(opts.signal, `reading ${path}`);
    if (isENOENT(e)) throw new DatasetError('DATASET_NOT_FOUND', `${path}: no such file`);
    throw new DatasetError('DATASET_NOT_FOUND', `${path}: cannot read the file (${(e as Error).message})`, { cause: e });
  }
  throwIfAborted(opts.signal, `reading ${path}`);
  if (isGzip(bytes)) {
    try {
      bytes = await gunzipAsync(bytes);
    } catch (e) {
      throw new DatasetError('DATASET_CORRUPT', `${path}: gzip data is damaged or truncated (${(e as Error).message}); re-download or re-copy the file`, { cause: e });
    }
    throwIfAborted(opts.signal, `reading ${path}`);
  }
  return parseIdx(bytes, path);
}

export interface ClassificationOptions {
  /** Keep only the first `limit` examples. */
  limit?: number;
  /** Multiplies each pixel byte; default 1/255 (pixels in 0..1). */
  scale?: number;
  signal?: AbortSignal;
}

export interface ClassificationBatch {
  /** Index of the batch's first example in the set. */
  start: number;
  /** Pixels of `dims[0]` examples, scaled; a view into the set's `images`, not a copy. */
  input: Float32Array;
  dims: [number, number, number, number];
  labels: Uint8Array;
}

export interface ClassificationSet {
  count: number;
  /** Shape of one example, channel first: [1, rows, cols]. */
  inputShape: [number, number, number];
  images: Float32Array;
  labels: Uint8Array;
  /** Consecutive batches of at most `size` examples, in file order; the last one may be smaller. */
  batches(size: number): Generator<ClassificationBatch>;
}

/**
 * Loads an image-classification set from an IDX images file ([count, rows, cols] bytes) and an IDX labels file
 * ([count] bytes), e.g. Fashion-MNIST's t10k pair.
 */
export async function loadIdxClassification(imagesPath: string, labelsPath: string, opts: ClassificationOptions = {}): Promise<ClassificationSet> {
  const scale = opts.scale ?? 1 / 255;
  if (!Number.isFinite(scale)) throw new UsageError(`scale must be a finite number, got ${opts.scale}`);
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit >= 0)) {
    throw new UsageError(`limit must be a non-negative integer, got ${opts.limit}`);
  }
  const [img, lab] = await Promise.all([readIdx(imagesPath, opts), readIdx(labelsPath, opts)]);
  if (img.dims.length !== 3) {
    throw new DatasetError('DATASET_CORRUPT', `${imagesPath}: an images file must have 3 dimensions [count, rows, cols], found [${img.dims.join(', ')}]; is it a labels file?`);
  }
  if (lab.dims.length !== 1) {
    throw new DatasetError('DATASET_CORRUPT', `${labelsPath}: a labels file must have 1 dimension [count], found [${lab.dims.join(', ')}]; is it an images file?`);
  }
  if (img.dims[0] !== lab.dims[0]) {
    throw new DatasetError('DATASET_CORRUPT', `${imagesPath} holds ${img.dims[0]} images but ${labelsPath} holds ${lab.dims[0]} labels; they are not a pair`);
  }
  const [total, rows, cols] = img.dims;
  const count = Math.min(total, opts.limit ?? total);
  const pixels = rows * cols;
  const images = new Float32Array(count * pixels);
  const src = img.data;
  for (let i = 0; i < images.length; i++) images[i] = src[i] * scale;
  // a copy, so the set does not keep the whole decompressed labels file alive when `limit` is small
  const labels = lab.data.slice(0, count);

  function* batches(size: number): Generator<ClassificationBatch> {
    if (!(Number.isInteger(size) && size > 0)) throw new UsageError(`batch size must be a positive integer, got ${size}`);
    for (let start = 0; start < count; start += size) {
      const b = Math.min(size, count - start);
      yield {
        start,
        input: images.subarray(start * pixels, (start + b) * pixels),
        dims: [b, 1, rows, cols],
        labels: labels.subarray(start, start + b),
      };
    }
  }
  return { count, inputShape: [1, rows, cols], images, labels, batches };
}
