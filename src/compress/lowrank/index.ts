// Low-rank factorization: a Gemm/MatMul weight W (K×N) becomes two thinner layers (K×r)(r×N) when r(K+N) < KN, r
// chosen by the energy of the singular values kept or by a ratio of the full rank; optionally 1×1 convolutions too.
// A pure graph rewrite; the second layer keeps the original node's name and output, so nothing downstream changes.
import { clone, create } from '@bufbuild/protobuf';
import { AttributeProtoSchema, NodeProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import { attr } from '../../onnx/builder.js';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, insertNodes, pruneUnused, uniqueName } from '../../onnx/graph.js';
import type { OnnxModel } from '../../onnx/model.js';
import { makeTensor, toFloat32 } from '../../onnx/tensor.js';
import type { LowrankStep } from '../../schema/recipe.js';
import type { PassReport } from '../../types.js';
import type { PassOptions } from '../pass.js';
import { addConstant, constRef, dimsOf, floatAttr, intAttr, nodeLabel, readConst, type ConstRef } from '../prune/tensors.js';
import { truncatedFactors, type RankChoice } from './svd.js';
import { whyNotConstant } from '../fold-weights.js';

/** What an empty lowrank step means: keep 95% of the spectrum's energy. */
export const DEFAULT_ENERGY = 0.95;

export interface LowrankStepResult { passes: PassReport[]; warnings: string[] }

/** Factorizes in place (pass a copy). */
export function lowrankFactorize(model: OnnxModel, step: LowrankStep, opts: PassOptions = {}): PassReport {
  const report: PassReport = { pass: 'lowrank', changed: [], skipped: [] };
  const g = model.proto.graph!;
  const idx = new GraphIndex(g);
  const choice: RankChoice = step.energy === undefined && step.ratio === undefined ? { energy: DEFAULT_ENERGY } : { energy: step.energy, ratio: step.ratio };
  for (const node of [...g.node]) {
    const op = node.opType;
    if (node.domain !== '' && node.domain !== 'ai.onnx') continue;
    if (op !== 'MatMul' && op !== 'Gemm' && !(op === 'Conv' && step.conv1x1)) continue;
    const name = nodeLabel(node);
    const skip = (why: string) => report.skipped.push({ node: name, op, why });
    if (opts.excludeOps?.includes(op) || opts.excludeNodes?.includes(name)) { skip('excluded by the recipe'); continue; }
    const w = constRef(idx, node.input[1]);
    if (!w) { skip(whyNotConstant(node.input[1], idx)); continue; }
    if (w.tensor.dataType !== DT.FLOAT) { skip(`weight "${w.name}" is not float32`); continue; }
    if (constRef(idx, node.input[0])) { skip('both inputs are constant'); continue; }
    const wd = dimsOf(w.tensor);
    const m = matrixOf(node, w, wd, model.dir);
    if (typeof m === 'string') { skip(m); continue; }
    const { k, n, data } = m;
    let f;
    try { f = truncatedFactors(data, k, n, choice); } catch (e) { skip((e as Error).message.replace('truncatedFactors: ', '')); continue; }
    if (f.rank * (k + n) >= k * n) {
      skip(`rank ${f.rank} of ${Math.min(k, n)} (energy ${f.energyKept.toFixed(3)}) would not save anything: ${f.rank}·(${k}+${n}) ≥ ${k}·${n}`);
      continue;
    }
    rewrite(g, node, w, wd, f.left, f.right, k, n, f.rank);
    report.changed.push({
      node: name, op,
      what: `rank ${f.rank} of ${Math.min(k, n)} keeps ${(100 * f.energyKept).toFixed(1)}% of the energy: ${k}×${n} = ${k * n} → ${f.rank}·(${k}+${n}) = ${f.rank * (k + n)} weights`,
    });
  }
  pruneUnused(g);
  return report;
}

/** The weight as a K×N matrix y = x·W (Gemm: op(B)·alpha; Conv 1×1: the [N, K] kernel transposed). */
function matrixOf(node: NodeProto, w: ConstRef, wd: number[], dir?: string): { k: number; n: number; data: Float32Array } | string {
  const v = toFloat32(readConst(w, dir));
  if (node.opType === 'MatMul') {
    if (wd.length !== 2) return `weight has rank ${wd.length}; only 2-D weights are factorized`;
    return { k: wd[0], n: wd[1], data: v };
  }
  if (node.opType === 'Gemm') {
    if (wd.length !== 2) return `weight has rank ${wd.length}`;
    const transB = intAttr(node, 'transB', 0) === 1;
    const alpha = floatAttr(node, 'alpha', 1);
    const [k, n] = transB ? [wd[1], wd[0]] : wd;
    const out = new Float32Array(k * n);
    for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) out[i * n + j] = alpha * (transB ? v[j * k + i] : v[i * n + j]);
    return { k, n, data: out };
  }
  if (wd.length < 3 || wd.slice(2).some((d) => d !== 1)) return 'not a 1×1 convolution';
  if (intAttr(node, 'group', 1) !== 1) return 'grouped convolution';
  const [n, k] = wd;
  const out = new Float32Array(k * n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) out[i * n + j] = v[j * k + i];
  return { k, n, data: out };
}

function rewrite(g: GraphProto, node: NodeProto, w: ConstRef, wd: number[], left: Float32Array, right: Float32Array, k: number, n: number, r: number): void {
  const stem = uniqueName(g, `${w.name}_lowrank`);
  const mid = uniqueName(g, `${node.output[0]}_lowrank`);
  const store = (name: string, dims: number[], data: Float32Array) => {
    addConstant(g, makeTensor(name, DT.FLOAT, dims, data), w.source === 'constant-node' ? w.node : undefined);
    return name;
  };
  const a = node.input[0];
  let first: NodeProto;
  if (node.opType === 'MatMul') {
    first = mk('MatMul', `${nodeLabel(node)}_lowrank`, [a, store(`${stem}_a`, [k, r], left)], [mid]);
    node.input[0] = mid;
    node.input[1] = store(`${stem}_b`, [r, n], right);
  } else if (node.opType === 'Gemm') {
    const transA = intAttr(node, 'transA', 0);
    first = mk('Gemm', `${nodeLabel(node)}_lowrank`, [a, store(`${stem}_a`, [k, r], left)], [mid]);
    if (transA) first.attribute.push(attr('transA', 1));
    node.input[0] = mid;
    node.input[1] = store(`${stem}_b`, [r, n], right);
    // alpha went into the factors; beta and C stay on the second Gemm.
    node.attribute = node.attribute.filter((x) => !['transA', 'transB', 'alpha'].includes(x.name));
  } else {
    // Conv 1×1: the first conv takes the spatial attributes (stride, padding), the second is a plain 1×1.
    const spatial = wd.slice(2);
    const rt = new Float32Array(r * k);
    for (let j = 0; j < r; j++) for (let i = 0; i < k; i++) rt[j * k + i] = left[i * r + j];
    const lt = new Float32Array(n * r);
    for (let o = 0; o < n; o++) for (let j = 0; j < r; j++) lt[o * r + j] = right[j * n + o];
    first = mk('Conv', `${nodeLabel(node)}_lowrank`, [a, store(`${stem}_a`, [r, k, ...spatial], rt)], [mid]);
    first.attribute = node.attribute.filter((x) => x.name !== 'group').map((x) => clone(AttributeProtoSchema, x));
    node.attribute = node.attribute.filter((x) => !['strides', 'pads', 'auto_pad', 'dilations'].includes(x.name));
    node.input[0] = mid;
    node.input[1] = store(`${stem}_b`, [n, r, ...spatial], lt);
  }
  insertNodes(g, [first], node);
}

function mk(opType: string, name: string, input: string[], output: string[]): NodeProto {
  return create(NodeProtoSchema, { opType, name, input, output });
}

/** The recipe's lowrank step. */
export async function runLowrank(model: OnnxModel, step: LowrankStep, exclude: PassOptions): Promise<LowrankStepResult> {
  const report = lowrankFactorize(model, step, exclude);
  const warnings: string[] = [];
  if (report.changed.length) {
    warnings.push('low-rank layers are faster only when the rank is well below min(K, N): the two thin products still pay per-call overhead; measure before keeping them');
  }
  return { passes: [report], warnings };
}
