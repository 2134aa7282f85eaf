// Raising a model's default-domain opset to 13, where DequantizeLinear gains the `axis` attribute that per-channel
// weights need. Only done when every node in every graph either means the same at 13 or has a known mechanical
// conversion (attributes that became inputs); otherwise the model keeps its opset and the caller falls back to
// per-tensor weights. Unknown ops block the upgrade: guessing would silently change a model's meaning.
import { create } from '@bufbuild/protobuf';
import type { GraphProto, NodeProto } from 'onnx-buf';
import { AttributeProto_AttributeType as AT, OperatorSetIdProtoSchema } from 'onnx-buf';
import { DT } from '../../onnx/dtype.js';
import { attr } from '../../onnx/builder.js';
import { makeTensor } from '../../onnx/tensor.js';
import { allGraphs } from '../../onnx/walk.js';
import type { OnnxModel } from '../../onnx/model.js';
import { opsetVersion } from '../pass.js';

export const PER_CHANNEL_OPSET = 13;

// Ops whose inference semantics did not change between their version at `since` and opset 13.
const SAME_SINCE: Record<string, number> = {
  Abs: 6, Acos: 7, Add: 7, And: 7, ArgMax: 1, ArgMin: 1, Asin: 7, Atan: 7, AveragePool: 7, BatchNormalization: 7,
  Cast: 6, Ceil: 6, Concat: 4, Constant: 1, ConstantOfShape: 9, Conv: 1, ConvTranspose: 1, Cos: 7, CumSum: 11,
  DepthToSpace: 1, Div: 7, Einsum: 12, Elu: 6, Equal: 7, Erf: 9, Exp: 6, Expand: 8, Flatten: 1, Floor: 6, GRU: 7,
  Gather: 1, GatherElements: 11, GatherND: 11, Gemm: 7, GlobalAveragePool: 1, GlobalMaxPool: 1, Greater: 7,
  GreaterOrEqual: 12, HardSigmoid: 6, Identity: 1, If: 1, InstanceNormalization: 6, IsInf: 10, IsNaN: 9, LRN: 1,
  LSTM: 7, LeakyRelu: 6, Less: 7, LessOrEqual: 12, Log: 6, Loop: 1, MatMul: 1, Max: 8, MaxPool: 8, Mean: 8, Min: 8,
  Mod: 10, Mul: 7, Neg: 6, NonMaxSuppression: 10, NonZero: 9, Not: 1, OneHot: 9, Or: 7, PRelu: 7, Pad: 11, Pow: 7,
  RNN: 7, Range: 11, Reciprocal: 6, ReduceL1: 1, ReduceL2: 1, ReduceLogSumExp: 1, ReduceMax: 1, ReduceMean: 1,
  ReduceMin: 1, ReduceProd: 1, ReduceSumSquare: 1, Relu: 6, Reshape: 5, Resize: 11, Round: 11, Scan: 9,
  ScatterElements: 11, ScatterND: 11, Selu: 6, Shape: 1, Shrink: 9, Sigmoid: 6, Sign: 9, Sin: 7, Size: 1, Slice: 10,
  Softplus: 1, Softsign: 1, SpaceToDepth: 1, Sqrt: 6, Sub: 7, Sum: 8, Tan: 7, Tanh: 6, Tile: 6, TopK: 10,
  Transpose: 1, Where: 9, Xor: 7, Clip: 11, Dropout: 12, Split: 13, Squeeze: 13, Unsqueeze: 13, ReduceSum: 13,
  Softmax: 13, LogSoftmax: 13, Hardmax: 13, QuantizeLinear: 10, DequantizeLinear: 10,
};

type Converter = (n: NodeProto, g: GraphProto, fresh: (base: string) => string) => string | undefined;

const getAttr = (n: NodeProto, name: string) => n.attribute.find((a) => a.name === name);
const dropAttr = (n: NodeProto, ...names: string[]) => { n.attribute = n.attribute.filter((a) => !names.includes(a.name)); };
const ints = (n: NodeProto, name: string) => getAttr(n, name)?.ints.map(Number);

function constInput(g: GraphProto, fresh: (b: string) => string, base: string, dtype: number, dims: number[], data: BigInt64Array | Float32Array): string {
  const name = fresh(base);
  g.initializer.push(makeTensor(name, dtype, dims, data));
  return name;
}

/** Attribute → input conversions, each returning undefined on success or why it cannot convert. */
const CONVERT: Record<string, { below: number; run: Converter }> = {
  // Slice-1: starts/ends/axes attributes → inputs (Slice-10)
  Slice: { below: 10, run: (n, g, fresh) => {
    const starts = ints(n, 'starts'), ends = ints(n, 'ends'), axes = ints(n, 'axes');
    if (!starts || !ends) return 'Slice without starts/ends';
    const i64 = (xs: number[]) => BigInt64Array.from(xs.map((x) => BigInt(Math.max(Math.min(x, 2 ** 62), -(2 ** 62)))));
    const stem = n.name || n.output[0];
    n.input = [n.input[0], constInput(g, fresh, `${stem}_starts`, DT.INT64, [starts.length], i64(starts)), constInput(g, fresh, `${stem}_ends`, DT.INT64, [ends.length], i64(ends))];
    if (axes) n.input.push(constInput(g, fresh, `${stem}_axes`, DT.INT64, [axes.length], i64(axes)));
    dropAttr(n, 'starts', 'ends', 'axes');
    return undefined;
  } },
  // axes attribute → input (opset 13)
  Squeeze: { below: 13, run: (n, g, fresh) => axesToInput(n, g, fresh) },
  Unsqueeze: { below: 13, run: (n, g, fresh) => axesToInput(n, g, fresh) },
  ReduceSum: { below: 13, run: (n, g, fresh) => axesToInput(n, g, fresh) },
  Split: { below: 13, run: (n, g, fresh) => {
    const split = ints(n, 'split');
    if (split) n.input = [n.input[0], constInput(g, fresh, `${n.name || n.output[0]}_split`, DT.INT64, [split.length], BigInt64Array.from(split.map(BigInt)))];
    dropAttr(n, 'split');
    return undefined;
  } },
  // Clip-6: min/max attributes → inputs (Clip-11)
  Clip: { below: 11, run: (n, g, fresh) => {
    const lo = getAttr(n, 'min')?.f, hi = getAttr(n, 'max')?.f;
    const stem = n.name || n.output[0];
    n.input = [n.input[0], lo === undefined ? '' : constInput(g, fresh, `${stem}_min`, DT.FLOAT, [], Float32Array.of(lo)),
      hi === undefined ? '' : constInput(g, fresh, `${stem}_max`, DT.FLOAT, [], Float32Array.of(hi))];
    while (n.input.length > 1 && n.input[n.input.length - 1] === '') n.input.pop();
    dropAttr(n, 'min', 'max');
    return undefined;
  } },
  // Pad-2: pads/value attributes → inputs (Pad-11)
  Pad: { below: 11, run: (n, g, fresh) => {
    const pads = ints(n, 'pads');
    if (!pads) return 'Pad without pads';
    const value = getAttr(n, 'value')?.f ?? 0;
    const stem = n.name || n.output[0];
    n.input = [n.input[0], constInput(g, fresh, `${stem}_pads`, DT.INT64, [pads.length], BigInt64Array.from(pads.map(BigInt))), constInput(g, fresh, `${stem}_value`, DT.FLOAT, [], Float32Array.of(value))];
    dropAttr(n, 'pads', 'value');
    return undefined;
  } },
  // Dropout is the identity at inference; its ratio moved to an optional input at 12.
  Dropout: { below: 12, run: (n) => { dropAttr(n, 'ratio', 'is_test', 'consumed_inputs'); n.output = n.output.slice(0, 1); return undefined; } },
  // Before 13 Softmax flattened to 2-D at `axis` (default 1); at 13 it works along `axis` (default -1). The two
  // agree when the axis is the last one, which is only certain when the model says -1.
  Softmax: { below: 13, run: (n) => fixSoftmaxAxis(n) },
  LogSoftmax: { below: 13, run: (n) => fixSoftmaxAxis(n) },
  Hardmax: { below: 13, run: (n) => fixSoftmaxAxis(n) },
  // BatchNormalization-7 had `spatial` (1 = the only behaviour kept later)
  BatchNormalization: { below: 9, run: (n) => {
    if (getAttr(n, 'spatial') && Number(getAttr(n, 'spatial')!.i) !== 1) return 'BatchNormalization with spatial=0';
    dropAttr(n, 'spatial');
    return undefined;
  } },
};

// Only reached when upgradeBlocker found the axis to be the last one: say so explicitly at 13 (-1).
function fixSoftmaxAxis(n: NodeProto): string | undefined {
  dropAttr(n, 'axis');
  n.attribute.push(attr('axis', -1));
  return undefined;
}

function axesToInput(n: NodeProto, g: GraphProto, fresh: (b: string) => string): string | undefined {
  const axes = ints(n, 'axes');
  if (axes) n.input = [n.input[0], constInput(g, fresh, `${n.name || n.output[0]}_axes`, DT.INT64, [axes.length], BigInt64Array.from(axes.map(BigInt)))];
  dropAttr(n, 'axes');
  return undefined;
}

/** Input ranks known from a run (see static.ts), for the Softmax check. */
export type RankOf = (tensor: string) => number | undefined;

function softmaxAxis(n: NodeProto, rankOf?: RankOf): string | undefined {
  const a = getAttr(n, 'axis');
  const axis = a && a.type === AT.INT ? Number(a.i) : 1;
  const rank = rankOf?.(n.input[0]);
  if (axis === -1 || (rank !== undefined && axis === rank - 1)) return undefined;
  return `${n.opType} "${n.name || n.output[0]}" uses the pre-13 axis rule (axis ${a ? axis : 'default 1'}${rank !== undefined ? ` of a rank-${rank} input` : ''}), whose meaning differs at opset 13 unless the axis is the last one`;
}

/** Softmax-family nodes of the main graph that opset 13 would change unless their input ranks say otherwise. */
export function softmaxInputsToProbe(model: OnnxModel): string[] {
  if (opsetVersion(model, '') >= PER_CHANNEL_OPSET) return [];
  return model.proto.graph!.node
    .filter((n) => (n.opType === 'Softmax' || n.opType === 'LogSoftmax' || n.opType === 'Hardmax') && (n.domain === '' || n.domain === 'ai.onnx'))
    .filter((n) => softmaxAxis(n) !== undefined)
    .map((n) => n.input[0]);
}

/** Why the model cannot be raised to opset 13, or undefined when it can (checks only; changes nothing). */
export function upgradeBlocker(model: OnnxModel, rankOf?: RankOf): string | undefined {
  const from = opsetVersion(model, '');
  if (from >= PER_CHANNEL_OPSET) return undefined;
  for (const { graph } of allGraphs(model.proto)) {
    for (const n of graph.node) {
      if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
      // Ranks are only known for main-graph values; bodies see none.
      const why = blocker(n, from, graph === model.proto.graph ? rankOf : undefined);
      if (why) return why;
    }
  }
  return undefined;
}

function blocker(n: NodeProto, from: number, rankOf?: RankOf): string | undefined {
  const conv = CONVERT[n.opType];
  if (conv && from < conv.below) {
    if (n.opType === 'Softmax' || n.opType === 'LogSoftmax' || n.opType === 'Hardmax') return softmaxAxis(n, rankOf);
    if (n.opType === 'Slice' && !(ints(n, 'starts') && ints(n, 'ends'))) return 'a Slice without starts/ends';
    if (n.opType === 'Pad' && !ints(n, 'pads')) return 'a Pad without pads';
    if (n.opType === 'BatchNormalization' && getAttr(n, 'spatial') && Number(getAttr(n, 'spatial')!.i) !== 1) return 'BatchNormalization with spatial=0';
    return undefined;
  }
  const since = SAME_SINCE[n.opType];
  if (since === undefined) return `op ${n.opType} ("${n.name || n.output[0]}") is not known to keep its meaning at opset 13`;
  if (from < since) return `${n.opType} ("${n.name || n.output[0]}") changed between opset ${from} and 13`;
  return undefined;
}

/**
 * Raises the default-domain opset to 13 in place when upgradeBlocker finds nothing; returns the nodes converted.
 * Also raises the IR version to 7 (the first that opset 13 may be used with).
 */
export function upgradeToOpset13(model: OnnxModel, rankOf?: RankOf): { from: number; converted: string[] } {
  const from = opsetVersion(model, '');
  const converted: string[] = [];
  if (from >= PER_CHANNEL_OPSET) return { from, converted };
  const why = upgradeBlocker(model, rankOf);
  if (why) throw new Error(`upgradeToOpset13: ${why}`);
  const used = new Set<string>();
  for (const { graph } of allGraphs(model.proto)) {
    for (const t of graph.initializer) used.add(t.name);
    for (const n of graph.node) for (const v of [...n.input, ...n.output]) used.add(v);
  }
  const fresh = (base: string) => { let s = base; for (let i = 1; used.has(s); i++) s = `${base}_${i}`; used.add(s); return s; };
  for (const { graph } of allGraphs(model.proto)) {
    for (const n of graph.node) {
      if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
      const conv = CONVERT[n.opType];
      if (conv && from < conv.below) {
        conv.run(n, graph, fresh);
        converted.push(`${n.opType} "${n.name || n.output[0]}"`);
      }
    }
  }
  const imp = model.proto.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  if (imp) imp.version = BigInt(PER_CHANNEL_OPSET);
  else model.proto.opsetImport.push(create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(PER_CHANNEL_OPSET) }));
  if (model.proto.irVersion < 7n) model.proto.irVersion = 7n;
  return { from, converted };
}
