// Opens a dataset a user points at (for calibration or evaluation) as a DataSource for one model: picks the format,
// then checks every array against the model's inputs (names, rank, fixed dims, dtype) before anything runs.
//   folder with input_0.pb or test_data_set_*/   ONNX test data: each set is fed as it is (one run per set)
//   file.npy                                     one array [count, ...example] for a one-input model
//   file.npz                                     arrays named after the inputs (+ optional "label"/"labels")
//   file.jsonl                                   one example per line: {"<input>": nested array, "label": n}
//   folder with *images-idx3* + *labels-idx1*    an IDX image-classification pair (e.g. examples/fashion-mnist)
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { DatasetError, UsageError, isENOENT, throwIfAborted } from '../../errors.js';
import type { OnnxModel } from '../../onnx/model.js';
import { formatShape, inputSpecs, type InputSpec } from '../inputs.js';
import { allocPlain, elementCountOf, type PlainTensor } from '../plain-tensor.js';
import { loadIdxClassification } from './idx.js';
import { nestedToTensor, readJsonLines } from './jsonl.js';
import { NpyFile, readNpz } from './npy.js';
import type { DataBatch, DataSource } from './source.js';
import { isTestDataDir, listTestDataSets, readTensorFile } from './testdata.js';

export interface OpenOptions {
  /** IDX images: multiply each pixel byte by this (default: the folder's meta.json "scale", else 1/255) */
  scale?: number;
}

export type DatasetFormat = 'testdata' | 'npy' | 'npz' | 'jsonl' | 'idx';

export interface OpenedSource extends DataSource {
  format: DatasetFormat;
}

const DEFAULT_BATCH = 16;
const LABEL_KEYS = new Set(['label', 'labels']);

/** Opens `path` as examples for `model`; throws DatasetError naming the file, input and dim at fault. */
export async function openDataSource(path: string, model: OnnxModel, opts: OpenOptions = {}): Promise<OpenedSource> {
  const abs = resolve(path);
  let isDir: boolean;
  try {
    isDir = (await stat(abs)).isDirectory();
  } catch (e) {
    if (isENOENT(e)) throw new DatasetError('DATASET_NOT_FOUND', `${path}: no such file or folder`);
    throw new DatasetError('DATASET_NOT_FOUND', `${path}: cannot read it (${(e as Error).message})`, { cause: e });
  }
  const specs = inputSpecs(model);
  if (specs.length === 0) throw new UsageError(`${model.path ?? 'the model'} takes no inputs: there is nothing to feed a dataset to`);
  for (const s of specs) {
    if (!s.dtype) throw new DatasetError('DATASET_CORRUPT', `model input "${s.name}" has type ${s.type}, which edgetune cannot feed from a dataset`);
  }
  if (isDir) {
    if (await isTestDataDir(abs)) return openTestData(abs, specs);
    const idx = await findIdxPair(abs);
    if (idx) return openIdx(abs, idx, specs, opts);
    throw new DatasetError('DATASET_NOT_FOUND', `${path}: the folder holds neither ONNX test data (input_0.pb, test_data_set_*/) nor an IDX pair (*-images-idx3-ubyte[.gz] + *-labels-idx1-ubyte[.gz])`);
  }
  const ext = extname(abs).toLowerCase();
  if (ext === '.npy') return openNpy(abs, specs);
  if (ext === '.npz') return openNpz(abs, specs);
  if (ext === '.jsonl' || ext === '.ndjson') return openJsonl(abs, specs);
  if (ext === '.pb') throw new DatasetError('DATASET_NOT_FOUND', `${path}: give the folder that holds input_0.pb, not the file`);
  throw new DatasetError('DATASET_NOT_FOUND', `${path}: unknown dataset format "${ext || basename(abs)}"; use a .npy, .npz or .jsonl file, an ONNX test-data folder or an IDX folder`);
}

// ---- checks against the model ----

function dtypeError(where: string, spec: InputSpec, got: string): DatasetError {
  return new DatasetError('DATASET_CORRUPT', `${where}: holds ${got} but model input "${spec.name}" is ${spec.dtype}; convert the data (numpy: arr.astype(numpy.${spec.dtype === 'bool' ? 'bool_' : spec.dtype}))`);
}

/**
 * Checks one array for `spec`. `batched`: dim 0 counts examples (any size unless the model fixes it); otherwise the
 * array is one whole feed and must match every fixed dim.
 */
export function checkArray(where: string, spec: InputSpec, t: Pick<PlainTensor, 'dtype' | 'dims'>, batched: boolean): void {
  if (t.dtype !== spec.dtype) throw dtypeError(where, spec, t.dtype);
  const shape = spec.shape;
  if (!shape) return;
  if (t.dims.length !== shape.length) {
    throw new DatasetError('DATASET_CORRUPT', `${where}: has rank ${t.dims.length} [${t.dims.join(',')}] but model input "${spec.name}" is ${formatShape(shape)}`);
  }
  shape.forEach((d, i) => {
    if (batched && i === 0) return;
    if (typeof d === 'number' && d !== t.dims[i]) {
      throw new DatasetError('DATASET_CORRUPT', `${where}: dim ${i} is ${t.dims[i]} but model input "${spec.name}" fixes it at ${d} ${formatShape(shape)}`);
    }
  });
}

/** Adds a leading example dim to arrays that hold a single example without one. */
function withBatchDim(t: PlainTensor, spec: InputSpec): PlainTensor {
  return spec.shape && t.dims.length === spec.shape.length - 1 ? { ...t, dims: [1, ...t.dims] } : t;
}

/** The batch size a model accepts: the requested one, or the model's fixed dim 0 when it has one. */
function batchFor(specs: InputSpec[], requested: number | undefined): number {
  const fixed = specs.map((s) => s.shape?.[0]).find((d): d is number => typeof d === 'number');
  if (requested !== undefined && !(Number.isInteger(requested) && requested > 0)) throw new UsageError(`batch size must be a positive integer, got ${requested}`);
  return fixed ?? requested ?? DEFAULT_BATCH;
}

function sliceRows(t: PlainTensor, start: number, n: number): PlainTensor {
  const row = elementCountOf(t.dims.slice(1));
  return { dtype: t.dtype, dims: [n, ...t.dims.slice(1)], data: t.data.subarray(start * row, (start + n) * row) as PlainTensor['data'] };
}

function concatRows(parts: PlainTensor[]): PlainTensor {
  const n = parts.reduce((a, p) => a + p.dims[0], 0);
  const row = elementCountOf(parts[0].dims.slice(1));
  const out = allocPlain(parts[0].dtype, n * row);
  let off = 0;
  for (const p of parts) { (out as Uint8Array).set(p.data as Uint8Array, off); off += p.data.length; }
  return { dtype: parts[0].dtype, dims: [n, ...parts[0].dims.slice(1)], data: out };
}

function labelsOf(t: PlainTensor): ArrayLike<number> {
  const d = t.data;
  return d instanceof BigInt64Array || d instanceof BigUint64Array ? Array.from(d, Number) : (d as ArrayLike<number>);
}

/**
 * A source over in-memory or on-disk rows: `read(start, n)` gives every input's rows. Batches never straddle the
 * model's fixed batch size: a tail shorter than it is dropped.
 */
function rowSource(format: DatasetFormat, name: string, count: number, specs: InputSpec[],
  read: (start: number, n: number) => Promise<{ feeds: Record<string, PlainTensor>; labels?: ArrayLike<number> }>,
): OpenedSource {
  return {
    format, name, count,
    async *batches(o = {}) {
      const size = batchFor(specs, o.batchSize);
      const fixed = specs.some((s) => typeof s.shape?.[0] === 'number');
      const total = Math.min(count, o.limit ?? count);
      for (let start = 0; start < total; start += size) {
        throwIfAborted(o.signal, `reading ${name}`);
        const n = Math.min(size, total - start);
        if (fixed && n < size) break;
        yield await read(start, n);
      }
    },
  };
}

// ---- formats ----

async function openTestData(dir: string, specs: InputSpec[]): Promise<OpenedSource> {
  const sets = await listTestDataSets(dir);
  if (sets.length === 0) throw new DatasetError('DATASET_NOT_FOUND', `${dir}: no test_data_set_* folders`);
  const loadSet = async (i: number, signal?: AbortSignal): Promise<Record<string, PlainTensor>> => {
    const set = sets[i];
    if (set.inputs.length !== specs.length) {
      throw new DatasetError('DATASET_CORRUPT', `${set.dir}: ${set.inputs.length} input_*.pb files but the model takes ${specs.length} inputs (${specs.map((s) => s.name).join(', ')})`);
    }
    const files = await Promise.all(set.inputs.map((f) => readTensorFile(f, signal)));
    const byName = files.every((f) => specs.some((s) => s.name === f.name));
    const feeds: Record<string, PlainTensor> = {};
    files.forEach((f, k) => {
      const spec = byName ? specs.find((s) => s.name === f.name)! : specs[k];
      checkArray(set.inputs[k], spec, f.tensor, false);
      feeds[spec.name] = f.tensor;
    });
    return feeds;
  };
  // Read the first set now, so a mismatch fails at open time rather than halfway through calibration.
  const first = await loadSet(0);
  const perSet = first[specs[0].name].dims[0] ?? 1;
  return {
    format: 'testdata', name: dir, count: sets.length * perSet,
    async *batches(o = {}) {
      let seen = 0;
      for (let i = 0; i < sets.length; i++) {
        if (o.limit !== undefined && seen >= o.limit) break;
        throwIfAborted(o.signal, `reading ${dir}`);
        const feeds = i === 0 ? first : await loadSet(i, o.signal);
        seen += feeds[specs[0].name].dims[0] ?? 1;
        yield { feeds };
      }
    },
  };
}

async function openNpy(path: string, specs: InputSpec[]): Promise<OpenedSource> {
  if (specs.length !== 1) {
    throw new DatasetError('DATASET_CORRUPT', `${path}: a .npy holds one array but the model takes ${specs.length} inputs (${specs.map((s) => s.name).join(', ')}); save a .npz with one array per input name`);
  }
  const spec = specs[0];
  const f = await NpyFile.open(path);
  const single = spec.shape !== undefined && f.header.dims.length === spec.shape.length - 1;
  const dims = single ? [1, ...f.header.dims] : f.header.dims;
  try {
    checkArray(path, spec, { dtype: f.header.dtype, dims }, true);
  } catch (e) {
    await f.close();
    throw e;
  }
  if (single) {
    const all = await f.readRows(0, f.rows);
    await f.close();
    const whole = { ...all, dims };
    return rowSource('npy', path, 1, specs, async (s, n) => ({ feeds: { [spec.name]: sliceRows(whole, s, n) } }));
  }
  // Rows are read from disk per batch; the file stays open for the life of the process (a small fd cost).
  return rowSource('npy', path, f.rows, specs, async (s, n) => ({ feeds: { [spec.name]: await f.readRows(s, n) } }));
}

async function openNpz(path: string, specs: InputSpec[]): Promise<OpenedSource> {
  const arrays = await readNpz(path);
  const labelKey = Object.keys(arrays).find((k) => LABEL_KEYS.has(k));
  const dataKeys = Object.keys(arrays).filter((k) => !LABEL_KEYS.has(k));
  const bySpec = new Map<string, PlainTensor>();
  if (specs.length === 1 && dataKeys.length === 1) bySpec.set(specs[0].name, arrays[dataKeys[0]]);
  else {
    const missing = specs.filter((s) => !(s.name in arrays)).map((s) => s.name);
    if (missing.length) throw new DatasetError('DATASET_CORRUPT', `${path}: no array for model input(s) ${missing.join(', ')}; the archive holds ${dataKeys.join(', ')}. Name each array after its input (numpy.savez(path, **{"${missing[0]}": arr}))`);
    const extra = dataKeys.filter((k) => !specs.some((s) => s.name === k));
    if (extra.length) throw new DatasetError('DATASET_CORRUPT', `${path}: array(s) ${extra.join(', ')} match no model input (inputs: ${specs.map((s) => s.name).join(', ')})`);
    for (const s of specs) bySpec.set(s.name, arrays[s.name]);
  }
  let count: number | undefined;
  for (const s of specs) {
    const t = withBatchDim(bySpec.get(s.name)!, s);
    bySpec.set(s.name, t);
    checkArray(`${path}: array for "${s.name}"`, s, t, true);
    if (count !== undefined && t.dims[0] !== count) throw new DatasetError('DATASET_CORRUPT', `${path}: arrays hold different example counts (${count} and ${t.dims[0]} for "${s.name}")`);
    count = t.dims[0];
  }
  const labels = labelKey ? labelsOf(arrays[labelKey]) : undefined;
  if (labels && labels.length !== count) throw new DatasetError('DATASET_CORRUPT', `${path}: "${labelKey}" holds ${labels.length} labels for ${count} examples`);
  return rowSource('npz', path, count!, specs, async (s, n) => ({
    feeds: Object.fromEntries(specs.map((sp) => [sp.name, sliceRows(bySpec.get(sp.name)!, s, n)])),
    labels: labels ? Array.from({ length: n }, (_, i) => labels[s + i]) : undefined,
  }));
}

async function openJsonl(path: string, specs: InputSpec[]): Promise<OpenedSource> {
  const parseLine = (rec: Record<string, unknown>, line: number) => {
    const where = `${path}:${line}`;
    const extra = Object.keys(rec).filter((k) => !LABEL_KEYS.has(k) && !specs.some((s) => s.name === k));
    const single = specs.length === 1 && Object.keys(rec).filter((k) => !LABEL_KEYS.has(k)).length === 1;
    if (extra.length && !single) throw new DatasetError('DATASET_CORRUPT', `${where}: key(s) ${extra.join(', ')} match no model input (inputs: ${specs.map((s) => s.name).join(', ')})`);
    const feeds: Record<string, PlainTensor> = {};
    for (const s of specs) {
      const key = single ? Object.keys(rec).find((k) => !LABEL_KEYS.has(k))! : s.name;
      if (!(key in rec)) throw new DatasetError('DATASET_CORRUPT', `${where}: no value for model input "${s.name}"`);
      const t = withBatchDim(nestedToTensor(rec[key], s.dtype!, `${where} "${key}"`), s);
      checkArray(`${where} "${key}"`, s, t, true);
      feeds[s.name] = t;
    }
    const label = rec.label ?? rec.labels;
    if (label !== undefined && typeof label !== 'number') throw new DatasetError('DATASET_CORRUPT', `${where}: "label" must be a number`);
    return { feeds, label: label as number | undefined, rows: feeds[specs[0].name].dims[0] };
  };
  // One streaming pass at open time: counts the examples and fails on a mismatch before anything runs.
  let count = 0;
  let first = true;
  for await (const { line, record } of readJsonLines(path)) {
    const p = parseLine(record, line);
    count += p.rows;
    first = false;
  }
  if (first) throw new DatasetError('DATASET_CORRUPT', `${path}: no examples (the file is empty)`);
  return {
    format: 'jsonl', name: path, count,
    async *batches(o = {}) {
      const size = batchFor(specs, o.batchSize);
      const limit = o.limit ?? Infinity;
      let pending: Array<ReturnType<typeof parseLine>> = [];
      let rows = 0, seen = 0;
      const flush = (): DataBatch => {
        const feeds = Object.fromEntries(specs.map((s) => [s.name, concatRows(pending.map((p) => p.feeds[s.name]))]));
        const labels = pending.every((p) => p.label !== undefined && p.rows === 1) ? pending.map((p) => p.label!) : undefined;
        pending = []; rows = 0;
        return { feeds, labels };
      };
      for await (const { line, record } of readJsonLines(path, o.signal)) {
        if (seen >= limit) break;
        const p = parseLine(record, line);
        pending.push(p); rows += p.rows; seen += p.rows;
        if (rows >= size) yield flush();
      }
      if (pending.length && !specs.some((s) => typeof s.shape?.[0] === 'number' && s.shape[0] !== rows)) yield flush();
    },
  };
}

// ---- IDX image-classification folders ----

async function findIdxPair(dir: string): Promise<{ images: string; labels: string } | undefined> {
  const names = await readdir(dir);
  const images = names.filter((n) => /images?[-_.]idx3[-_.]ubyte(\.gz)?$/i.test(n));
  const labels = names.filter((n) => /labels?[-_.]idx1[-_.]ubyte(\.gz)?$/i.test(n));
  // Prefer the held-out pair (t10k) when a folder holds both training and test files.
  const pick = (list: string[]) => list.find((n) => /t10k|test/i.test(n)) ?? list[0];
  if (!images.length || !labels.length) return undefined;
  return { images: join(dir, pick(images)), labels: join(dir, pick(labels)) };
}

async function readMeta(dir: string): Promise<{ scale?: number; input?: string }> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as { scale?: unknown; input?: unknown };
    return { scale: typeof m.scale === 'number' ? m.scale : undefined, input: typeof m.input === 'string' ? m.input : undefined };
  } catch {
    return {};
  }
}

async function openIdx(dir: string, pair: { images: string; labels: string }, specs: InputSpec[], opts: OpenOptions): Promise<OpenedSource> {
  const meta = await readMeta(dir);
  const spec = specs.find((s) => s.name === meta.input) ?? specs[0];
  if (specs.length !== 1) throw new DatasetError('DATASET_CORRUPT', `${dir}: an IDX image set feeds one input but the model takes ${specs.length} (${specs.map((s) => s.name).join(', ')})`);
  if (spec.dtype !== 'float32') throw dtypeError(`${pair.images}`, spec, 'images (fed as float32)');
  const set = await loadIdxClassification(pair.images, pair.labels, { scale: opts.scale ?? meta.scale });
  const [, rows, cols] = [set.count, ...set.inputShape.slice(1)];
  // Fit [rows, cols] into the model's example shape: [1, r, c], [r, c] or [r*c].
  const rank = spec.shape?.length ?? 4;
  const example = rank === 4 ? [1, rows, cols] : rank === 3 ? [rows, cols] : rank === 2 ? [rows * cols] : undefined;
  if (!example) throw new DatasetError('DATASET_CORRUPT', `${pair.images}: ${rows}x${cols} images cannot feed model input "${spec.name}" ${formatShape(spec.shape)}`);
  checkArray(pair.images, spec, { dtype: 'float32', dims: [set.count, ...example] }, true);
  const per = rows * cols;
  return rowSource('idx', dir, set.count, specs, async (s, n) => ({
    feeds: { [spec.name]: { dtype: 'float32', dims: [n, ...example], data: set.images.subarray(s * per, (s + n) * per) } },
    labels: set.labels.subarray(s, s + n),
  }));
}
