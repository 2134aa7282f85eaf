// Deploys from https URLs through the real agent process: a private CA trusted through NODE_EXTRA_CA_CERTS (how a
// device is told about the fleet's model server), a certificate nobody vouches for, and a download cut by an agent
// SIGKILL that resumes with a Range request after the restart.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { agentEnv, controller, makeCerts, mosquitto, skip, sleep, startAgent, tinyModel, TERMINAL } from './harness.js';

const BASE = 'edgetune/it/dl';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface ModelServer {
  url: (name: string) => string;
  /** Range header of every request, in order (undefined = from the start). */
  ranges: Array<string | undefined>;
  /** TLS handshakes begun (a client that gives up on the certificate still counts). */
  connections: () => number;
  /** While set, a request from the start gets half the body and then nothing more. */
  stall: boolean;
}

/** An https server for model files that answers Range requests. */
async function modelServer(t: any, cert: string, key: string, files: Record<string, Buffer>): Promise<ModelServer> {
  const held: ServerResponse[] = [];
  let connections = 0;
  const srv: ModelServer = { url: () => '', ranges: [], connections: () => connections, stall: false };
  const server: Server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
    const body = files[(req.url ?? '').replace(/^\/models\//, '').replace(/\?.*$/, '')];
    srv.ranges.push(req.headers.range);
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      res.writeHead(206, { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, 'content-length': body.length - start });
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' });
    if (!srv.stall) {
      res.end(body);
      return;
    }
    // The connection stays open with no more bytes, as a server behind a dying link would.
    res.write(body.subarray(0, Math.floor(body.length / 2)));
    held.push(res);
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    for (const r of held) r.destroy();
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as { port: number }).port;
  srv.url = (name) => `https://127.0.0.1:${port}/models/${name}?token=s3cret`;
  return srv;
}

/** A certificate for 127.0.0.1 that signs itself: valid in every way except that nobody trusts it. */
function selfSigned(dir: string): { cert: string; key: string } {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'rogue.key', '-out', 'rogue.crt',
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  return { cert: join(dir, 'rogue.crt'), key: join(dir, 'rogue.key') };
}

async function setup(t: any) {
  const dir = t.testdir();
  const stateDir = join(dir, 'state');
  const certs = makeCerts(join(dir, 'pki'));
  const mq = await mosquitto(t, join(dir, 'mq'));
  const ctl = await controller(t, mq.url, [`${BASE}/jobs/+/+`, `${BASE}/status`]);
  // The CA reaches the agent the way a device's unit file would give it: in the environment.
  const env = agentEnv(mq.url, stateDir, 'dl', { NODE_EXTRA_CA_CERTS: certs.ca, EDGETUNE_JOBS_PROGRESS_INTERVAL_MS: '100' });
  const deploy = (id: string, params: Record<string, unknown>) =>
    ctl.client.publishAsync(`${BASE}/jobs/${id}`, JSON.stringify({ v: 1, id, type: 'deploy', params }), { qos: 1 });
  const endOf = (id: string, ms = 90_000) => ctl.waitFor((m) => m.topic === `${BASE}/jobs/${id}/status` && TERMINAL.includes(m.doc.state), `${id} ended`, ms);
  const online = (n: number) => ctl.waitFor((m) => m.topic === `${BASE}/status` && m.doc.state === 'online' && m.doc.session === n, `online (session ${n})`, 60_000);
  const activeSha = () => sha(readFileSync(join(stateDir, 'models', 'active.onnx')));
  return { dir, stateDir, certs, env, ctl, deploy, endOf, online, activeSha };
}

t.test('https deploy: a CA given in NODE_EXTRA_CA_CERTS is trusted and the sha256 checked; an untrusted certificate fails at once, naming the URL', { skip }, async (t) => {
  const { dir, certs, env, ctl, deploy, endOf, online, activeSha } = await setup(t);
  const m = await tinyModel(join(dir, 'models'), 'remote', 32);
  const good = await modelServer(t, certs.serverCert, certs.serverKey, { 'remote.onnx': m.bytes });
  const rogueCert = selfSigned(join(dir, 'pki'));
  const rogue = await modelServer(t, rogueCert.cert, rogueCert.key, { 'remote.onnx': m.bytes });
  const agent = startAgent(t, env);
  await online(1);

  await deploy('untrusted', { url: rogue.url('remote.onnx'), sha256: m.sha256 });
  const bad = await endOf('untrusted');
  const where = rogue.url('remote.onnx').replace(/\?.*/, '');
  t.match(bad.doc, { state: 'FAILED', error: { code: 'DOWNLOAD_FAILED', message: `GET ${where}?…: the server's TLS certificate is not trusted` } });
  t.match(bad.doc.error.message, /NODE_EXTRA_CA_CERTS/, 'the error says how to trust a CA');
  t.notMatch(bad.doc.error.message, /s3cret/, 'the URL\'s token stays out of the error');
  t.equal(rogue.connections(), 1, 'a certificate problem is not retried');
  t.same(rogue.ranges, [], 'no request reached the untrusted server');

  await deploy('wrongsum', { url: good.url('remote.onnx'), sha256: sha(Buffer.from('something else')) });
  const wrong = await endOf('wrongsum');
  t.match(wrong.doc, { state: 'FAILED', error: { code: 'DEPLOY_REFUSED', message: new RegExp(`has sha256 ${m.sha256}`) } }, 'the bytes that came over https are hashed');

  await deploy('trusted', { url: good.url('remote.onnx'), sha256: m.sha256 });
  const ok = await endOf('trusted');
  t.equal(ok.doc.state, 'SUCCEEDED', JSON.stringify(ok.doc.error));
  const result = ctl.msgs.find((x) => x.topic === `${BASE}/jobs/trusted/result`);
  t.match(result?.doc, { deployed: { model: { sha256: m.sha256, bytes: m.bytes.length } } });
  t.equal(activeSha(), m.sha256, 'the downloaded model is active');
  t.same(good.ranges, [undefined, undefined], 'one plain GET per job');
  await agent.kill('SIGTERM');
});

t.test('an https download cut by an agent SIGKILL resumes after the restart with a Range from the partial length, and verifies', { skip }, async (t) => {
  const { dir, stateDir, certs, env, ctl, deploy, endOf, online, activeSha } = await setup(t);
  const m = await tinyModel(join(dir, 'models'), 'big', 192); // ~147 KB: more than one read
  const srv = await modelServer(t, certs.serverCert, certs.serverKey, { 'big.onnx': m.bytes });
  srv.stall = true;
  const half = Math.floor(m.bytes.length / 2);
  const part = join(stateDir, 'models', 'staging', 'r1.part');
  let agent = startAgent(t, env);
  await online(1);
  await deploy('r1', { url: srv.url('big.onnx'), sha256: m.sha256 });
  // The server has sent half and stalls; wait until all of it is in the partial file, then kill.
  const start = Date.now();
  while (!(existsSync(part) && statSync(part).size === half)) {
    if (Date.now() - start > 60_000) throw new Error(`the partial file never reached ${half} bytes (${existsSync(part) ? statSync(part).size : 'absent'})`);
    await sleep(50);
  }
  await agent.kill('SIGKILL');
  t.equal(statSync(part).size, half, 'the partial download survives the kill in the state folder');
  t.same(srv.ranges, [undefined], 'so far one request, from the start');

  srv.stall = false;
  agent = startAgent(t, env);
  await online(2);
  const end = await endOf('r1');
  t.equal(end.doc.state, 'SUCCEEDED', JSON.stringify(end.doc.error));
  t.same(srv.ranges, [undefined, `bytes=${half}-`], 'the restarted agent asked for the rest only');
  t.ok(ctl.msgs.some((x) => x.topic === `${BASE}/jobs/r1/status` && /resuming after an agent restart \(attempt 2\)/.test(x.doc.progress?.step)), 'it said it resumed');
  t.equal(activeSha(), m.sha256, 'the stitched file verified and is active');
  t.same(readdirSync(join(stateDir, 'models', 'staging')), [], 'no partial file left behind');
  t.comment('FAULTS deploy-download: agent SIGKILLs=1 mid-download, resumed-with-range=1');
  await agent.kill('SIGTERM');
});
