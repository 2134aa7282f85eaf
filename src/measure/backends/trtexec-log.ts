// Parsers for what TensorRT's `trtexec` prints and writes. Pure functions over text.
import type { LatencyStats } from '../../types.js';
//
// The performance summary has had two layouts:
//   TensorRT 8+:  "[I] Latency: min = 1.2 ms, max = 1.5 ms, mean = 1.3 ms, median = 1.3 ms, percentile(99%) = 1.4 ms"
//                 (8.6+ adds percentile(90%) and percentile(95%); other rows: End-to-End Host Latency, Enqueue Time,
//                 H2D Latency, GPU Compute Time, D2H Latency)
//   TensorRT 7:   a "[I] Host Latency" header, then "[I] min: 6.1 ms (end to end 6.2 ms)" … "[I] percentile: 8.9 ms at
//                 99% (end to end 9.0 ms at 99%)", "[I] throughput: 145.5 qps", "[I] walltime: 3.0 s"; then
//                 "Enqueue Time" and "GPU Compute" blocks with the same keys
// Per-run times come from `--exportTimes=<file>`: a JSON array with one object per inference holding, among
// others, `latencyMs` (host latency: input copy + compute + output copy) and `computeMs` (GPU compute).

export interface TrtStats {
  min?: number;
  max?: number;
  mean?: number;
  median?: number;
  /** by percentile: { 90: …, 95: …, 99: … } */
  percentiles: Record<number, number>;
}

export interface TrtexecReport {
  /** as the banner gives it, e.g. "v8201" (8.2.1) or "v100200" (10.2.0) */
  versionTag?: string;
  /** "TensorRT version: 8.2.1" when printed */
  version?: string;
  passed?: boolean;
  device?: string;
  throughputQps?: number;
  /** "Latency" (TensorRT 8+) or "Host Latency" (7): what a caller waits for one inference, copies included */
  latency?: TrtStats;
  endToEnd?: TrtStats;
  gpuCompute?: TrtStats;
  enqueue?: TrtStats;
  h2d?: TrtStats;
  d2h?: TrtStats;
  /** "Timing trace has N queries over X s" */
  queries?: number;
  walltimeS?: number;
  warmupQueries?: number;
  buildS?: number;
  deserializeS?: number;
  /** "coefficient of variance = X%" when trtexec warns that GPU compute time is unstable */
  gpuCvPercent?: number;
  warnings: string[];
}

// "[07/14/2023-11:55:18] [I] " or "[I] " at the start of a line.
const PREFIX = /^\s*(?:\[[^\]]*\d[^\]]*\]\s*)?\[[IWEVF]\]\s?/;
const NUM = '([-+]?\\d+(?:\\.\\d+)?(?:[eE][-+]?\\d+)?)';

type Section = 'latency' | 'endToEnd' | 'gpuCompute' | 'enqueue' | 'h2d' | 'd2h';
const ROW_NAMES: Array<[RegExp, Section]> = [
  [/^End-to-End Host Latency$/i, 'endToEnd'],
  [/^(Host )?Latency$/i, 'latency'],
  [/^GPU Compute( Time)?$/i, 'gpuCompute'],
  [/^Enqueue Time$/i, 'enqueue'],
  [/^H2D Latency$/i, 'h2d'],
  [/^D2H Latency$/i, 'd2h'],
];

function sectionOf(name: string): Section | undefined {
  return ROW_NAMES.find(([re]) => re.test(name.trim()))?.[1];
}

function stats(r: TrtexecReport, s: Section): TrtStats {
  return (r[s] ??= { percentiles: {} });
}

/** One-line TensorRT 8+ row: "min = 1 ms, max = 2 ms, …, percentile(99%) = 1.9 ms" (the "=" is sometimes missing). */
function parseRow(text: string, into: TrtStats): boolean {
  const re = new RegExp(`(min|max|mean|median|percentile\\((\\d+(?:\\.\\d+)?)%\\))\\s*=?\\s*${NUM}\\s*ms`, 'g');
  let found = false;
  for (const m of text.matchAll(re)) {
    found = true;
    const v = Number(m[3]);
    if (m[2] !== undefined) into.percentiles[Number(m[2])] = v;
    else into[m[1] as 'min' | 'max' | 'mean' | 'median'] = v;
  }
  return found;
}

/** Parses a trtexec log (stdout and stderr together). Lines it does not know are skipped. */
export function parseTrtexecLog(text: string): TrtexecReport {
  const r: TrtexecReport = { warnings: [] };
  let block: Section | undefined; // TensorRT 7 block layout
  for (const raw of text.split(/\r?\n/)) {
    const banner = /&&&& (RUNNING|PASSED|FAILED) TensorRT\.trtexec(?: \[TensorRT (v\d+)\])?/.exec(raw);
    if (banner) {
      if (banner[2]) r.versionTag = banner[2];
      if (banner[1] !== 'RUNNING') r.passed = banner[1] === 'PASSED';
      continue;
    }
    const isWarn = /\[W\]/.test(raw.slice(0, 40));
    const line = raw.replace(PREFIX, '').trim();
    if (line === '') continue;
    let m: RegExpExecArray | null;
    if ((m = /^TensorRT version:\s*(\S+)/.exec(line))) { r.version = m[1]; continue; }
    if ((m = /^Selected Device:\s*(.+)$/.exec(line))) { r.device = m[1].trim(); continue; }
    if ((m = new RegExp(`^Throughput:\\s*${NUM}\\s*qps`, 'i').exec(line))) { r.throughputQps = Number(m[1]); continue; }
    if ((m = new RegExp(`^Timing trace has (\\d+) queries over ${NUM} s`).exec(line))) { r.queries = Number(m[1]); r.walltimeS ??= Number(m[2]); continue; }
    if ((m = /^Warmup completed (\d+) queries/.exec(line))) { r.warmupQueries = Number(m[1]); continue; }
    if ((m = new RegExp(`^Engine built in ${NUM} sec`).exec(line))) { r.buildS = Number(m[1]); continue; }
    if ((m = new RegExp(`^Engine deserialized in ${NUM} sec`).exec(line))) { r.deserializeS = Number(m[1]); continue; }
    if ((m = new RegExp(`^Total Host Walltime:\\s*${NUM}\\s*s`).exec(line))) { r.walltimeS = Number(m[1]); continue; }
    if ((m = new RegExp(`coefficient of variance = ${NUM}%`).exec(line))) { r.gpuCvPercent = Number(m[1]); }
    if (isWarn && !/^\[TRT\]/.test(line)) r.warnings.push(line);

    // TensorRT 8+: "Name: min = …" on one line.
    const colon = line.indexOf(':');
    if (colon > 0) {
      const sec = sectionOf(line.slice(0, colon));
      if (sec && parseRow(line.slice(colon + 1), stats(r, sec))) { block = undefined; continue; }
    }
    // TensorRT 7: a bare section header, then "key: value ms" lines.
    const header = sectionOf(line);
    if (header) { block = header; continue; }
    if (!block) continue;
    if ((m = new RegExp(`^(min|max|mean|median):\\s*${NUM}\\s*ms(?:\\s*\\(end to end ${NUM} ms\\))?`).exec(line))) {
      stats(r, block)[m[1] as 'min' | 'max' | 'mean' | 'median'] = Number(m[2]);
      if (m[3] !== undefined && block === 'latency') stats(r, 'endToEnd')[m[1] as 'min'] = Number(m[3]);
    } else if ((m = new RegExp(`^percentile:\\s*${NUM}\\s*ms at (\\d+(?:\\.\\d+)?)%(?:\\s*\\(end to end ${NUM} ms)?`).exec(line))) {
      stats(r, block).percentiles[Number(m[2])] = Number(m[1]);
      if (m[3] !== undefined && block === 'latency') stats(r, 'endToEnd').percentiles[Number(m[2])] = Number(m[3]);
    } else if ((m = new RegExp(`^throughput:\\s*${NUM}\\s*qps`).exec(line))) {
      r.throughputQps = Number(m[1]);
    } else if ((m = new RegExp(`^walltime:\\s*${NUM}\\s*s`).exec(line))) {
      r.walltimeS = Number(m[1]);
    }
  }
  return r;
}

/** "v8201" → "8.2.1", "v100200" → "10.2.0"; undefined for other tags. */
export function versionFromTag(tag: string): string | undefined {
  const m = /^v(\d+)$/.exec(tag);
  if (!m) return undefined;
  const n = Number(m[1]);
  // TensorRT encodes MAJOR*1000 + MINOR*100 + PATCH up to 9.x and MAJOR*10000 + MINOR*100 + PATCH from 10.0.
  return n >= 100000
    ? `${Math.floor(n / 10000)}.${Math.floor((n % 10000) / 100)}.${n % 100}`
    : `${Math.floor(n / 1000)}.${Math.floor((n % 1000) / 100)}.${n % 100}`;
}

export interface TrtTimes {
  samplesMs: number[];
  /** which field the samples came from */
  field: 'latencyMs' | 'computeMs' | 'compute span';
}

/**
 * Per-inference times from an `--exportTimes` JSON file: host latency when present (what the summary calls
 * Latency), else GPU compute. Throws RangeError naming what is wrong.
 */
export function parseTrtexecTimes(json: string, name = 'times file'): TrtTimes {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (e) {
    throw new RangeError(`${name}: not JSON (${(e as Error).message}); trtexec may have stopped before writing it`);
  }
  if (!Array.isArray(data) || data.length === 0) throw new RangeError(`${name}: expected a non-empty JSON array of per-inference records`);
  const rows = data as Array<Record<string, unknown>>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const pick = (f: (row: Record<string, unknown>) => number | undefined) => {
    const xs = rows.map(f);
    return xs.every((x) => x !== undefined && x >= 0) ? (xs as number[]) : undefined;
  };
  const latency = pick((r) => num(r.latencyMs));
  if (latency) return { samplesMs: latency, field: 'latencyMs' };
  const compute = pick((r) => num(r.computeMs));
  if (compute) return { samplesMs: compute, field: 'computeMs' };
  const span = pick((r) => {
    const a = num(r.startComputeMs), b = num(r.endComputeMs);
    return a !== undefined && b !== undefined ? b - a : undefined;
  });
  if (span) return { samplesMs: span, field: 'compute span' };
  throw new RangeError(`${name}: records have none of latencyMs, computeMs or startComputeMs/endComputeMs`);
}

/** Which summary row summaryStats took: host latency (what `latencyMs` per-run times hold) or GPU compute. */
export type SummaryRow = 'Latency' | 'GPU Compute Time';

/**
 * LatencyStats from the log's performance summary alone, for when the per-run times file is missing or unreadable:
 * the row's median and the percentiles trtexec printed (90/95 only from TensorRT 8.6), its mean; what it does not
 * print (std, CV, the CI of the median, p90/p95 on older versions) is NaN, and n is the "Timing trace has N
 * queries" count or NaN. Undefined when the summary has no median to give.
 */
export function summaryStats(report: TrtexecReport): { stats: LatencyStats; row: SummaryRow; missing: string[] } | undefined {
  const pick: Array<[TrtStats | undefined, SummaryRow]> = [[report.latency, 'Latency'], [report.gpuCompute, 'GPU Compute Time']];
  const found = pick.find(([s]) => s?.median !== undefined);
  if (!found) return undefined;
  const [s, row] = found as [TrtStats, SummaryRow];
  const p = (k: number) => s.percentiles[k] ?? NaN;
  const stats: LatencyStats = {
    p50: s.median!, p90: p(90), p95: p(95), p99: p(99), mean: s.mean ?? NaN, std: NaN, cv: NaN,
    n: report.queries ?? NaN, ci95p50: [NaN, NaN],
  };
  const missing = [
    ...(['p90', 'p95', 'p99', 'mean'] as const).filter((k) => Number.isNaN(stats[k])),
    'std', 'cv', 'ci95p50', ...(report.queries === undefined ? ['n'] : []),
  ];
  return { stats, row, missing };
}
