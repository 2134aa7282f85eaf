import { create } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema, AttributeProto_AttributeType as AT, GraphProtoSchema, ModelProtoSchema, NodeProtoSchema,
  OperatorSetIdProtoSchema, TensorShapeProtoSchema, TensorShapeProto_DimensionSchema, TypeProtoSchema,
  TypeProto_TensorSchema, ValueInfoProtoSchema,
  type AttributeProto, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto,
} from 'onnx-buf';
import { makeTensor } from './tensor.js';
import type { TypedArray } from './dtype.js';
import type { OnnxModel } from './model.js';

export type AttrValue = number | bigint | string | number[] | bigint[] | string[] | TensorProto | GraphProto | { float: number } | { floats: number[] };

/** An attribute; plain numbers are ints unless wrapped as {float}. */
export function attr(name: string, v: AttrValue): AttributeProto {
  const a = create(AttributeProtoSchema, { name });
  if (typeof v === 'number') { a.type = AT.INT; a.i = BigInt(v); }
  else if (typeof v === 'bigint') { a.type = AT.INT; a.i = v; }
  else if (typeof v === 'string') { a.type = AT.STRING; a.s = new TextEncoder().encode(v); }
  else if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') { a.type = AT.STRINGS; a.strings = (v as string[]).map((s) => new TextEncoder().encode(s)); }
    else { a.type = AT.INTS; a.ints = (v as Array<number | bigint>).map((x) => BigInt(x)); }
  } else if ('float' in v) { a.type = AT.FLOAT; a.f = v.float; }
  else if ('floats' in v) { a.type = AT.FLOATS; a.floats = v.floats; }
  else if (v.$typeName === 'onnx.TensorProto') { a.type = AT.TENSOR; a.t = v; }
  else { a.type = AT.GRAPH; a.g = v as GraphProto; }
  return a;
}

export function valueInfo(name: string, elemType: number, shape?: Array<number | string>): ValueInfoProto {
  const tensorType = create(TypeProto_TensorSchema, { elemType });
  if (shape) {
    tensorType.shape = create(TensorShapeProtoSchema, {
      dim: shape.map((d) => create(TensorShapeProto_DimensionSchema, {
        value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
      })),
    });
  }
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}

/** Builds small real models for tests and examples. */
export class GraphBuilder {
  readonly graph: GraphProto;
  private n = 0;
  constructor(name = 'graph') {
    this.graph = create(GraphProtoSchema, { name });
  }
  input(name: string, elemType: number, shape?: Array<number | string>): string {
    this.graph.input.push(valueInfo(name, elemType, shape));
    return name;
  }
  output(name: string, elemType: number, shape?: Array<number | string>): string {
    this.graph.output.push(valueInfo(name, elemType, shape));
    return name;
  }
  initializer(name: string, dtype: number, dims: number[], data: TypedArray): string {
    this.graph.initializer.push(makeTensor(name, dtype, dims, data));
    return name;
  }
  /** A Constant node holding the tensor (how PaddleOCR exports keep weights). */
  constant(name: string, dtype: number, dims: number[], data: TypedArray): string {
    this.graph.node.push(create(NodeProtoSchema, {
      opType: 'Constant', name: `${name}_const`, output: [name], attribute: [attr('value', makeTensor(name, dtype, dims, data))],
    }));
    return name;
  }
  node(opType: string, inputs: string[], opts: { outputs?: string[] | number; attrs?: Record<string, AttrValue>; name?: string; domain?: string } = {}): string[] {
    const id = this.n++;
    const outputs = Array.isArray(opts.outputs) ? opts.outputs : Array.from({ length: opts.outputs ?? 1 }, (_, k) => `${opType.toLowerCase()}_${id}_out${k}`);
    const node: NodeProto = create(NodeProtoSchema, {
      opType, name: opts.name ?? `${opType}_${id}`, input: inputs, output: outputs, domain: opts.domain ?? '',
      attribute: Object.entries(opts.attrs ?? {}).map(([k, v]) => attr(k, v)),
    });
    this.graph.node.push(node);
    return outputs;
  }
  /** One-output shorthand. */
  op(opType: string, inputs: string[], attrs?: Record<string, AttrValue>, name?: string): string {
    return this.node(opType, inputs, { attrs, name })[0];
  }
}

export function buildModel(graph: GraphProto, opsets: Record<string, number> = { '': 13 }, irVersion = 8): OnnxModel {
  return {
    proto: create(ModelProtoSchema, {
      irVersion: BigInt(irVersion), producerName: 'edgetune-builder', producerVersion: '1', graph,
      opsetImport: Object.entries(opsets).map(([domain, version]) => create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) })),
    }),
  };
}
