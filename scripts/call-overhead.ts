// npx tsx scripts/call-overhead.ts [model.onnx …] — how much of a small model's latency is the fixed cost of one
// `session.run` call from Node (tensor wrapping, the binding, the async hop), against a 2-node model of the
// example's input shape. Models run in this process, interleaved in blocks of 300 runs, 1 intra-op thread; medians of
// 30 blocks. Default: the example and its static int8 form (made with `edgetune compress --quant int8-static`).
// Developer-side: it explains why a 56 µs model cannot show its full int8 speed-up (docs/quantization.md).
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { formatTable } from '../src/cli/output.js';
import { median } from '../src/measure/stats.js';
import { GraphBuilder, buildModel } from '../src/onnx/builder.js';
import { DT } from '../src/onnx/dtype.js';
import { saveModel } from '../src/onnx/model.js';
import { packageRoot } from '../src/util/paths.js';

const BLOCKS = 30, RUNS = 300;

/** Reshape + Slice: the least work a [1,1,28,28] → [1,10] model can do. */
async function trivialModel(dir: string): Promise<string> {
  const g = new GraphBuilder('trivial');
  g.input('input', DT.FLOAT, [1, 1, 28, 28]);
  const flat = g.op('Reshape', ['input', g.initializer('shape', DT.INT64, [2], BigInt64Array.from([1n, 784n]))]);
  const i64 = (name: string, v: bigint) => g.initializer(name, DT.INT64, [1], BigInt64Array.from([v]));
  g.node('Slice', [flat, i64('start', 0n), i64('end', 10n), i64('axis', 1n)], { outputs: ['logits'] });
  g.output('logits', DT.FLOAT, [1, 10]);
  const path = join(dir, 'trivial.onnx');
  await saveModel(buildModel(g.graph), path);
  return path;
}

async function main(): Promise<void> {
  const root = packageRoot();
  const work = await mkdtemp(join(tmpdir(), 'edgetune-overhead-'));
  try {
    const given = process.argv.slice(2);
    const models = given.length ? given : [join(root, 'examples/fashion-mnist/model.onnx')];
    for (const m of models) if (!existsSync(m)) throw new Error(`${m}: no such file`);
    models.push(await trivialModel(work));
    const sessions = await Promise.all(models.map((m) => ort.InferenceSession.create(m, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' })));
    const x = new ort.Tensor('float32', Float32Array.from({ length: 784 }, (_, i) => ((i * 37) % 255) / 255), [1, 1, 28, 28]);
    const feeds = sessions.map((s) => ({ [s.inputNames[0]]: x }));
    const blocks: number[][] = models.map(() => []);
    for (let b = 0; b < BLOCKS; b++) {
      for (let i = 0; i < sessions.length; i++) {
        const t0 = process.hrtime.bigint();
        for (let r = 0; r < RUNS; r++) await sessions[i].run(feeds[i]);
        blocks[i].push(Number(process.hrtime.bigint() - t0) / RUNS / 1000);
      }
    }
    const med = blocks.map((bs) => median(bs));
    const fixed = med.at(-1)!;
    console.log(formatTable(['model', 'µs per run (median)', '× first', 'minus the trivial model µs', '× first, minus it'],
      models.map((m, i) => [m.replace(`${root}/`, ''), Number(med[i].toFixed(2)), Number((med[i] / med[0]).toFixed(3)),
        Number((med[i] - fixed).toFixed(2)), Number(((med[i] - fixed) / (med[0] - fixed)).toFixed(3))])));
    await Promise.all(sessions.map((s) => s.release()));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
