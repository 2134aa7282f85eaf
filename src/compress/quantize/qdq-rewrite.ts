// Applies a QDQ plan to a graph: a QuantizeLinear → DequantizeLinear pair after every planned activation (all its
// readers then read the DequantizeLinear output, so ONNX Runtime sees one Q per producer and can fuse), and int8
// weights / int32 biases / 8-bit constant operands behind their own DequantizeLinear. Pure graph rewrite.
import { create } from '@bufbuild/protobuf';
import { NodeProtoSchema, type GraphProto, type NodeProto } from 'onnx-buf';
import { attr } from '../../onnx/builder.js';
import { DT } from '../../onnx/dtype.js';
import { GraphIndex, isDefaultDomain, pruneUnused } from '../../onnx/graph.js';
import { makeTensor, readTensor, toFloat32 } from '../../onnx/tensor.js';
import { subgraphsOf } from '../../onnx/walk.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { PassReport } from '../../types.js';
import { hasNonFinite } from './weights.js';
import type { NodePlan, QdqPlan } from './qdq-plan.js';
import { constantParams, quantizeBias, quantizeWeights, quantizeWith, type ActivationType, type QParams } from './qdq-params.js';

export interface RewriteOptions {
  activationType: ActivationType;
  reduceRange: boolean;
}

/** Fresh names for new values and nodes, checked against every name in the model once (not per call). */
class Names {
  private readonly used = new Set<string>();
  constructor(g: GraphProto) {
    const visit = (x: GraphProto) => {
      for (const n of x.node) {
        for (const v of [...n.input, ...n.output, n.name]) this.used.add(v);
        for (const s of subgraphsOf(n)) visit(s.graph);
      }
      for (const t of x.initializer) this.used.add(t.name);
      for (const v of [...x.input, ...x.output, ...x.valueInfo]) this.used.add(v.name);
    };
    visit(g);
  }
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

function mk(opType: string, name: string, input: string[], output: string[], axis?: number): NodeProto {
  return create(NodeProtoSchema, { opType, name, input, output, attribute: axis === undefined ? [] : [attr('axis', axis)] });
}

/** Rewrites `model` in place; returns what changed and what could not be done after all (e.g. NaN weights). */
export function applyQdqPlan(model: OnnxModel, plan: QdqPlan, params: Map<string, QParams>, opts: RewriteOptions): { changed: PassReport['changed']; skipped: PassReport['skipped'] } {
  const g = model.proto.graph!;
  const idx = new GraphIndex(g);
  const names = new Names(g);
  const zpType = opts.activationType === 'int8' ? DT.INT8 : DT.UINT8;
  const changed: PassReport['changed'] = [];
  const skipped: PassReport['skipped'] = [];
  const before = new Map<NodeProto, NodeProto[]>();
  const after = new Map<NodeProto | undefined, NodeProto[]>();
  const push = <K>(m: Map<K, NodeProto[]>, k: K, n: NodeProto) => { const l = m.get(k) ?? []; l.push(n); m.set(k, l); };

  const root = (t: string) => { let r = t; while (plan.shared.has(r)) r = plan.shared.get(r)!; return r; };
  const paramsOf = (t: string) => params.get(root(t));
  const qInits = new Map<string, { scale: string; zp: string }>();
  const qInitsOf = (t: string) => {
    const r = root(t);
    let i = qInits.get(r);
    if (!i) {
      const p = params.get(r)!;
      const scale = names.fresh(`${r}_scale`), zp = names.fresh(`${r}_zero_point`);
      g.initializer.push(
        makeTensor(scale, DT.FLOAT, [], Float32Array.of(p.scale)),
        makeTensor(zp, zpType, [], zpType === DT.INT8 ? Int8Array.of(p.zeroPoint) : Uint8Array.of(p.zeroPoint)),
      );
      qInits.set(r, (i = { scale, zp }));
    }
    return i;
  };

  // Nodes first: a node whose weights turn out unusable keeps float weights (its inputs still get their pairs).
  const dqOut = new Map<string, string>(); // activation → its DequantizeLinear output
  const weightCache = new Map<string, { q: string; scale: string; zp: string; scales: Float32Array; axis?: number; dims: number[] }>();
  const constCache = new Map<string, { data: string; scale: string; zp: string }>();
  for (const p of plan.nodes) {
    const n = p.node;
    const label = n.name || n.output[0];
    if (p.role === 'core') {
      const w = rewriteWeight(p);
      if (!w) continue;
      changed.push({ node: label, op: n.opType, what: w });
    } else if (p.constants.length) {
      for (const i of p.constants) n.input[i] = constantDq(n, n.input[i]);
      changed.push({ node: label, op: n.opType, what: `int8 QDQ with ${p.constants.length} constant operand(s) stored as 8-bit` });
    } else {
      changed.push({ node: label, op: n.opType, what: p.role === 'shared' ? 'runs on 8-bit data (shares its input\'s quantization)' : 'int8 QDQ' });
    }
  }

  // Activation pairs. Readers are renamed to the DequantizeLinear output, including the weights' consumers above.
  const tensors = [...plan.activations.filter((t) => params.has(t)), ...[...plan.shared.keys()].filter((t) => paramsOf(t))];
  for (const t of tensors) {
    const { scale, zp } = qInitsOf(t);
    const q = names.fresh(`${t}_quantized`), dq = names.fresh(`${t}_dequantized`);
    const producer = idx.producer.get(t);
    push(after, producer, mk('QuantizeLinear', names.fresh(`${t}_QuantizeLinear`), [t, scale, zp], [q]));
    push(after, producer, mk('DequantizeLinear', names.fresh(`${t}_DequantizeLinear`), [q, scale, zp], [dq]));
    dqOut.set(t, dq);
  }
  for (const n of g.node) n.input = n.input.map((x) => dqOut.get(x) ?? x);

  const nodes: NodeProto[] = [...(after.get(undefined) ?? [])];
  for (const n of g.node) nodes.push(...(before.get(n) ?? []), n, ...(after.get(n) ?? []));
  g.node = nodes;
  pruneUnused(g);
  return { changed, skipped };

  function rewriteWeight(p: NodePlan): string | undefined {
    const n = p.node;
    const label = n.name || n.output[0];
    const wName = n.input[p.weight!.input];
    const axis = p.weight!.axis;
    const key = `${wName}|${axis}`;
    let w = weightCache.get(key);
    if (!w) {
      const c = idx.constantTensor(wName)!;
      const t = readTensor(c.tensor, model.dir);
      const values = toFloat32(t);
      if (hasNonFinite(values)) { skipped.push({ node: label, op: n.opType, why: `weight "${wName}" holds inf or NaN: left fp32` }); return undefined; }
      const qw = quantizeWeights(values, t.dims, axis, opts.reduceRange);
      const base = names.fresh(`${wName}_quantized`);
      const sDims = axis === undefined ? [] : [qw.scale.length];
      const scale = names.fresh(`${wName}_scale`), zp = names.fresh(`${wName}_zero_point`);
      g.initializer.push(
        makeTensor(base, DT.INT8, t.dims, qw.q),
        makeTensor(scale, DT.FLOAT, sDims, qw.scale),
        makeTensor(zp, DT.INT8, sDims, new Int8Array(qw.scale.length)),
      );
      weightCache.set(key, (w = { q: base, scale, zp, scales: qw.scale, axis, dims: t.dims }));
    }
    // One DequantizeLinear per reader: ORT groups each with its own node (the int8 data itself is shared).
    const wDq = names.fresh(`${wName}_dequantized`);
    push(before, n, mk('DequantizeLinear', names.fresh(`${wName}_DequantizeLinear`), [w.q, w.scale, w.zp], [wDq], w.axis));
    n.input[p.weight!.input] = wDq;
    let what = `int8 QDQ, ${axis === undefined ? 'per-tensor' : 'per-channel'} ${opts.reduceRange ? '7-bit ' : ''}weights [${w.dims.join('x')}]`;
    if (p.bias !== undefined) what += biasDq(p, w);
    return what;
  }

  function biasDq(p: NodePlan, w: { scales: Float32Array; dims: number[]; axis?: number }): string {
    const n = p.node;
    const bName = n.input[p.bias!];
    const c = idx.constantTensor(bName)!;
    let values = toFloat32(readTensor(c.tensor, model.dir));
    if (n.opType === 'Gemm') {
      const betaAttr = n.attribute.find((a) => a.name === 'beta');
      const beta = betaAttr?.f ?? 1;
      const cols = w.dims[n.attribute.some((a) => a.name === 'transB' && Number(a.i) === 1) ? 0 : 1];
      if (values.length === 1 && cols > 1) values = new Float32Array(cols).fill(values[0]);
      if (beta !== 1) {
        const scaled = values.map((v) => v * beta);
        values = scaled;
        if (betaAttr) betaAttr.f = 1;
      }
    }
    const inScale = paramsOf(n.input[0])?.scale;
    if (inScale === undefined) return ', float bias (input has no scale)';
    const qb = quantizeBias(values, inScale, w.scales);
    const perChannel = w.scales.length > 1;
    const base = names.fresh(`${bName}_quantized`);
    const scale = names.fresh(`${bName}_scale`);
    const sDims = perChannel ? [values.length] : [];
    // No zero point: DequantizeLinear's default is 0, and an all-zero int32 tensor per channel is 4 bytes per
    // channel of nothing (Ultraface: 29 KiB of its 458).
    g.initializer.push(
      makeTensor(base, DT.INT32, [values.length], qb.q),
      makeTensor(scale, DT.FLOAT, sDims, perChannel ? qb.scale : Float32Array.of(qb.scale[0])),
    );
    const out = names.fresh(`${bName}_dequantized`);
    push(before, n, mk('DequantizeLinear', names.fresh(`${bName}_DequantizeLinear`), [base, scale], [out], perChannel ? 0 : undefined));
    n.input[p.bias!] = out;
    return `, int32 bias${qb.clipped ? ` (${qb.clipped} values clipped to the int32 range)` : ''}`;
  }

  function constantDq(n: NodeProto, name: string): string {
    let q = constCache.get(name);
    if (!q) {
      const t = readTensor(idx.constantTensor(name)!.tensor, model.dir);
      const values = toFloat32(t);
      const p = constantParams(values, opts.activationType);
      q = { data: names.fresh(`${name}_quantized`), scale: names.fresh(`${name}_scale`), zp: names.fresh(`${name}_zero_point`) };
      g.initializer.push(
        makeTensor(q.data, zpType, t.dims, quantizeWith(values, p, opts.activationType)),
        makeTensor(q.scale, DT.FLOAT, [], Float32Array.of(p.scale)),
        makeTensor(q.zp, zpType, [], zpType === DT.INT8 ? Int8Array.of(p.zeroPoint) : Uint8Array.of(p.zeroPoint)),
      );
      constCache.set(name, q);
    }
    const out = names.fresh(`${name}_dequantized`);
    push(before, n, mk('DequantizeLinear', names.fresh(`${name}_DequantizeLinear`), [q.data, q.scale, q.zp], [out]));
    return out;
  }
}

/**
 * At an fp32 → int8 boundary `Relu → MaxPool → Q`, ONNX Runtime moves the Q in front of the MaxPool (its QDQ
 * propagation), and an int8 MaxPool in NCHW layout runs ~25x slower than the fp32 one. max() commutes with the
 * monotone Relu, so the pair is swapped to `MaxPool → Relu → Q`: the Relu stops the propagation, and ORT later
 * folds it into the Q. Node objects keep their places (each takes the other's op), so file order stays valid.
 * Returns the names of the swapped MaxPools.
 */
export function commuteReluPastBoundaryPools(g: GraphProto, plan: QdqPlan): string[] {
  const idx = new GraphIndex(g);
  const chosen = new Set(plan.nodes.map((p) => p.node));
  const names = new Names(g);
  const swapped: string[] = [];
  for (const t of plan.activations) {
    const pool = idx.producer.get(t);
    if (!pool || pool.opType !== 'MaxPool' || !isDefaultDomain(pool) || chosen.has(pool) || pool.output.filter(Boolean).length !== 1) continue;
    const relu = idx.producer.get(pool.input[0]);
    if (!relu || relu.opType !== 'Relu' || !isDefaultDomain(relu) || idx.consumersOf(relu.output[0]).length !== 1 || idx.graphOutputs.has(relu.output[0])) continue;
    const x = relu.input[0];
    const mid = names.fresh(`${t}_pooled`);
    const [reluName, poolName, poolAttrs] = [relu.name, pool.name, pool.attribute];
    // The node at the Relu's place becomes the MaxPool (x → mid); the node at the MaxPool's place the Relu (mid → t).
    Object.assign(relu, { opType: 'MaxPool', name: poolName, attribute: poolAttrs, input: [x], output: [mid] });
    Object.assign(pool, { opType: 'Relu', name: reluName, attribute: [], input: [mid], output: [t] });
    swapped.push(poolName || t);
  }
  return swapped;
}
