// Structured channel pruning as one pure pass: analyse the channel dependencies, choose the channels to keep, slice
// every coupled tensor. Removing whole channels shrinks the dense kernels ONNX Runtime runs, so it is faster, not
// just smaller.
import type { OnnxModel } from '../../onnx/model.js';
import type { PassReport } from '../../types.js';
import type { PassOptions } from '../pass.js';
import { applyChoices, type SinkInfo } from './apply.js';
import { analyzeChannels, type Edit } from './deps.js';
import { chooseChannels, type SelectOptions, type SpaceChoice } from './select.js';

export interface ChannelPruneOptions extends SelectOptions, PassOptions {}

export interface ChannelPruneResult {
  report: PassReport;
  /** every channel space found, pruned or not, with the reasons for the ones left alone */
  spaces: SpaceChoice[];
  /** layers whose input channels shrank (what reconstruction refits) */
  sinks: SinkInfo[];
}

/** Prunes `model` in place (pass a copy). */
export function pruneChannels(model: OnnxModel, opts: ChannelPruneOptions): ChannelPruneResult {
  const analysis = analyzeChannels(model, opts);
  const spaces = chooseChannels(model, analysis.spaces, opts);
  const op = (c: SpaceChoice) => analysis.spaces.sources(c.space)[0]?.node.opType ?? '?';
  const readers = countReaders(analysis.edits, (s) => analysis.spaces.find(s));
  const { sinks } = applyChoices(model, analysis, spaces);
  const report: PassReport = { pass: 'prune-channel', changed: [], skipped: [] };
  for (const c of spaces) {
    if (c.keep) {
      const coupled = c.nodes.length > 1 ? `; coupled with ${c.nodes.slice(1).join(', ')}` : '';
      const r = readers.get(c.space);
      const also = r ? `; ${r.sinks} reading layer(s) and ${r.params} parameter tensor(s) shrink with it` : '';
      report.changed.push({ node: c.leader, op: op(c), what: `output channels ${c.channels} → ${c.keep.length} (${opts.importance ?? 'l1'} importance)${coupled}${also}${c.note ? `; ${c.note}` : ''}` });
    } else {
      const why = c.pins.length ? `left alone: ${c.pins.slice(0, 3).join('; ')}${c.pins.length > 3 ? `; and ${c.pins.length - 3} more` : ''}` : (c.note ?? 'nothing to remove');
      report.skipped.push({ node: c.leader, op: op(c), why });
    }
  }
  return { report, spaces, sinks };
}

function countReaders(edits: Edit[], root: (s: number) => number): Map<number, { sinks: number; params: number }> {
  const out = new Map<number, { sinks: number; params: number }>();
  for (const e of edits) {
    if (e.kind !== 'slice' || e.role === 'source') continue;
    for (const s of new Set(e.layout.segs.map((x) => root(x.space)))) {
      const r = out.get(s) ?? { sinks: 0, params: 0 };
      if (e.role === 'sink') r.sinks++;
      else r.params++;
      out.set(s, r);
    }
  }
  return out;
}

