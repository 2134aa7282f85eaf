// Which channels each space keeps: importance from the weights that produce the channels (L1/L2 norm per output
// channel, each producer normalised by its mean so coupled layers weigh alike, times |γ|/σ of a BatchNormalization
// applied to the space), then the lowest-ranked channels go, per layer or against one global threshold.
import type { OnnxModel } from '../../onnx/model.js';
import { toFloat32 } from '../../onnx/tensor.js';
import { GraphIndex } from '../../onnx/graph.js';
import type { Spaces } from './spaces.js';
import { constRef, floatAttr, nodeLabel, readConst } from './tensors.js';

export interface SelectOptions {
  ratio: number;
  importance?: 'l1' | 'l2';
  scope?: 'layer' | 'global';
  /** kept channel counts are rounded to a multiple of this */
  multiple?: number;
  /** ratio per layer, by the name of any node that produces the space's channels */
  perLayer?: Record<string, number>;
}

export interface SpaceChoice {
  space: number;
  /** the first producing node's name: the key `perLayer` and sensitivity use */
  leader: string;
  /** every node producing these channels (coupled layers) */
  nodes: string[];
  channels: number;
  /** kept channel indices, ascending; undefined when the space is pinned or nothing is removed */
  keep?: number[];
  pins: string[];
  /** why fewer (or no) channels were removed than asked */
  note?: string;
}

// Even a global threshold never empties a layer: at most this fraction of a space goes.
const MAX_GLOBAL_RATIO = 0.9;

/** Per-channel importance of one space (length = the space's size), or a reason it cannot be computed. */
export function spaceImportance(model: OnnxModel, idx: GraphIndex, spaces: Spaces, space: number, kind: 'l1' | 'l2' = 'l1'): Float64Array | string {
  const size = spaces.size(space);
  const score = new Float64Array(size);
  for (const src of spaces.sources(space)) {
    const ref = constRef(idx, src.node.input[src.input]);
    if (!ref) return `weight of "${nodeLabel(src.node)}" is not constant`;
    const t = readConst(ref, model.dir);
    const w = toFloat32(t);
    const n = t.dims[src.axis];
    if (n !== size) return `weight of "${nodeLabel(src.node)}" has ${n} channels on axis ${src.axis}, expected ${size}`;
    const inner = t.dims.slice(src.axis + 1).reduce((a, b) => a * b, 1);
    const outer = w.length / (n * inner);
    const norms = new Float64Array(n);
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < n; c++) {
        const base = (o * n + c) * inner;
        let s = 0;
        for (let i = 0; i < inner; i++) { const v = w[base + i]; s += kind === 'l2' ? v * v : Math.abs(v); }
        norms[c] += s;
      }
    }
    if (kind === 'l2') for (let c = 0; c < n; c++) norms[c] = Math.sqrt(norms[c]);
    const mean = norms.reduce((a, b) => a + b, 0) / n;
    for (let c = 0; c < n; c++) score[c] += mean > 0 ? norms[c] / mean : 0;
  }
  for (const bn of spaces.norms(space)) {
    const gamma = constRef(idx, bn.input[1]), variance = constRef(idx, bn.input[4]);
    if (!gamma || !variance) continue;
    const g = toFloat32(readConst(gamma, model.dir)), v = toFloat32(readConst(variance, model.dir));
    const eps = floatAttr(bn, 'epsilon', 1e-5);
    if (g.length !== size || v.length !== size) continue;
    for (let c = 0; c < size; c++) score[c] *= Math.abs(g[c]) / Math.sqrt(v[c] + eps);
  }
  return score;
}

/** How many channels to keep out of `c` for a ratio, rounded to a multiple; `c` itself means "leave alone". */
export function keepCount(c: number, ratio: number, multiple = 1): number {
  const want = c * (1 - ratio);
  let k = multiple > 1 ? Math.round(want / multiple) * multiple : Math.round(want);
  k = Math.max(k, multiple > 1 ? multiple : 1);
  return Math.min(k, c);
}

function topK(score: Float64Array, k: number): number[] {
  const order = Array.from(score.keys()).sort((a, b) => score[b] - score[a] || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}

/** Chooses the kept channels of every space. Pure given the model's weights. */
export function chooseChannels(model: OnnxModel, spaces: Spaces, opts: SelectOptions): SpaceChoice[] {
  const m = opts.multiple ?? 1;
  const choices: SpaceChoice[] = [];
  const scores = new Map<number, Float64Array>();
  const idx = new GraphIndex(model.proto.graph!);
  for (const s of spaces.roots()) {
    const srcs = spaces.sources(s);
    const nodes = [...new Set(srcs.map((x) => nodeLabel(x.node)))];
    const choice: SpaceChoice = { space: s, leader: nodes[0] ?? `space#${s}`, nodes, channels: spaces.size(s), pins: [...spaces.pins(s)] };
    choices.push(choice);
    if (choice.pins.length) continue;
    if (choice.channels < 2) { choice.note = 'a single channel cannot be pruned'; continue; }
    const score = spaceImportance(model, idx, spaces, s, opts.importance);
    if (typeof score === 'string') { choice.pins.push(score); continue; }
    scores.set(s, score);
  }
  const ratioOf = (c: SpaceChoice) => {
    const named = c.nodes.find((n) => opts.perLayer && Object.hasOwn(opts.perLayer, n));
    return named !== undefined ? opts.perLayer![named] : undefined;
  };
  if (opts.scope === 'global') {
    // One threshold over all free channels, scores compared after each space's own mean normalisation.
    const free = choices.filter((c) => scores.has(c.space) && ratioOf(c) === undefined);
    const all: number[] = [];
    for (const c of free) {
      const s = scores.get(c.space)!;
      const mean = s.reduce((a, b) => a + b, 0) / s.length || 1;
      for (const v of s) all.push(v / mean);
    }
    all.sort((a, b) => a - b);
    const cut = Math.floor(opts.ratio * all.length);
    const threshold = cut > 0 ? all[cut - 1] : -Infinity;
    for (const c of free) {
      const s = scores.get(c.space)!;
      const mean = s.reduce((a, b) => a + b, 0) / s.length || 1;
      let removed = 0;
      for (const v of s) if (v / mean <= threshold) removed++;
      let r = removed / c.channels;
      if (r > MAX_GLOBAL_RATIO) { r = MAX_GLOBAL_RATIO; c.note = `the global threshold would remove ${removed} of ${c.channels}; capped at ${MAX_GLOBAL_RATIO * 100}%`; }
      settle(c, s, r, m);
    }
    for (const c of choices) if (scores.has(c.space) && ratioOf(c) !== undefined) settle(c, scores.get(c.space)!, ratioOf(c)!, m);
  } else {
    for (const c of choices) if (scores.has(c.space)) settle(c, scores.get(c.space)!, ratioOf(c) ?? opts.ratio, m);
  }
  return choices;
}

function settle(c: SpaceChoice, score: Float64Array, ratio: number, multiple: number): void {
  const k = keepCount(c.channels, ratio, multiple);
  if (k >= c.channels) {
    if (ratio > 0) c.note ??= `${c.channels} channels at ratio ${ratio}${multiple > 1 ? ` rounded to a multiple of ${multiple}` : ''} leaves all of them`;
    return;
  }
  c.keep = topK(score, k);
}
