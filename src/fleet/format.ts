// Tables and progress lines for fleet commands: data in, text out (printing happens in the CLI).
import { formatTable, fmtNum } from '../cli/output.js';
import type { DistributedTuneResult } from './distributed.js';
import type { RolloutResult, WaveOutcome } from './rollout.js';
import type { ResultRow } from './store/results.js';
import type { TrackedJob, TrackerChange } from './tracker.js';
import type { DeviceRecord } from './view.js';
import { latencyAt } from '../tune/decide.js';
import { summarizeResult } from './result-doc.js';

const dash = (v: unknown) => (v === undefined || v === null || v === '' ? '-' : String(v));
const ms = (v: number | undefined) => (v === undefined ? '-' : `${fmtNum(Number(v.toFixed(3)))} ms`);

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (Number.isNaN(s)) return '-';
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  if (s < 172800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function resultBrief(r: ResultRow | undefined, now = Date.now()): string {
  if (!r) return '-';
  const q = r.accuracy !== undefined ? ` acc ${r.accuracy.toFixed(3)}` : r.sqnrDb !== undefined ? ` SQNR ${r.sqnrDb.toFixed(1)} dB` : '';
  const lat = r.latencyP90 !== undefined ? ` p90 ${fmtNum(Number(r.latencyP90.toFixed(3)))} ms` : '';
  return `${r.type}${r.label ? ` ${r.label}` : ''}${lat}${q} (${ago(r.receivedAt, now)})`;
}

export interface DeviceRow {
  device: string;
  target?: string;
  online?: boolean;
  deployed?: { sha256?: string; recipe?: string; since?: string };
  lastResult?: { jobId: string; type: string; label?: string; latencyP90?: number; accuracy?: number; sqnrDb?: number; receivedAt: string };
  /** The retained health document as the device sent it. */
  health?: Record<string, unknown>;
  notes: string[];
}

export function deviceRows(records: DeviceRecord[], latest: Map<string, ResultRow>): DeviceRow[] {
  return records.map((r) => {
    const l = latest.get(r.device);
    const notes: string[] = [];
    if (r.targetNote) notes.push(r.targetNote);
    if (r.online === undefined) notes.push('no retained status');
    return {
      device: r.device,
      target: r.target,
      online: r.online,
      ...(r.deployed ? { deployed: { sha256: r.deployed.sha256, recipe: r.deployed.label, since: r.deployed.since } } : {}),
      ...(r.health ? { health: r.health } : {}),
      ...(l ? { lastResult: { jobId: l.jobId, type: l.type, label: l.label, latencyP90: l.latencyP90, accuracy: l.accuracy, sqnrDb: l.sqnrDb, receivedAt: l.receivedAt } } : {}),
      notes,
    };
  });
}

export function formatDevices(rows: DeviceRow[], latest: Map<string, ResultRow>, now = Date.now()): string {
  if (!rows.length) return 'no devices: nothing has published a retained status or profile under this fleet on this broker';
  const online = rows.filter((r) => r.online).length;
  const table = formatTable(['device', 'target', 'online', 'deployed', 'since', 'last result'], rows.map((r) => [
    r.device,
    dash(r.target),
    r.online === undefined ? '?' : r.online ? 'yes' : 'no',
    r.deployed ? `${r.deployed.recipe ?? '(recipe not given)'} ${r.deployed.sha256?.slice(0, 8) ?? ''}`.trim() : '-',
    r.deployed?.since ? ago(r.deployed.since, now) : '-',
    resultBrief(latest.get(r.device), now),
  ]));
  return `${table}\n${rows.length} devices, ${online} online`;
}

/** One line per device event; progress lines are for the caller to throttle. */
export function progressLine(t: TrackedJob, what: TrackerChange, now = new Date()): string {
  const time = now.toISOString().slice(11, 19);
  const state = t.verdict ?? t.state;
  const p = t.progress;
  const detail = what === 'done'
    ? (t.error ? `${t.error.code}: ${t.error.message}` : summaryOf(t))
    : p ? `${p.step} ${Math.round(p.pct)}%${p.etaS !== undefined ? ` ETA ${p.etaS}s` : ''}` : '';
  return `${time} ${t.device.padEnd(14)} ${t.jobId}  ${state}${detail ? `  ${detail}` : ''}`;
}

function summaryOf(t: TrackedJob): string {
  if (t.result === undefined) return '';
  const s = summarizeResult(t.result);
  const parts = [s.label, s.latencyP90 !== undefined ? `p90 ${ms(s.latencyP90)}` : undefined, s.accuracy !== undefined ? `acc ${s.accuracy.toFixed(3)}` : undefined];
  if (s.kind === 'tune' && s.chosen === false) parts.push('budget NOT met');
  if (s.simulated) parts.push('[simulated]');
  return parts.filter(Boolean).join(' ');
}

export function formatOutcomes(entries: TrackedJob[]): string {
  const rows = entries.map((t) => [t.device, t.verdict ?? t.state, t.error ? `${t.error.code}: ${t.error.message}` : summaryOf(t)]);
  const byVerdict = new Map<string, number>();
  for (const t of entries) byVerdict.set(t.verdict ?? 'PENDING', (byVerdict.get(t.verdict ?? 'PENDING') ?? 0) + 1);
  const totals = [...byVerdict].map(([k, v]) => `${v} ${k}`).join(', ');
  return `${formatTable(['device', 'outcome', 'detail'], rows)}\n${entries.length} devices: ${totals || 'none'}`;
}

export function formatWave(w: WaveOutcome, rate: number): string {
  return `wave ${w.index} (${w.phase}, ${w.devices.length} devices): ${w.succeeded} succeeded, ${w.failed} failed, ${w.skipped} skipped; failure rate so far ${(rate * 100).toFixed(1)}%`;
}

export function formatRollout(r: RolloutResult): string {
  const lines = [formatOutcomes([...r.deploys, ...r.rollbacks])];
  lines.push(r.status === 'completed'
    ? `rollout ${r.runId} completed: ${r.waves.length} waves`
    : `rollout ${r.runId} ABORTED: ${r.reason}; ${r.rollbacks.length} devices rolled back (${r.rollbacks.filter((t) => t.verdict === 'SUCCEEDED').length} confirmed), ${r.notReached.length} never reached`);
  if (r.unknown.length) lines.push(`state unknown (no answer to deploy, not rolled back): ${r.unknown.join(', ')}`);
  return lines.join('\n');
}

/** Up to this many trials are listed one per row; beyond it, the merged front and the winner only. */
const ALL_TRIALS_UP_TO = 24;

export function formatDistributed(r: DistributedTuneResult): string {
  const p = r.budget.percentile;
  const shown = r.trials.length <= ALL_TRIALS_UP_TO ? r.trials : r.trials.filter((m) => m === r.chosen || m === r.infeasible?.best || r.front.includes(m));
  const rows = shown.map((m) => [
    r.chosen === m ? '→' : r.front.includes(m) ? '*' : '',
    m.label,
    Number(latencyAt(m, p).toFixed(3)),
    m.quality.accuracy !== undefined ? m.quality.accuracy.toFixed(4) : '-',
    m.quality.sqnrDb === undefined ? '-' : Number.isFinite(m.quality.sqnrDb) ? m.quality.sqnrDb.toFixed(1) : 'exact',
    latencyAt(m, p) <= r.budget.latencyMs ? 'yes' : 'no',
  ]);
  const list = (c: string[]) => (c.length <= 4 ? c.join(', ') : `${c.length} candidates: ${c.slice(0, 3).join(', ')}, …`);
  const shares = r.shares.map((s) => `  share ${s.index} [${list(s.candidates)}] → ${s.state === 'done' ? s.device : `FAILED: ${s.error}`}${s.attempts.length > 1 ? ` (${s.attempts.length} attempts: ${s.attempts.map((a) => `${a.device} ${a.verdict ?? 'dropped'}`).join(', ')})` : ''}`);
  const verdict = r.chosen
    ? `winner for ${r.target}: ${r.chosen.label} — p${p} ${latencyAt(r.chosen, p).toFixed(3)} ms ≤ ${r.budget.latencyMs} ms`
    : `NOT MET for ${r.target}: ${r.infeasible?.reason ?? 'no candidate was measured'}`;
  return [
    `${r.target}: ${r.trials.length} candidates measured on ${r.devices.length} devices in ${r.wallS.toFixed(1)} s`,
    ...shares,
    formatTable(['', 'candidate', `p${p} ms`, 'accuracy', 'SQNR dB', 'in budget'], rows),
    ...(shown.length < r.trials.length ? [`(the merged front and the winner; ${r.trials.length - shown.length} more trials in --json)`] : []),
    '(→ winner, * on the merged latency/quality Pareto front)',
    ...(r.unmeasured.length ? [`not measured: ${r.unmeasured.join(', ')}`] : []),
    ...r.skipped.map((x) => `skipped by ${x.device}: ${x.label} (${x.why})`),
    ...r.notes.map((n) => `note: ${n}`),
    verdict,
  ].join('\n');
}

export function formatResults(rows: ResultRow[], now = Date.now()): string {
  if (!rows.length) return 'no results';
  return formatTable(['received', 'device', 'job', 'type', 'candidate', 'p50 ms', 'p90 ms', 'accuracy', 'SQNR dB', ''], rows.map((r) => [
    ago(r.receivedAt, now), r.device, r.jobId, r.type, dash(r.label),
    r.latencyP50 === undefined ? '-' : Number(r.latencyP50.toFixed(3)),
    r.latencyP90 === undefined ? '-' : Number(r.latencyP90.toFixed(3)),
    r.accuracy === undefined ? '-' : r.accuracy.toFixed(4),
    r.sqnrDb === undefined ? '-' : r.sqnrDb.toFixed(1),
    r.simulated ? 'simulated' : '',
  ]));
}
