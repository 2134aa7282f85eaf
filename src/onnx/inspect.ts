import type { AttributeProto, GraphProto, SparseTensorProto, TensorProto, TypeProto, ValueInfoProto } from 'onnx-buf';
import { AttributeProto_AttributeType as AT } from 'onnx-buf';
import { DT, dtypeName, rawByteLength } from './dtype.js';
import { externalInfo, isExternal } from './tensor.js';
import { allGraphs } from './walk.js';
import type { OnnxModel } from './model.js';

/** A dimension: a number, a symbolic dim_param, or '?' when the file gives neither. */
export type Dim = number | string;

export interface ValueSummary {
  name: string;
  /** e.g. `float32`, `seq(float32)`, `map(int64,float32)`; undefined when the file gives no type. */
  type?: string;
  /** undefined when the rank is unknown. */
  shape?: Dim[];
}

export interface WeightBucket {
  tensors: number;
  /** elements */
  params: number;
  /** bytes the values take packed (int4 two per byte), whatever field or file holds them */
  bytes: number;
}

/** A model at a glance; everything a user needs to pick inputs, spot odd exporters, and guess what compresses. */
export interface ModelSummary {
  v: 1;
  irVersion: number;
  producer: { name: string; version: string };
  domain: string;
  modelVersion: number;
  graphName: string;
  opsets: Array<{ domain: string; version: number }>;
  /** Graph inputs that are real inputs (initializers listed as inputs are left out: see notes). */
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  nodes: { total: number; main: number; inSubgraphs: number };
  /** Op histogram over every graph (subgraphs included), most frequent first; domain '' is shown as ai.onnx. */
  ops: Array<{ domain: string; op: string; count: number }>;
  params: { count: number; bytes: number; byDtype: Array<{ dtype: string; tensors: number; count: number; bytes: number }> };
  /**
   * Where weights live. initializers / constantNodes / attributes are in the main graph (attributes: tensor-valued
   * attributes of other ops, e.g. ConstantOfShape); subgraphs holds everything inside If/Loop/Scan bodies; sparse
   * holds sparse initializers. external is not a place but a subset of the others: tensors whose bytes sit in files.
   */
  weights: {
    initializers: WeightBucket;
    constantNodes: WeightBucket;
    attributes: WeightBucket;
    subgraphs: WeightBucket;
    sparse: WeightBucket;
    external: WeightBucket & { files: string[] };
  };
  controlFlow: { if: number; loop: number; scan: number; subgraphs: number; maxDepth: number };
  functions: number;
  metadata: Record<string, string>;
  notes: string[];
}

const bucket = (): WeightBucket => ({ tensors: 0, params: 0, bytes: 0 });

function dimsOf(t: TensorProto): number[] {
  return t.dims.map(Number);
}

function tensorStats(t: TensorProto): { params: number; bytes: number } {
  const params = dimsOf(t).reduce((a, b) => a * b, 1);
  const bytes = t.dataType === DT.STRING ? t.stringData.reduce((a, s) => a + s.length, 0) : rawByteLength(t.dataType, params);
  return { params, bytes };
}

/** Scalar/list Constant attributes (value_float, value_ints, …) are weights too, just tiny ones. */
function constantListStats(a: AttributeProto): { dtype: number; params: number } | undefined {
  switch (a.type) {
    case AT.FLOAT: return { dtype: DT.FLOAT, params: 1 };
    case AT.INT: return { dtype: DT.INT64, params: 1 };
    case AT.FLOATS: return { dtype: DT.FLOAT, params: a.floats.length };
    case AT.INTS: return { dtype: DT.INT64, params: a.ints.length };
    default: return undefined;
  }
}

export function typeString(tp: TypeProto | undefined): string | undefined {
  const v = tp?.value;
  switch (v?.case) {
    case 'tensorType': return dtypeName(v.value.elemType);
    case 'sparseTensorType': return `sparse(${dtypeName(v.value.elemType)})`;
    case 'sequenceType': return `seq(${typeString(v.value.elemType) ?? '?'})`;
    case 'mapType': return `map(${dtypeName(v.value.keyType)},${typeString(v.value.valueType) ?? '?'})`;
    case 'optionalType': return `optional(${typeString(v.value.elemType) ?? '?'})`;
    default: return undefined;
  }
}

function shapeOf(tp: TypeProto | undefined): Dim[] | undefined {
  const v = tp?.value;
  const shape = v?.case === 'tensorType' || v?.case === 'sparseTensorType' ? v.value.shape : undefined;
  if (!shape) return undefined;
  return shape.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : '?'));
}

function valueSummary(v: ValueInfoProto): ValueSummary {
  return { name: v.name, type: typeString(v.type), shape: shapeOf(v.type) };
}

/** Summarises a model without touching its weights' bytes (external files are not opened). Pure. */
export function inspectModel(model: OnnxModel): ModelSummary {
  const p = model.proto;
  const notes: string[] = [];
  const graphs = allGraphs(p);
  const main: GraphProto | undefined = p.graph;

  const ops = new Map<string, { domain: string; op: string; count: number }>();
  const byDtype = new Map<string, { dtype: string; tensors: number; count: number; bytes: number }>();
  const weights: ModelSummary['weights'] = {
    initializers: bucket(), constantNodes: bucket(), attributes: bucket(), subgraphs: bucket(), sparse: bucket(),
    external: { ...bucket(), files: [] },
  };
  const files = new Set<string>();
  const controlFlow = { if: 0, loop: 0, scan: 0, subgraphs: graphs.length - 1, maxDepth: 0 };
  let total = 0;

  const count = (where: WeightBucket, dtype: number, params: number, bytes: number, tensors = 1) => {
    where.tensors += tensors;
    where.params += params;
    where.bytes += bytes;
    const name = dtypeName(dtype);
    const d = byDtype.get(name) ?? { dtype: name, tensors: 0, count: 0, bytes: 0 };
    d.tensors += tensors;
    d.count += params;
    d.bytes += bytes;
    byDtype.set(name, d);
  };
  const addTensor = (t: TensorProto, where: WeightBucket) => {
    const s = tensorStats(t);
    count(where, t.dataType, s.params, s.bytes);
    if (isExternal(t)) {
      weights.external.tensors++;
      weights.external.params += s.params;
      weights.external.bytes += s.bytes;
      try {
        files.add(externalInfo(t).location);
      } catch {
        notes.push(`tensor "${t.name}" is marked external but names no file`);
      }
    }
  };
  const addSparse = (s: SparseTensorProto, where: WeightBucket) => {
    // A sparse tensor's parameters are its stored values; its indices are bookkeeping but still take bytes.
    if (s.values) addTensor(s.values, where);
    if (s.indices) where.bytes += tensorStats(s.indices).bytes;
  };

  for (const { graph, depth } of graphs) {
    controlFlow.maxDepth = Math.max(controlFlow.maxDepth, depth);
    const inSub = depth > 0;
    for (const t of graph.initializer) addTensor(t, inSub ? weights.subgraphs : weights.initializers);
    for (const s of graph.sparseInitializer) addSparse(s, inSub ? weights.subgraphs : weights.sparse);
    for (const n of graph.node) {
      total++;
      const domain = n.domain === '' ? 'ai.onnx' : n.domain;
      const key = `${domain}\u0000${n.opType}`;
      const o = ops.get(key) ?? { domain, op: n.opType, count: 0 };
      o.count++;
      ops.set(key, o);
      const isOnnx = domain === 'ai.onnx';
      if (isOnnx && n.opType === 'If') controlFlow.if++;
      if (isOnnx && n.opType === 'Loop') controlFlow.loop++;
      if (isOnnx && n.opType === 'Scan') controlFlow.scan++;
      const isConstant = isOnnx && n.opType === 'Constant';
      const where = inSub ? weights.subgraphs : isConstant ? weights.constantNodes : weights.attributes;
      for (const a of n.attribute) {
        if (a.type === AT.TENSOR && a.t) addTensor(a.t, where);
        else if (a.type === AT.TENSORS) for (const t of a.tensors) addTensor(t, where);
        else if (a.type === AT.SPARSE_TENSOR && a.sparseTensor) addSparse(a.sparseTensor, where);
        else if (isConstant) {
          const s = constantListStats(a);
          if (s) count(where, s.dtype, s.params, rawByteLength(s.dtype, s.params));
        }
      }
    }
  }
  weights.external.files = [...files].sort();

  const initNames = new Set(main?.initializer.map((t) => t.name) ?? []);
  const inputs = (main?.input ?? []).filter((i) => !initNames.has(i.name)).map(valueSummary);
  const overridable = (main?.input.length ?? 0) - inputs.length;
  if (overridable > 0) notes.push(`${overridable} graph inputs also have initializers (an IR<4 habit, or defaults callers may override); they are not listed as inputs`);
  if (!main) notes.push('the model has no graph');
  if (p.functions.length) notes.push(`${p.functions.length} model-local functions; their bodies are not counted in the op histogram`);
  if (p.trainingInfo.length) notes.push('the model carries training info, which inference ignores');
  for (const v of [...inputs, ...(main?.output ?? []).map(valueSummary)]) {
    if (v.type === undefined) notes.push(`"${v.name}" has no type in the file`);
  }
  if (!p.producerName) notes.push('the producer is not recorded');

  const byCount = [...byDtype.values()].sort((a, b) => b.bytes - a.bytes || a.dtype.localeCompare(b.dtype));
  return {
    v: 1,
    irVersion: Number(p.irVersion),
    producer: { name: p.producerName, version: p.producerVersion },
    domain: p.domain,
    modelVersion: Number(p.modelVersion),
    graphName: main?.name ?? '',
    opsets: p.opsetImport.map((o) => ({ domain: o.domain === '' ? 'ai.onnx' : o.domain, version: Number(o.version) })),
    inputs,
    outputs: (main?.output ?? []).map(valueSummary),
    nodes: { total, main: main?.node.length ?? 0, inSubgraphs: total - (main?.node.length ?? 0) },
    ops: [...ops.values()].sort((a, b) => b.count - a.count || a.op.localeCompare(b.op) || a.domain.localeCompare(b.domain)),
    params: {
      count: byCount.reduce((a, d) => a + d.count, 0),
      bytes: byCount.reduce((a, d) => a + d.bytes, 0),
      byDtype: byCount,
    },
    weights,
    controlFlow,
    functions: p.functions.length,
    metadata: Object.fromEntries(p.metadataProps.map((m) => [m.key, m.value])),
    notes,
  };
}
