// scripts/install.sh and uninstall.sh for real, into a test folder: the built agent runs from the prefix with the
// exact command line and environment of the systemd unit, and the unit passes systemd's own checker.
import t from 'tap';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { observe, startBroker } from './helpers.js';

const root = packageRoot();
const run = (script: string, args: string[]) => new Promise<{ code: number; out: string; err: string }>((resolve) => {
  execFile('bash', [join(root, 'scripts', script), ...args], { timeout: 120_000 }, (e, out, err) => resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err }));
});

t.test('install refuses a Node.js older than 20', async (t) => {
  const dir = t.testdir({ 'node': '#!/bin/sh\necho 18.19.0\n' });
  chmodSync(join(dir, 'node'), 0o755);
  const r = await run('install.sh', ['--node', join(dir, 'node'), '--prefix', join(dir, 'opt'), '--no-start']);
  t.equal(r.code, 1);
  t.match(r.err, /Node\.js 18\.19\.0 .* is too old; edgetune needs 20 or newer/);
  t.notOk(existsSync(join(dir, 'opt')), 'nothing installed');
});

t.test('install → run the unit\'s command → uninstall', async (t) => {
  const dir = t.testdir();
  const { url } = await startBroker(t);
  const p = { prefix: join(dir, 'opt', 'edgetune'), state: join(dir, 'var', 'edgetune'), conf: join(dir, 'etc', 'edgetune'), units: join(dir, 'units') };
  const r = await run('install.sh', ['--prefix', p.prefix, '--state-dir', p.state, '--config-dir', p.conf, '--unit-dir', p.units, '--deps', 'link', '--no-user', '--no-start', '--broker', url]);
  t.equal(r.code, 0, r.err);
  const unitFile = join(p.units, 'edgetune-agent.service');
  const unit = readFileSync(unitFile, 'utf8');
  for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', `ReadWritePaths=${p.state}`, 'PrivateTmp=yes', 'ProtectHome=yes', 'CapabilityBoundingSet=', 'KillMode=mixed', 'User=edgetune']) {
    t.ok(unit.split('\n').includes(line), line);
  }
  t.notOk(/^MemoryDenyWriteExecute/m.test(unit), 'no MemoryDenyWriteExecute: V8 and ONNX Runtime need W+X memory');
  const verify = spawnSync('systemd-analyze', ['verify', unitFile], { encoding: 'utf8' });
  if (verify.error) t.comment('systemd-analyze not available; unit syntax not checked');
  else t.equal(`${verify.stdout}${verify.stderr}`.trim(), '', 'systemd-analyze verify: no complaints');
  t.match(JSON.parse(readFileSync(join(p.conf, 'config.json'), 'utf8')), { v: 1, broker: { url } });

  // The unit's ExecStart and Environment, as systemd would run them (minus the user switch and sandbox).
  const exec = /^ExecStart=(.*)$/m.exec(unit)![1].split(' ');
  const env = Object.fromEntries([...unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  const child = spawn(exec[0], exec.slice(1), { cwd: p.state, env: { PATH: process.env.PATH, ...env, EDGETUNE_DEVICE_ID: 'installed' }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  const obs = await observe(t, url, 'edgetune/default/installed/#');
  await obs.waitFor((m) => m.topic.endsWith('/status') && m.doc.state === 'online', 'installed agent online', 30_000);
  await obs.client.publishAsync('edgetune/default/installed/jobs/p1', JSON.stringify({ v: 1, id: 'p1', type: 'profile', params: {} }), { qos: 1 });
  const res = await obs.waitFor((m) => m.topic.endsWith('/jobs/p1/result'), 'profile from a work process of the built agent', 60_000);
  t.match(res.doc, { v: 1, arch: process.arch });
  child.kill('SIGTERM');
  t.equal(await exited, 0, stderr);
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.ok(lines.every((l) => typeof l.ts === 'string' && typeof l.level === 'string' && typeof l.msg === 'string'), 'JSON lines for journald');
  t.ok(existsSync(join(p.state, 'session.json')), 'state where the unit says');

  writeFileSync(join(p.state, 'keep-me'), 'x');
  const u = await run('uninstall.sh', ['--prefix', p.prefix, '--state-dir', p.state, '--config-dir', p.conf, '--unit-dir', p.units]);
  t.equal(u.code, 0, u.err);
  t.notOk(existsSync(p.prefix) || existsSync(unitFile), 'program and unit removed');
  t.ok(existsSync(join(p.state, 'keep-me')) && existsSync(join(p.conf, 'config.json')), 'state and config kept');
  const purge = await run('uninstall.sh', ['--prefix', p.prefix, '--state-dir', p.state, '--config-dir', p.conf, '--unit-dir', p.units, '--purge', '--user', 'edgetune-test-nonexistent']);
  t.equal(purge.code, 0, purge.err);
  t.notOk(existsSync(p.state) || existsSync(p.conf), 'purged');
});
