// Applies chosen keep-lists to the graph: every edit from the dependency analysis slices its tensor to the kept
// positions. Tensors shared by several nodes get one new copy per distinct slicing; the old ones are dropped once
// nothing reads them.
import type { NodeProto } from 'onnx-buf';
import { GraphIndex, pruneUnused } from '../../onnx/graph.js';
import type { OnnxModel } from '../../onnx/model.js';
import type { TensorData } from '../../onnx/tensor.js';
import type { ChannelAnalysis, Edit } from './deps.js';
import type { SpaceChoice } from './select.js';
import { keptCount, keptPositions } from './spaces.js';
import { constRef, readConst, replaceInput, setIntAttr, sliceAxis } from './tensors.js';

/** A layer whose input channels were removed: what reconstruction refits. */
export interface SinkInfo {
  node: NodeProto;
  op: string;
  /** the value it reads and the value it writes (same names in the original and the pruned model) */
  input: string;
  output: string;
  /** kept output channels, as indices into the original output channels; undefined when all are kept */
  keptOut?: number[];
  /** kept input positions along the weight's input axis (for a flattened input, channel × position) */
  keptIn: number[];
  inChannels: { before: number; after: number };
}

export interface ApplyResult {
  sinks: SinkInfo[];
  tensorsChanged: number;
}

export function applyChoices(model: OnnxModel, analysis: ChannelAnalysis, choices: SpaceChoice[]): ApplyResult {
  const g = model.proto.graph!;
  const idx = new GraphIndex(g);
  const byRoot = new Map(choices.map((c) => [c.space, c.keep]));
  const keepOf = (s: number) => byRoot.get(analysis.spaces.find(s));

  // Group slice edits per (node, input): a conv weight is sliced on axis 0 (its outputs) and axis 1 (its inputs).
  const perInput = new Map<NodeProto, Map<number, Array<Extract<Edit, { kind: 'slice' }>>>>();
  for (const e of analysis.edits) {
    if (e.kind !== 'slice') continue;
    const m = perInput.get(e.node) ?? new Map();
    perInput.set(e.node, m);
    m.set(e.input, [...(m.get(e.input) ?? []), e]);
  }
  const made = new Map<string, string>(); // original tensor + slicing → new tensor name
  const sinks: SinkInfo[] = [];
  let tensorsChanged = 0;
  for (const [node, inputs] of perInput) {
    let sinkIn: { before: number; after: number; keep: number[] } | undefined;
    let keptOut: number[] | undefined;
    for (const [input, edits] of inputs) {
      const name = node.input[input];
      const ref = constRef(idx, name);
      if (!ref) throw new Error(`internal: "${name}" of ${node.opType} "${node.name}" was planned as a constant`);
      const cuts: Array<{ axis: number; keep: number[] }> = [];
      const orig = ref.tensor.dims.map(Number);
      for (const e of edits) {
        const keep = keptPositions(e.layout, keepOf, e.inner);
        if (keep.length === orig[e.axis]) continue;
        if (cuts.some((c) => c.axis === e.axis)) throw new Error(`internal: "${name}" is sliced twice along axis ${e.axis}`);
        cuts.push({ axis: e.axis, keep });
        if (e.role === 'sink') sinkIn = { before: orig[e.axis], after: keep.length, keep };
        if (e.role === 'source') keptOut = keep;
      }
      if (!cuts.length) continue;
      const key = `${name}|${cuts.map((c) => `${c.axis}:${c.keep.join(',')}`).join('|')}`;
      const done = made.get(key);
      if (done) { node.input[input] = done; continue; }
      let t: TensorData = readConst(ref, model.dir);
      for (const c of cuts) t = sliceAxis(t, c.axis, c.keep);
      made.set(key, replaceInput(g, node, input, ref, t, `${name}_pruned`));
      tensorsChanged++;
    }
    // ConvTranspose is listed too, so that reconstruction reports it as not refitted instead of passing over it.
    if (sinkIn && (node.opType === 'Conv' || node.opType === 'ConvTranspose' || node.opType === 'Gemm' || node.opType === 'MatMul')) {
      sinks.push({ node, op: node.opType, input: node.input[0], output: node.output[0], keptOut, keptIn: sinkIn.keep, inChannels: { before: sinkIn.before, after: sinkIn.after } });
    }
  }
  for (const e of analysis.edits) {
    if (e.kind === 'group') {
      const k = keptCount(e.layout, keepOf);
      setIntAttr(e.node, 'group', k);
    } else if (e.kind === 'reshape') {
      const k = keptCount(e.layout, keepOf);
      const ref = constRef(idx, e.node.input[e.input])!;
      const t = readConst(ref, model.dir);
      const shape = BigInt64Array.from(t.data as ArrayLike<bigint>, (v) => BigInt(v));
      const want = BigInt(k * e.inner);
      if (shape[e.pos] === want) continue;
      shape[e.pos] = want;
      replaceInput(g, e.node, e.input, ref, { dtype: t.dtype, dims: t.dims, data: shape }, `${e.node.input[e.input]}_pruned`);
      tensorsChanged++;
    }
  }
  pruneUnused(g);
  return { sinks, tensorsChanged };
}
