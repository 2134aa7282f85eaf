// Image-folder datasets: PNG/JPEG files, labels from sub-folder names (the ImageFolder convention), decoded,
// resized and normalised batch by batch so a large folder never sits in memory.
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { DatasetError, UsageError, isENOENT, throwIfAborted } from '../../errors.js';
import type { InputSpec } from '../inputs.js';
import type { PlainTensor } from '../plain-tensor.js';
import { decodeImage, resizeBilinear, writePixels, type PixelLayout } from './image-ops.js';
import type { DataBatch, DataSource } from './source.js';

export interface ImageFolderOptions {
  /** [height, width] after resizing; default: the model input's fixed dims */
  size?: [number, number];
  /** default: from the model input (channels in dim 1 → NCHW, in dim 3 → NHWC), else NCHW */
  layout?: 'NCHW' | 'NHWC';
  /** default: from the model input, else 3 */
  channels?: 1 | 3;
  /** pixel scale before mean/std (default 1/255, so pixels are 0..1) */
  scale?: number;
  /** per-channel (or one) mean and std: (pixel · scale − mean) / std; default 0 and 1 */
  mean?: number[];
  std?: number[];
}

export interface ImageFile {
  path: string;
  label?: number;
}

export interface ImageFolderSource extends DataSource {
  /** class names by label, when the folder has one sub-folder per class */
  classes?: string[];
  files: ImageFile[];
  /** the input this source feeds and how pixels become values */
  input: { name: string; dims: number[]; dtype: 'float32' | 'uint8' };
  notes: string[];
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg']);
const isImage = (name: string) => IMAGE_EXT.has(extname(name).toLowerCase());
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Lists the folder: one sub-folder per class (labels from the names), or images directly in it (no labels).
 * Class folders named by integers ("0", "1", … "10") take that integer as label, so they line up with a model's
 * output indices even when a class folder is missing; other names are labelled in sorted order.
 */
export async function listImageFolder(dir: string): Promise<{ files: ImageFile[]; classes?: string[] }> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (isENOENT(e)) throw new DatasetError('DATASET_NOT_FOUND', `${dir}: no such folder`);
    throw new DatasetError('DATASET_NOT_FOUND', `${dir}: cannot read the folder (${(e as Error).message})`, { cause: e });
  }
  const subdirs = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort(byName);
  const classDirs: string[] = [];
  const files: ImageFile[] = [];
  const numeric = subdirs.length > 0 && subdirs.every((n) => /^\d+$/.test(n));
  if (numeric) subdirs.sort((a, b) => Number(a) - Number(b));
  for (const sub of subdirs) {
    const names = (await readdir(join(dir, sub))).filter(isImage).sort(byName);
    if (names.length === 0) continue;
    const label = numeric ? Number(sub) : classDirs.length;
    classDirs.push(sub);
    for (const n of names) files.push({ path: join(dir, sub, n), label });
  }
  if (classDirs.length) {
    // With integer names the label is the name itself, so `classes` is indexed by label with gaps left empty.
    const classes = numeric ? Array.from({ length: Math.max(...classDirs.map(Number)) + 1 }, (_, i) => (classDirs.includes(String(i)) ? String(i) : '')) : classDirs;
    return { files, classes };
  }
  const loose = entries.filter((e) => e.isFile() && isImage(e.name)).map((e) => e.name).sort(byName);
  if (loose.length === 0) throw new DatasetError('DATASET_NOT_FOUND', `${dir}: no .png/.jpg/.jpeg images in it or in its sub-folders`);
  return { files: loose.map((n) => ({ path: join(dir, n) })) };
}

/** Settles layout, channels and size from the options and the model's input spec; throws UsageError when it cannot. */
export function pixelPlan(spec: InputSpec | undefined, o: ImageFolderOptions): { layout: PixelLayout; size: [number, number]; notes: string[] } {
  const notes: string[] = [];
  const shape = spec?.shape;
  const fixed = (i: number) => (shape && typeof shape[i] === 'number' ? (shape[i] as number) : undefined);
  let layout = o.layout;
  let channels = o.channels;
  if (shape && shape.length === 4) {
    const c1 = fixed(1), c3 = fixed(3);
    layout ??= c1 === 1 || c1 === 3 ? 'NCHW' : c3 === 1 || c3 === 3 ? 'NHWC' : undefined;
    const c = layout === 'NHWC' ? c3 : c1;
    if (c === 1 || c === 3) channels ??= c;
  } else if (spec && shape) {
    throw new UsageError(`input "${spec.name}" has rank ${shape.length}; an image folder feeds rank-4 inputs (N,C,H,W or N,H,W,C)`);
  }
  if (!layout) { layout = 'NCHW'; notes.push('image layout NCHW (default; give --layout NHWC if the model wants channels last)'); }
  channels ??= 3;
  const [hi, wi] = layout === 'NCHW' ? [2, 3] : [1, 2];
  const size: [number, number] | undefined = o.size ?? (fixed(hi) && fixed(wi) ? [fixed(hi)!, fixed(wi)!] : undefined);
  if (!size) throw new UsageError(`the model's input${spec ? ` "${spec.name}"` : ''} has no fixed height/width; give the image size (--image-size HxW)`);
  if (!size.every((v) => Number.isInteger(v) && v > 0)) throw new UsageError(`image size must be two positive integers, got ${size.join('x')}`);
  const mean = o.mean ?? [0];
  const std = o.std ?? [1];
  for (const [what, v] of [['mean', mean], ['std', std]] as const) {
    if (v.length !== 1 && v.length !== channels) throw new UsageError(`--${what} gives ${v.length} values; give 1 or ${channels} (one per channel)`);
    if (!v.every(Number.isFinite)) throw new UsageError(`--${what} values must be numbers, got ${v.join(',')}`);
  }
  if (std.some((s) => s === 0)) throw new UsageError('--std values must not be 0');
  return { layout: { layout, channels, scale: o.scale ?? 1 / 255, mean, std }, size, notes };
}

/**
 * Opens an image folder as a DataSource feeding `spec` (the model input; its name, rank and fixed dims decide the
 * defaults). Listing happens now; decoding happens per batch.
 */
export async function openImageFolder(dir: string, spec: InputSpec | undefined, opts: ImageFolderOptions = {}): Promise<ImageFolderSource> {
  const { files, classes } = await listImageFolder(dir);
  const { layout, size, notes } = pixelPlan(spec, opts);
  const [h, w] = size;
  const dtype = spec?.dtype === 'uint8' ? 'uint8' : 'float32';
  if (spec?.dtype && spec.dtype !== 'uint8' && spec.dtype !== 'float32') {
    throw new UsageError(`input "${spec.name}" takes ${spec.dtype}; image folders give float32 (or raw uint8) pixels`);
  }
  if (dtype === 'uint8') notes.push(`input "${spec!.name}" takes uint8: raw 0..255 pixels, no mean/std`);
  const name = spec?.name ?? 'input';
  const one = layout.layout === 'NCHW' ? [layout.channels, h, w] : [h, w, layout.channels];
  notes.push(`${files.length} images from ${dir}${classes ? ` in ${classes.filter(Boolean).length} classes (labels from folder names)` : ' (no class folders, no labels)'}, resized to ${h}x${w} ${layout.layout}`);

  async function* batches(o: { batchSize?: number; limit?: number; signal?: AbortSignal } = {}): AsyncGenerator<DataBatch> {
    const size = o.batchSize ?? 32;
    if (!(Number.isInteger(size) && size > 0)) throw new UsageError(`batch size must be a positive integer, got ${size}`);
    const total = Math.min(files.length, o.limit ?? files.length);
    for (let start = 0; start < total; start += size) {
      const n = Math.min(size, total - start);
      const per = one.reduce((a, b) => a * b, 1);
      const data = dtype === 'uint8' ? new Uint8Array(n * per) : new Float32Array(n * per);
      const labels: number[] = [];
      for (let i = 0; i < n; i++) {
        throwIfAborted(o.signal, `reading ${dir}`);
        const f = files[start + i];
        let img;
        try {
          img = decodeImage(await readFile(f.path));
        } catch (e) {
          throw new DatasetError('DATASET_CORRUPT', `${f.path}: cannot decode the image (${(e as Error).message}); remove or replace the file`, { cause: e });
        }
        writePixels(resizeBilinear(img, w, h), layout, data, i);
        if (f.label !== undefined) labels.push(f.label);
        // Decoding is synchronous JS; yield between images so timers and sockets are served.
        await new Promise((r) => setImmediate(r));
      }
      const feeds: Record<string, PlainTensor> = { [name]: { dtype, dims: [n, ...one], data } as PlainTensor };
      yield classes ? { feeds, labels } : { feeds };
    }
  }
  return { name: dir, count: files.length, ...(classes ? { classes } : {}), files, input: { name, dims: one, dtype }, notes, batches };
}
