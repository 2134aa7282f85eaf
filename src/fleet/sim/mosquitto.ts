// A local Mosquitto for the fleet's integration test and scale bench: shared subscriptions ($share, which the
// embedded aedes broker lacks), persistence (sessions, subscriptions and queued QoS 1 messages survive a
// restart), and a restart() that is a real SIGTERM and a new process. Needs the `mosquitto` binary (Debian:
// apt-get install mosquitto).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';

/** Where the mosquitto binary is, or undefined (callers skip with a message). */
export function findMosquitto(): string | undefined {
  for (const p of [process.env.MOSQUITTO_BIN, '/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/opt/homebrew/sbin/mosquitto']) {
    if (p && existsSync(p)) return p;
  }
  const r = spawnSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function waitListening(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`mosquitto did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface MosquittoOptions {
  /** Folder for the config, the persistence file and the log. */
  dir: string;
  port?: number;
  bin?: string;
}

export class LocalMosquitto {
  private child: ChildProcess | undefined;
  port = 0;

  constructor(private readonly opts: MosquittoOptions) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get logFile(): string {
    return join(this.opts.dir, 'mosquitto.log');
  }

  async start(): Promise<void> {
    const bin = this.opts.bin ?? findMosquitto();
    if (!bin) throw new Error('mosquitto is not installed (apt-get install mosquitto, or set MOSQUITTO_BIN)');
    this.port ||= this.opts.port ?? (await freePort());
    await mkdir(this.opts.dir, { recursive: true });
    const conf = join(this.opts.dir, 'mosquitto.conf');
    // Queues sized for a fleet: Mosquitto's default max_queued_messages (1000 per client) would drop replies
    // queued for a controller that is reconnecting after a restart. 0 means no limit.
    await writeFile(conf, [
      `listener ${this.port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${this.opts.dir}/`,
      'autosave_interval 1',
      'max_queued_messages 0',
      'max_inflight_messages 100',
      'set_tcp_nodelay true',
      `log_dest file ${this.logFile}`,
      'log_type error',
      'log_type warning',
      'log_type notice',
      '',
    ].join('\n'));
    this.child = spawn(bin, ['-c', conf], { stdio: 'ignore' });
    await waitListening(this.port, 10_000);
  }

  /** SIGTERM (Mosquitto writes its persistence file) and wait for the process to end. */
  async stop(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c || c.exitCode !== null) return;
    const ended = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await ended;
    clearTimeout(t);
  }

  /** A broker restart as an operator does it: stop, then start again on the same port with the same data. */
  async restart(downMs = 0): Promise<void> {
    await this.stop();
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    await this.start();
  }
}
