// Every error a user or a remote controller can see has a class and a stable code.
// Messages name the file, node or field at fault and say what to do.

export type ErrorCode =
  | 'MODEL_NOT_FOUND'
  | 'MODEL_CORRUPT'
  | 'MODEL_INVALID'
  | 'MODEL_UNSUPPORTED'
  | 'TENSOR_UNSUPPORTED'
  | 'EXTERNAL_DATA'
  | 'COMPRESS_FIDELITY'
  | 'BENCH_FAILED'
  | 'DATASET_NOT_FOUND'
  | 'DATASET_CORRUPT'
  | 'CONFIG_INVALID'
  | 'JOB_INVALID'
  | 'JOB_FAILED'
  | 'TARGET_INVALID'
  | 'USAGE'
  | 'CANCELED'
  | 'TIMEOUT';

export class EdgetuneError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export class ModelError extends EdgetuneError {}
export class DatasetError extends EdgetuneError {}
export class ConfigError extends EdgetuneError {
  constructor(message: string, readonly issues: string[] = []) {
    super('CONFIG_INVALID', message);
  }
}
export class JobError extends EdgetuneError {
  constructor(message: string) {
    super('JOB_INVALID', message);
  }
}
export class UsageError extends EdgetuneError {
  constructor(message: string) {
    super('USAGE', message);
  }
}
export class CanceledError extends EdgetuneError {
  constructor(what = 'operation') {
    super('CANCELED', `${what} was canceled`);
  }
}

export function isENOENT(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === 'ENOENT';
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Throws CanceledError when the signal has fired; call between steps of long work. */
export function throwIfAborted(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw new CanceledError(what);
}
