// Full-graph float16: compute in fp16 where the graph allows it, for targets with fp16 arithmetic (ARMv8.2+ CPUs with
// the fp16 extension, GPUs). Graph inputs and outputs stay float32 (Casts at the edges), and a block list of ops
// stays float32: numerically touchy ones by default (Softmax, LayerNormalization, sums of squares), shape math
// (float arithmetic on sizes must stay exact) and anything whose types this pass cannot work out.
//
// Values keep their names and float32 types; a value computed in fp16 gets a twin `<name>_fp16`, and a Cast joins the
// two only where a reader needs the other one. So graph outputs, subgraph bodies reading outer values and blocked
// nodes all keep seeing float32, with no renaming anywhere else.
//
// On CPUs this is no faster than fp32: ONNX Runtime has few fp16 CPU kernels and casts around the rest
// (see docs/quantization-weight-only.md for the numbers measured here).
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, AttributeProto_AttributeType as AT, type GraphProto, type NodeProto, type ValueInfoProto } from 'onnx-buf';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, outerReads, pruneUnused } from '../../onnx/graph.js';
import { subgraphsOf } from '../../onnx/walk.js';
import { attr } from '../../onnx/builder.js';
import { makeTensor, readTensor, toFloat32 } from '../../onnx/tensor.js';
import { FP16_MAX, toFloat16Array } from '../../onnx/half.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { PassReport } from '../../types.js';
import type { PassOptions } from '../pass.js';
import { nodeKey } from './overrides.js';


/**
 * Ops whose every output has the type T of input `t` (0 unless said) and whose float inputs may all be converted,
 * except the `pinned` input positions, which keep their own type (Resize's roi and scales are float32 whatever T is).
 * `fixed` gives outputs with a type of their own (MaxPool's indices). These are the ops the fp16 pass may convert.
 */
export const FP16_OPS: Record<string, { t?: number; pinned?: number[]; fixed?: Record<number, number> }> = Object.fromEntries([
  ...[
    'Abs', 'Neg', 'Relu', 'LeakyRelu', 'PRelu', 'Elu', 'Selu', 'Celu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh',
    'Softplus', 'Softsign', 'Erf', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Floor', 'Ceil', 'Round', 'Sign', 'Sin', 'Cos',
    'Gelu', 'Mish', 'Identity', 'Clip', 'ThresholdedRelu', 'Shrink',
    'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Mod',
    'MatMul', 'Gemm', 'Conv', 'ConvTranspose', 'Einsum',
    'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'LpPool', 'BatchNormalization', 'InstanceNormalization', 'LRN',
    'LpNormalization', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceSum', 'ReduceProd', 'ReduceL1',
    'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Concat', 'Split', 'Slice', 'Gather', 'GatherElements',
    'GatherND', 'Expand', 'Tile', 'Pad', 'DepthToSpace', 'SpaceToDepth', 'ScatterND', 'ScatterElements',
    'ReverseSequence', 'Compress', 'Trilu', 'CumSum',
    // Softmax-like and normalization ops are here so that a recipe can take them off the block list.
    'Softmax', 'LogSoftmax', 'ReduceSumSquare', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp',
  ].map((op) => [op, {}]),
  ['Resize', { pinned: [1, 2] }],
  ['Upsample', { pinned: [1] }],
  ['Where', { t: 1 }],
  ['MaxPool', { fixed: { 1: DT.INT64 } }],
  ['Dropout', { fixed: { 1: DT.BOOL } }],
  // Mean and InvStdDev follow stash_type (float32 by default), not T.
  ['LayerNormalization', { fixed: { 1: DT.FLOAT, 2: DT.FLOAT } }],
]);

const BOOL_OPS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'NonMaxSuppression']);

function intAttr(node: NodeProto, name: string): number | undefined {
  const a = node.attribute.find((x) => x.name === name);
  return a && a.type === AT.INT ? Number(a.i) : undefined;
}

function declaredType(v: ValueInfoProto | undefined): number | undefined {
  const tv = v?.type?.value;
  return tv?.case === 'tensorType' && tv.value.elemType ? tv.value.elemType : undefined;
}

/** Output element types of one node from its input types; undefined entries are unknown. */
export function outputTypes(node: NodeProto, inType: (i: number) => number | undefined): Array<number | undefined> {
  const n = node.output.length;
  const all = (t: number | undefined) => Array<number | undefined>(n).fill(t);
  if (node.domain !== '' && node.domain !== 'ai.onnx') return all(undefined);
  const op = node.opType;
  const spec = FP16_OPS[op];
  if (spec) return Array.from({ length: n }, (_, k) => spec.fixed?.[k] ?? inType(spec.t ?? 0));
  if (BOOL_OPS.has(op)) return all(DT.BOOL);
  if (INT64_OPS.has(op)) return all(DT.INT64);
  switch (op) {
    case 'Cast': return all(intAttr(node, 'to'));
    case 'CastLike': return all(inType(1));
    case 'Constant': {
      const a = node.attribute.find((x) => x.name === 'value' && x.type === AT.TENSOR);
      if (a?.t) return all(a.t.dataType);
      if (node.attribute.some((x) => x.name === 'value_float' || x.name === 'value_floats')) return all(DT.FLOAT);
      if (node.attribute.some((x) => x.name === 'value_int' || x.name === 'value_ints')) return all(DT.INT64);
      return all(undefined);
    }
    case 'ConstantOfShape': {
      const a = node.attribute.find((x) => x.name === 'value' && x.type === AT.TENSOR);
      return all(a?.t ? a.t.dataType : DT.FLOAT);
    }
    case 'TopK': return [inType(0), DT.INT64];
    case 'Unique': return [inType(0), DT.INT64, DT.INT64, DT.INT64].slice(0, n);
    case 'Range': return all(inType(0));
    case 'OneHot': return all(inType(2));
    case 'EyeLike': return all(intAttr(node, 'dtype') ?? inType(0));
    case 'QuantizeLinear': return all(node.input[2] ? inType(2) : DT.UINT8);
    case 'DequantizeLinear': return all(inType(1));
    case 'DynamicQuantizeLinear': return [DT.UINT8, DT.FLOAT, DT.UINT8];
    case 'MatMulInteger': case 'ConvInteger': return all(DT.INT32);
    case 'LSTM': case 'GRU': case 'RNN': return all(inType(0));
    default: return all(undefined);
  }
}

/** Element type of every value of the main graph that can be worked out. */
export function inferElemTypes(graph: GraphProto): Map<string, number> {
  const types = new Map<string, number>();
  const declared = new Map<string, ValueInfoProto>();
  for (const v of [...graph.valueInfo, ...graph.output]) declared.set(v.name, v);
  for (const i of graph.input) { const t = declaredType(i); if (t) types.set(i.name, t); }
  for (const t of graph.initializer) if (!types.has(t.name)) types.set(t.name, t.dataType);
  // ONNX requires nodes in topological order, so one pass in file order sees every producer first.
  for (const node of graph.node) {
    const outs = outputTypes(node, (i) => (node.input[i] ? types.get(node.input[i]) : undefined));
    node.output.forEach((o, k) => {
      if (!o) return;
      const t = outs[k] ?? declaredType(declared.get(o));
      if (t) types.set(o, t);
    });
  }
  return types;
}

/** Ops kept float32 unless recipe.exclude.ops names another list. */
export const DEFAULT_FP32_OPS = ['Softmax', 'LogSoftmax', 'LayerNormalization', 'ReduceSumSquare', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp'];


export interface Fp16GraphOptions extends Pick<PassOptions, 'excludeNodes'> {
  /** op types kept float32 (default DEFAULT_FP32_OPS) */
  keepOps?: string[];
}

/** Converts the main graph to float16 compute in place; see the file's header for the scheme. */
export function convertGraphFp16(model: OnnxModel, opts: Fp16GraphOptions = {}): PassReport {
  const report: PassReport = { pass: 'fp16-graph', changed: [], skipped: [] };
  const g = model.proto.graph!;
  const idx = new GraphIndex(g);
  const types = inferElemTypes(g);
  const keep = new Set(opts.keepOps ?? DEFAULT_FP32_OPS);
  const shapeMath = shapeValues(g, idx);
  const isFloat = (v: string) => Boolean(v) && types.get(v) === DT.FLOAT;
  // A constant that float16 cannot hold (BatchNorm variances of 1e7 are real) keeps its readers in float32:
  // clamping it would silently change what the layer computes.
  const rangeCache = new Map<string, boolean>();
  const outOfRange = (v: string) => {
    let r = rangeCache.get(v);
    if (r === undefined) {
      const c = idx.constantTensor(v);
      r = c ? toFloat32(readTensor(c.tensor, model.dir)).some((x) => Number.isFinite(x) && Math.abs(x) > FP16_MAX) : false;
      rangeCache.set(v, r);
    }
    return r;
  };

  const fp16 = new Set<NodeProto>();
  for (const node of g.node) {
    const name = nodeKey(node);
    const skip = (why: string) => report.skipped.push({ node: name, op: node.opType, why });
    if (subgraphsOf(node).length > 0) { skip('subgraph bodies stay float32'); continue; }
    const spec = FP16_OPS[node.opType];
    if (!spec || (node.domain !== '' && node.domain !== 'ai.onnx')) {
      if (node.opType !== 'Cast' && node.opType !== 'Constant' && node.output.some(isFloat)) skip('no fp16 rule for this op: kept float32');
      continue;
    }
    if (!isFloat(node.input[spec.t ?? 0])) continue; // not float32 compute: nothing to convert
    if (keep.has(node.opType)) skip('op on the fp32 block list (recipe.exclude.ops replaces the default list)');
    else if (opts.excludeNodes?.includes(name)) skip('excluded by the recipe');
    else if (node.input.some((i) => i && !types.has(i))) skip('an input has a type this pass cannot work out');
    else if (node.output.some((o) => shapeMath.has(o))) skip('computes a shape: kept float32 so that sizes stay exact');
    else {
      const big = node.input.find((i) => i && isFloat(i) && outOfRange(i));
      if (big) skip(`constant "${big}" holds values beyond float16's range (±${FP16_MAX})`);
      else fp16.add(node);
    }
  }

  const names = usedNames(g);
  const twins = new Map<string, string>();
  const twin = (v: string) => {
    let t = twins.get(v);
    if (!t) { t = fresh(names, `${v}_fp16`); twins.set(v, t); }
    return t;
  };
  const needTwin = new Set<string>();
  const needOrig = new Set<string>(g.output.map((o) => o.name));
  const producedTwin = new Set<string>();
  for (const node of g.node) {
    if (!fp16.has(node)) {
      for (const v of [...node.input, ...outerReads(node)]) if (v) needOrig.add(v);
      continue;
    }
    const spec = FP16_OPS[node.opType];
    node.input = node.input.map((v, i) => {
      if (!v) return v;
      if (!isFloat(v) || spec.pinned?.includes(i)) { needOrig.add(v); return v; }
      needTwin.add(v);
      return twin(v);
    });
    node.output = node.output.map((o, k) => {
      if (!o || !isFloat(o) || spec.fixed?.[k] !== undefined) return o;
      producedTwin.add(o);
      return twin(o);
    });
    report.changed.push({ node: nodeKey(node), op: node.opType, what: 'computes in float16' });
  }

  // Casts go right after the producer of their input (graph inputs: first), so file order stays topological.
  const after = new Map<NodeProto | undefined, NodeProto[]>();
  const castAfter = (producer: NodeProto | undefined, from: string, to: string, dtype: number) => {
    const list = after.get(producer) ?? [];
    list.push(create(NodeProtoSchema, { opType: 'Cast', name: fresh(names, `${to}_Cast`), input: [from], output: [to], attribute: [attr('to', dtype)] }));
    after.set(producer, list);
  };
  let casts = 0, constants = 0, bytes32 = 0;
  for (const v of producedTwin) {
    if (needOrig.has(v)) { castAfter(idx.producer.get(v), twin(v), v, DT.FLOAT); casts++; }
  }
  for (const v of needTwin) {
    if (producedTwin.has(v)) continue;
    const c = idx.constantTensor(v);
    if (c) {
      const values = toFloat32(readTensor(c.tensor, model.dir));
      g.initializer.push(makeTensor(twin(v), DT.FLOAT16, c.tensor.dims.map(Number), toFloat16Array(values)));
      constants++;
      bytes32 += 4 * values.length;
      continue;
    }
    const p = idx.producer.get(v);
    const toAttr = p?.opType === 'Cast' ? p.attribute.find((a) => a.name === 'to' && a.type === AT.INT) : undefined;
    if (p && toAttr && !needOrig.has(v)) {
      // A Cast to float32 that only fp16 nodes read can cast straight to float16.
      toAttr.i = BigInt(DT.FLOAT16);
      p.output = p.output.map((o) => (o === v ? twin(v) : o));
      continue;
    }
    castAfter(p, v, twin(v), DT.FLOAT16);
    casts++;
  }
  const order: NodeProto[] = [...(after.get(undefined) ?? [])];
  for (const n of g.node) order.push(n, ...(after.get(n) ?? []));
  g.node = order;
  pruneUnused(g);

  if (fp16.size > 0) {
    report.changed.push({
      node: '(graph)', op: 'fp16',
      what: `${fp16.size} nodes compute in float16, ${casts} Casts at float32 boundaries, ${constants} constants stored as float16 (${bytes32} → ${bytes32 / 2} bytes); graph inputs and outputs stay float32`,
    });
  }
  return report;
}

// Ops that move or size data rather than compute with it: their output holds shape numbers only when their data
// input (input 0) does. Expand(embedding, shape) is data; Gather(Shape(x), 0) is a size.
const DATA_MOVERS = new Set(['Slice', 'Gather', 'Reshape', 'Expand', 'Tile', 'Pad', 'Resize', 'Squeeze', 'Unsqueeze', 'Transpose', 'Flatten', 'Identity']);

/** Values that hold sizes: Shape/Size outputs and what is computed from them alone (constants aside). */
function shapeValues(g: GraphProto, idx: GraphIndex): Set<string> {
  const s = new Set<string>();
  for (const node of g.node) {
    let derived: boolean;
    if (node.opType === 'Shape' || node.opType === 'Size') derived = true;
    else if (node.opType === 'ConstantOfShape') derived = false;
    else if (DATA_MOVERS.has(node.opType)) derived = s.has(node.input[0]);
    else {
      const dynamic = node.input.filter((i) => i && !idx.constantTensor(i));
      derived = dynamic.length > 0 && dynamic.every((i) => s.has(i));
    }
    if (derived) for (const o of node.output) if (o) s.add(o);
  }
  return s;
}

function usedNames(g: GraphProto): Set<string> {
  const used = new Set<string>();
  const visit = (x: GraphProto) => {
    for (const n of x.node) {
      for (const v of [...n.input, ...n.output]) used.add(v);
      used.add(n.name);
      for (const s of subgraphsOf(n)) visit(s.graph);
    }
    for (const t of x.initializer) used.add(t.name);
    for (const v of [...x.input, ...x.output, ...x.valueInfo] as ValueInfoProto[]) used.add(v.name);
  };
  visit(g);
  return used;
}

function fresh(used: Set<string>, base: string): string {
  let name = base;
  for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
  used.add(name);
  return name;
}

/** The recipe's full-graph fp16 step. recipe.exclude.ops, when it names ops, replaces the default block list. */
export function fp16GraphStep(model: OnnxModel, exclude: PassOptions): { passes: PassReport[]; warnings: string[] } {
  const keepOps = exclude.excludeOps?.length ? exclude.excludeOps : DEFAULT_FP32_OPS;
  const pass = convertGraphFp16(model, { excludeNodes: exclude.excludeNodes, keepOps });
  return {
    passes: [pass],
    warnings: ['full-graph fp16 pays off only where the hardware computes in fp16 (ARMv8.2 fp16 cores, GPUs); on CPUs ONNX Runtime lacks fp16 kernels for most ops and casts around them, so expect no speed-up over fp32 (measured 1.00× on YOLOX-nano, x86) and a longer load'],
  };
}
