// Mosquitto with TLS from a test CA, mutual TLS, passwords and the ACL shipped in config/mosquitto/edgetune.acl:
// the agent connects only with the right credentials, and a device can publish only under its own topics.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { packageRoot } from '../../src/util/paths.js';
import { agentEnv, clientCert, controller, freePort, makeCerts, mosquitto, runCli, skip, startAgent } from './harness.js';

const BASE = 'edgetune/it/dev1';

/** A Mosquitto password file for these users. */
function passwordFile(dir: string, users: Record<string, string>): string {
  const pw = join(dir, 'passwd');
  writeFileSync(pw, '');
  for (const [user, secret] of Object.entries(users)) execFileSync('mosquitto_passwd', ['-b', pw, user, secret]);
  return pw;
}

t.test('TLS, mutual TLS, passwords and the device ACL', { skip }, async (t) => {
  const dir = t.testdir();
  const certs = makeCerts(join(dir, 'pki'), 'dev1');
  const pw = passwordFile(dir, { controller: 'ctl-secret', dev2: 'dev2-secret' });
  const tlsPort = await freePort();
  const pwTlsPort = await freePort();
  const mq = await mosquitto(t, join(dir, 'mq'), [
    `password_file ${pw}`,
    `acl_file ${join(packageRoot(), 'config', 'mosquitto', 'edgetune.acl')}`,
    `listener ${tlsPort} 127.0.0.1`,
    `cafile ${certs.ca}`,
    `certfile ${certs.serverCert}`,
    `keyfile ${certs.serverKey}`,
    'require_certificate true',
    'use_identity_as_username true',
    // controllers that log in with a password over TLS (docs/security.md)
    `listener ${pwTlsPort} 127.0.0.1`,
    `cafile ${certs.ca}`,
    `certfile ${certs.serverCert}`,
    `keyfile ${certs.serverKey}`,
  ], { tlsPort, anonymous: false });
  const tlsUrl = `mqtts://127.0.0.1:${tlsPort}`;
  const ctl = await controller(t, mq.url, ['edgetune/#'], { username: 'controller', password: 'ctl-secret' });

  // mutual TLS: the agent's client certificate (CN=dev1) is its identity
  const agent = startAgent(t, agentEnv(tlsUrl, join(dir, 'state'), 'dev1', {
    EDGETUNE_BROKER_TLS_CA: certs.ca, EDGETUNE_BROKER_TLS_CERT: certs.clientCert, EDGETUNE_BROKER_TLS_KEY: certs.clientKey,
  }));
  await ctl.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'online', 'online over mutual TLS', 60_000);
  await ctl.client.publishAsync(`${BASE}/jobs/sec1`, JSON.stringify({ v: 1, id: 'sec1', type: 'config', params: {} }), {
    qos: 1, properties: { responseTopic: `${BASE}/reply/ctl`, correlationData: Buffer.from('c1') },
  });
  await ctl.waitFor((m) => m.topic === `${BASE}/jobs/sec1/result`, 'job result through the ACL');
  await ctl.waitFor((m) => m.topic === `${BASE}/reply/ctl` && m.doc.id === 'sec1', 'reply on an allowed response topic');
  // a response topic outside the device's own branch: the broker refuses the reply, the agent drops it and goes on
  await ctl.client.publishAsync(`${BASE}/jobs/sec2`, JSON.stringify({ v: 1, id: 'sec2', type: 'config', params: {} }), {
    qos: 1, properties: { responseTopic: 'edgetune/it/dev2/status' },
  });
  await ctl.waitFor((m) => m.topic === `${BASE}/jobs/sec2/status` && m.doc.state === 'SUCCEEDED', 'sec2 status');
  const start = Date.now();
  while (!agent.logs.some((l) => /broker refused outbox entry/.test(l.msg)) && Date.now() - start < 10_000) await new Promise((r) => setTimeout(r, 100));
  t.ok(agent.logs.some((l) => /broker refused outbox entry .*reason code 135/.test(l.msg)), 'the refusal is logged with its reason code');
  t.notOk(ctl.msgs.some((m) => m.topic === 'edgetune/it/dev2/status'), 'nothing reached another device\'s topic');

  // the controller CLI over mutual TLS (its certificate's CN is its username, 'controller'), then with a password
  const ctlCert = clientCert(join(dir, 'pki'), 'controller');
  const devices = ['fleet', 'devices', '--json', '--fleet', 'it', '--db', join(dir, 'ctl.db'), '--settle-ms', '300'];
  const mtls = await runCli([...devices, '--broker', tlsUrl, '--ca', certs.ca, '--cert', ctlCert.cert, '--key', ctlCert.key]);
  t.equal(mtls.code, 0, `fleet devices over mutual TLS: ${mtls.stderr}`);
  t.same(JSON.parse(mtls.stdout).devices.map((d: any) => [d.device, d.online]), [['dev1', true]], 'the controller sees the agent over mutual TLS');
  writeFileSync(join(dir, 'ctl.pw'), 'ctl-secret\n');
  const pwTls = await runCli([...devices, '--broker', `mqtts://127.0.0.1:${pwTlsPort}`, '--ca', certs.ca, '--username', 'controller', '--password-file', join(dir, 'ctl.pw')]);
  t.equal(pwTls.code, 0, `fleet devices with a password over TLS: ${pwTls.stderr}`);
  t.same(JSON.parse(pwTls.stdout).devices.map((d: any) => d.device), ['dev1'], 'and over TLS with a password file');
  const wrongCa = await runCli([...devices, '--broker', tlsUrl, '--ca', certs.otherCa, '--cert', ctlCert.cert, '--key', ctlCert.key]);
  t.equal(wrongCa.code, 1, 'a broker certificate the given CA did not sign is an error');
  t.match(wrongCa.stderr, /edgetune: the broker mqtts:\/\/127\.0\.0\.1:\d+ presented a certificate this controller does not trust \(\w+.*\); give the CA that signed it with --ca/);
  t.ok(wrongCa.ms < 15_000, `…at the first attempt, not after the 15 s connect timeout (${wrongCa.ms} ms)`);
  writeFileSync(join(dir, 'bad.pw'), 'wrong\n');
  const badPw = await runCli([...devices, '--broker', `mqtts://127.0.0.1:${pwTlsPort}`, '--ca', certs.ca, '--username', 'controller', '--password-file', join(dir, 'bad.pw')]);
  t.equal(badPw.code, 1);
  t.match(badPw.stderr, /refused the login \(reason code \d+.*check --username and --password-file/, 'a wrong password says which flags to check');

  // the same ACL for a device with a password: its own topics yes, another device's no
  const dev2 = await connectAsync(mq.url, { protocolVersion: 5, username: 'dev2', password: 'dev2-secret', reconnectPeriod: 0 });
  t.teardown(() => dev2.endAsync(true));
  await dev2.publishAsync('edgetune/it/dev2/status', JSON.stringify({ v: 1, state: 'online' }), { qos: 1 });
  await t.rejects(dev2.publishAsync('edgetune/it/dev1/status', JSON.stringify({ v: 1, state: 'offline' }), { qos: 1 }), { code: 135 }, 'spoofing dev1 is refused');
  await t.rejects(dev2.publishAsync('edgetune/it/all/jobs/x', '{}', { qos: 1 }), { code: 135 }, 'a device cannot send jobs');

  // refused connections: wrong password, TLS without a client certificate, a broker certificate from another CA
  await t.rejects(connectAsync(mq.url, { protocolVersion: 5, username: 'dev2', password: 'wrong', reconnectPeriod: 0 }), 'wrong password');
  await t.rejects(connectAsync(tlsUrl, { ca: readFileSync(certs.ca), reconnectPeriod: 0, connectTimeout: 5000 }), 'no client certificate');
  await t.rejects(connectAsync(tlsUrl, {
    ca: readFileSync(certs.otherCa), cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey), reconnectPeriod: 0, connectTimeout: 5000,
  }), /self[- ]signed|unable to verify|certificate/i, 'a broker certificate our CA did not sign');
  await agent.kill('SIGTERM');

  // username + password kept in a file (broker.passwordFile), as the systemd install sets it up
  writeFileSync(join(dir, 'dev2.pw'), 'dev2-secret\n');
  await dev2.endAsync(true);
  const agent2 = startAgent(t, agentEnv(mq.url, join(dir, 'state2'), 'dev2', { EDGETUNE_BROKER_USERNAME: 'dev2', EDGETUNE_BROKER_PASSWORD_FILE: join(dir, 'dev2.pw') }));
  await ctl.waitFor((m) => m.topic === 'edgetune/it/dev2/status' && m.doc.state === 'online' && m.doc.session === 1, 'dev2 online with a password file', 60_000);
  await agent2.kill('SIGTERM');
});

t.test('TLS that checks only the broker (no client certificate) with a username and password', { skip }, async (t) => {
  const dir = t.testdir();
  const certs = makeCerts(join(dir, 'pki'), 'unused');
  const pw = passwordFile(dir, { controller: 'ctl-secret', dev3: 'dev3-secret' });
  const tlsPort = await freePort();
  const mq = await mosquitto(t, join(dir, 'mq'), [
    `password_file ${pw}`,
    `acl_file ${join(packageRoot(), 'config', 'mosquitto', 'edgetune.acl')}`,
    `listener ${tlsPort} 127.0.0.1`,
    `certfile ${certs.serverCert}`,
    `keyfile ${certs.serverKey}`,
    'require_certificate false',
  ], { tlsPort, anonymous: false });
  const url = `mqtts://127.0.0.1:${tlsPort}`;
  const ctl = await controller(t, mq.url, ['edgetune/#'], { username: 'controller', password: 'ctl-secret' });
  const base = 'edgetune/it/dev3';

  // Only the CA (to check the broker) and a password (to be checked by it): no client certificate anywhere.
  const agent = startAgent(t, agentEnv(url, join(dir, 'state'), 'dev3', {
    EDGETUNE_BROKER_TLS_CA: certs.ca, EDGETUNE_BROKER_USERNAME: 'dev3', EDGETUNE_BROKER_PASSWORD: 'dev3-secret',
  }));
  await ctl.waitFor((m) => m.topic === `${base}/status` && m.doc.state === 'online', 'online over TLS with a password', 60_000);
  await ctl.client.publishAsync(`${base}/jobs/pw1`, JSON.stringify({ v: 1, id: 'pw1', type: 'config', params: {} }), { qos: 1 });
  await ctl.waitFor((m) => m.topic === `${base}/jobs/pw1/result`, 'a job answered through the ACL');
  t.notOk(agent.logs.some((l) => /refused the connection/.test(l.msg)), 'no refusal logged');
  await agent.kill('SIGTERM');

  // The wrong password: refused with a reason that names the settings, retried with growing pauses, no crash.
  const wrongStart = Date.now();
  const wrong = startAgent(t, agentEnv(url, join(dir, 'state-wrong'), 'dev3', {
    EDGETUNE_BROKER_TLS_CA: certs.ca, EDGETUNE_BROKER_USERNAME: 'dev3', EDGETUNE_BROKER_PASSWORD: 'not-it',
    EDGETUNE_BROKER_RECONNECT_MIN_MS: '200', EDGETUNE_BROKER_RECONNECT_MAX_MS: '1600',
  }));
  const start = Date.now();
  while (!wrong.logs.some((l) => /refused the connection/.test(l.msg)) && Date.now() - start < 60_000) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 5000));
  const refusals = wrong.logs.filter((l) => /refused the connection/.test(l.msg));
  t.ok(refusals.length >= 2, `refused and tried again (${refusals.length} refusals)`);
  t.match(refusals[0]?.msg, /the broker refused the connection: Connection refused: (Bad User Name or Password|Not authorized) \(reason code 13[45]\); .*broker\.password/, 'the log says what to fix');
  const delays = wrong.logs.map((l) => Number(/reconnecting in (\d+) ms/.exec(l.msg)?.[1])).filter((n) => Number.isFinite(n));
  t.ok(refusals.length <= 12, `no tight retry loop: ${refusals.length} attempts in ${((Date.now() - start) / 1000).toFixed(1)} s (delays ${delays.join(', ')} ms)`);
  t.ok(Math.max(...delays) >= 800, 'the pauses grew (exponential backoff)');
  t.equal(wrong.child.exitCode, null, 'the agent keeps running');
  t.notOk(ctl.msgs.some((m) => m.topic === `${base}/status` && m.at >= wrongStart && m.doc.state === 'online'), 'never online with the wrong password');
  await wrong.kill('SIGTERM');
});
