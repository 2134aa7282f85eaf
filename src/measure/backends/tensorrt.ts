// Jetson GPU backend: onnxruntime-node on arm64 is CPU-only, but JetPack ships TensorRT's `trtexec`. When it is
// present, this builds an fp16/int8 engine from the ONNX file with it, runs its timed loop, and turns the per-run
// times it exports into the same BenchResult as the ONNX Runtime path (or, when there are none, its log's summary).
import { spawn } from 'node:child_process';
import { access, constants, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { CanceledError, EdgetuneError, UsageError, isENOENT, throwIfAborted } from '../../errors.js';
import type { LatencyStats, OpContext } from '../../types.js';
import { describeInputs, prepareBench, resultNotes, timedOf, type BenchResult } from '../bench.js';
import { ciRelWidthOf, resolvePlan } from '../bench-plan.js';
import { EnvMonitor, type MonitorOptions } from '../env/monitor.js';
import { latencyStats, sortedCopy } from '../stats.js';
import { parseTrtexecLog, parseTrtexecTimes, summaryStats, versionFromTag, type TrtexecReport } from './trtexec-log.js';

export type TrtPrecision = 'fp32' | 'fp16' | 'int8' | 'best';

export interface TensorRtOptions {
  precision?: TrtPrecision;
  /** sizes for dynamic inputs, name → dims */
  shapes?: Record<string, number[]>;
  /** trtexec --warmUp (ms) and --duration (s) */
  warmupMs?: number;
  durationS?: number;
  /** trtexec --iterations: the minimum number of timed inferences */
  iterations?: number;
  /** the trtexec binary; found on PATH or in JetPack's folder otherwise */
  trtexec?: string;
  /** keep the built engine here (default: a temporary folder, removed afterwards) */
  saveEngine?: string;
  env?: MonitorOptions | false;
}

/** Where JetPack and the TensorRT tarballs put trtexec, besides PATH. */
const KNOWN_PLACES = ['/usr/src/tensorrt/bin/trtexec', '/usr/local/tensorrt/bin/trtexec', '/opt/tensorrt/bin/trtexec'];

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The trtexec to use: $TRTEXEC, then PATH, then JetPack's /usr/src/tensorrt/bin; undefined when there is none. */
export async function findTrtexec(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const candidates = [
    ...(env.TRTEXEC ? [env.TRTEXEC] : []),
    ...(env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, 'trtexec')),
    ...KNOWN_PLACES,
  ];
  for (const c of candidates) if (await executable(c)) return c;
  return undefined;
}

/** trtexec's command line for one build-and-measure run. */
export function trtexecArgs(modelPath: string, engine: string, timesJson: string, o: TensorRtOptions = {}): string[] {
  const args = [`--onnx=${modelPath}`, `--saveEngine=${engine}`, `--exportTimes=${timesJson}`];
  const precision = o.precision ?? 'fp16';
  if (precision !== 'fp32') args.push(`--${precision}`);
  if (o.shapes && Object.keys(o.shapes).length) {
    args.push(`--shapes=${Object.entries(o.shapes).map(([n, d]) => `${n}:${d.join('x')}`).join(',')}`);
  }
  args.push(`--warmUp=${Math.round(o.warmupMs ?? 500)}`, `--duration=${o.durationS ?? 5}`, `--iterations=${o.iterations ?? 20}`);
  // Spin-waiting instead of blocking on CUDA events makes the timings steadier (trtexec's own advice when it
  // warns that GPU compute time is unstable).
  args.push('--useSpinWait');
  return args;
}

/** Peak RSS (VmHWM) of a running process from /proc, in MB; undefined off Linux or once it is gone. */
async function vmHwmMB(pid: number): Promise<number | undefined> {
  try {
    const m = /^VmHWM:\s*(\d+)\s*kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

const LOG_TAIL = 4 * 1024 * 1024;

interface TrtRun { log: string; code: number | null; peakRssMB?: number }

function runTrtexec(bin: string, args: string[], ctx: OpContext): Promise<TrtRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    let peak: number | undefined;
    let phase = 'build engine';
    const onData = (b: Buffer) => {
      const s = b.toString('utf8');
      log = (log + s).slice(-LOG_TAIL);
      if (phase === 'build engine' && /Starting inference|Engine (built|deserialized) in/.test(s)) {
        phase = 'timed runs';
        ctx.onProgress?.({ step: 'timed runs', pct: 50, detail: 'trtexec' });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const poll = setInterval(() => {
      if (child.pid !== undefined) void vmHwmMB(child.pid).then((v) => { if (v !== undefined) peak = Math.max(peak ?? 0, v); });
    }, 200);
    poll.unref();
    const onAbort = () => child.kill('SIGKILL');
    ctx.signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (e) => { clearInterval(poll); ctx.signal?.removeEventListener('abort', onAbort); reject(e); });
    child.once('close', (code) => {
      clearInterval(poll);
      ctx.signal?.removeEventListener('abort', onAbort);
      if (ctx.signal?.aborted) reject(new CanceledError(`trtexec on ${args[0]}`));
      else resolvePromise({ log, code, ...(peak !== undefined ? { peakRssMB: peak } : {}) });
    });
  });
}

/** The summary's median next to ours, so a reader sees both agree (they come from the same runs). */
function crossCheck(report: TrtexecReport, p50: number): string | undefined {
  const theirs = report.latency?.median;
  if (theirs === undefined) return undefined;
  const off = Math.abs(theirs - p50) / p50;
  return off > 0.05 ? `trtexec's own median latency is ${theirs} ms against ${p50.toFixed(3)} ms from its per-run times; the summary may cover other runs` : undefined;
}

interface TrtLatency {
  stats: LatencyStats;
  /** empty when only the log's summary was available */
  samplesMs: number[];
  /** what the numbers are, for the first note */
  source: string;
  notes: string[];
}

/**
 * Latency from the per-run times trtexec exported, or, when that file is missing or unreadable (an old trtexec
 * without --exportTimes, a full disk, a run cut short), from the log's performance summary: the same LatencyStats
 * shape with what the summary does not give as NaN, and a note saying so. Throws BENCH_FAILED when neither exists.
 */
async function latencyOf(timesPath: string, report: TrtexecReport, modelPath: string): Promise<TrtLatency> {
  let why: string;
  try {
    const times = parseTrtexecTimes(await readFile(timesPath, 'utf8'), timesPath);
    return { stats: latencyStats(times.samplesMs), samplesMs: times.samplesMs, source: `samples are trtexec's ${times.field} per inference`, notes: [] };
  } catch (e) {
    why = isENOENT(e) ? `trtexec wrote no per-run times to ${timesPath} (this trtexec may not support --exportTimes)` : (e as Error).message;
  }
  const summary = summaryStats(report);
  if (!summary) {
    throw new EdgetuneError('BENCH_FAILED', `${modelPath}: no latency to report: ${why}, and the log has no performance summary (no "Latency" or "GPU Compute" median)`);
  }
  return {
    stats: summary.stats,
    samplesMs: [],
    source: `only summary percentiles were available: latency is trtexec's printed "${summary.row}" summary, not per-run samples`,
    notes: [`${why}; fell back to the log's summary, which does not give ${summary.missing.join(', ')} (NaN in the result)`],
  };
}

/**
 * Builds a TensorRT engine from the model with trtexec, measures it, and reports it like an ONNX Runtime bench.
 * int8 without a calibration cache uses placeholder scales: its latency is real, its outputs are not.
 */
export async function benchTensorRT(modelPath: string, opts: TensorRtOptions = {}, ctx: OpContext = {}): Promise<BenchResult> {
  throwIfAborted(ctx.signal, `TensorRT benchmark of ${modelPath}`);
  const bin = opts.trtexec ?? (await findTrtexec());
  if (!bin) {
    throw new EdgetuneError('BENCH_FAILED', 'the tensorrt backend needs TensorRT\'s trtexec, which is not on PATH nor in /usr/src/tensorrt/bin (JetPack installs it there); set TRTEXEC=/path/to/trtexec or use --backend onnxruntime');
  }
  const precision = opts.precision ?? 'fp16';
  if (!['fp32', 'fp16', 'int8', 'best'].includes(precision)) throw new UsageError(`--precision must be fp32, fp16, int8 or best, got ${precision}`);
  const p = await prepareBench(modelPath, { shapes: opts.shapes });
  const work = await mkdtemp(join(tmpdir(), 'edgetune-trt-'));
  const engine = opts.saveEngine ? resolve(opts.saveEngine) : join(work, 'model.engine');
  const timesPath = join(work, 'times.json');
  const monitor = opts.env === false ? undefined : await EnvMonitor.start(opts.env ?? {});
  try {
    ctx.onProgress?.({ step: 'build engine', pct: 0, detail: `${precision} with trtexec` });
    const run = await runTrtexec(bin, trtexecArgs(p.path, engine, timesPath, { ...opts, precision }), ctx);
    monitor?.markTimed();
    const report = parseTrtexecLog(run.log);
    if (run.code !== 0 || report.passed === false) {
      const tail = run.log.trim().split('\n').filter((l) => /\[E\]|error|FAILED/i.test(l)).slice(-5).join(' | ');
      throw new EdgetuneError('BENCH_FAILED', `${p.path}: trtexec failed (exit code ${run.code})${tail ? `: ${tail}` : ''}`);
    }
    const env = await monitor?.stop();
    const plan = resolvePlan({ ciRelWidth: Infinity });
    const lat = await latencyOf(timesPath, report, p.path);
    const timed = timedOf(plan, { timedWallMs: (report.walltimeS ?? NaN) * 1000, stopReason: 'max-ms', ciRelWidth: ciRelWidthOf(sortedCopy(lat.samplesMs)) });
    const version = report.version ?? (report.versionTag ? versionFromTag(report.versionTag) : undefined);
    const notes = [
      `TensorRT ${version ?? '(version not printed)'} ${precision} engine built by trtexec${report.buildS !== undefined ? ` in ${report.buildS} s` : ''}; ${lat.source}`,
      ...lat.notes,
      ...(precision === 'int8' ? ['int8 without a calibration cache: latency is representative, outputs are not'] : []),
      ...(report.gpuCvPercent !== undefined ? [`trtexec warns that GPU compute time is unstable (CV ${report.gpuCvPercent} %)`] : []),
      ...(report.deserializeS === undefined ? ['load time unknown: this trtexec does not print the engine deserialisation time'] : []),
      'first-run time unknown: trtexec does not report its first inference',
      ...(lat.samplesMs.length ? [crossCheck(report, lat.stats.p50)].filter((x): x is string => x !== undefined) : []),
      ...resultNotes(plan, timed, env),
    ];
    return {
      v: 1, backend: 'tensorrt', model: p.model, session: {}, inputs: describeInputs(p.inputs), latencyMs: lat.stats,
      samplesMs: lat.samplesMs, ...(report.deserializeS !== undefined ? { loadMs: report.deserializeS * 1000 } : {}),
      ...(run.peakRssMB !== undefined ? { peakRssMB: run.peakRssMB } : {}), warmupRuns: report.warmupQueries ?? 0,
      timed, ...(env ? { env } : {}), throttled: env?.throttled ?? null, notes,
    };
  } finally {
    monitor?.dispose();
    await rm(work, { recursive: true, force: true });
  }
}
