// A persistent child process holding one ONNX Runtime session (see runner-child.ts), driven over IPC.
import { fork, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CanceledError, EdgetuneError, ModelError, UsageError, isENOENT, throwIfAborted, type ErrorCode } from '../errors.js';
import type { OpContext } from '../types.js';
import { siblingModule } from '../util/paths.js';
import { allowedCpus, pinCpus, pinProcess } from './pin.js';
import { resolvePlan, type BenchPlanOptions } from './bench-plan.js';
import type { PlainTensor } from './plain-tensor.js';
import type { BenchReply, LoadReply, ObserveReply, RssReply, RunnerReply, RunnerRequest, SessionSettings, StatsReply } from './runner-protocol.js';
import { TensorStats } from '../compress/calibrate/histogram.js';

export type { SessionSettings } from './runner-protocol.js';

const STDERR_TAIL = 2000;

type ProgressReply = Extract<RunnerReply, { kind: 'progress' }>;
interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress?: (p: ProgressReply) => void;
  /** turns the child's error message into the error the caller sees */
  onError: (message: string) => Error;
}
interface RequestOptions {
  onProgress?: (p: ProgressReply) => void;
  onError?: (message: string) => Error;
}
type RequestBody = RunnerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * Which error code an ONNX Runtime load failure deserves, from its message. ORT reports everything as one Error
 * type, so the wording is all there is to go on.
 */
export function classifyLoadError(message: string): ErrorCode {
  if (/no such file|does not exist|ENOENT/i.test(message)) return 'MODEL_NOT_FOUND';
  if (/protobuf parsing failed|failed to parse|INVALID_PROTOBUF/i.test(message)) return 'MODEL_CORRUPT';
  if (/no op registered for|not a registered function\/op|could not find an implementation|NOT_IMPLEMENTED|unsupported (model )?ir version|opset .*not supported|unsupported op/i.test(message)) return 'MODEL_UNSUPPORTED';
  if (/INVALID_GRAPH|ShapeInferenceError|Type Error|INVALID_ARGUMENT|FAIL :/i.test(message)) return 'MODEL_INVALID';
  return 'BENCH_FAILED';
}

const LOADER_FLAGS = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader']);

/**
 * Node flags for the runner child. A built (.js) child gets the parent's flags. A TypeScript child (under tsx or
 * tap) runs under tsx, which only strips types: the ts-node loader tap uses takes ~4 s to start each child against
 * tsx's ~0.5 s, and tune starts one child per trial. Other flags (memory limits, source maps) are kept.
 */
export function childExecArgv(parent: readonly string[], childModule: string): string[] {
  if (!childModule.endsWith('.ts')) return [...parent];
  let tsx: string;
  try {
    tsx = import.meta.resolve('tsx');
  } catch {
    return [...parent];
  }
  const kept: string[] = [];
  for (let i = 0; i < parent.length; i++) {
    const flag = parent[i].split('=')[0];
    if (LOADER_FLAGS.has(flag)) {
      if (!parent[i].includes('=')) i++; // the value is the next argument
      continue;
    }
    kept.push(parent[i]);
  }
  return [...kept, '--import', tsx];
}

function checkSession(s: SessionSettings): void {
  for (const key of ['intraOpThreads', 'interOpThreads'] as const) {
    const v = s[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new UsageError(`session ${key} must be a positive integer, got ${v}`);
  }
}

/** One model loaded in its own process. Always `close()` it (in a finally): it owns a child process. */
export class ModelRunner {
  readonly modelPath: string;
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private readonly exited: Promise<void>;
  private seq = 0;
  private endReason: Error | undefined;
  private gone = false;
  private stderrTail = '';
  private loaded: LoadReply = { loadMs: NaN, inputNames: [], outputNames: [], baseRssKB: NaN };
  /** what pinning did, for the measurement's notes (undefined: not pinned) */
  pinned: string | undefined;

  private constructor(modelPath: string, child: ChildProcess) {
    this.modelPath = modelPath;
    this.child = child;
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => { this.stderrTail = (this.stderrTail + s).slice(-STDERR_TAIL); });
    child.on('message', (m: RunnerReply) => this.onReply(m));
    this.exited = new Promise((done) => {
      // 'close' comes after 'exit' once stderr is drained, so a crash report has the child's last words.
      child.once('close', (code, signal) => { this.onGone(code, signal); done(); });
      // A spawn failure gets no 'close'. Later errors (a send to a dead child) are settled by 'close' or the send
      // callback; the listener stays so that no 'error' event is ever unhandled.
      child.on('error', (e) => { if (child.pid === undefined) { this.onGone(null, null, e); done(); } });
    });
  }

  private static spawn(): ChildProcess {
    const childModule = siblingModule(import.meta.url, 'runner-child');
    return fork(childModule, [], {
      execArgv: childExecArgv(process.execArgv, childModule),
      serialization: 'advanced',
      // stdout is ignored so nothing the child prints can corrupt --json output; stderr is kept for crash reports.
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
  }

  /**
   * Starts a child and loads the model there; `loadMs` is the session creation time measured in the child. With
   * `pin` (benchmarks) the child is pinned to the last `intraOpThreads` CPUs before ONNX Runtime starts its threads.
   */
  static async start(modelPath: string, session: SessionSettings = {}, ctx: OpContext = {}, opts: { pin?: boolean } = {}): Promise<ModelRunner> {
    throwIfAborted(ctx.signal, `loading ${modelPath}`);
    checkSession(session);
    const abs = resolve(modelPath);
    try {
      if (!(await stat(abs)).isFile()) throw new ModelError('MODEL_NOT_FOUND', `${modelPath}: not a file`);
    } catch (e) {
      if (isENOENT(e)) throw new ModelError('MODEL_NOT_FOUND', `${modelPath}: no such file`);
      throw e;
    }
    const runner = new ModelRunner(abs, ModelRunner.spawn());
    try {
      if (opts.pin && runner.child.pid !== undefined) {
        const cpus = allowedCpus();
        runner.pinned = await pinProcess(runner.child.pid, cpus && pinCpus(session.intraOpThreads, cpus));
      }
      runner.loaded = await runner.request<LoadReply>({ kind: 'load', modelPath: abs, session }, ctx, 'load', {
        onError: (msg) => {
          const code = classifyLoadError(msg);
          const hint = code === 'MODEL_UNSUPPORTED' ? ' (this onnxruntime build lacks something the model uses; exclude that op from compression or use a newer runtime)' : '';
          return new ModelError(code, `${abs}: onnxruntime cannot load the model: ${msg}${hint}`);
        },
      });
    } catch (e) {
      await runner.close();
      throw e;
    }
    return runner;
  }

  get loadMs(): number { return this.loaded.loadMs; }
  get inputNames(): string[] { return this.loaded.inputNames; }
  get outputNames(): string[] { return this.loaded.outputNames; }
  /** The child's peak RSS (MB) before the session existed: Node and ONNX Runtime alone, to subtract from peakRssMB. */
  get baseRssMB(): number { return this.loaded.baseRssKB / 1024; }
  /** The child's pid, for checks that it is gone after close(). */
  get pid(): number | undefined { return this.child.pid; }

  /** One inference; returns every output. */
  run(inputs: Record<string, PlainTensor>, ctx: OpContext = {}): Promise<Record<string, PlainTensor>> {
    return this.request({ kind: 'run', inputs }, ctx, 'inference');
  }

  /**
   * Warm-up then timed runs with the same inputs (see BenchPlanOptions for when each ends). Progress goes to
   * `ctx.onProgress`; aborting kills the child and rejects with CanceledError once it is gone.
   */
  async bench(inputs: Record<string, PlainTensor>, opts: BenchPlanOptions = {}, ctx: OpContext = {}): Promise<BenchReply> {
    const plan = resolvePlan(opts);
    const started = Date.now();
    // The CI estimate can widen again, which would move the bar backwards; progress only ever grows.
    let best = 0;
    const onProgress = (p: ProgressReply) => {
      if (!ctx.onProgress) return;
      const wallS = (Date.now() - started) / 1000;
      const fraction = (best = Math.max(best, p.fraction));
      ctx.onProgress({
        step: p.phase === 'warm-up' ? 'warm-up' : 'timed runs',
        pct: fraction * 100,
        etaS: fraction > 0 ? (wallS * (1 - fraction)) / fraction : undefined,
        detail: `${p.runs} runs`,
      });
    };
    return this.request<BenchReply>({ kind: 'bench', inputs, plan }, ctx, 'benchmark', { onProgress });
  }

  /** Calibration run: the child folds `names` into its statistics; only their dtypes come back. */
  async observe(inputs: Record<string, PlainTensor>, names: string[], histogram: boolean, ctx: OpContext = {}): Promise<ObserveReply> {
    return this.request<ObserveReply>({ kind: 'observe', inputs, names, histogram }, ctx, 'calibration run');
  }

  /** The statistics folded by `observe` since the last call, by tensor name; the child forgets them. */
  async takeStats(ctx: OpContext = {}): Promise<Map<string, TensorStats>> {
    const r = await this.request<StatsReply>({ kind: 'stats' }, ctx, 'calibration statistics');
    return new Map(Object.entries(r).map(([name, snap]) => [name, TensorStats.restore(snap)]));
  }

  /** The child's peak resident set so far, in MB (includes Node and ONNX Runtime themselves, ~50-100 MB). */
  async peakRssMB(ctx: OpContext = {}): Promise<number> {
    const r = await this.request<RssReply>({ kind: 'rss' }, ctx, 'memory query');
    return r.maxRssKB / 1024;
  }

  /** Kills the child and waits until it is gone. Safe to call more than once. */
  async close(): Promise<void> {
    this.terminate(new EdgetuneError('BENCH_FAILED', `the runner for ${this.modelPath} was closed`));
    await this.exited;
  }

  private terminate(reason: Error): void {
    if (this.gone) return;
    this.endReason ??= reason;
    this.child.kill('SIGKILL');
  }

  private request<T>(body: RequestBody, ctx: OpContext, what: string, opts: RequestOptions = {}): Promise<T> {
    if (this.gone || this.endReason) return Promise.reject(this.endReason ?? this.crashError(null, null));
    if (ctx.signal?.aborted) return Promise.reject(new CanceledError(`${what} of ${this.modelPath}`));
    const id = ++this.seq;
    return new Promise<T>((resolvePromise, rejectPromise) => {
      const onAbort = () => this.terminate(new CanceledError(`${what} of ${this.modelPath}`));
      const cleanup = () => { ctx.signal?.removeEventListener('abort', onAbort); this.pending.delete(id); };
      ctx.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: (v) => { cleanup(); resolvePromise(v as T); },
        reject: (e) => { cleanup(); rejectPromise(e); },
        onProgress: opts.onProgress,
        onError: opts.onError ?? ((msg) => new EdgetuneError('BENCH_FAILED', `${this.modelPath}: ${what} failed: ${msg}`)),
      });
      this.child.send({ ...body, id } as RunnerRequest, (err) => {
        if (err) this.terminate(new EdgetuneError('BENCH_FAILED', `${this.modelPath}: cannot talk to the runner process: ${err.message}`));
      });
    });
  }

  private onReply(m: RunnerReply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.kind === 'progress') { p.onProgress?.(m); return; }
    if (m.kind === 'ok') p.resolve(m.value);
    else p.reject(p.onError(m.message));
  }

  private crashError(code: number | null, signal: NodeJS.Signals | null, e?: Error): EdgetuneError {
    const how = e ? `could not start (${e.message})` : `exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`})`;
    const tail = this.stderrTail.trim().split('\n').slice(-5).join(' | ');
    return new EdgetuneError('BENCH_FAILED', `the runner process for ${this.modelPath} ${how}${tail ? `: ${tail}` : ''}`);
  }

  private onGone(code: number | null, signal: NodeJS.Signals | null, e?: Error): void {
    if (this.gone) return;
    this.gone = true;
    const err = this.endReason ?? this.crashError(code, signal, e);
    this.endReason = err;
    for (const p of [...this.pending.values()]) p.reject(err);
  }
}
