// The quantize passes rewrite the main graph only. Layers inside If/Loop/Scan bodies are left fp32, and the report
// says so on the owning node, so a user sees why a model with control flow was only partly quantized.
import type { GraphProto } from 'onnx-buf';
import { subgraphsOf } from '../../onnx/walk.js';
import type { PassReport } from '../../types.js';

/** Nodes of `ops` in `g`'s subgraph bodies, at any depth. */
function countInBodies(g: GraphProto, ops: ReadonlySet<string>): number {
  let k = 0;
  for (const n of g.node) if (ops.has(n.opType)) k++;
  for (const n of g.node) for (const s of subgraphsOf(n)) k += countInBodies(s.graph, ops);
  return k;
}

/** One skipped entry per main-graph node whose bodies hold any of `ops`. */
export function subgraphSkips(main: GraphProto, ops: readonly string[], pass: string): PassReport['skipped'] {
  const set = new Set(ops);
  const out: PassReport['skipped'] = [];
  for (const node of main.node) {
    const subs = subgraphsOf(node);
    if (!subs.length) continue;
    const inner = subs.reduce((k, s) => k + countInBodies(s.graph, set), 0);
    if (inner) out.push({ node: node.name || node.output[0], op: node.opType, why: `${inner} ${ops.join('/')} inside its subgraph bodies stay fp32: ${pass} covers the main graph only` });
  }
  return out;
}
