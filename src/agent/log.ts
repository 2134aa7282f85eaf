// The agent logs one line per event: JSON lines when stdout is not a TTY (journald, log shippers),
// short human lines on a terminal.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

export interface LogLine {
  ts: string;
  level: LogLevel;
  msg: string;
  [field: string]: unknown;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(opts: {
  write?: (line: string) => void;
  json?: boolean;
  level?: LogLevel;
  now?: () => number;
} = {}): Logger {
  const write = opts.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const json = opts.json ?? !process.stdout.isTTY;
  const min = ORDER[opts.level ?? (process.env.EDGETUNE_DEBUG ? 'debug' : 'info')];
  const now = opts.now ?? Date.now;
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (ORDER[level] < min) return;
    const ts = new Date(now()).toISOString();
    if (json) {
      write(JSON.stringify({ ts, level, msg, ...fields }));
      return;
    }
    const extra = fields && Object.keys(fields).length
      ? ' ' + Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
      : '';
    write(`${ts.slice(11, 19)} ${level === 'info' ? '' : level.toUpperCase() + ' '}${msg}${extra}`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

/** A logger that keeps structured lines in memory; used by tests and by callers that want to inspect logs. */
export function memoryLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = createLogger({ json: true, level: 'debug', write: (l) => lines.push(JSON.parse(l) as LogLine) });
  return Object.assign(log, { lines });
}
