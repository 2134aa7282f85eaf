import type { GraphProto, ModelProto, NodeProto, TensorProto } from 'onnx-buf';
import { AttributeProto_AttributeType as AT } from 'onnx-buf';

/** Subgraphs held in a node's attributes (If branches, Loop/Scan bodies). */
export function subgraphsOf(node: NodeProto): Array<{ attr: string; graph: GraphProto }> {
  const out: Array<{ attr: string; graph: GraphProto }> = [];
  for (const a of node.attribute) {
    if (a.type === AT.GRAPH && a.g) out.push({ attr: a.name, graph: a.g });
    if (a.type === AT.GRAPHS) for (const g of a.graphs) out.push({ attr: a.name, graph: g });
  }
  return out;
}

/** Every graph in the model, the main one first, with its nesting depth. */
export function allGraphs(model: ModelProto): Array<{ graph: GraphProto; depth: number; owner?: NodeProto }> {
  const out: Array<{ graph: GraphProto; depth: number; owner?: NodeProto }> = [];
  const visit = (g: GraphProto, depth: number, owner?: NodeProto) => {
    out.push({ graph: g, depth, owner });
    for (const n of g.node) for (const s of subgraphsOf(n)) visit(s.graph, depth + 1, n);
  };
  if (model.graph) visit(model.graph, 0);
  return out;
}

/** Every TensorProto in the model: initializers, Constant values and tensor attributes, in all graphs. */
export function allTensors(model: ModelProto): TensorProto[] {
  const out: TensorProto[] = [];
  for (const { graph } of allGraphs(model)) {
    out.push(...graph.initializer);
    for (const s of graph.sparseInitializer) {
      if (s.values) out.push(s.values);
      if (s.indices) out.push(s.indices);
    }
    for (const n of graph.node) {
      for (const a of n.attribute) {
        if (a.type === AT.TENSOR && a.t) out.push(a.t);
        if (a.type === AT.TENSORS) out.push(...a.tensors);
      }
    }
  }
  return out;
}
