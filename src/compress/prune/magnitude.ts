// Unstructured magnitude pruning: the smallest weights of Conv/ConvTranspose/Gemm/MatMul become exact zeros, per
// layer or against one global threshold. ONNX Runtime has no sparse kernels for these ops, so the model runs exactly
// as fast as before; the only win is a file that compresses better (gzip, or zip over the air). Reported that way.
import { gzipSync } from 'node:zlib';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex } from '../../onnx/graph.js';
import { modelBytes, type OnnxModel } from '../../onnx/model.js';
import { makeTensor, toFloat32 } from '../../onnx/tensor.js';
import type { PassReport } from '../../types.js';
import type { PassOptions } from '../pass.js';
import { constRef, nodeLabel, readConst, type ConstRef } from './tensors.js';
import { whyNotConstant } from '../fold-weights.js';

export interface MagnitudeOptions extends PassOptions {
  /** fraction of weights set to zero */
  ratio: number;
  scope?: 'layer' | 'global';
  /** ratio per node name (per-layer scope; in global scope these layers are left out of the threshold) */
  perLayer?: Record<string, number>;
}

export const MAGNITUDE_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

interface Target { ref: ConstRef; nodes: string[]; op: string; w: Float32Array; ratio?: number }

/** Zeroes weights in place (pass a copy). Each weight tensor is handled once even when several nodes share it. */
export function pruneMagnitude(model: OnnxModel, opts: MagnitudeOptions): PassReport {
  const report: PassReport = { pass: 'prune-magnitude', changed: [], skipped: [] };
  const g = model.proto.graph!;
  const idx = new GraphIndex(g);
  const targets = new Map<string, Target>();
  for (const node of g.node) {
    if (!MAGNITUDE_OPS.has(node.opType) || (node.domain !== '' && node.domain !== 'ai.onnx')) continue;
    const name = nodeLabel(node);
    const skip = (why: string) => report.skipped.push({ node: name, op: node.opType, why });
    if (opts.excludeOps?.includes(node.opType) || opts.excludeNodes?.includes(name)) { skip('excluded by the recipe'); continue; }
    const ref = constRef(idx, node.input[1]);
    if (!ref) { skip(whyNotConstant(node.input[1], idx)); continue; }
    if (ref.tensor.dataType !== DT.FLOAT) { skip(`weight "${ref.name}" is not float32`); continue; }
    if (ref.tensor.dims.length < 2) { skip(`weight "${ref.name}" is not a matrix or kernel`); continue; }
    const t = targets.get(ref.name);
    if (t) { t.nodes.push(name); continue; }
    targets.set(ref.name, { ref, nodes: [name], op: node.opType, w: toFloat32(readConst(ref, model.dir)), ratio: opts.perLayer?.[name] });
  }
  const list = [...targets.values()];
  let threshold: number | undefined;
  if (opts.scope === 'global') {
    const free = list.filter((t) => t.ratio === undefined);
    const n = free.reduce((a, t) => a + t.w.length, 0);
    const all = new Float32Array(n);
    let o = 0;
    for (const t of free) for (const v of t.w) all[o++] = Math.abs(v);
    all.sort();
    const cut = Math.floor(opts.ratio * n);
    threshold = cut > 0 ? all[cut - 1] : -1;
  }
  for (const t of list) {
    const w = t.w.slice();
    let zeroed: number;
    if (threshold !== undefined && t.ratio === undefined) zeroed = zeroBelow(w, threshold);
    else zeroed = zeroSmallest(w, Math.floor((t.ratio ?? opts.ratio) * w.length));
    const before = t.w.reduce((a, v) => a + (v === 0 ? 1 : 0), 0);
    if (zeroed <= before) { report.skipped.push({ node: t.nodes[0], op: t.op, why: 'nothing to zero at this ratio' }); continue; }
    const nt = makeTensor(t.ref.tensor.name, DT.FLOAT, t.ref.tensor.dims.map(Number), w);
    // Same name, same place: an initializer is replaced, a Constant node gets the new value.
    if (t.ref.source === 'initializer') g.initializer[g.initializer.indexOf(t.ref.tensor)] = nt;
    else t.ref.node!.attribute.find((a) => a.name === 'value')!.t = nt;
    report.changed.push({
      node: t.nodes[0], op: t.op,
      what: `${(100 * zeroed / w.length).toFixed(1)}% of ${w.length} weights are zero (was ${(100 * before / w.length).toFixed(1)}%)${t.nodes.length > 1 ? `; shared with ${t.nodes.slice(1).join(', ')}` : ''}`,
    });
  }
  return report;
}

/** Zeroes exactly the k smallest magnitudes (ties broken by position); returns how many are zero now. */
function zeroSmallest(w: Float32Array, k: number): number {
  if (k > 0) {
    const order = Array.from(w.keys()).sort((a, b) => Math.abs(w[a]) - Math.abs(w[b]) || a - b);
    for (let i = 0; i < k; i++) w[order[i]] = 0;
  }
  return w.reduce((a, v) => a + (v === 0 ? 1 : 0), 0);
}

function zeroBelow(w: Float32Array, t: number): number {
  let z = 0;
  for (let i = 0; i < w.length; i++) {
    if (Math.abs(w[i]) <= t) w[i] = 0;
    if (w[i] === 0) z++;
  }
  return z;
}

/** The model's size once gzipped: the only size sparsity buys (the .onnx file itself stays as large). */
export function gzipSize(model: OnnxModel): number {
  return gzipSync(modelBytes(model), { level: 6 }).length;
}
