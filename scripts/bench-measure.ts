// npm run bench:measure — the measurement harness's own quality, on this machine:
//   repeatability: the medians of two separate benchModel runs of the same model, 5 such pairs (target: the typical
//                  pair ≤ 3 % apart above 1 ms; the worst pair is shown too — a shared VM drifts)
//   overhead:      benchModel's median against a bare in-process session.run loop on the same inputs, 6 paired rounds
//                  (target: median round ≤ 2 %)
//   A/B:           compareModels on two built MLPs whose work differs by exactly 1.5× (the CI must exclude 1)
//   event loop:    the parent's worst event-loop delay while all of that ran (it must stay free)
// Prints a table and writes bench-results/bench-measure.json. `--quick` shortens every run.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { formatTable } from '../src/cli/output.js';
import { benchModel, compareModels, type BenchOptions } from '../src/measure/bench.js';
import { generateInputs, inputSpecs } from '../src/measure/inputs.js';
import type { PlainTensor } from '../src/measure/plain-tensor.js';
import { median } from '../src/measure/stats.js';
import { GraphBuilder, buildModel } from '../src/onnx/builder.js';
import { DT } from '../src/onnx/dtype.js';
import { loadModel, saveModel } from '../src/onnx/model.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { packageRoot } from '../src/util/paths.js';

const quick = process.argv.includes('--quick');
const root = packageRoot();
const plan: BenchOptions = quick ? { maxMs: 3000 } : {};
const session = { intraOpThreads: 1 };
const PAIRS = quick ? 2 : 5;
const ROUNDS = quick ? 2 : 6;

/** `layers` × (MatMul [width,width] + Relu) on x[batch,width]: work grows exactly with the layer count. */
async function mlp(dir: string, layers: number, width = 512, batch = 128): Promise<string> {
  const g = new GraphBuilder(`mlp${layers}`);
  g.input('x', DT.FLOAT, [batch, width]);
  let h = 'x';
  for (let i = 0; i < layers; i++) {
    const w = Float32Array.from({ length: width * width }, (_, k) => (((k * 2654435761 + i) >>> 0) % 1000) / 1000 / width - 0.5 / width);
    g.initializer(`W${i}`, DT.FLOAT, [width, width], w);
    h = g.op('Relu', [g.op('MatMul', [h, `W${i}`])]);
  }
  g.node('Identity', [h], { outputs: ['y'] });
  g.output('y', DT.FLOAT, [batch, width]);
  const path = join(dir, `mlp${layers}.onnx`);
  await saveModel(buildModel(g.graph), path);
  return path;
}

/** The plainest loop a user would write: session.run timed with hrtime, in this process. */
async function bareLoop(path: string, inputs: Record<string, PlainTensor>, warmup: number, runs: number): Promise<number> {
  const s = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 });
  try {
    const feeds = Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, new ort.Tensor(t.dtype, t.data, t.dims)]));
    for (let i = 0; i < warmup; i++) await s.run(feeds);
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      await s.run(feeds);
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return median(samples);
  } finally {
    await s.release();
  }
}

/** The parent's event-loop delay while `fn` runs, in a histogram of its own (re-enabling one would count the gap). */
const delays: Array<{ maxMs: number; p99Ms: number }> = [];
async function watched<T>(fn: () => Promise<T>): Promise<T> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  try {
    return await fn();
  } finally {
    h.disable();
    delays.push({ maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6 });
  }
}

interface Row { model: string; check: string; value: number; target: string; pass: boolean; detail: string }

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'edgetune-bench-measure-'));
  const rows: Row[] = [];
  try {
    const mlp4 = await mlp(work, 4);
    const mlp6 = await mlp(work, 6);
    const fashion = join(root, 'examples/fashion-mnist/model.onnx');
    const models = [
      { name: 'mlp-4 (built)', path: mlp4, shapes: {} as Record<string, number[]> },
      { name: 'fashion-mnist CNN, batch 32', path: fashion, shapes: { input: [32, 1, 28, 28] } },
    ];
    for (const m of models) {
      const inputs = generateInputs(inputSpecs(await loadModel(m.path)), { shapes: m.shapes, seed: 7 }).tensors;
      const opts: BenchOptions = { ...plan, session, inputs };
      // One pair of runs is one sample of a VM's drift; several pairs show the typical spread and the worst one.
      console.error(`… ${m.name}: ${PAIRS} pairs of separate runs`);
      const spreads: number[] = [];
      const pairs: Array<[number, number]> = [];
      let first!: Awaited<ReturnType<typeof benchModel>>;
      for (let p = 0; p < PAIRS; p++) {
        const a = await watched(() => benchModel(m.path, opts));
        const b = await watched(() => benchModel(m.path, opts));
        if (p === 0) first = a;
        pairs.push([a.latencyMs.p50, b.latencyMs.p50]);
        spreads.push(Math.abs(a.latencyMs.p50 - b.latencyMs.p50) / ((a.latencyMs.p50 + b.latencyMs.p50) / 2));
      }
      const spread = median(spreads);
      const above1ms = Math.min(...pairs.flat()) > 1;
      rows.push({
        model: m.name, check: 'median repeatability', value: spread * 100, target: above1ms ? '≤ 3 % (median of pairs)' : '(model under 1 ms: informative)',
        pass: !above1ms || spread <= 0.03,
        detail: `spread per pair ${spreads.map((x) => (x * 100).toFixed(2)).join(' / ')} %; worst ${(Math.max(...spreads) * 100).toFixed(2)} %; first pair p50 ${pairs[0].map((x) => x.toFixed(3)).join(' / ')} ms; n ${first.latencyMs.n}; stop ${first.timed.stopReason}; throttled ${first.throttled}`,
      });

      console.error(`… ${m.name}: harness vs bare session.run loop (interleaved)`);
      const runs = Math.max(50, Math.min(2000, first.latencyMs.n));
      const bare: number[] = [];
      const harness: number[] = [];
      const ratios: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // Not watched: the bare loop runs ORT on this thread on purpose. Each round pairs a bare loop with a harness
        // run right after it, so drift of the machine between rounds cancels in the round's ratio.
        bare.push(await bareLoop(m.path, inputs, 10, runs));
        harness.push((await watched(() => benchModel(m.path, { ...opts, minRuns: runs, maxRuns: runs, minMs: 0, maxMs: Infinity, ciRelWidth: Infinity }))).latencyMs.p50);
        ratios.push(harness[round] / bare[round]);
      }
      const overhead = median(ratios) - 1;
      rows.push({
        model: m.name, check: 'harness overhead', value: overhead * 100, target: '≤ 2 % (median of paired rounds)', pass: overhead <= 0.02,
        detail: `per round ${ratios.map((r) => ((r - 1) * 100).toFixed(2)).join(' / ')} %; bare p50 median ${median(bare).toFixed(3)} ms, harness ${median(harness).toFixed(3)} ms; ${runs} runs each`,
      });
    }

    console.error('… A/B: mlp-6 against mlp-4 (1.5× the work), interleaved');
    const ab = await watched(() => compareModels(mlp4, mlp6, { ...plan, session }));
    const { estimate, ci95, pairs } = ab.ratio;
    rows.push({
      model: 'mlp-6 / mlp-4', check: 'A/B detects 1.5×', value: estimate, target: 'CI excludes 1, estimate 1.3-1.7',
      pass: ci95[0] > 1 && estimate >= 1.3 && estimate <= 1.7,
      detail: `95% CI ${ci95[0].toFixed(3)}-${ci95[1].toFixed(3)} over ${pairs} pairs; ratio of overall medians ${ab.ratioP50.toFixed(3)}; stop ${ab.stopReason}`,
    });
    const maxDelayMs = Math.max(...delays.map((d) => d.maxMs));
    rows.push({
      model: '(parent process)', check: 'worst event-loop delay', value: maxDelayMs, target: '< 500 ms (keep-alives are seconds)', pass: maxDelayMs < 500,
      detail: `worst p99 ${Math.max(...delays.map((d) => d.p99Ms)).toFixed(1)} ms over ${delays.length} harness runs (bare loops not watched; the worst stalls come from forking the runner process, not from inference)`,
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }

  console.log(formatTable(['model', 'check', 'value', 'target', 'pass', 'detail'],
    rows.map((r) => [r.model, r.check, Number(r.value.toFixed(3)), r.target, r.pass ? 'yes' : 'NO', r.detail])));
  const outDir = join(root, 'bench-results');
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, 'bench-measure.json');
  await writeJsonAtomic(file, { v: 1, date: new Date().toISOString(), quick, cpus: (await import('node:os')).availableParallelism(), rows });
  console.log(`\nwrote ${file}`);
  if (rows.some((r) => !r.pass)) process.exitCode = 1;
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
