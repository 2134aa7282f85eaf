// Some exporters (CNTK's mnist-12 among them) keep a weight in one shape and Reshape it inside the graph before the
// MatMul/Gemm/Conv that reads it. ONNX Runtime folds that at load, but a quantizer reading the graph sees a weight
// that is "not a constant" and skips the layer. Folding such a Reshape into an initializer first lets every
// quantization mode see the weight. Only Reshapes feeding a weight input are folded: general constant folding is
// ONNX Runtime's job, not ours.
import type { GraphProto, NodeProto } from 'onnx-buf';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, isDefaultDomain as isDefault, removeInitializer, removeNodes } from '../../onnx/graph.js';
import { elementCount, makeTensor, readTensor } from '../../onnx/tensor.js';

const WEIGHT_READERS = new Set(['MatMul', 'Gemm', 'Conv']);

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

/** Folds, in place, each Reshape(constant float weight, constant shape) read as a weight. Returns the weights made. */
export function foldWeightReshapes(g: GraphProto, baseDir?: string): string[] {
  const folded: string[] = [];
  const tried = new Set<string>();
  for (;;) {
    const idx = new GraphIndex(g);
    const node = g.node.find((n) => {
      if (!isDefault(n) || n.opType !== 'Reshape' || idx.graphOutputs.has(n.output[0])) return false;
      const readers = idx.consumersOf(n.output[0]);
      return readers.length > 0 && readers.some((r) => WEIGHT_READERS.has(r.opType) && r.input[1] === n.output[0]) &&
        idx.constantTensor(n.input[0])?.tensor.dataType === DT.FLOAT && idx.constantTensor(n.input[1]) !== undefined && !tried.has(n.output[0]);
    });
    if (!node) return folded;
    tried.add(node.output[0]);
    const src = idx.constantTensor(node.input[0])!;
    const data = readTensor(src.tensor, baseDir);
    const shape = Array.from(readTensor(idx.constantTensor(node.input[1])!.tensor).data as BigInt64Array, Number);
    const allowZero = Number(node.attribute.find((a) => a.name === 'allowzero')?.i ?? 0) === 1;
    const dims = reshapedDims(data.dims, shape, allowZero);
    // A shape that does not fit would fail in ORT too; leave it for verification to report.
    if (!dims) continue;
    g.initializer.push(makeTensor(node.output[0], DT.FLOAT, dims, data.data));
    removeNodes(g, [node]);
    const left = new GraphIndex(g);
    for (const name of [node.input[0], node.input[1]]) {
      if (left.consumersOf(name).length || left.graphOutputs.has(name)) continue;
      if (left.initializers.has(name) && !left.graphInputs.has(name)) removeInitializer(g, name);
      const p = left.producer.get(name);
      if (p && p.opType === 'Constant') removeNodes(g, [p]);
    }
    folded.push(node.output[0]);
  }
}
