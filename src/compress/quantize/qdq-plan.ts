// Which nodes of the main graph get QDQ pairs, and which tensors need activation ranges. Pure.
//
// ONNX Runtime turns a QDQ group (DequantizeLinear on every float input → op → QuantizeLinear on its output) into one
// integer kernel: Conv → QLinearConv, MatMul → QLinearMatMul (MatMulIntegerToFloat without an output Q),
// Gemm → QGemm, Add/Mul → QLinearAdd/Mul, Concat → QLinearConcat, AveragePool/GlobalAveragePool/LeakyRelu/Sigmoid →
// their QLinear forms, and it drops the pairs around data-movement ops (MaxPool, Reshape, Transpose, …) whose input
// and output share parameters. A Relu or Clip right after a quantized op is absorbed by the Q that follows it.
// QDQ around an op that fuses into nothing only adds work, so:
//   - Conv/MatMul/Gemm with constant weights are always quantized (they carry the compute);
//   - linking ops (Add, Mul, Concat, pools, Sigmoid, data movement) only when a quantized op feeds them, so int8
//     regions grow downstream across them instead of bouncing between int8 and float, and only when they lead on to
//     another quantized Conv/MatMul/Gemm (a region's tail before the graph outputs stays float);
//   - convs too shallow for int8 GEMM (first layers: 1 or 3 input channels) stay fp32;
//   - graph outputs are never quantized (their consumers expect full precision).
import type { GraphProto, NodeProto } from 'onnx-buf';
import { AttributeProto_AttributeType as AT } from 'onnx-buf';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, intAttr, isDefaultDomain as isDefault } from '../../onnx/graph.js';
import { subgraphsOf } from '../../onnx/walk.js';
import type { PassReport } from '../../types.js';
import type { NodeOverride } from './overrides.js';
import { whyNotConstant } from '../fold-weights.js';

export type Role = 'core' | 'binary' | 'variadic' | 'unary' | 'shared';

const ROLES: Record<string, Role> = {
  Conv: 'core', MatMul: 'core', Gemm: 'core',
  Add: 'binary', Mul: 'binary',
  Concat: 'variadic',
  AveragePool: 'unary', GlobalAveragePool: 'unary', LeakyRelu: 'unary', Sigmoid: 'unary',
  MaxPool: 'shared', Resize: 'shared', Reshape: 'shared', Flatten: 'shared', Transpose: 'shared', Squeeze: 'shared',
  Unsqueeze: 'shared', Slice: 'shared', Gather: 'shared', Expand: 'shared', Tile: 'shared',
};
/** Activations a preceding quantized op absorbs (the Q's clamp does their work). */
const ABSORBED = new Set(['Relu', 'Clip']);
/** Why a linking op after the last int8 compute op stays fp32 (static.ts reports it from the plan before calibration). */
export const PAST_LAST_INT8 = 'no int8 Conv/MatMul/Gemm follows it: past the last one, int8 saves no time and rounds the outputs, so it stays fp32';
/** Ops with no integer kernel in ONNX Runtime's CPU provider, reported when they hold weights. */
const NO_INT8_KERNEL = new Set(['ConvTranspose']);

export interface WeightPlan {
  input: number;
  /** channel axis for per-channel scales; undefined = per tensor */
  axis: number | undefined;
}

export interface NodePlan {
  node: NodeProto;
  role: Role;
  weight?: WeightPlan;
  /** input index of a constant bias to store as int32 */
  bias?: number;
  /** input indices of other constant operands (Add/Mul/Concat), quantized per tensor */
  constants: number[];
}

export interface QdqPlan {
  nodes: NodePlan[];
  /** tensors that get their own calibrated range and a Q/DQ pair */
  activations: string[];
  /** tensor → the tensor whose parameters it reuses (outputs of data-movement ops) */
  shared: Map<string, string>;
  skipped: PassReport['skipped'];
}

/** The nodes a plan quantizes itself (Conv/MatMul/Gemm …), not the linking ops that follow them. */
export function coreNodes(plan: Pick<QdqPlan, 'nodes'>): Set<NodeProto> {
  return new Set(plan.nodes.filter((p) => p.role === 'core').map((p) => p.node));
}

export interface PlanOptions {
  perChannel: boolean;
  excludeOps?: string[];
  excludeNodes?: string[];
  /** the recipe's per-node / per-op override for a node (overrides.ts) */
  override?: (node: NodeProto) => NodeOverride;
  /**
   * Convs whose reduction depth (input channels per group × kernel area) is below this stay fp32 (default 32):
   * im2col int8 GEMM over K=9 (a 1-channel 3×3) or K=27 (RGB 3×3) runs 2-3× slower than ORT's fp32 NCHWc conv.
   */
  minConvDepth?: number;
  /** quantize depthwise convs (default true; recipe.quantize.depthwise) */
  depthwise?: boolean;
  /** tensors that may be quantized; default: every tensor statically known to be float32 */
  available?: Set<string>;
  /** nodes (by name) to keep float after calibration, with the reason for the report */
  keepFloat?: Map<string, string>;
}

const nameOf = (n: NodeProto) => n.name || n.output[0];


/** Element types of main-graph values, as far as the graph says without running it (float32 is all we need). */
export function staticElemTypes(g: GraphProto, idx: GraphIndex): Map<string, number> {
  const t = new Map<string, number>();
  for (const i of g.input) if (i.type?.value.case === 'tensorType') t.set(i.name, i.type.value.value.elemType);
  for (const init of g.initializer) t.set(init.name, init.dataType);
  for (const n of idx.topoOrder()) {
    const first = n.input.map((x) => t.get(x)).find((x) => x !== undefined);
    const set = (dt: number | undefined) => { if (dt !== undefined) for (const o of n.output) if (o) t.set(o, dt); };
    if (!isDefault(n)) { if (n.opType === 'DequantizeLinear') set(DT.FLOAT); continue; }
    switch (n.opType) {
      case 'Shape': case 'Size': case 'NonZero': case 'ArgMax': case 'ArgMin': case 'NonMaxSuppression': set(DT.INT64); break;
      case 'Cast': set(intAttr(n, 'to', 0)); break;
      case 'Equal': case 'Less': case 'Greater': case 'LessOrEqual': case 'GreaterOrEqual': case 'Not': case 'And': case 'Or':
      case 'Xor': case 'IsNaN': case 'IsInf': set(DT.BOOL); break;
      case 'Constant': set(n.attribute.find((a) => a.name === 'value' && a.type === AT.TENSOR)?.t?.dataType); break;
      case 'ConstantOfShape': set(n.attribute.find((a) => a.name === 'value')?.t?.dataType ?? DT.FLOAT); break;
      case 'DequantizeLinear': set(DT.FLOAT); break;
      case 'QuantizeLinear': set(t.get(n.input[2]) ?? DT.UINT8); break;
      case 'Where': set(t.get(n.input[1])); break;
      case 'TopK': if (first !== undefined) t.set(n.output[0], first); if (n.output[1]) t.set(n.output[1], DT.INT64); break;
      case 'If': case 'Loop': case 'Scan': break;
      default: set(first);
    }
  }
  return t;
}

/** Plans QDQ for the main graph; see the file comment for the rules. */
export function planQdq(g: GraphProto, opts: PlanOptions): QdqPlan {
  const idx = new GraphIndex(g);
  const skipped: PassReport['skipped'] = [];
  const types = opts.available ? undefined : staticElemTypes(g, idx);
  const isFloat = (name: string) => (opts.available ? opts.available.has(name) : types!.get(name) === DT.FLOAT);
  const constFloat = (name: string) => {
    const c = name ? idx.constantTensor(name) : undefined;
    return c && c.tensor.dataType === DT.FLOAT ? c : undefined;
  };
  const isActivation = (name: string) => Boolean(name) && !idx.constantTensor(name) && isFloat(name);
  const candidates = new Map<NodeProto, NodePlan>();

  for (const node of g.node) {
    const subs = subgraphsOf(node);
    if (subs.length) {
      const inner = subs.reduce((k, s) => k + countCompute(s.graph), 0);
      if (inner) skipped.push({ node: nameOf(node), op: node.opType, why: `${inner} Conv/MatMul/Gemm inside its subgraph bodies stay fp32: static quantization covers the main graph only` });
      continue;
    }
    if (!isDefault(node)) continue;
    const role = ROLES[node.opType];
    const skip = (why: string) => skipped.push({ node: nameOf(node), op: node.opType, why });
    if (!role) {
      if (NO_INT8_KERNEL.has(node.opType)) skip('ONNX Runtime has no int8 CPU kernel for it: QDQ here would only add work');
      continue;
    }
    if (opts.excludeOps?.includes(node.opType) || opts.excludeNodes?.includes(nameOf(node))) { if (role === 'core') skip('excluded by the recipe'); continue; }
    const ov = opts.override?.(node);
    if (ov?.skip) { skip(ov.why ?? 'kept fp32 by an override'); continue; }
    const keep = opts.keepFloat?.get(nameOf(node));
    if (keep) { skip(keep); continue; }
    if (ov?.bits !== undefined && ov.bits !== 8) { skip(`${ov.why}, but static quantization is 8-bit only: kept fp32`); continue; }
    if (role === 'core') {
      const p = planCore(node, idx, opts, isActivation, isFloat, constFloat, skip);
      if (p) candidates.set(node, p);
      continue;
    }
    const floats = node.input.filter(Boolean);
    if (role === 'binary' || role === 'variadic') {
      const constants: number[] = [];
      let ok = floats.length > 0;
      node.input.forEach((x, i) => {
        if (!x) return;
        if (constFloat(x)) constants.push(i);
        else if (!isActivation(x)) ok = false;
      });
      if (ok && constants.length < floats.length && isFloat(absorbedOutput(node.output[0], idx) ?? node.output[0])) candidates.set(node, { node, role, constants });
      continue;
    }
    const outOk = role === 'shared' || isFloat(absorbedOutput(node.output[0], idx) ?? node.output[0]);
    if (isActivation(node.input[0]) && outOk && node.output.filter(Boolean).length === 1) candidates.set(node, { node, role, constants: [] });
  }

  // Grow int8 regions from the compute ops across linking ops, until nothing changes.
  const chosen = new Set<NodeProto>([...candidates.values()].filter((p) => p.role === 'core').map((p) => p.node));
  const producerThroughAbsorbed = (tensor: string): NodeProto | undefined => {
    const p = idx.producer.get(tensor);
    if (p && ABSORBED.has(p.opType) && isDefault(p)) return idx.producer.get(p.input[0]);
    return p;
  };
  const consumersThroughAbsorbed = (tensor: string): NodeProto[] => idx.consumersOf(tensor).flatMap((c) => (ABSORBED.has(c.opType) && isDefault(c) ? idx.consumersOf(c.output[0]) : [c]));
  for (let changed = true; changed;) {
    changed = false;
    for (const p of candidates.values()) {
      if (chosen.has(p.node)) continue;
      const out = p.node.output[0];
      if (idx.graphOutputs.has(out)) continue;
      // Only when int8 flows in: an int8 op fed by float producers would need a Q in front and may run slower than
      // float (int8 MaxPool in NCHW layout is ~25x slower than after a QLinearConv, which ORT lays out NHWC).
      const fedInt8 = p.node.input.some((x) => x && chosen.has(producerThroughAbsorbed(x)!));
      if (fedInt8) { chosen.add(p.node); changed = true; }
    }
  }

  // A linking op is worth int8 only on the way to another int8 compute op. Past the last one (a detector's box
  // decoding, a head's reshapes and concats before the outputs) it saves no time and rounds what the model returns:
  // Ultraface's box decode in int8 cost its boxes 7.5 dB of SQNR and ran 1.6 % slower than in fp32.
  const leads = new Set<NodeProto>();
  for (let changed = true; changed;) {
    changed = false;
    for (const n of chosen) {
      if (leads.has(n) || candidates.get(n)!.role === 'core') continue;
      const next = n.output.filter(Boolean).flatMap((o) => consumersThroughAbsorbed(o));
      if (next.some((c) => chosen.has(c) && (candidates.get(c)!.role === 'core' || leads.has(c)))) { leads.add(n); changed = true; }
    }
  }
  for (const n of [...chosen]) {
    if (candidates.get(n)!.role === 'core' || leads.has(n)) continue;
    chosen.delete(n);
    skipped.push({ node: nameOf(n), op: n.opType, why: PAST_LAST_INT8 });
  }

  // Tensors: every float input of a chosen node, and its output (moved past an absorbed Relu/Clip).
  const activations = new Set<string>();
  const shared = new Map<string, string>();
  const nodes: NodePlan[] = [];
  for (const node of g.node) {
    if (!chosen.has(node)) continue;
    const p = candidates.get(node)!;
    nodes.push(p);
    node.input.forEach((x, i) => {
      if (!x || i === p.weight?.input || i === p.bias || p.constants.includes(i)) return;
      if (p.role === 'shared' && i > 0) return; // shape, indices, scales…
      if (p.role === 'core' && i > 0) return;
      activations.add(x);
    });
    const out = node.output[0];
    if (p.role === 'shared') {
      if (!idx.graphOutputs.has(out)) shared.set(out, node.input[0]);
      continue;
    }
    const target = absorbedOutput(out, idx) ?? out;
    if (idx.graphOutputs.has(target)) continue;
    // MatMul/Gemm feeding only float ops keep a float output (MatMulIntegerToFloat / QGemm): one rounding less.
    if ((node.opType === 'MatMul' || node.opType === 'Gemm') && !consumersThroughAbsorbed(out).some((c) => chosen.has(c))) continue;
    activations.add(target);
  }
  for (const s of shared.keys()) activations.delete(s);
  return { nodes, activations: [...activations], shared, skipped };
}

/**
 * Concats whose inputs were calibrated to very different ranges: QLinearConcat gives its output one scale, so the
 * narrow inputs lose their resolution (YOLOX's head joins box logits of ±10 with sigmoid scores in 0..1: at one
 * int8 scale the scores move in steps of 0.08). Such a Concat stays float; each input keeps its own Q/DQ.
 */
export function mixedRangeConcats(plan: QdqPlan, rangeOf: (tensor: string) => { min: number; max: number } | undefined, maxRatio = 8): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of plan.nodes) {
    if (p.node.opType !== 'Concat') continue;
    const widths = p.node.input.flatMap((x, i) => {
      if (!x || p.constants.includes(i)) return [];
      const r = rangeOf(x);
      return r ? [Math.max(Math.abs(r.min), Math.abs(r.max))] : [];
    }).filter((w) => w > 0);
    if (widths.length < 2) continue;
    const lo = Math.min(...widths), hi = Math.max(...widths);
    if (hi / lo > maxRatio) {
      out.set(nameOf(p.node), `its inputs span ±${lo.toPrecision(3)} to ±${hi.toPrecision(3)}: one int8 scale for the joined tensor would flatten the narrow ones, so it stays float`);
    }
  }
  return out;
}

/** The output of a Relu/Clip that is the only reader of `out` (and can be absorbed), else undefined. */
function absorbedOutput(out: string, idx: GraphIndex): string | undefined {
  const cs = idx.consumersOf(out);
  if (cs.length !== 1 || idx.graphOutputs.has(out)) return undefined;
  const c = cs[0];
  if (!ABSORBED.has(c.opType) || !isDefault(c)) return undefined;
  if (c.opType === 'Clip' && c.input.slice(1).some((x) => x && !idx.constantTensor(x))) return undefined;
  return c.output[0];
}

function planCore(
  node: NodeProto, idx: GraphIndex, opts: PlanOptions, isActivation: (n: string) => boolean, isFloat: (n: string) => boolean,
  constFloat: (n: string) => ReturnType<GraphIndex['constantTensor']>, skip: (why: string) => void,
): NodePlan | undefined {
  const [a, w, b] = node.input;
  const wc = idx.constantTensor(w);
  if (!wc) { skip(whyNotConstant(w, idx)); return undefined; }
  if (wc.tensor.dataType !== DT.FLOAT) { skip(`weight "${w}" is ${wc.tensor.dataType === DT.FLOAT16 ? 'float16' : 'not float32'}`); return undefined; }
  const inputOk = () => {
    if (isActivation(a)) return true;
    skip(`input "${a}" ${idx.constantTensor(a) ? 'is a constant' : opts.available ? 'got no activation range (see the calibration notes)' : 'is not known to be float32'}`);
    return false;
  };
  const rank = wc.tensor.dims.length;
  let axis: number | undefined;
  if (node.opType === 'Conv') {
    if (idx.graphOutputs.has(node.output[0]) || idx.graphOutputs.has(absorbedOutput(node.output[0], idx) ?? '')) {
      skip('its output is a graph output: QLinearConv needs a quantized output, so this layer stays fp32');
      return undefined;
    }
    const group = intAttr(node, 'group', 1);
    const dims = wc.tensor.dims.map(Number);
    const depth = dims.slice(1).reduce((x, d) => x * d, 1);
    const depthwise = isDepthwise(group, dims);
    if (depthwise && opts.depthwise === false) { skip('depthwise conv kept fp32 (recipe.quantize.depthwise is false)'); return undefined; }
    if (!depthwise && depth < (opts.minConvDepth ?? 32)) {
      skip(`reduction depth ${depth} (${dims[1]} channel(s) × ${dims.slice(2).join('×')} kernel) is too shallow for int8 GEMM kernels: fp32 is faster`);
      return undefined;
    }
    if (!isFloat(absorbedOutput(node.output[0], idx) ?? node.output[0])) { skip('its output got no activation range (see the calibration notes)'); return undefined; }
    axis = 0;
  } else if (node.opType === 'MatMul') {
    if (rank < 2) { skip(`weight "${w}" has rank ${rank}`); return undefined; }
    axis = rank === 2 ? 1 : undefined;
  } else {
    if (rank !== 2) { skip(`Gemm weight "${w}" has rank ${rank}`); return undefined; }
    axis = intAttr(node, 'transB', 0) === 1 ? 0 : 1;
  }
  if (!inputOk()) return undefined;
  let bias: number | undefined;
  if (b && node.opType !== 'MatMul') {
    const bc = constFloat(b);
    if (!bc) { skip(`bias "${b}" is not a float32 constant`); return undefined; }
    // output channels: Conv's M (weight dim 0); Gemm's N (weight dim 0 with transB, else dim 1)
    const channels = Number(wc.tensor.dims[node.opType === 'Gemm' && intAttr(node, 'transB', 0) !== 1 ? 1 : 0]);
    const n = bc.tensor.dims.reduce((x, d) => x * Number(d), 1);
    if (node.opType === 'Gemm' && !(bc.tensor.dims.length <= 1 && (n === channels || n === 1))) {
      skip(`Gemm bias "${b}" has shape [${bc.tensor.dims.join(',')}]; only a per-column [N] bias becomes int32`);
      return undefined;
    }
    bias = 2;
  }
  return { node, role: 'core', weight: { input: 1, axis: opts.perChannel ? axis : undefined }, bias, constants: [] };
}

function countCompute(g: GraphProto): number {
  let k = 0;
  for (const n of g.node) {
    if (n.opType === 'Conv' || n.opType === 'MatMul' || n.opType === 'Gemm') k++;
    for (const s of subgraphsOf(n)) k += countCompute(s.graph);
  }
  return k;
}

/** A depthwise conv: one filter per channel ([C, 1, kh, kw] weights in C groups). */
function isDepthwise(group: number, weightDims: readonly number[]): boolean {
  return group > 1 && weightDims[1] === 1 && group === weightDims[0];
}

/** How many convs of the main graph are depthwise (weights read through a Cast count too: fp16-stored models). */
export function depthwiseConvCount(g: GraphProto): number {
  const idx = new GraphIndex(g);
  return g.node.filter((n) => {
    if (n.opType !== 'Conv' || !isDefault(n) || !n.input[1]) return false;
    const p = idx.producer.get(n.input[1]);
    const w = idx.constantTensor(n.input[1]) ?? (p && p.opType === 'Cast' && p.input[0] ? idx.constantTensor(p.input[0]) : undefined);
    return w !== undefined && isDepthwise(intAttr(n, 'group', 1), w.tensor.dims.map(Number));
  }).length;
}
