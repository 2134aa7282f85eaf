// npm run bench:vs-ort — edgetune's quantizer against ONNX Runtime's own Python quantizer (the tool users compare us
// with), same models, same calibration examples, same ONNX Runtime version, measured in one run:
//   size, latency vs fp32 for each (interleaved A/B, paired medians, 1 thread) and ours vs theirs directly,
//   fidelity to fp32 on held-out examples, top-1 accuracy where the model has a labelled set, quantizer wall time
//   (calibration included on both sides).
// The reference side is scripts/ort-reference.py; it needs python3 with `onnx onnxruntime onnx_ir` (developer side
// only: `pip install onnx onnxruntime onnx_ir`). Without them this script says so and exits 1.
// Prints a table, writes bench-results/bench-vs-ort.json. Flags: --quick, --models=name,name (substring match).
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadModel, saveModel, type OnnxModel } from '../src/onnx/model.js';
import { applyRecipe } from '../src/compress/pipeline.js';
import { verifyAgainst } from '../src/compress/verify.js';
import { compareModels } from '../src/measure/bench.js';
import { generateInputs, inputSpecs } from '../src/measure/inputs.js';
import { summarizeFidelity, type OutputFidelity } from '../src/measure/fidelity.js';
import { evaluateClassifier } from '../src/measure/accuracy.js';
import type { DataSource } from '../src/measure/datasets/source.js';
import { encodeNpy } from '../src/measure/datasets/npy.js';
import type { PlainTensor } from '../src/measure/plain-tensor.js';
import { formatTable } from '../src/cli/output.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { packageRoot } from '../src/util/paths.js';
import type { Recipe } from '../src/types.js';
import { ENTRIES, defaultPhotoDir, entryFile, missing, picked, quantBenchPlan, type Entry } from './bench-quant-data.js';

const run = promisify(execFile);
const root = packageRoot();
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.find((a) => a.startsWith('--models='))?.split('=')[1]?.split(',');
const python = process.env.PYTHON ?? 'python3';
const refScript = join(root, 'scripts/ort-reference.py');

type Mode = 'static-minmax' | 'static-percentile' | 'static-entropy' | 'dynamic' | 'int4';
const RECIPES: Record<Mode, (samples: number) => Recipe> = {
  'static-minmax': (samples) => ({ v: 1, quantize: { mode: 'static', calibration: { method: 'minmax', samples, batch: 8 } } }),
  'static-percentile': (samples) => ({ v: 1, quantize: { mode: 'static', calibration: { method: 'percentile', samples, batch: 8 } } }),
  'static-entropy': (samples) => ({ v: 1, quantize: { mode: 'static', calibration: { method: 'entropy', samples, batch: 8 } } }),
  dynamic: () => ({ v: 1, quantize: { mode: 'dynamic', perChannel: true } }),
  int4: () => ({ v: 1, quantize: { mode: 'weight-only', bits: 4, blockSize: 32, accuracyLevel: 4 } }),
};
const REF_ARGS: Record<Mode, string[]> = {
  'static-minmax': ['static', '--method', 'minmax'], 'static-percentile': ['static', '--method', 'percentile'],
  'static-entropy': ['static', '--method', 'entropy'], dynamic: ['dynamic'], int4: ['int4'],
};
// Which modes each model gets: the ones a user of that kind of model would try.
const PLAN: Array<{ entry: string; modes: Mode[] }> = [
  { entry: 'example fashion-mnist CNN', modes: ['static-minmax', 'static-percentile', 'static-entropy', 'dynamic', 'int4'] },
  { entry: 'mnist-12', modes: ['static-minmax', 'static-percentile', 'static-entropy'] },
  { entry: 'ultraface RFB-320', modes: ['static-minmax', 'static-percentile'] },
  { entry: 'PP-OCR cls', modes: ['static-minmax'] },
  { entry: 'synthetic FFN stack (MatMul-heavy)', modes: ['dynamic', 'int4', 'static-minmax'] },
];
const plan = quantBenchPlan(quick);

interface Side { bytes?: number; latVsFp32?: number; seconds?: number; cosine?: number; sqnrDb?: number; top1Agreement?: number; acc?: number; quantized?: number; error?: string }
interface Row { model: string; mode: Mode; fp32P50Ms?: number; accFp32?: number; ours: Side; ort: Side; oursVsOrt?: number; oursVsOrtCi?: [number, number]; notes: string[] }

async function main(): Promise<void> {
  await checkPython();
  const rows: Row[] = [];
  const dataNotes: string[] = [];
  const work = await mkdtemp(join(tmpdir(), 'edgetune-vs-ort-'));
  const t0 = performance.now();
  try {
    for (const p of PLAN) {
      const e = ENTRIES.find((x) => x.name === p.entry);
      if (!e || !picked(e, only)) continue;
      const absent = missing(e);
      if (absent) { dataNotes.push(`${e.name}: skipped, ${absent}`); continue; }
      await benchEntry(e, p.modes, work, rows, dataNotes);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await report(rows, dataNotes, (performance.now() - t0) / 1000);
}

async function checkPython(): Promise<void> {
  try {
    await run(python, ['-c', 'import onnx, onnxruntime.quantization, onnxruntime.quantization.matmul_nbits_quantizer']);
  } catch (e) {
    console.error(`bench:vs-ort needs ONNX Runtime's Python quantizer on this developer machine (never on a device):\n  pip install onnx onnxruntime onnx_ir\n(${python} said: ${String((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split('\n').pop()})`);
    process.exit(1);
  }
}

async function benchEntry(e: Entry, modes: Mode[], work: string, rows: Row[], dataNotes: string[]): Promise<void> {
  const path = await entryFile(e, work);
  const original = await loadModel(path);
  const data = await e.data(original, defaultPhotoDir());
  dataNotes.push(`${e.name}: ${data.what}`);
  const calibDir = join(work, `calib-${rows.length}`);
  const dumped = await dumpNpy(data.calib, e.calibSamples, calibDir);
  const { tensors } = generateInputs(inputSpecs(original), { shapes: e.shapes, seed: 7 });
  const accFp32 = data.eval ? (await evaluateClassifier(path, data.eval, { batch: data.evalBatch ?? 250 })).accuracy : undefined;
  const measureSide = async (row: Row, side: Side, file: string): Promise<void> => {
    side.quantized = countQuantized(await loadModel(file));
    try {
      const v = await verifyAgainst(path, original, file, { data: data.check, samples: e.checkSamples });
      const q = summarizeFidelity(v.fidelity as Record<string, OutputFidelity>);
      Object.assign(side, { cosine: q.cosine, sqnrDb: q.sqnrDb, top1Agreement: q.top1Agreement });
    } catch (err) {
      // A quantizer that writes a model ONNX Runtime refuses is a result, not a crash of the bench.
      side.error = `wrote a model ONNX Runtime cannot run: ${(err as Error).message.replace(/^.*?failed:/, '').slice(0, 200)}`;
      return;
    }
    const c = await compareModels(path, file, { ...plan, inputs: tensors, session: { intraOpThreads: 1 } });
    side.latVsFp32 = c.ratio.estimate;
    row.fp32P50Ms ??= c.a.latencyMs.p50;
    if (data.eval) side.acc = (await evaluateClassifier(file, data.eval, { batch: data.evalBatch ?? 250 })).accuracy;
  };
  for (const mode of modes) {
    log(`${e.name} ${mode}`);
    const row: Row = { model: e.name, mode, accFp32, ours: {}, ort: {}, notes: [] };
    rows.push(row);
    const oursPath = join(work, `ours.${mode}.onnx`);
    const ortPath = join(work, `ort.${mode}.onnx`);
    // ours: the whole recipe, calibration runs included, as the reference's time includes them too
    try {
      const t = performance.now();
      const res = await applyRecipe(original, RECIPES[mode](dumped), { data: data.calib, modelPath: path, shapes: e.shapes, workDir: work });
      row.ours.bytes = (await saveModel(res.model, oursPath)).bytes;
      row.ours.seconds = (performance.now() - t) / 1000;
    } catch (err) {
      row.ours.error = (err as Error).message.slice(0, 160);
    }
    await quantizeWithOrt(mode, path, ortPath, calibDir, dumped, row, false);
    if (!row.ours.error) await measureSide(row, row.ours, oursPath);
    if (!row.ort.error) await measureSide(row, row.ort, ortPath);
    if (row.ort.error && mode !== 'int4') {
      // What a user does next when per-channel fails: the row then compares against ORT's per-tensor model.
      row.notes.push(`ORT per-channel: ${row.ort.error}; this row is ORT per-tensor`);
      row.ort = {};
      await quantizeWithOrt(mode, path, ortPath, calibDir, dumped, row, true);
      if (!row.ort.error) await measureSide(row, row.ort, ortPath);
    }
    if (!row.ours.error && !row.ort.error) {
      const d = await compareModels(ortPath, oursPath, { ...plan, inputs: tensors, session: { intraOpThreads: 1 } });
      row.oursVsOrt = d.ratio.estimate;
      row.oursVsOrtCi = d.ratio.ci95;
    }
  }
}

/** Runs scripts/ort-reference.py; a failure lands in row.ort.error, its notes in row.notes. */
async function quantizeWithOrt(mode: Mode, model: string, out: string, calibDir: string, samples: number, row: Row, perTensor: boolean): Promise<void> {
  const [kind, ...rest] = REF_ARGS[mode];
  try {
    const { stdout } = await run(python, [refScript, kind, model, out, ...rest, '--calib', calibDir, '--samples', String(samples), ...(perTensor ? ['--per-tensor'] : [])], { maxBuffer: 1 << 24 });
    const res = JSON.parse(stdout.trim().split('\n').pop()!) as { seconds: number; notes: string[] };
    row.ort.seconds = res.seconds;
    row.notes.push(...res.notes.map((n) => `ORT: ${n}`));
    row.ort.bytes = (await stat(out)).size;
  } catch (err) {
    row.ort.error = `quantizer failed: ${String((err as { stderr?: string }).stderr || (err as Error).message).trim().split('\n').pop()!.slice(0, 160)}`;
  }
}

/** The first `limit` examples of a data source as one .npy per input (what the Python reader feeds). */
async function dumpNpy(src: DataSource, limit: number, dir: string): Promise<number> {
  const parts = new Map<string, PlainTensor[]>();
  let n = 0;
  for await (const b of src.batches({ batchSize: 16, limit })) {
    for (const [name, t] of Object.entries(b.feeds)) { if (!parts.has(name)) parts.set(name, []); parts.get(name)!.push(t); }
    n += Object.values(b.feeds)[0]?.dims[0] ?? 1;
  }
  await mkdir(dir, { recursive: true });
  for (const [name, ts] of parts) {
    if (ts.some((t) => t.dtype !== 'float32')) throw new Error(`input "${name}" is ${ts[0].dtype}: only float32 inputs are dumped for the reference`);
    const rows = ts.reduce((s, t) => s + t.dims[0], 0);
    const data = new Float32Array(ts.reduce((s, t) => s + t.data.length, 0));
    let at = 0;
    for (const t of ts) { data.set(t.data as Float32Array, at); at += t.data.length; }
    await writeFile(join(dir, `${name}.npy`), encodeNpy({ dtype: 'float32', dims: [rows, ...ts[0].dims.slice(1)], data }));
  }
  return n;
}

/** Layers whose weights are stored quantized: DequantizeLinear of an initializer, or a MatMulNBits / integer op. */
function countQuantized(m: OnnxModel): number {
  const g = m.proto.graph!;
  const inits = new Set(g.initializer.map((i) => i.name));
  return g.node.filter((n) => (n.opType === 'DequantizeLinear' && inits.has(n.input[0])) || ['MatMulNBits', 'MatMulInteger', 'DynamicQuantizeMatMul', 'ConvInteger'].includes(n.opType)).length;
}

function log(s: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
}

async function report(rows: Row[], dataNotes: string[], wallS: number): Promise<void> {
  const f = (x: number | undefined, d = 3) => (x === undefined ? '-' : Number.isFinite(x) ? x.toFixed(d) : String(x));
  const sz = (s: Side) => (s.bytes === undefined ? '-' : `${(s.bytes / 1024).toFixed(0)} KiB`);
  const speed = (x: number | undefined) => (x === undefined ? '-' : `${(1 / x).toFixed(2)}×`);
  const acc = (s: Side) => (s.acc === undefined ? '-' : (100 * s.acc).toFixed(2));
  console.log('\nedgetune vs ONNX Runtime\'s Python quantizer (same ORT, same calibration examples); speed-up = fp32 time / model time, paired medians of interleaved runs at 1 thread');
  console.log(formatTable(
    ['model', 'mode', 'fp32 p50 ms', 'speed-up ours', 'speed-up ORT', 'ORT time / ours', 'size ours', 'size ORT', 'layers ours', 'layers ORT', 'cos ours', 'cos ORT', 'SQNR ours', 'SQNR ORT', 'acc fp32', 'acc ours', 'acc ORT', 's ours', 's ORT'],
    rows.map((r) => [r.model, r.mode, f(r.fp32P50Ms, 4), speed(r.ours.latVsFp32), speed(r.ort.latVsFp32), r.oursVsOrt === undefined ? '-' : (1 / r.oursVsOrt).toFixed(2),
      sz(r.ours), sz(r.ort), r.ours.quantized ?? '-', r.ort.quantized ?? '-', f(r.ours.cosine, 5), f(r.ort.cosine, 5), f(r.ours.sqnrDb, 1), f(r.ort.sqnrDb, 1),
      r.accFp32 === undefined ? '-' : (100 * r.accFp32).toFixed(2), acc(r.ours), acc(r.ort), f(r.ours.seconds, 2), f(r.ort.seconds, 2)]),
  ));
  const problems = rows.flatMap((r) => [
    ...(r.ours.error ? [`${r.model} ${r.mode}: edgetune failed: ${r.ours.error}`] : []),
    ...(r.ort.error ? [`${r.model} ${r.mode}: ORT: ${r.ort.error}`] : []),
    ...r.notes.map((n) => `${r.model} ${r.mode}: ${n}`),
  ]);
  if (problems.length) { console.log('\nnotes:'); for (const p of problems) console.log(`  ${p}`); }
  console.log('\ndata:');
  for (const n of dataNotes) console.log(`  ${n}`);
  console.log(`\n"ORT time / ours": the two quantized models timed against each other, interleaved (above 1: edgetune's model is faster).\nwall time ${(wallS / 60).toFixed(1)} min${quick ? ' (--quick)' : ''}`);
  const outDir = join(root, 'bench-results');
  await mkdir(outDir, { recursive: true });
  await writeJsonAtomic(join(outDir, 'bench-vs-ort.json'), { v: 1, date: new Date().toISOString(), quick, plan, wallS, rows, data: dataNotes });
  console.log(`wrote ${join(outDir, 'bench-vs-ort.json')}`);
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
