import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, OperatorSetIdProtoSchema, type GraphProto, type NodeProto, type TensorProto } from 'onnx-buf';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, insertNodes, pruneUnused, removeNodes, uniqueName } from '../../onnx/graph.js';
import { attr } from '../../onnx/builder.js';
import { makeTensor, readTensor, toFloat32 } from '../../onnx/tensor.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { PassReport } from '../../types.js';
import { hasNonFinite, quantizeSymmetricInt8, transpose } from './weights.js';
import { opsetVersion, type PassOptions } from '../pass.js';
import { overrideFor } from './overrides.js';
import type { QuantizeStep } from '../../schema/recipe.js';
import { hostCpu, int8KernelWarnings, type HostCpu } from './qdq-isa.js';
import { subgraphSkips } from './subgraph-skips.js';
import { whyNotConstant } from '../fold-weights.js';

/**
 * Dynamic int8 quantization of MatMul and Gemm with a constant 2-D weight, the ONNX Runtime way:
 *   x ─DynamicQuantizeLinear─▶ (x_q:u8, x_scale, x_zp) ─MatMulInteger(W_q:s8)─▶ i32 ─Cast─▶ f32 ─Mul(x_scale·w_scale)─▶ [+bias]
 * ORT fuses that chain into DynamicQuantizeMatMul, which is where the speed comes from.
 * Activations are quantized at run time, so no calibration data is needed.
 */
export function quantizeDynamic(model: OnnxModel, opts: PassOptions & { perChannel?: boolean } & Pick<QuantizeStep, 'overrides' | 'opOverrides'>): PassReport {
  const report: PassReport = { pass: 'quantize-dynamic', changed: [], skipped: [] };
  const g = model.proto.graph!;
  // DynamicQuantizeLinear/MatMulInteger exist from opset 10. Older models (PaddleOCR exports are opset 9) get ONNX
  // Runtime's contrib op com.microsoft.DynamicQuantizeMatMul instead, which is what ORT fuses the standard chain into
  // anyway; upgrading the whole model's opset would risk changing the semantics of unrelated ops.
  const contrib = opsetVersion(model, '') < 10;
  const idx = new GraphIndex(g);
  const dqlFor = new Map<string, { q: string; scale: string; zp: string }>();
  const weightsFor = new Map<string, { wq: TensorProto; wScale: TensorProto; wZp: TensorProto }>();
  const replaced: NodeProto[] = [];
  // File order is a topological order (ONNX requires it), and inserting before the current node keeps it one.
  for (const node of [...g.node]) {
    if (node.opType !== 'MatMul' && node.opType !== 'Gemm') continue;
    if (node.domain !== '' && node.domain !== 'ai.onnx') continue;
    const name = node.name || node.output[0];
    const skip = (why: string) => report.skipped.push({ node: name, op: node.opType, why });
    if (opts.excludeOps?.includes(node.opType) || opts.excludeNodes?.includes(name)) { skip('excluded by the recipe'); continue; }
    const ov = overrideFor(opts, node);
    if (ov.skip) { skip(ov.why!); continue; }
    if (ov.bits !== undefined && ov.bits !== 8) { skip(`${ov.why}, but dynamic quantization is int8 only: kept fp32`); continue; }
    const [a, b, c] = node.input;
    const wInfo = idx.constantTensor(b);
    if (!wInfo) { skip(whyNotConstant(b, idx)); continue; }
    if (idx.constantTensor(a)) { skip('both inputs are constant: nothing to quantize at run time'); continue; }
    if (wInfo.tensor.dataType !== DT.FLOAT) { skip(`weight "${b}" is ${wInfo.tensor.dataType === DT.FLOAT16 ? 'float16' : 'not float32'}`); continue; }
    const wt = readTensor(wInfo.tensor, model.dir);
    if (wt.dims.length !== 2) { skip(`weight "${b}" has rank ${wt.dims.length}; only 2-D weights are quantized`); continue; }
    const gemm = node.opType === 'Gemm' ? gemmAttrs(node) : undefined;
    if (gemm && gemm.transA) { skip('Gemm with transA=1 is not quantized'); continue; }
    let k = wt.dims[0], n = wt.dims[1];
    let w = toFloat32(wt);
    if (hasNonFinite(w)) { skip(`weight "${b}" holds inf or NaN`); continue; }
    if (gemm?.transB) { w = transpose(w, k, n); [k, n] = [n, k]; }
    if (gemm && gemm.alpha !== 1) { const s = gemm.alpha; w = w.map((x) => x * s); }
    let bias: Float32Array | undefined;
    if (gemm && c) {
      const cInfo = idx.constantTensor(c);
      if (!cInfo) { skip(`Gemm bias "${c}" is not constant`); continue; }
      const ct = readTensor(cInfo.tensor, model.dir);
      const cv = toFloat32(ct);
      const okShape = cv.length === n || cv.length === 1;
      if (!okShape) { skip(`Gemm bias "${c}" has shape [${ct.dims}], not broadcastable per output column`); continue; }
      bias = cv.map((x) => x * gemm.beta);
    }

    // One int8 copy per (weight, layout), however many nodes read it.
    const key = `${b}|${gemm?.transB ? 't' : ''}|${gemm?.alpha ?? 1}`;
    let made = weightsFor.get(key);
    const shared = made !== undefined;
    if (!made) {
      const qw = quantizeSymmetricInt8(w, k, n, Boolean(opts.perChannel));
      const base = uniqueName(g, `${b}_dq`);
      const scaleDims = qw.scale.length === 1 ? [] : [qw.scale.length];
      made = {
        wq: makeTensor(`${base}_quantized`, DT.INT8, [k, n], qw.q),
        wScale: makeTensor(`${base}_scale`, DT.FLOAT, scaleDims, qw.scale),
        wZp: makeTensor(`${base}_zero_point`, DT.INT8, scaleDims, new Int8Array(qw.scale.length)),
      };
      g.initializer.push(made.wq, made.wScale, made.wZp);
      weightsFor.set(key, made);
    }
    const { wq, wScale, wZp } = made;
    const base = uniqueName(g, `${name}_dq`);

    const out = node.output[0];
    if (contrib) {
      const inputs = [a, wq.name, wScale.name, wZp.name];
      if (bias) {
        const bt = makeTensor(`${base}_bias`, DT.FLOAT, [bias.length], bias.length === n ? bias : new Float32Array(n).fill(bias[0]));
        g.initializer.push(bt);
        inputs.push(bt.name);
      }
      insertNodes(g, [create(NodeProtoSchema, { opType: 'DynamicQuantizeMatMul', domain: 'com.microsoft', name: uniqueName(g, `${name}_quant`), input: inputs, output: [out] })], node);
      ensureOpset(model, 'com.microsoft', 1);
      replaced.push(node);
      report.changed.push({ node: name, op: node.opType, what: `int8 ${opts.perChannel ? 'per-channel' : 'per-tensor'} weight [${k}x${n}] (${wInfo.source}) as com.microsoft.DynamicQuantizeMatMul, ${shared ? `sharing the int8 copy of "${b}"` : `${4 * k * n} → ${k * n} bytes`}` });
      continue;
    }
    let dq = dqlFor.get(a);
    const newNodes: NodeProto[] = [];
    if (!dq) {
      const stem = uniqueName(g, `${a}_dyn`);
      dq = { q: `${stem}_quantized`, scale: `${stem}_scale`, zp: `${stem}_zero_point` };
      newNodes.push(mk('DynamicQuantizeLinear', `${stem}_DynamicQuantizeLinear`, [a], [dq.q, dq.scale, dq.zp]));
      dqlFor.set(a, dq);
    }
    const stem = uniqueName(g, `${name}_quant`);
    newNodes.push(
      mk('MatMulInteger', `${stem}_MatMulInteger`, [dq.q, wq.name, dq.zp, wZp.name], [`${stem}_i32`]),
      mk('Cast', `${stem}_Cast`, [`${stem}_i32`], [`${stem}_f32`], { to: DT.FLOAT }),
      mk('Mul', `${stem}_scales`, [dq.scale, wScale.name], [`${stem}_scale`]),
      mk('Mul', `${stem}_Mul`, [`${stem}_f32`, `${stem}_scale`], [bias ? `${stem}_nobias` : out]),
    );
    if (bias) {
      const bt = makeTensor(`${base}_bias`, DT.FLOAT, [bias.length], bias);
      g.initializer.push(bt);
      newNodes.push(mk('Add', `${stem}_Add`, [`${stem}_nobias`, bt.name], [out]));
    }
    insertNodes(g, newNodes, node);
    replaced.push(node);
    report.changed.push({
      node: name, op: node.opType,
      what: `int8 ${opts.perChannel ? 'per-channel' : 'per-tensor'} weight [${k}x${n}] (${wInfo.source}), ${shared ? `sharing the int8 copy of "${b}"` : `${4 * k * n} → ${k * n} bytes`}`,
    });
  }
  removeNodes(g, replaced);
  // Each DynamicQuantizeLinear sits before the first node (in file order) that reads it, so order still holds.
  // pruneUnused keeps a weight that a subgraph body (or any fp32 reader) still reads.
  pruneUnused(g);
  report.skipped.push(...subgraphSkips(g, ['MatMul', 'Gemm'], 'dynamic quantization'));
  return report;
}

function ensureOpset(model: OnnxModel, domain: string, version: number): void {
  if (!model.proto.opsetImport.some((o) => o.domain === domain)) {
    model.proto.opsetImport.push(create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }));
  }
}

function mk(opType: string, name: string, input: string[], output: string[], attrs: Record<string, number> = {}): NodeProto {
  return create(NodeProtoSchema, { opType, name, input, output, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) });
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

export type { GraphProto };

/** The dynamic step of a recipe: MatMul/Gemm always, Conv via ConvInteger only when `convInteger` asks for it. */
export function dynamicStep(model: OnnxModel, q: QuantizeStep, exclude: PassOptions, cpu: HostCpu = hostCpu()): { passes: PassReport[]; warnings: string[] } {
  const passes = [quantizeDynamic(model, { ...exclude, perChannel: q.perChannel, overrides: q.overrides, opOverrides: q.opOverrides })];
  const warnings: string[] = [];
  if (q.convInteger) {
    passes.push(quantizeConvInteger(model, { ...exclude, perChannel: q.perChannel, overrides: q.overrides, opOverrides: q.opOverrides }));
    warnings.push(...int8KernelWarnings('conv-integer', cpu));
  } else {
    const idx = new GraphIndex(model.proto.graph!);
    const convs = model.proto.graph!.node.filter((n) => n.opType === 'Conv' && idx.constantTensor(n.input[1])).length;
    if (convs) warnings.push(`${convs} Conv layer(s) stay fp32: dynamic int8 covers MatMul/Gemm; quantize convolutions with mode "static" (ConvInteger, via convInteger: true, is rarely faster than fp32)`);
  }
  if (passes.some((p) => p.changed.length)) warnings.push(...int8KernelWarnings('dynamic', cpu));
  return { passes, warnings };
}

/**
 * Conv with a constant weight as DynamicQuantizeLinear → ConvInteger → Cast → Mul(scales) [→ Add(bias)]. Weights are
 * uint8 with zero point 128 (symmetric around it), one scale per output channel or one: ONNX Runtime's ConvInteger
 * with int8 weights was measured 6× slower than fp32 here, with uint8 weights about as fast.
 */
export function quantizeConvInteger(model: OnnxModel, opts: PassOptions & { perChannel?: boolean } & Pick<QuantizeStep, 'overrides' | 'opOverrides'>): PassReport {
  const report: PassReport = { pass: 'quantize-dynamic-conv', changed: [], skipped: [] };
  const g = model.proto.graph!;
  const idx = new GraphIndex(g);
  const tooOld = opsetVersion(model, '') < 10;
  const dqlFor = new Map<string, { q: string; scale: string; zp: string }>();
  const replaced: NodeProto[] = [];
  for (const node of [...g.node]) {
    if (node.opType !== 'Conv' || (node.domain !== '' && node.domain !== 'ai.onnx')) continue;
    const name = node.name || node.output[0];
    const skip = (why: string) => report.skipped.push({ node: name, op: node.opType, why });
    if (tooOld) { skip(`ConvInteger needs opset 10; the model is opset ${opsetVersion(model, '')}`); continue; }
    if (opts.excludeOps?.includes(node.opType) || opts.excludeNodes?.includes(name)) { skip('excluded by the recipe'); continue; }
    const ov = overrideFor(opts, node);
    if (ov.skip) { skip(ov.why!); continue; }
    if (ov.bits !== undefined && ov.bits !== 8) { skip(`${ov.why}, but ConvInteger is 8-bit only: kept fp32`); continue; }
    const [x, w, b] = node.input;
    const wInfo = idx.constantTensor(w);
    if (!wInfo) { skip(whyNotConstant(w, idx)); continue; }
    if (wInfo.tensor.dataType !== DT.FLOAT) { skip(`weight "${w}" is not float32`); continue; }
    const bInfo = b ? idx.constantTensor(b) : undefined;
    if (b && !bInfo) { skip(`bias "${b}" is not constant`); continue; }
    const wt = readTensor(wInfo.tensor, model.dir);
    const wv = toFloat32(wt);
    if (hasNonFinite(wv)) { skip(`weight "${w}" holds inf or NaN`); continue; }
    const m = wt.dims[0];
    const per = wv.length / m;
    const channels = opts.perChannel ? m : 1;
    const scale = new Float32Array(channels);
    for (let i = 0; i < wv.length; i++) {
      const c = opts.perChannel ? Math.floor(i / per) : 0;
      scale[c] = Math.max(scale[c], Math.abs(wv[i]));
    }
    for (let c = 0; c < channels; c++) scale[c] = scale[c] > 0 ? scale[c] / 127 : 1;
    const wq = new Uint8Array(wv.length);
    for (let i = 0; i < wv.length; i++) wq[i] = Math.max(1, Math.min(255, Math.round(wv[i] / scale[opts.perChannel ? Math.floor(i / per) : 0]) + 128));

    const base = uniqueName(g, `${w}_u8`);
    const ones = new Array(wt.dims.length - 2).fill(1);
    g.initializer.push(
      makeTensor(`${base}_quantized`, DT.UINT8, wt.dims, wq),
      makeTensor(`${base}_zero_point`, DT.UINT8, [], Uint8Array.of(128)),
      // [M, 1, 1] so the scale broadcasts over the output's channel axis
      makeTensor(`${base}_scale`, DT.FLOAT, opts.perChannel ? [m, ...ones] : [], scale),
    );
    const newNodes: NodeProto[] = [];
    let dq = dqlFor.get(x);
    if (!dq) {
      const stem = uniqueName(g, `${x}_dyn`);
      dq = { q: `${stem}_quantized`, scale: `${stem}_scale`, zp: `${stem}_zero_point` };
      newNodes.push(mk('DynamicQuantizeLinear', `${stem}_DynamicQuantizeLinear`, [x], [dq.q, dq.scale, dq.zp]));
      dqlFor.set(x, dq);
    }
    const stem = uniqueName(g, `${name}_quant`);
    const conv = mk('ConvInteger', `${stem}_ConvInteger`, [dq.q, `${base}_quantized`, dq.zp, `${base}_zero_point`], [`${stem}_i32`]);
    conv.attribute = node.attribute.filter((a) => ['auto_pad', 'dilations', 'group', 'kernel_shape', 'pads', 'strides'].includes(a.name));
    const out = node.output[0];
    newNodes.push(
      conv,
      mk('Cast', `${stem}_Cast`, [`${stem}_i32`], [`${stem}_f32`], { to: DT.FLOAT }),
      mk('Mul', `${stem}_scales`, [dq.scale, `${base}_scale`], [`${stem}_scale`]),
      mk('Mul', `${stem}_Mul`, [`${stem}_f32`, `${stem}_scale`], [bInfo ? `${stem}_nobias` : out]),
    );
    if (bInfo) {
      const bv = toFloat32(readTensor(bInfo.tensor, model.dir));
      g.initializer.push(makeTensor(`${base}_bias`, DT.FLOAT, [m, ...ones], bv));
      newNodes.push(mk('Add', `${stem}_Add`, [`${stem}_nobias`, `${base}_bias`], [out]));
    }
    insertNodes(g, newNodes, node);
    replaced.push(node);
    report.changed.push({ node: name, op: 'Conv', what: `ConvInteger, uint8 ${opts.perChannel ? 'per-channel' : 'per-tensor'} weights [${wt.dims.join('x')}]` });
  }
  removeNodes(g, replaced);
  pruneUnused(g);
  report.skipped.push(...subgraphSkips(g, ['Conv'], 'ConvInteger quantization'));
  return report;
}
