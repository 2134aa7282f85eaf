// When a Reshape is a flatten of the channel axis with the dims after it (NCHW → [N, C·H·W] before a Gemm), and only
// then, channels can still be pruned through it: each channel then spans `inner` consecutive features.
import { totalLen, type Layout } from './spaces.js';

export interface ReshapeFlatten {
  layout: Layout;
  /** entry of the shape constant that holds the flattened size, when it is explicit and must follow the pruning */
  pos: number;
  rewrite: boolean;
}

/**
 * The layout after `Reshape(x, shape)`, or why it cannot be proved a flatten. `declared` are the input's dims as the
 * model annotates them (undefined where unknown): they prove leading dims unchanged and the positions per channel.
 */
export function flattenByReshape(x: Layout, shape: number[] | undefined, declared: Array<number | undefined> | undefined, allowzero: boolean): ReshapeFlatten | string {
  const p = x.rank === undefined ? undefined : x.rank + x.axis;
  if (x.flat || p === undefined || !shape) return 'is not a constant flatten of the channel axis';
  if (shape.length !== p + 1) return `to [${shape}] does not merge the channel axis with the dims after it`;
  if (allowzero && shape.includes(0)) return 'uses allowzero';
  const last = shape[p];
  // Each leading dim must provably stay what it was: copied (0), or equal to the declared input dim.
  for (let i = 0; i < p; i++) {
    if (shape[i] === 0) continue;
    if (shape[i] === -1 && last > 0) continue;
    if (shape[i] > 0 && declared?.[i] === shape[i]) continue;
    return `to [${shape}]: cannot prove dim ${i} stays the same`;
  }
  const total = totalLen(x);
  const trailing = declared && declared.length === x.rank ? declared.slice(p + 1) : undefined;
  const known = trailing?.every((d) => d !== undefined) ? trailing.reduce((a, d) => a * d!, 1) : undefined;
  const out = (inner: number | undefined): Layout => ({ rank: p + 1, axis: -1, segs: x.segs, flat: true, inner });
  if (last > 0) {
    const inner = last / total;
    if (!Number.isInteger(inner) || (known !== undefined && known !== inner)) return `to [${shape}] does not hold whole channels`;
    if (shape.slice(0, p).includes(-1) && known === undefined) return `to [${shape}]: cannot prove the last dim spans all positions of each channel`;
    return { layout: out(inner), pos: p, rewrite: true };
  }
  if (last === -1) return { layout: out(known), pos: p, rewrite: false };
  return `to [${shape}] has a last dim of ${last}`;
}
