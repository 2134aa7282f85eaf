// The `edgetune agent` command as a user runs it: a real process, real signals.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { observe, startBroker } from './helpers.js';

const root = packageRoot();
const tsx = join(root, 'node_modules', '.bin', 'tsx');
const main = join(root, 'src', 'cli', 'main.ts');
const haveTune = existsSync(join(root, 'src', 'tune', 'tune.ts')) && existsSync(join(root, 'examples', 'fashion-mnist', 'model.onnx'));

function run(args: string[], env: Record<string, string>, cwd: string) {
  const child = spawn(tsx, [main, ...args], { cwd, env: { ...process.env, EDGETUNE_DEBUG: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, exited, out: () => stdout };
}

t.test('agent --once: embedded broker, default tune job, table on stdout, exit 0', { skip: haveTune ? false : 'tune or the example model is not present yet' }, async (t) => {
  const dir = t.testdir();
  const { exited } = run(['agent', '--once'], { EDGETUNE_STATE_DIR: join(dir, 'state'), EDGETUNE_BROKER_PORT: '0', EDGETUNE_DEVICE_ID: 'cli-once' }, dir);
  const r = await exited;
  t.equal(r.code, 0, r.stderr);
  const logs = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  t.ok(logs.some((l) => /^no broker configured: started embedded MQTT broker on 127\.0\.0\.1:\d+$/.test(l.msg)), 'JSON log lines when stdout is not a TTY');
  t.match(r.stdout, /candidate[\s\S]*baseline fp32[^\n]* p90/);
  t.match(r.stdout, /published on edgetune\/default\/cli-once\/jobs\/once-1-[0-9a-f]+\/result/);
  t.ok(existsSync(join(dir, 'state', 'session.json')), 'state lives where EDGETUNE_STATE_DIR (relative to cwd) says');
});

t.test('agent daemon: serves jobs until SIGTERM, then exits 0 leaving offline retained', async (t) => {
  const { url } = await startBroker(t);
  const dir = t.testdir();
  const base = 'edgetune/default/cli-daemon';
  const obs = await observe(t, url, `${base}/#`);
  const { child, exited } = run(['agent', '--broker', url], { EDGETUNE_STATE_DIR: 'state', EDGETUNE_DEVICE_ID: 'cli-daemon' }, dir);
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await obs.waitFor((m) => m.topic === `${base}/status` && m.doc.state === 'online', 'online', 30_000);
  await obs.client.publishAsync(`${base}/jobs/bad`, '{"v":1', { qos: 1 });
  const rej = await obs.waitFor((m) => m.topic === `${base}/jobs/bad/status`, 'REJECTED');
  t.match(rej.doc, { state: 'REJECTED', error: { message: /not valid JSON/ } });
  child.kill('SIGTERM');
  const r = await exited;
  t.equal(r.code, 0, r.stderr);
  const off = await obs.waitFor((m) => m.topic === `${base}/status` && m.doc.state === 'offline', 'offline');
  t.equal(off.doc.session, 1);
  t.match(r.stdout, /SIGTERM received/);
});

t.test('a bad config is reported as path: message with exit code 1', async (t) => {
  const dir = t.testdir({ 'c.json': JSON.stringify({ broker: { port: 'x' } }) });
  const r = await run(['agent', '--config', 'c.json'], {}, dir).exited;
  t.equal(r.code, 1);
  t.match(r.stderr, /edgetune: invalid config \(from .*c\.json\):\n\s+\/broker\/port: Expected integer/);
});
