// Exporters often keep a weight in another form than the layer reads it: CNTK's mnist-12 Reshapes its MatMul weight
// in the graph, and fp16-stored models (edgetune's own `fp16` output among them) Cast every weight back to float32.
// ONNX Runtime folds such chains at load, but a pass reading the graph sees a weight that is "not a constant" and
// skips the layer. So before the steps run, shape-only ops and Casts to float32 applied to float constants are
// folded into initializers; at the end, if the input stored its weights as fp16, the float weights of the result are
// stored as fp16 again, so the file keeps the precision it came with. Other constant folding (integer shape
// arithmetic, real compute) stays ONNX Runtime's job.
import type { GraphProto, NodeProto } from 'onnx-buf';
import { DT, type TypedArray } from '../onnx/dtype.js';
import { GraphIndex, insertNodes, intAttr, intsAttr, isDefaultDomain, outerReads, removeInitializer, removeNodes, uniqueName } from '../onnx/graph.js';
import { FP16_MAX, toFloat16Array } from '../onnx/half.js';
import { elementCount, makeTensor, readTensor, toFloat32, type TensorData } from '../onnx/tensor.js';
import { castNode, MIN_FP16_ELEMENTS } from './quantize/fp16.js';

const FOLDABLE = new Set(['Identity', 'Cast', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Transpose']);

export interface FoldedWeight {
  /** the value the layer reads, now an initializer */
  weight: string;
  /** the ops folded, from the constant down */
  ops: string[];
  /** the constant's dtype before folding (FLOAT16 ones are stored as fp16 again if nothing changes them) */
  fromDtype: number;
}

/** Reshape's output dims for a known input shape (0 copies a dim unless allowzero, -1 is inferred), or undefined. */
export function reshapedDims(inDims: readonly number[], shape: readonly number[], allowZero: boolean): number[] | undefined {
  const out = shape.map((s, i) => (s === 0 && !allowZero ? inDims[i] : s));
  if (out.some((d) => d === undefined || d < -1) || out.filter((d) => d === -1).length > 1) return undefined;
  const total = elementCount(inDims);
  const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  if (out.includes(-1)) {
    if (known === 0 || total % known !== 0) return undefined;
    return out.map((d) => (d === -1 ? total / known : d));
  }
  return known === total ? out : undefined;
}

/** `data` with its axes permuted (ONNX Transpose; an empty perm reverses them). */
export function transposeData(t: TensorData, perm: readonly number[]): TensorData {
  const r = t.dims.length;
  const p = perm.length ? perm : t.dims.map((_, i) => r - 1 - i);
  const outDims = p.map((a) => t.dims[a]);
  const inStride = new Array<number>(r).fill(1);
  for (let i = r - 2; i >= 0; i--) inStride[i] = inStride[i + 1] * t.dims[i + 1];
  const stride = p.map((a) => inStride[a]);
  const src = t.data as unknown as { length: number; [i: number]: number | bigint };
  const out = new (t.data.constructor as new (n: number) => TypedArray)(t.data.length) as unknown as { [i: number]: number | bigint };
  const idx = new Array<number>(r).fill(0);
  for (let o = 0, off = 0; o < src.length; o++) {
    out[o] = src[off];
    // Odometer over the output index, keeping the source offset in step.
    for (let d = r - 1; d >= 0; d--) {
      idx[d]++; off += stride[d];
      if (idx[d] < outDims[d]) break;
      off -= stride[d] * outDims[d]; idx[d] = 0;
    }
  }
  return { dtype: t.dtype, dims: outDims, data: out as unknown as TypedArray };
}

type Consts = (name: string) => TensorData | undefined;

/** Axes of a Squeeze/Unsqueeze: the second input (opset ≥ 13) or the attribute. */
function axesOf(n: NodeProto, consts: Consts): number[] | undefined | null {
  if (n.input[1]) {
    const c = consts(n.input[1]);
    return c ? Array.from(c.data as BigInt64Array, Number) : null;
  }
  return intsAttr(n, 'axes');
}

/** One folding step, or undefined when the node cannot be folded (a non-constant parameter, a non-float Cast…). */
function foldStep(n: NodeProto, t: TensorData, consts: Consts): TensorData | undefined {
  const r = t.dims.length;
  const norm = (a: number, rank: number) => (a < 0 ? a + rank : a);
  switch (n.opType) {
    case 'Identity':
      return t;
    case 'Cast': {
      const to = intAttr(n, 'to', -1);
      if (to !== DT.FLOAT || t.dtype === DT.STRING) return undefined;
      return { dtype: DT.FLOAT, dims: t.dims, data: toFloat32(t) };
    }
    case 'Reshape': {
      const s = n.input[1] ? consts(n.input[1]) : undefined;
      if (!s) return undefined;
      const allowZero = intAttr(n, 'allowzero', 0) === 1;
      const dims = reshapedDims(t.dims, Array.from(s.data as BigInt64Array, Number), allowZero);
      return dims && { ...t, dims };
    }
    case 'Flatten': {
      const axis = norm(intAttr(n, 'axis', 1), r);
      if (axis < 0 || axis > r) return undefined;
      return { ...t, dims: [elementCount(t.dims.slice(0, axis)), elementCount(t.dims.slice(axis))] };
    }
    case 'Squeeze': {
      const axes = axesOf(n, consts);
      if (axes === null) return undefined;
      const drop = new Set((axes ?? t.dims.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => norm(a, r)));
      if ([...drop].some((a) => t.dims[a] !== 1)) return undefined;
      return { ...t, dims: t.dims.filter((_, i) => !drop.has(i)) };
    }
    case 'Unsqueeze': {
      const axes = axesOf(n, consts);
      if (!axes) return undefined;
      const outRank = r + axes.length;
      const add = new Set(axes.map((a) => norm(a, outRank)));
      if (add.size !== axes.length || [...add].some((a) => a < 0 || a >= outRank)) return undefined;
      const dims: number[] = [];
      for (let i = 0, k = 0; i < outRank; i++) dims.push(add.has(i) ? 1 : t.dims[k++]);
      return { ...t, dims };
    }
    case 'Transpose': {
      const perm = intsAttr(n, 'perm') ?? [];
      if (perm.length && (perm.length !== r || new Set(perm).size !== r || perm.some((p) => p < 0 || p >= r))) return undefined;
      return transposeData(t, perm);
    }
    default:
      return undefined;
  }
}

/** A value computed from constants only by foldable nodes, if any (for skip reasons). */
function chainTo(value: string, idx: GraphIndex): NodeProto | undefined {
  const p = idx.producer.get(value);
  if (!p || !isDefaultDomain(p) || !FOLDABLE.has(p.opType)) return undefined;
  return p.input.every((i) => !i || idx.constantTensor(i) || chainTo(i, idx)) ? p : undefined;
}

const FLOAT_TYPES = new Set<number>([DT.FLOAT, DT.FLOAT16, DT.BFLOAT16, DT.DOUBLE]);

/**
 * Folds, in place, the shape-only ops (Identity, Reshape, Flatten, Squeeze, Unsqueeze, Transpose) and Casts to
 * float32 whose data is a float constant, so that every float32 value computed from constants this way becomes an
 * initializer. This is how a weight stored as fp16 (+ Cast) or Reshaped in the graph becomes visible to the passes.
 * Shape computations on integer tensors and every other op are left as they are.
 */
export function foldConstantWeights(g: GraphProto, baseDir?: string): FoldedWeight[] {
  const idx = new GraphIndex(g);
  const values = new Map<string, { t: TensorData; from: number; ops: string[] }>();
  const constant = (name: string): TensorData | undefined => {
    const v = values.get(name);
    if (v) return v.t;
    const c = idx.constantTensor(name);
    return c && readTensor(c.tensor, baseDir);
  };
  const removed = new Set<NodeProto>();
  for (const n of idx.topoOrder()) {
    if (!isDefaultDomain(n) || !FOLDABLE.has(n.opType) || !n.input[0] || idx.graphOutputs.has(n.output[0])) continue;
    const src = constant(n.input[0]);
    if (!src || !FLOAT_TYPES.has(src.dtype)) continue;
    const t = foldStep(n, src, constant);
    // A step ONNX Runtime would reject is left for the passes (and verification) to report.
    if (!t || !FLOAT_TYPES.has(t.dtype)) continue;
    const prev = values.get(n.input[0]);
    values.set(n.output[0], { t, from: prev?.from ?? src.dtype, ops: [...(prev?.ops ?? []), n.opType] });
    removed.add(n);
  }
  if (!removed.size) return [];
  // Keep only the values something that stays still reads: the ends of the chains.
  const folded: FoldedWeight[] = [];
  const reads = new Set(g.node.filter((n) => !removed.has(n)).flatMap((n) => [...n.input, ...outerReads(n)]));
  for (const [name, v] of values) {
    if (!reads.has(name)) continue;
    if (v.t.dtype !== DT.FLOAT) {
      // Reshaped but still fp16 (a Cast further down was not folded): keep the value, it is only renamed data.
      g.initializer.push(makeTensor(name, v.t.dtype, v.t.dims, v.t.data));
      continue;
    }
    g.initializer.push(makeTensor(name, DT.FLOAT, v.t.dims, v.t.data as Float32Array));
    folded.push({ weight: name, ops: v.ops, fromDtype: v.from });
  }
  removeNodes(g, removed);
  removeUnread(g, new Set([...removed].flatMap((n) => n.input.filter(Boolean))));
  return folded;
}

/** Removes the initializers and Constant nodes among `names` that nothing reads any more. */
function removeUnread(g: GraphProto, names: Set<string>): void {
  const idx = new GraphIndex(g);
  const dead = (v: string) => names.has(v) && !idx.consumersOf(v).length && !idx.graphOutputs.has(v);
  removeNodes(g, g.node.filter((n) => n.opType === 'Constant' && dead(n.output[0])));
  for (const t of [...g.initializer]) if (dead(t.name) && !idx.graphInputs.has(t.name)) removeInitializer(g, t.name);
}

/** Inputs that hold a layer's weights or bias, by op type (default domain). */
const WEIGHT_INPUTS: Record<string, number[]> = { Conv: [1, 2], ConvTranspose: [1, 2], Gemm: [1, 2], MatMul: [1], Gather: [0] };

/**
 * When the input stored its weights as float16 (some folded weight came from fp16), stores the float32 weights of the
 * result as float16 again (plus a Cast), so folding for the passes' sake keeps the precision the model came with:
 * the folded weights no step touched come back bit-identical, and weights a step wrote (pruning's refit, low-rank
 * factors, a BatchNormalization folded into a conv) are rounded to fp16 as the input stored them; verification
 * then scores the file as written. Left float32: initializers the input itself stored as float32 (`inputFloat`),
 * values beyond fp16's range, tiny tensors, and anything read other than as a Conv/ConvTranspose/Gemm/MatMul weight or
 * bias or a Gather table (quantization scales, say). Returns how many were stored as fp16.
 */
export function restoreFp16Storage(g: GraphProto, folded: readonly FoldedWeight[], inputFloat: ReadonlySet<string>): number {
  const fromFp16 = new Set(folded.filter((f) => f.fromDtype === DT.FLOAT16).map((f) => f.weight));
  if (!fromFp16.size) return 0;
  const idx = new GraphIndex(g);
  const asWeight = (name: string) => {
    const readers = idx.consumersOf(name);
    return readers.length > 0 && readers.every((n) => isDefaultDomain(n) && (WEIGHT_INPUTS[n.opType] ?? []).some((i) => n.input[i] === name) &&
      n.input.every((x, i) => x !== name || WEIGHT_INPUTS[n.opType].includes(i)));
  };
  const casts: NodeProto[] = [];
  for (const t of [...g.initializer]) {
    if (t.dataType !== DT.FLOAT || inputFloat.has(t.name) || idx.graphInputs.has(t.name) || idx.graphOutputs.has(t.name) || !asWeight(t.name)) continue;
    const now = readTensor(t).data as Float32Array;
    if ((!fromFp16.has(t.name) && now.length < MIN_FP16_ELEMENTS) || !now.every((v) => Math.abs(v) <= FP16_MAX)) continue;
    const half = uniqueName(g, `${t.name}_fp16`);
    g.initializer[g.initializer.indexOf(t)] = makeTensor(half, DT.FLOAT16, t.dims.map(Number), toFloat16Array(now));
    casts.push(castNode(half, t.name));
  }
  insertNodes(g, casts, g.node[0]);
  return casts.length;
}

/** Whether a value is computed from constants alone (by any ops), looking at most `depth` producers up. */
function fromConstants(value: string, idx: GraphIndex, depth = 8): boolean {
  if (idx.constantTensor(value)) return true;
  const p = idx.producer.get(value);
  if (!p || depth === 0 || idx.graphInputs.has(value) || outerReads(p).length) return false;
  return p.input.every((i) => !i || fromConstants(i, idx, depth - 1));
}

/** Why a weight input is not a constant, naming what produces it, for skip reasons. */
export function whyNotConstant(name: string, idx: GraphIndex): string {
  if (idx.graphInputs.has(name)) return `weight "${name}" is a graph input, supplied at run time: it stays fp32`;
  const p = idx.producer.get(name);
  if (!p) return `weight "${name}" is not a constant`;
  const by = `${p.opType} "${p.name || p.output[0]}"`;
  if (p.opType === 'DequantizeLinear') return `weight "${name}" is already quantized (it comes from ${by}); quantize the float model instead`;
  if (chainTo(name, idx)) return `weight "${name}" is computed from a constant by ${by} in a form edgetune does not fold (not float32, or a shape ONNX would reject)`;
  if (fromConstants(name, idx)) return `weight "${name}" is computed from constants by ${by}, which edgetune does not fold (ONNX Runtime does, at load): it stays fp32`;
  return `weight "${name}" is computed at run time by ${by}, not a constant: dynamic weights stay fp32`;
}
