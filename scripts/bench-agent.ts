// npm run bench:agent — the agent as a device runs it (built JavaScript, the systemd unit's node flags):
//   start → online: process spawn to the retained online status at a controller (median of 3 fresh starts)
//   idle: RSS (sampled every second) and CPU (utime+stime from /proc) over --idle-s seconds (default 60)
//   outbox: results/s written to disk (fsync) and acknowledged by the broker
// Targets: idle RSS ≤ 60 MB, idle CPU ≤ 0.5 %, start → online ≤ 1.5 s. Writes bench-results/bench-agent.json.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { EmbeddedBroker } from '../src/agent/broker.js';
import { createLogger } from '../src/agent/log.js';
import { Outbox } from '../src/agent/outbox.js';
import { Transport } from '../src/agent/transport.js';
import { formatTable } from '../src/cli/output.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { packageRoot } from '../src/util/paths.js';

const root = packageRoot();
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const IDLE_S = arg('idle-s', 60);
const RESULTS = arg('results', 500);
// The systemd unit's flags (scripts/install.sh).
const NODE_FLAGS = ['--lite-mode', '--no-expose-wasm', '--max-semi-space-size=1'];
const quiet = createLogger({ level: 'error', json: true, write: () => {} });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The built agent in a temp prefix, as install.sh lays it out (dependencies linked). */
function build(): string {
  const prefix = mkdtempSync(join(tmpdir(), 'edgetune-bench-agent-'));
  const esbuild = join(root, 'node_modules', 'esbuild', 'bin', 'esbuild');
  const files = execFileSync('find', ['src', '-name', '*.ts'], { cwd: root, encoding: 'utf8' }).trim().split('\n');
  execFileSync(esbuild, [...files, `--outdir=${join(prefix, 'dist', 'src')}`, '--outbase=src', '--format=esm', '--platform=node', '--target=node20', '--log-level=warning'], { cwd: root });
  cpSync(join(root, 'package.json'), join(prefix, 'package.json'));
  for (const d of ['config', 'targets']) cpSync(join(root, d), join(prefix, d), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(prefix, 'node_modules'));
  return prefix;
}

function startAgent(prefix: string, url: string, stateDir: string, device: string): ChildProcess {
  return spawn(process.execPath, [...NODE_FLAGS, join(prefix, 'dist', 'src', 'agent', 'daemon.js')], {
    env: { PATH: process.env.PATH, EDGETUNE_BROKER_URL: url, EDGETUNE_STATE_DIR: stateDir, EDGETUNE_DEVICE_ID: device, EDGETUNE_FLEET: 'bench' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function stopAgent(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await gone;
}

/** Spawn → retained online seen by a controller, in ms. */
async function startToOnline(prefix: string, url: string, work: string, i: number): Promise<number> {
  const device = `start${i}`;
  const ctl = await connectAsync(url, { reconnectPeriod: 0 });
  const online = new Promise<number>((resolve) => ctl.on('message', (_t, p) => {
    if (JSON.parse(p.toString()).state === 'online') resolve(performance.now());
  }));
  await ctl.subscribeAsync(`edgetune/bench/${device}/status`, { qos: 1 });
  const t0 = performance.now();
  const agent = startAgent(prefix, url, join(work, device), device);
  const t1 = await online;
  await stopAgent(agent);
  await ctl.endAsync();
  return t1 - t0;
}

function procStat(pid: number): { cpuTicks: number; rssKB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { cpuTicks: Number(fields[11]) + Number(fields[12]), rssKB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) };
}

async function idle(prefix: string, url: string, work: string): Promise<{ rssMeanMB: number; rssMaxMB: number; cpuPct: number; children: number }> {
  const agent = startAgent(prefix, url, join(work, 'idle'), 'idle');
  try {
    return await measureIdle(agent, url);
  } finally {
    await stopAgent(agent);
  }
}

async function measureIdle(agent: ChildProcess, url: string): Promise<{ rssMeanMB: number; rssMaxMB: number; cpuPct: number; children: number }> {
  const ctl = await connectAsync(url, { reconnectPeriod: 0 });
  const profiled = new Promise<void>((r) => ctl.on('message', () => r()));
  await ctl.subscribeAsync('edgetune/bench/idle/profile', { qos: 1 });
  await profiled; // the start-up profiling (a work process) is over
  await sleep(3000);
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const first = procStat(agent.pid!);
  const rss: number[] = [];
  const t0 = performance.now();
  for (let s = 0; s < IDLE_S; s++) {
    await sleep(1000);
    rss.push(procStat(agent.pid!).rssKB / 1024);
  }
  const last = procStat(agent.pid!);
  const seconds = (performance.now() - t0) / 1000;
  let children = 0;
  try {
    children = execFileSync('ps', ['--ppid', String(agent.pid), '-o', 'pid='], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).length;
  } catch {
    // ps exits 1 when nothing matched: no children
  }
  await ctl.endAsync();
  return {
    rssMeanMB: rss.reduce((a, b) => a + b, 0) / rss.length,
    rssMaxMB: Math.max(...rss),
    cpuPct: (100 * (last.cpuTicks - first.cpuTicks)) / hz / seconds,
    children,
  };
}

/** Result documents (~2 KB each, like a small Measurement) through the outbox to a broker acknowledgement. */
async function outboxRate(url: string, work: string): Promise<{ resultsPerS: number; n: number }> {
  const tr = new Transport({ url, clientId: 'bench-outbox', keepaliveS: 30, protocolVersion: 4, reconnect: { minMs: 100, maxMs: 1000 }, log: quiet });
  tr.start();
  await tr.waitConnected();
  const ob = new Outbox({ dir: join(work, 'outbox'), publish: (m) => tr.publish(m.topic, m.doc, { qos: 1 }), connected: () => tr.connected, log: quiet });
  await ob.load();
  const doc = { v: 1, latencyMs: { p50: 1.2, p90: 1.4, p95: 1.5, p99: 1.9 }, samplesMs: Array.from({ length: 200 }, (_, i) => 1 + i / 1000) };
  const t0 = performance.now();
  for (let i = 0; i < RESULTS; i++) {
    await ob.add([{ topic: `edgetune/bench/ob/jobs/j${i}/result`, doc: { ...doc, i } }, { topic: `edgetune/bench/ob/jobs/j${i}/status`, doc: { v: 1, id: `j${i}`, state: 'SUCCEEDED', seq: 3 } }]);
  }
  await ob.drained();
  const s = (performance.now() - t0) / 1000;
  await tr.stop();
  return { resultsPerS: RESULTS / s, n: RESULTS };
}

async function main(): Promise<void> {
  const prefix = build();
  const work = mkdtempSync(join(tmpdir(), 'edgetune-bench-agent-state-'));
  const broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0 });
  await broker.start();
  try {
    const starts: number[] = [];
    for (let i = 0; i < 3; i++) starts.push(await startToOnline(prefix, broker.url!, work, i));
    const onlineMs = [...starts].sort((a, b) => a - b)[1];
    process.stderr.write(`start → online: ${starts.map((s) => s.toFixed(0)).join(', ')} ms; idling for ${IDLE_S} s…\n`);
    const id = await idle(prefix, broker.url!, work);
    const ob = await outboxRate(broker.url!, work);
    const rows = [
      ['idle RSS (mean / max)', `${id.rssMeanMB.toFixed(1)} / ${id.rssMaxMB.toFixed(1)} MB`, '≤ 60 MB', id.rssMaxMB <= 60 ? 'ok' : 'MISS'],
      [`idle CPU over ${IDLE_S} s`, `${id.cpuPct.toFixed(3)} %`, '≤ 0.5 %', id.cpuPct <= 0.5 ? 'ok' : 'MISS'],
      ['start → online (median of 3)', `${onlineMs.toFixed(0)} ms`, '≤ 1500 ms', onlineMs <= 1500 ? 'ok' : 'MISS'],
      ['results through the outbox', `${ob.resultsPerS.toFixed(0)} /s (${ob.n}, fsync each)`, '', ''],
      ['work processes left when idle', String(id.children), '0', id.children === 0 ? 'ok' : 'MISS'],
    ];
    process.stdout.write(formatTable(['metric', 'value', 'target', ''], rows) + '\n');
    process.stdout.write(`node ${process.version}, flags ${NODE_FLAGS.join(' ')}, built agent (dist/src/agent/daemon.js), embedded broker in the bench process\n`);
    mkdirSync(join(root, 'bench-results'), { recursive: true });
    await writeJsonAtomic(join(root, 'bench-results', 'bench-agent.json'), {
      v: 1, date: new Date().toISOString(), node: process.version, flags: NODE_FLAGS, idleS: IDLE_S,
      startToOnlineMs: { median: onlineMs, all: starts }, idle: id, outbox: ob,
    });
  } finally {
    await broker.stop();
    rmSync(prefix, { recursive: true, force: true });
    if (existsSync(work)) rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench-agent: ${e instanceof Error ? e.stack : e}\n`);
  process.exitCode = 1;
});
