import type { GraphProto, NodeProto, TensorProto, ValueInfoProto } from 'onnx-buf';
import { AttributeProto_AttributeType as AT } from 'onnx-buf';
import { subgraphsOf } from './walk.js';

/**
 * Queries over one graph: who produces a value, who reads it, a topological order. The index is built once;
 * after an edit build a new one (indexes are cheap, stale ones are bugs).
 */
export class GraphIndex {
  readonly producer = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();
  readonly initializers = new Map<string, TensorProto>();
  readonly graphInputs = new Set<string>();
  readonly graphOutputs = new Set<string>();

  constructor(readonly graph: GraphProto) {
    for (const t of graph.initializer) this.initializers.set(t.name, t);
    for (const i of graph.input) this.graphInputs.add(i.name);
    for (const o of graph.output) this.graphOutputs.add(o.name);
    for (const n of graph.node) {
      for (const o of n.output) if (o) this.producer.set(o, n);
      // Subgraph bodies may read outer values by name: count the owning node as a consumer.
      for (const name of new Set([...n.input, ...outerReads(n)])) {
        if (!name) continue;
        const list = this.consumers.get(name) ?? [];
        list.push(n);
        this.consumers.set(name, list);
      }
    }
  }

  consumersOf(name: string): NodeProto[] {
    return this.consumers.get(name) ?? [];
  }

  /** A constant value: an initializer (that is not also a graph input) or the output of a Constant node. */
  constantTensor(name: string): { tensor: TensorProto; source: 'initializer' | 'constant-node'; node?: NodeProto } | undefined {
    const init = this.initializers.get(name);
    // An initializer that is also a graph input can be overridden at run time: not a constant.
    if (init) return this.graphInputs.has(name) ? undefined : { tensor: init, source: 'initializer' };
    const p = this.producer.get(name);
    if (p && p.opType === 'Constant' && (p.domain === '' || p.domain === 'ai.onnx')) {
      const a = p.attribute.find((x) => x.name === 'value' && x.type === AT.TENSOR);
      if (a?.t) return { tensor: a.t, source: 'constant-node', node: p };
    }
    return undefined;
  }

  /** Nodes in an order where every producer comes before its consumers (Kahn's algorithm, stable). */
  topoOrder(): NodeProto[] {
    const nodes = this.graph.node;
    const indeg = new Map<NodeProto, number>();
    for (const n of nodes) {
      let d = 0;
      for (const i of new Set([...n.input, ...outerReads(n)])) if (i && this.producer.has(i)) d++;
      indeg.set(n, d);
    }
    const ready = nodes.filter((n) => indeg.get(n) === 0);
    const out: NodeProto[] = [];
    while (ready.length) {
      const n = ready.shift()!;
      out.push(n);
      const seen = new Set<NodeProto>();
      for (const o of n.output) {
        for (const c of this.consumersOf(o)) {
          if (seen.has(c)) continue;
          // a consumer may read several outputs of n: decrement once per distinct input name
          const k = new Set([...c.input, ...outerReads(c)].filter((x) => x && this.producer.get(x) === n)).size;
          seen.add(c);
          const d = indeg.get(c)! - k;
          indeg.set(c, d);
          if (d === 0) ready.push(c);
        }
      }
    }
    if (out.length !== nodes.length) throw new Error(`graph "${this.graph.name}" has a cycle: ${nodes.length - out.length} nodes are unreachable in topological order`);
    return out;
  }
}

/** Names a node's subgraphs read from the enclosing scope. */
export function outerReads(node: NodeProto): string[] {
  const reads: string[] = [];
  for (const { graph } of subgraphsOf(node)) {
    const local = new Set<string>([...graph.input.map((i) => i.name), ...graph.initializer.map((t) => t.name)]);
    for (const n of graph.node) for (const o of n.output) local.add(o);
    for (const n of graph.node) {
      for (const i of [...n.input, ...outerReads(n)]) if (i && !local.has(i)) reads.push(i);
    }
    // A body may also return an outer value directly as one of its outputs.
    for (const o of graph.output) if (o.name && !local.has(o.name)) reads.push(o.name);
  }
  return reads;
}

// ---- edits: small, explicit mutations of a GraphProto ----

/** A standard ONNX op (the default domain), as opposed to a com.microsoft or custom one. */
export function isDefaultDomain(n: Pick<NodeProto, 'domain'>): boolean {
  return n.domain === '' || n.domain === 'ai.onnx';
}

/** An INT attribute of a node, or `dflt` when absent. */
export function intAttr(node: NodeProto, name: string, dflt: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : dflt;
}

/** An INTS attribute of a node as numbers, or undefined when absent. */
export function intsAttr(node: NodeProto, name: string): number[] | undefined {
  const a = node.attribute.find((x) => x.name === name);
  return a ? a.ints.map(Number) : undefined;
}

/** Replaces (or adds) an initializer by name. */
export function setInitializer(graph: GraphProto, tensor: TensorProto): void {
  const i = graph.initializer.findIndex((t) => t.name === tensor.name);
  if (i >= 0) graph.initializer[i] = tensor;
  else graph.initializer.push(tensor);
}

export function removeInitializer(graph: GraphProto, name: string): void {
  graph.initializer = graph.initializer.filter((t) => t.name !== name);
  graph.input = graph.input.filter((i) => i.name !== name); // old IR versions list initializers as inputs too
}

/** Inserts nodes right before `before` (or at the end), keeping the file's order readable. */
export function insertNodes(graph: GraphProto, nodes: NodeProto[], before?: NodeProto): void {
  const i = before ? graph.node.indexOf(before) : -1;
  if (i < 0) graph.node.push(...nodes);
  else graph.node.splice(i, 0, ...nodes);
}

export function removeNodes(graph: GraphProto, nodes: Iterable<NodeProto>): void {
  const drop = new Set(nodes);
  graph.node = graph.node.filter((n) => !drop.has(n));
}

/**
 * Renames a value everywhere it appears in this graph, and in subgraph bodies that read it from this scope
 * (an If branch reading an outer value by name would otherwise be left pointing at nothing).
 */
export function renameValue(graph: GraphProto, from: string, to: string): void {
  for (const n of graph.node) {
    n.input = n.input.map((x) => (x === from ? to : x));
    n.output = n.output.map((x) => (x === from ? to : x));
    for (const s of subgraphsOf(n)) renameOuterRead(s.graph, from, to);
  }
  for (const list of [graph.input, graph.output, graph.valueInfo] as ValueInfoProto[][]) {
    for (const v of list) if (v.name === from) v.name = to;
  }
  for (const t of graph.initializer) if (t.name === from) t.name = to;
}

function renameOuterRead(g: GraphProto, from: string, to: string): void {
  // A body that defines its own `from` shadows the outer value: leave it alone.
  if (g.input.some((i) => i.name === from) || g.initializer.some((t) => t.name === from) || g.node.some((n) => n.output.includes(from))) return;
  for (const n of g.node) {
    n.input = n.input.map((x) => (x === from ? to : x));
    for (const s of subgraphsOf(n)) renameOuterRead(s.graph, from, to);
  }
  for (const v of [...g.output, ...g.valueInfo]) if (v.name === from) v.name = to;
}

/** Drops value_info entries: exporters leave stale shapes that stop holding after a rewrite. */
export function dropValueInfo(graph: GraphProto, names?: Set<string>): void {
  graph.valueInfo = names ? graph.valueInfo.filter((v) => !names.has(v.name)) : [];
}

/** Removes initializers and Constant nodes nothing reads any more. */
export function pruneUnused(graph: GraphProto): number {
  let removed = 0;
  for (;;) {
    const idx = new GraphIndex(graph);
    const deadNodes = graph.node.filter((n) => n.output.length > 0 && n.output.every((o) => !o || (idx.consumersOf(o).length === 0 && !idx.graphOutputs.has(o))) && n.opType === 'Constant');
    const deadInits = graph.initializer.filter((t) => idx.consumersOf(t.name).length === 0 && !idx.graphOutputs.has(t.name));
    if (!deadNodes.length && !deadInits.length) return removed;
    removeNodes(graph, deadNodes);
    for (const t of deadInits) removeInitializer(graph, t.name);
    removed += deadNodes.length + deadInits.length;
  }
}

/** A value name not yet used in the graph, for new tensors a pass adds. */
export function uniqueName(graph: GraphProto, base: string): string {
  const used = new Set<string>();
  // Names inside subgraphs count too: a new outer value must not collide with (or be shadowed by) a body's value.
  const visit = (g: GraphProto) => {
    for (const n of g.node) {
      for (const x of [...n.input, ...n.output]) used.add(x);
      used.add(n.name);
      for (const s of subgraphsOf(n)) visit(s.graph);
    }
    for (const t of g.initializer) used.add(t.name);
    for (const v of [...g.input, ...g.output, ...g.valueInfo]) used.add(v.name);
  };
  visit(graph);
  if (!used.has(base)) return base;
  for (let i = 1; ; i++) if (!used.has(`${base}_${i}`)) return `${base}_${i}`;
}
