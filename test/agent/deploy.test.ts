// Deploy and rollback through a real agent and a real broker: real model files, real ONNX Runtime checks in work
// processes, a real HTTP server that drops a download halfway, real MQTT chunks, real ed25519 keys.
import t from 'tap';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { signModel } from '../../src/agent/deploy/signature.js';
import { ModelStore } from '../../src/agent/deploy/store.js';
import { memoryLogger } from '../../src/agent/log.js';
import { GraphBuilder, buildModel } from '../../src/onnx/builder.js';
import { DT } from '../../src/onnx/dtype.js';
import { saveModel } from '../../src/onnx/model.js';
import { profileDevice } from '../../src/profile/index.js';
import { observe, startBroker, testConfig, until } from './helpers.js';

const BASE = 'edgetune/test/dev1';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A tiny real model; `name` changes the bytes (and so the sha256). */
async function model(dir: string, name: string): Promise<{ path: string; bytes: Buffer; sha256: string }> {
  const g = new GraphBuilder(name);
  g.input('x', DT.FLOAT, [1, 8]);
  g.node('Relu', ['x'], { outputs: ['y'] });
  g.output('y', DT.FLOAT, [1, 8]);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.onnx`);
  await saveModel(buildModel(g.graph), path);
  const bytes = readFileSync(path);
  return { path, bytes, sha256: sha(bytes) };
}

async function setup(t: any, deploy: Record<string, unknown> = {}) {
  const { url } = await startBroker(t);
  const stateDir = t.testdir();
  const config = await testConfig(stateDir, url, { deploy: { benchMaxS: 0.3, ...deploy } });
  const log = memoryLogger();
  const agent = new Agent({ config, log, profile: () => profileDevice({ skipSystemInformation: true }), runner: { progressIntervalMs: 50 } });
  t.teardown(() => agent.stop());
  await agent.start();
  await agent.waitConnected();
  const obs = await observe(t, url, `${BASE}/#`);
  let n = 0;
  const run = async (type: string, params: unknown, id = `j${++n}`) => {
    await obs.client.publishAsync(`${BASE}/jobs/${id}`, JSON.stringify({ v: 1, id, type, params }), { qos: 1 });
    const st = await obs.waitFor((m) => m.topic === `${BASE}/jobs/${id}/status` && ['SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELED', 'TIMED_OUT'].includes(m.doc.state), `end of ${id}`, 60_000);
    const res = obs.msgs.find((m) => m.topic === `${BASE}/jobs/${id}/result`);
    return { status: st.doc, result: res?.doc };
  };
  const inbox = join(stateDir, 'inbox');
  return { agent, obs, run, stateDir, inbox, url, log };
}

/** A folder outside the test's stateDir (calling t.testdir() twice in one test would wipe the first). */
function scratch(t: any): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgetune-deploy-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const activeSha = (stateDir: string) => sha(readFileSync(join(stateDir, 'models', 'active.onnx')));

t.test('deploy from a file, deploy another, roll back: active link, previous and retained deployed follow', async (t) => {
  const { run, obs, stateDir, inbox, url } = await setup(t);
  const a = await model(inbox, 'model-a');
  const b = await model(inbox, 'model-b');
  const r1 = await run('deploy', { model: 'inbox/model-a.onnx', sha256: a.sha256, name: 'a' });
  t.equal(r1.status.state, 'SUCCEEDED', JSON.stringify(r1.status.error));
  t.match(r1.result, { v: 1, deployed: { model: { sha256: a.sha256, bytes: a.bytes.length }, name: 'a' }, check: { latencyMs: { p50: Number } } });
  t.notOk(r1.result.deployed.previous, 'nothing ran before');
  t.equal(activeSha(stateDir), a.sha256, 'active.onnx is model a');
  t.equal(readlinkSync(join(stateDir, 'models', 'active.onnx')), join('blobs', `${a.sha256}.onnx`));
  const d1 = await obs.waitFor((m) => m.topic === `${BASE}/deployed` && m.doc.model.sha256 === a.sha256, 'deployed a');
  t.ok(d1.doc.since);

  const r2 = await run('deploy', { model: 'inbox/model-b.onnx', sha256: b.sha256 });
  t.equal(r2.status.state, 'SUCCEEDED');
  t.match(r2.result.deployed, { model: { sha256: b.sha256 }, previous: { model: { sha256: a.sha256 }, name: 'a' } });
  t.equal(activeSha(stateDir), b.sha256);

  const again = await run('deploy', { model: 'inbox/model-b.onnx', sha256: b.sha256 });
  t.match(again.result, { unchanged: true }, 'the active model sent again is a no-op');

  const rb = await run('rollback', { reason: 'test' });
  t.equal(rb.status.state, 'SUCCEEDED');
  t.match(rb.result.deployed, { model: { sha256: a.sha256 }, previous: { model: { sha256: b.sha256 } } });
  t.equal(activeSha(stateDir), a.sha256, 'rolled back on disk');
  const late = await observe(t, url, `${BASE}/deployed`);
  const retained = await late.waitFor(() => true, 'retained deployed');
  t.match(retained, { retain: true, doc: { model: { sha256: a.sha256 } } });
});

t.test('refused or failed deploys change nothing: wrong sha256, not a model, budget missed, path outside', async (t) => {
  const { run, stateDir, inbox } = await setup(t);
  const a = await model(inbox, 'good');
  t.equal((await run('deploy', { model: 'inbox/good.onnx', sha256: a.sha256 })).status.state, 'SUCCEEDED');

  const b = await model(inbox, 'other');
  const wrong = await run('deploy', { model: 'inbox/other.onnx', sha256: a.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0')) });
  t.match(wrong.status, { state: 'FAILED', error: { code: 'DEPLOY_REFUSED', message: new RegExp(`has sha256 ${b.sha256}`) } });

  const junk = Buffer.from('this is not an ONNX model at all');
  writeFileSync(join(inbox, 'junk.onnx'), junk);
  const broken = await run('deploy', { model: 'inbox/junk.onnx', sha256: sha(junk) });
  t.match(broken.status, { state: 'FAILED', error: { code: 'DEPLOY_ROLLED_BACK', message: /failed to load or run.*the previous model .* stays active/ } });

  const slow = await run('deploy', { model: 'inbox/other.onnx', sha256: b.sha256, budget: { latencyMs: 0.000001, percentile: 90 } });
  t.match(slow.status, { state: 'FAILED', error: { code: 'DEPLOY_ROLLED_BACK', message: /misses the budget: p90 .* ms > 0.000001 ms/ } });

  const outside = await run('deploy', { model: '/etc/passwd', sha256: a.sha256 });
  t.match(outside.status, { state: 'REJECTED', error: { message: /\/params\/model: '\/etc\/passwd' is outside/ } });
  const two = await run('deploy', { model: 'inbox/good.onnx', url: 'https://example.com/m.onnx', sha256: a.sha256 });
  t.match(two.status, { state: 'REJECTED', error: { message: /exactly one source/ } });
  const http = await run('deploy', { url: 'http://example.com/m.onnx', sha256: a.sha256 });
  t.match(http.status, { state: 'REJECTED', error: { message: /plain http is refused/ } });

  t.equal(activeSha(stateDir), a.sha256, 'the first model is still active');
  const store = new ModelStore(stateDir, memoryLogger());
  await store.load();
  t.equal(store.previous, undefined, 'no failed candidate became previous');
});

t.test('signatures: unsigned REJECTED, tampered FAILED, signed deployed', async (t) => {
  const keys = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const dir = scratch(t);
  writeFileSync(join(dir, 'fleet.pub'), keys.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const { run, stateDir, inbox } = await setup(t, { publicKey: join(dir, 'fleet.pub') });
  const m = await model(inbox, 'signed');
  const unsigned = await run('deploy', { model: 'inbox/signed.onnx', sha256: m.sha256 });
  t.match(unsigned.status, { state: 'REJECTED', error: { message: /\/params\/signature: this device only takes signed models/ } });
  const forged = await run('deploy', { model: 'inbox/signed.onnx', sha256: m.sha256, signature: signModel(m.sha256, other.privateKey) });
  t.match(forged.status, { state: 'FAILED', error: { code: 'DEPLOY_REFUSED', message: /not a valid signature/ } });
  // A valid signature of another model does not cover this one.
  const n = await model(inbox, 'unsigned-twin');
  const swapped = await run('deploy', { model: 'inbox/unsigned-twin.onnx', sha256: n.sha256, signature: signModel(m.sha256, keys.privateKey) });
  t.match(swapped.status, { state: 'FAILED', error: { code: 'DEPLOY_REFUSED' } });
  const ok = await run('deploy', { model: 'inbox/signed.onnx', sha256: m.sha256, signature: signModel(m.sha256, keys.privateKey) });
  t.equal(ok.status.state, 'SUCCEEDED', JSON.stringify(ok.status.error));
  t.equal(activeSha(stateDir), m.sha256);
});

t.test('https/http download resumes with a Range request after the connection drops halfway', async (t) => {
  const { run, stateDir } = await setup(t, { allowHttp: true });
  const m = await model(scratch(t), 'remote');
  const requests: Array<string | undefined> = [];
  const server = createServer((req, res) => {
    requests.push(req.headers.range);
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (!range) {
      // First request: half the file, then the connection dies (late enough that the agent has read the half
      // even on a loaded machine: bytes still queued in the client's stream when it errors are lost).
      res.writeHead(200, { 'content-length': m.bytes.length, 'accept-ranges': 'bytes' });
      res.write(m.bytes.subarray(0, Math.floor(m.bytes.length / 2)), () => setTimeout(() => res.socket?.destroy(), 500));
      return;
    }
    const start = Number(range[1]);
    res.writeHead(206, { 'content-range': `bytes ${start}-${m.bytes.length - 1}/${m.bytes.length}`, 'content-length': m.bytes.length - start });
    res.end(m.bytes.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/models/remote.onnx?token=secret`;
  const r = await run('deploy', { url, sha256: m.sha256 });
  t.equal(r.status.state, 'SUCCEEDED', JSON.stringify(r.status.error));
  t.equal(requests[0], undefined, 'first request from the start');
  const resumed = requests.slice(1).find((r) => r !== undefined);
  t.match(resumed, /^bytes=\d+-$/, 'a later request resumes with a Range');
  t.ok(Number(/\d+/.exec(resumed ?? '0')![0]) > 0, 'from where an earlier one stopped');
  t.equal(activeSha(stateDir), m.sha256);
});

t.test('a URL deploy that fails for good leaves no partial download behind', async (t) => {
  const { run, stateDir } = await setup(t, { allowHttp: true });
  const m = await model(scratch(t), 'gone');
  let requests = 0;
  const server = createServer((req, res) => {
    // Half the file, the connection dies; the resume is then refused: the job cannot ever finish.
    if (requests++ === 0) {
      res.writeHead(200, { 'content-length': m.bytes.length });
      res.write(m.bytes.subarray(0, Math.floor(m.bytes.length / 2)), () => setTimeout(() => res.socket?.destroy(), 300));
      return;
    }
    res.writeHead(410).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/models/gone.onnx`;
  const r = await run('deploy', { url, sha256: m.sha256 });
  t.match(r.status, { state: 'FAILED', error: { code: 'DOWNLOAD_FAILED', message: /HTTP 410/ } });
  t.equal(requests, 2, 'the drop was resumed once, the HTTP error not retried');
  t.same(readdirSafe(join(stateDir, 'models', 'staging')), [], 'the partial file of the failed job is gone');
});

t.test('gc removes staging files of jobs that have ended and keeps those of queued or running jobs', async (t) => {
  const dir = t.testdir();
  let live = ['resume.me', 'queued-1'];
  const store = new ModelStore(dir, memoryLogger(), { liveJobs: () => live });
  await store.load();
  const files = ['resume.me.part', 'queued-1.compressed.onnx', 'ended.part', 'ended.compressed.onnx', 'resume.part', 'stray.bin', 'torn.tmp'];
  for (const f of files) writeFileSync(join(store.staging, f), 'partial bytes');
  // A restart: the store is loaded again while the same jobs are still to run.
  await new ModelStore(dir, memoryLogger(), { liveJobs: () => live }).load();
  t.same(readdirSync(store.staging).sort(), ['queued-1.compressed.onnx', 'resume.me.part'], 'only files of live jobs survive (ids with dots too)');
  live = [];
  await store.gc();
  t.same(readdirSync(store.staging), [], 'once those jobs end, their files go at the next gc');

  // A store that is not told which jobs live (a tool reading the state) keeps staging files.
  writeFileSync(join(store.staging, 'other.part'), 'x');
  await new ModelStore(dir, memoryLogger()).load();
  t.same(readdirSync(store.staging), ['other.part']);
});

t.test('a model sent as MQTT chunks (some before the job, one twice) is assembled, verified and deployed', async (t) => {
  const { run, obs, stateDir } = await setup(t);
  const m = await model(scratch(t), 'chunked');
  const size = 64;
  const chunks = Array.from({ length: Math.ceil(m.bytes.length / size) }, (_, i) => m.bytes.subarray(i * size, (i + 1) * size));
  const send = (i: number) => obs.client.publishAsync(`${BASE}/transfer/tx1/${i}`, chunks[i], { qos: 1 });
  const half = Math.floor(chunks.length / 2);
  for (let i = 0; i < half; i++) await send(i);
  await send(0);
  const ending = run('deploy', { transfer: { id: 'tx1', chunks: chunks.length, bytes: m.bytes.length }, sha256: m.sha256 });
  await obs.waitFor((x) => /\/jobs\/j1\/status$/.test(x.topic) && /receiving model over MQTT/.test(x.doc.progress?.step ?? ''), 'waiting for chunks');
  for (let i = chunks.length - 1; i >= half; i--) await send(i);
  const r = await ending;
  t.equal(r.status.state, 'SUCCEEDED', JSON.stringify(r.status.error));
  t.equal(activeSha(stateDir), m.sha256);
  await until(() => !readdirSafe(join(stateDir, 'transfers')).includes('tx1'), 'transfer folder removed after use');

  // The same model sent again: the device already runs it, so the chunks are never read, and must not linger.
  for (let i = 0; i < chunks.length; i++) await obs.client.publishAsync(`${BASE}/transfer/tx2/${i}`, chunks[i], { qos: 1 });
  await until(() => readdirSafe(join(stateDir, 'transfers')).includes('tx2'), 'second transfer stored');
  const again = await run('deploy', { transfer: { id: 'tx2', chunks: chunks.length, bytes: m.bytes.length }, sha256: m.sha256 });
  t.equal(again.status.state, 'SUCCEEDED');
  t.equal(again.result?.unchanged, true, 'nothing to deploy');
  await until(() => !readdirSafe(join(stateDir, 'transfers')).includes('tx2'), 'unread transfer removed');
});

t.test('an activation not committed before a crash is rolled back at the next start', async (t) => {
  const dir = t.testdir();
  const log = memoryLogger();
  const a = await model(join(dir, 'src'), 'old');
  const b = await model(join(dir, 'src'), 'new');
  const s1 = new ModelStore(dir, log);
  await s1.load();
  const stage = async (m: { bytes: Buffer; sha256: string }) => {
    writeFileSync(join(s1.staging, 'x.part'), m.bytes);
    await s1.importFile(join(s1.staging, 'x.part'), m.sha256);
  };
  await stage(a);
  await s1.activate({ sha256: a.sha256, bytes: a.bytes.length, since: 'then' });
  await s1.commit();
  await stage(b);
  await s1.activate({ sha256: b.sha256, bytes: b.bytes.length, since: 'now' });
  t.equal(sha(readFileSync(s1.activeLink)), b.sha256, 'the new one was active, pending');
  // "crash": a fresh store reads the disk
  const s2 = new ModelStore(dir, log);
  const { rolledBack } = await s2.load();
  t.equal(rolledBack?.sha256, b.sha256);
  t.equal(s2.active?.sha256, a.sha256);
  t.equal(sha(readFileSync(s2.activeLink)), a.sha256, 'active.onnx points at the old model again');
  t.notOk(await s2.has(b.sha256), 'the unconfirmed blob is collected');
});

function readdirSafe(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}
