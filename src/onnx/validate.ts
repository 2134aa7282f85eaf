import type { GraphProto } from 'onnx-buf';
import { subgraphsOf } from './walk.js';
import type { OnnxModel } from './model.js';

/**
 * Structural checks that catch truncated or hand-broken files before ONNX Runtime does, with names:
 * a graph must exist, every node input must be defined somewhere in scope, node outputs must be unique.
 */
export function validateModel(model: OnnxModel): string[] {
  const p = model.proto;
  const problems: string[] = [];
  if (!p.graph) return ['the model has no graph'];
  if (p.opsetImport.length === 0) problems.push('the model imports no opset');
  checkGraph(p.graph, new Set(), 'graph', problems);
  return problems;
}

function checkGraph(g: GraphProto, outer: Set<string>, where: string, problems: string[]): void {
  const defined = new Set<string>(outer);
  for (const i of g.input) defined.add(i.name);
  for (const t of g.initializer) defined.add(t.name);
  for (const s of g.sparseInitializer) if (s.values) defined.add(s.values.name);
  const produced = new Set<string>();
  for (const n of g.node) {
    for (const o of n.output) {
      if (!o) continue;
      if (produced.has(o)) problems.push(`${where}: tensor "${o}" is produced twice (again by node "${n.name || n.opType}")`);
      produced.add(o);
      defined.add(o);
    }
  }
  for (const n of g.node) {
    for (const i of n.input) {
      if (i && !defined.has(i)) problems.push(`${where}: node "${n.name || n.opType}" (${n.opType}) reads "${i}", which nothing defines`);
    }
    for (const s of subgraphsOf(n)) checkGraph(s.graph, defined, `${where} > ${n.name || n.opType}.${s.attr}`, problems);
  }
  for (const o of g.output) {
    if (!defined.has(o.name)) problems.push(`${where}: output "${o.name}" is never produced`);
  }
}
