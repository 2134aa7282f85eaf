import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { readText } from './probes.js';

// Vendor tools the profile may ask (vcgencmd on a Pi, nvpmodel/tegrastats on a Jetson, lscpu anywhere).
// On the live machine they run with a short timeout; on a recorded root their outputs are read from
// `<root>/cmd/<name>.txt`, so a fixture can carry what a tool printed on the real board.

export type CommandName = 'lscpu' | 'vcgencmd-get_throttled' | 'vcgencmd-measure_temp' | 'nvpmodel-q' | 'tegrastats';

const SPEC: Record<Exclude<CommandName, 'tegrastats'>, { file: string; args: string[] }> = {
  lscpu: { file: 'lscpu', args: [] },
  'vcgencmd-get_throttled': { file: 'vcgencmd', args: ['get_throttled'] },
  'vcgencmd-measure_temp': { file: 'vcgencmd', args: ['measure_temp'] },
  'nvpmodel-q': { file: 'nvpmodel', args: ['-q'] },
};

/** What a command printed, or why there is nothing (absent tool, timeout, error). */
export interface CommandResult {
  text?: string;
  /** Set when the tool exists but failed; a tool that is simply not installed gives neither field. */
  note?: string;
}

export interface CommandSource {
  run(name: CommandName): Promise<CommandResult>;
}

/** Reads recorded outputs under `<root>/cmd/`. */
export function recordedCommands(root: string): CommandSource {
  return { run: async (name) => ({ text: await readText(root, join('cmd', `${name}.txt`)) }) };
}

const TIMEOUT_MS = 1000;

/** Runs the real tools, each bounded by a timeout so a hung firmware call cannot stall the profile. */
export function liveCommands(timeoutMs = TIMEOUT_MS): CommandSource {
  return {
    run: (name) => (name === 'tegrastats' ? firstTegrastatsLine(timeoutMs) : runTool(name, timeoutMs)),
  };
}

function runTool(name: Exclude<CommandName, 'tegrastats'>, timeoutMs: number): Promise<CommandResult> {
  const { file, args } = SPEC[name];
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve({ text: stdout });
      const e = err as NodeJS.ErrnoException & { killed?: boolean };
      if (e.code === 'ENOENT') return resolve({});
      // nvpmodel -q without root prints the mode, then errors and exits non-zero: keep what it printed.
      if (stdout.trim()) return resolve({ text: stdout, note: `${file} ${args.join(' ')}: exited with an error (${firstLine(stderr) || e.message}); its output was used` });
      resolve({ note: `${file} ${args.join(' ')}: ${e.killed ? `no answer within ${timeoutMs} ms` : firstLine(stderr) || e.message}` });
    });
  });
}

const firstLine = (s: string) => s.trim().split('\n')[0] ?? '';

/** tegrastats streams forever: take its first line, then stop it. */
function firstTegrastatsLine(timeoutMs: number): Promise<CommandResult> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn('tegrastats', ['--interval', '100'], { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return resolve({});
    }
    let buf = '';
    let done = false;
    const finish = (r: CommandResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGTERM');
      resolve(r);
    };
    const timer = setTimeout(() => finish({ note: `tegrastats: no line within ${timeoutMs} ms` }), timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ENOENT' ? {} : { note: `tegrastats: ${e.message}` }));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish({ text: buf.slice(0, nl) });
    });
    child.on('exit', () => finish(buf.trim() ? { text: buf.trim() } : { note: 'tegrastats: exited without output' }));
  });
}
