// What `eval` and `bench --data` read: any dataset format edgetune knows, opened for one model, plus an optional
// labels file that supplies (or replaces) the labels.
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { DatasetError, isENOENT } from '../../errors.js';
import type { OnnxModel } from '../../onnx/model.js';
import { readIdx } from '../datasets/idx.js';
import { openImageFolder, type ImageFolderOptions } from '../datasets/images.js';
import { parseNpy } from '../datasets/npy.js';
import { openDataSource } from '../datasets/open.js';
import type { DataBatch, DataSource } from '../datasets/source.js';
import { inputSpecs } from '../inputs.js';
import { toNumbers } from '../plain-tensor.js';

export interface EvalData extends DataSource {
  format: string;
  /** class names by label, when the dataset has them (image folders) */
  classes?: string[];
  notes: string[];
}

const IMAGE = /\.(png|jpe?g)$/i;

/** An image folder: images at its top level, or in its sub-folders (one per class). */
export async function isImageFolder(dir: string): Promise<boolean> {
  const entries = await readdir(dir, { withFileTypes: true });
  if (entries.some((e) => e.isFile() && IMAGE.test(e.name))) return true;
  for (const e of entries.filter((x) => x.isDirectory() && !x.name.startsWith('.'))) {
    if ((await readdir(join(dir, e.name))).some((n) => IMAGE.test(n))) return true;
  }
  return false;
}

/** Opens `path` for `model`: image folders here, every other format through datasets/open.ts. */
export async function openEvalData(path: string, model: OnnxModel, image: ImageFolderOptions = {}): Promise<EvalData> {
  const abs = resolve(path);
  let isDir = false;
  try {
    isDir = (await stat(abs)).isDirectory();
  } catch (e) {
    if (isENOENT(e)) throw new DatasetError('DATASET_NOT_FOUND', `${path}: no such file or folder`);
    throw e;
  }
  if (isDir && (await isImageFolder(abs))) {
    const specs = inputSpecs(model);
    if (specs.length !== 1) throw new DatasetError('DATASET_CORRUPT', `${path}: an image folder feeds one input but the model takes ${specs.length} (${specs.map((s) => s.name).join(', ')})`);
    const src = await openImageFolder(abs, specs[0], image);
    return { ...src, format: 'images', notes: src.notes };
  }
  const src = await openDataSource(abs, model);
  return { ...src, name: src.name, format: src.format, notes: [], batches: src.batches.bind(src) };
}

/**
 * Reads one integer label per example: a .npy array, an IDX labels file (gzipped or not), or text with one label
 * per line (blank lines and #-comments skipped). Text labels that are not integers are looked up in `classes`.
 */
export async function readLabels(path: string, classes?: readonly string[]): Promise<Int32Array> {
  const abs = resolve(path);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(abs);
  } catch (e) {
    if (isENOENT(e)) throw new DatasetError('DATASET_NOT_FOUND', `${path}: no such labels file`);
    throw e;
  }
  const ext = extname(abs).toLowerCase();
  let values: ArrayLike<number>;
  if (ext === '.npy') {
    const t = parseNpy(bytes, abs);
    if (t.dims.length > 1 && t.dims.slice(1).some((d) => d !== 1)) throw new DatasetError('DATASET_CORRUPT', `${path}: labels must be one value per example, found shape [${t.dims.join(', ')}]`);
    values = toNumbers(t);
  } else if (/idx1|ubyte/i.test(abs)) {
    const a = await readIdx(abs);
    if (a.dims.length !== 1) throw new DatasetError('DATASET_CORRUPT', `${path}: an IDX labels file has 1 dimension, found [${a.dims.join(', ')}]`);
    values = a.data;
  } else {
    const lines = new TextDecoder().decode(bytes).split(/\r?\n/);
    const out: number[] = [];
    lines.forEach((raw, i) => {
      const l = raw.replace(/#.*/, '').trim();
      if (l === '') return;
      if (/^-?\d+$/.test(l)) { out.push(Number(l)); return; }
      const k = classes?.indexOf(l) ?? -1;
      if (k < 0) throw new DatasetError('DATASET_CORRUPT', `${path}:${i + 1}: label "${l}" is not an integer${classes ? ` nor one of the classes (${classes.filter(Boolean).join(', ')})` : ''}`);
      out.push(k);
    });
    values = out;
  }
  const labels = Int32Array.from(values);
  labels.forEach((v, i) => {
    if (!Number.isFinite(values[i]) || v !== values[i] || v < 0) throw new DatasetError('DATASET_CORRUPT', `${path}: label ${i} is ${values[i]}; labels must be non-negative integers`);
  });
  return labels;
}

/** Replaces each batch's labels by the matching slice of `labels`; more examples than labels is an error. */
export function withLabels(src: EvalData, labels: Int32Array, labelsPath: string): EvalData {
  if (src.count !== undefined && src.count !== labels.length) {
    src.notes.push(`${labelsPath} holds ${labels.length} labels for ${src.count} examples; only the first ${Math.min(labels.length, src.count)} are scored`);
  }
  return {
    ...src,
    count: src.count === undefined ? labels.length : Math.min(src.count, labels.length),
    async *batches(o = {}) {
      let at = 0;
      const limit = Math.min(o.limit ?? Infinity, labels.length);
      for await (const b of src.batches({ ...o, limit })) {
        const n = Object.values(b.feeds)[0]?.dims[0] ?? 1;
        if (at + n > labels.length) throw new DatasetError('DATASET_CORRUPT', `${labelsPath}: ${labels.length} labels, but the dataset has more examples`);
        yield { feeds: b.feeds, labels: labels.subarray(at, at + n) } satisfies DataBatch;
        at += n;
      }
    },
  };
}
