// Flatten in channels-last order where an int8 conv feeds a fully connected layer.
//
// ONNX Runtime runs int8 convs and pools in NHWC (QLinearConv, NhwcMaxPool) and puts a Transpose back to NCHW in
// front of a Flatten, because Flatten's element order depends on the layout. Flattening in (h, w, c) order and
// permuting the FC weight's rows the same way computes the same function, and ORT's transpose optimizer then cancels
// our explicit Transpose against its own, so the int8 tensor is never transposed. Measured on the example CNN at
// batch 1: 0.6–0.9 µs of 34 µs per run (scripts/call-overhead.ts), 1.66–1.69× → 1.70–1.73× against fp32.
// If the conv ends up fp32 after all, ORT's NCHWc transformer turns the Transpose into its channels-last
// ReorderOutput, which costs about what the plain ReorderOutput did.
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import { attr } from '../../onnx/builder.js';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, intAttr, isDefaultDomain as isDefault, setInitializer, uniqueName } from '../../onnx/graph.js';
import { makeTensor, readTensor } from '../../onnx/tensor.js';
import { coreNodes, type QdqPlan } from './qdq-plan.js';

/** single-data-input ops that keep the channel axis and count of a 4-D tensor */
const CHANNEL_KEEPING = new Set(['MaxPool', 'AveragePool', 'Relu', 'Clip', 'LeakyRelu']);


/**
 * The 2-D conv whose output reaches `t` through channel-keeping ops only, with its output channel count. Every
 * tensor on the way must have this one reader: another reader (or a graph output) needs NCHW data, so ORT would
 * keep its Transpose and add ours (mnist-12's pool output is also a model output: measured 9 % slower).
 */
function sourceConv(idx: GraphIndex, t: string): { conv: NodeProto; channels: number } | undefined {
  for (let name = t, hops = 0; hops < 8; hops++) {
    if (idx.consumersOf(name).length !== 1 || idx.graphOutputs.has(name)) return undefined;
    const p = idx.producer.get(name);
    if (!p || !isDefault(p)) return undefined;
    if (p.opType === 'Conv') {
      const w = idx.constantTensor(p.input[1])?.tensor;
      return w && w.dims.length === 4 ? { conv: p, channels: Number(w.dims[0]) } : undefined;
    }
    if (!CHANNEL_KEEPING.has(p.opType) || p.output.filter(Boolean).length !== 1) return undefined;
    name = p.input[0];
  }
  return undefined;
}

/** Whether `f` flattens a [N, C, H, W] tensor to [N, K] (Flatten axis 1, or a constant 2-D Reshape). */
function flattensToK(idx: GraphIndex, f: NodeProto, k: number): boolean {
  if (f.opType === 'Flatten') return intAttr(f, 'axis', 1) === 1;
  if (f.opType !== 'Reshape' || intAttr(f, 'allowzero', 0) !== 0) return false;
  const s = idx.constantTensor(f.input[1])?.tensor;
  if (!s || s.dims.length !== 1 || Number(s.dims[0]) !== 2) return false;
  const [n, kk] = Array.from(readTensor(s).data as BigInt64Array, Number);
  return kk === k || (kk === -1 && n !== -1);
}

/**
 * Rewrites, in place, each Conv → (pool/activation)* → Flatten → Gemm/MatMul chain whose Conv and FC layer the plan
 * quantizes, so that the flatten reads channels-last data. Returns the names of the flattens it changed.
 */
export function flattenChannelsLast(g: GraphProto, plan: QdqPlan): string[] {
  const idx = new GraphIndex(g);
  const core = coreNodes(plan);
  const changed: string[] = [];
  for (const f of [...g.node]) {
    if (!isDefault(f) || (f.opType !== 'Flatten' && f.opType !== 'Reshape')) continue;
    const src = sourceConv(idx, f.input[0]);
    if (!src || !core.has(src.conv)) continue;
    const readers = idx.consumersOf(f.output[0]);
    if (readers.length !== 1 || idx.graphOutputs.has(f.output[0])) continue;
    const fc = readers[0];
    if (!core.has(fc) || !isDefault(fc) || fc.input[0] !== f.output[0]) continue;
    const isGemm = fc.opType === 'Gemm';
    if (!isGemm && fc.opType !== 'MatMul') continue;
    if (isGemm && intAttr(fc, 'transA', 0) !== 0) continue;
    const w = idx.initializers.get(fc.input[1]);
    // The weight is permuted in place, so it must belong to this layer alone.
    if (!w || idx.graphInputs.has(w.name) || w.dataType !== DT.FLOAT || w.dims.length !== 2 || idx.consumersOf(w.name).length !== 1) continue;
    const transB = isGemm && intAttr(fc, 'transB', 0) === 1;
    const [rows, cols] = w.dims.map(Number);
    const k = transB ? cols : rows;
    const c = src.channels;
    const hw = k / c;
    if (!Number.isInteger(hw) || hw === 1 || !flattensToK(idx, f, k)) continue;

    const old = readTensor(w).data as Float32Array;
    const out = new Float32Array(old.length);
    // K index c·HW + p (channels-first) becomes p·C + c (channels-last); the other axis is untouched.
    for (let ci = 0; ci < c; ci++) {
      for (let p = 0; p < hw; p++) {
        const from = ci * hw + p, to = p * c + ci;
        if (transB) for (let r = 0; r < rows; r++) out[r * cols + to] = old[r * cols + from];
        else out.set(old.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
    setInitializer(g, makeTensor(w.name, DT.FLOAT, [rows, cols], out));
    const nhwc = uniqueName(g, `${f.input[0]}_nhwc`);
    const t = create(NodeProtoSchema, {
      opType: 'Transpose', name: uniqueName(g, `${f.name || f.output[0]}_channels_last`), input: [f.input[0]], output: [nhwc],
      attribute: [attr('perm', [0, 2, 3, 1])],
    });
    f.input[0] = nhwc;
    g.node.splice(g.node.indexOf(f), 0, t);
    changed.push(f.name || f.output[0]);
  }
  return changed;
}
