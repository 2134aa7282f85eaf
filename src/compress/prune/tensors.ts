// Constant tensors as the pruning and factorization passes see them: read one by the name a node uses, slice it
// along axes, and point one node input at a new tensor stored the way the old one was (initializer or Constant node).
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, type GraphProto, type NodeProto, type TensorProto } from 'onnx-buf';
import { attr } from '../../onnx/builder.js';
import { allocArray, dtypeInfo, type TypedArray } from '../../onnx/dtype.js';
import type { GraphIndex } from '../../onnx/graph.js';
import { uniqueName } from '../../onnx/graph.js';
import { makeTensor, readTensor, type TensorData } from '../../onnx/tensor.js';

export interface ConstRef {
  name: string;
  tensor: TensorProto;
  source: 'initializer' | 'constant-node';
  node?: NodeProto;
}

/** The constant behind a value name, or undefined when the value is computed at run time (or the name is empty). */
export function constRef(idx: GraphIndex, name: string | undefined): ConstRef | undefined {
  if (!name) return undefined;
  const c = idx.constantTensor(name);
  return c ? { name, ...c } : undefined;
}

export function dimsOf(t: TensorProto): number[] {
  return t.dims.map(Number);
}

/** Row-major strides of a shape. */
export function stridesOf(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

/** Keeps the given indices (in the given order) along one axis. */
export function sliceAxis(t: TensorData, axis: number, keep: readonly number[]): TensorData {
  const dims = t.dims;
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = dims[axis];
  const out = allocLike(t.data, outer * keep.length * inner);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < keep.length; k++) {
      const from = (o * n + keep[k]) * inner;
      const to = (o * keep.length + k) * inner;
      (out as Float32Array).set((t.data as Float32Array).subarray(from, from + inner), to);
    }
  }
  const newDims = [...dims];
  newDims[axis] = keep.length;
  return { dtype: t.dtype, dims: newDims, data: out };
}

function allocLike(a: TypedArray, n: number): TypedArray {
  const Ctor = a.constructor as { new (n: number): TypedArray };
  return new Ctor(n);
}

/** A fresh typed array for a dtype (what makeTensor accepts for it). */
export function allocFor(dtype: number, n: number): TypedArray {
  const info = dtypeInfo(dtype);
  if (!info || info.array === 'string') throw new RangeError(`allocFor: unsupported dtype ${dtype}`);
  return allocArray(info.array, n);
}

/**
 * Points `node.input[input]` at a new tensor holding `data`, stored like `like` was: a new initializer, or a new
 * Constant node placed right after the old one (constants have no inputs, so file order stays topological). The old
 * tensor is left for pruneUnused to drop: other nodes may still read it.
 */
export function replaceInput(graph: GraphProto, node: NodeProto, input: number, like: ConstRef | undefined, data: TensorData, stem: string): string {
  const name = uniqueName(graph, stem);
  const tensor = makeTensor(name, data.dtype, data.dims, data.data);
  addConstant(graph, tensor, like?.source === 'constant-node' ? like.node : undefined);
  while (node.input.length <= input) node.input.push('');
  node.input[input] = name;
  return name;
}

/** Adds a tensor as an initializer, or as a Constant node after `afterConstant` when the model keeps weights that way. */
export function addConstant(graph: GraphProto, tensor: TensorProto, afterConstant?: NodeProto): void {
  if (!afterConstant) {
    graph.initializer.push(tensor);
    return;
  }
  const node = create(NodeProtoSchema, {
    opType: 'Constant', name: uniqueName(graph, `${tensor.name}_Constant`), output: [tensor.name], attribute: [attr('value', tensor)],
  });
  const at = graph.node.indexOf(afterConstant);
  graph.node.splice(at < 0 ? 0 : at + 1, 0, node);
}

/** Reads a constant, dims included; external data is resolved against the model's folder. */
export function readConst(ref: ConstRef, dir?: string): TensorData {
  return readTensor(ref.tensor, dir);
}

export { intAttr, intsAttr } from '../../onnx/graph.js';

export function floatAttr(node: NodeProto, name: string, dflt: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? a.f : dflt;
}

export function stringAttr(node: NodeProto, name: string): string | undefined {
  const a = node.attribute.find((x) => x.name === name);
  return a ? new TextDecoder().decode(a.s) : undefined;
}

/** Sets (or adds) an int attribute. */
export function setIntAttr(node: NodeProto, name: string, v: number): void {
  const a = node.attribute.find((x) => x.name === name);
  if (a) a.i = BigInt(v);
  else node.attribute.push(attr(name, v));
}

/** A node's name for reports: its name, else its first output. */
export function nodeLabel(node: NodeProto): string {
  return node.name || node.output[0] || node.opType;
}

export function isStandard(node: NodeProto): boolean {
  return node.domain === '' || node.domain === 'ai.onnx';
}
