import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, AttributeProto_AttributeType as AT, type GraphProto, type NodeProto, type TensorProto } from 'onnx-buf';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, insertNodes, uniqueName } from '../../onnx/graph.js';
import { attr } from '../../onnx/builder.js';
import { makeTensor, readTensor, toFloat32 } from '../../onnx/tensor.js';
import { FP16_MAX, toFloat16Array } from '../../onnx/half.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { PassReport } from '../../types.js';
import type { PassOptions } from '../pass.js';

/** Tiny tensors (scalars, shape-like constants) are not worth a Cast node. */
export const MIN_FP16_ELEMENTS = 16;

/**
 * Stores float32 weights as float16 and casts them back to float32 in the graph, so compute stays fp32 and the
 * file halves. ORT folds the Cast at load time. Weights with values outside fp16's range are kept as they are.
 * Applies to initializers and Constant nodes of the main graph (subgraph bodies keep their own weights).
 */
export function storeWeightsFp16(model: OnnxModel, opts: PassOptions): PassReport {
  const report: PassReport = { pass: 'fp16-weights', changed: [], skipped: [] };
  const g = model.proto.graph!;
  const idx = new GraphIndex(g);
  const excluded = (name: string) =>
    idx.consumersOf(name).some((c) => opts.excludeOps?.includes(c.opType) || opts.excludeNodes?.includes(c.name));

  const casts: NodeProto[] = [];
  for (const t of [...g.initializer]) {
    if (t.dataType !== DT.FLOAT || idx.graphInputs.has(t.name)) continue;
    const why = reasonToKeep(t, model.dir) ?? (excluded(t.name) ? 'read by an excluded node' : undefined);
    if (why) { if (why !== 'small') report.skipped.push({ node: t.name, op: 'initializer', why }); continue; }
    const half = uniqueName(g, `${t.name}_fp16`);
    const values = toFloat32(readTensor(t, model.dir));
    const i = g.initializer.indexOf(t);
    g.initializer[i] = makeTensor(half, DT.FLOAT16, t.dims.map(Number), toFloat16Array(values));
    casts.push(castNode(half, t.name));
    report.changed.push({ node: t.name, op: 'initializer', what: `float32 → float16 (${values.length * 4} → ${values.length * 2} bytes)` });
  }
  insertNodes(g, casts, g.node[0]);

  for (const node of [...g.node]) {
    if (node.opType !== 'Constant') continue;
    const a = node.attribute.find((x) => x.name === 'value' && x.type === AT.TENSOR);
    const t = a?.t;
    if (!a || !t || t.dataType !== DT.FLOAT) continue;
    const out = node.output[0];
    const why = reasonToKeep(t, model.dir) ?? (excluded(out) ? 'read by an excluded node' : undefined);
    if (why) { if (why !== 'small') report.skipped.push({ node: node.name || out, op: 'Constant', why }); continue; }
    const half = uniqueName(g, `${out}_fp16`);
    const values = toFloat32(readTensor(t, model.dir));
    a.t = makeTensor(t.name, DT.FLOAT16, t.dims.map(Number), toFloat16Array(values));
    node.output[0] = half;
    insertNodes(g, [castNode(half, out)], g.node[g.node.indexOf(node) + 1]);
    report.changed.push({ node: node.name || out, op: 'Constant', what: `float32 → float16 (${values.length * 4} → ${values.length * 2} bytes)` });
  }
  return report;
}

function reasonToKeep(t: TensorProto, dir?: string): string | undefined {
  const n = t.dims.reduce((a, b) => a * Number(b), 1);
  if (n < MIN_FP16_ELEMENTS) return 'small';
  const v = toFloat32(readTensor(t, dir));
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!Number.isFinite(x) || Math.abs(x) > FP16_MAX) return `holds values outside float16's range (e.g. ${x}); kept float32`;
  }
  return undefined;
}

/** Cast(from) → float32 `to`: how an fp16-stored weight is read back. */
export function castNode(from: string, to: string): NodeProto {
  return create(NodeProtoSchema, { opType: 'Cast', name: `${to}_cast_fp32`, input: [from], output: [to], attribute: [attr('to', DT.FLOAT)] });
}

export type { GraphProto };
