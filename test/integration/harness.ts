// The integration suite's fixtures: a real Mosquitto (Debian's package) started, SIGKILLed and restarted by the
// tests, the real `edgetune agent` as a child process (SIGKILLed too), an MQTT 5 controller stand-in with a
// persistent session, and test certificates from the openssl CLI. Runs only with EDGETUNE_INTEGRATION=1 (npm run
// test:integration); without it, or without mosquitto, every test skips with the reason.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { connectAsync, type IClientOptions } from 'mqtt';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel } from '../../src/onnx/model.js';
import { packageRoot } from '../../src/util/paths.js';

type T = { teardown(fn: () => unknown): void; comment(...a: unknown[]): void };

const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => existsSync(p));

/** false when the suite may run, else why it skips. */
export const skip: string | false = process.env.EDGETUNE_INTEGRATION !== '1'
  ? 'integration suite: run with `npm run test:integration` (EDGETUNE_INTEGRATION=1)'
  : !MOSQUITTO
    ? 'integration suite: mosquitto is not installed (apt-get install mosquitto)'
    : false;

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitPort(port: number, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const c = createConnection(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); r(true); });
      c.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() - start > timeoutMs) throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Mosquitto {
  port: number;
  url: string;
  dir: string;
  kills: number;
  /** SIGKILL: no goodbye, no final save (only what autosave already wrote survives). */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  log(): string;
}

/**
 * Starts Mosquitto with persistence saved after every change, so a SIGKILL loses as little as a broker can
 * (`durable: false` keeps Mosquitto's default half-hourly save: a flood of messages is then not slowed by saves).
 */
export async function mosquitto(t: T, dir: string, extra: string[] = [], opts: { port?: number; tlsPort?: number; durable?: boolean; anonymous?: boolean } = {}): Promise<Mosquitto> {
  mkdirSync(dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, [
    'per_listener_settings false',
    `listener ${port} 127.0.0.1`,
    `allow_anonymous ${opts.anonymous === false ? 'false' : 'true'}`,
    'persistence true',
    `persistence_location ${dir}/`,
    ...(opts.durable === false ? [] : ['autosave_on_changes true', 'autosave_interval 1']),
    'max_queued_messages 100000',
    'user root',
    `log_dest file ${join(dir, 'mosquitto.log')}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    ...extra,
  ].join('\n') + '\n');
  let proc: ChildProcess | undefined;
  const m: Mosquitto = {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    kills: 0,
    async start() {
      proc = spawn(MOSQUITTO!, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      proc.stderr!.on('data', (d) => { err += d; });
      proc.once('exit', (code) => { if (code && code !== 0 && !err.includes('terminating')) t.comment(`mosquitto exited ${code}: ${err.slice(-500)}`); });
      await waitPort(port);
      if (opts.tlsPort) await waitPort(opts.tlsPort);
    },
    async kill() {
      const p = proc;
      proc = undefined;
      if (!p || p.exitCode !== null) return;
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await gone;
      m.kills++;
    },
    async stop() {
      const p = proc;
      proc = undefined;
      if (!p || p.exitCode !== null) return;
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await gone;
    },
    log: () => (existsSync(join(dir, 'mosquitto.log')) ? readFileSync(join(dir, 'mosquitto.log'), 'utf8') : ''),
  };
  await m.start();
  t.teardown(() => m.stop());
  return m;
}

export interface Seen { topic: string; doc: any; retain: boolean; props?: any; at: number }

/** A controller stand-in: MQTT 5, persistent session (survives broker restarts), records what it receives. */
export async function controller(t: T, url: string, filters: string[], opts: Partial<IClientOptions> = {}) {
  const client = await connectAsync(url, {
    protocolVersion: 5, clean: false, clientId: `ctl-${Math.random().toString(16).slice(2, 10)}`, reconnectPeriod: 200,
    connectTimeout: 5000, properties: { sessionExpiryInterval: 3600 }, ...opts,
  });
  t.teardown(() => client.endAsync(true));
  const msgs: Seen[] = [];
  client.on('message', (topic, payload, packet) => {
    let doc: unknown;
    try { doc = JSON.parse(payload.toString()); } catch { doc = payload.toString(); }
    msgs.push({ topic, doc, retain: packet.retain, props: packet.properties, at: Date.now() });
  });
  client.on('error', () => {});
  for (const f of filters) await client.subscribeAsync(f, { qos: 1 });
  const waitFor = async (pred: (m: Seen) => boolean, what: string, timeoutMs = 30_000) => {
    const start = Date.now();
    for (;;) {
      const hit = msgs.find(pred);
      if (hit) return hit;
      if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
      await sleep(25);
    }
  };
  return { client, msgs, waitFor };
}

export interface AgentProcess {
  child: ChildProcess;
  logs: any[];
  stderr: () => string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const root = packageRoot();

/** `edgetune agent` as a user runs it (under tsx), with config from the environment. */
export function startAgent(t: T, env: Record<string, string>): AgentProcess {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(root, 'src', 'cli', 'main.ts'), 'agent'], {
    cwd: root,
    env: { ...process.env, EDGETUNE_DEBUG: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: any[] = [];
  let err = '';
  let buf = '';
  child.stdout!.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try { logs.push(JSON.parse(line)); } catch { logs.push({ msg: line }); }
    }
  });
  child.stderr!.on('data', (d) => { err += d; });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const ap: AgentProcess = {
    child, logs, exited, stderr: () => err,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
  t.teardown(() => ap.kill());
  return ap;
}

export function agentEnv(url: string, stateDir: string, device: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    EDGETUNE_BROKER_URL: url,
    EDGETUNE_STATE_DIR: stateDir,
    EDGETUNE_FLEET: 'it',
    EDGETUNE_DEVICE_ID: device,
    EDGETUNE_BROKER_PROTOCOL_VERSION: '5',
    EDGETUNE_BROKER_RECONNECT_MIN_MS: '100',
    EDGETUNE_BROKER_RECONNECT_MAX_MS: '1000',
    EDGETUNE_BROKER_KEEPALIVE_S: '5',
    EDGETUNE_DEPLOY_BENCH_MAX_S: '0.3',
    ...extra,
  };
}

/** A small real model; `name` changes its bytes. */
export async function tinyModel(dir: string, name: string, width = 16): Promise<{ path: string; bytes: Buffer; sha256: string }> {
  const g = new GraphBuilder(name);
  g.input('x', DT.FLOAT, [1, width]);
  g.initializer('w', DT.FLOAT, [width, width], Float32Array.from({ length: width * width }, (_, i) => Math.sin(i + name.length)));
  g.node('MatMul', ['x', 'w'], { outputs: ['y'] });
  g.output('y', DT.FLOAT, [1, width]);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.onnx`);
  await saveModel(buildModel(g.graph), path);
  const bytes = readFileSync(path);
  return { path, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** A test CA, a server certificate for 127.0.0.1/localhost and a client certificate with CN = `client`. */
export function makeCerts(dir: string, client = 'dev1'): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string; otherCa: string } {
  mkdirSync(dir, { recursive: true });
  const o = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  o('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=edgetune test CA');
  o('req', '-x509', ...ec, '-keyout', 'other.key', '-out', 'other.crt', '-days', '2', '-subj', '/CN=someone else');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  o('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  o('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext');
  o('req', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', `/CN=${client}`);
  o('x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '2');
  const p = (f: string) => join(dir, f);
  return { ca: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), clientCert: p('client.crt'), clientKey: p('client.key'), otherCa: p('other.crt') };
}

/** Another client certificate (CN = `cn`) signed by the CA makeCerts() made in `dir`. */
export function clientCert(dir: string, cn: string): { cert: string; key: string } {
  const o = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  o('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${cn}.key`, '-out', `${cn}.csr`, '-subj', `/CN=${cn}`);
  o('x509', '-req', '-in', `${cn}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${cn}.crt`, '-days', '2');
  return { cert: join(dir, `${cn}.crt`), key: join(dir, `${cn}.key`) };
}

/** `edgetune <args>` as a user runs it (under tsx), to its exit; with how long it took. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(root, 'src', 'cli', 'main.ts'), ...args], {
    cwd: root, env: { ...process.env, EDGETUNE_DEBUG: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started })));
}

export const TERMINAL = ['SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELED', 'TIMED_OUT'];
