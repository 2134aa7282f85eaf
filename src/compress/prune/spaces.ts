// Channel spaces: the unit structured pruning removes channels from. A space is a set of C channels that must be
// pruned with one keep-list: a layer's output channels, joined (union-find) with every other layer's output that an
// element-wise op couples them with (residual Add, x·sigmoid(x), squeeze-excitation Mul). A value's channel axis is
// described by a Layout: which spaces it holds, in order (Concat puts several side by side).
import type { NodeProto } from 'onnx-buf';

/** One run of channels on a value's channel axis, all from one space. */
export interface Seg {
  space: number;
  len: number;
}

/**
 * Where a value carries pruneable channels. `axis` is negative (counted from the end) so that numpy-style
 * broadcasting against constants lines up without knowing every rank. `flat` means the channel axis was merged with
 * the dims after it (Flatten/Reshape before a Gemm): each channel then spans `inner` consecutive positions, and
 * `inner` is learnt from the consumer's weight when the reshape did not say.
 */
export interface Layout {
  rank?: number;
  axis: number;
  segs: Seg[];
  flat: boolean;
  inner?: number;
}

/** A weight whose slices along `axis` are the space's channels: where importance is read from. */
export interface SourceRef {
  node: NodeProto;
  input: number;
  axis: number;
}

interface SpaceRec {
  parent: number;
  size: number;
  sources: SourceRef[];
  pins: string[];
  /** BatchNormalization nodes applied to exactly this space: their scale weighs the importance */
  norms: NodeProto[];
}

export class Spaces {
  private readonly recs: SpaceRec[] = [];

  create(size: number, source?: SourceRef): number {
    this.recs.push({ parent: this.recs.length, size, sources: source ? [source] : [], pins: [], norms: [] });
    return this.recs.length - 1;
  }

  find(s: number): number {
    let r = s;
    while (this.recs[r].parent !== r) r = this.recs[r].parent;
    // path compression keeps later look-ups flat
    while (this.recs[s].parent !== r) { const next = this.recs[s].parent; this.recs[s].parent = r; s = next; }
    return r;
  }

  /** Joins two spaces; a size mismatch cannot be pruned consistently, so both end up pinned. */
  union(a: number, b: number, where: string): void {
    const ra = this.find(a), rb = this.find(b);
    if (ra === rb) return;
    const A = this.recs[ra], B = this.recs[rb];
    B.parent = ra;
    A.sources.push(...B.sources);
    A.pins.push(...B.pins);
    A.norms.push(...B.norms);
    if (A.size !== B.size) A.pins.push(`${where} joins ${A.size} channels with ${B.size}`);
  }

  pin(s: number, why: string): void {
    const r = this.recs[this.find(s)];
    if (!r.pins.includes(why)) r.pins.push(why);
  }

  addNorm(s: number, node: NodeProto): void {
    this.recs[this.find(s)].norms.push(node);
  }

  size(s: number): number { return this.recs[this.find(s)].size; }
  sources(s: number): SourceRef[] { return this.recs[this.find(s)].sources; }
  pins(s: number): string[] { return this.recs[this.find(s)].pins; }
  norms(s: number): NodeProto[] { return this.recs[this.find(s)].norms; }

  /** The distinct root spaces, in creation order. */
  roots(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.recs.length; i++) if (this.find(i) === i) out.push(i);
    return out;
  }
}

export function totalLen(l: Layout): number {
  return l.segs.reduce((a, s) => a + s.len, 0);
}

export function singleSpace(space: number, len: number, rank: number | undefined, axis: number): Layout {
  return { rank, axis, segs: [{ space, len }], flat: false };
}

/** Whether two layouts describe the same channel structure (so an element-wise op can join them segment by segment). */
export function sameStructure(a: Layout, b: Layout): boolean {
  return a.axis === b.axis && a.flat === b.flat && a.segs.length === b.segs.length && a.segs.every((s, i) => s.len === b.segs[i].len);
}

/**
 * The positions along the value's channel axis that survive, given each space's keep-list; `inner` is the number of
 * consecutive positions per channel (1 unless the layout is flat).
 */
export function keptPositions(l: Layout, keepOf: (space: number) => readonly number[] | undefined, inner = 1): number[] {
  const out: number[] = [];
  let offset = 0;
  for (const seg of l.segs) {
    const keep = keepOf(seg.space);
    const list = keep ?? Array.from({ length: seg.len }, (_, i) => i);
    for (const c of list) for (let s = 0; s < inner; s++) out.push(offset + c * inner + s);
    offset += seg.len * inner;
  }
  return out;
}

/** How many channels of the layout survive. */
export function keptCount(l: Layout, keepOf: (space: number) => readonly number[] | undefined): number {
  return l.segs.reduce((a, s) => a + (keepOf(s.space)?.length ?? s.len), 0);
}
