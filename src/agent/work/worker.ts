// Heavy work (graph rewriting, tuning, profiling, model checks) runs in a child process, never on the agent's
// event loop: MQTT keep-alives and heartbeats stay on time, the agent's memory stays small (ONNX Runtime and the
// protobuf schema are only ever loaded in children), and a crash or out-of-memory kill of the work does not take
// the agent down. One child per task; it dies with the agent (it exits when the IPC channel closes).
import { fork } from 'node:child_process';
import { CanceledError, EdgetuneError, type ErrorCode } from '../../errors.js';
import type { OpContext } from '../../types.js';
import { childExecArgv } from '../../measure/runner.js';
import { siblingModule } from '../../util/paths.js';
import type { FromChild, TaskName, ToChild } from './protocol.js';

/** An error from the child, with the child's code kept (the runner reports it to the controller). */
export class WorkError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'WorkError';
  }
}

export interface RunTaskOptions {
  /** How long the child may take to stop after an abort before it is killed. */
  graceMs?: number;
}

const STDERR_TAIL = 4000;

/** runTask's shape, so tests and callers can put something else in its place. */
export type Work = <T = unknown>(task: TaskName, args: unknown, ctx?: OpContext, opts?: RunTaskOptions) => Promise<T>;

/** Runs one task in a fresh child process; progress and abort cross the process boundary. */
export function runTask<T = unknown>(task: TaskName, args: unknown, ctx: OpContext = {}, opts: RunTaskOptions = {}): Promise<T> {
  if (ctx.signal?.aborted) return Promise.reject(new CanceledError(`${task}`));
  const childModule = siblingModule(import.meta.url, 'worker-child');
  const child = fork(childModule, [], {
    execArgv: workExecArgv(childExecArgv(process.execArgv, childModule)),
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => { stderr = (stderr + s).slice(-STDERR_TAIL); });
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      ctx.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      const reason = ctx.signal?.reason instanceof Error ? ctx.signal.reason.message : 'aborted';
      send({ kind: 'abort', reason });
      killTimer = setTimeout(() => child.kill('SIGKILL'), opts.graceMs ?? 5000);
      killTimer.unref();
    };
    const send = (m: ToChild) => {
      if (child.connected) child.send(m, (e) => { if (e) child.kill('SIGKILL'); });
    };
    child.on('message', (m: FromChild) => {
      if (m.kind === 'progress') ctx.onProgress?.(m.progress);
      else if (m.kind === 'done') finish(() => resolve(m.value as T));
      else if (m.kind === 'error') finish(() => reject(childError(m, ctx.signal)));
    });
    child.on('error', (e) => finish(() => reject(e)));
    child.once('close', (code, signal) => {
      if (killTimer) clearTimeout(killTimer);
      const tail = stderr.trim().split('\n').slice(-5).join('\n');
      finish(() => reject(ctx.signal?.aborted
        ? new CanceledError(task)
        : new WorkError('WORKER_DIED', `the ${task} worker process ended (${signal ?? `exit code ${code}`}) before answering${tail ? `: ${tail}` : ''}`)));
    });
    ctx.signal?.addEventListener('abort', onAbort, { once: true });
    send({ kind: 'run', task, args });
  }).finally(() => {
    if (child.exitCode === null && child.signalCode === null) {
      child.disconnect?.();
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
    }
  });
}

/**
 * The agent may run with memory-saving V8 flags (the systemd unit sets --lite-mode); work processes compute, so
 * they run with the full compiler and default heap.
 */
export function workExecArgv(argv: string[]): string[] {
  return argv.filter((a) => !/^--(lite-mode|jitless|no-expose-wasm|max-semi-space-size|max-old-space-size)(=|$)/.test(a));
}

function childError(m: Extract<FromChild, { kind: 'error' }>, signal: AbortSignal | undefined): Error {
  if (m.code === 'CANCELED' && signal?.aborted) return new CanceledError('task');
  if (m.code && m.name && m.name !== 'Error') {
    // EdgetuneError subclasses keep their code; the runner turns it into the job's error.
    return new EdgetuneError(m.code as ErrorCode, m.message);
  }
  return new WorkError(m.code ?? 'HANDLER_ERROR', m.message);
}
