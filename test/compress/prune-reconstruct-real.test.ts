// Reconstruction on real detectors with residual and depthwise structure: the pruned layers chosen are those whose
// channels are coupled through residual Adds or pass through depthwise convolutions, so the refit has to get the
// teacher/student value mapping right across them. Only a handful of channel groups are pruned, which keeps the
// least-squares work small enough for the test suite; the benchmark prunes every group.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { valueInfo } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { cloneModel, loadModel, modelBytes, type OnnxModel } from '../../src/onnx/model.js';
import { analyzeChannels } from '../../src/compress/prune/deps.js';
import { pruneChannels } from '../../src/compress/prune/channel.js';
import { runPrune } from '../../src/compress/prune/index.js';
import { generateInputs, inputSpecs } from '../../src/measure/inputs.js';
import { CORPUS_DIR, PADDLE_DIR, runOrt } from '../onnx/helpers.js';
import { cosine, ort } from '../helpers/ort.js';

interface Case { name: string; path: string; input: string; dims: number[]; corpus: boolean; shapes?: Record<string, number[]> }
const cases: Case[] = [
  { name: 'yolox_nano (residual Adds, depthwise, SiLU)', path: join(CORPUS_DIR, 'yolox_nano.onnx'), input: 'images', dims: [1, 3, 416, 416], corpus: true },
  { name: 'Ultraface RFB-320 (depthwise, concat)', path: join(CORPUS_DIR, 'Ultraface_version-RFB-320.onnx'), input: 'input', dims: [1, 3, 240, 320], corpus: true },
  { name: 'PP-OCRv4 det (Constant-node weights, SE gates, BatchNormalization)', path: join(PADDLE_DIR, 'ch_PP-OCRv4_det_infer.onnx'), input: 'x', dims: [1, 3, 128, 128], corpus: false, shapes: { x: [4, 3, 128, 128] } },
];

/** Leaders of up to `n` channel groups coupled through an element-wise op and up to `n` that a depthwise conv passes. */
function coupledLeaders(model: OnnxModel, n: number): { residual: string[]; depthwise: string[] } {
  const a = analyzeChannels(model);
  const res = pruneChannels(cloneModel(model), { ratio: 0.3, multiple: 4 });
  const pruned = res.spaces.filter((s) => s.keep);
  const throughDw = new Set<number>();
  for (const e of a.edits) if (e.kind === 'group') for (const seg of e.layout.segs) throughDw.add(a.spaces.find(seg.space));
  return {
    residual: pruned.filter((s) => s.nodes.length > 1).slice(0, n).map((s) => s.leader),
    depthwise: pruned.filter((s) => throughDw.has(s.space) && s.nodes.length === 1).slice(0, n).map((s) => s.leader),
  };
}

/**
 * The model's bytes with the input of a final Sigmoid exposed too: PP-OCR's probability map is ≈0 everywhere on noise
 * (so its cosine says nothing), the logits before it are not.
 */
function probed(model: OnnxModel): Uint8Array {
  const m = cloneModel(model);
  const g = m.proto.graph!;
  for (const o of [...g.output]) {
    const p = finalSigmoid(model, o.name);
    if (p) g.output.push(valueInfo(p, DT.FLOAT));
  }
  return modelBytes(m);
}

/** The input of the Sigmoid that produces a graph output, if one does. */
function finalSigmoid(model: OnnxModel, output: string): string | undefined {
  const p = model.proto.graph!.node.find((n) => n.output.includes(output));
  return p?.opType === 'Sigmoid' ? p.input[0] : undefined;
}

for (const c of cases) {
  const skip = !existsSync(c.path) ? `${c.path} is absent${c.corpus ? ' (the shared corpus is not mounted)' : ''}` : false;
  t.test(`${c.name}: reconstruction after pruning coupled groups brings the outputs back`, { skip }, async (t) => {
    const model = await loadModel(c.path);
    const { residual, depthwise } = coupledLeaders(model, 2);
    if (c.path.includes('yolox')) t.ok(residual.length === 2, `residual groups: ${residual.join(', ')}`);
    t.ok(depthwise.length >= 1, `groups through depthwise convs: ${depthwise.join(', ')}`);
    const perLayer = Object.fromEntries([...residual, ...depthwise].map((l) => [l, 0.5]));
    const step = { method: 'channel' as const, ratio: 0, multiple: 4, perLayer };
    const plain = cloneModel(model), rec = cloneModel(model);
    await runPrune(plain, { ...step, reconstruct: false }, {});
    const r = await runPrune(rec, { ...step, reconstruct: true }, {}, { reconstruct: { samples: 8, batchSize: 4, shapes: c.shapes } });
    t.same(r.passes.map((x) => x.pass), ['prune-channel', 'prune-reconstruct'], r.warnings.join('; '));
    t.equal(r.passes[0].changed.length, Object.keys(perLayer).length, 'exactly the chosen groups are pruned');
    t.ok(r.passes[1].changed.length >= Object.keys(perLayer).length, `${r.passes[1].changed.length} layers refitted; ${r.passes[1].skipped.map((s) => s.why).join('; ')}`);

    // Held out: drawn like the calibration's generated inputs (N(0, 1)), from another seed.
    const gen = generateInputs(inputSpecs(model), { shapes: { [c.input]: c.dims }, seed: 4242 }).tensors[c.input];
    const feeds = { [c.input]: new ort.Tensor('float32', gen.data as Float32Array, gen.dims) };
    const [ref, a, b] = [await runOrt(probed(model), feeds), await runOrt(probed(plain), feeds), await runOrt(probed(rec), feeds)];
    t.same(Object.keys(b), Object.keys(ref), 'same output names');
    let worstA = 1, worstB = 1;
    for (const k of Object.keys(ref)) {
      if (finalSigmoid(model, k)) { t.comment(`output ${k}: compared before its Sigmoid`); continue; }
      t.same(b[k].dims, ref[k].dims, `output ${k}: same dims [${ref[k].dims}]`);
      worstA = Math.min(worstA, cosine(ref[k].data as Float32Array, a[k].data as Float32Array));
      worstB = Math.min(worstB, cosine(ref[k].data as Float32Array, b[k].data as Float32Array));
    }
    // Random inputs are not images, so the fit is judged by how much of the damage it takes away.
    t.ok(1 - worstB < 0.5 * (1 - worstA), `held-out worst output cosine: ${worstA.toFixed(4)} pruned → ${worstB.toFixed(4)} reconstructed (over half the loss recovered)`);
  });
}
