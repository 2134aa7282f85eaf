// Mixed precision: what the recipe says about one node. Every quantization pass (dynamic, static, weight-only) asks
// here before touching a node, so the rules are the same everywhere:
//   recipe.quantize.overrides[nodeName]   (by node name; a node without a name is known by its first output)
//   recipe.quantize.opOverrides[opType]   (by op type)
// A node entry wins over an op entry as a whole (the two are not merged). `skip: true` or `bits: 32` keep the node
// in fp32.
import type { NodeProto } from 'onnx-buf';
import type { QuantizeStep } from '../../schema/recipe.js';

export interface NodeOverride {
  /** leave the node unquantized (fp32) */
  skip: boolean;
  /** the bit width asked for this node, when the recipe sets one (never 32: that is `skip`) */
  bits?: number;
  /** where the decision came from, for pass reports; undefined when no override applies */
  why?: string;
}

/** The name passes report a node by and overrides match on. */
export function nodeKey(node: Pick<NodeProto, 'name' | 'output'>): string {
  return node.name || node.output[0] || '';
}

export function overrideFor(q: Pick<QuantizeStep, 'overrides' | 'opOverrides'>, node: Pick<NodeProto, 'name' | 'output' | 'opType'>): NodeOverride {
  const key = nodeKey(node);
  const byNode = q.overrides && Object.hasOwn(q.overrides, key) ? q.overrides[key] : undefined;
  const byOp = !byNode && q.opOverrides && Object.hasOwn(q.opOverrides, node.opType) ? q.opOverrides[node.opType] : undefined;
  const entry = byNode ?? byOp;
  if (!entry) return { skip: false };
  const where = byNode ? `recipe.quantize.overrides["${key}"]` : `recipe.quantize.opOverrides["${node.opType}"]`;
  if (entry.skip || entry.bits === 32) return { skip: true, why: `kept fp32 by ${where}` };
  return entry.bits === undefined ? { skip: false } : { skip: false, bits: entry.bits, why: `${entry.bits} bits by ${where}` };
}

/** A copy of the step with `skip` overrides added for these node names (existing entries for them are replaced). */
export function withSkips<T extends Pick<QuantizeStep, 'overrides'>>(q: T, names: Iterable<string>): T {
  const overrides = { ...(q.overrides ?? {}) };
  for (const n of names) overrides[n] = { skip: true };
  return { ...q, overrides };
}
