// Dependency analysis for structured channel pruning, straight on the ONNX graph. Walks the nodes in topological
// order and tracks, for every value, which channel spaces its channel axis holds (spaces.ts). Every op that reads a
// traced value must be understood, or the spaces it touches are pinned (left alone) with the reason. What comes out
// is a list of edits (which tensor to slice along which axis by which layout) applied once keep-lists are chosen.
import type { NodeProto, ValueInfoProto } from 'onnx-buf';
import { GraphIndex, outerReads } from '../../onnx/graph.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { PassOptions } from '../pass.js';
import { BINARY, POOLS, UNARY } from './op-sets.js';
import { flattenByReshape } from './reshape.js';
import { Spaces, sameStructure, singleSpace, totalLen, type Layout } from './spaces.js';
import { constRef, dimsOf, intAttr, isStandard, nodeLabel, readConst, type ConstRef } from './tensors.js';

export type Edit =
  /** slice input `input` of `node` (a constant) along `axis` to the kept positions of `layout` */
  | { kind: 'slice'; node: NodeProto; input: number; axis: number; layout: Layout; inner: number; role: 'source' | 'sink' | 'param' }
  /** a depthwise conv's `group` follows its channel count */
  | { kind: 'group'; node: NodeProto; layout: Layout }
  /** a flattening Reshape's explicit last dim (entry `pos` of its shape constant) follows the kept channels */
  | { kind: 'reshape'; node: NodeProto; input: number; pos: number; layout: Layout; inner: number };

export interface ChannelAnalysis {
  spaces: Spaces;
  edits: Edit[];
}

export function analyzeChannels(model: OnnxModel, opts: PassOptions = {}): ChannelAnalysis {
  return new Analyzer(model, opts).run();
}

class Analyzer {
  private readonly idx: GraphIndex;
  private readonly spaces = new Spaces();
  private readonly edits: Edit[] = [];
  private readonly layouts = new Map<string, Layout>();
  private readonly declared = new Map<string, ValueInfoProto>();

  constructor(private readonly model: OnnxModel, private readonly opts: PassOptions) {
    const g = model.proto.graph!;
    this.idx = new GraphIndex(g);
    for (const v of [...g.input, ...g.valueInfo, ...g.output]) this.declared.set(v.name, v);
  }

  run(): ChannelAnalysis {
    for (const node of this.idx.topoOrder()) this.visit(node);
    for (const o of this.model.proto.graph!.output) {
      const l = this.layouts.get(o.name);
      if (l) this.pinLayout(l, `reaches the model output "${o.name}", whose shape must not change`);
    }
    return { spaces: this.spaces, edits: this.edits };
  }

  private visit(node: NodeProto): void {
    const ins = node.input.map((n) => (n ? this.layouts.get(n) : undefined));
    const op = node.opType;
    const outer = outerReads(node).filter((n) => this.layouts.has(n));
    if (!isStandard(node) || outer.length > 0) {
      this.opaque(node, outer.length ? `${op} "${nodeLabel(node)}" reads it inside a subgraph` : `custom op ${node.domain}.${op} "${nodeLabel(node)}"`);
      return;
    }
    if (op === 'Conv' || op === 'ConvTranspose') return this.conv(node, ins);
    if (op === 'Gemm') return this.gemm(node, ins);
    if (op === 'MatMul') return this.matmul(node, ins);
    if (!ins.some(Boolean)) return; // nothing traced flows in, nothing to check
    if (this.excluded(node)) return this.opaque(node, `${op} "${nodeLabel(node)}" is excluded by the recipe`);
    if (UNARY.has(op)) return this.unary(node, ins);
    if (BINARY.has(op)) return this.binary(node, ins);
    if (POOLS.has(op)) return this.passSpatial(node, ins, node.output.length > 1 && node.output[1] ? 'MaxPool indices' : undefined);
    if (op === 'BatchNormalization' || op === 'InstanceNormalization') return this.norm(node, ins);
    if (op === 'Resize' || op === 'Upsample') return this.resize(node, ins);
    if (op === 'Pad') return this.pad(node, ins);
    if (op === 'Concat') return this.concat(node, ins);
    if (op === 'Flatten') return this.flatten(node, ins);
    if (op === 'Reshape') return this.reshape(node, ins);
    this.opaque(node, `${op} "${nodeLabel(node)}" reads it and channel pruning does not model ${op}`);
  }

  // ---- helpers ----

  private excluded(node: NodeProto): boolean {
    return Boolean(this.opts.excludeOps?.includes(node.opType) || this.opts.excludeNodes?.includes(nodeLabel(node)));
  }

  private pinLayout(l: Layout, why: string): void {
    for (const s of l.segs) this.spaces.pin(s.space, why);
  }

  /** The node is not understood: every traced value it reads is pinned and its outputs are untraced. */
  private opaque(node: NodeProto, why: string): void {
    for (const n of [...node.input, ...outerReads(node)]) {
      const l = n ? this.layouts.get(n) : undefined;
      if (l) this.pinLayout(l, why);
    }
  }

  /** Whether anything reads the value: a node or the graph's outputs. */
  private used(name: string): boolean {
    return this.idx.consumersOf(name).length > 0 || this.idx.graphOutputs.has(name);
  }

  private set(name: string | undefined, l: Layout): void {
    if (name) this.layouts.set(name, l);
  }

  private konst(name: string | undefined): ConstRef | undefined {
    return constRef(this.idx, name);
  }

  private slice(node: NodeProto, input: number, axis: number, layout: Layout, role: 'source' | 'sink' | 'param', inner = 1): void {
    this.edits.push({ kind: 'slice', node, input, axis, layout, inner, role });
  }

  /** The 0-based channel axis, when the rank is known. */
  private posAxis(l: Layout): number | undefined {
    return l.rank === undefined ? undefined : l.rank + l.axis;
  }

  /** NCHW-style ops (BatchNormalization, pooling, Resize) need the channels on dim 1. */
  private onDim1(node: NodeProto, l: Layout): boolean {
    if (l.flat || this.posAxis(l) !== 1) {
      this.pinLayout(l, `${node.opType} "${nodeLabel(node)}" expects channels on dim 1`);
      return false;
    }
    return true;
  }

  /** Positions each channel spans in a sink's weight: 1 unless flattened, then learnt from the weight's K. */
  private innerFor(node: NodeProto, l: Layout, k: number): number | undefined {
    const total = totalLen(l);
    const inner = l.flat ? (l.inner ?? k / total) : 1;
    if (!Number.isInteger(inner) || inner < 1 || inner * total !== k) {
      this.pinLayout(l, `${node.opType} "${nodeLabel(node)}" reads ${k} features, which is not a whole number of positions for ${total} channels`);
      return undefined;
    }
    return inner;
  }

  private otherTraced(node: NodeProto, ins: Array<Layout | undefined>, allowed: number[]): boolean {
    const bad = ins.some((l, i) => l && !allowed.includes(i));
    if (bad) this.opaque(node, `${node.opType} "${nodeLabel(node)}" reads it as a weight or parameter`);
    return bad;
  }

  // ---- layers: sinks of their input's spaces, sources of a new one ----

  private conv(node: NodeProto, ins: Array<Layout | undefined>): void {
    if (this.otherTraced(node, ins, [0])) return;
    const x = ins[0];
    const label = `${node.opType} "${nodeLabel(node)}"`;
    const w = this.konst(node.input[1]);
    const b = node.input[2] ? this.konst(node.input[2]) : undefined;
    if (!w) { if (x) this.pinLayout(x, `${label} has a weight computed at run time`); return; }
    const wd = dimsOf(w.tensor);
    const rank = wd.length;
    const group = intAttr(node, 'group', 1);
    const transpose = node.opType === 'ConvTranspose';
    // Conv weights are [Cout, Cin/group, k...]; ConvTranspose weights are [Cin, Cout/group, k...].
    const cin = transpose ? wd[0] : wd[1] * group;
    const cout = transpose ? wd[1] * group : wd[0];
    const excluded = this.excluded(node);
    const depthwise = !transpose && group > 1 && wd[1] === 1 && cout === group;
    if (x) {
      if (excluded) this.pinLayout(x, `${label} is excluded by the recipe`);
      else if (x.flat || (x.rank !== undefined && x.rank !== rank) || totalLen(x) !== cin) {
        this.pinLayout(x, `${label} expects ${cin} input channels on dim 1, the traced value does not match`);
      } else if (this.posAxis({ ...x, rank }) !== 1) {
        this.pinLayout(x, `${label} reads channels on dim 1, the traced value has them elsewhere`);
      } else if (group === 1) {
        this.slice(node, 1, transpose ? 0 : 1, x, 'sink');
      } else if (depthwise) {
        // One filter per channel: channels pass straight through, so the output keeps the input's spaces.
        this.slice(node, 1, 0, x, 'param');
        if (b) this.slice(node, 2, 0, x, 'param');
        this.edits.push({ kind: 'group', node, layout: x });
        if (node.input[2] && !b) this.pinLayout(x, `${label} has a bias computed at run time`);
        this.set(node.output[0], { ...x, rank });
        return;
      } else {
        this.pinLayout(x, `${label} is a grouped convolution (group=${group}); only depthwise and group=1 convs are pruned`);
      }
    }
    if (group !== 1) return; // a grouped conv's output channels are tied to its groups: left untraced
    const s = this.spaces.create(cout, { node, input: 1, axis: transpose ? 1 : 0 });
    const out = singleSpace(s, cout, rank, 1 - rank);
    if (excluded) this.spaces.pin(s, `${label} is excluded by the recipe`);
    if (node.input[2] && !b) this.spaces.pin(s, `${label} has a bias computed at run time`);
    this.slice(node, 1, transpose ? 1 : 0, out, 'source');
    if (b) this.slice(node, 2, 0, out, 'param');
    this.set(node.output[0], out);
  }

  private gemm(node: NodeProto, ins: Array<Layout | undefined>): void {
    if (this.otherTraced(node, ins, [0])) return;
    const a = ins[0];
    const label = `Gemm "${nodeLabel(node)}"`;
    const w = this.konst(node.input[1]);
    const transA = intAttr(node, 'transA', 0) === 1;
    const transB = intAttr(node, 'transB', 0) === 1;
    const wd = w ? dimsOf(w.tensor) : [];
    const excluded = this.excluded(node);
    if (a) {
      if (excluded) this.pinLayout(a, `${label} is excluded by the recipe`);
      else if (!w || wd.length !== 2) this.pinLayout(a, `${label} has no constant 2-D weight`);
      else if (transA || a.axis !== -1) this.pinLayout(a, `${label} reads the channels on a transposed axis`);
      else {
        const inner = this.innerFor(node, a, transB ? wd[1] : wd[0]);
        if (inner !== undefined) this.slice(node, 1, transB ? 1 : 0, a, 'sink', inner);
      }
    }
    if (!w || wd.length !== 2) return;
    const n = transB ? wd[0] : wd[1];
    const s = this.spaces.create(n, { node, input: 1, axis: transB ? 0 : 1 });
    const out = singleSpace(s, n, 2, -1);
    if (excluded) this.spaces.pin(s, `${label} is excluded by the recipe`);
    this.slice(node, 1, transB ? 0 : 1, out, 'source');
    if (node.input[2]) {
      const c = this.konst(node.input[2]);
      const cd = c ? dimsOf(c.tensor) : [];
      if (!c || cd.length > 2) this.spaces.pin(s, `${label} has a bias that is not a constant of rank ≤ 2`);
      else if (cd.length > 0 && cd[cd.length - 1] === n) this.slice(node, 2, cd.length - 1, out, 'param');
      else if (cd.length > 0 && cd[cd.length - 1] !== 1) this.spaces.pin(s, `${label} bias shape [${cd}] does not broadcast over ${n} outputs`);
    }
    this.set(node.output[0], out);
  }

  private matmul(node: NodeProto, ins: Array<Layout | undefined>): void {
    if (this.otherTraced(node, ins, [0])) return;
    const a = ins[0];
    const label = `MatMul "${nodeLabel(node)}"`;
    const w = this.konst(node.input[1]);
    const wd = w ? dimsOf(w.tensor) : [];
    const excluded = this.excluded(node);
    if (a) {
      if (excluded) this.pinLayout(a, `${label} is excluded by the recipe`);
      else if (!w || wd.length !== 2) this.pinLayout(a, `${label} has no constant 2-D weight`);
      else if (a.axis !== -1) this.pinLayout(a, `${label} contracts an axis other than the channel axis`);
      else {
        const inner = this.innerFor(node, a, wd[0]);
        if (inner !== undefined) this.slice(node, 1, 0, a, 'sink', inner);
      }
    }
    if (!w || wd.length !== 2) return;
    const s = this.spaces.create(wd[1], { node, input: 1, axis: 1 });
    if (excluded) this.spaces.pin(s, `${label} is excluded by the recipe`);
    const out = singleSpace(s, wd[1], a?.rank, -1);
    this.slice(node, 1, 1, out, 'source');
    this.set(node.output[0], out);
  }

  // ---- ops channels pass through ----

  private unary(node: NodeProto, ins: Array<Layout | undefined>): void {
    if (this.otherTraced(node, ins, [0])) return;
    const x = ins[0]!;
    // Dropout's mask has the data's shape: it carries the same channels.
    for (const o of node.output) this.set(o, x);
  }

  private binary(node: NodeProto, ins: Array<Layout | undefined>): void {
    const label = `${node.opType} "${nodeLabel(node)}"`;
    const traced = ins.filter((l): l is Layout => Boolean(l));
    const first = traced[0];
    if (node.opType === 'PRelu' && ins[1]) return this.opaque(node, `${label} takes its slope from a traced value`);
    for (const other of traced.slice(1)) {
      if (!sameStructure(first, other)) { this.opaque(node, `${label} combines values whose channel layouts differ`); return; }
    }
    for (const other of traced.slice(1)) other.segs.forEach((seg, i) => this.spaces.union(first.segs[i].space, seg.space, label));
    let rank = first.rank;
    for (let i = 0; i < node.input.length; i++) {
      const name = node.input[i];
      if (!name || ins[i]) continue;
      const c = this.konst(name);
      if (!c) {
        // A run-time value the analysis did not trace: its channels cannot shrink, so neither can ours.
        this.pinLayout(first, `${label} combines it with "${name}", whose channels are not traced`);
        continue;
      }
      const cd = dimsOf(c.tensor);
      const pos = cd.length + first.axis;
      if (first.rank !== undefined && cd.length > first.rank) rank = cd.length;
      if (pos < 0 || cd[pos] === 1) continue; // broadcast over the channels
      if (first.flat || cd[pos] !== totalLen(first)) {
        this.pinLayout(first, `${label} constant "${name}" [${cd}] does not line up with the channel axis`);
        continue;
      }
      this.slice(node, i, pos, first, 'param');
    }
    this.set(node.output[0], { ...first, rank });
  }

  private passSpatial(node: NodeProto, ins: Array<Layout | undefined>, extra?: string): void {
    if (this.otherTraced(node, ins, [0])) return;
    const x = ins[0]!;
    if (!this.onDim1(node, x)) return;
    if (extra && this.used(node.output[1])) {
      this.pinLayout(x, `${node.opType} "${nodeLabel(node)}" ${extra} are used, and they count channels`);
      return;
    }
    this.set(node.output[0], x);
  }

  private norm(node: NodeProto, ins: Array<Layout | undefined>): void {
    if (this.otherTraced(node, ins, [0])) return;
    const x = ins[0]!;
    if (!this.onDim1(node, x)) return;
    // Training-mode BatchNormalization also outputs running statistics of C values, which nothing here would slice.
    if (node.output.slice(1).some((o) => o && this.used(o))) {
      this.pinLayout(x, `${node.opType} "${nodeLabel(node)}" outputs running statistics that are used`);
      return;
    }
    const params = node.opType === 'BatchNormalization' ? [1, 2, 3, 4] : [1, 2];
    for (const i of params) {
      const c = this.konst(node.input[i]);
      if (!c || dimsOf(c.tensor).length !== 1) { this.pinLayout(x, `${node.opType} "${nodeLabel(node)}" parameter ${i} is not a constant vector`); return; }
    }
    for (const i of params) this.slice(node, i, 0, x, 'param');
    if (node.opType === 'BatchNormalization' && x.segs.length === 1) this.spaces.addNorm(x.segs[0].space, node);
    this.set(node.output[0], x);
  }

  private resize(node: NodeProto, ins: Array<Layout | undefined>): void {
    if (this.otherTraced(node, ins, [0])) return;
    const x = ins[0]!;
    const label = `${node.opType} "${nodeLabel(node)}"`;
    if (!this.onDim1(node, x)) return;
    // Resize-11+: X, roi, scales, sizes. Resize-10 and Upsample-9: X, scales. Upsample-7: a scales attribute.
    const scalesName = node.input.length >= 3 ? node.input[2] : node.input[1];
    const sizesName = node.input.length >= 4 ? node.input[3] : undefined;
    if (sizesName) { this.pinLayout(x, `${label} sets output sizes, channel count included`); return; }
    let scales: number[] | undefined;
    const attrScales = node.attribute.find((a) => a.name === 'scales');
    if (attrScales) scales = attrScales.floats;
    else {
      const c = this.konst(scalesName);
      if (c) scales = Array.from(readConst(c, this.model.dir).data as ArrayLike<number>);
    }
    if (!scales || scales[1] !== 1) { this.pinLayout(x, `${label} scales are not constant or scale the channel dim`); return; }
    this.set(node.output[0], x);
  }

  private pad(node: NodeProto, ins: Array<Layout | undefined>): void {
    if (this.otherTraced(node, ins, [0])) return;
    const x = ins[0]!;
    const p = this.posAxis(x);
    const c = this.konst(node.input[1]);
    const attrPads = node.attribute.find((a) => a.name === 'pads')?.ints.map(Number);
    const pads = attrPads ?? (c ? Array.from(readConst(c, this.model.dir).data as ArrayLike<number | bigint>, Number) : undefined);
    if (x.flat || p === undefined || !pads || pads.length !== 2 * x.rank! || pads[p] !== 0 || pads[p + x.rank!] !== 0) {
      this.pinLayout(x, `Pad "${nodeLabel(node)}" may pad the channel axis`);
      return;
    }
    this.set(node.output[0], x);
  }

  private concat(node: NodeProto, ins: Array<Layout | undefined>): void {
    const label = `Concat "${nodeLabel(node)}"`;
    const all = ins.every(Boolean) && ins.length === node.input.length;
    const first = ins.find(Boolean)!;
    const rank = first.rank;
    if (!all || rank === undefined || ins.some((l) => l!.flat || l!.rank !== rank || l!.axis !== first.axis)) {
      this.opaque(node, `${label} joins values whose channels are not all traced the same way`);
      return;
    }
    const axisAttr = intAttr(node, 'axis', 1);
    const ca = axisAttr < 0 ? axisAttr + rank : axisAttr;
    if (ca === rank + first.axis) {
      // Along the channel axis: the output's channels are the inputs' side by side (offsets follow the kept counts).
      this.set(node.output[0], { rank, axis: first.axis, flat: false, segs: ins.flatMap((l) => l!.segs) });
      return;
    }
    // Along another axis: every input must keep the same channels.
    for (const l of ins.slice(1)) {
      if (!sameStructure(first, l!)) { this.opaque(node, `${label} joins values with different channel layouts`); return; }
    }
    for (const l of ins.slice(1)) l!.segs.forEach((seg, i) => this.spaces.union(first.segs[i].space, seg.space, label));
    this.set(node.output[0], first);
  }

  private flatten(node: NodeProto, ins: Array<Layout | undefined>): void {
    const x = ins[0]!;
    const p = this.posAxis(x);
    const axisAttr = intAttr(node, 'axis', 1);
    const fa = x.rank === undefined ? undefined : axisAttr < 0 ? axisAttr + x.rank : axisAttr;
    if (x.flat || p === undefined || fa !== p) {
      this.pinLayout(x, `Flatten "${nodeLabel(node)}" does not start at the channel axis`);
      return;
    }
    this.set(node.output[0], { rank: 2, axis: -1, segs: x.segs, flat: true });
  }

  private reshape(node: NodeProto, ins: Array<Layout | undefined>): void {
    if (this.otherTraced(node, ins, [0])) return;
    const x = ins[0]!;
    const c = this.konst(node.input[1]);
    const shape = c ? Array.from(readConst(c, this.model.dir).data as ArrayLike<number | bigint>, Number) : undefined;
    const r = flattenByReshape(x, shape, this.declaredDims(node.input[0]), intAttr(node, 'allowzero', 0) === 1);
    if (typeof r === 'string') { this.pinLayout(x, `Reshape "${nodeLabel(node)}" ${r}`); return; }
    if (r.rewrite) this.edits.push({ kind: 'reshape', node, input: 1, pos: r.pos, layout: x, inner: r.layout.inner! });
    this.set(node.output[0], r.layout);
  }

  /** A value's dims as the model declares them (a number per fixed dim), if it does. */
  private declaredDims(name: string): Array<number | undefined> | undefined {
    const tv = this.declared.get(name)?.type?.value;
    if (tv?.case !== 'tensorType' || !tv.value.shape) return undefined;
    return tv.value.shape.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : undefined));
  }
}
