// MatMul + Add(constant bias) on a 2-D input, written as one Gemm before static quantization.
//
// ONNX Runtime fuses MatMul + Add into a Gemm at level 1, before it looks for QDQ groups. With our QDQ around the
// MatMul that Gemm reads a dequantized weight and a float bias, which no QDQ rule takes: the weight is dequantized on
// every run and the layer runs in fp32 (mnist-12: 45 → 51 µs per run, measured). As a Gemm from the start, the bias
// becomes int32 and ORT runs a QGemm with a float output.
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, isDefaultDomain as isDefault, removeInitializer, removeNodes, uniqueName } from '../../onnx/graph.js';
import { makeTensor, readTensor } from '../../onnx/tensor.js';


/** Whether `t` is known to be 2-D without running the model. */
function is2d(idx: GraphIndex, t: string): boolean {
  const p = idx.producer.get(t);
  if (!p) {
    const i = idx.graph.input.find((x) => x.name === t);
    return i?.type?.value.case === 'tensorType' && i.type.value.value.shape?.dim.length === 2;
  }
  if (!isDefault(p)) return false;
  if (p.opType === 'Gemm') return true;
  if (p.opType === 'Flatten') return true;
  if (p.opType === 'Reshape') {
    const s = idx.constantTensor(p.input[1])?.tensor;
    return !!s && s.dims.length === 1 && Number(s.dims[0]) === 2;
  }
  return false;
}

/**
 * Rewrites, in place, each 2-D MatMul(x, W) → Add(bias) pair into Gemm(x, W, bias) where `mayMerge` allows (the
 * caller keeps a MatMul the recipe excludes or keeps fp32 as it is). Returns the MatMuls merged.
 */
export function matmulAddToGemm(g: GraphProto, mayMerge: (mm: NodeProto) => boolean = () => true): string[] {
  const merged: string[] = [];
  const idx = new GraphIndex(g);
  const gone = new Set<NodeProto>();
  const biases: string[] = [];
  for (const mm of g.node) {
    if (!isDefault(mm) || mm.opType !== 'MatMul' || idx.graphOutputs.has(mm.output[0]) || !mayMerge(mm)) continue;
    const w = idx.initializers.get(mm.input[1]);
    if (!w || idx.graphInputs.has(w.name) || w.dataType !== DT.FLOAT || w.dims.length !== 2 || !is2d(idx, mm.input[0])) continue;
    const readers = idx.consumersOf(mm.output[0]);
    if (readers.length !== 1 || readers[0].opType !== 'Add' || !isDefault(readers[0])) continue;
    const add = readers[0];
    const other = add.input[0] === mm.output[0] ? add.input[1] : add.input[0];
    const bias = idx.constantTensor(other)?.tensor;
    const n = Number(w.dims[1]);
    const dims = bias?.dims.map(Number);
    if (!bias || bias.dataType !== DT.FLOAT || !dims || !(dims.length === 1 || (dims.length === 2 && dims[0] === 1)) || dims.at(-1) !== n) continue;
    const biasName = uniqueName(g, `${mm.name || mm.output[0]}_bias`);
    g.initializer.push(makeTensor(biasName, DT.FLOAT, [n], readTensor(bias).data));
    const gemm = create(NodeProtoSchema, { opType: 'Gemm', name: mm.name || `${add.output[0]}_gemm`, input: [mm.input[0], mm.input[1], biasName], output: [add.output[0]] });
    g.node.splice(g.node.indexOf(mm), 1, gemm);
    gone.add(add);
    biases.push(other);
    merged.push(mm.name || mm.output[0]);
  }
  removeNodes(g, gone);
  const left = new GraphIndex(g);
  for (const b of biases) if (!left.consumersOf(b).length && left.initializers.has(b) && !left.graphInputs.has(b)) removeInitializer(g, b);
  return merged;
}
