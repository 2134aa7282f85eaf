import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, OperatorSetIdProtoSchema, type NodeProto } from 'onnx-buf';
import { EdgetuneError } from '../../errors.js';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, insertNodes, pruneUnused, removeNodes, uniqueName } from '../../onnx/graph.js';
import { attr, type AttrValue } from '../../onnx/builder.js';
import { makeTensor, readTensor, toFloat32 } from '../../onnx/tensor.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { QuantizeStep } from '../../schema/recipe.js';
import type { PassReport } from '../../types.js';
import { opsetVersion, type PassOptions } from '../pass.js';
import { hasNonFinite, transpose } from './weights.js';
import { nodeKey, overrideFor } from './overrides.js';
import { subgraphSkips } from './subgraph-skips.js';
import {
  blockedDqTensors, gatherBlockTensors, isPowerOfTwo, matMulNBitsTensors, quantizeRowBlocks, type BlockQuantized, type WeightBits,
} from './matmulnbits.js';
import { whyNotConstant } from '../fold-weights.js';

export interface WeightOnlyOptions extends PassOptions, Pick<QuantizeStep, 'overrides' | 'opOverrides'> {
  bits: WeightBits;
  blockSize: number;
  symmetric: boolean;
  /** MatMulNBits accuracy_level: 4 quantizes activations to int8 per block inside the kernel (the fast path) */
  accuracyLevel: number;
  /** 'matmulnbits' (com.microsoft contrib ops) or 'dq' (opset-21 blocked DequantizeLinear + MatMul) */
  format: 'matmulnbits' | 'dq';
}

/** A weight ready to quantize: W^T as [n, k] rows (the MatMulNBits orientation), with the Gemm bias folded in. */
interface Linear { wt: Float32Array; k: number; n: number; bias?: Float32Array; source: string; key: string }

/**
 * Weight-only quantization: weights stored in 4 or 8 bits, activations stay float.
 *   MatMul / Gemm with a constant 2-D weight → com.microsoft.MatMulNBits (Gemm's transB, alpha, beta and bias are
 *     folded in), or with format 'dq' → DequantizeLinear(int4/int8, block_size, axis 0) → MatMul [→ Add bias], which
 *     ORT fuses back into MatMulNBits (needs opset 21).
 *   Gather on a constant [V, D] table (axis 0) → com.microsoft.GatherBlockQuantized (matmulnbits format only).
 */
export function quantizeWeightOnly(model: OnnxModel, opts: WeightOnlyOptions): PassReport {
  const report: PassReport = { pass: 'quantize-weight-only', changed: [], skipped: [] };
  const g = model.proto.graph!;
  const idx = new GraphIndex(g);
  const opset = opsetVersion(model, '');
  const made = new Map<string, string[]>(); // one quantized copy per (weight, layout, bits), however many readers
  const replaced: NodeProto[] = [];
  for (const node of [...g.node]) {
    if (node.opType !== 'MatMul' && node.opType !== 'Gemm' && node.opType !== 'Gather') continue;
    if (node.domain !== '' && node.domain !== 'ai.onnx') continue;
    const name = nodeKey(node);
    const skip = (why: string) => report.skipped.push({ node: name, op: node.opType, why });
    if (opts.excludeOps?.includes(node.opType) || opts.excludeNodes?.includes(name)) { skip('excluded by the recipe'); continue; }
    const ov = overrideFor(opts, node);
    if (ov.skip) { skip(ov.why!); continue; }
    const bits = (ov.bits ?? opts.bits) as WeightBits;
    if (bits !== 4 && bits !== 8) { skip(`${ov.why}: weight-only quantization stores 4 or 8 bits; kept fp32`); continue; }
    const o = { ...opts, bits };

    if (node.opType === 'Gather') {
      if (opts.format === 'dq') { skip('the dq form would dequantize the whole table on every run (ORT does not fold it); use format "matmulnbits" for GatherBlockQuantized'); continue; }
      const why = quantizeGather(model, node, idx, o, report);
      if (why) skip(why); else replaced.push(node);
      continue;
    }
    if (opts.format === 'dq' && opset < 21) { skip(`format "dq" needs blocked DequantizeLinear (opset 21); the model imports opset ${opset}. Use format "matmulnbits"`); continue; }
    const lin = linearOf(model, node, idx);
    if (typeof lin === 'string') { skip(lin); continue; }
    const q = quantizeRowBlocks(lin.wt, lin.n, lin.k, { bits, blockSize: o.blockSize, symmetric: o.symmetric });
    const bytes = opts.format === 'dq' ? emitDq(model, node, lin, q, o, made) : emitMatMulNBits(model, node, lin, q, o, made);
    replaced.push(node);
    const form = opts.format === 'dq' ? `DequantizeLinear(${bits === 4 ? 'int4' : 'int8'}) + MatMul` : `MatMulNBits (accuracy_level ${o.accuracyLevel})`;
    report.changed.push({
      node: name, op: node.opType,
      what: `${bits}-bit ${o.symmetric ? 'symmetric' : 'asymmetric'} block ${o.blockSize} weight [${lin.k}x${lin.n}] (${lin.source}) as ${form}, ${4 * lin.k * lin.n} → ${bytes} bytes${ov.bits ? ` (${ov.why})` : ''}`,
    });
  }
  removeNodes(g, replaced);
  pruneUnused(g);
  report.skipped.push(...subgraphSkips(g, ['MatMul', 'Gemm', 'Gather'], 'weight-only quantization'));
  return report;
}

function linearOf(model: OnnxModel, node: NodeProto, idx: GraphIndex): Linear | string {
  const [a, b, c] = node.input;
  const wInfo = idx.constantTensor(b);
  if (!wInfo) return whyNotConstant(b, idx);
  if (idx.constantTensor(a)) return 'both inputs are constant: ORT folds this node at load time anyway';
  if (wInfo.tensor.dataType !== DT.FLOAT) return `weight "${b}" is not float32`;
  const wt = readTensor(wInfo.tensor, model.dir);
  if (wt.dims.length !== 2) return `weight "${b}" has rank ${wt.dims.length}; only 2-D weights are quantized`;
  let w = toFloat32(wt);
  if (hasNonFinite(w)) return `weight "${b}" holds inf or NaN`;
  const gemm = node.opType === 'Gemm' ? gemmAttrs(node) : undefined;
  if (gemm?.transA) return 'Gemm with transA=1 is not quantized';
  // MatMulNBits wants W^T ([N, K]); a Gemm with transB=1 already stores its weight that way.
  const [k, n] = gemm?.transB ? [wt.dims[1], wt.dims[0]] : [wt.dims[0], wt.dims[1]];
  if (!gemm?.transB) w = transpose(w, k, n);
  if (gemm && gemm.alpha !== 1) { const s = gemm.alpha; w = w.map((x) => x * s); }
  let bias: Float32Array | undefined;
  if (gemm && c) {
    const cInfo = idx.constantTensor(c);
    if (!cInfo) return `Gemm bias "${c}" is not constant`;
    const cv = toFloat32(readTensor(cInfo.tensor, model.dir));
    if (cv.length !== n && cv.length !== 1) return `Gemm bias "${c}" has ${cv.length} values, not one per output column (${n})`;
    bias = new Float32Array(n);
    for (let j = 0; j < n; j++) bias[j] = gemm.beta * cv[cv.length === 1 ? 0 : j];
  }
  const key = `${b}|${gemm?.transB ? 't' : ''}|${gemm?.alpha ?? 1}`;
  return { wt: w, k, n, bias, source: wInfo.source, key };
}

function emitMatMulNBits(model: OnnxModel, node: NodeProto, lin: Linear, q: BlockQuantized, o: WeightOnlyOptions, made: Map<string, string[]>): number {
  const g = model.proto.graph!;
  const t = matMulNBitsTensors(q, o.symmetric);
  const cacheKey = `nbits|${lin.key}|${o.bits}|${o.blockSize}|${o.symmetric}`;
  let names = made.get(cacheKey);
  if (!names) {
    const base = uniqueName(g, `${node.input[1]}_q${o.bits}`);
    const inits = [makeTensor(`${base}_B`, DT.UINT8, t.bDims, t.b), makeTensor(`${base}_scales`, DT.FLOAT, t.scaleDims, t.scales)];
    if (t.zeroPoints) inits.push(makeTensor(`${base}_zero_points`, DT.UINT8, t.zpDims!, t.zeroPoints));
    g.initializer.push(...inits);
    names = inits.map((x) => x.name);
    made.set(cacheKey, names);
  }
  const inputs = [node.input[0], names[0], names[1], names[2] ?? ''];
  if (lin.bias) {
    const bt = makeTensor(uniqueName(g, `${nodeKey(node)}_bias`), DT.FLOAT, [lin.n], lin.bias);
    g.initializer.push(bt);
    inputs.push('', bt.name); // input 4 (g_idx) is deprecated; the bias is input 5
  }
  while (inputs[inputs.length - 1] === '') inputs.pop();
  const attrs: Record<string, AttrValue> = { K: lin.k, N: lin.n, bits: o.bits, block_size: o.blockSize, accuracy_level: o.accuracyLevel };
  insertNodes(g, [mk('MatMulNBits', uniqueName(g, `${nodeKey(node)}_MatMulNBits`), inputs, [node.output[0]], attrs, 'com.microsoft')], node);
  ensureOpset(model, 'com.microsoft', 1);
  return t.b.length + 4 * t.scales.length + (t.zeroPoints?.length ?? 0);
}

function emitDq(model: OnnxModel, node: NodeProto, lin: Linear, q: BlockQuantized, o: WeightOnlyOptions, made: Map<string, string[]>): number {
  const g = model.proto.graph!;
  const t = blockedDqTensors(q, o.symmetric);
  const cacheKey = `dq|${lin.key}|${o.bits}|${o.blockSize}|${o.symmetric}`;
  let deq = made.get(cacheKey)?.[0];
  const nodes: NodeProto[] = [];
  if (!deq) {
    const base = uniqueName(g, `${node.input[1]}_q${o.bits}`);
    const dtype = o.bits === 4 ? (o.symmetric ? DT.INT4 : DT.UINT4) : (o.symmetric ? DT.INT8 : DT.UINT8);
    const inits = [makeTensor(`${base}_quantized`, dtype, [lin.k, lin.n], t.values), makeTensor(`${base}_scale`, DT.FLOAT, [q.nBlocks, lin.n], t.scales)];
    if (t.zeroPoints) inits.push(makeTensor(`${base}_zero_point`, dtype, [q.nBlocks, lin.n], t.zeroPoints));
    g.initializer.push(...inits);
    deq = `${base}_dequantized`;
    nodes.push(mk('DequantizeLinear', `${base}_DequantizeLinear`, inits.map((x) => x.name), [deq], { axis: 0, block_size: o.blockSize }));
    made.set(cacheKey, [deq]);
  }
  const stem = uniqueName(g, `${nodeKey(node)}_wq`);
  const out = node.output[0];
  nodes.push(mk('MatMul', `${stem}_MatMul`, [node.input[0], deq], [lin.bias ? `${stem}_nobias` : out]));
  if (lin.bias) {
    const bt = makeTensor(`${stem}_bias`, DT.FLOAT, [lin.n], lin.bias);
    g.initializer.push(bt);
    nodes.push(mk('Add', `${stem}_Add`, [`${stem}_nobias`, bt.name], [out]));
  }
  insertNodes(g, nodes, node);
  const codeBytes = Math.ceil((lin.k * lin.n * o.bits) / 8);
  return codeBytes + 4 * t.scales.length + (t.zeroPoints ? Math.ceil((t.zeroPoints.length * o.bits) / 8) : 0);
}

/** Replaces a Gather on a constant [V, D] table with GatherBlockQuantized; returns why not when it cannot. */
function quantizeGather(model: OnnxModel, node: NodeProto, idx: GraphIndex, o: WeightOnlyOptions, report: PassReport): string | undefined {
  const g = model.proto.graph!;
  const [data, indices] = node.input;
  const axis = Number(node.attribute.find((a) => a.name === 'axis')?.i ?? 0n);
  if (axis !== 0) return `Gather on axis ${axis}: GatherBlockQuantized gathers rows (axis 0) only`;
  const info = idx.constantTensor(data);
  if (!info) return `table "${data}" is not a constant`;
  if (idx.constantTensor(indices)) return 'indices are constant: ORT folds this node at load time anyway';
  if (info.tensor.dataType !== DT.FLOAT) return `table "${data}" is not float32`;
  const t = readTensor(info.tensor, model.dir);
  if (t.dims.length !== 2) return `table "${data}" has rank ${t.dims.length}; only 2-D embedding tables are quantized`;
  const w = toFloat32(t);
  if (hasNonFinite(w)) return `table "${data}" holds inf or NaN`;
  const [v, d] = t.dims;
  const q = quantizeRowBlocks(w, v, d, { bits: o.bits, blockSize: o.blockSize, symmetric: o.symmetric });
  const gt = gatherBlockTensors(q, o.symmetric);
  const base = uniqueName(g, `${data}_q${o.bits}`);
  const inits = [makeTensor(`${base}_data`, DT.UINT8, gt.dataDims, gt.data), makeTensor(`${base}_scales`, DT.FLOAT, gt.scaleDims, gt.scales)];
  if (gt.zeroPoints) inits.push(makeTensor(`${base}_zero_points`, DT.UINT8, gt.zpDims!, gt.zeroPoints));
  g.initializer.push(...inits);
  const [first, ...rest] = inits.map((x) => x.name);
  const attrs = { bits: o.bits, block_size: o.blockSize, gather_axis: 0, quantize_axis: 1 };
  insertNodes(g, [mk('GatherBlockQuantized', uniqueName(g, `${nodeKey(node)}_GatherBlockQuantized`), [first, indices, ...rest], [node.output[0]], attrs, 'com.microsoft')], node);
  ensureOpset(model, 'com.microsoft', 1);
  const bytes = gt.data.length + 4 * gt.scales.length + (gt.zeroPoints?.length ?? 0);
  report.changed.push({
    node: nodeKey(node), op: 'Gather',
    what: `${o.bits}-bit ${o.symmetric ? 'symmetric' : 'asymmetric'} block ${o.blockSize} table [${v}x${d}] (${info.source}) as GatherBlockQuantized, ${4 * v * d} → ${bytes} bytes`,
  });
  return undefined;
}

function gemmAttrs(node: NodeProto): { alpha: number; beta: number; transA: boolean; transB: boolean } {
  const get = (n: string) => node.attribute.find((a) => a.name === n);
  return {
    alpha: get('alpha')?.f ?? 1,
    beta: get('beta')?.f ?? 1,
    transA: Number(get('transA')?.i ?? 0n) === 1,
    transB: Number(get('transB')?.i ?? 0n) === 1,
  };
}

function ensureOpset(model: OnnxModel, domain: string, version: number): void {
  if (!model.proto.opsetImport.some((o) => o.domain === domain)) {
    model.proto.opsetImport.push(create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }));
  }
}

function mk(opType: string, name: string, input: string[], output: string[], attrs: Record<string, AttrValue> = {}, domain = ''): NodeProto {
  return create(NodeProtoSchema, { opType, domain, name, input, output, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) });
}

/** The recipe's weight-only step: checks its settings, runs the pass, warns about slow settings. */
export function weightOnlyStep(model: OnnxModel, q: QuantizeStep, exclude: PassOptions): { passes: PassReport[]; warnings: string[] } {
  const bits = q.bits ?? 4;
  if (bits !== 4 && bits !== 8) throw new EdgetuneError('USAGE', `recipe.quantize.bits: weight-only quantization stores 4 or 8 bits (got ${bits})`);
  const blockSize = q.blockSize ?? 32;
  if (!isPowerOfTwo(blockSize)) throw new EdgetuneError('USAGE', `recipe.quantize.blockSize: ${blockSize} is not a power of two; ONNX Runtime takes 16, 32, 64, 128 or 256`);
  const accuracyLevel = q.accuracyLevel ?? 4;
  const format = q.format ?? 'matmulnbits';
  const warnings: string[] = [];
  if (format === 'matmulnbits' && accuracyLevel !== 4) {
    warnings.push(`accuracy_level ${accuracyLevel}: MatMulNBits then computes in float and is usually slower than fp32 on CPUs (measured 1.23× fp32 time at 4 bits); 4 (int8 compute) is the fast setting`);
  }
  if (format === 'dq' && q.accuracyLevel !== undefined) {
    warnings.push('accuracyLevel does not apply to format "dq": ORT picks the accuracy level when it fuses DequantizeLinear + MatMul (session option session.qdq_matmulnbits_accuracy_level, default 4)');
  }
  const pass = quantizeWeightOnly(model, {
    ...exclude, bits, blockSize, symmetric: q.symmetricWeights ?? true, accuracyLevel, format,
    overrides: q.overrides, opOverrides: q.opOverrides,
  });
  return { passes: [pass], warnings };
}
